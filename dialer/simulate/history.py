"""`--from-db --from/--to`: a store's own leads of a period as the simulated day's arrivals.

Each lead is handed to the simulated intake again as it arrived (its raw phone, as typed, and its
fields, at its received_at), so normalization, dedup and fakes are decided again by the same code.
Only the leads are read; their calls are not (they are what the simulation replays).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dialer.simulate.inputs import Arrival
from kernel.db.engine import Database
from kernel.db.models import Lead
from kernel.errors import UsageError
from leads.intake import LeadIn


def arrivals_of_store(db: Database, first: date, last: date, zone: ZoneInfo) -> list[Arrival]:
    """Leads received from 22:00 the evening before `first` to 22:00 of `last` (center time), in order."""
    if last < first:
        raise UsageError(f"--from {first} --to {last}: the period ends before it starts")
    start = datetime.combine(first, time(22), zone) - timedelta(days=1)
    end = datetime.combine(last, time(22), zone)
    with db.read() as session:
        rows = session.execute(select(Lead.received_at, Lead.phone_raw, Lead.name, Lead.order_number, Lead.product,
                                      Lead.comment, Lead.preferred_time, Lead.timezone, Lead.region, Lead.source)
                               .where(Lead.received_at >= start, Lead.received_at < end)
                               .order_by(Lead.received_at, Lead.id)).all()
    if not rows:
        raise UsageError(f"--from-db: the store has no lead received from {start:%Y-%m-%d %H:%M} to "
                         f"{end:%Y-%m-%d %H:%M} ({zone.key})")
    return [Arrival(_aware(r.received_at), LeadIn(phone=r.phone_raw, name=r.name, order_number=r.order_number,
                                                   product=r.product, comment=r.comment,
                                                   preferred_time=r.preferred_time, timezone=r.timezone,
                                                   region=r.region, source=r.source or "api"))
            for r in rows]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
