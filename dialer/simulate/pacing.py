"""Predictive pacing with an abandon budget, as a pacing choice inside the simulator (pure, no I/O).

Progressive pacing places one call per free operator and holds that operator while the phone rings.
Predictive pacing places calls for operators who will be free by the time the calls are answered:

    operators expected  = free now + busy ones predicted free within the horizon (talk and wrap-up so far)
    calls to place      = floor(operators expected / measured answer rate) - calls still ringing

An abandoned call is one answered with no operator free within `patience` (2 s: the dialplan plays a
short message and hangs up). The budget is enforced, not only aimed at: abandoned / answered must stay
<= `budget` (3%) today and over the rolling 30 days. The pacer keeps a margin: it dials ahead only
while both ratios are under `budget * guard` (80% of it); at the margin it falls back to progressive
(never more calls ringing than free operators, so an answered call always finds its operator) until
enough answered calls bring the ratio down again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

PRIOR_ANSWERS, PRIOR_CALLS = 5.0, 10.0   # answer rate 50% until calls are measured, worth 10 calls


@dataclass
class PredictivePacer:
    patience: float = 2.0
    budget: float = 0.03
    guard: float = 0.8                    # fall back to progressive at 80% of the budget
    horizon: float = 8.0                  # seconds ahead an operator counts as free for a call placed now
    max_ratio_allowed: float = 3.0        # never more than this many calls ringing per expected operator
    past_answered: int = 0                # the 29 days before, for the rolling 30-day budget
    past_abandoned: int = 0
    answered_today: int = 0
    abandoned_today: int = 0
    calls: int = 0
    answers: int = 0
    max_ratio: float = 1.0
    fallbacks: int = 0
    _falling_back: bool = field(default=False, repr=False)

    @property
    def answer_rate(self) -> float:
        return (self.answers + PRIOR_ANSWERS) / (self.calls + PRIOR_CALLS)

    def dialed(self, answered: bool) -> None:
        self.calls += 1
        self.answers += int(answered)

    def answered(self, _now: datetime, *, abandoned: bool) -> None:
        self.answered_today += 1
        self.abandoned_today += int(abandoned)

    def headroom(self) -> float:
        """Abandons still allowed under the margin, today and over 30 days (the smaller)."""
        limit = self.budget * self.guard
        day = limit * self.answered_today - self.abandoned_today
        month = limit * (self.past_answered + self.answered_today) - (self.past_abandoned + self.abandoned_today)
        return min(day, month)

    def calls_to_place(self, _now: datetime, *, free: int, soon: list[float], dialing: int, answer: float,
                       on_duty: int) -> int:
        free = max(0, free)
        if self.headroom() <= 0:
            if not self._falling_back:
                self.fallbacks += 1
            self._falling_back = True
            return max(0, free - dialing)              # progressive: never more ringing than free operators
        self._falling_back = False
        expected = free + sum(1 for s in soon if s <= self.horizon)
        if expected <= 0:
            return 0
        rate = max(answer, 1e-3)
        target = min(math.floor(expected / rate + 0.5), math.ceil(expected * self.max_ratio_allowed))
        if target > 0:
            self.max_ratio = max(self.max_ratio, target / expected)
        return max(0, target - dialing)
