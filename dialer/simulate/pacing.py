"""Predictive pacing with an abandon budget, as a pacing choice inside the simulator (pure, no I/O).

Progressive pacing places one call per free operator and holds that operator while the phone rings
(up to the ring timeout, 30 s, for a customer who never picks up). Predictive pacing places calls for
the operators who will be free when the calls are answered, from what it has measured today:

    operators expected = free now (minus answered calls already waiting)
                         + busy operators predicted free within `horizon` s (talk and wrap-up so far,
                           against the talk and wrap-up times measured today)
    each call ringing  : P(it is still answered | it has rung t s), from the measured answer rate and
                         the measured spread of answer delays (a call that has rung longer than nearly
                         every answered call did is nearly surely no answer)
    place one more call while P(the calls ringing bring at least `operators expected` answers) <= `risk`
    (the number of answers among the calls ringing: a sum of unequal coin flips, computed exactly), so
    that a new call, if answered, finds no operator with a probability of at most `risk` (2%).

An abandoned call is one answered with no operator free within `patience` (2 s: the dialplan plays a
short message and hangs up). The budget is enforced, not only aimed at: abandoned / answered must stay
<= `budget` (3%) today and over the rolling 30 days. The pacer keeps a margin: it dials ahead only
while both ratios are under `budget * guard` (80% of it); at the margin it falls back to progressive
(never more calls ringing than free operators, so an answered call always finds its operator) until
enough answered calls bring the ratio down again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

PRIOR_ANSWERS, PRIOR_CALLS = 5.0, 10.0   # answer rate 50% until calls are measured, worth 10 calls
MIN_DELAYS = 20                          # answer delays measured before they are trusted


@dataclass
class PredictivePacer:
    patience: float = 2.0
    budget: float = 0.03
    guard: float = 0.8                    # fall back to progressive at 80% of the budget
    horizon: float = 5.0                  # seconds ahead a busy operator counts as free for a call placed now
    risk: float = 0.02                    # a new call is placed only if P(no operator for it, if answered) <= this
    ring_timeout: float = 30.0
    past_answered: int = 0                # the 29 days before, for the rolling 30-day budget
    past_abandoned: int = 0
    answered_today: int = 0
    abandoned_today: int = 0
    calls: int = 0
    answers: int = 0
    max_ratio: float = 1.0                # the most calls ringing per operator expected, today
    fallbacks: int = 0                    # times the pacer fell back to progressive
    prior_talk: float = 120.0             # talk and wrap-up seconds assumed until MIN_DELAYS are measured
    prior_wrapup: float = 30.0
    _delays: list[float] = field(default_factory=list, repr=False)
    _days: list[tuple[int, int]] = field(default_factory=list, repr=False)   # (answered, abandoned) per past day
    _talks: "Durations" = field(default_factory=lambda: Durations(), repr=False)
    _wrapups: "Durations" = field(default_factory=lambda: Durations(), repr=False)
    _falling_back: bool = field(default=False, repr=False)

    @property
    def answer_rate(self) -> float:
        return (self.answers + PRIOR_ANSWERS) / (self.calls + PRIOR_CALLS)

    def dialed(self, answered_after: float | None) -> None:
        """A call ended: it was answered after `answered_after` seconds of ringing, or not at all."""
        self.calls += 1
        if answered_after is not None:
            self.answers += 1
            bisect.insort(self._delays, answered_after)

    def talked(self, talk: float, wrapup: float) -> None:
        self._talks.add(talk)
        self._wrapups.add(wrapup)

    def free_in(self, *, talked: float | None = None, wrapped: float | None = None) -> float:
        """Seconds until an operator is predicted free: talking for `talked` s, or in wrap-up for `wrapped` s."""
        if talked is not None:
            return self._talks.remaining(talked, self.prior_talk) + self._wrapups.remaining(0.0, self.prior_wrapup)
        return self._wrapups.remaining(wrapped or 0.0, self.prior_wrapup)

    def new_day(self) -> None:
        """Midnight: today's calls join the rolling 30 days (the oldest day leaves it)."""
        self._days.append((self.answered_today, self.abandoned_today))
        if len(self._days) > 29:
            answered, abandoned = self._days.pop(0)
            self.past_answered -= answered
            self.past_abandoned -= abandoned
        self.past_answered += self.answered_today
        self.past_abandoned += self.abandoned_today
        self.answered_today = self.abandoned_today = 0

    def answered(self, _now: datetime, *, abandoned: bool) -> None:
        self.answered_today += 1
        self.abandoned_today += int(abandoned)

    def headroom(self) -> float:
        """Abandons still allowed under the margin, today and over 30 days (the smaller)."""
        limit = self.budget * self.guard
        day = limit * self.answered_today - self.abandoned_today
        month = limit * (self.past_answered + self.answered_today) - (self.past_abandoned + self.abandoned_today)
        return min(day, month)

    def still_answered(self, rung: float) -> float:
        """P(a call that has rung `rung` s unanswered is still answered), from today's measurements."""
        p = self.answer_rate
        if len(self._delays) < MIN_DELAYS:
            return p if rung < self.ring_timeout else 0.0
        later = 1.0 - bisect.bisect_right(self._delays, rung) / len(self._delays)
        return p * later / (p * later + (1.0 - p)) if later > 0 else 0.0

    def calls_to_place(self, _now: datetime, *, free: int, soon: Sequence[float], ringing: Sequence[float]) -> int:
        """How many calls to place now; `ringing`: seconds each unanswered call in progress has rung."""
        free = max(0, free)
        if self.headroom() <= 0:
            if not self._falling_back:
                self.fallbacks += 1
            self._falling_back = True
            return max(0, free - len(ringing))        # progressive: never more ringing than free operators
        self._falling_back = False
        expected = free + sum(1 for s in soon if s <= self.horizon)
        if expected <= 0:
            return 0
        chances = [self.still_answered(t) for t in ringing]
        placed = 0
        while placed < 3 * expected and at_least(chances, expected) <= self.risk:
            chances.append(self.answer_rate)
            placed += 1
        if placed:
            self.max_ratio = max(self.max_ratio, (len(ringing) + placed) / expected)
        return placed


class Durations:
    """Measured durations, sorted, with running sums: the expected rest of one that has lasted t s."""

    def __init__(self) -> None:
        self._values: list[float] = []
        self._sums: list[float] = [0.0]

    def add(self, value: float) -> None:
        bisect.insort(self._values, value)
        self._sums = [0.0]
        for v in self._values:
            self._sums.append(self._sums[-1] + v)

    def remaining(self, elapsed: float, prior: float) -> float:
        n = len(self._values)
        if n < MIN_DELAYS:
            return max(0.0, prior - elapsed)
        i = bisect.bisect_right(self._values, elapsed)
        if i == n:
            return 0.0
        return (self._sums[n] - self._sums[i]) / (n - i) - elapsed


def at_least(chances: Sequence[float], k: int) -> float:
    """P(at least k of independent events with these probabilities happen) (Poisson binomial, exact)."""
    if k <= 0:
        return 1.0
    dist = [1.0] + [0.0] * k            # dist[j]: P(j happened so far), j = k meaning "k or more"
    for p in chances:
        for j in range(k, 0, -1):
            dist[j] = dist[j] * (1 - p) + dist[j - 1] * p + (dist[j] * p if j == k else 0.0)
        dist[0] *= 1 - p
    return dist[k]
