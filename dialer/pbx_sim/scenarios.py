"""How the simulated customers behave: by number pattern first, else drawn from a probability mix.

Pure and reproducible: `CustomerBook.plan_for(number, rng)` returns the customer's `CustomerPlan`
using only the given random generator, so a seeded PBX plays the same customers every run.

Outcomes and what the carrier does (the SIP replies of the pjsip transcripts):

    answer       rings `after` s, answers; talks `talk` s once connected (None: until the operator ends)
    no_answer    rings until the Originate Timeout (OriginateResponse Reason 3, Cause 19)
    busy         486 Busy Here after `after` s, no ringing (Cause 17, DialStatus BUSY)
    congestion   503 Service Unavailable (Cause 34, DialStatus CONGESTION)
    invalid      404 Not Found: no such number (Cause 1, DialStatus NOANSWER)
    reject       rings `after` s, then 603 Decline: the customer rejected the call (Cause 21)
    unavailable  rings `after` s, then 480 Temporarily Unavailable (Cause 19, OriginateResponse Reason 0)
    hangup       rings `after` s, answers and hangs up at once
    machine      rings `after` s, an answering machine answers (AMD says MACHINE)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from kernel.errors import UsageError


class Outcome(StrEnum):
    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    INVALID = "invalid"
    REJECT = "reject"
    UNAVAILABLE = "unavailable"
    HANGUP = "hangup"
    MACHINE = "machine"


@dataclass(frozen=True)
class CarrierReply:
    """A final SIP error from the carrier and how Asterisk reports it on the trunk and Local legs."""

    cause: int          # Hangup Cause of every leg
    sip_code: int       # TechCause of the trunk channel
    dial_status: str    # DialEnd DialStatus
    dialstatus_var: str  # the DIALSTATUS variable Dial() leaves behind


REJECTIONS: dict[Outcome, CarrierReply] = {
    Outcome.BUSY: CarrierReply(17, 486, "BUSY", "BUSY"),
    Outcome.CONGESTION: CarrierReply(34, 503, "CONGESTION", "CONGESTION"),
    Outcome.INVALID: CarrierReply(1, 404, "NOANSWER", "CHANUNAVAIL"),
    Outcome.REJECT: CarrierReply(21, 603, "NOANSWER", "CHANUNAVAIL"),
    Outcome.UNAVAILABLE: CarrierReply(19, 480, "NOANSWER", "NOANSWER"),
}

# Outcomes whose phone rings before the outcome (the carrier sends 180 Ringing).
RINGS_FIRST = frozenset({Outcome.ANSWER, Outcome.NO_ANSWER, Outcome.REJECT, Outcome.UNAVAILABLE,
                         Outcome.HANGUP, Outcome.MACHINE})

DEFAULT_AFTER: dict[Outcome, float] = {
    Outcome.ANSWER: 4.0, Outcome.NO_ANSWER: 0.0, Outcome.BUSY: 0.5, Outcome.CONGESTION: 0.3,
    Outcome.INVALID: 0.3, Outcome.REJECT: 6.0, Outcome.UNAVAILABLE: 3.0, Outcome.HANGUP: 4.0,
    Outcome.MACHINE: 5.0,
}

DEFAULT_MIX: tuple[tuple[Outcome, float], ...] = (
    (Outcome.ANSWER, 0.55), (Outcome.NO_ANSWER, 0.20), (Outcome.BUSY, 0.10), (Outcome.CONGESTION, 0.03),
    (Outcome.INVALID, 0.03), (Outcome.REJECT, 0.04), (Outcome.HANGUP, 0.03), (Outcome.MACHINE, 0.02),
)


def outcome_of(value: Any) -> Outcome:
    try:
        return Outcome(str(value).strip().lower())
    except ValueError:
        raise UsageError(f"unknown customer outcome {value!r}; known: "
                         + ", ".join(o.value for o in Outcome)) from None


def _seconds(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0:
        raise UsageError(f"{name} must not be negative, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CustomerPlan:
    """What one customer will do when called."""

    outcome: Outcome
    after: float                 # seconds from the call reaching the carrier to the outcome
    talk: float | None = None    # seconds on the line once connected to an operator (None: the operator ends)
    patience: float | None = None  # seconds waiting for an operator before hanging up (None: the queue decides)

    @property
    def rings(self) -> bool:
        return self.outcome in RINGS_FIRST and self.after > 0


@dataclass(frozen=True)
class CustomerRule:
    """Numbers matching `pattern` (a regular expression, matched against the whole number) behave so."""

    pattern: str
    outcome: Outcome
    after: float | None = None
    talk: float | None = None
    patience: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", outcome_of(self.outcome))
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise UsageError(f"customer rule pattern {self.pattern!r} is not a regular expression: {exc}") from None
        for name in ("after", "talk", "patience"):
            object.__setattr__(self, name, _seconds(f"customer rule {name}", getattr(self, name)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CustomerRule":
        known = {"pattern", "outcome", "after", "talk", "patience"}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"unknown customer rule keys {sorted(unknown)}; known: {sorted(known)}")
        if "pattern" not in data or "outcome" not in data:
            raise UsageError("a customer rule needs 'pattern' and 'outcome'")
        return cls(**dict(data))

    def matches(self, number: str) -> bool:
        return re.fullmatch(self.pattern, number) is not None

    def plan(self) -> CustomerPlan:
        after = self.after if self.after is not None else DEFAULT_AFTER[self.outcome]
        return CustomerPlan(self.outcome, after, self.talk, self.patience)


@dataclass(frozen=True)
class CustomerMix:
    """Customers no rule names: an outcome drawn with these weights, then the defaults of that outcome."""

    weights: tuple[tuple[Outcome, float], ...] = DEFAULT_MIX
    talk: float | None = None        # None: answered customers talk until the operator ends
    patience: float | None = None

    def __post_init__(self) -> None:
        weights = tuple((outcome_of(o), float(w)) for o, w in self.weights)
        if any(w < 0 for _, w in weights) or sum(w for _, w in weights) <= 0:
            raise UsageError("customer mix weights must be non-negative and not all zero")
        object.__setattr__(self, "weights", weights)

    @classmethod
    def from_dict(cls, weights: Mapping[str, float], talk: float | None = None,
                  patience: float | None = None) -> "CustomerMix":
        return cls(tuple((outcome_of(k), v) for k, v in weights.items()), talk, patience)

    def draw(self, rng: random.Random) -> CustomerPlan:
        outcomes = [o for o, _ in self.weights]
        chosen = rng.choices(outcomes, weights=[w for _, w in self.weights])[0]
        return CustomerPlan(chosen, DEFAULT_AFTER[chosen], self.talk, self.patience)


@dataclass(frozen=True)
class CustomerBook:
    """All the customers: rules tried in order, then the mix."""

    rules: tuple[CustomerRule, ...] = ()
    mix: CustomerMix = field(default_factory=CustomerMix)

    @classmethod
    def from_rules(cls, rules: list[Mapping[str, Any] | CustomerRule], mix: CustomerMix | None = None
                   ) -> "CustomerBook":
        parsed = tuple(r if isinstance(r, CustomerRule) else CustomerRule.from_dict(r) for r in rules)
        return cls(parsed, mix or CustomerMix())

    def plan_for(self, number: str, rng: random.Random) -> CustomerPlan:
        for rule in self.rules:
            if rule.matches(number):
                return rule.plan()
        return self.mix.draw(rng)
