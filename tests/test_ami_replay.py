"""Replay tests: every recording in tests/fixtures/ami/ (real Asterisk 22) through
parse_event and the CallTracker gives the expected typed events and CallResult.

The folder is required: if it is missing these tests fail, they never skip.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dialer.ami.events import (
    EVENT_NAMES, AgentConnect, DialBegin, DialEnd, FullyBooted, Hangup, HangupRequest, Newchannel,
    OriginateResponse, Shutdown, VarSet, parse_event,
)
from dialer.ami.transcript import Direction, Entry, Transcript, read_transcript, transcript_files
from dialer.calls.replay import replay
from leads.attempt import AttemptState, CallResult
from tests.recordings import AMI_RECORDINGS as TRANSCRIPTS

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
R = CallResult

# file -> per Originate in the file: (result, operator interface). Facts from the README table.
EXPECTED: dict[str, list[tuple[CallResult, str | None]]] = {
    "originate-answered": [(R.CONNECTED, "Local/op1@operators")],             # Dial() to op1
    "originate-answered-queue": [(R.CONNECTED, "Local/op2@operators/n")],     # queue ringall, op2 won
    "originate-answered-inherited-variable": [(R.CONNECTED, "Local/op1@operators")],
    "originate-answered-immediate-hangup": [(R.ABANDONED, None)],             # operator Dial -> CANCEL
    "originate-busy": [(R.BUSY, None)],
    "originate-noanswer": [(R.NO_ANSWER, None)],
    "originate-congestion": [(R.CONGESTION, None)],
    "originate-invalid-number": [(R.INVALID_NUMBER, None)],
    "originate-cancelled-by-dialer": [(R.CANCELLED, None)],
    # without Async: a plain Response after the call; 'Originate failed' is all we get for the others
    "originate-sync-no-async": [(R.CONNECTED, "Local/op1@operators"), (R.FAILED, None), (R.FAILED, None),
                                (R.FAILED, None)],
    "login-failure": [(R.FAILED, None)],                                      # Originate before Login
    "readonly-user-permission-denied": [(R.FAILED, None)],
    "ping-coreshowchannels-queuestatus": [(R.CONNECTED, "Local/op1@operators/n")],
    "asterisk-stopped-core-stop-now": [(R.CONNECTED, "Local/op1@operators")],
    "asterisk-killed-sigkill": [(R.CONNECTED, "Local/op1@operators")],       # ended by reconciliation
    "pjsip-answered-queue": [(R.CONNECTED, "PJSIP/op1")],
    "pjsip-busy-486": [(R.BUSY, None)],
    "pjsip-busy-486-via-local": [(R.BUSY, None)],
    "pjsip-decline-603": [(R.REJECTED, None)],
    "pjsip-decline-603-via-local": [(R.REJECTED, None)],
    "pjsip-noanswer-timeout": [(R.NO_ANSWER, None)],
    "pjsip-noanswer-timeout-via-local": [(R.NO_ANSWER, None)],
    "pjsip-notfound-404": [(R.INVALID_NUMBER, None)],
    "pjsip-notfound-404-via-local": [(R.INVALID_NUMBER, None)],
    "pjsip-tempunavail-480": [(R.NO_ANSWER, None)],
    "pjsip-tempunavail-480-via-local": [(R.NO_ANSWER, None)],
    "pjsip-unavailable-503": [(R.CONGESTION, None)],
    "pjsip-unavailable-503-via-local": [(R.CONGESTION, None)],
}


def _files() -> list[Path]:
    return transcript_files(TRANSCRIPTS) if TRANSCRIPTS.is_dir() else []


@pytest.fixture(scope="module")
def transcripts() -> dict[str, Transcript]:
    return {p.stem: read_transcript(p) for p in _files()}


def test_the_recordings_are_there_and_each_has_an_expected_result():
    assert TRANSCRIPTS.is_dir(), f"{TRANSCRIPTS} is missing: the replay tests need the recordings"
    names = {p.stem for p in _files()}
    assert names == set(EXPECTED), "a recording without an expectation, or an expectation without a recording"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_given_a_recording_when_replayed_then_each_attempt_gets_its_result(transcripts, name):
    result = replay(transcripts[name], START)
    assert result.protocol_errors == []
    assert len(result.attempts) == len(EXPECTED[name])
    for attempt_id, (expected, operator) in zip(sorted(result.attempts.values()), EXPECTED[name]):
        final = result.final(attempt_id)
        assert final is not None, f"attempt {attempt_id} never ended"
        assert (final.result, final.fields["operator_interface"]) == (expected, operator)
        states = result.states(attempt_id)
        assert states[-1] == "ended" and states.count("ended") == 1
        assert [_ORDER[s] for s in states] == sorted(_ORDER[s] for s in states)


_ORDER = {s.value: i for i, s in enumerate(AttemptState)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_given_a_recording_then_every_event_the_dialer_uses_parses_typed(transcripts, name):
    entries = list(transcripts[name].events())
    typed = [parse_event(e.as_mapping(), START) for e in entries]
    for entry, event in zip(entries, typed):
        assert (event is not None) == (entry.name in EVENT_NAMES), entry.line_no
        if event is not None:
            assert event.name == entry.name


def test_pjsip_busy_gives_the_typed_events_in_wire_order(transcripts):
    events = replay(transcripts["pjsip-busy-486"], START).events
    assert [e.name for e in events] == ["Connected", "FullyBooted", "Newchannel", "VarSet", "VarSet",
                                        "DialBegin", "HangupRequest", "OriginateResponse", "DialEnd", "Hangup",
                                        "Disconnected"]
    new, begin, request, response, end, hangup = (events[2], events[5], events[6], events[7], events[8], events[9])
    assert isinstance(new, Newchannel) and new.channel.name == "PJSIP/trunk-00000007"
    assert new.channel.uniqueid == new.channel.linkedid == "lead42-pjsip-b"
    assert new.channel.variables == {"LEAD_ID": ""} and new.channel.context == "from-trunk"
    assert isinstance(events[4], VarSet) and (events[4].variable, events[4].value) == ("__LEAD_ID", "42")
    assert isinstance(begin, DialBegin) and begin.caller is None and begin.dial_string == "5553002@trunk"
    assert isinstance(request, HangupRequest) and (request.cause, request.tech_cause) == (17, 486)
    assert isinstance(response, OriginateResponse)
    assert (response.action_id, response.success, response.reason, response.uniqueid, response.channel) == \
        ("orig-pjsip-busy-486", False, 0, "lead42-pjsip-b", "PJSIP/5553002@trunk")
    assert isinstance(end, DialEnd) and end.dial_status == "BUSY" and end.dest.variables == {"LEAD_ID": "42"}
    assert isinstance(hangup, Hangup)
    assert (hangup.cause, hangup.cause_txt, hangup.tech_cause) == (17, "User busy", 486)
    assert hangup.received_at == START + timedelta(seconds=0.710)


def test_a_failed_originate_without_channelid_has_no_uniqueid(transcripts):
    response = next(e for e in replay(transcripts["originate-busy"], START).events if isinstance(e, OriginateResponse))
    assert (response.uniqueid, response.reason, response.channel) == (None, 5, "Local/5551002@customers")


def test_queue_events_name_the_operator_and_shutdown_is_typed(transcripts):
    events = replay(transcripts["originate-answered-queue"], START).events
    connect = next(e for e in events if isinstance(e, AgentConnect))
    assert (connect.queue, connect.interface, connect.member_name, connect.hold_time) == \
        ("sales", "Local/op2@operators/n", "Operator Two", 1)
    assert connect.caller is not None and connect.caller.uniqueid == "1795472317.56"
    assert connect.member is not None and connect.member.linkedid == "1795472317.56"
    shutdown = next(e for e in replay(transcripts["asterisk-stopped-core-stop-now"], START).events
                    if isinstance(e, Shutdown))
    assert (shutdown.shutdown, shutdown.restart) == ("Cleanly", False)
    assert sum(isinstance(e, FullyBooted) for e in events) == 1


def test_the_answered_call_lifecycle_takes_its_times_from_the_events(transcripts):
    result = replay(transcripts["originate-answered"], START)
    times = {u.state.value: round((u.at - START).total_seconds(), 3) for u in result.updates}
    # Response 'queued' 0.002; ;1 Newstate Ringing 0.003; ;1 Up 2.005; DialEnd to op1 ANSWER 3.006; ;1 Hangup 5.030
    assert times == {"originated": 0.002, "ringing": 0.003, "answered": 2.005, "connected": 3.006, "ended": 5.030}
    final = result.final(1)
    assert final is not None and final.fields["uniqueid"] == "1795472309.52"
    assert final.fields["channel"] == "Local/5551001@customers-0000001a;1"
    assert (final.fields["originate_reason"], final.fields["hangup_cause"], final.fields["dial_status"]) == \
        (4, 16, "ANSWER")


def test_a_pjsip_rejection_records_cause_techcause_and_dialstatus(transcripts):
    final = replay(transcripts["pjsip-notfound-404"], START).final(1)
    assert final is not None
    assert {k: final.fields[k] for k in ("originate_reason", "hangup_cause", "hangup_cause_txt", "tech_cause",
                                          "dial_status", "uniqueid")} == {
        "originate_reason": 0, "hangup_cause": 1, "hangup_cause_txt": "Unallocated (unassigned) number",
        "tech_cause": "404", "dial_status": "NOANSWER", "uniqueid": "lead42-pjsip-e"}


def _moved(transcript: Transcript, index: int, to: int) -> Transcript:
    entries = list(transcript.entries)
    entry = entries.pop(index)
    entries.insert(to, entry)
    return replace(transcript, entries=tuple(entries))


@pytest.mark.parametrize("name", ["pjsip-busy-486", "pjsip-decline-603-via-local", "originate-busy",
                                  "originate-congestion", "originate-invalid-number", "pjsip-noanswer-timeout",
                                  "originate-cancelled-by-dialer", "pjsip-answered-queue",
                                  "originate-answered-immediate-hangup"])
def test_given_the_originate_response_anywhere_around_dialend_and_hangup_then_the_result_is_the_same(
        transcripts, name):
    """OriginateResponse comes before or after DialEnd/Hangup (same millisecond, order varies)."""
    transcript = transcripts[name]
    expected = EXPECTED[name][0][0]
    entries = transcript.entries
    index = next(i for i, e in enumerate(entries) if e.name == "OriginateResponse")
    lo = next(i for i, e in enumerate(entries) if e.name in ("DialEnd", "HangupRequest", "Hangup")
              and (expected is not R.CONNECTED and expected is not R.ABANDONED or e.name == "DialEnd"))
    hi = max(i for i, e in enumerate(entries) if e.name == "Hangup")
    for to in range(lo, hi + 1):
        moved = _moved(transcript, index, to)
        t = entries[to].t
        moved = replace(moved, entries=tuple(
            replace(e, t=t) if e.name == "OriginateResponse" and e.direction is Direction.SERVER else e
            for e in moved.entries))
        final = replay(moved, START).final(1)
        assert final is not None and final.result is expected, f"OriginateResponse moved to {to}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_given_the_first_n_events_cut_off_then_replay_never_breaks(transcripts, name):
    """Attaching to Asterisk mid-call (cacofonisk's cheap fuzz): for every N, no crash, states only
    move forward, at most one end per attempt and it carries a result."""
    transcript = transcripts[name]
    total = sum(1 for _ in transcript.events())
    for n in range(total + 1):
        result = replay(transcript, START, skip_events=n)
        known = set(result.attempts.values())
        for attempt_id in known:
            updates = [u for u in result.updates if u.attempt_id == attempt_id]
            assert all(_ORDER[u.from_state.value] < _ORDER[u.state.value] for u in updates), n
            ends = [u for u in updates if u.state is AttemptState.ENDED]
            assert len(ends) <= 1 and all(u.result is not None for u in ends), n
            assert all(u.at >= START for u in updates)
        assert {u.attempt_id for u in result.updates} <= known
        if n == 0:
            assert [result.final(a).result for a in sorted(known)] == [r for r, _ in EXPECTED[name]]


def test_the_transcript_reader_gives_the_wire_bytes_and_a_panoramisk_shaped_mapping(transcripts):
    t = transcripts["pjsip-busy-486"]
    banner = next(t.server_messages())
    assert banner.kind == "banner" and banner.to_wire() == b"Asterisk Call Manager/11.0.0\r\n"
    originate = next(e for e in t.client_messages() if e.name == "Originate")
    assert originate.as_mapping()["Variable"] == ["__LEAD_ID=42", "CAMPAIGN_ID=7"]
    assert originate.get("channelid") == "lead42-pjsip-b"
    hangup = [e for e in t.events() if e.name == "Hangup"][0]
    wire = hangup.to_wire()
    assert wire.startswith(b"Event: Hangup\r\nPrivilege: call,all\r\n") and wire.endswith(b"TechCause: 486\r\n\r\n")
    assert b"AccountCode: \r\n" in wire
    notes = [e for e in t.entries if e.direction is Direction.NOTE]
    assert notes[-1].note is not None and "EOF" in notes[-1].note and notes[-1].t == pytest.approx(2.712)
    assert all(isinstance(e, Entry) for e in t.entries)


def test_a_malformed_transcript_is_refused_with_its_line_number():
    from dialer.ami.transcript import TranscriptError, parse_transcript
    with pytest.raises(TranscriptError, match=r"x:3: AMI line outside"):
        parse_transcript("# title\n#-- t=+0.0s note\nEvent: Hangup\n", name="x")
    with pytest.raises(TranscriptError, match=r"x:2: unknown marker"):
        parse_transcript("#<< S->C t=+0.1s\n#?? what\n", name="x")
