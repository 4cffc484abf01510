"""Builders for the AMI events of the simulated PBX, header for header as Asterisk 22 writes them.

Every builder returns an `AmiEvent`; header names and their order come from the recorded transcripts
(tests/fixtures/ami). A channel block is Asterisk's channel snapshot (`Channel`, `ChannelState`,
... `Linkedid`, then one `ChanVariable: NAME=value` per name in manager.conf `channelvars`); the
same block with a `Dest` prefix describes the other channel of a Dial or a queue event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

from dialer.pbx_sim.channels import STATE_TEXT, UNKNOWN, Channel
from dialer.pbx_sim.protocol import Headers, privilege_classes

CALL = "call,all"
DIALPLAN = "dialplan,all"
AGENT = "agent,all"
SYSTEM = "system,all"
USER = "user,all"


class Cause(IntEnum):
    """Q.850 hangup causes the simulated PBX uses (Hangup `Cause`)."""

    UNKNOWN = 0
    UNALLOCATED = 1
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    CALL_REJECTED = 21
    ANSWERED_ELSEWHERE = 26
    CONGESTION = 34


CAUSE_TEXT = {
    Cause.UNKNOWN: "Unknown",
    Cause.UNALLOCATED: "Unallocated (unassigned) number",
    Cause.NORMAL_CLEARING: "Normal Clearing",
    Cause.USER_BUSY: "User busy",
    Cause.NO_USER_RESPONSE: "No user responding",
    Cause.NO_ANSWER: "User alerting, no answer",
    Cause.CALL_REJECTED: "Call Rejected",
    Cause.ANSWERED_ELSEWHERE: "Answered elsewhere",
    Cause.CONGESTION: "Circuit/channel congestion",
}


def cause_text(cause: int) -> str:
    try:
        return CAUSE_TEXT[Cause(cause)]
    except (ValueError, KeyError):
        return "Unknown"


class OriginateReason(IntEnum):
    """OriginateResponse `Reason`: what the originate's channel last reported."""

    FAILED = 0       # the channel went away (every SIP rejection through a Local channel, a cancel)
    HANGUP = 1
    RINGING = 3      # still ringing when the Originate Timeout ran out
    ANSWERED = 4
    BUSY = 5
    CONGESTION = 8


@dataclass(frozen=True)
class AmiEvent:
    name: str
    privilege: str | None
    headers: Headers

    def pairs(self) -> list[tuple[str, str]]:
        head = [("Event", self.name)]
        if self.privilege:
            head.append(("Privilege", self.privilege))
        return head + list(self.headers)

    @property
    def classes(self) -> frozenset[str]:
        return privilege_classes(self.privilege or "")

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.headers if key == name), default)


@dataclass(frozen=True)
class MemberSnapshot:
    """What QueueMemberStatus / QueueMemberPause / QueueMember say about a queue member."""

    queue: str
    name: str
    interface: str
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    in_call: bool
    status: int
    paused: bool
    paused_reason: str
    wrapup: int


