"""The store side of a call attempt's life: what the tracker learned, written down.

Every transition is one row in attempt_events (`from -> event -> to`, at the event's time) and the
matching timestamp column on call_attempts. The end of an attempt is recorded in ONE transaction:
the attempt's result (leads.policy.results: the lead's retry / close rule), and the outcome for the
CRM in the outbox (dialer.crm.outbox), so a crash can never keep one without the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dialer.calls.tracker import AttemptUpdate, KnownFacts
from dialer.crm.outbox import enqueue_outcome
from dialer.recordings.files import recording_ref
from kernel.db.engine import Database
from kernel.db.models import AttemptEvent, CallAttempt, Disposition, Lead, Operator
from leads.attempt import AttemptState, CallResult
from leads.caller_id import choose_caller_id, number_of, with_number
from leads.policy.results import record_attempt_result

log = logging.getLogger("dialer.attempts")

# The column stamped when an attempt reaches each state.
STATE_TIMESTAMP = {
    AttemptState.ORIGINATED: "originated_at",
    AttemptState.RINGING: "ringing_at",
    AttemptState.ANSWERED: "answered_at",
    AttemptState.CONNECTED: "connected_at",
    AttemptState.ENDED: "ended_at",
}
_FIELDS = ("uniqueid", "channel", "operator_interface", "originate_reason", "hangup_cause", "hangup_cause_txt",
           "tech_cause", "dial_status")


@dataclass(frozen=True)
class EndedAttempt:
    attempt_id: int
    lead_id: int
    result: str
    operator_interface: str | None
    connected: bool


@dataclass(frozen=True)
class OpenAttempt:
    """An attempt the store believes is still in progress (for reconciliation on start)."""

    attempt_id: int
    lead_id: int
    state: AttemptState
    action_id: str | None
    channel_id: str | None
    claimed_at: datetime
    facts: KnownFacts | None = None   # what was learned and stored as it happened: a restart resumes from it


def mark_dialing(db: Database, attempt_id: int, *, action_id: str, channel_id: str, channel: str,
                 number: str, caller_ids: Mapping[str, Sequence[str]] | None = None,
                 default_caller_id: str = "") -> str:
    """Before the Originate goes out: the ids every later event will be tied to, and the caller ID it
    shows (from the pool of the lead's source/product, else the default). Returns the CallerID to send."""
    with db.write() as session:
        caller_id, shown = default_caller_id, number_of(default_caller_id)
        if caller_ids:
            lead = session.execute(select(Lead.source, Lead.product, Lead.phone_e164).join(
                CallAttempt, CallAttempt.lead_id == Lead.id).where(CallAttempt.id == attempt_id)).first()
            chosen = choose_caller_id(caller_ids, *lead) if lead is not None else None
            if chosen:
                caller_id, shown = with_number(default_caller_id, chosen), chosen
        session.execute(update(CallAttempt).where(CallAttempt.id == attempt_id).values(
            action_id=action_id, channel_id=channel_id, channel=channel, dialed_number=number,
            caller_id=shown or None))
    return caller_id


def store_updates(db: Database, updates: Sequence[AttemptUpdate], *, center_zone: str,
                  wrapup_limit_seconds: float, now: datetime) -> list[EndedAttempt]:
    """Write the tracker's updates in order, in one transaction; returns the attempts that ended."""
    if not updates:
        return []
    ended: list[EndedAttempt] = []
    with db.write() as session:
        operators = _operator_ids(session, {u.fields.get("operator_interface") for u in updates} - {None})
        for item in updates:
            done = _store_one(session, item, operators, center_zone=center_zone,
                              wrapup=timedelta(seconds=wrapup_limit_seconds), now=now)
            if done is not None:
                ended.append(done)
    return ended


def _store_one(session: Session, item: AttemptUpdate, operators: dict[str, int], *, center_zone: str,
               wrapup: timedelta, now: datetime) -> EndedAttempt | None:
    attempt = session.get(CallAttempt, item.attempt_id)
    if attempt is None:
        log.warning("attempt.unknown attempt_id=%s event=%s", item.attempt_id, item.event)
        return None
    if attempt.state == AttemptState.ENDED.value:
        return None   # already settled (e.g. by reconciliation after a restart): the first result stands
    session.add(AttemptEvent(attempt_id=attempt.id, at=item.at, event=item.event[:64],
                             from_state=item.from_state.value if item.from_state else attempt.state,
                             to_state=item.state.value,
                             detail={k: v for k, v in {**dict(item.fields), "detail": item.detail}.items()
                                     if v is not None} or None))
    for name in _FIELDS:
        value = item.fields.get(name)
        if value is not None:
            setattr(attempt, name, str(value) if name == "tech_cause" else value)
    interface = item.fields.get("operator_interface")
    if interface and interface in operators:
        attempt.operator_id = operators[interface]
    column = STATE_TIMESTAMP.get(item.state)
    if column and getattr(attempt, column) is None:
        setattr(attempt, column, item.at)
    if item.state is not AttemptState.ENDED:
        if item.state.rank > AttemptState(attempt.state).rank:
            attempt.state = item.state.value
        return None

    result = item.result or CallResult.UNKNOWN
    if attempt.connected_at is not None and result is not CallResult.CONNECTED:
        # faults (issue 11): an operator talked to this customer (stored when it happened); whatever
        # a later, blinder source says, this was a contact and is never re-dialed as unanswered
        log.warning("attempt.connection_kept attempt_id=%s reported=%s", attempt.id, result.value)
        result = CallResult.CONNECTED
    session.flush()
    recorded = record_attempt_result(session, attempt.id, result, item.at, center_zone=center_zone)
    session.refresh(attempt)
    lead = session.get(Lead, attempt.lead_id)
    connected = result is CallResult.CONNECTED
    if connected:
        attempt.wrapup_until = item.at + wrapup
        # recordings (issue 14): MixMonitor(<ATTEMPT_ID>.wav,b) records only while bridged to an operator
        attempt.recording_ref = attempt.recording_ref or recording_ref(attempt.id)
    enqueue_outcome(session, attempt, lead, None, now)
    log.info("attempt.ended attempt_id=%s lead_id=%s result=%s lead_status=%s next_attempt_at=%s",
             attempt.id, attempt.lead_id, recorded.result, recorded.lead_status, recorded.next_attempt_at)
    return EndedAttempt(attempt.id, attempt.lead_id, recorded.result, attempt.operator_interface, connected)


def _operator_ids(session: Session, interfaces: Iterable[str]) -> dict[str, int]:
    interfaces = list(interfaces)
    if not interfaces:
        return {}
    rows = session.execute(select(Operator.interface, Operator.id).where(Operator.interface.in_(interfaces)))
    return {row.interface: row.id for row in rows}


def open_attempts(db: Database, pbx: str, daemon_id: str | None = None) -> list[OpenAttempt]:
    """Attempts on this Asterisk (of this daemon, if given) that the store thinks are still in progress."""
    query = select(CallAttempt).where(CallAttempt.pbx == pbx, CallAttempt.state != AttemptState.ENDED.value)
    if daemon_id is not None:
        query = query.where(CallAttempt.daemon_id == daemon_id)
    with db.read() as session:
        rows = session.execute(query.order_by(CallAttempt.id)).scalars()
        return [OpenAttempt(a.id, a.lead_id, AttemptState(a.state), a.action_id, a.channel_id, a.claimed_at,
                            KnownFacts(answered=a.answered_at is not None, connected=a.connected_at is not None,
                                        operator_interface=a.operator_interface, uniqueid=a.uniqueid,
                                        hangup_cause=a.hangup_cause))
                for a in rows]


def take_over(db: Database, attempts: Sequence[OpenAttempt], daemon_id: str, lease_until: datetime) -> None:
    """A restarted daemon adopts the calls its predecessor left in progress (and their leases)."""
    if not attempts:
        return
    ids = [a.attempt_id for a in attempts]
    with db.write() as session:
        session.execute(update(CallAttempt).where(CallAttempt.id.in_(ids)).values(daemon_id=daemon_id))
        session.execute(update(Lead).where(Lead.id.in_([a.lead_id for a in attempts]))
                        .values(lease_owner=daemon_id, lease_expires_at=lease_until))


def end_undialed(db: Database, attempts: Sequence[OpenAttempt], *, at: datetime, center_zone: str) -> int:
    """Claims that never reached Asterisk (no Originate was sent) end as cancelled: nothing was dialed."""
    count = 0
    with db.write() as session:
        for attempt in attempts:
            record_attempt_result(session, attempt.attempt_id, CallResult.CANCELLED, at, center_zone=center_zone)
            count += 1
    return count


def finished_wrapups(db: Database, attempt_ids: Sequence[int], now: datetime) -> set[int]:
    """Of these connected attempts, those whose operator is done: disposition recorded or time up."""
    if not attempt_ids:
        return set()
    with db.read() as session:
        disposed = set(session.scalars(select(Disposition.attempt_id)
                                       .where(Disposition.attempt_id.in_(list(attempt_ids)))))
        expired = set(session.scalars(select(CallAttempt.id).where(CallAttempt.id.in_(list(attempt_ids)),
                                                                   CallAttempt.wrapup_until <= now)))
    return disposed | expired
