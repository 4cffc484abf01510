"""The console's window on the operators' queue: live states, and pause / resume through Asterisk.

`AsteriskSwitchboard` reads the daemon's OperatorBoard (fed by Asterisk's queue events) and pauses
with the AMI action QueuePause; the pause shows on the board when Asterisk confirms it with
QueueMemberPause. `FakeSwitchboard` holds states in memory (tests, the console without a PBX).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol

from dialer.ami.adapter import AmiClient
from dialer.ami.errors import AmiActionError, AmiError
from kernel.errors import DialerError
from dialer.pacing import MemberStatus, OperatorBoard, OperatorState, Presence

NOT_IN_QUEUE = "not_in_queue"     # a registered operator Asterisk does not list in the queue


class PauseRefused(DialerError):
    """Asterisk refused to pause or resume this operator."""


class PbxUnavailable(DialerError):
    """The telephone exchange is not connected; try again in a moment."""


class Switchboard(Protocol):
    def presences(self) -> list[Presence]:
        """Every queue member Asterisk told us about."""
        ...

    def state_of(self, interface: str | None, now: datetime) -> str:
        """available / on_call / wrap_up / paused / offline, or not_in_queue."""
        ...

    async def pause(self, interface: str, paused: bool, reason: str) -> None:
        """Pause (or resume) the operator in the queue; PauseRefused / PbxUnavailable on failure."""
        ...


def presence_state(presence: Presence | None, now: datetime) -> str:
    return presence.state(now).value if presence is not None else NOT_IN_QUEUE


class AsteriskSwitchboard:
    def __init__(self, board: OperatorBoard, ami: AmiClient, queue: str) -> None:
        self._board = board
        self._ami = ami
        self._queue = queue

    def presences(self) -> list[Presence]:
        return self._board.presences()

    def state_of(self, interface: str | None, now: datetime) -> str:
        return presence_state(self._board.get(interface) if interface else None, now)

    async def pause(self, interface: str, paused: bool, reason: str) -> None:
        if not self._ami.connected:
            raise PbxUnavailable()
        try:
            await self._ami.queue_pause(interface, paused, reason, queue=self._queue)
        except AmiActionError as exc:
            raise PauseRefused(f"Asterisk refused: {exc.reason}") from None
        except AmiError as exc:
            raise PbxUnavailable(f"the telephone exchange did not answer ({exc}); try again in a moment") from None


class FakeSwitchboard:
    """Operators' states in memory; pausing one flips its `paused` flag at once."""

    def __init__(self, presences: list[Presence] | None = None, *, connected: bool = True) -> None:
        self._members = {p.interface: p for p in presences or []}
        self.connected = connected
        self.pauses: list[tuple[str, bool, str]] = []

    def add(self, interface: str, name: str = "", status: MemberStatus = MemberStatus.NOT_INUSE) -> None:
        self._members[interface] = Presence(interface, name or interface, status)

    def presences(self) -> list[Presence]:
        return [self._members[i] for i in sorted(self._members)]

    def state_of(self, interface: str | None, now: datetime) -> str:
        return presence_state(self._members.get(interface) if interface else None, now)

    async def pause(self, interface: str, paused: bool, reason: str) -> None:
        if not self.connected:
            raise PbxUnavailable()
        if interface not in self._members:
            raise PauseRefused("Asterisk refused: Interface not found")
        self.pauses.append((interface, paused, reason))
        self._members[interface] = replace(self._members[interface], paused=paused)


STATE_WORDS = {
    OperatorState.AVAILABLE.value: "Свободен",
    OperatorState.ON_CALL.value: "Разговор",
    OperatorState.WRAP_UP.value: "Оформление",
    OperatorState.PAUSED.value: "Пауза",
    OperatorState.OFFLINE.value: "Не в сети",
    NOT_IN_QUEUE: "Не в очереди",
}
