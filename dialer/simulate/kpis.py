"""The day's KPIs from what the store holds at its end (pure, over day.DayRecord).

Definitions (docs/simulate.md says the same):
- callable leads: leads the intake stored as new (not duplicate, invalid, fake or on the DNC list);
- first_call_met_pct: callable leads first dialed by their first-call deadline (15 minutes from arrival,
  counted from the end of quiet hours for a lead that arrived in them: the product's own deadline) /
  callable leads due today (those that could be dialed before the day's end; a lead whose quiet hours
  last past the end is carried to tomorrow, not counted); a lead never dialed has missed it.
  sla_breaches: the callable leads due today that missed it;
- first_dial_p50_s / p90_s: seconds from the moment the lead could first be dialed (its arrival, or the
  end of quiet hours) to its first dial, over the callable leads dialed (nearest rank, as `dialer report`);
- first_dial_15min_pct: `dialer report`'s own figure: leads first dialed within 15 minutes of ARRIVAL /
  leads dialed (night leads count as late there);
- contact_rate_pct: callable leads with a conversation (a call that reached an operator) / callable leads;
- confirmed_pct: callable leads closed as a confirmed order / callable leads;
- confirmed_pct: callable leads closed as a confirmed order (the operator's disposition) / callable leads;
- attempts_per_contact: calls / conversations; abandoned_pct: abandoned / answered calls;
- talk_min_per_operator_hour: talk minutes (operator took the call -> its end) / staffed operator-hours;
  contacts_per_operator_hour: conversations / staffed operator-hours;
- talk_min_per_queued_operator_hour: the same over the hours with a queue only (clock hours in which, at
  the middle of every 5 minutes, a due lead had been waiting for its first dial for over 2 minutes and was dialed later
  that day: a lead never dialed may be asleep in its zone, which is no queue): the pacing's own efficiency, which the
  whole day's figure dilutes with the hours when there is nothing to dial (a lead waiting a moment, e.g.
  for the hopper's next refill, is no queue: it must have waited over QUEUED_AFTER); queued_hours: how many;
- undialed_at_end: callable leads never dialed when the day ends (carried_to_tomorrow of them could
  not be dialed before the end at all: quiet hours in their zone).
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo

from dialer.simulate.day import DayRecord
from leads.attempt import CallResult
from leads.lead import CloseReason, LeadStatus


QUEUED_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class DayKpis:
    strategy: str
    pacing: str
    leads: int
    callable_leads: int
    due_today: int
    first_call_met_pct: float | None
    sla_breaches: int
    first_dial_p50_s: float | None
    first_dial_p90_s: float | None
    first_dial_15min_pct: float | None
    contact_rate_pct: float | None
    confirmed_pct: float | None
    calls: int
    answered: int
    conversations: int
    attempts_per_contact: float | None
    abandoned: int
    abandoned_pct: float | None
    talk_min: float
    operator_hours: float
    talk_min_per_operator_hour: float | None
    contacts_per_operator_hour: float | None
    queued_hours: int
    talk_min_per_queued_operator_hour: float | None
    undialed_at_end: int
    carried_to_tomorrow: int
    dial_ratio_max: float
    wall_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS: tuple[tuple[str, str], ...] = (
    ("first_call_met_pct", "first dial by deadline %"), ("sla_breaches", "SLA breaches"),
    ("first_dial_p50_s", "first dial p50 s"), ("first_dial_p90_s", "first dial p90 s"),
    ("first_dial_15min_pct", "15 min from arrival %"), ("contact_rate_pct", "contact rate %"),
    ("confirmed_pct", "confirmed %"), ("attempts_per_contact", "attempts / contact"), ("abandoned_pct", "abandoned %"),
    ("talk_min_per_operator_hour", "talk min / op-hour"), ("contacts_per_operator_hour", "contacts / op-hour"),
    ("talk_min_per_queued_operator_hour", "talk min / op-hour, queued"), ("queued_hours", "hours with a queue"),
    ("undialed_at_end", "undialed at end"), ("calls", "calls"), ("callable_leads", "callable leads"),
    ("wall_seconds", "wall s"),
)


def day_kpis(record: DayRecord) -> DayKpis:
    callable_leads = [lead for lead in record.leads if lead.intake_status == LeadStatus.NEW.value]
    due_today = [lead for lead in callable_leads if lead.due_from is not None and lead.due_from < record.day_end]
    limit = record.first_call_minutes * 60
    waits, met = [], 0
    for lead in due_today:
        if lead.first_dialed_at is None:
            continue
        wait = max(0.0, (lead.first_dialed_at - (lead.due_from or lead.received_at)).total_seconds())
        waits.append(wait)
        met += wait <= limit
    from_arrival = [(lead.first_dialed_at - lead.received_at).total_seconds()
                    for lead in record.leads if lead.first_dialed_at is not None]
    calls = [a for a in record.attempts if a.ended_at is not None]
    answered = [a for a in calls if a.answered_at is not None or a.connected_at is not None]
    connected = [a for a in calls if a.connected_at is not None or a.result == CallResult.CONNECTED.value]
    abandoned = sum(1 for a in calls if a.result == CallResult.ABANDONED.value)
    talk = sum(max(0.0, (a.ended_at - a.connected_at).total_seconds()) for a in connected if a.connected_at)
    contacted = {a.lead_id for a in connected}
    hours = record.operator_hours
    undialed = sum(1 for lead in callable_leads if lead.first_dialed_at is None)
    return DayKpis(
        strategy=record.strategy, pacing=record.pacing, leads=len(record.leads), callable_leads=len(callable_leads),
        due_today=len(due_today), first_call_met_pct=_pct(met, len(due_today)), sla_breaches=len(due_today) - met,
        first_dial_p50_s=_round(nearest_rank(waits, 0.5)), first_dial_p90_s=_round(nearest_rank(waits, 0.9)),
        first_dial_15min_pct=_pct(sum(1 for w in from_arrival if w <= 15 * 60), len(from_arrival)),
        contact_rate_pct=_pct(sum(1 for lead in callable_leads if lead.id in contacted), len(callable_leads)),
        confirmed_pct=_pct(sum(1 for lead in callable_leads if lead.close_reason == CloseReason.CONFIRMED.value),
                           len(callable_leads)),
        calls=len(calls), answered=len(answered), conversations=len(connected),
        attempts_per_contact=_round(len(calls) / len(connected), 2) if connected else None,
        abandoned=abandoned, abandoned_pct=_pct(abandoned, len(answered)),
        talk_min=round(talk / 60, 1), operator_hours=round(hours, 2),
        talk_min_per_operator_hour=round(talk / 60 / hours, 1) if hours else None,
        contacts_per_operator_hour=round(len(connected) / hours, 2) if hours else None,
        **_queued(record, due_today, connected),
        undialed_at_end=undialed, carried_to_tomorrow=len(callable_leads) - len(due_today), dial_ratio_max=round(record.dial_ratio_max, 2),
        wall_seconds=round(record.wall_seconds, 2))


def _queued(record: DayRecord, due: list, connected: list) -> dict:
    """Talk per operator-hour over the clock hours with a queue at every 5-minute mark (see the module doc)."""
    if record.staffing is None:
        return {"queued_hours": 0, "talk_min_per_queued_operator_hour": None}
    zone = ZoneInfo(record.center_zone)
    last = record.day_end.astimezone(zone).date()
    waits = _Waits(due)
    talk, operator_hours, queued = 0.0, 0.0, 0
    for day, hour in ((last - timedelta(days=k), h) for k in range(record.days) for h in range(24)):
        start = datetime.combine(day, time(hour), zone)
        end = start + timedelta(hours=1)
        on_duty = record.staffing.on_duty(start + timedelta(minutes=30), zone)
        if on_duty == 0 or end > record.day_end:
            continue
        marks = [start + timedelta(minutes=m + 2.5) for m in range(0, 60, 5)]   # the middle of each 5 minutes
        if not all(_waited_at(waits, mark) for mark in marks):
            continue
        queued += 1
        operator_hours += on_duty
        talk += sum(max(0.0, (min(a.ended_at, end) - max(a.connected_at, start)).total_seconds())
                    for a in connected if a.connected_at and a.connected_at < end and a.ended_at > start)
    return {"queued_hours": queued,
            "talk_min_per_queued_operator_hour": round(talk / 60 / operator_hours, 1) if operator_hours else None}


class _Waits:
    """Leads dialed that day by the moment they became due, with the latest first dial so far."""

    def __init__(self, due: list) -> None:
        dialed = sorted((lead.due_from, lead.first_dialed_at) for lead in due if lead.first_dialed_at is not None)
        self.due = [d for d, _ in dialed]
        self.latest = list(itertools.accumulate((f for _, f in dialed), max))


def _waited_at(waits: _Waits, mark: datetime) -> bool:
    """A lead due by mark - QUEUED_AFTER was still not dialed at mark."""
    i = bisect.bisect_right(waits.due, mark - QUEUED_AFTER)
    return i > 0 and waits.latest[i - 1] > mark


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The smallest value whose rank reaches q of the values (the report's percentiles)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
