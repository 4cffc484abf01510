"""A touch chain as policy data: its steps, the delays between e-mails, the send window, the stops.

Pure values; catalog.py reads them from YAML and refuses a chain that breaks a rule below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from enum import StrEnum

MIN_GAP = timedelta(days=3)     # never more often than one e-mail every 3 days (the practice we follow)
MIN_STEPS, MAX_STEPS = 2, 4


class Entry(StrEnum):
    """Why a lead enters a chain."""

    EXHAUSTED = "exhausted"          # every attempt used, never reached
    THINKING = "thinking"            # "I'll think" / a callback never kept, then attempts ran out
    WRITE_INSTEAD = "write_instead"  # "do not call me, write to me"


class StopReason(StrEnum):
    ORDER = "order"
    REPLY = "reply"
    UNSUBSCRIBE = "unsubscribe"
    NEW_LEAD = "new_lead"            # the customer left a new request: the calls take over
    DNC = "dnc"


class ChainStatus(StrEnum):
    ACTIVE = "active"
    DONE = "done"                    # every step sent
    STOPPED = "stopped"              # a stop condition; stop_reason says which
    SKIPPED = "skipped"              # never started (no e-mail address, or no consent to write)


@dataclass(frozen=True)
class Step:
    template: str                    # template id in the catalog (the language is the lead's)
    delay: timedelta                 # after the previous e-mail (the first step: after entering the chain)


@dataclass(frozen=True)
class SendWindow:
    """The customer's local daytime in which an e-mail may be sent."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        return self.start <= local < self.end


@dataclass(frozen=True)
class Chain:
    id: str
    version: int
    entries: tuple[Entry, ...]
    steps: tuple[Step, ...]
    window: SendWindow
    stops: tuple[StopReason, ...]
    title: str = ""


def gap_problems(steps: tuple[Step, ...]) -> list[str]:
    """The chain rules a policy file can break: 2 to 4 steps, 3 days or more between two e-mails."""
    problems = []
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        problems.append(f"a chain has {MIN_STEPS} to {MAX_STEPS} e-mails, this one {len(steps)}")
    for number, step in enumerate(steps[1:], start=2):
        if step.delay < MIN_GAP:
            problems.append(f"step {number}: delay {_days(step.delay)} after the previous e-mail; at least "
                            f"{_days(MIN_GAP)} between two e-mails")
    if steps and steps[0].delay < timedelta(0):
        problems.append("step 1: the delay cannot be negative")
    return problems


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:g} day" + ("" if days == 1 else "s")
