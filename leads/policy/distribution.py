"""Which operator a claimed call is dialed for (DESIGN §3 Operators).

Strategies (policy key `distribution`):
- even:    the operator with the fewest calls today;
- product: operators whose skills include the lead's product/tag first, then the fewest calls today;
- skill:   skilled operators first, then the highest level, then the fewest calls today.
Ties go to the lower operator id, so the choice is reproducible. A callback's agreeing operator, when
available, is chosen before any strategy. The daemon passes the chosen operator's interface to
Asterisk (channel variable DIALER_OPERATOR); the queue stays the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class OperatorLoad:
    """An available operator as the distribution sees them."""

    id: int
    name: str
    interface: str
    skills: tuple[str, ...] = ()
    level: int = 1
    calls_today: int = 0

    def knows(self, product: str | None) -> bool:
        return product is not None and skill_key(product) in {skill_key(s) for s in self.skills}


@dataclass(frozen=True)
class OperatorChoice:
    operator_id: int
    interface: str
    name: str
    reason: str


def skill_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def choose_operator(operators: Sequence[OperatorLoad], strategy: str, product: str | None = None,
                    preferred_id: int | None = None) -> OperatorChoice | None:
    """One of the available `operators` for a lead with this product; None when none is available."""
    if not operators:
        return None
    for operator in operators:
        if operator.id == preferred_id:
            return _choice(operator, "agreed the callback")
    if strategy == "even":
        best = min(operators, key=lambda o: (o.calls_today, o.id))
        return _choice(best, f"fewest calls today ({best.calls_today})")
    skilled = [o for o in operators if o.knows(product)]
    pool = skilled or list(operators)
    why = f"skilled in {product!r}" if skilled else ("no available operator is skilled in "
                                                     f"{product!r}" if product else "lead has no product")
    if strategy == "skill":
        best = min(pool, key=lambda o: (-o.level, o.calls_today, o.id))
        return _choice(best, f"{why}; highest level ({best.level}), {best.calls_today} calls today")
    best = min(pool, key=lambda o: (o.calls_today, o.id))
    return _choice(best, f"{why}; fewest calls today ({best.calls_today})")


def _choice(operator: OperatorLoad, reason: str) -> OperatorChoice:
    return OperatorChoice(operator.id, operator.interface, operator.name, reason)
