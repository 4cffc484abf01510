"""The KPIs: one written definition each, the breakdowns, the period. Pure: no database here.

The glossary below is THE definition: README.md repeats it word for word and `dialer report --help` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from kernel.clock import require_aware
from kernel.errors import UsageError

FIRST_CALL_TARGET_SECONDS = 15 * 60   # DESIGN: the first call within 15 minutes of arrival
CALLBACK_ON_TIME_SECONDS = 5 * 60     # a promised callback counts as kept when dialed within 5 minutes of it

# Lead KPIs count the leads that ARRIVED in the period; call KPIs count the calls STARTED in it.
GLOSSARY: dict[str, str] = {
    "leads": "leads received: leads that arrived in the period",
    "duplicates_pct": "duplicates %: leads found to be a duplicate (at intake, or by the operator) / leads",
    "fakes_pct": "fakes / invalid %: leads with no callable number, or closed as fake, wrong number or "
                 "invalid number / leads",
    "actual": "actual leads: leads minus duplicates minus fakes / invalid",
    "contact_rate_pct": "contact rate %: actual leads with at least one conversation (a call that reached an "
                        "operator) / actual leads",
    "attempts_to_contact": "attempts until contact: average number of the attempt that first reached an "
                           "operator, over the actual leads reached",
    "confirmed": "confirmed: actual leads with a confirmed order",
    "confirmed_pct": "confirmed %: confirmed / actual leads reached (fakes are never actual)",
    "refused": "refused: actual leads closed as not interested, do-not-call or complaint (refused_not_interested, "
               "refused_dnc, refused_complaint: each reason; `dialer report refusals`: refusals by topic)",
    "order_sum": "order sum: sum of the confirmed orders' amounts (an order of 0 counts, with amount 0)",
    "average_check": "average check: order sum / confirmed orders",
    "first_dial_p50_min": "first dial p50 / p90 / max (min): minutes from arrival to the first dial, over "
                          "the leads dialed (nearest-rank percentiles)",
    "first_dial_15min_pct": "first dial within 15 min %: leads first dialed within 15 minutes of arrival / "
                            "leads dialed",
    "first_dial_15min_allowed_pct": "first dial within 15 min of dial-allowed %: leads first dialed within 15 "
                                    "minutes of the moment quiet hours (the center's and the customer's) first "
                                    "allowed the call / leads dialed",
    "callbacks": "callbacks: promised callback times in the period that have been dialed (a promise counts "
                 "once, by its first dial)",
    "callbacks_on_time_pct": "callbacks kept on time %: promises first dialed within 5 minutes of the promised "
                             "time / (callbacks + callbacks overdue)",
    "callbacks_overdue": "callbacks overdue: promised times in the period that have passed without a dial",
    "callback_late_avg_min": "callback lateness avg / max (min): from the promised time to its first dial, over "
                             "the callbacks dialed",
    "sla_alerts": "SLA alerts: leads for which the first-call alert was raised",
    "calls": "calls: call attempts started in the period that have ended",
    "answer_rate_pct": "answer rate %: calls the customer picked up / calls",
    "abandoned_pct": "abandoned %: calls answered by the customer but dropped before an operator took them / "
                     "calls answered",
    "conversations": "conversations: calls that reached an operator",
    "talk_min": "talk time (min): from the operator taking the call to its end, summed",
    "wrapup_min": "wrap-up (min): from the call's end to the end of the operator's wrap-up, summed",
    "call_orders": "orders from calls: confirmed dispositions of these calls, and their sum (call_order_sum)",
    "worked_hours": "hours worked: time operators were in the queue and not paused (waiting, ringing, talking, "
                    "wrap-up), as the daemon saw it; in the report without a breakdown or by operator or group",
    "calls_per_hour": "calls per hour worked: calls / hours worked",
    "talk_min_per_hour": "talk minutes per operator-hour: talk time (min) / hours worked",
    "wrapup_min_per_hour": "wrap-up minutes per operator-hour: wrap-up (min) / hours worked",
    "occupancy_pct": "occupancy %: (talk time + wrap-up) / hours worked",
}

# The same rows carry both families; a family that cannot be split by a dimension stays empty there.
LEAD_DIMENSIONS = ("day", "hour", "weekday", "source", "product")
CALL_DIMENSIONS = ("day", "hour", "weekday", "source", "product", "operator", "group", "attempt", "script")
WORKED_DIMENSIONS = ("operator", "group")   # hours worked are split by these only
DIMENSIONS = tuple(dict.fromkeys(LEAD_DIMENSIONS + CALL_DIMENSIONS))
DIMENSION_HELP = ("day, hour (of day), weekday (1 = Monday), source, product: both leads (by arrival) and "
                  "calls (by start); operator, group (the operator's team at the call's time), attempt "
                  "(its number), script (the one the operator recorded the result with): calls only")


def parse_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'day,operator' -> ('day', 'operator'), refused with the list of dimensions on a typo."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    dims = tuple(dict.fromkeys(p.strip().lower() for p in parts if p.strip()))
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise UsageError(f"unknown breakdown {', '.join(unknown)}; one or more of: {', '.join(DIMENSIONS)}")
    return dims


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, and the zone whose calendar days and hours the report uses."""

    start: datetime
    end: datetime
    zone: str = "Europe/Moscow"

    def __post_init__(self) -> None:
        require_aware(self.start)
        require_aware(self.end)
        if self.end <= self.start:
            raise UsageError(f"the period is empty: {self.start.isoformat()} is not before {self.end.isoformat()}")

    @classmethod
    def days(cls, first: date, last: date, zone: str) -> "Period":
        """From `first` 00:00 to the end of `last` on the center's calendar."""
        tz = ZoneInfo(zone)
        if last < first:
            raise UsageError(f"--to {last} is before --from {first}")
        return cls(datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz),
                   zone)

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, now: datetime, zone: str) -> "Period":
        """--from/--to as dates (whole days, --to included) or times (--to excluded), in the center's zone.
        Neither: today so far; only --from: up to now."""
        tz = ZoneInfo(zone)
        today = now.astimezone(tz).date()
        begin = _moment(start, tz, "--from") if start else datetime.combine(today, time(0), tz)
        finish = _moment(end, tz, "--to", end_of_day=True) if end else now
        return cls(begin, finish, zone)


