"""The transactional outbox: each attempt's outcome is written with the attempt's own transaction,
then delivered to the CRM (sender.py) and exported nightly (export.py).

This module is the only place that reads and writes outbox rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Disposition, Lead, Operator, OutboxMessage
from kernel.errors import NotFound, UsageError
from leads.consent import consent_of
from leads.disposition import was_connected

log = logging.getLogger("dialer.crm.outbox")


class Topic(StrEnum):
    OUTCOME = "outcome"   # one per attempt: to the CRM and to the nightly file
    ALERT = "alert"       # alerts (issue 14): one per event, raised in its transaction (dialer/alerts)
    EMAIL = "email"       # a touch-chain e-mail; delivered over SMTP by dialer/chains/mailer.py
    ALERT_NOTICE = "alert_notice"   # alerts (issue 14): a rule's grouped notice to one recipient
    REPORT = "report"     # scheduled reports (issue 14): one run of a [[reports.schedule]] entry


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"         # gave up after crm.max_failures; `dialer crm retry` sends it again
    CANCELLED = "cancelled"   # an e-mail whose chain stopped (unsubscribe, order, ...) before it went out


# Our field names, in the order of the CSV columns. crm.field_map renames them for the CRM.
OUTCOME_FIELDS: tuple[str, ...] = (
    "idempotency_key", "outcome_at", "lead_id", "order_number", "source", "source_item_id", "phone", "name",
    "product", "attempt_id", "attempt_no", "attempts", "result", "hangup_cause", "disposition", "amount",
    "currency", "callback_at", "comment", "custom_fields", "operator_id", "operator", "recorded_by",
    "claimed_at", "dialed_at", "answered_at", "connected_at", "ended_at", "talk_seconds", "recording",
    "lead_status", "close_reason", "alert",
    # the ledger (issue 19): the number the call showed, where the consent came from
    "caller_id", "consent_form_id", "consent_text", "consent_version", "consent_ip", "consent_user_agent",
)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat() if when is not None else None


def outcome_key(attempt: CallAttempt) -> str:
    """The idempotency key of an attempt's outcome: stable across retries, unique per attempt.

    The claim time makes it unique across databases too (a rebuilt store restarts ids at 1).
    """
    return f"outcome-{attempt.id}-{attempt.claimed_at:%Y%m%d%H%M%S}"


def build_outcome(attempt: CallAttempt, lead: Lead, disposition: Disposition | None, operator_name: str | None,
                  key: str, now: datetime) -> dict[str, Any]:
    """The outcome as the CRM and the nightly file see it (our field names, JSON values)."""
    talk = None
    if attempt.connected_at is not None and attempt.ended_at is not None:
        talk = max(0, round((attempt.ended_at - attempt.connected_at).total_seconds()))
    amount: Decimal | None = disposition.amount if disposition is not None else None
    payload = {
        "idempotency_key": key,
        "outcome_at": _iso(now),
        "lead_id": lead.id,
        "order_number": lead.order_number,
        "source": lead.source,
        "source_item_id": lead.source_item_id,
        "phone": lead.phone_e164,
        "name": lead.name,
        "product": lead.product,
        "attempt_id": attempt.id,
        "attempt_no": attempt.attempt_no,
        "attempts": max(lead.attempts_count or 0, attempt.attempt_no or 0),
        "result": attempt.result,
        "hangup_cause": attempt.hangup_cause,
        "disposition": disposition.kind if disposition is not None else None,
        "amount": str(amount) if amount is not None else None,
        "currency": disposition.currency if disposition is not None else None,
        "callback_at": _iso(disposition.callback_at) if disposition is not None else None,
        "comment": disposition.comment if disposition is not None else None,
        "custom_fields": disposition.custom_fields if disposition is not None else None,
        "operator_id": attempt.operator_id,
        "operator": operator_name,
        "recorded_by": disposition.recorded_by if disposition is not None else None,
        "claimed_at": _iso(attempt.claimed_at),
        "dialed_at": _iso(attempt.originated_at),
        "answered_at": _iso(attempt.answered_at),
        "connected_at": _iso(attempt.connected_at),
        "ended_at": _iso(attempt.ended_at),
        "talk_seconds": talk,
        "recording": attempt.recording_ref,
        "lead_status": lead.status,
        "close_reason": lead.close_reason,
        "alert": None,
        "caller_id": attempt.caller_id,
        **{f"consent_{k}" if not k.startswith("consent_") else k: v
           for k, v in consent_of(lead.source, lead.received_at, lead.extra).items() if k not in ("source", "at")},
    }
    assert tuple(payload) == OUTCOME_FIELDS
    return payload


def enqueue_outcome(session: Session, attempt: CallAttempt, lead: Lead, disposition: Disposition | None,
                    now: datetime) -> OutboxMessage | None:
    """Write the attempt's outcome to the outbox inside the caller's transaction.

    Call it with the lead already updated. Exactly one outcome per attempt:
    - a call that reached an operator waits for its disposition: with disposition=None it returns None
      and writes nothing (the disposition, or the wrap-up timeout, enqueues it);
    - a second call for the same attempt returns the outcome already written.
    """
    require_aware(now)
    if attempt.id is None or lead.id is None:
        session.flush()
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.attempt_id == attempt.id,
                                                          OutboxMessage.topic == Topic.OUTCOME.value))
    if existing is not None:
        return existing
    if disposition is None and was_connected(attempt.result, attempt.connected_at):
        return None
    operator_name = None
    if attempt.operator_id is not None:
        operator = session.get(Operator, attempt.operator_id)
        operator_name = operator.name if operator is not None else None
    key = outcome_key(attempt)
    payload = build_outcome(attempt, lead, disposition, operator_name, key, now)
    if disposition is not None and disposition.kind == "complaint":
        payload["alert"] = "complaint"
    message = OutboxMessage(topic=Topic.OUTCOME.value, lead_id=lead.id, attempt_id=attempt.id,
                            idempotency_key=key, payload=payload, status=OutboxStatus.PENDING.value,
                            failures=0, next_try_at=now, created_at=now)
    session.add(message)
    session.flush()
    from dialer.alerts.raising import alerts_for_outcome   # alerts (issue 14): in the outcome's transaction
    alerts_for_outcome(session, attempt, lead, disposition, operator_name, now)
    log.info("outbox.enqueued lead_id=%s attempt_id=%s outbox_id=%s result=%s disposition=%s", lead.id,
             attempt.id, message.id, attempt.result, payload["disposition"])
    return message


# ---------------------------------------------------------------- delivery bookkeeping (the sender's side)

@dataclass(frozen=True)
class Delivery:
    """One outcome claimed for delivery."""

    id: int
    lead_id: int | None
    key: str
    payload: dict[str, Any]
    failures: int


def _earlier_undelivered():
    """An earlier outcome of the same lead that is not delivered yet (pending or dead) blocks this one."""
    earlier = aliased(OutboxMessage)
    return exists().where(earlier.topic == OutboxMessage.topic, earlier.lead_id == OutboxMessage.lead_id,
                          earlier.id < OutboxMessage.id,
                          earlier.status.in_((OutboxStatus.PENDING.value, OutboxStatus.DEAD.value)))


def claim_due(session: Session, now: datetime, lease_until: datetime, limit: int,
              skip_ids: Iterable[int] = (), topic: Topic = Topic.OUTCOME) -> list[Delivery]:
    """Take due outcomes that head their lead's queue, and lease them until `lease_until`.

    The lease (next_try_at pushed forward) keeps other senders and the lead's later outcomes away
    while the HTTP call runs without a transaction; a sender that dies mid-call leaves a row that
    becomes due again when the lease ends.
    """
    query = (select(OutboxMessage)
             .where(OutboxMessage.topic == topic.value, OutboxMessage.status == OutboxStatus.PENDING.value,
                    OutboxMessage.next_try_at <= now, ~_earlier_undelivered())
             .order_by(OutboxMessage.next_try_at, OutboxMessage.id).limit(limit)
             .with_for_update(skip_locked=True, of=OutboxMessage))
    skip = list(skip_ids)
    if skip:
        query = query.where(OutboxMessage.id.not_in(skip))
    rows = session.scalars(query).all()
    for row in rows:
        row.next_try_at = lease_until
    return [Delivery(r.id, r.lead_id, r.idempotency_key, r.payload, r.failures) for r in rows]


def mark_sent(session: Session, outbox_id: int, at: datetime) -> None:
    session.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id)
                    .values(status=OutboxStatus.SENT.value, sent_at=at, last_error=None))


def mark_failed(session: Session, outbox_id: int, error: str, retry_at: datetime, max_failures: int) -> str:
    """Count a failed delivery; the outcome becomes a dead letter after max_failures. Returns the new status."""
    row = session.get(OutboxMessage, outbox_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no outbox message {outbox_id}")
    row.failures += 1
    row.last_error = error[:2000]
    row.next_try_at = retry_at
    if row.failures >= max_failures:
        row.status = OutboxStatus.DEAD.value
    return row.status


def next_due_at(session: Session, topic: Topic = Topic.OUTCOME) -> datetime | None:
    """When the next outcome that may be sent (the head of its lead's queue) is due."""
    return session.scalar(select(func.min(OutboxMessage.next_try_at))
                          .where(OutboxMessage.topic == topic.value,
                                 OutboxMessage.status == OutboxStatus.PENDING.value, ~_earlier_undelivered()))


# ---------------------------------------------------------------- what the team lead sees and does

@dataclass(frozen=True)
class DeadLetter:
    id: int
    lead_id: int | None
    attempt_id: int | None
    key: str
    failures: int
    last_error: str | None
    created_at: datetime
    holds_back: int     # later outcomes of the same lead waiting behind this one


def dead_letters(db: Database, topic: Topic = Topic.OUTCOME) -> list[DeadLetter]:
    later = aliased(OutboxMessage)
    holds_back = (select(func.count()).where(later.topic == OutboxMessage.topic,
                                             later.lead_id == OutboxMessage.lead_id, later.id > OutboxMessage.id,
                                             later.status != OutboxStatus.SENT.value)
                  .correlate(OutboxMessage).scalar_subquery())
    query = (select(OutboxMessage, holds_back)
             .where(OutboxMessage.topic == topic.value, OutboxMessage.status == OutboxStatus.DEAD.value)
             .order_by(OutboxMessage.id))
    with db.read() as session:
        return [DeadLetter(m.id, m.lead_id, m.attempt_id, m.idempotency_key, m.failures, m.last_error,
                           m.created_at, n) for m, n in session.execute(query)]


def requeue(db: Database, ids: Sequence[int] | None, now: datetime, topic: Topic = Topic.OUTCOME) -> list[int]:
    """Dead letters back to pending, due now, with a fresh failure count. ids=None: every dead letter."""
    with db.write() as session:
        query = select(OutboxMessage.id, OutboxMessage.status).where(OutboxMessage.topic == topic.value)
        if ids is None:
            query = query.where(OutboxMessage.status == OutboxStatus.DEAD.value)
        else:
            query = query.where(OutboxMessage.id.in_(list(ids)))
        found = dict(session.execute(query).tuples().all())
        if ids is not None:
            missing = sorted(set(ids) - set(found))
            if missing:
                raise NotFound("no outcome with id " + ", ".join(map(str, missing)))
            not_dead = sorted(i for i, status in found.items() if status != OutboxStatus.DEAD.value)
            if not_dead:
                raise UsageError("not a dead letter (already sent or still being retried): "
                                 + ", ".join(f"{i} ({found[i]})" for i in not_dead))
        chosen = sorted(found)
        if chosen:
            session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(chosen))
                            .values(status=OutboxStatus.PENDING.value, failures=0, next_try_at=now))
    log.info("outbox.requeued count=%d ids=%s", len(chosen), chosen[:20])
    return chosen


