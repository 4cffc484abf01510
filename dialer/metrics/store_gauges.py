"""Gauges read from the store at scrape time: a handful of grouped counts, no per-lead rules.

Queue state per lead, as one SQL CASE (the claim's full rules, with each customer's zone, are too
dear for a scrape): `leased` while a daemon's lease runs; else `quiet_hours` when the center is in
its quiet hours right now; else `due` when its time has come (new, retry delay over, callback time
reached), else `scheduled`. Tier follows leads.policy.tiers.tier_of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select

from kernel.db.engine import Database
from kernel.db.models import Lead, OutboxMessage
from leads.lead import DIALABLE_STATUSES, LeadStatus


@dataclass(frozen=True)
class QueueDepth:
    tier: str
    state: str
    leads: int


@dataclass(frozen=True)
class OutboxTopic:
    topic: str
    pending: int
    dead: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True)
class StoreSnapshot:
    queue: list[QueueDepth]
    outbox: list[OutboxTopic]
    exported_outcomes: int
    export_batches: int


def _tier():
    return case(
        (Lead.status == LeadStatus.NEW.value, "new"),
        (Lead.status == LeadStatus.CALLBACK.value, "callback"),
        (Lead.contacts_count > 0, "follow_up"),
        (Lead.attempts_count == 1, "second_attempt"),
        else_="redial")


def _state(now: datetime, center_quiet: bool):
    due_at = case((Lead.status == LeadStatus.CALLBACK.value, Lead.callback_at), else_=Lead.next_attempt_at)
    leased = and_(Lead.lease_expires_at.is_not(None), Lead.lease_expires_at > now)
    due = or_(due_at.is_(None), due_at <= now)
    return case((leased, "leased"), (due, "quiet_hours" if center_quiet else "due"), else_="scheduled")


def read_snapshot(db: Database, now: datetime, *, center_quiet: bool) -> StoreSnapshot:
    tier, state = _tier().label("tier"), _state(now, center_quiet).label("state")
    with db.read() as session:
        queue = [QueueDepth(t, s, n) for t, s, n in session.execute(
            select(tier, state, func.count()).where(Lead.status.in_([s.value for s in DIALABLE_STATUSES]))
            .group_by(tier, state))]
        rows = session.execute(
            select(OutboxMessage.topic, OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at))
            .where(OutboxMessage.status.in_(("pending", "dead")))
            .group_by(OutboxMessage.topic, OutboxMessage.status)).all()
        exported, batches = session.execute(
            select(func.count(OutboxMessage.export_batch), func.max(OutboxMessage.export_batch))).one()
    topics: dict[str, dict] = {}
    for topic, status, count, oldest in rows:
        entry = topics.setdefault(topic, {"pending": 0, "dead": 0, "oldest": None})
        entry[status] = count
        if status == "pending":
            entry["oldest"] = oldest
    outbox = [OutboxTopic(t, e["pending"], e["dead"], e["oldest"]) for t, e in sorted(topics.items())]
    return StoreSnapshot(queue, outbox, int(exported or 0), int(batches or 0))
