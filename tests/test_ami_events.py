"""parse_event: the one table from raw AMI messages to typed events, and what it does with bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from panoramisk.message import Message

from dialer.ami.adapter import AmiClient, _Protocol
from dialer.ami.errors import AmiProtocolError
from dialer.ami.events import (
    EVENT_NAMES, AgentComplete, DialBegin, Hangup, QueueEntry, QueueMember, QueueMemberPause, QueueParams,
    UserEvent, parse_event,
)
from kernel.clock import ManualClock
from kernel.settings import AmiSettings

AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

HANGUP = {"Event": "Hangup", "Privilege": "call,all", "Channel": "PJSIP/trunk-00000007", "ChannelState": "0",
          "CallerIDNum": "<unknown>", "CallerIDName": "Иван", "Uniqueid": "lead42-pjsip-b",
          "Linkedid": "lead42-pjsip-b", "ChanVariable": ["LEAD_ID=42", "ATTEMPT_ID=7"], "Cause": "17",
          "Cause-txt": "User busy", "TechCause": "486"}


def test_a_hangup_becomes_a_typed_event_with_its_channel_variables_as_a_dict():
    event = parse_event(HANGUP, AT)
    assert isinstance(event, Hangup)
    assert (event.cause, event.cause_txt, event.tech_cause, event.received_at) == (17, "User busy", 486, AT)
    assert event.channel.variables == {"LEAD_ID": "42", "ATTEMPT_ID": "7"}
    assert (event.channel.caller_id_num, event.channel.caller_id_name) == ("", "Иван")
    with pytest.raises(TypeError):
        event.channel.variables["LEAD_ID"] = "1"   # type: ignore[index]


@pytest.mark.parametrize("spelling", ["lower", "message"])
def test_other_spellings_of_the_headers_read_the_same(spelling):
    raw = {k.lower(): v for k, v in HANGUP.items()} if spelling == "lower" else Message(HANGUP)
    assert parse_event(raw, AT) == parse_event(HANGUP, AT)


def test_a_single_chanvariable_header_is_a_dict_too():
    event = parse_event({**HANGUP, "ChanVariable": "LEAD_ID=42"}, AT)
    assert event is not None and event.channel.variables == {"LEAD_ID": "42"}   # type: ignore[attr-defined]


def test_events_the_dialer_does_not_use_give_none():
    assert parse_event({"Event": "Newexten", "Uniqueid": "1"}, AT) is None
    assert parse_event({"Response": "Success"}, AT) is None
    assert parse_event({}, AT) is None


def test_a_channel_event_without_uniqueid_is_a_protocol_error_naming_the_header():
    with pytest.raises(AmiProtocolError, match="Hangup has no Uniqueid"):
        parse_event({"Event": "Hangup", "Cause": "17"}, AT)
    with pytest.raises(AmiProtocolError, match="DialBegin has no DestUniqueid"):
        parse_event({"Event": "DialBegin", "DestChannel": "PJSIP/x"}, AT)


def test_garbled_numbers_become_safe_defaults():
    event = parse_event({**HANGUP, "Cause": "busy!", "TechCause": "", "ChannelState": "x"}, AT)
    assert isinstance(event, Hangup) and (event.cause, event.tech_cause, event.channel.state) == (0, None, -1)


def test_a_dial_of_the_originate_itself_has_no_caller():
    event = parse_event({"Event": "DialBegin", "DestChannel": "PJSIP/trunk-1", "DestUniqueid": "u1",
                         "DestLinkedid": "u1", "DialString": "5553002@trunk"}, AT)
    assert isinstance(event, DialBegin) and event.caller is None and event.dest.uniqueid == "u1"


def test_agent_complete_without_channel_headers_still_parses():
    """ping-coreshowchannels-queuestatus.txt: after the dialer's Hangup the AgentComplete has no Channel."""
    event = parse_event({"Event": "AgentComplete", "Queue": "sales", "Interface": "Local/op1@operators/n",
                         "MemberName": "Operator One", "HoldTime": "1", "TalkTime": "1", "Reason": "caller"}, AT)
    assert isinstance(event, AgentComplete) and event.caller is None and event.talk_time == 1


