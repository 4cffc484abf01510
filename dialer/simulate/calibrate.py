"""`--calibrate`: the customers' and operators' figures fitted from a store's own call attempts.

fit_behaviour is pure (rows in, a Behaviour out); calls_of_store is the one read. What is fitted:
- answer probability by hour of the center's day: answered first attempts / first attempts of that
  hour (an hour with fewer than MIN_CALLS first attempts takes the all-day figure);
- the factor of each attempt number: answered share of attempt n / answered share of attempt 1
  (attempt 4 and later together; fewer than MIN_CALLS: the default factor);
- answer delay, talk and wrap-up: the 10th to the 90th percentile of the measured seconds as the
  uniform range (fewer than MIN_CALLS measurements: the default range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dialer.simulate.customers import ANSWER_BY_ATTEMPT, Behaviour
from kernel.db.engine import Database
from kernel.db.models import CallAttempt
from kernel.errors import UsageError
from leads.attempt import AttemptState

MIN_CALLS = 20


@dataclass(frozen=True)
class PastCall:
    claimed_at: datetime
    attempt_no: int
    answer_after: float | None     # seconds from the Originate to the answer; None: not answered
    talk: float | None             # seconds with the operator; None: no conversation
    wrapup: float | None


def calls_of_store(db: Database) -> list[PastCall]:
    """Every ended attempt that was dialed (a claim given back before dialing is not a call)."""
    a = CallAttempt
    with db.read() as session:
        rows = session.execute(select(a.claimed_at, a.originated_at, a.attempt_no, a.answered_at, a.connected_at,
                                      a.ended_at, a.wrapup_until)
                               .where(a.state == AttemptState.ENDED.value, a.originated_at.is_not(None))).all()
    return [PastCall(r.claimed_at, r.attempt_no, _seconds(r.originated_at, r.answered_at or r.connected_at),
                     _seconds(r.connected_at, r.ended_at), _seconds(r.ended_at, r.wrapup_until)) for r in rows]


def fit_behaviour(calls: Sequence[PastCall], zone: ZoneInfo, base: Behaviour | None = None) -> Behaviour:
    base = base or Behaviour()
    if len(calls) < MIN_CALLS:
        raise UsageError(f"--calibrate: the store has {len(calls)} dialed calls; at least {MIN_CALLS} are needed")
    first = [c for c in calls if c.attempt_no == 1]
    overall = _share(first) if len(first) >= MIN_CALLS else _share(calls)
    by_hour = {}
    for hour in range(24):
        those = [c for c in first if _aware(c.claimed_at).astimezone(zone).hour == hour]
        by_hour[hour] = _share(those) if len(those) >= MIN_CALLS else overall
    factors = []
    for n, default in enumerate(ANSWER_BY_ATTEMPT, start=1):
        those = [c for c in calls if (c.attempt_no >= n if n == len(ANSWER_BY_ATTEMPT) else c.attempt_no == n)]
        factors.append(round(_share(those) / overall, 3) if n > 1 and overall and len(those) >= MIN_CALLS
                       else (1.0 if n == 1 else default))
    return replace(base, answer_by_hour=by_hour, answer_by_attempt=tuple(factors),
                   answer_after=_range([c.answer_after for c in calls], base.answer_after),
                   talk=_range([c.talk for c in calls], base.talk),
                   wrapup=_range([c.wrapup for c in calls], base.wrapup))


def _share(calls: Sequence[PastCall]) -> float:
    return round(sum(1 for c in calls if c.answer_after is not None) / len(calls), 3) if calls else 0.0


def _range(values: Sequence[float | None], default: tuple[float, float]) -> tuple[float, float]:
    known = sorted(v for v in values if v is not None and v >= 0)
    if len(known) < MIN_CALLS:
        return default
    low = known[max(0, math.ceil(0.1 * len(known)) - 1)]
    high = known[max(0, math.ceil(0.9 * len(known)) - 1)]
    return round(low, 1), round(high, 1)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (_aware(end) - _aware(start)).total_seconds()


def _aware(value: datetime) -> datetime:
    from datetime import timezone
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
