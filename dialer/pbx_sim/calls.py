"""One originated call through the simulated PBX, from Originate to the last Hangup.

The PBX behaves as if it ran the sample dialplan of asterisk_conf/extensions.conf (and its
queues.conf), so the events it emits have the shapes of the `-via-local` pjsip transcripts:

    [dialer-trunk]        Local/<number>@dialer-trunk ;2: NoOp, Dial(PJSIP/<number>@trunk,,g),
                          NoOp(DIALSTATUS..), Hangup(${HANGUPCAUSE}) -> the carrier's cause reaches ;1
    [dialer-outbound] s   the answered ;1: NoOp; AMD() when the call carries DIALER_AMD=1 (MACHINE:
                          UserEvent DialerAMD, Hangup); MixMonitor; Dial(${DIALER_OPERATOR},12) when
                          that phone is idle; else Queue(operators,,,,20), and when Queue() returns
                          without an operator: UserEvent DialerQueue (QueueStatus TIMEOUT / JOINEMPTY /
                          LEAVEEMPTY), Hangup
    queues.conf           strategy fewestcalls, member timeout 15 s, retry 1 s, joinempty and
                          leavewhenempty = paused,...: all operators paused -> nobody waits

Legs: L1 = `Local/<number>@<ctx>-N;1` (the originated channel; Linkedid of every leg), L2 = its `;2`
half running the trunk context, T = `PJSIP/trunk-N` (the customer), O = `PJSIP/opK-N` (the operator).
Local channel optimization is not simulated: L1 stays up until the call ends (as with `/n`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from dialer.pbx_sim.channels import UNKNOWN, Channel, ChannelRegistry, ChannelState
from dialer.pbx_sim.events import AmiEvent, EventFactory, OriginateReason
from dialer.pbx_sim.operators import (
    DEVICE_STATE_TEXT, LEAVE_EMPTY, CallQueue, DeviceState, QueueEntry, QueueMember,
)
from dialer.pbx_sim.protocol import Action
from dialer.pbx_sim.scenarios import REJECTIONS, CarrierReply, CustomerPlan, Outcome

log = logging.getLogger("dialer.pbx_sim")

DEFAULT_ORIGINATE_TIMEOUT_MS = 30000
MACHINE_RECORDS = 30.0   # seconds an answering machine stays on the line when no AMD hangs it up
NORMAL = 16
NO_ANSWER = 19


class OriginateRefused(Exception):
    """An Originate action the PBX answers with `Response: Error`; the message is Asterisk's."""


@dataclass(frozen=True)
class OriginateRequest:
    action_id: str
    channel: str               # as requested, e.g. Local/+79123456789@dialer-trunk
    context: str
    exten: str
    priority: int
    timeout: float             # seconds of ringing before the originate gives up
    caller_num: str
    caller_name: str
    variables: tuple[tuple[str, str], ...]
    channel_id: str = ""
    other_channel_id: str = ""
    asynchronous: bool = True
    account: str = ""          # Originate Account: the CDR's accountcode

    @classmethod
    def from_action(cls, action: Action) -> "OriginateRequest":
        channel = action.get("Channel")
        if not channel:
            raise OriginateRefused("Channel not specified")
        if "/" not in channel:
            raise OriginateRefused("Invalid channel")
        try:
            timeout_ms = int(action.get("Timeout") or DEFAULT_ORIGINATE_TIMEOUT_MS)
            if timeout_ms < 0:
                raise ValueError
        except ValueError:
            raise OriginateRefused("Invalid timeout") from None
        try:
            priority = int(action.get("Priority") or 1)
        except ValueError:
            raise OriginateRefused("Invalid priority") from None
        if not action.get("Exten") or not action.get("Context"):
            raise OriginateRefused("Originate with no Context or Exten is not simulated")
        num, name = parse_callerid(action.get("CallerID"))
        return cls(action.action_id, channel, action.get("Context"), action.get("Exten"), priority,
                   timeout_ms / 1000.0, num, name, parse_variables(action.get_all("Variable")),
                   action.get("ChannelId"), action.get("OtherChannelId"),
                   action.get("Async").strip().lower() in ("true", "yes", "1", "on"), action.get("Account"))


def parse_callerid(text: str) -> tuple[str, str]:
    """`"Shop" <74950000000>` -> ("74950000000", "Shop"); parts not given are `<unknown>`."""
    text = text.strip()
    match = re.fullmatch(r'(?:"?(?P<name>[^"<]*?)"?\s*)?<(?P<num>[^>]*)>', text)
    if match:
        num, name = match.group("num").strip(), (match.group("name") or "").strip()
    elif re.fullmatch(r"[+\d*#]+", text):
        num, name = text, ""
    else:
        num, name = "", text
    return num or UNKNOWN, name or UNKNOWN


