"""How simulated customers and operators behave (the modelled side of the day; pure and seeded).

A call's outcome is drawn from the simulated PBX's own customer model (dialer.pbx_sim.scenarios:
Outcome, the default outcome mix and its timings), with the answer probability set by the hour of
the center's day and by the attempt number: a customer who did not pick up before picks up less
often. What the carrier and Asterisk would report for each outcome is written as the tracker's
CallFacts, and the product's own result table (dialer.ami.results.decide) turns them into the result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Mapping

from dialer.ami.results import CallFacts, decide
from dialer.pbx_sim.scenarios import DEFAULT_AFTER, DEFAULT_MIX, REJECTIONS, Outcome
from kernel.errors import UsageError
from leads.attempt import CallResult, DispositionKind

# Defaults (docs/simulate.md): the pbx_sim mix answers 55% of calls; later attempts answer less.
ANSWER_BY_HOUR: Mapping[int, float] = {h: 0.55 for h in range(24)}
ANSWER_BY_ATTEMPT: tuple[float, ...] = (1.0, 0.85, 0.75, 0.65)   # factor for attempt 1, 2, 3, 4 and later
# A customer who answers and hangs up at once is left out: the result table cannot tell it from a call
# the pacing dropped (both are `abandoned`), and it would hide the pacing's own abandons.
_NOT_ANSWERED = tuple((o, w) for o, w in DEFAULT_MIX if o not in (Outcome.ANSWER, Outcome.HANGUP))
# What operators record after a conversation (an assumption, docs/simulate.md): most orders are confirmed.
DISPOSITIONS: tuple[tuple[DispositionKind, float], ...] = (
    (DispositionKind.CONFIRMED, 0.45), (DispositionKind.NOT_INTERESTED, 0.25), (DispositionKind.NO_DECISION, 0.15),
    (DispositionKind.CALLBACK, 0.10), (DispositionKind.WRONG_NUMBER, 0.03), (DispositionKind.FAKE, 0.02))


@dataclass(frozen=True)
class Behaviour:
    """Customers' and operators' figures, every duration a (low, high) uniform range in seconds."""

    answer_by_hour: Mapping[int, float] = field(default_factory=lambda: dict(ANSWER_BY_HOUR))
    answer_by_attempt: tuple[float, ...] = ANSWER_BY_ATTEMPT
    not_answered: tuple[tuple[Outcome, float], ...] = _NOT_ANSWERED   # how unanswered calls end, by weight
    answer_after: tuple[float, float] = (3.0, 10.0)    # ringing until the customer picks up
    operator_ring: tuple[float, float] = (1.0, 3.0)    # the operator's phone rings before the operator takes it
    talk: tuple[float, float] = (60.0, 180.0)
    wrapup: tuple[float, float] = (20.0, 40.0)
    patience: float = 2.0    # an answered customer with no operator after this hears the message: abandoned
    dispositions: tuple[tuple[DispositionKind, float], ...] = DISPOSITIONS   # after a conversation, by weight
    callback_after_hours: float = 2.0   # a customer who asks to be called back names a time this much later

    def __post_init__(self) -> None:
        for name in ("answer_after", "operator_ring", "talk", "wrapup"):
            low, high = getattr(self, name)
            if low < 0 or high < low:
                raise UsageError(f"{name} {low:g}-{high:g}: give LOW-HIGH seconds, 0 <= LOW <= HIGH")
        for p in (*self.answer_by_hour.values(), *self.answer_by_attempt):
            if p < 0 or p > 1:
                raise UsageError(f"answer probability {p:g} is not between 0 and 1")

    def answer_probability(self, hour: int, attempt_no: int) -> float:
        factors = self.answer_by_attempt or (1.0,)
        factor = factors[min(attempt_no, len(factors)) - 1]
        return min(1.0, self.answer_by_hour.get(hour, 0.0) * factor)

    def with_answer_rate(self, rate: float) -> "Behaviour":
        if not 0 <= rate <= 1:
            raise UsageError(f"--answer-rate {rate:g}: give a probability between 0 and 1")
        return replace(self, answer_by_hour={h: rate for h in range(24)})


@dataclass(frozen=True)
class Call:
    """One dialed call as the customer will play it (seconds from the Originate)."""

    outcome: Outcome
    after: float          # to the answer, or to the end for a call not answered
    operator_ring: float  # once answered: until the operator takes it
    talk: float
    wrapup: float
    disposition: DispositionKind = DispositionKind.NO_DECISION   # recorded after a conversation


def draw_call(behaviour: Behaviour, rng: random.Random, *, hour: int, attempt_no: int,
              ring_timeout: float) -> Call:
    """The customer's answer (or not) to this call; always the same number of draws, so seeds stay aligned."""
    picks_up = rng.random() < behaviour.answer_probability(hour, attempt_no)
    outcomes = [o for o, _ in behaviour.not_answered]
    other = rng.choices(outcomes, weights=[w for _, w in behaviour.not_answered])[0] if outcomes else Outcome.NO_ANSWER
    answer_after, operator_ring = rng.uniform(*behaviour.answer_after), rng.uniform(*behaviour.operator_ring)
    talk, wrapup = rng.uniform(*behaviour.talk), rng.uniform(*behaviour.wrapup)
    kinds = [k for k, _ in behaviour.dispositions]
    disposition = (rng.choices(kinds, weights=[w for _, w in behaviour.dispositions])[0] if kinds
                   else DispositionKind.NO_DECISION)
    outcome = Outcome.ANSWER if picks_up else other
    if outcome is Outcome.ANSWER:
        after = min(answer_after, ring_timeout)
    elif outcome is Outcome.NO_ANSWER:
        after = ring_timeout
    else:
        after = min(DEFAULT_AFTER[outcome], ring_timeout)
    return Call(outcome, after, operator_ring, talk, wrapup, disposition)


def facts_of(outcome: Outcome, *, connected: bool) -> CallFacts:
    """What Asterisk would have told the tracker about a call that ended so (the pjsip transcripts)."""
    if outcome is Outcome.ANSWER:
        return CallFacts(answered=True, connected=connected, originate_reason=4, hangup_cause=16)
    if outcome is Outcome.NO_ANSWER:
        return CallFacts(originate_reason=3, hangup_cause=19)
    if outcome is Outcome.MACHINE:
        return CallFacts(answered=True, amd_machine=True, originate_reason=4, hangup_cause=16)
    if outcome is Outcome.HANGUP:
        return CallFacts(answered=True, originate_reason=4, hangup_cause=16)
    reply = REJECTIONS[outcome]
    return CallFacts(originate_reason=0, hangup_cause=reply.cause, tech_cause=reply.sip_code,
                     dial_status=reply.dial_status)


def result_of(outcome: Outcome, *, connected: bool) -> CallResult:
    """The product's result table's verdict on the call (dialer.ami.results.decide)."""
    return decide(facts_of(outcome, connected=connected))[0]


def parse_range(text: str, name: str) -> tuple[float, float]:
    """`"60-180"` or `"30"` (seconds) as a (low, high) range."""
    parts = text.replace(" ", "").split("-")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"{name} {text!r}: give seconds as LOW-HIGH (e.g. 60-180) or one number") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or values[0] < 0 or values[1] < values[0]:
        raise UsageError(f"{name} {text!r}: give seconds as LOW-HIGH (e.g. 60-180) or one number")
    return values[0], values[1]