def _moment(text: str, tz: ZoneInfo, flag: str, end_of_day: bool = False) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), tz)
        moment = datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} {text!r} is not a date or time; use 2026-11-23 or 2026-11-23T10:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


@dataclass
class KpiRow:
    """One line of a report: the breakdown's key and every KPI (None: not defined for this line)."""

    key: dict[str, Any] = field(default_factory=dict)
    # leads, by arrival
    leads: int | None = None
    duplicates: int | None = None
    fakes: int | None = None
    actual: int | None = None
    contacted: int | None = None
    attempts_to_contact: float | None = None
    confirmed: int | None = None
    refused: int | None = None
    order_sum: Decimal | None = None
    dialed: int | None = None
    first_dial_p50_min: float | None = None
    first_dial_p90_min: float | None = None
    first_dial_max_min: float | None = None
    first_dial_within_15: int | None = None
    first_dial_within_15_allowed: int | None = None
    refused_not_interested: int | None = None
    refused_dnc: int | None = None
    refused_complaint: int | None = None
    callbacks: int | None = None
    callbacks_on_time: int | None = None
    callbacks_overdue: int | None = None
    callback_late_avg_min: float | None = None
    callback_late_max_min: float | None = None
    sla_alerts: int | None = None
    # calls, by start
    calls: int | None = None
    answered: int | None = None
    abandoned: int | None = None
    conversations: int | None = None
    talk_min: float | None = None
    wrapup_min: float | None = None
    call_orders: int | None = None
    call_order_sum: Decimal | None = None
    worked_hours: float | None = None

    @property
    def duplicates_pct(self) -> float | None:
        return pct(self.duplicates, self.leads)

    @property
    def fakes_pct(self) -> float | None:
        return pct(self.fakes, self.leads)

    @property
    def contact_rate_pct(self) -> float | None:
        return pct(self.contacted, self.actual)

    @property
    def confirmed_pct(self) -> float | None:
        return pct(self.confirmed, self.contacted)

    @property
    def average_check(self) -> Decimal | None:
        if not self.confirmed or self.order_sum is None:
            return None
        return (Decimal(self.order_sum) / self.confirmed).quantize(Decimal("0.01"))

    @property
    def first_dial_15min_pct(self) -> float | None:
        return pct(self.first_dial_within_15, self.dialed)

    @property
    def first_dial_15min_allowed_pct(self) -> float | None:
        return pct(self.first_dial_within_15_allowed, self.dialed)

    @property
    def callbacks_on_time_pct(self) -> float | None:
        if self.callbacks is None:
            return None
        return pct(self.callbacks_on_time, self.callbacks + (self.callbacks_overdue or 0))

    @property
    def calls_per_hour(self) -> float | None:
        return _per_hour(self.calls, self.worked_hours)

    @property
    def talk_min_per_hour(self) -> float | None:
        return _per_hour(self.talk_min, self.worked_hours)

    @property
    def wrapup_min_per_hour(self) -> float | None:
        return _per_hour(self.wrapup_min, self.worked_hours)

    @property
    def occupancy_pct(self) -> float | None:
        if not self.worked_hours or self.talk_min is None:
            return None
        return round(100.0 * (self.talk_min + (self.wrapup_min or 0.0)) / (self.worked_hours * 60.0), 1)

    @property
    def answer_rate_pct(self) -> float | None:
        return pct(self.answered, self.calls)

    @property
    def abandoned_pct(self) -> float | None:
        return pct(self.abandoned, self.answered)

    def as_dict(self) -> dict[str, Any]:
        """Key columns first, then the counts and the rates, in the glossary's order."""
        out: dict[str, Any] = dict(self.key)
        for name in COLUMNS:
            out[name] = getattr(self, name)
        return out