def test_a_dialplan_user_event_keeps_its_own_headers():
    event = parse_event({"Event": "UserEvent", "UserEvent": "DialerAMD", "Channel": "PJSIP/trunk-1",
                         "Uniqueid": "u1", "Linkedid": "u1", "AMDStatus": "MACHINE", "AMDCause": "LONGGREETING"}, AT)
    assert isinstance(event, UserEvent) and event.user_event == "DialerAMD"
    assert event.header("amdstatus") == "MACHINE" and dict(event.headers) == {"AMDStatus": "MACHINE",
                                                                              "AMDCause": "LONGGREETING"}


def test_queue_status_rows():
    member = parse_event({"Event": "QueueMember", "Queue": "sales", "Name": "Оператор", "Location": "PJSIP/op1",
                          "StateInterface": "PJSIP/op1", "InCall": "1", "Status": "2", "Paused": "1",
                          "PausedReason": "обед", "CallsTaken": "3", "LastCall": "1795472322"}, AT)
    assert isinstance(member, QueueMember)
    assert (member.member_name, member.interface, member.in_call, member.status, member.paused,
            member.paused_reason, member.calls_taken) == ("Оператор", "PJSIP/op1", True, 2, True, "обед", 3)
    entry = parse_event({"Event": "QueueEntry", "Queue": "sales", "Position": "1", "Channel": "PJSIP/trunk-4",
                         "Uniqueid": "dialer-7", "CallerIDNum": "79123456789", "Wait": "12"}, AT)
    assert isinstance(entry, QueueEntry) and (entry.position, entry.uniqueid, entry.wait) == (1, "dialer-7", 12)
    params = parse_event({"Event": "QueueParams", "Queue": "sales", "Holdtime": "4", "Calls": "2"}, AT)
    assert isinstance(params, QueueParams) and (params.holdtime, params.calls) == (4, 2)
    pause = parse_event({"Event": "QueueMemberPause", "Queue": "sales", "Interface": "PJSIP/op1",
                         "Paused": "1", "PausedReason": "обед"}, AT)
    assert isinstance(pause, QueueMemberPause) and pause.paused and pause.reason == "обед"


_header = st.sampled_from(["Event", "Uniqueid", "Linkedid", "DestUniqueid", "Channel", "Cause", "TechCause",
                           "ChanVariable", "Reason", "Response", "ActionID", "Queue", "Interface", "Duration",
                           "ChannelState", "Paused", "UserEvent", "x"])
_value = st.one_of(st.sampled_from(sorted(EVENT_NAMES)), st.text(max_size=12),
                   st.lists(st.text(max_size=8), max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_header, _value, max_size=8))
def test_any_message_gives_an_event_none_or_a_protocol_error(raw):
    try:
        parse_event(raw, AT)
    except AmiProtocolError:
        pass


class _Transport:
    def close(self) -> None: ...
    def abort(self) -> None: ...


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64) | st.sampled_from(
    [b"\r\n\r\n", b"Event: Hangup\r\n", b"Uniqueid: u1\r\n", b"Cause: 17\r\n", b"\xd0", b"\x98",
     b"Response: Success\r\n", b"ActionID: a\r\n", b"Asterisk Call Manager/11.0.0\r\n"]), max_size=30))
def test_any_bytes_on_the_wire_never_raise_out_of_the_protocol(chunks):
    async def scenario() -> None:
        client = AmiClient(AmiSettings(port=1), ManualClock(AT))
        protocol = _Protocol(client)
        protocol.connection_made(_Transport())  # type: ignore[arg-type]
        for chunk in chunks:
            protocol.data_received(chunk)
    import asyncio
    asyncio.run(scenario())
