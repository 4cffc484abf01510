"""Operators' hours worked: the daemon records each change between working, paused and offline.

Working means in the operators' queue and not paused, whatever the operator does meanwhile (waiting, ringing,
talking, wrap-up): the time a call center pays for and plans with. Occupancy and the per-hour figures of the
reports divide by it (dialer/reports/queries.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Iterable

from dialer.pacing import OperatorState, Presence
from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import OperatorPresence


class PresenceState(StrEnum):
    WORKING = "working"
    PAUSED = "paused"
    OFFLINE = "offline"


def presence_state(state: OperatorState) -> PresenceState:
    if state is OperatorState.OFFLINE:
        return PresenceState.OFFLINE
    if state is OperatorState.PAUSED:
        return PresenceState.PAUSED
    return PresenceState.WORKING


@dataclass(frozen=True)
class PresenceChange:
    interface: str
    state: PresenceState
    at: datetime


class PresenceLog:
    """What was last recorded per operator; `changes` gives only what differs (a fresh daemon records all)."""

    def __init__(self) -> None:
        self._last: dict[str, PresenceState] = {}

    def changes(self, presences: Iterable[Presence], now: datetime) -> list[PresenceChange]:
        require_aware(now)
        out = []
        for presence in presences:
            state = presence_state(presence.state(now))
            if self._last.get(presence.interface) is not state:
                self._last[presence.interface] = state
                out.append(PresenceChange(presence.interface, state, now))
        return out


def record_presence(db: Database, pbx: str | None, changes: Iterable[PresenceChange]) -> int:
    rows = [OperatorPresence(interface=c.interface, pbx=pbx, state=c.state.value, at=c.at) for c in changes]
    if rows:
        with db.write() as session:
            session.add_all(rows)
    return len(rows)