def outbox_counts(db: Database, now: datetime) -> dict[str, Any]:
    """How the delivery stands: pending (and how many due now), sent, dead, the oldest undelivered."""
    with db.read() as session:
        by_status = dict(session.execute(
            select(OutboxMessage.status, func.count()).where(OutboxMessage.topic == Topic.OUTCOME.value)
            .group_by(OutboxMessage.status)).tuples().all())
        due = session.scalar(select(func.count()).where(
            OutboxMessage.topic == Topic.OUTCOME.value, OutboxMessage.status == OutboxStatus.PENDING.value,
            OutboxMessage.next_try_at <= now))
        oldest = session.scalar(select(func.min(OutboxMessage.created_at)).where(and_(
            OutboxMessage.topic == Topic.OUTCOME.value, OutboxMessage.status != OutboxStatus.SENT.value)))
    return {"pending": by_status.get(OutboxStatus.PENDING.value, 0), "due_now": due or 0,
            "sent": by_status.get(OutboxStatus.SENT.value, 0), "dead": by_status.get(OutboxStatus.DEAD.value, 0),
            "oldest_undelivered_at": oldest}


def outcome_of_attempt(session: Session, attempt_id: int) -> OutboxMessage | None:
    return session.scalar(select(OutboxMessage).where(OutboxMessage.attempt_id == attempt_id,
                                                      OutboxMessage.topic == Topic.OUTCOME.value))


def disposition_of_attempt(session: Session, attempt_id: int) -> Disposition | None:
    return session.scalar(select(Disposition).where(Disposition.attempt_id == attempt_id))

