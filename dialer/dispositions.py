"""Recording an operator's disposition: checks, the lead's new state, DNC, and the outcome for the CRM,
all in one transaction. Also the wrap-up timeout that gives a silent operator's call `no_decision`.

The rules (what each kind does) live in leads/disposition.py; this module applies them to the store.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from dialer.crm.outbox import disposition_of_attempt, enqueue_outcome, outcome_of_attempt
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Disposition, Lead, Operator
from kernel.errors import NotFound
from kernel.settings import DialSettings
from leads.attempt import AttemptState, CallResult, DispositionKind
from leads.disposition import (AlreadyDisposed, DispositionInput, DispositionRefused, NotYourAttempt,
                               ValidDisposition, lead_change, validate, was_connected)
from leads.contact import switch_to_email
from leads.dnc import add_to_dnc
from leads.lead import CloseReason, LeadStatus
from leads.phone import mask_phone
from leads.policy.store import current_policy

log = logging.getLogger("dialer.dispositions")

WRAPUP_TIMEOUT = "wrapup-timeout"
DEFAULT_WRAPUP_LIMIT_SECONDS: float = DialSettings.wrapup_limit_seconds   # the setting's default
OPEN_STATUSES = (LeadStatus.NEW.value, LeadStatus.RETRY.value, LeadStatus.CALLBACK.value)


@dataclass(frozen=True)
class DispositionRecord:
    id: int
    attempt_id: int
    lead_id: int
    operator_id: int | None
    kind: str
    amount: Decimal | None
    currency: str | None
    callback_at: datetime | None
    comment: str | None
    custom_fields: dict[str, Any] | None
    recorded_by: str
    created_at: datetime
    lead_status: str
    close_reason: str | None
    outcome_id: int | None          # the outbox row going to the CRM
    other_leads_closed: int = 0     # do_not_call: other open leads with the same number

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_disposition(db: Database, attempt_id: int, given: DispositionInput, *, now: datetime,
                       center_zone: str, recorded_by: str, operator_id: int | None = None,
                       topics: Sequence[str] | None = None) -> DispositionRecord:
    """Record what came of a connected call. operator_id given: the call must be that operator's.

    Refused with DispositionRefused (a UsageError: nothing changed) for an unknown kind, a bad amount,
    a callback time in the past or in quiet hours, a call that never reached an operator, a second
    disposition; NotFound for an unknown attempt.
    """
    require_aware(now)
    with db.write() as session:
        attempt = session.get(CallAttempt, attempt_id, with_for_update=True)
        if attempt is None:
            raise NotFound(f"no call attempt with id {attempt_id}")
        if not was_connected(attempt.result, attempt.connected_at):
            raise DispositionRefused(f"call attempt {attempt_id} never reached an operator (result: "
                                     f"{attempt.result or attempt.state}); a disposition is for a conversation")
        if operator_id is not None and attempt.operator_id != operator_id:
            raise NotYourAttempt(f"call attempt {attempt_id} was taken by another operator, not by operator "
                                 f"{operator_id}")
        existing = disposition_of_attempt(session, attempt_id)
        if existing is not None:
            raise AlreadyDisposed(f"call attempt {attempt_id} already has the disposition '{existing.kind}' "
                                  f"recorded by {existing.recorded_by} at {existing.created_at:%Y-%m-%d %H:%M:%S %Z}")
        lead = session.get(Lead, attempt.lead_id, with_for_update=True)
        valid = validate(given, now=now, center_zone=center_zone, lead_zone=lead.timezone,
                         policy=current_policy(session), topics=topics)
        return _apply(session, attempt, lead, valid, recorded_by, now)


def _apply(session: Session, attempt: CallAttempt, lead: Lead, valid: ValidDisposition, recorded_by: str,
           now: datetime) -> DispositionRecord:
    rule = valid.rule
    change = lead_change(valid, operator_id=attempt.operator_id, now=now)
    before = lead.status
    if lead.status == LeadStatus.CLOSED.value and change.status is not LeadStatus.CLOSED:
        # Closed while the call went on (its number went on the DNC list in another lead): stays closed.
        log.info("lead.kept_closed lead_id=%s close_reason=%s disposition=%s", lead.id, lead.close_reason,
                 valid.kind.value)
    else:
        lead.status = change.status.value
        lead.close_reason = change.close_reason.value if change.close_reason else None
        lead.closed_at = change.closed_at
        lead.callback_at = change.callback_at
        lead.callback_operator_id = change.callback_operator_id
        if change.status is LeadStatus.CLOSED:
            lead.next_attempt_at = None
        elif change.status is LeadStatus.CALLBACK:
            lead.next_attempt_at = change.callback_at
    others = 0
    if rule.adds_to_dnc and not lead.phone_e164:
        log.warning("dnc.skipped lead_id=%s attempt_id=%s: the lead has no normalized number", lead.id, attempt.id)
    if rule.adds_to_dnc and lead.phone_e164:
        reason = f"customer asked in call attempt {attempt.id}" + (f": {valid.comment}" if valid.comment else "")
        add_to_dnc(session, lead.phone_e164, reason=reason, added_by=recorded_by, now=now)
        others = _close_open_leads_with_phone(session, lead.phone_e164, except_lead=lead.id, now=now)
    if rule.switches_to_email and lead.phone_e164:   # "write, don't call" (issue 19)
        others = len(switch_to_email(session, [lead.phone_e164], [], now))
    disposition = Disposition(attempt_id=attempt.id, lead_id=lead.id, operator_id=attempt.operator_id,
                              kind=valid.kind.value, amount=valid.amount, currency=valid.currency,
                              callback_at=valid.callback_at, comment=valid.comment,
                              custom_fields=valid.custom_fields, topic=valid.topic, script_id=valid.script_id,
                              script_version=valid.script_version, recorded_by=recorded_by,
                              created_at=now)
    session.add(disposition)
    session.flush()
    outcome = enqueue_outcome(session, attempt, lead, disposition, now)
    log.info("disposition.recorded attempt_id=%s lead_id=%s kind=%s by=%s lead: %s -> %s -> %s", attempt.id,
             lead.id, valid.kind.value, recorded_by, before, valid.kind.value, lead.status)
    return DispositionRecord(disposition.id, attempt.id, lead.id, attempt.operator_id, disposition.kind,
                             disposition.amount, disposition.currency, disposition.callback_at, disposition.comment,
                             disposition.custom_fields, recorded_by, now, lead.status, lead.close_reason,
                             outcome.id if outcome is not None else None, others)


def _close_open_leads_with_phone(session: Session, phone: str, except_lead: int, now: datetime) -> int:
    leads = session.scalars(select(Lead).where(Lead.phone_e164 == phone, Lead.id != except_lead,
                                               Lead.status.in_(OPEN_STATUSES)).with_for_update()).all()
    for other in leads:
        log.info("lead.closed lead_id=%s: %s -> do_not_call -> closed (phone %s)", other.id, other.status,
                 mask_phone(phone))
        other.status = LeadStatus.CLOSED.value
        other.close_reason = CloseReason.DNC.value
        other.closed_at = now
        other.callback_at = None
        other.callback_operator_id = None
        other.next_attempt_at = None
    return len(leads)


def get_disposition(db: Database, attempt_id: int) -> DispositionRecord:
    with db.read() as session:
        found = session.execute(select(Disposition, Lead).join(Lead, Lead.id == Disposition.lead_id)
                                .where(Disposition.attempt_id == attempt_id)).first()
        if found is None:
            raise NotFound(f"call attempt {attempt_id} has no disposition")
        d, lead = found
        outcome = outcome_of_attempt(session, attempt_id)
        return DispositionRecord(d.id, d.attempt_id, d.lead_id, d.operator_id, d.kind, d.amount, d.currency,
                                 d.callback_at, d.comment, d.custom_fields, d.recorded_by, d.created_at,
                                 lead.status, lead.close_reason, outcome.id if outcome is not None else None)


def operator_name(db: Database, operator_id: int) -> str:
    with db.read() as session:
        operator = session.get(Operator, operator_id)
        if operator is None:
            raise NotFound(f"no operator with id {operator_id}")
        return operator.name


# ---------------------------------------------------------------- wrap-up timeout

def expire_wrapups(db: Database, now: datetime, wrapup_limit_seconds: float = DEFAULT_WRAPUP_LIMIT_SECONDS,
                   *, batch_size: int = 200) -> int:
    """Give `no_decision` (recorded_by "wrapup-timeout") to every connected call whose wrap-up ran out:
    wrapup_until passed, or, without one, ended_at + wrapup_limit_seconds. Returns how many.

    The daemon calls it periodically with settings.dial.wrapup_limit_seconds. Safe to run from
    several daemons at once (attempts are locked with SKIP LOCKED on PostgreSQL).
    """
    require_aware(now)
    cut = now - timedelta(seconds=wrapup_limit_seconds)
    valid = ValidDisposition(DispositionKind.NO_DECISION, None, None, None, None, None)
    total = 0
    while True:
        with db.write() as session:
            attempts = session.scalars(_expired_wrapups(now, cut, batch_size)).all()
            for attempt in attempts:
                if disposition_of_attempt(session, attempt.id) is not None:   # recorded meanwhile
                    continue
                lead = session.get(Lead, attempt.lead_id, with_for_update=True)
                _apply(session, attempt, lead, valid, WRAPUP_TIMEOUT, now)
                total += 1
        if len(attempts) < batch_size:
            return total


def _expired_wrapups(now: datetime, cut: datetime, limit: int):
    has_disposition = exists().where(Disposition.attempt_id == CallAttempt.id)
    ended = func.coalesce(CallAttempt.ended_at, CallAttempt.connected_at)
    return (select(CallAttempt)
            .where(CallAttempt.state == AttemptState.ENDED.value,
                   or_(CallAttempt.result == CallResult.CONNECTED.value, CallAttempt.connected_at.is_not(None)),
                   or_(and_(CallAttempt.wrapup_until.is_not(None), CallAttempt.wrapup_until <= now),
                       and_(CallAttempt.wrapup_until.is_(None), ended <= cut)),
                   ~has_disposition)
            .order_by(CallAttempt.id).limit(limit)
            .with_for_update(skip_locked=True, of=CallAttempt))
