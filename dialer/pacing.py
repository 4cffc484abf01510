"""Who can take a call right now, and how many calls to place: progressive pacing (DESIGN §3, §4).

The board knows operators only from what Asterisk says about its queue members (QueueStatus at
start and reconnect, then QueueMemberStatus / QueueMemberPause / AgentConnect / AgentComplete) plus
the wrap-up time the dialer gives after each call. It holds no I/O; the daemon feeds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

log = logging.getLogger("dialer.pacing")


class MemberStatus(IntEnum):
    """Asterisk's device state of a queue member (QueueMember / QueueMemberStatus `Status`)."""

    UNKNOWN = 0
    NOT_INUSE = 1
    INUSE = 2
    BUSY = 3
    INVALID = 4
    UNAVAILABLE = 5
    RINGING = 6
    RINGINUSE = 7
    ONHOLD = 8


class OperatorState(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Presence:
    interface: str
    name: str
    status: MemberStatus = MemberStatus.UNKNOWN
    paused: bool = False
    on_call: bool = False                  # between AgentConnect and AgentComplete
    wrapup_until: datetime | None = None   # after AgentComplete, until the disposition or the limit
    reserved_by: int | None = None         # attempt id dialing on this operator's behalf

    def state(self, now: datetime) -> OperatorState:
        if self.status in (MemberStatus.INVALID, MemberStatus.UNAVAILABLE):
            return OperatorState.OFFLINE
        if self.paused:
            return OperatorState.PAUSED
        if self.on_call or self.status in (MemberStatus.INUSE, MemberStatus.BUSY, MemberStatus.RINGINUSE,
                                           MemberStatus.ONHOLD):
            return OperatorState.ON_CALL
        if self.wrapup_until is not None and now < self.wrapup_until:
            return OperatorState.WRAP_UP
        return OperatorState.AVAILABLE


class OperatorBoard:
    """The daemon's picture of the operators' queue."""

    def __init__(self) -> None:
        self._members: dict[str, Presence] = {}

    # --- facts from Asterisk

    def reset(self, members: list[Presence]) -> None:
        """A fresh QueueStatus: it replaces everything we believed (reservations are kept)."""
        reserved = {i: p.reserved_by for i, p in self._members.items() if p.reserved_by is not None}
        self._members = {m.interface: replace(m, reserved_by=reserved.get(m.interface)) for m in members}

    def member_status(self, interface: str, name: str, status: MemberStatus, paused: bool,
                      in_call: bool | None = None) -> None:
        current = self._members.get(interface) or Presence(interface, name)
        updated = replace(current, name=name or current.name, status=status, paused=paused)
        if in_call is not None:
            updated = replace(updated, on_call=in_call)
        self._set(updated)

    def paused(self, interface: str, paused: bool) -> None:
        if interface in self._members:
            self._set(replace(self._members[interface], paused=paused))

    def connected(self, interface: str, attempt_id: int | None = None) -> None:
        """AgentConnect: the operator talks to a customer now.

        The queue may give the customer another operator than the one this call held: a call still
        being dialed that held that operator takes over the one this call no longer needs, so each
        call in progress keeps holding one operator who is free for it.
        """
        held = next((i for i, p in self._members.items() if attempt_id is not None and p.reserved_by == attempt_id),
                    None)
        current = self._members.get(interface)
        other = current.reserved_by if current is not None and current.reserved_by != attempt_id else None
        if current is not None:
            self._set(replace(current, on_call=True, wrapup_until=None, reserved_by=None if other else
                              current.reserved_by))
        self.release(attempt_id)
        if other is not None and held is not None and held != interface:
            self._set(replace(self._members[held], reserved_by=other))

    def align(self, reservations: dict[int, str]) -> None:
        """Reservations as the shared store has them (attempt -> operator), for attempts we hold."""
        for attempt_id, interface in reservations.items():
            if interface in self._members and self._members[interface].reserved_by != attempt_id:
                self.release(attempt_id)
                self._set(replace(self._members[interface], reserved_by=attempt_id))

    def completed(self, interface: str, wrapup_until: datetime) -> None:
        """AgentComplete: the call is over; the operator records the outcome until `wrapup_until`."""
        if interface in self._members:
            self._set(replace(self._members[interface], on_call=False, wrapup_until=wrapup_until))

    def wrapup_done(self, interface: str) -> None:
        if interface in self._members:
            self._set(replace(self._members[interface], wrapup_until=None))

    def remove(self, interface: str) -> None:
        self._members.pop(interface, None)

    # --- reservations: a call being dialed holds one free operator

    def reserve(self, attempt_id: int, interface: str | None, now: datetime) -> str | None:
        """Hold an available operator for this attempt: the named one if available, else any."""
        candidates = self.available(now)
        chosen = interface if interface in candidates else (candidates[0] if candidates else None)
        if chosen is not None:
            self._set(replace(self._members[chosen], reserved_by=attempt_id))
        return chosen

    def release(self, attempt_id: int | None) -> None:
        if attempt_id is None:
            return
        for interface, presence in list(self._members.items()):
            if presence.reserved_by == attempt_id:
                self._set(replace(presence, reserved_by=None))

    # --- questions

    def available(self, now: datetime) -> list[str]:
        """Operators who could take a call now and are not held for a call being dialed."""
        return [i for i, p in sorted(self._members.items())
                if p.state(now) is OperatorState.AVAILABLE and p.reserved_by is None]

    def presences(self) -> list[Presence]:
        return [self._members[i] for i in sorted(self._members)]

    def get(self, interface: str) -> Presence | None:
        return self._members.get(interface)

    def _set(self, presence: Presence) -> None:
        before = self._members.get(presence.interface)
        self._members[presence.interface] = presence
        if before is None or before != presence:
            log.debug("operator %s: %s", presence.interface, presence)


def calls_to_place(free_operators: int, *, limit: int | None = None) -> int:
    """Progressive pacing: one new call per free operator, never more (each call reserves one).

    `free_operators` already excludes operators held by calls being dialed, so the number of
    calls in progress never exceeds the number of operators who can take them.
    """
    count = max(0, free_operators)
    return min(count, limit) if limit is not None else count


def wrapup_deadline(ended_at: datetime, limit_seconds: float) -> datetime:
    return ended_at + timedelta(seconds=limit_seconds)
