"""Typed AMI events: each raw AMI message the dialer cares about becomes one frozen dataclass, here, once.

`parse_event(raw, received_at)` is the ONE dispatch table from the AMI event name to its parser.
An event the dialer does not use gives None; a message missing a field the dialer cannot do
without (a channel event with no Uniqueid) raises AmiProtocolError; a garbled number becomes a
safe default (None, or 0 for a Hangup Cause). Nothing else raises.

Asterisk sends no timestamps (timestampevents is off), so every event carries `received_at`,
stamped by the adapter from its injected Clock, or by a replay from the transcript's time.

The field names follow the AMI headers (Uniqueid -> uniqueid, CallerIDName -> caller_id_name);
a DialBegin/DialEnd/Agent* event has two channels: `caller` (the Channel* headers; absent when
the dial is the Originate's own) and `dest` / `member` (the Dest* headers).
Lifecycle notifications of the connection itself (Connected, Disconnected, LoginFailed) are
AmiEvents too, so the daemon sees them in order with the AMI events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from dialer.ami.errors import AmiProtocolError

RawMessage = Mapping[str, "str | Sequence[str]"]
"""One AMI message as header -> value; a repeated header (ChanVariable, Variable) gives a list."""

NO_VARIABLES: Mapping[str, str] = MappingProxyType({})


class ChannelState(IntEnum):
    """Asterisk's ChannelState numbers (ChannelStateDesc in words)."""

    DOWN = 0
    RESERVED = 1
    OFFHOOK = 2
    DIALING = 3
    RING = 4        # the channel rings out (a Local ;2 leg just created)
    RINGING = 5     # the far end is ringing
    UP = 6          # answered
    BUSY = 7
    DIALING_OFFHOOK = 8
    PRERING = 9


# ---------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRef:
    """One channel as an event describes it. `uniqueid` restarts with Asterisk: never a durable key."""

    name: str
    uniqueid: str
    linkedid: str
    state: int = -1                 # ChannelState number; -1 when absent or garbled
    caller_id_num: str = ""         # "" where Asterisk says "<unknown>"
    caller_id_name: str = ""
    connected_line_num: str = ""
    connected_line_name: str = ""
    context: str = ""
    exten: str = ""
    variables: Mapping[str, str] = field(default_factory=lambda: NO_VARIABLES, hash=False)  # ChanVariable headers


# ---------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    received_at: datetime

    @property
    def name(self) -> str:
        return type(self).__name__

    def channels(self) -> tuple[ChannelRef, ...]:
        """Every channel the event is about (for correlating it with a call)."""
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AmiEvent):
    channel: ChannelRef

    def channels(self) -> tuple[ChannelRef, ...]:
        return (self.channel,)


