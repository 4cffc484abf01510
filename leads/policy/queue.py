"""Read-only views of the policy's decisions: the dial queue, one lead's verdict, leads at SLA risk.

They use the same candidate queries, rules and order as the claim (without locking or leasing), so
`dialer queue` shows what the daemon would dial, in that order, at the given time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import Lead
from kernel.errors import NotFound
from leads.lead import LeadStatus
from leads.phone import mask_phone
from leads.policy.candidates import bucket_leads, buckets, lease_free, on_dnc, read_leads
from leads.policy.results import zone
from leads.policy.selector import order_dialable
from leads.policy.sla import SlaState, state_against
from leads.policy.store import current_policy
from leads.policy.tiers import first_call_deadline
from leads.policy.values import Policy
from leads.policy.why import Verdict, dialable_from, evaluate
from leads.policy.zones import lead_zones

VIEW_MAX_SCAN = 5000   # candidates per bucket the views look at


@dataclass(frozen=True)
class QueueEntry:
    position: int
    lead_id: int
    tier: str
    rank: str
    deadline: datetime | None
    sla: str | None
    attempts: int
    phone: str
    name: str | None
    product: str | None
    zone: str

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _zone_words(verdict: Verdict) -> str:
    zones = verdict.zones
    if not zones.names:
        return f"center ({zones.source_words})"
    if len(zones.names) == 1:
        return f"{zones.names[0]} ({zones.source_words})"
    return f"{len(zones.names)} zones ({zones.source_words})"


def dial_queue(db: Database, now: datetime, *, center_zone: str, limit: int = 50) -> list[QueueEntry]:
    """The dialable leads at `now`, in the order the claim would take them (at most `limit`)."""
    require_aware(now)
    center = zone(center_zone)
    ordered: list[Verdict] = []
    with db.read() as session:
        policy = current_policy(session)
        for bucket in buckets(policy, center, db.engine.dialect.name):
            leads = bucket_leads(session, bucket, now, VIEW_MAX_SCAN)
            ordered += [v for v in order_dialable(leads, now, policy, center) if v.rank == bucket.rank]
            if len(ordered) >= limit:
                break
    return [QueueEntry(n, v.lead.id, v.tier.value, v.rank_label, v.deadline, v.sla.value if v.sla else None,
                       v.lead.attempts_count, mask_phone(v.lead.phone_e164), v.lead.name, v.lead.product,
                       _zone_words(v))
            for n, v in enumerate(ordered[:limit], start=1)]


@dataclass(frozen=True)
class Explanation:
    verdict: Verdict
    dialable_from: datetime | None   # when it becomes dialable by itself (None: someone must act first)
    policy_version: int


def explain_lead(db: Database, lead_id: int, now: datetime, *, center_zone: str) -> Explanation:
    """Is the lead dialable at `now`, and every rule that blocks it."""
    require_aware(now)
    center = zone(center_zone)
    with db.read() as session:
        policy = current_policy(session)
        found = read_leads(session, [Lead.__table__.c.id == lead_id])
    if not found:
        raise NotFound(f"no lead with id {lead_id}")
    verdict = evaluate(found[0], now, policy, center)
    start = now if verdict.dialable else dialable_from(found[0], now, policy, center)
    return Explanation(verdict, start, policy.version)


@dataclass(frozen=True)
class SlaRisk:
    lead_id: int
    received_at: datetime
    deadline: datetime
    state: SlaState
    sla_alerted_at: datetime | None


def leads_at_risk(session: Session, now: datetime, *, center_zone: str, policy: Policy | None = None,
                  include_alerted: bool = True) -> list[SlaRisk]:
    """Leads not yet dialed whose first-call deadline is near (at risk) or past (breached), soonest first.

    Leads being dialed right now (leased) and numbers on the do-not-call list are left out.
    """
    require_aware(now)
    policy = policy or current_policy(session)
    center = zone(center_zone)
    t = Lead.__table__.c
    # The deadline is at least received_at + first_call_minutes, so older leads only can be at risk.
    oldest_possible = now - policy.first_call_delay + policy.sla_warning
    where = [t.status == LeadStatus.NEW.value, t.attempts_count == 0, t.received_at <= oldest_possible,
             lease_free(now), ~on_dnc()]
    if not include_alerted:
        where.append(t.sla_alerted_at.is_(None))
    rows = session.execute(select(t.id, t.received_at, t.timezone, t.region, t.phone_e164, t.sla_alerted_at)
                           .where(*where).order_by(t.received_at, t.id)).all()
    risks = []
    for row in rows:
        zones = lead_zones(row.timezone, row.phone_e164, policy.unknown_zone_rule, row.region).zones
        due = first_call_deadline(row.received_at, policy, center, zones)
        if due is None:
            continue
        state = state_against(due, now, policy.sla_warning)
        if state is not SlaState.OK:
            risks.append(SlaRisk(row.id, row.received_at, due, state, row.sla_alerted_at))
    return sorted(risks, key=lambda r: (r.deadline, r.lead_id))


def mark_sla_alerted(session: Session, lead_ids: Sequence[int], at: datetime) -> int:
    """Remember that the team lead was alerted about these leads (so the alert goes out once)."""
    require_aware(at)
    if not lead_ids:
        return 0
    t = Lead.__table__.c
    result = session.execute(update(Lead.__table__).where(t.id.in_(list(lead_ids)), t.sla_alerted_at.is_(None))
                             .values(sla_alerted_at=at))
    return result.rowcount or 0