def parse_variables(headers: list[str]) -> tuple[tuple[str, str], ...]:
    """`Variable: A=1` headers (each may hold several, comma-separated, as Asterisk splits them)."""
    out = []
    for header in headers:
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep and name.strip():
                out.append((name.strip(), value))
    return tuple(out)


@dataclass(frozen=True)
class LocalTarget:
    number: str
    context: str
    optimize: bool

    @classmethod
    def parse(cls, channel: str) -> "LocalTarget | None":
        match = re.fullmatch(r"Local/(?P<exten>[^@/]+)(?:@(?P<context>[^/]+))?(?P<opts>/.*)?", channel,
                             flags=re.IGNORECASE)
        if not match:
            return None
        return cls(match.group("exten"), match.group("context") or "default", "n" not in (match.group("opts") or ""))


class CallResult(StrEnum):
    """How a simulated call ended, as the PBX saw it (for stats and tests, not the daemon's mapping)."""

    CONNECTED = "connected"        # talked to an operator
    ABANDONED = "abandoned"        # answered, no operator in time (queue timeout or the customer gave up)
    HANGUP = "hangup"              # answered and hung up before reaching the queue
    MACHINE = "machine"            # AMD found an answering machine
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    CONGESTION = "congestion"
    INVALID = "invalid"
    REJECT = "reject"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"        # the dialer hung up before the answer
    FAILED = "failed"              # the PBX could not place it
    DROPPED = "dropped"            # the PBX restarted or was killed mid-call


@dataclass(frozen=True)
class CallRecord:
    """A finished call, for tests and the simulator's log."""

    uniqueid: str
    action_id: str
    number: str
    variables: tuple[tuple[str, str], ...]
    outcome: Outcome
    result: CallResult
    operator: str | None
    started_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime


class Switch(Protocol):
    """What a call needs from the PBX around it."""

    registry: ChannelRegistry
    factory: EventFactory
    queue: CallQueue
    amd_seconds: float       # how long AMD() listens
    operator_ring: float     # DIALER_OPERATOR_RING: Dial() timeout of the promised operator
    member_timeout: float    # queues.conf timeout: ring one member this long
    member_retry: float      # queues.conf retry: pause before ringing again
    trunk: str
    speed: float

    def now(self) -> datetime: ...

    def emit(self, event: AmiEvent) -> None: ...

    def member_released(self, member: QueueMember, talked: bool) -> None: ...


class HungUp(Exception):
    """A Hangup action reached one of this call's channels."""

    def __init__(self, channel: Channel, cause: int) -> None:
        super().__init__(channel.name)
        self.channel = channel
        self.cause = cause


