"""Quiet hours (DESIGN §3): no dialing from quiet_start to quiet_end on a zone's wall clock.

The span may cross midnight (22:00-10:00) or not (00:00-08:00); quiet_start itself is quiet,
quiet_end itself is allowed: with 22:00-10:00, 21:59 and 10:00 may be dialed, 22:00 and 09:59 not.
A lead is dialable only when every zone that applies to it (the center's, and the lead's own where
known, see zones.py) is outside its quiet hours.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Sequence
from zoneinfo import ZoneInfo

from kernel.clock import require_aware

if TYPE_CHECKING:
    from leads.policy.values import Policy

_MAX_STEPS = 16   # zones jump each other forward; more steps than this means no common allowed time


def in_quiet_hours(when: datetime, zone: ZoneInfo, policy: Policy) -> bool:
    start, end = policy.quiet_hours
    local = require_aware(when).astimezone(zone).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_until(when: datetime, zone: ZoneInfo, policy: Policy) -> datetime:
    """The end of the quiet span `when` is in (call only when in_quiet_hours is true)."""
    start, end = policy.quiet_hours
    local = when.astimezone(zone)
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)
    return _at(day, end, zone)


def first_allowed(when: datetime, zones: Sequence[ZoneInfo], policy: Policy) -> datetime | None:
    """The first instant at or after `when` outside quiet hours in every zone; None if there is none."""
    moment = require_aware(when)
    for _ in range(_MAX_STEPS):
        blocking = [quiet_until(moment, zone, policy) for zone in zones if in_quiet_hours(moment, zone, policy)]
        if not blocking:
            return moment
        moment = max(blocking)
    return None


def start_of_day(day, zone: ZoneInfo) -> datetime:
    return _at(day, time(0, 0), zone)


def _at(day, clock: time, zone: ZoneInfo) -> datetime:
    # A wall-clock time that does not exist (a DST gap) is read with the offset before the gap.
    return datetime.combine(day, clock, tzinfo=zone)
