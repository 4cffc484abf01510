"""Attempts spread over days and hours of the customer's day (DESIGN §3 Attempts, issue 12).

The retry plan is policy data:
- `retry_day_parts` (10:00-13:00, 13:00-17:00, 17:00-22:00: morning, afternoon, evening of the lead's
  own zone, else the center's): after no answer, an answering machine or a declined call, the next
  attempt waits for the next part of the customer's day, so attempts fall at different hours;
- `max_attempts_per_day` (3): once a lead had that many attempts in one calendar day of its zone, the
  next waits for the first part of the next day;
- every result keeps its own delay (`retry_<result>_minutes`): the plan only ever moves an attempt
  later, so a busy line is still retried sooner than no answer (within the day's cap);
- `max_attempts` must be more than `max_attempts_per_day`, so a lead is closed as unreachable only
  after attempts on at least two days.
A callback (an agreed time) is retried after its plain delay: the promise keeps it near its time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from leads.attempt import CallResult

if TYPE_CHECKING:
    from leads.policy.values import Policy

# The customer did not take the call: trying again at another hour of their day is the point.
NEXT_PART_RESULTS = frozenset({CallResult.NO_ANSWER, CallResult.ANSWERING_MACHINE, CallResult.REJECTED})
PART_NAMES = ("morning", "afternoon", "evening", "late evening", "part 5", "part 6")


@dataclass(frozen=True)
class DayPart:
    start: time
    end: time
    name: str

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def day_parts(policy: Policy) -> tuple[DayPart, ...]:
    return tuple(DayPart(s, e, PART_NAMES[i]) for i, (s, e) in enumerate(policy.day_parts))


def next_attempt_not_before(at: datetime, result: CallResult, delay: timedelta, policy: Policy, zone: ZoneInfo,
                            attempts_today: int, spread: bool = True) -> datetime:
    """After a counted attempt ending at `at` (the `attempts_today`-th of the lead's local day, this one
    included), the earliest next attempt."""
    earliest = at + delay
    if not spread:
        return earliest
    local = at.astimezone(zone)
    parts = day_parts(policy)
    if attempts_today >= policy.max_attempts_per_day:
        return max(earliest, _at(local.date() + timedelta(days=1), parts[0].start, zone))
    if result in NEXT_PART_RESULTS:
        return max(earliest, next_part_start(local, parts, zone))
    return earliest


def next_part_start(local: datetime, parts: tuple[DayPart, ...], zone: ZoneInfo) -> datetime:
    """The start of the day part after the one `local` is in (the next day's first part after the last)."""
    clock = local.time()
    for part in parts:
        if part.start > clock:
            return _at(local.date(), part.start, zone)
    return _at(local.date() + timedelta(days=1), parts[0].start, zone)


def local_day_start(at: datetime, zone: ZoneInfo) -> datetime:
    return _at(at.astimezone(zone).date(), time(0, 0), zone)


def _at(day, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone)


def plan_lines(policy: Policy) -> list[str]:
    """The retry plan as a team lead reads it: where each attempt falls after no answer each time."""
    parts = day_parts(policy)
    lines = [f"attempt 1: on arrival (first call within {policy.first_call_minutes} min; night leads from "
             f"{policy.quiet_end})"]
    zone = ZoneInfo("UTC")   # wall-clock arithmetic only: the plan reads in the lead's local time
    moment = datetime(2026, 1, 5, parts[0].start.hour, parts[0].start.minute, tzinfo=zone)
    day, today = 0, 1
    delay = timedelta(minutes=policy.retry_no_answer_minutes)
    for n in range(2, policy.max_attempts + 1):
        nxt = next_attempt_not_before(moment, CallResult.NO_ANSWER, delay, policy, zone, today)
        new_day = (nxt.date() - moment.date()).days
        if new_day:
            day += new_day
            today = 1
        else:
            today += 1
        part = next((p for p in parts if p.start <= nxt.time() < p.end), None)
        when = "same day" if not new_day else ("next day" if new_day == 1 else f"{new_day} days later")
        where = f"{part} local ({part.name})" if part else f"from {nxt:%H:%M} local"
        lines.append(f"attempt {n}: {when} {where}" + (f", day {day + 1}" if new_day else ""))
        moment = nxt
    lines.append(f"then: closed as unreachable (max_attempts {policy.max_attempts}; at most "
                 f"{policy.max_attempts_per_day} a day; busy after {policy.retry_busy_minutes} min, "
                 f"no answer after the next day part, at least {policy.retry_no_answer_minutes} min)")
    return lines
