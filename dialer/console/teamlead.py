"""What the team lead watches: the head of the dial queue (what will be dialed next and why), the
operators and their states, the calls in progress, and the leads at risk of missing the first-call SLA.

One read of the store (blocking: the console runs it in a worker thread) plus the live board.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from kernel.clock import require_aware
from dialer.console.switchboard import presence_state
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead, Operator
from dialer.pacing import Presence
from leads.attempt import AttemptState
from leads.phone import mask_phone
from leads.policy.queue import QueueEntry, SlaRisk, dial_queue, leads_at_risk

QUEUE_HEAD = 15
MAX_CALLS_SHOWN = 200


@dataclass(frozen=True)
class OperatorLine:
    interface: str
    name: str
    state: str
    operator_id: int | None          # None: in the Asterisk queue but not registered in the dialer
    active: bool


@dataclass(frozen=True)
class CallLine:
    attempt_id: int
    lead_id: int
    lead_name: str | None
    phone: str                       # masked
    state: str
    operator: str | None
    claimed_at: datetime
    connected_at: datetime | None
    pbx: str | None


@dataclass(frozen=True)
class RiskLine:
    risk: SlaRisk
    name: str | None
    product: str | None


@dataclass(frozen=True)
class TeamLeadView:
    at: datetime
    queue: tuple[QueueEntry, ...]
    operators: tuple[OperatorLine, ...]
    calls: tuple[CallLine, ...]
    risks: tuple[RiskLine, ...]


def load_view(db: Database, now: datetime, *, center_zone: str, presences: list[Presence],
              queue_head: int = QUEUE_HEAD) -> TeamLeadView:
    require_aware(now)
    queue = dial_queue(db, now, center_zone=center_zone, limit=queue_head)
    with db.read() as session:
        registered = session.execute(select(Operator.id, Operator.name, Operator.interface, Operator.active)
                                     .order_by(Operator.id)).all()
        calls = session.execute(
            select(CallAttempt.id, CallAttempt.lead_id, CallAttempt.state, CallAttempt.claimed_at,
                   CallAttempt.connected_at, CallAttempt.pbx, CallAttempt.operator_interface, Lead.name,
                   Lead.phone_e164, Operator.name.label("operator"))
            .join(Lead, Lead.id == CallAttempt.lead_id)
            .outerjoin(Operator, Operator.id == CallAttempt.operator_id)
            .where(CallAttempt.state != AttemptState.ENDED.value)
            .order_by(CallAttempt.claimed_at, CallAttempt.id).limit(MAX_CALLS_SHOWN)).all()
        risks = leads_at_risk(session, now, center_zone=center_zone)
        about = {row.id: row for row in session.execute(
            select(Lead.id, Lead.name, Lead.product).where(Lead.id.in_([r.lead_id for r in risks])))} if risks else {}
    return TeamLeadView(
        at=now, queue=tuple(queue), operators=operator_lines(registered, presences, now),
        calls=tuple(CallLine(c.id, c.lead_id, c.name, mask_phone(c.phone_e164), c.state,
                             c.operator or c.operator_interface, c.claimed_at, c.connected_at, c.pbx) for c in calls),
        risks=tuple(RiskLine(r, about[r.lead_id].name, about[r.lead_id].product) for r in risks))


def operator_lines(registered, presences: list[Presence], now: datetime) -> tuple[OperatorLine, ...]:
    """Registered operators with their live state, then queue members the dialer does not know."""
    by_interface = {p.interface: p for p in presences}
    lines = [OperatorLine(r.interface, r.name, presence_state(by_interface.get(r.interface), now), r.id, r.active)
             for r in registered]
    known = {r.interface for r in registered}
    lines += [OperatorLine(p.interface, p.name or p.interface, presence_state(p, now), None, True)
              for p in presences if p.interface not in known]
    return tuple(lines)