@dataclass(frozen=True, slots=True, kw_only=True)
class Newchannel(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Newstate(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(ChannelEvent):
    cause: int = 0                  # Q.850 cause (16 normal clearing, 17 busy, ...)
    cause_txt: str = ""
    tech_cause: int | None = None   # chan_pjsip: the SIP response code (486, 404, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupRequest(ChannelEvent):
    cause: int | None = None        # absent when the far end sent BYE
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VarSet(ChannelEvent):
    variable: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEvent(AmiEvent):
    """Dialplan UserEvent(Name,Key: value,...). `headers` holds the Key: value pairs as sent."""

    user_event: str
    channel: ChannelRef | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: NO_VARIABLES, hash=False)

    def channels(self) -> tuple[ChannelRef, ...]:
        return (self.channel,) if self.channel else ()

    def header(self, key: str, default: str = "") -> str:
        wanted = key.lower()
        for k, v in self.headers.items():
            if k.lower() == wanted:
                return v
        return default


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEnter(ChannelEvent):
    bridge_id: str
    bridge_type: str = ""
    bridge_num_channels: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerEvent(ChannelEvent):
    queue: str
    position: int | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerJoin(QueueCallerEvent):
    """The answered customer waits in the operators' queue."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerLeave(QueueCallerEvent):
    """The customer left the queue: to an operator (AgentConnect follows) or gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerAbandon(ChannelEvent):
    """The caller hung up while waiting in the queue: no operator took the call."""

    queue: str
    position: int | None = None
    original_position: int | None = None
    hold_time: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreShowChannel(ChannelEvent):
    """One row of the CoreShowChannels reply: a live channel, for reconciliation."""

    application: str = ""
    application_data: str = ""
    duration_seconds: int | None = None
    bridge_id: str = ""
    action_id: str = ""


ChannelSnapshot = CoreShowChannel


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEvent(AmiEvent):
    caller: ChannelRef | None       # None when the dial is the Originate's own (no Channel* headers)
    dest: ChannelRef

    def channels(self) -> tuple[ChannelRef, ...]:
        return (self.caller, self.dest) if self.caller else (self.dest,)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialBegin(DialEvent):
    dial_string: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DialState(DialEvent):
    dial_status: str = ""           # RINGING, PROCEEDING, PROGRESS


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEnd(DialEvent):
    dial_status: str = ""           # ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL, ...
    forward: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent(AmiEvent):
    """Queue <-> operator events. `interface` is the queue member (e.g. PJSIP/op1, Local/op1@operators/n)."""

    queue: str
    interface: str
    member_name: str = ""
    caller: ChannelRef | None = None   # the customer's channel waiting in the queue
    member: ChannelRef | None = None   # the operator's leg

    def channels(self) -> tuple[ChannelRef, ...]:
        return tuple(c for c in (self.caller, self.member) if c is not None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnect(AgentEvent):
    hold_time: int | None = None
    ring_time: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentComplete(AgentEvent):
    hold_time: int | None = None
    talk_time: int | None = None
    reason: str = ""                # caller / agent / transfer


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberState(AmiEvent):
    """An operator as a queue member. `status` is Asterisk's device state number: 1 not in use,
    2 in use, 3 busy, 5 unavailable, 6 ringing... (dialer.pacing.MemberStatus names them)."""

    queue: str
    interface: str
    member_name: str = ""
    state_interface: str = ""
    status: int = 0
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    calls_taken: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberStatus(QueueMemberState):
    """A member's state changed (event)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberPause(AmiEvent):
    queue: str
    interface: str
    member_name: str = ""
    paused: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueParams(AmiEvent):
    """QueueStatus reply: the queue itself."""

    queue: str
    strategy: str = ""
    calls: int | None = None
    holdtime: int | None = None
    talktime: int | None = None
    completed: int | None = None
    abandoned: int | None = None
    action_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMember(QueueMemberState):
    """QueueStatus reply: one operator (member) of the queue; `interface` is its Location."""

    last_call: int | None = None    # epoch seconds, 0 = never
    action_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry(AmiEvent):
    """QueueStatus reply: one caller waiting in the queue."""

    queue: str
    position: int | None
    channel: str
    uniqueid: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""
    wait: int | None = None
    action_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResponse(AmiEvent):
    """How an async Originate ended. With a SIP trunk `reason` is 0 for every rejection (busy too):
    the customer leg's Hangup Cause tells busy from invalid; `reason` tells answered (4) from our
    own timeout (3). `uniqueid` is None when Asterisk says "<unknown>" (failed, no ChannelId given)."""

    action_id: str
    success: bool
    reason: int
    channel: str = ""
    uniqueid: str | None = None
    context: str = ""
    exten: str = ""
    caller_id_num: str = ""
    caller_id_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FullyBooted(AmiEvent):
    status: str = ""
    uptime: int | None = None
    last_reload: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(AmiEvent):
    """Asterisk is stopping; its channels are gone and the connection closes next."""

    shutdown: str = ""              # Cleanly / Uncleanly
    restart: bool = False


# --- the connection's own lifecycle (not AMI messages; emitted by the adapter) ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(AmiEvent):
    """Logged in to Asterisk (again): the daemon reconciles its calls in flight now."""

    server: str
    server_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected(AmiEvent):
    """The AMI connection is gone; events may be missed until the next Connected."""

    server: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed(AmiEvent):
    """Asterisk refused the credentials; the adapter stopped and does not retry."""

    server: str
    message: str = ""


# ---------------------------------------------------------------------------------------- parsing

# Header names as Asterisk spells them. A plain dict carrying "Event" is read with these names
# directly (the fast path: the adapter and the transcript reader give such dicts); any other
# mapping (another spelling, a case-insensitive Message) is first re-keyed through this list.
_HEADERS = (
    "Event", "ActionID", "Response", "Channel", "ChannelState", "CallerIDNum", "CallerIDName",
    "ConnectedLineNum", "ConnectedLineName", "Context", "Exten", "Uniqueid", "Linkedid", "ChanVariable",
    "DestChannel", "DestChannelState", "DestCallerIDNum", "DestCallerIDName", "DestConnectedLineNum",
    "DestConnectedLineName", "DestContext", "DestExten", "DestUniqueid", "DestLinkedid", "DestChanVariable",
    "Cause", "Cause-txt", "TechCause", "Variable", "Value", "BridgeUniqueid", "BridgeType",
    "BridgeNumChannels", "DialString", "DialStatus", "Forward", "Queue", "Position", "Count",
    "OriginalPosition", "HoldTime", "Interface", "MemberName", "RingTime", "TalkTime", "Reason",
    "StateInterface", "Status", "Paused", "PausedReason", "InCall", "CallsTaken", "LastCall", "Name",
    "Location", "Strategy", "Calls", "Completed", "Abandoned", "Wait", "Application", "ApplicationData",
    "Duration", "BridgeId", "Uptime", "LastReload", "Shutdown", "Restart", "UserEvent",
)
_CANONICAL = {name.lower(): name for name in _HEADERS}


class _Fields:
    """One raw message read with Asterisk's header names; a repeated header keeps every value."""

    __slots__ = ("event", "raw", "_d")

    def __init__(self, raw: RawMessage, event: str) -> None:
        self.raw = raw
        self.event = event
        if type(raw) is dict and "Event" in raw:
            self._d: Mapping[str, str | Sequence[str]] = raw
        else:
            self._d = {_CANONICAL.get(k.lower(), k): v for k, v in raw.items()}

    def str(self, key: str, default: str = "") -> str:
        value = self._d.get(key)
        if value is None:
            return default
        if type(value) is str:
            return value
        if isinstance(value, str):
            return str(value)
        return next(iter(value), default)    # a repeated header where one is expected: the first

    def required(self, key: str) -> str:
        value = self.str(key)
        if not value:
            raise AmiProtocolError(f"AMI event {self.event or '?'} has no {key} header")
        return value

    def int(self, key: str, default: int | None = None) -> int | None:
        text = self.str(key)
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            return default

    def flag(self, key: str) -> bool:
        return self.str(key).strip().lower() in ("1", "true", "yes", "on")

    def list(self, key: str) -> Sequence[str]:
        value = self._d.get(key)
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else value


def _caller_id(text: str) -> str:
    return "" if text == "<unknown>" else text


def _variables(values: Sequence[str]) -> Mapping[str, str]:
    if not values:
        return NO_VARIABLES
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return MappingProxyType(out)


def _channel(f: _Fields, prefix: str = "") -> ChannelRef:
    p = prefix
    return ChannelRef(
        name=f.str(p + "Channel"),
        uniqueid=f.required(p + "Uniqueid"),
        linkedid=f.str(p + "Linkedid"),
        state=f.int(p + "ChannelState", -1),  # type: ignore[arg-type]
        caller_id_num=_caller_id(f.str(p + "CallerIDNum")),
        caller_id_name=_caller_id(f.str(p + "CallerIDName")),
        connected_line_num=_caller_id(f.str(p + "ConnectedLineNum")),
        connected_line_name=_caller_id(f.str(p + "ConnectedLineName")),
        context=f.str(p + "Context"),
        exten=f.str(p + "Exten"),
        variables=_variables(f.list(p + "ChanVariable")),
    )


def _optional_channel(f: _Fields, prefix: str = "") -> ChannelRef | None:
    return _channel(f, prefix) if f.str(prefix + "Uniqueid") else None


def _duration(text: str) -> int | None:
    """CoreShowChannel Duration 'HH:MM:SS' -> seconds."""
    seconds = 0
    try:
        for part in text.strip().split(":"):
            seconds = seconds * 60 + int(part)
    except ValueError:
        return None
    return seconds


_Parser = Callable[[_Fields, datetime], AmiEvent]
_Extra = Callable[[_Fields], object]


def _channel_event(cls: type[ChannelEvent], **extra: _Extra) -> _Parser:
    def parse(f: _Fields, at: datetime) -> AmiEvent:
        return cls(received_at=at, channel=_channel(f), **{name: get(f) for name, get in extra.items()})
    return parse


def _dial(cls: type[DialEvent], **extra: _Extra) -> _Parser:
    def parse(f: _Fields, at: datetime) -> AmiEvent:
        return cls(received_at=at, caller=_optional_channel(f), dest=_channel(f, "Dest"),
                   **{name: get(f) for name, get in extra.items()})
    return parse


def _agent(cls: type[AgentEvent], **extra: _Extra) -> _Parser:
    def parse(f: _Fields, at: datetime) -> AmiEvent:
        return cls(received_at=at, queue=f.str("Queue"), interface=f.str("Interface"),
                   member_name=f.str("MemberName"), caller=_optional_channel(f),
                   member=_optional_channel(f, "Dest"), **{name: get(f) for name, get in extra.items()})
    return parse


def _plain(cls: type[AmiEvent], **extra: _Extra) -> _Parser:
    def parse(f: _Fields, at: datetime) -> AmiEvent:
        return cls(received_at=at, **{name: get(f) for name, get in extra.items()})
    return parse


def _text(header: str) -> _Extra:
    return lambda f: f.str(header)


def _number(header: str, default: int | None = None) -> _Extra:
    return lambda f: f.int(header, default)


def _flag(header: str) -> _Extra:
    return lambda f: f.flag(header)


_STANDARD = frozenset(h.lower() for h in (
    "Event", "Privilege", "UserEvent", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
    "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context", "Exten",
    "Priority", "Uniqueid", "Linkedid", "ChanVariable"))


def _user_event(f: _Fields, at: datetime) -> AmiEvent:
    headers = {k: (v if isinstance(v, str) else ",".join(v)) for k, v in f.raw.items()
               if k.lower() not in _STANDARD}
    return UserEvent(received_at=at, user_event=f.str("UserEvent"), channel=_optional_channel(f),
                     headers=MappingProxyType(headers))


def _originate_response(f: _Fields, at: datetime) -> AmiEvent:
    uniqueid = f.str("Uniqueid")
    return OriginateResponse(
        received_at=at, action_id=f.str("ActionID"), success=f.str("Response") == "Success",
        reason=f.int("Reason", 0),  # type: ignore[arg-type]
        channel=f.str("Channel"), uniqueid=None if uniqueid in ("", "<unknown>") else uniqueid,
        context=f.str("Context"), exten=f.str("Exten"),
        caller_id_num=_caller_id(f.str("CallerIDNum")), caller_id_name=_caller_id(f.str("CallerIDName")))


_QUEUE = {"queue": _text("Queue"), "position": _number("Position"), "count": _number("Count")}
_MEMBER = {"queue": _text("Queue"), "state_interface": _text("StateInterface"),
           "status": _number("Status", 0), "paused": _flag("Paused"), "paused_reason": _text("PausedReason"),
           "in_call": _flag("InCall"), "calls_taken": _number("CallsTaken")}

# The ONE table: AMI event name -> parser. Events not listed here are of no use to the dialer.
_PARSERS: dict[str, _Parser] = {
    "OriginateResponse": _originate_response,
    "Newchannel": _channel_event(Newchannel),
    "Newstate": _channel_event(Newstate),
    "Hangup": _channel_event(Hangup, cause=_number("Cause", 0), cause_txt=_text("Cause-txt"),
                             tech_cause=_number("TechCause")),
    "HangupRequest": _channel_event(HangupRequest, cause=_number("Cause"), tech_cause=_number("TechCause")),
    "VarSet": _channel_event(VarSet, variable=_text("Variable"), value=_text("Value")),
    "BridgeEnter": _channel_event(BridgeEnter, bridge_id=_text("BridgeUniqueid"), bridge_type=_text("BridgeType"),
                                  bridge_num_channels=_number("BridgeNumChannels")),
    "DialBegin": _dial(DialBegin, dial_string=_text("DialString")),
    "DialState": _dial(DialState, dial_status=_text("DialStatus")),
    "DialEnd": _dial(DialEnd, dial_status=_text("DialStatus"), forward=_text("Forward")),
    "QueueCallerJoin": _channel_event(QueueCallerJoin, **_QUEUE),
    "QueueCallerLeave": _channel_event(QueueCallerLeave, **_QUEUE),
    "QueueCallerAbandon": _channel_event(QueueCallerAbandon, queue=_text("Queue"), position=_number("Position"),
                                         original_position=_number("OriginalPosition"),
                                         hold_time=_number("HoldTime")),
    "AgentCalled": _agent(AgentCalled),
    "AgentConnect": _agent(AgentConnect, hold_time=_number("HoldTime"), ring_time=_number("RingTime")),
    "AgentComplete": _agent(AgentComplete, hold_time=_number("HoldTime"), talk_time=_number("TalkTime"),
                            reason=_text("Reason")),
    "AgentRingNoAnswer": _agent(AgentRingNoAnswer, ring_time=_number("RingTime")),
    "QueueMemberStatus": _plain(QueueMemberStatus, interface=_text("Interface"), member_name=_text("MemberName"),
                                **_MEMBER),
    "QueueMemberPause": _plain(QueueMemberPause, queue=_text("Queue"), interface=_text("Interface"),
                               member_name=_text("MemberName"), paused=_flag("Paused"),
                               reason=lambda f: f.str("PausedReason") or f.str("Reason")),
    "QueueParams": _plain(QueueParams, queue=_text("Queue"), strategy=_text("Strategy"), calls=_number("Calls"),
                          holdtime=lambda f: f.int("HoldTime", f.int("Holdtime")),  # Asterisk writes Holdtime
                          talktime=_number("TalkTime"), completed=_number("Completed"),
                          abandoned=_number("Abandoned"), action_id=_text("ActionID")),
    "QueueMember": _plain(QueueMember, member_name=_text("Name"), interface=_text("Location"),
                          last_call=_number("LastCall"), action_id=_text("ActionID"), **_MEMBER),
    "QueueEntry": _plain(QueueEntry, queue=_text("Queue"), position=_number("Position"), channel=_text("Channel"),
                         uniqueid=_text("Uniqueid"), caller_id_num=lambda f: _caller_id(f.str("CallerIDNum")),
                         caller_id_name=lambda f: _caller_id(f.str("CallerIDName")), wait=_number("Wait"),
                         action_id=_text("ActionID")),
    "CoreShowChannel": _channel_event(CoreShowChannel, application=_text("Application"),
                                      application_data=_text("ApplicationData"),
                                      duration_seconds=lambda f: _duration(f.str("Duration")),
                                      bridge_id=_text("BridgeId"), action_id=_text("ActionID")),
    "FullyBooted": _plain(FullyBooted, status=_text("Status"), uptime=_number("Uptime"),
                          last_reload=_number("LastReload")),
    "Shutdown": _plain(Shutdown, shutdown=_text("Shutdown"), restart=_flag("Restart")),
    "UserEvent": _user_event,
}

EVENT_NAMES: frozenset[str] = frozenset(_PARSERS)


def parse_event(raw: RawMessage, received_at: datetime) -> AmiEvent | None:
    """The typed event for one raw AMI message, or None if the dialer has no use for it.

    Raises AmiProtocolError when a field the dialer needs is missing (e.g. a Hangup without Uniqueid);
    a garbled number gives the field's default instead.
    """
    name = raw.get("Event")
    if name is None:  # a mapping with another spelling of the header
        name = next((v for k, v in raw.items() if k.lower() == "event"), None)
    parser = _PARSERS.get(name) if isinstance(name, str) else None
    return None if parser is None else parser(_Fields(raw, name), received_at)
