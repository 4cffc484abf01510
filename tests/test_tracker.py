"""The call tracker and the result table, with typed events built by hand (cases the recordings lack)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dialer.ami.events import (
    AgentConnect, ChannelRef, CoreShowChannel, DialBegin, DialEnd, Disconnected, Hangup, Newchannel, Newstate,
    OriginateResponse, QueueCallerAbandon, QueueCallerJoin, UserEvent, VarSet,
)
from dialer.ami.results import RESULT_TABLE, CallFacts, decide
from dialer.calls.tracker import CallTracker, operator_interface
from leads.attempt import AttemptState, CallResult

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
S = AttemptState


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def chan(uid: str, linked: str | None = None, name: str = "PJSIP/trunk-00000001", state: int = 0,
         **variables: str) -> ChannelRef:
    return ChannelRef(name=name, uniqueid=uid, linkedid=linked or uid, state=state, variables=variables)


def tracked(channel_id: str | None = "dialer-1", lead_id: int | None = 42) -> CallTracker:
    tracker = CallTracker()
    tracker.track(1, action_id="orig-1", channel_id=channel_id, lead_id=lead_id, at=T0)
    return tracker


def answered_pjsip_call(tracker: CallTracker) -> list:
    c = "dialer-1"
    updates = tracker.originated(1, at(0.001))
    updates += tracker.feed(Newchannel(received_at=at(0.002), channel=chan(c)))
    updates += tracker.feed(DialBegin(received_at=at(0.003), caller=None, dest=chan(c)))
    updates += tracker.feed(Newstate(received_at=at(1), channel=chan(c, state=5)))
    updates += tracker.feed(Newstate(received_at=at(3), channel=chan(c, state=6)))
    updates += tracker.feed(DialEnd(received_at=at(3), caller=None, dest=chan(c, state=6), dial_status="ANSWER"))
    updates += tracker.feed(OriginateResponse(received_at=at(3), action_id="orig-1", success=True, reason=4,
                                              uniqueid=c))
    return updates


def test_given_an_answered_call_then_states_move_forward_with_event_times():
    tracker = tracked()
    updates = answered_pjsip_call(tracker)
    assert [(u.from_state, u.state, u.at) for u in updates] == [
        (S.CLAIMED, S.ORIGINATED, at(0.001)), (S.ORIGINATED, S.RINGING, at(1)), (S.RINGING, S.ANSWERED, at(3))]
    assert tracker.state_of(1) is S.ANSWERED


def test_given_a_queued_customer_who_leaves_before_an_operator_then_abandoned():
    tracker = tracked()
    answered_pjsip_call(tracker)
    c = chan("dialer-1", state=6)
    assert tracker.feed(QueueCallerJoin(received_at=at(3.1), channel=c, queue="sales", position=1)) == []
    tracker.feed(QueueCallerAbandon(received_at=at(20), channel=c, queue="sales", position=1, hold_time=17))
    [end] = tracker.feed(Hangup(received_at=at(20), channel=c, cause=16))
    assert (end.state, end.result, end.at) == (S.ENDED, CallResult.ABANDONED, at(20))
    assert tracker.state_of(1) is None and tracker.active == ()


def test_given_a_queued_customer_taken_by_an_operator_then_connected_with_the_interface():
    tracker = tracked()
    answered_pjsip_call(tracker)
    c = chan("dialer-1", state=6)
    tracker.feed(QueueCallerJoin(received_at=at(3.1), channel=c, queue="sales"))
    op = chan("1795.5", "dialer-1", name="PJSIP/op1-00000005")
    # the queue's own DialEnd ANSWER does not decide: AgentConnect names the member
    assert tracker.feed(DialEnd(received_at=at(4), caller=c, dest=op, dial_status="ANSWER")) == []
    [connected] = tracker.feed(AgentConnect(received_at=at(4), queue="sales", interface="PJSIP/op1",
                                            member_name="Оператор Один", caller=c, member=op))
    assert (connected.state, connected.fields["operator_interface"]) == (S.CONNECTED, "PJSIP/op1")
    assert tracker.feed(Hangup(received_at=at(9), channel=op, cause=16)) == []   # the operator's leg
    [end] = tracker.feed(Hangup(received_at=at(9), channel=c, cause=16))
    assert end.result is CallResult.CONNECTED and end.fields["hangup_cause"] == 16


@pytest.mark.parametrize("amd_event", ["user_event", "var_set"])
def test_given_amd_says_machine_then_answering_machine(amd_event):
    tracker = tracked()
    answered_pjsip_call(tracker)
    c = chan("dialer-1", state=6)
    if amd_event == "user_event":
        tracker.feed(UserEvent(received_at=at(5), user_event="DialerAMD", channel=c,
                               headers={"AMDStatus": "MACHINE", "AMDCause": "INITIALSILENCE-2500-2500"}))
    else:
        tracker.feed(VarSet(received_at=at(5), channel=c, variable="AMDSTATUS", value="MACHINE"))
    [end] = tracker.feed(Hangup(received_at=at(6), channel=c, cause=16))
    assert end.result is CallResult.ANSWERING_MACHINE


def test_given_amd_says_human_then_the_call_goes_on_as_usual():
    tracker = tracked()
    answered_pjsip_call(tracker)
    c = chan("dialer-1", state=6)
    tracker.feed(UserEvent(received_at=at(5), user_event="DialerAMD", channel=c, headers={"AMDStatus": "HUMAN"}))
    [end] = tracker.feed(Hangup(received_at=at(6), channel=c, cause=16))
    assert end.result is CallResult.ABANDONED


def test_given_events_of_channels_we_do_not_track_then_nothing_happens():
    tracker = tracked()
    other = chan("1795.1", name="PJSIP/trunk-00000009", LEAD_ID="7")
    assert tracker.feed(Newchannel(received_at=at(1), channel=other)) == []
    assert tracker.feed(Hangup(received_at=at(2), channel=other, cause=17)) == []
    assert tracker.feed(OriginateResponse(received_at=at(2), action_id="someone-else", success=False,
                                          reason=0)) == []
    assert tracker.state_of(1) is S.CLAIMED


def test_given_a_failed_originate_with_no_channel_ever_then_it_ends_at_the_response():
    tracker = tracked()
    tracker.originated(1, at(0.001))
    [end] = tracker.feed(OriginateResponse(received_at=at(0.01), action_id="orig-1", success=False, reason=0,
                                           uniqueid="dialer-1"))
    assert end.result is CallResult.FAILED and end.fields["originate_reason"] == 0


def test_given_asterisk_refuses_the_originate_then_failed_with_the_message():
    tracker = tracked()
    [end] = tracker.originate_failed(1, at(0.01), "Permission denied")
    assert (end.from_state, end.state, end.result, end.event) == \
        (S.CLAIMED, S.ENDED, CallResult.FAILED, "originate refused: Permission denied")


def test_given_the_dialer_cancels_after_the_answer_then_it_is_abandoned_not_cancelled():
    tracker = tracked()
    answered_pjsip_call(tracker)
    tracker.cancel_requested(1)
    [end] = tracker.feed(Hangup(received_at=at(4), channel=chan("dialer-1", state=6), cause=16))
    assert end.result is CallResult.ABANDONED


def test_without_a_channelid_the_attempt_id_variable_ties_the_channels_to_the_attempt():
    tracker = tracked(channel_id=None, lead_id=None)
    one = chan("1795.10", name="Local/5551001@customers-0000001a;1", ATTEMPT_ID="1")
    two = chan("1795.11", "1795.10", name="Local/5551001@customers-0000001a;2")
    [originated] = tracker.feed(Newchannel(received_at=at(0.1), channel=one))
    assert originated.fields["uniqueid"] == "1795.10"
    tracker.feed(Newchannel(received_at=at(0.1), channel=two))                  # by Linkedid
    tracker.feed(DialEnd(received_at=at(0.2), caller=None, dest=one, dial_status="BUSY"))
    tracker.feed(OriginateResponse(received_at=at(0.2), action_id="orig-1", success=False, reason=5))
    assert tracker.feed(Hangup(received_at=at(0.3), channel=one, cause=0)) == []  # ;2 still up
    [end] = tracker.feed(Hangup(received_at=at(0.3), channel=two, cause=17))
    assert (end.result, end.fields["hangup_cause"], end.fields["dial_status"]) == (CallResult.BUSY, 17, "BUSY")


def test_given_a_disconnect_then_learned_uniqueids_are_forgotten_but_our_channelid_is_kept():
    tracker = tracked(channel_id=None, lead_id=None)
    one = chan("1795.10", ATTEMPT_ID="1")
    tracker.feed(Newchannel(received_at=at(0.1), channel=one))
    tracker.feed(Disconnected(received_at=at(1), server="pbx1"))
    # after a restart Asterisk may hand the same Uniqueid to someone else's call
    stranger = chan("1795.10", name="PJSIP/trunk-00000001")
    assert tracker.feed(Hangup(received_at=at(9), channel=stranger, cause=17)) == []
    assert tracker.state_of(1) is S.ORIGINATED

    kept = tracked()
    kept.feed(Disconnected(received_at=at(1), server="pbx1"))
    kept.feed(Newchannel(received_at=at(2), channel=chan("dialer-1")))
    assert kept.state_of(1) is S.ORIGINATED


def test_reconcile_ends_the_calls_asterisk_no_longer_has_and_keeps_the_live_and_the_fresh_ones():
    tracker = CallTracker()
    for attempt_id in (1, 2, 3):
        tracker.track(attempt_id, action_id=f"orig-{attempt_id}", channel_id=f"dialer-{attempt_id}", at=T0)
    tracker.feed(Newchannel(received_at=at(1), channel=chan("dialer-1")))
    tracker.feed(Newchannel(received_at=at(1), channel=chan("dialer-2")))
    tracker.track(4, action_id="orig-4", channel_id="dialer-4", at=at(59))   # its Originate is on its way
    live = CoreShowChannel(received_at=at(60), channel=chan("dialer-2", state=6))
    updates = tracker.reconcile([live], at(60), grace=timedelta(seconds=5))
    assert [(u.attempt_id, u.state, u.result) for u in updates] == [
        (2, S.ANSWERED, None), (1, S.ENDED, CallResult.UNKNOWN), (3, S.ENDED, CallResult.UNKNOWN)]
    assert set(tracker.active) == {2, 4}


def test_reconcile_ends_a_call_whose_customer_hung_up_while_we_were_away_though_the_operator_leg_lingers():
    tracker = tracked()
    answered_pjsip_call(tracker)
    op = chan("1795.5", "dialer-1", name="PJSIP/op1-00000005", state=6)
    tracker.feed(AgentConnect(received_at=at(4), queue="sales", interface="PJSIP/op1", caller=chan("dialer-1"),
                              member=op))
    tracker.feed(Disconnected(received_at=at(5), server="pbx1"))        # the customer's Hangup is missed
    [end] = tracker.reconcile([CoreShowChannel(received_at=at(9), channel=op)], at(9))
    assert (end.result, end.at, end.event) == (CallResult.CONNECTED, at(9), "reconcile: no channel left in Asterisk")


def test_tracking_the_same_attempt_or_actionid_twice_is_refused():
    tracker = tracked()
    with pytest.raises(ValueError, match="already tracked"):
        tracker.track(1, action_id="orig-x", at=T0)
    with pytest.raises(ValueError, match="ActionID"):
        tracker.track(2, action_id="orig-1", at=T0)


def test_operator_interface_strips_the_channel_sequence():
    assert operator_interface("PJSIP/op1-00000005") == "PJSIP/op1"
    assert operator_interface("Local/op1@operators-0000001b;1") == "Local/op1@operators"
    assert operator_interface("SIP/100") == "SIP/100"


# ---------------------------------------------------------------------------------------- result table


@pytest.mark.parametrize("facts, expected", [
    # SIP trunk: Reason 0 for every rejection, the Hangup Cause decides (pjsip-*.txt)
    (CallFacts(originate_reason=0, hangup_cause=17, tech_cause=486, dial_status="BUSY"), CallResult.BUSY),
    (CallFacts(originate_reason=0, hangup_cause=1, tech_cause=404, dial_status="NOANSWER"), CallResult.INVALID_NUMBER),
    (CallFacts(originate_reason=0, hangup_cause=21, tech_cause=603, dial_status="NOANSWER"), CallResult.REJECTED),
    (CallFacts(originate_reason=0, hangup_cause=34, tech_cause=503, dial_status="CONGESTION"), CallResult.CONGESTION),
    (CallFacts(originate_reason=0, hangup_cause=19, tech_cause=480, dial_status="NOANSWER"), CallResult.NO_ANSWER),
    (CallFacts(originate_reason=3, hangup_cause=19, tech_cause=480), CallResult.NO_ANSWER),
    (CallFacts(originate_reason=0, hangup_cause=38), CallResult.CONGESTION),
    (CallFacts(originate_reason=0, hangup_cause=28), CallResult.INVALID_NUMBER),
    (CallFacts(originate_reason=0, hangup_cause=0, tech_cause=486), CallResult.BUSY),
    # Local channels: Busy()/Congestion() give Reason 5/8
    (CallFacts(originate_reason=5, hangup_cause=17), CallResult.BUSY),
    (CallFacts(originate_reason=8, hangup_cause=34), CallResult.CONGESTION),
    (CallFacts(originate_reason=1, hangup_cause=21), CallResult.REJECTED),
    (CallFacts(originate_reason=1), CallResult.NO_ANSWER),
    (CallFacts(originate_reason=0, never_dialed=True), CallResult.INVALID_NUMBER),
    (CallFacts(originate_reason=0), CallResult.FAILED),
    (CallFacts(originate_reason=4, answered=True, connected=True, hangup_cause=16), CallResult.CONNECTED),
    (CallFacts(originate_reason=4, answered=True, amd_machine=True), CallResult.ANSWERING_MACHINE),
    (CallFacts(originate_reason=4, answered=True, connected=True, amd_machine=True), CallResult.CONNECTED),
    (CallFacts(originate_reason=4, answered=True, cancelled=True), CallResult.ABANDONED),
    (CallFacts(originate_reason=0, cancelled=True, dial_status="NOANSWER"), CallResult.CANCELLED),
    (CallFacts(refused=True), CallResult.FAILED),
    (CallFacts(), CallResult.UNKNOWN),
])
def test_the_result_table(facts, expected):
    assert decide(facts)[0] is expected


@pytest.mark.parametrize("index", range(len(RESULT_TABLE)))
def test_every_row_of_the_result_table_can_decide(index):
    """No dead rows: the row's own fact alone reaches it (earlier rows read other facts/values)."""
    row = RESULT_TABLE[index]
    value = sorted(row.values, key=str)[0]
    result, matched = decide(CallFacts(**{row.fact: value}))
    assert matched is row and result is row.result
    assert row.evidence