class EventFactory:
    """Builds events; knows the `channelvars` list so every channel block carries ChanVariable lines."""

    def __init__(self, channelvars: Iterable[str] = ()) -> None:
        self.channelvars = tuple(channelvars)

    # --- channel blocks

    def snapshot(self, ch: Channel, prefix: str = "") -> list[tuple[str, str]]:
        rows = [
            ("Channel", ch.name), ("ChannelState", str(int(ch.state))),
            ("ChannelStateDesc", STATE_TEXT[ch.state]), ("CallerIDNum", ch.caller_num),
            ("CallerIDName", ch.caller_name), ("ConnectedLineNum", ch.connected_num),
            ("ConnectedLineName", ch.connected_name), ("Language", "en"), ("AccountCode", ""),
            ("Context", ch.context), ("Exten", ch.exten), ("Priority", str(ch.priority)),
            ("Uniqueid", ch.uniqueid), ("Linkedid", ch.linkedid),
        ]
        rows += [("ChanVariable", f"{name}={ch.var(name)}") for name in self.channelvars]
        return [(prefix + key, value) for key, value in rows]

    def _channel_event(self, name: str, privilege: str, ch: Channel, *extra: tuple[str, str]) -> AmiEvent:
        return AmiEvent(name, privilege, tuple(self.snapshot(ch)) + tuple(extra))

    def _two_channel_event(self, name: str, privilege: str, ch: Channel | None, dest: Channel,
                           *extra: tuple[str, str]) -> AmiEvent:
        rows = (self.snapshot(ch) if ch is not None else []) + self.snapshot(dest, "Dest")
        return AmiEvent(name, privilege, tuple(rows) + tuple(extra))

    # --- channel life

    def newchannel(self, ch: Channel) -> AmiEvent:
        return self._channel_event("Newchannel", CALL, ch)

    def newstate(self, ch: Channel) -> AmiEvent:
        return self._channel_event("Newstate", CALL, ch)

    def newexten(self, ch: Channel) -> AmiEvent:
        return self._channel_event("Newexten", DIALPLAN, ch, ("Extension", ch.exten),
                                   ("Application", ch.application), ("AppData", ch.app_data))

    def varset(self, ch: Channel, variable: str, value: str) -> AmiEvent:
        return self._channel_event("VarSet", DIALPLAN, ch, ("Variable", variable), ("Value", value))

    def newcallerid(self, ch: Channel) -> AmiEvent:
        return self._channel_event("NewCallerid", CALL, ch,
                                   ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))

    def newconnectedline(self, ch: Channel) -> AmiEvent:
        return self._channel_event("NewConnectedLine", CALL, ch)

    def local_bridge(self, one: Channel, two: Channel, context: str, exten: str, optimize: bool) -> AmiEvent:
        rows = self.snapshot(one, "LocalOne") + self.snapshot(two, "LocalTwo")
        rows += [("Context", context), ("Exten", exten), ("LocalOptimization", "Yes" if optimize else "No")]
        return AmiEvent("LocalBridge", CALL, tuple(rows))

    def hangup_request(self, ch: Channel, cause: int | None = None, tech_cause: int | None = None) -> AmiEvent:
        extra = []
        if cause is not None:
            extra.append(("Cause", str(cause)))
        if tech_cause is not None:
            extra.append(("TechCause", str(tech_cause)))
        return self._channel_event("HangupRequest", CALL, ch, *extra)

    def soft_hangup_request(self, ch: Channel, cause: int) -> AmiEvent:
        return self._channel_event("SoftHangupRequest", CALL, ch, ("Cause", str(cause)))

    def hangup(self, ch: Channel, cause: int, tech_cause: int | None = None) -> AmiEvent:
        extra = [("Cause", str(cause)), ("Cause-txt", cause_text(cause))]
        if tech_cause is not None:
            extra.append(("TechCause", str(tech_cause)))
        return self._channel_event("Hangup", CALL, ch, *extra)

    def device_state_change(self, device: str, state: str) -> AmiEvent:
        return AmiEvent("DeviceStateChange", CALL, (("Device", device), ("State", state)))

    # --- dialing

    def dial_begin(self, ch: Channel | None, dest: Channel, dial_string: str) -> AmiEvent:
        return self._two_channel_event("DialBegin", CALL, ch, dest, ("DialString", dial_string))

    def dial_state(self, ch: Channel | None, dest: Channel, status: str) -> AmiEvent:
        return self._two_channel_event("DialState", CALL, ch, dest, ("DialStatus", status))

    def dial_end(self, ch: Channel | None, dest: Channel, status: str) -> AmiEvent:
        return self._two_channel_event("DialEnd", CALL, ch, dest, ("DialStatus", status))

    def originate_response(self, action_id: str, success: bool, channel: str, context: str, exten: str,
                           reason: int, uniqueid: str, caller_num: str, caller_name: str,
                           answered: Channel | None = None) -> AmiEvent:
        rows: list[tuple[str, str]] = []
        if action_id:
            rows.append(("ActionID", action_id))
        rows += [("Response", "Success" if success else "Failure"), ("Channel", channel),
                 ("Context", context), ("Exten", exten), ("Reason", str(int(reason))),
                 ("Uniqueid", uniqueid), ("CallerIDNum", caller_num), ("CallerIDName", caller_name)]
        if answered is not None:
            rows += [(f"ChanVariable({answered.name})", f"{name}={answered.var(name)}")
                     for name in self.channelvars]
        return AmiEvent("OriginateResponse", CALL, tuple(rows))

    # --- bridges

    def _bridge_rows(self, bridge_id: str, count: int) -> list[tuple[str, str]]:
        return [("BridgeUniqueid", bridge_id), ("BridgeType", "basic"),
                ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", UNKNOWN),
                ("BridgeName", UNKNOWN), ("BridgeNumChannels", str(count)),
                ("BridgeVideoSourceMode", "none")]

    def bridge_create(self, bridge_id: str) -> AmiEvent:
        return AmiEvent("BridgeCreate", CALL, tuple(self._bridge_rows(bridge_id, 0)))

    def bridge_enter(self, bridge_id: str, count: int, ch: Channel) -> AmiEvent:
        return AmiEvent("BridgeEnter", CALL, tuple(self._bridge_rows(bridge_id, count) + self.snapshot(ch)))

    def bridge_leave(self, bridge_id: str, count: int, ch: Channel) -> AmiEvent:
        return AmiEvent("BridgeLeave", CALL, tuple(self._bridge_rows(bridge_id, count) + self.snapshot(ch)))

    def bridge_destroy(self, bridge_id: str) -> AmiEvent:
        return AmiEvent("BridgeDestroy", CALL, tuple(self._bridge_rows(bridge_id, 0)))

    # --- queue

    def queue_caller_join(self, ch: Channel, queue: str, position: int, count: int) -> AmiEvent:
        return self._channel_event("QueueCallerJoin", AGENT, ch, ("Queue", queue), ("Position", str(position)),
                                   ("Count", str(count)))

    def queue_caller_leave(self, ch: Channel, queue: str, position: int, count: int) -> AmiEvent:
        return self._channel_event("QueueCallerLeave", AGENT, ch, ("Queue", queue), ("Position", str(position)),
                                   ("Count", str(count)))

    def queue_caller_abandon(self, ch: Channel, queue: str, position: int, original_position: int,
                             hold_time: int) -> AmiEvent:
        return self._channel_event("QueueCallerAbandon", AGENT, ch, ("Queue", queue),
                                   ("Position", str(position)), ("OriginalPosition", str(original_position)),
                                   ("HoldTime", str(hold_time)))

    def agent_called(self, caller: Channel, agent: Channel, queue: str, member: MemberSnapshot) -> AmiEvent:
        return self._two_channel_event("AgentCalled", AGENT, caller, agent, ("Queue", queue),
                                       ("Interface", member.interface), ("MemberName", member.name))

    def agent_connect(self, caller: Channel, agent: Channel, queue: str, member: MemberSnapshot,
                      hold_time: int, ring_time: int) -> AmiEvent:
        return self._two_channel_event("AgentConnect", AGENT, caller, agent, ("Queue", queue),
                                       ("Interface", member.interface), ("MemberName", member.name),
                                       ("HoldTime", str(hold_time)), ("RingTime", str(ring_time)))

    def agent_complete(self, caller: Channel, agent: Channel, queue: str, member: MemberSnapshot,
                       hold_time: int, talk_time: int, reason: str) -> AmiEvent:
        return self._two_channel_event("AgentComplete", AGENT, caller, agent, ("Queue", queue),
                                       ("Interface", member.interface), ("MemberName", member.name),
                                       ("HoldTime", str(hold_time)), ("TalkTime", str(talk_time)),
                                       ("Reason", reason))

    def agent_ring_no_answer(self, caller: Channel, agent: Channel, queue: str, member: MemberSnapshot,
                             ring_ms: int) -> AmiEvent:
        return self._two_channel_event("AgentRingNoAnswer", AGENT, caller, agent, ("Queue", queue),
                                       ("Interface", member.interface), ("MemberName", member.name),
                                       ("RingTime", str(ring_ms)))

    def _member_rows(self, m: MemberSnapshot) -> tuple[tuple[str, str], ...]:
        return (("Queue", m.queue), ("MemberName", m.name), ("Interface", m.interface),
                ("StateInterface", m.interface), ("Membership", "static"), ("Penalty", "0"),
                ("CallsTaken", str(m.calls_taken)), ("LastCall", str(m.last_call)),
                ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
                ("InCall", "1" if m.in_call else "0"), ("Status", str(m.status)),
                ("Paused", "1" if m.paused else "0"), ("PausedReason", m.paused_reason),
                ("Ringinuse", "0"), ("Wrapuptime", str(m.wrapup)))

    def queue_member_status(self, m: MemberSnapshot) -> AmiEvent:
        return AmiEvent("QueueMemberStatus", AGENT, self._member_rows(m))

    def queue_member_pause(self, m: MemberSnapshot) -> AmiEvent:
        return AmiEvent("QueueMemberPause", AGENT, self._member_rows(m))

    def queue_member(self, m: MemberSnapshot, action_id: str) -> AmiEvent:
        """A QueueStatus reply line (no Privilege, `Name`/`Location`, ActionID last)."""
        rows = (("Queue", m.queue), ("Name", m.name), ("Location", m.interface),
                ("StateInterface", m.interface), ("Membership", "static"), ("Penalty", "0"),
                ("CallsTaken", str(m.calls_taken)), ("LastCall", str(m.last_call)),
                ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
                ("InCall", "1" if m.in_call else "0"), ("Status", str(m.status)),
                ("Paused", "1" if m.paused else "0"), ("PausedReason", m.paused_reason),
                ("Wrapuptime", str(m.wrapup)))
        return AmiEvent("QueueMember", None, rows + _action_id(action_id))

    def queue_entry(self, queue: str, position: int, ch: Channel, wait: int, action_id: str) -> AmiEvent:
        rows = (("Queue", queue), ("Position", str(position)), ("Channel", ch.name), ("Uniqueid", ch.uniqueid),
                ("CallerIDNum", ch.caller_num), ("CallerIDName", ch.caller_name),
                ("ConnectedLineNum", ch.connected_num), ("ConnectedLineName", ch.connected_name),
                ("Wait", str(wait)), ("Priority", "0"))
        return AmiEvent("QueueEntry", None, rows + _action_id(action_id))

    # --- the rest

    def user_event(self, ch: Channel, name: str, *headers: tuple[str, str]) -> AmiEvent:
        return self._channel_event("UserEvent", USER, ch, ("UserEvent", name), *headers)

    def core_show_channel(self, ch: Channel, duration: str, action_id: str) -> AmiEvent:
        rows = _action_id(action_id) + tuple(self.snapshot(ch)) + (
            ("Application", ch.application), ("ApplicationData", ch.app_data), ("Duration", duration),
            ("BridgeId", ch.bridge_id))
        return AmiEvent("CoreShowChannel", None, rows)

    def fully_booted(self, uptime: int, last_reload: int) -> AmiEvent:
        return AmiEvent("FullyBooted", SYSTEM, (("Uptime", str(uptime)), ("LastReload", str(last_reload)),
                                                ("Status", "Fully Booted")))

    def shutdown(self, restart: bool) -> AmiEvent:
        return AmiEvent("Shutdown", SYSTEM, (("Shutdown", "Cleanly"), ("Restart", "True" if restart else "False")))


def list_complete(name: str, action_id: str, items: int) -> AmiEvent:
    """The event that ends an event-list reply (`CoreShowChannelsComplete`, `QueueStatusComplete`...)."""
    return AmiEvent(name, None, _action_id(action_id) + (("EventList", "Complete"), ("ListItems", str(items))))


def _action_id(action_id: str) -> tuple[tuple[str, str], ...]:
    return (("ActionID", action_id),) if action_id else ()