class Phase(StrEnum):
    DIALING = "dialing"
    DIALPLAN = "dialplan"
    QUEUED = "queued"
    OPERATOR_RINGING = "operator_ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class Call:
    def __init__(self, switch: Switch, request: OriginateRequest, target: LocalTarget, plan: CustomerPlan) -> None:
        self.sw = switch
        self.f = switch.factory
        self.request = request
        self.target = target
        self.plan = plan
        self.phase = Phase.DIALING
        self.result: CallResult | None = None
        self.originated: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._hangup: asyncio.Future[tuple[Channel, int]] = asyncio.get_running_loop().create_future()
        self.started_at = switch.now()
        self.answered_at: datetime | None = None
        self.connected_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.member: QueueMember | None = None
        self.via_queue = False
        self.entry: QueueEntry | None = None
        self.customer_bridge = ""
        self.operator_bridge = ""
        self.l1 = self.l2 = self.trunk = None  # type: ignore[assignment]
        self.op: Channel | None = None
        # The call's own timeline in simulated seconds: advanced by the waits it meant to make, so a
        # busy event loop at a high speed cannot make it skip a step (see _pause).
        self._t = 0.0
        self._joined_t = self._ring_t = self._connected_t = 0.0

    # ------------------------------------------------------------------ public

    @property
    def channels(self) -> list[Channel]:
        return [ch for ch in (self.l1, self.l2, self.trunk, self.op) if ch is not None]

    def owns(self, channel: Channel) -> bool:
        return any(channel is ch for ch in self.channels)

    def request_hangup(self, channel: Channel, cause: int) -> None:
        if not self._hangup.done():
            self._hangup.set_result((channel, cause))

    def record(self) -> CallRecord:
        return CallRecord(self.l1.uniqueid, self.request.action_id, self.target.number, self.request.variables,
                          self.plan.outcome, self.result or CallResult.DROPPED,
                          self.member.interface if self.member and self.connected_at else None,
                          self.started_at, self.answered_at, self.connected_at, self.ended_at or self.sw.now())

    def setup(self) -> None:
        """Create the Local pair and the trunk channel and start dialing (all at the Originate instant)."""
        req, sw, now = self.request, self.sw, self.sw.now()
        base = sw.registry.channel_name(f"Local/{self.target.number}@{self.target.context}")
        uid1 = sw.registry.uniqueid(now, req.channel_id)
        uid2 = sw.registry.uniqueid(now, req.other_channel_id or (req.channel_id + ";2" if req.channel_id else ""))
        self.l1 = self._new_channel(f"{base};1", uid1, uid1, self.target.context, self.target.number,
                                    ChannelState.DOWN)
        self.l2 = self._new_channel(f"{base};2", uid2, uid1, self.target.context, self.target.number,
                                    ChannelState.RING)
        l1, l2 = self.l1, self.l2
        self._exten(l1, "AppDial2", "(Outgoing Line)")
        for name, value in reversed(req.variables):
            self._setvar(l1, name, value)
        self._set_callerid(l1, req.caller_num, req.caller_name)
        for name, value in req.variables:
            self._setvar(l2, name, value)
        self._set_callerid(l2, req.caller_num, req.caller_name)
        options = "" if self.target.optimize else "/n"
        self.emit(self.f.local_bridge(l1, l2, self.target.context, self.target.number, self.target.optimize))
        self.emit(self.f.dial_begin(None, l1, f"{self.target.number}@{self.target.context}{options}"))
        self._exten(l2, "NoOp", f"dialer: dialing customer for lead {l2.var('LEAD_ID')} "
                                f"attempt {l2.var('ATTEMPT_ID')}")
        tech, trunk_peer = sw.trunk.split("/", 1)
        self._exten(l2, "Dial", f"{tech}/{self.target.number}@{trunk_peer},,g", priority=2)
        for name in ("DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
                     "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS"):
            self._setvar(l2, name, "", store=False)
        self.trunk = self._new_channel(sw.registry.channel_name(sw.trunk), sw.registry.uniqueid(now), uid1,
                                       "from-trunk", "s", ChannelState.DOWN)
        t = self.trunk
        self._setvar(t, "DIALEDPEERNUMBER", f"{self.target.number}@{trunk_peer}", store=False)
        for name, value in l2.inheritable():
            self._setvar(t, name, value)
        t.exten = self.target.number
        t.caller_num, t.caller_name = self.target.number, req.caller_name
        t.connected_num, t.connected_name = req.caller_num, req.caller_name
        self._exten(t, "AppDial", "(Outgoing Line)")
        self.emit(self.f.newcallerid(t))
        self.emit(self.f.newconnectedline(t))
        self.emit(self.f.dial_begin(l2, t, f"{self.target.number}@{trunk_peer}"))
        l2.connected_num = self.target.number
        self.emit(self.f.newconnectedline(l2))

    async def run(self) -> None:
        """Play the customer's plan to the end of the call."""
        try:
            await self._dial_customer()
        except asyncio.CancelledError:
            self.result = self.result or CallResult.DROPPED
            raise
        finally:
            self.phase = Phase.ENDED
            self.ended_at = self.sw.now()
            if not self.originated.done():
                self.originated.set_result(False)

    # ------------------------------------------------------------------ before the answer

    async def _dial_customer(self) -> None:
        plan, timeout = self.plan, self.request.timeout
        rings = plan.outcome is Outcome.NO_ANSWER or plan.rings
        until = math.inf if plan.outcome is Outcome.NO_ANSWER else plan.after
        try:
            if rings:
                self._customer_rings()
            if until >= timeout:
                await self._pause(timeout)
                self._originate_timeout()
                return
            await self._pause(until)
        except HungUp as hung:
            self._cancelled(hung.cause)
            return
        reply = REJECTIONS.get(plan.outcome)
        if reply is not None:
            self._carrier_rejects(reply)
            return
        self._answer()
        try:
            await self._after_answer()
        except HungUp as hung:
            if self.op is not None and hung.channel is self.op and self.phase is Phase.CONNECTED:
                self._operator_ends()
            elif hung.channel is self.l1 or hung.channel is self.op:
                self._l1_ends(hung.cause)
            else:
                self._customer_ends(hung.cause)

    def _customer_rings(self) -> None:
        t, l1, l2 = self.trunk, self.l1, self.l2
        self._state(t, ChannelState.RINGING)
        self._state(l1, ChannelState.RINGING)
        self._setvar(l2, "RINGTIME", "0", store=False)
        self.emit(self.f.dial_state(l2, t, "RINGING"))
        self.emit(self.f.dial_state(None, l1, "RINGING"))

    def _carrier_rejects(self, reply: CarrierReply) -> None:
        t, l1, l2 = self.trunk, self.l1, self.l2
        self.emit(self.f.hangup_request(t, reply.cause, reply.sip_code))
        self.emit(self.f.dial_end(l2, t, reply.dial_status))
        self._hangup_channel(t, reply.cause, reply.sip_code)
        self._setvar(l2, "DIALSTATUS", reply.dialstatus_var, store=False)
        self._exten(l2, "NoOp", f"dialer: DIALSTATUS={reply.dialstatus_var} HANGUPCAUSE={reply.cause}", priority=3)
        self._exten(l2, "Hangup", str(reply.cause), priority=4)
        self.emit(self.f.soft_hangup_request(l2, NORMAL))
        self._setvar(l1, "CHANLOCALSTATUS", reply.dialstatus_var, store=False)
        self.emit(self.f.hangup_request(l1, reply.cause))
        self._hangup_channel(l2, reply.cause)
        self.emit(self.f.dial_end(None, l1, reply.dial_status))
        self._hangup_channel(l1, reply.cause)
        self._originate_failed(OriginateReason.FAILED)
        self.result = CallResult(self.plan.outcome.value)

    def _originate_timeout(self) -> None:
        t, l1, l2 = self.trunk, self.l1, self.l2
        self.emit(self.f.hangup_request(l2, NO_ANSWER))
        self._originate_failed(OriginateReason.RINGING)
        self._hangup_channel(l1, NO_ANSWER)
        self.emit(self.f.dial_end(l2, t, "CANCEL"))
        self._setvar(l2, "DIALSTATUS", "CANCEL", store=False)
        self.emit(self.f.soft_hangup_request(l2, NORMAL))
        self._hangup_channel(l2, NO_ANSWER)
        self._hangup_channel(t, NO_ANSWER, 480)
        self.result = CallResult.NO_ANSWER

    def _cancelled(self, cause: int) -> None:
        """The dialer hung up a channel of the call before the customer answered."""
        t, l1, l2 = self.trunk, self.l1, self.l2
        self.emit(self.f.dial_end(None, l1, "NOANSWER"))
        self.emit(self.f.hangup_request(l2, cause))
        self._hangup_channel(l1, cause)
        self._originate_failed(OriginateReason.FAILED)
        self.emit(self.f.soft_hangup_request(l2, NORMAL))
        self.emit(self.f.dial_end(l2, t, "CANCEL"))
        self._setvar(l2, "DIALSTATUS", "CANCEL", store=False)
        self._hangup_channel(l2, cause)
        self._hangup_channel(t, cause)
        self.result = CallResult.CANCELLED

    def _originate_failed(self, reason: OriginateReason) -> None:
        if self.request.asynchronous:
            req = self.request
            self.emit(self.f.originate_response(req.action_id, False, req.channel, req.context, req.exten, reason,
                                                req.channel_id or UNKNOWN, req.caller_num, req.caller_name))
        if not self.originated.done():
            self.originated.set_result(False)

    # ------------------------------------------------------------------ answered

    def _answer(self) -> None:
        t, l1, l2, req = self.trunk, self.l1, self.l2, self.request
        self.answered_at = self.sw.now()
        self._state(t, ChannelState.UP)
        self.emit(self.f.dial_end(l2, t, "ANSWER"))
        self._setvar(l2, "DIALSTATUS", "ANSWER", store=False)
        self._state(l2, ChannelState.UP)
        l1.caller_num = self.target.number
        self._state(l1, ChannelState.UP)
        if req.asynchronous:
            self.emit(self.f.originate_response(req.action_id, True, l1.name, req.context, req.exten,
                                                OriginateReason.ANSWERED, l1.uniqueid, req.caller_num,
                                                req.caller_name, answered=l1))
        if not self.originated.done():
            self.originated.set_result(True)
        self.emit(self.f.dial_end(None, l1, "ANSWER"))
        self.customer_bridge = str(uuid.uuid4())
        self.emit(self.f.bridge_create(self.customer_bridge))
        for count, ch in enumerate((t, l2), start=1):
            ch.bridge_id = self.customer_bridge
            self.emit(self.f.bridge_enter(self.customer_bridge, count, ch))
        l1.context, l1.exten, l1.priority = req.context, req.exten, req.priority
        self.phase = Phase.DIALPLAN

    async def _after_answer(self) -> None:
        """[dialer-outbound] s: AMD when asked, record, the promised operator, then the queue."""
        l1, sw = self.l1, self.sw
        lead, attempt = l1.var("LEAD_ID"), l1.var("ATTEMPT_ID")
        self._exten(l1, "NoOp", f"dialer: customer answered, lead {lead} attempt {attempt}",
                    priority=self.request.priority)
        if self.plan.outcome is Outcome.HANGUP:
            self._customer_ends(NORMAL)
            return
        if l1.var("DIALER_AMD") == "1":
            self._exten(l1, "AMD", "", priority=3)
            await self._pause(sw.amd_seconds)
            machine = self.plan.outcome is Outcome.MACHINE
            status, cause = ("MACHINE", "LONGGREETING-2000-1500") if machine else ("HUMAN", "HUMAN-300-100")
            self._setvar(l1, "AMDSTATUS", status)
            self._setvar(l1, "AMDCAUSE", cause)
            self._exten(l1, "NoOp", f"dialer: AMDSTATUS={status} AMDCAUSE={cause}", priority=4)
            if machine:
                self._exten(l1, "UserEvent", f"DialerAMD,AMDStatus: MACHINE,AMDCause: {cause},LeadId: {lead},"
                                             f"AttemptId: {attempt}", priority=6)
                self.emit(self.f.user_event(l1, "DialerAMD", ("AMDStatus", "MACHINE"), ("AMDCause", cause),
                                            ("LeadId", lead), ("AttemptId", attempt)))
                self._exten(l1, "Hangup", "", priority=7)
                self._l1_ends(NORMAL, result=CallResult.MACHINE)
                return
        self._exten(l1, "MixMonitor", f"{attempt or l1.uniqueid}.wav,b", priority=8)
        member = self._promised_operator()
        if member is not None and await self._dial_promised(member):
            return
        await self._queue()

    def _promised_operator(self) -> QueueMember | None:
        """DIALER_OPERATOR, when DEVICE_STATE() of that phone is NOT_INUSE (paused or not: Dial ignores the queue)."""
        wanted = self.l1.var("DIALER_OPERATOR")
        if not wanted:
            return None
        member = self.sw.queue.member(wanted)
        if member is None or not member.idle:
            return None
        self.sw.queue.engage(member)
        return member

    async def _dial_promised(self, member: QueueMember) -> bool:
        """Dial(${DIALER_OPERATOR},ring): True when the call ended here, False to go on to the queue."""
        sw = self.sw
        self._exten(self.l1, "Dial", f"{member.interface},{int(sw.operator_ring)}", priority=11)
        self._ring_operator(member)
        patience = self._customer_patience()
        limit = min(member.spec.ring, sw.operator_ring, patience)
        await self._pause(limit)
        if member.spec.ring <= limit:
            self._operator_answers()
            await self._talk()
            return True
        if patience <= limit:
            self._customer_ends(NORMAL)
            return True
        self._operator_not_answering("NOANSWER")
        return False

    async def _queue(self) -> None:
        """Queue(operators,,,,wait): until an operator answers, the wait runs out or the customer gives up."""
        sw, l1 = self.sw, self.l1
        queue = sw.queue
        self.via_queue = True
        self._exten(l1, "Queue", f"{queue.name},,,,{int(queue.wait)}", priority=13)
        if not queue.has_present_member():
            self._queue_gives_up("JOINEMPTY")
            return
        joined = sw.now()
        self._joined_t = self._t
        self.entry = entry = queue.join(self, joined)
        self.phase = Phase.QUEUED
        self.emit(self.f.queue_caller_join(l1, queue.name, queue.position(entry), len(queue.waiting)))
        queue.dispatch(joined)
        patience = self._customer_patience()
        while True:
            waited = self._t - self._joined_t
            wait_left, patience_left = queue.wait - waited, patience - waited
            assigned = await self._await_member(entry, min(wait_left, patience_left))
            if assigned is None:
                if patience_left <= wait_left:
                    self._customer_ends(NORMAL)
                else:
                    self._queue_gives_up("TIMEOUT")
                return
            if assigned == LEAVE_EMPTY:
                self._queue_gives_up("LEAVEEMPTY")
                return
            member = assigned
            self._ring_operator(member)
            waited = self._t - self._joined_t
            wait_left, patience_left = queue.wait - waited, patience - waited
            limit = min(member.spec.ring, sw.member_timeout, max(wait_left, 0.0), max(patience_left, 0.0))
            await self._pause(limit)
            if member.spec.ring <= limit:
                self._operator_answers()
                await self._talk()
                return
            if patience_left <= limit:
                self._customer_ends(NORMAL)
                return
            if wait_left <= limit:
                self._operator_not_answering("CANCEL")
                self._queue_gives_up("TIMEOUT")
                return
            self._operator_not_answering("NOANSWER", ring_no_answer=True)
            await self._pause(sw.member_retry)
            entry.assigned = asyncio.get_running_loop().create_future()
            entry.assigned_at = None
            queue.dispatch(sw.now())

    async def _await_member(self, entry: QueueEntry, limit: float) -> QueueMember | str | None:
        started = self.sw.now()
        timeout = None if math.isinf(limit) else max(limit, 0.0) / self.sw.speed
        await asyncio.wait({entry.assigned, self._hangup}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if entry.assigned.done() and entry.assigned_at is not None:      # waited until the queue chose
            spent = max(0.0, (entry.assigned_at - started).total_seconds())
        elif self._hangup.done():
            spent = self._seconds_since(started)
        else:                                                             # the whole limit ran out
            spent = limit
        self._t += min(spent, max(limit, 0.0))
        assigned = entry.assigned.result() if entry.assigned.done() else None
        if not entry.assigned.done():
            entry.assigned.cancel()
        if self._hangup.done():
            if isinstance(assigned, QueueMember):
                self._give_back(assigned)
            channel, cause = self._hangup.result()
            raise HungUp(channel, cause)
        return assigned

    def _give_back(self, member: QueueMember) -> None:
        """A member chosen for this caller was never rung (the caller left first)."""
        self.sw.queue.release(member, self.sw.now(), self._epoch(), talked=False, queue_call=True)
        self.sw.member_released(member, talked=False)

    def _queue_gives_up(self, status: str) -> None:
        """Queue() returned without an operator: UserEvent DialerQueue, then the dialplan hangs up."""
        l1 = self.l1
        if status != "JOINEMPTY":
            self._leave_queue(abandoned=True)
        self.phase = Phase.DIALPLAN
        self._setvar(l1, "QUEUESTATUS", status)
        lead, attempt = l1.var("LEAD_ID"), l1.var("ATTEMPT_ID")
        self._exten(l1, "UserEvent", f"DialerQueue,QueueStatus: {status},LeadId: {lead},AttemptId: {attempt}",
                    priority=14)
        self.emit(self.f.user_event(l1, "DialerQueue", ("QueueStatus", status), ("LeadId", lead),
                                    ("AttemptId", attempt)))
        self._exten(l1, "Hangup", "", priority=16)
        self._l1_ends(NORMAL, result=CallResult.ABANDONED)

    def _leave_queue(self, abandoned: bool) -> None:
        queue, entry, l1 = self.sw.queue, self.entry, self.l1
        if entry is None or entry not in queue.waiting:
            return
        position = queue.position(entry)
        if abandoned:
            held = self._t - self._joined_t
            self.emit(self.f.queue_caller_abandon(l1, queue.name, position, entry.original_position, int(held)))
            queue.record_abandoned()
        queue.leave(entry)
        self.emit(self.f.queue_caller_leave(l1, queue.name, position, len(queue.waiting)))

    def _ring_operator(self, member: QueueMember) -> None:
        sw, l1 = self.sw, self.l1
        self.member = member
        now = sw.now()
        op = self._new_channel(sw.registry.channel_name(member.interface), sw.registry.uniqueid(now), l1.linkedid,
                               "from-operators", self.request.exten, ChannelState.DOWN,
                               caller=(l1.caller_num, l1.caller_name))
        self.op = op
        for name, value in l1.inheritable():
            self._setvar(op, name, value)
        self._exten(op, "AppQueue" if self.via_queue else "AppDial", "(Outgoing Line)")
        peer = member.interface.split("/", 1)[1]
        self._setvar(op, "DIALEDPEERNUMBER", peer, store=False)
        if self.via_queue:
            self.emit(self.f.agent_called(l1, op, sw.queue.name, member.snapshot(sw.queue.name)))
        self.emit(self.f.dial_begin(l1, op, peer))
        self._state(op, ChannelState.RINGING)
        self._member_status(member, DeviceState.RINGING)
        self.emit(self.f.dial_state(l1, op, "RINGING"))
        self.phase = Phase.OPERATOR_RINGING
        self._ring_t = self._t

    def _operator_not_answering(self, dial_status: str, ring_no_answer: bool = False) -> None:
        """Stop ringing the operator (Dial timeout, queue member timeout or queue wait over)."""
        l1, op, member = self.l1, self.op, self.member
        assert op is not None and member is not None
        self.emit(self.f.dial_end(l1, op, dial_status))
        self._hangup_channel(op, NORMAL)
        if ring_no_answer:
            ring_ms = round((self._t - self._ring_t) * 1000)
            self.emit(self.f.agent_ring_no_answer(l1, op, self.sw.queue.name, member.snapshot(self.sw.queue.name),
                                                  ring_ms))
        self._release(member, talked=False)
        self.op = None
        self.member = None
        self.phase = Phase.QUEUED if self.entry is not None else Phase.DIALPLAN

    def _operator_answers(self) -> None:
        sw, l1, op, member = self.sw, self.l1, self.op, self.member
        assert op is not None and member is not None
        self._state(op, ChannelState.UP)
        self.emit(self.f.dial_end(l1, op, "ANSWER"))
        now = sw.now()
        if self.via_queue and self.entry is not None:
            hold = self._t - self._joined_t
            self._leave_queue(abandoned=False)
            self._setvar(l1, "QUEUEPOSITION", str(self.entry.original_position), store=False)
            self.emit(self.f.agent_connect(l1, op, sw.queue.name, member.snapshot(sw.queue.name), int(hold),
                                           int(self._t - self._ring_t)))
            sw.queue.record_connected(hold)
        self.operator_bridge = str(uuid.uuid4())
        self.emit(self.f.bridge_create(self.operator_bridge))
        for count, ch in enumerate((op, l1), start=1):
            ch.bridge_id = self.operator_bridge
            self.emit(self.f.bridge_enter(self.operator_bridge, count, ch))
        member.in_call = True
        member.connected_calls += 1
        self._member_status(member, DeviceState.INUSE)
        self.connected_at = now
        self._connected_t = self._t
        self.phase = Phase.CONNECTED

    async def _talk(self) -> None:
        assert self.member is not None
        operator_talk = self.member.spec.talk
        customer_talk = self.plan.talk if self.plan.talk is not None else math.inf
        if self.plan.outcome is Outcome.MACHINE and self.plan.talk is None:
            customer_talk = MACHINE_RECORDS   # nobody ran AMD: the operator hears a greeting and a beep
        await self._pause(min(operator_talk, customer_talk))
        if customer_talk <= operator_talk:
            self._customer_ends(NORMAL)
        else:
            self._operator_ends()

    # ------------------------------------------------------------------ endings after the answer

    def _customer_ends(self, cause: int) -> None:
        """The customer hangs up (BYE from the carrier): trunk and L2 go, then L1 and the operator."""
        t, l1, l2 = self.trunk, self.l1, self.l2
        self.emit(self.f.hangup_request(t))
        self._leave_bridge(self.customer_bridge, t, remaining=1)
        self._hangup_channel(t, cause)
        self._leave_bridge(self.customer_bridge, l2, remaining=0)
        self.emit(self.f.bridge_destroy(self.customer_bridge))
        self._exten(l2, "Hangup", str(cause), priority=4)
        self.emit(self.f.soft_hangup_request(l2, NORMAL))
        self.emit(self.f.hangup_request(l1, cause))
        self._hangup_channel(l2, cause)
        self._l1_down(cause, agent_reason="caller")
        if self.result is None:
            self.result = self._answered_result()

    def _l1_ends(self, cause: int, result: CallResult | None = None) -> None:
        """The originated channel ends (its dialplan finished, or a Hangup action): then the trunk side."""
        self._l1_down(cause, agent_reason="caller")
        self.result = result or self.result or self._answered_result()
        self._customer_side_down(cause)

    def _operator_ends(self) -> None:
        """The operator hangs up: AgentComplete (agent), L1's dialplan ends, then the customer's legs."""
        l1, op, member = self.l1, self.op, self.member
        assert op is not None and member is not None
        self.emit(self.f.hangup_request(op))
        self._leave_bridge(self.operator_bridge, op, remaining=1)
        self._hangup_channel(op, NORMAL)
        self._release(member, talked=True)
        self._leave_bridge(self.operator_bridge, l1, remaining=0)
        self.emit(self.f.bridge_destroy(self.operator_bridge))
        self._agent_complete("agent")
        self.emit(self.f.soft_hangup_request(l1, NORMAL))
        self._hangup_channel(l1, NORMAL)
        self.result = CallResult.CONNECTED
        self._customer_side_down(NORMAL)

    def _l1_down(self, cause: int, agent_reason: str) -> None:
        """L1 goes; what it was doing (queued, ringing an operator, talking) ends with it."""
        l1, op, member = self.l1, self.op, self.member
        if self.phase is Phase.QUEUED:
            self._leave_queue(abandoned=True)
        elif self.phase is Phase.OPERATOR_RINGING and op is not None and member is not None:
            self.emit(self.f.dial_end(l1, op, "CANCEL"))
            self._hangup_channel(op, NORMAL)
            self._release(member, talked=False)
            self._leave_queue(abandoned=True)
        elif self.phase is Phase.CONNECTED and op is not None and member is not None:
            self._leave_bridge(self.operator_bridge, l1, remaining=1)
            self._leave_bridge(self.operator_bridge, op, remaining=0)
            self.emit(self.f.bridge_destroy(self.operator_bridge))
            self._agent_complete(agent_reason)
            self._hangup_channel(op, NORMAL)
            self._release(member, talked=True)
        self.emit(self.f.soft_hangup_request(l1, NORMAL))
        self._hangup_channel(l1, cause)
        self.phase = Phase.ENDED

    def _customer_side_down(self, cause: int) -> None:
        """L1 went first: L2 is hung up, its Dial hangs up the trunk (we send the BYE)."""
        t, l2 = self.trunk, self.l2
        self.emit(self.f.hangup_request(l2, cause))
        self._leave_bridge(self.customer_bridge, l2, remaining=1)
        self.emit(self.f.soft_hangup_request(l2, NORMAL))
        self._hangup_channel(l2, cause)
        self._leave_bridge(self.customer_bridge, t, remaining=0)
        self.emit(self.f.bridge_destroy(self.customer_bridge))
        self._hangup_channel(t, cause)

    def _agent_complete(self, reason: str) -> None:
        if not self.via_queue or self.op is None or self.member is None or self.connected_at is None:
            return
        queue = self.sw.queue
        hold = self._connected_t - self._joined_t if self.entry else 0.0
        talk = self._t - self._connected_t
        queue.record_talk(talk)
        self.emit(self.f.agent_complete(self.l1, self.op, queue.name, self.member.snapshot(queue.name), int(hold),
                                        int(talk), reason))

    def _answered_result(self) -> CallResult:
        if self.connected_at is not None:
            return CallResult.CONNECTED
        if self.entry is not None or self.member is not None:
            return CallResult.ABANDONED
        return CallResult.HANGUP

    # ------------------------------------------------------------------ helpers

    def emit(self, event: AmiEvent) -> None:
        self.sw.emit(event)

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds` of simulated time; a Hangup action on one of our channels cuts it short."""
        if self._hangup.done():
            channel, cause = self._hangup.result()
            raise HungUp(channel, cause)
        started = self.sw.now()
        timeout = None if math.isinf(seconds) else max(seconds, 0.0) / self.sw.speed
        done, _ = await asyncio.wait({self._hangup}, timeout=timeout)
        if done:
            self._t += min(self._seconds_since(started), seconds)
            channel, cause = self._hangup.result()
            raise HungUp(channel, cause)
        self._t += seconds

    def _customer_patience(self) -> float:
        return self.plan.patience if self.plan.patience is not None else math.inf

    def _seconds_since(self, when: datetime) -> float:
        return max(0.0, (self.sw.now() - when).total_seconds())

    def _epoch(self) -> int:
        return int(self.sw.now().timestamp())

    def _new_channel(self, name: str, uniqueid: str, linkedid: str, context: str, exten: str,
                     state: ChannelState, caller: tuple[str, str] | None = None) -> Channel:
        ch = Channel(name, uniqueid, linkedid, context, exten, self.sw.now(), state=state)
        if caller:
            ch.caller_num, ch.caller_name = caller
            ch.connected_num, ch.connected_name = caller
        self.sw.registry.add(ch)
        self.emit(self.f.newchannel(ch))
        return ch

    def _hangup_channel(self, ch: Channel, cause: int, tech_cause: int | None = None) -> None:
        self.emit(self.f.hangup(ch, cause, tech_cause))
        ch.bridge_id = ""
        self.sw.registry.remove(ch)

    def _state(self, ch: Channel, state: ChannelState) -> None:
        ch.state = state
        self.emit(self.f.newstate(ch))

    def _exten(self, ch: Channel, application: str, data: str, priority: int | None = None) -> None:
        ch.application, ch.app_data = application, data
        if priority is not None:
            ch.priority = priority
        self.emit(self.f.newexten(ch))

    def _setvar(self, ch: Channel, name: str, value: str, store: bool = True) -> None:
        if store:
            ch.variables[name] = value
        self.emit(self.f.varset(ch, name, value))

    def _set_callerid(self, ch: Channel, num: str, name: str) -> None:
        ch.caller_num, ch.caller_name = num, name
        self.emit(self.f.newcallerid(ch))
        ch.connected_num, ch.connected_name = num, name
        self.emit(self.f.newconnectedline(ch))

    def _leave_bridge(self, bridge_id: str, ch: Channel, remaining: int) -> None:
        if bridge_id and ch.bridge_id == bridge_id:
            self.emit(self.f.bridge_leave(bridge_id, remaining, ch))
            ch.bridge_id = ""

    def _member_status(self, member: QueueMember, status: DeviceState) -> None:
        member.status = status
        self.emit(self.f.device_state_change(member.interface, DEVICE_STATE_TEXT[status]))
        self.emit(self.f.queue_member_status(member.snapshot(self.sw.queue.name)))

    def _release(self, member: QueueMember, talked: bool) -> None:
        self.sw.queue.release(member, self.sw.now(), self._epoch(), talked, self.via_queue)
        self.emit(self.f.device_state_change(member.interface, "NOT_INUSE"))
        self.emit(self.f.queue_member_status(member.snapshot(self.sw.queue.name)))
        self.sw.member_released(member, talked)
