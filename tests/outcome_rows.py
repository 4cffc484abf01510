"""Rows the outcome tests start from: leads, operators and attempts written directly, the way the daemon
leaves them (the daemon itself is tested elsewhere)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from dialer.crm.outbox import enqueue_outcome
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead, Operator
from leads.attempt import AttemptState, CallResult

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Call:
    lead_id: int
    attempt_id: int
    operator_id: int | None


def add_operator(db: Database, now: datetime, name: str = "Ольга Смирнова") -> int:
    with db.write() as session:
        n = next(_numbers)
        operator = Operator(name=name, interface=f"PJSIP/op{n}-{id(db)}", skills=[], created_at=now,
                            state="wrapup")
        session.add(operator)
        session.flush()
        return operator.id


def add_lead(db: Database, now: datetime, phone: str = "+79123456789", *, status: str = "retry",
             timezone: str | None = None, name: str = "Иван Петров", order_number: str | None = "A-1001",
             attempts: int = 1) -> int:
    with db.write() as session:
        lead = Lead(received_at=now - timedelta(minutes=5), source="webhook", phone_raw=phone, phone_e164=phone,
                    name=name, order_number=order_number, product="Чайник", timezone=timezone, status=status,
                    attempts_count=attempts, contacts_count=0, last_attempt_at=now)
        session.add(lead)
        session.flush()
        return lead.id


def add_attempt(db: Database, lead_id: int, now: datetime, *, operator_id: int | None = None,
                result: str = CallResult.CONNECTED.value, state: str = AttemptState.ENDED.value,
                attempt_no: int = 1, talk: timedelta = timedelta(minutes=3),
                wrapup_until: datetime | None = None) -> int:
    """An attempt that ended at `now`; connected ones were talked for `talk` with operator_id."""
    connected = result == CallResult.CONNECTED.value
    with db.write() as session:
        attempt = CallAttempt(lead_id=lead_id, attempt_no=attempt_no, daemon_id="test", pbx="pbx1", state=state,
                              result=result, claimed_at=now - talk - timedelta(seconds=30),
                              originated_at=now - talk - timedelta(seconds=25),
                              answered_at=now - talk - timedelta(seconds=5) if connected else None,
                              connected_at=now - talk if connected else None,
                              ended_at=now if state == AttemptState.ENDED.value else None,
                              operator_id=operator_id if connected else None,
                              recording_ref=f"rec/{lead_id}-{attempt_no}.wav" if connected else None,
                              wrapup_until=wrapup_until)
        session.add(attempt)
        session.flush()
        return attempt.id


def connected_call(db: Database, now: datetime, phone: str = "+79123456789", *, timezone: str | None = None,
                   operator_id: int | None = None, **attempt_options) -> Call:
    operator_id = operator_id or add_operator(db, now)
    lead_id = add_lead(db, now, phone, timezone=timezone)
    return Call(lead_id, add_attempt(db, lead_id, now, operator_id=operator_id, **attempt_options), operator_id)


def unanswered_outcome(db: Database, lead_id: int, attempt_no: int, now, result=CallResult.NO_ANSWER) -> int:
    """An attempt that ended without a conversation, and its outcome, written together (as the daemon does)."""
    attempt_id = add_attempt(db, lead_id, now, result=result.value, attempt_no=attempt_no)
    with db.write() as session:
        attempt = session.get(CallAttempt, attempt_id)
        lead = session.get(Lead, lead_id)
        lead.attempts_count = attempt_no
        return enqueue_outcome(session, attempt, lead, None, now).id
