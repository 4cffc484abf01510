"""Operators of the simulated PBX: members of one Asterisk queue, with talk and wrap-up times.

A member is `available` when it is not paused, its phone is idle (device state NOT_INUSE) and its
wrap-up after the last call is over; paused members never get a queue call. The queue hands the
head caller to the available member with the fewest calls taken (queues.conf `strategy =
fewestcalls`, ties in configuration order), one member at a time, first come first served. With
`joinempty`/`leavewhenempty = paused,...` a queue whose members are all paused takes no caller and
sends its waiting callers away (LEAVEEMPTY).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kernel.errors import UsageError
from dialer.pacing import MemberStatus as DeviceState  # Asterisk's device states, as the queue reports them
from dialer.pbx_sim.events import MemberSnapshot


DEVICE_STATE_TEXT = {DeviceState.NOT_INUSE: "NOT_INUSE", DeviceState.INUSE: "INUSE",
                     DeviceState.RINGING: "RINGING", DeviceState.UNAVAILABLE: "UNAVAILABLE"}


@dataclass(frozen=True)
class OperatorSpec:
    """One operator: phone interface (`PJSIP/op1`), display name, and how long they take."""

    interface: str
    name: str
    talk: float = 60.0     # seconds the operator talks before ending the call (if the customer does not first)
    wrapup: float = 5.0    # seconds after a call before the next one (recording the disposition)
    ring: float = 1.0      # seconds the operator's phone rings before they pick up
    paused: bool = False

    def __post_init__(self) -> None:
        if "/" not in self.interface or self.interface.startswith("/") or self.interface.endswith("/"):
            raise UsageError(f"operator interface {self.interface!r} must look like PJSIP/op1")
        for attr in ("talk", "wrapup", "ring"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"operator {attr} must be a non-negative number of seconds, got {value!r}")

    @classmethod
    def parse(cls, text: str, talk: float = 60.0, wrapup: float = 5.0) -> "OperatorSpec":
        """`PJSIP/op1:Анна` (name optional: the interface's last part)."""
        interface, _, name = text.partition(":")
        interface = interface.strip()
        return cls(interface, name.strip() or interface.rsplit("/", 1)[-1], talk=talk, wrapup=wrapup)


def numbered_operators(count: int, talk: float = 60.0, wrapup: float = 5.0) -> list[OperatorSpec]:
    """PJSIP/op1 .. PJSIP/opN named "Operator 1" .. "Operator N"."""
    if count < 1:
        raise UsageError("at least one operator is needed")
    return [OperatorSpec(f"PJSIP/op{i}", f"Operator {i}", talk=talk, wrapup=wrapup) for i in range(1, count + 1)]


@dataclass(eq=False)
class QueueMember:
    spec: OperatorSpec
    login_time: int
    status: DeviceState = DeviceState.NOT_INUSE
    paused: bool = False
    paused_reason: str = ""
    last_pause: int = 0
    calls_taken: int = 0
    last_call: int = 0
    in_call: bool = False
    engaged: int = 0                   # calls ringing or connected to this member right now
    peak_engaged: int = 0
    wrapup_until: datetime | None = None
    connected_calls: int = 0           # every call this member talked on (queue and direct)

    @property
    def interface(self) -> str:
        return self.spec.interface

    def available(self, now: datetime) -> bool:
        return not self.paused and self.idle and (self.wrapup_until is None or now >= self.wrapup_until)

    @property
    def idle(self) -> bool:
        """The phone is free (DEVICE_STATE NOT_INUSE): what the dialplan checks before Dial()."""
        return self.engaged == 0 and self.status == DeviceState.NOT_INUSE

    @property
    def present(self) -> bool:
        """Counts for joinempty/leavewhenempty = paused,unavailable,invalid,unknown."""
        return not self.paused and self.status not in (DeviceState.UNAVAILABLE, DeviceState.INVALID,
                                                       DeviceState.UNKNOWN)

    def snapshot(self, queue: str) -> MemberSnapshot:
        return MemberSnapshot(queue, self.spec.name, self.interface, self.calls_taken, self.last_call,
                              self.last_pause, self.login_time, self.in_call, int(self.status), self.paused,
                              self.paused_reason, int(self.spec.wrapup))


LEAVE_EMPTY = "LEAVEEMPTY"   # what a waiting caller is told when every member went away


@dataclass(eq=False)
class QueueEntry:
    """A caller waiting in the queue; `assigned` resolves with the member chosen for it (or LEAVE_EMPTY)."""

    caller: object
    joined_at: datetime
    original_position: int
    assigned: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    assigned_at: datetime | None = None


class CallQueue:
    def __init__(self, name: str, operators: list[OperatorSpec], login_time: int, wait: float = 30.0) -> None:
        self.name = name
        self.wait = wait
        self.members: dict[str, QueueMember] = {}
        self.waiting: list[QueueEntry] = []
        self.completed = 0
        self.abandoned = 0
        self.peak_waiting = 0
        self._hold_total = 0.0
        self._talk_total = 0.0
        for spec in operators:
            self.add(spec, login_time)

    def add(self, spec: OperatorSpec, login_time: int) -> QueueMember:
        if spec.interface in self.members:
            raise UsageError(f"operator {spec.interface} is already a member of queue {self.name}")
        member = QueueMember(spec, login_time, paused=spec.paused)
        self.members[spec.interface] = member
        return member

    def member(self, interface: str) -> QueueMember | None:
        found = self.members.get(interface)
        if found is None:
            found = next((m for m in self.members.values() if m.interface.lower() == interface.lower()), None)
        return found

    def available(self, now: datetime) -> list[QueueMember]:
        free = [m for m in self.members.values() if m.available(now)]
        return sorted(free, key=lambda m: m.calls_taken)   # fewestcalls; stable: ties keep config order

    def has_present_member(self) -> bool:
        return any(m.present for m in self.members.values())

    # --- engaging members

    def engage(self, member: QueueMember) -> None:
        member.engaged += 1
        member.peak_engaged = max(member.peak_engaged, member.engaged)

    def release(self, member: QueueMember, now: datetime, epoch: int, talked: bool, queue_call: bool) -> None:
        """The call on this member is over: idle again; after a queue call, in wrap-up (as app_queue
        counts it: a direct Dial() to the member neither counts as a call taken nor starts a wrap-up)."""
        member.engaged = max(0, member.engaged - 1)
        member.in_call = False
        member.status = DeviceState.NOT_INUSE
        if talked and queue_call:
            member.wrapup_until = now + timedelta(seconds=member.spec.wrapup)
            member.calls_taken += 1
            member.last_call = epoch

    # --- callers

    def join(self, caller: object, now: datetime) -> QueueEntry:
        entry = QueueEntry(caller, now, len(self.waiting) + 1)
        self.waiting.append(entry)
        self.peak_waiting = max(self.peak_waiting, len(self.waiting))
        return entry

    def position(self, entry: QueueEntry) -> int:
        return self.waiting.index(entry) + 1 if entry in self.waiting else 0

    def leave(self, entry: QueueEntry) -> None:
        if entry in self.waiting:
            self.waiting.remove(entry)

    def dispatch(self, now: datetime) -> None:
        """Give waiting callers, oldest first, to available members; with no member left, send them away."""
        if not self.has_present_member():
            for entry in self.waiting:
                if not entry.assigned.done():
                    entry.assigned_at = now
                    entry.assigned.set_result(LEAVE_EMPTY)
            return
        for entry in list(self.waiting):
            if entry.assigned.done():
                continue
            free = self.available(now)
            if not free:
                return
            self.engage(free[0])
            entry.assigned_at = now
            entry.assigned.set_result(free[0])

    def record_connected(self, hold: float) -> None:
        self.completed += 1
        self._hold_total += hold

    def record_talk(self, talk: float) -> None:
        self._talk_total += talk

    def record_abandoned(self) -> None:
        self.abandoned += 1

    @property
    def holdtime(self) -> int:
        return round(self._hold_total / self.completed) if self.completed else 0

    @property
    def talktime(self) -> int:
        return round(self._talk_total / self.completed) if self.completed else 0
