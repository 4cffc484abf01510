"""The abandon budget (issue 15): abandoned calls as a share of answered calls, today and over a rolling
window, against the policy's limit. The rule is pure; `read_budget` counts in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from kernel.clock import require_aware
from leads.policy.values import Policy

NEAR_SHARE = 0.8   # "near" from 80% of the limit on: the share at which a pacer should fall back


@dataclass(frozen=True)
class AbandonBudget:
    limit_percent: float
    window_days: int
    day_answered: int
    day_abandoned: int
    window_answered: int
    window_abandoned: int

    @property
    def day_percent(self) -> float | None:
        return _percent(self.day_abandoned, self.day_answered)

    @property
    def window_percent(self) -> float | None:
        return _percent(self.window_abandoned, self.window_answered)

    @property
    def state(self) -> str:
        """over: a share above the limit; near: a share at 80% of it or more; ok otherwise (and with no
        answered call yet)."""
        shares = [p for p in (self.day_percent, self.window_percent) if p is not None]
        if any(p > self.limit_percent for p in shares):
            return "over"
        if any(p >= round(NEAR_SHARE * self.limit_percent, 6) for p in shares):   # 0.8 * 3.0 is 2.4000000000000004
            return "near"
        return "ok"

    def as_dict(self) -> dict:
        return {"limit_percent": self.limit_percent, "window_days": self.window_days,
                "day_answered": self.day_answered, "day_abandoned": self.day_abandoned,
                "day_percent": self.day_percent, "window_answered": self.window_answered,
                "window_abandoned": self.window_abandoned, "window_percent": self.window_percent,
                "state": self.state}


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def read_budget(engine: Engine, now: datetime, center_zone: str, policy: Policy) -> AbandonBudget:
    """Today (the center's calendar day up to now) and the last `abandon_budget_days` days up to now."""
    from dialer.reports.kpi import Period
    from dialer.reports.queries import answered_and_abandoned
    require_aware(now)
    tz = ZoneInfo(center_zone)
    day_start = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    figures = []
    for start in (day_start, now - timedelta(days=policy.abandon_budget_days)):
        if start >= now:
            figures.append((0, 0))
            continue
        figures.append(answered_and_abandoned(engine, Period(start, now, center_zone)))
    (day_answered, day_abandoned), (window_answered, window_abandoned) = figures
    return AbandonBudget(float(policy.abandon_budget_percent), policy.abandon_budget_days, day_answered,
                         day_abandoned, window_answered, window_abandoned)