COLUMNS = ("leads", "duplicates", "duplicates_pct", "fakes", "fakes_pct", "actual", "contacted",
           "contact_rate_pct", "attempts_to_contact", "confirmed", "confirmed_pct", "refused",
           "refused_not_interested", "refused_dnc", "refused_complaint", "order_sum",
           "average_check", "dialed", "first_dial_p50_min", "first_dial_p90_min", "first_dial_max_min",
           "first_dial_within_15", "first_dial_15min_pct", "first_dial_within_15_allowed",
           "first_dial_15min_allowed_pct", "callbacks", "callbacks_on_time", "callbacks_overdue",
           "callbacks_on_time_pct", "callback_late_avg_min", "callback_late_max_min", "sla_alerts",
           "calls", "answered", "answer_rate_pct",
           "abandoned", "abandoned_pct", "conversations", "talk_min", "wrapup_min", "call_orders",
           "call_order_sum", "worked_hours", "calls_per_hour", "talk_min_per_hour", "wrapup_min_per_hour",
           "occupancy_pct")
LEAD_COLUMNS = COLUMNS[:COLUMNS.index("calls")]
CALL_COLUMNS = COLUMNS[COLUMNS.index("calls"):]
assert {f.name for f in fields(KpiRow)} - {"key"} <= set(COLUMNS)


def _per_hour(amount: float | int | None, hours: float | None) -> float | None:
    if amount is None or not hours:
        return None
    return round(amount / hours, 2)


def pct(part: int | None, whole: int | None) -> float | None:
    """A share in percent, one decimal; None when there is nothing to divide by."""
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 1)


@dataclass(frozen=True)
class RefusalRow:
    """Refusals of one kind and topic (the reason the operator chose; None: no topic given)."""

    kind: str
    topic: str | None
    refusals: int
    share_pct: float

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ResultRow:
    """One conversation result: what the operator recorded, beside the script's gap flags."""

    disposition_id: int
    at: datetime
    lead_id: int
    lead_name: str | None
    product: str | None
    operator: str | None
    kind: str
    topic: str | None
    comment: str | None
    amount: Decimal | None
    currency: str | None
    script_gaps: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["script_gaps"] = "; ".join(self.script_gaps)
        return out


def glossary_text() -> str:
    return "\n".join(f"- {text}" for text in GLOSSARY.values())


def zone_offsets(zone: str, start: datetime, end: datetime) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets over [start, end): [(until_utc, offset_seconds), ..., (None, last)].

    SQLite has no time zones: the report shifts each instant by the offset in force at that instant.
    """
    tz = ZoneInfo(zone)
    step = timedelta(hours=1)
    off = lambda t: int(t.astimezone(tz).utcoffset().total_seconds())   # noqa: E731
    out: list[tuple[datetime | None, int]] = []
    t, current = start, off(start)
    while t < end:
        nxt = min(t + step, end)
        if off(nxt) != current:
            low, high = t, nxt                # the change lies in (low, high]: find its second
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                low, high = (mid, high) if off(mid) == current else (low, mid)
            out.append((high.replace(microsecond=0), current))
            current = off(high)
        t = nxt
    out.append((None, current))
    return out
