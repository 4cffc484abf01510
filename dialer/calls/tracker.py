"""The call tracker: typed AMI events in, attempt updates out. A pure state machine, no I/O.

The daemon tells the tracker what it did (track / originated / originate_failed / cancel_requested)
and feeds it every event the adapter delivers; each call returns the AttemptUpdates to store.
Time comes from the events (`received_at`) or from the caller: replays are deterministic.

Correlation (never by Uniqueid alone across Asterisk restarts):
- OriginateResponse by our ActionID;
- every other event by our ChannelId: it is the Uniqueid of the originated channel (PJSIP leg or
  Local ;1) and the Linkedid of every other leg of the call (Local ;2, trunk, operator legs);
- without a ChannelId (old recordings, attaching mid-call): by the channel variable ATTEMPT_ID, or
  LEAD_ID (ChanVariable headers, manager.conf channelvars), which teaches the Uniqueid/Linkedid of
  that call for as long as the connection lasts. Learned ids are forgotten on Disconnected.
Events of channels that belong to no tracked attempt are ignored.

When a call ends: the originated channel and every customer-side leg (legs created before the
answer) have hung up, and either the customer answered or the OriginateResponse arrived (it comes
before or after DialEnd/Hangup; its Reason tells our timeout from a rejection). An OriginateResponse
Failure for a call whose channel was never seen ends it at once. `reconcile()` ends the calls
Asterisk no longer has (a missed Hangup, a restart) from CoreShowChannels.
The result is read from dialer.ami.results.RESULT_TABLE.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from dialer.ami.events import (
    AgentComplete, AgentConnect, AmiEvent, BridgeEnter, ChannelRef, ChannelState, CoreShowChannel, DialBegin,
    DialEnd, DialState, Disconnected, Hangup, HangupRequest, Newchannel, Newstate, OriginateResponse,
    QueueCallerAbandon, QueueCallerJoin, UserEvent, VarSet,
)
from dialer.ami.results import CallFacts, decide
from leads.attempt import AttemptState, CallResult

log = logging.getLogger(__name__)

S = AttemptState
_LEG_SUFFIX = re.compile(r"-[0-9a-f]{8}(;\d)?$")

AMD_USER_EVENT = "DialerAMD"       # UserEvent(DialerAMD,AMDStatus: ${AMDSTATUS})
AMD_VARIABLE = "AMDSTATUS"         # Set(AMDSTATUS=MACHINE) / AMD() sets it
ATTEMPT_VARIABLE = "ATTEMPT_ID"    # set as __ATTEMPT_ID by the Originate
LEAD_VARIABLE = "LEAD_ID"          # set as __LEAD_ID by the Originate


@dataclass(frozen=True, slots=True)
class AttemptUpdate:
    """One transition of one attempt: `from_state -> event -> state`, at the event's time.

    `fields` are CallAttempt columns known so far (uniqueid, channel, operator_interface,
    originate_reason, hangup_cause, hangup_cause_txt, tech_cause, dial_status); `result` is set
    when `state` is ENDED, with `detail` naming the evidence (the result table row).
    """

    attempt_id: int
    event: str
    from_state: AttemptState
    state: AttemptState
    at: datetime
    fields: Mapping[str, Any]
    result: CallResult | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class KnownFacts:
    """What the store already holds about a call (learned before a restart or a reconnect)."""

    answered: bool = False
    connected: bool = False
    operator_interface: str | None = None
    uniqueid: str | None = None
    hangup_cause: int | None = None


@dataclass(slots=True)
class _Call:
    attempt_id: int
    action_id: str
    channel_id: str | None
    lead_id: str | None
    state: AttemptState
    last_at: datetime
    keys: set[str] = field(default_factory=set)        # Uniqueids/Linkedids known to be this call's
    originated: str | None = None                       # Uniqueid of the originated channel
    originated_alive: bool | None = None                # None: never seen
    customer_legs: dict[str, bool] = field(default_factory=dict)  # legs created before the answer -> alive
    operator_legs: set[str] = field(default_factory=set)
    leg_names: dict[str, str] = field(default_factory=dict)   # operator leg Uniqueid -> channel name
    bridges: dict[str, set[str]] = field(default_factory=dict)
    heard: bool = False                                 # an event of this call arrived
    # facts
    refused: bool = False
    originate_seen: bool = False
    originate_reason: int | None = None
    answered: bool = False
    connected: bool = False
    cancelled: bool = False
    queued: bool = False
    amd_machine: bool = False
    dial_began: bool = False
    channel_created: bool = False
    hangup_cause: int | None = None
    hangup_cause_txt: str | None = None
    tech_cause: int | None = None
    dial_status: str | None = None
    uniqueid: str | None = None
    channel: str | None = None
    operator_interface: str | None = None

    def facts(self) -> CallFacts:
        return CallFacts(
            refused=self.refused, connected=self.connected, amd_machine=self.amd_machine,
            answered=self.answered, cancelled=self.cancelled, originate_reason=self.originate_reason,
            hangup_cause=self.hangup_cause or None, tech_cause=self.tech_cause, dial_status=self.dial_status,
            never_dialed=(self.channel_created and not self.dial_began and self.originate_seen
                          and not self.answered))

    def fields(self) -> Mapping[str, Any]:
        return MappingProxyType({
            "uniqueid": self.uniqueid, "channel": self.channel, "operator_interface": self.operator_interface,
            "originate_reason": self.originate_reason, "hangup_cause": self.hangup_cause,
            "hangup_cause_txt": self.hangup_cause_txt,
            "tech_cause": None if self.tech_cause is None else str(self.tech_cause),
            "dial_status": self.dial_status,
        })

    def role(self, uniqueid: str) -> str:
        if uniqueid == self.originated:
            return "originated"
        if uniqueid in self.operator_legs:
            return "operator"
        return "customer"


def operator_interface(channel_name: str) -> str:
    """The device behind an operator leg's channel name: 'PJSIP/op1-00000005' -> 'PJSIP/op1'."""
    return _LEG_SUFFIX.sub("", channel_name)


class CallTracker:
    """Attempts in flight on one Asterisk server and what their events mean."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}
        self._by_action: dict[str, _Call] = {}
        self._by_key: dict[str, _Call] = {}
        self._by_lead: dict[str, _Call] = {}
        self._implied: list[AttemptUpdate] = []   # transitions an event implies beyond its own meaning

    # ------------------------------------------------------------------ what the daemon did

    def track(self, attempt_id: int, *, action_id: str, at: datetime, channel_id: str | None = None,
              lead_id: int | str | None = None, state: AttemptState = AttemptState.CLAIMED,
              known: KnownFacts | None = None) -> None:
        """Start following an attempt; call it BEFORE sending the Originate (events may beat the reply).

        `known`: facts stored before (adopting a call after a restart): the result builds on them, so
        a call an operator already took ends `connected` however little is learned afterwards.
        """
        if attempt_id in self._calls:
            raise ValueError(f"attempt {attempt_id} is already tracked")
        if action_id in self._by_action:
            raise ValueError(f"ActionID {action_id!r} already belongs to attempt "
                             f"{self._by_action[action_id].attempt_id}")
        call = _Call(attempt_id, action_id, channel_id, None if lead_id is None else str(lead_id), state, at)
        if known is not None:
            call.answered, call.connected = known.answered or known.connected, known.connected
            call.operator_interface, call.uniqueid = known.operator_interface, known.uniqueid
            call.hangup_cause = known.hangup_cause
            call.originate_seen = call.originate_seen or known.answered or known.connected
        self._calls[attempt_id] = call
        self._by_action[action_id] = call
        if channel_id:
            call.originated = channel_id
            self._learn(call, channel_id)
        elif call.lead_id is not None:
            self._by_lead[call.lead_id] = call

    def originated(self, attempt_id: int, at: datetime) -> list[AttemptUpdate]:
        """Asterisk queued the Originate (Response: Success)."""
        call = self._calls.get(attempt_id)
        if call is None:
            return []
        call.last_at = max(call.last_at, at)
        return self._advance(call, S.ORIGINATED, at, "originate queued")

    def originate_failed(self, attempt_id: int, at: datetime, message: str) -> list[AttemptUpdate]:
        """Asterisk refused the Originate (Response: Error): nothing was dialed."""
        call = self._calls.get(attempt_id)
        if call is None:
            return []
        call.refused = True
        return self._end(call, at, f"originate refused: {message}")

    def cancel_requested(self, attempt_id: int) -> None:
        """The dialer is hanging the call up; unless it was answered the result is `cancelled`."""
        call = self._calls.get(attempt_id)
        if call is not None:
            call.cancelled = True

    # ------------------------------------------------------------------ what Asterisk said

    def feed(self, event: AmiEvent) -> list[AttemptUpdate]:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return []
        self._implied = []
        updates = handler(self, event)
        return self._implied + updates if self._implied else updates

    def reconcile(self, channels: Iterable[CoreShowChannel], at: datetime,
                  grace: timedelta = timedelta(seconds=5),
                  pbx_record: Callable[[Iterable[int]], Mapping[int, tuple[CallFacts, str | None]]] | None = None,
                  ) -> list[AttemptUpdate]:
        """Compare with what Asterisk has now (CoreShowChannels, e.g. after a reconnect).

        Attempts with no live channel are ended with what is known (UNKNOWN when nothing is),
        except one no event has spoken of yet that was tracked less than `grace` ago (its
        Originate may still be on its way); attempts still up are re-attached (ids re-learned).

        `pbx_record` (the PBX's CDR, read AFTER `channels` was taken): for the attempts gone from
        Asterisk, the facts its records hold (and the operator's channel). They complete what the
        events told; an attempt Asterisk has neither a channel nor a record of, and no event ever
        spoke of, never reached it: it ends `cancelled` before the dial (given back, not counted).
        """
        live: dict[int, set[str]] = {}
        self._implied = []
        for snapshot in channels:
            call = self._find(snapshot.channel)
            if call is not None:
                live.setdefault(call.attempt_id, set()).add(snapshot.channel.uniqueid)
                self._touch(call, snapshot.channel, at)   # an Up originated channel: answered
        updates, self._implied = self._implied, []
        event = "reconcile: no channel left in Asterisk"
        gone = [c for c in self._calls.values()
                if c.attempt_id not in live and (c.heard or c.last_at <= at - grace)]   # else just sent: no channel yet
        recorded = pbx_record([c.attempt_id for c in gone]) if pbx_record is not None and gone else {}
        for call in gone:
            if call.attempt_id in recorded:
                facts, operator = recorded[call.attempt_id]
                self._learn_from_record(call, facts, operator)
                updates += self._end(call, at, "reconcile: outcome from the PBX's CDR")
            elif pbx_record is not None and not call.heard and not call.answered and call.state is S.CLAIMED:
                call.cancelled = True
                updates += self._end(call, at, "reconcile: Asterisk has no channel and no CDR: never placed")
            else:
                updates += self._end(call, at, event)
        for call in list(self._calls.values()):
            uids = live.get(call.attempt_id)
            if uids is None:
                continue
            # legs whose Hangup was missed (while disconnected) are gone too
            if call.originated_alive and call.originated not in uids:
                call.originated_alive = False
            for uid, alive in call.customer_legs.items():
                if alive and uid not in uids:
                    call.customer_legs[uid] = False
            updates += self._maybe_end(call, at, event)
        return updates

    @staticmethod
    def _learn_from_record(call: _Call, facts: CallFacts, operator: str | None) -> None:
        """The CDR fills in what the missed events would have told (it never unlearns a fact)."""
        call.answered = call.answered or facts.answered
        if facts.connected and not call.connected:
            call.connected = True
            call.operator_interface = call.operator_interface or (operator_interface(operator) if operator else None)
        call.amd_machine = call.amd_machine or facts.amd_machine
        call.hangup_cause = call.hangup_cause or facts.hangup_cause
        call.dial_status = call.dial_status or facts.dial_status

    def forget(self, attempt_id: int) -> None:
        call = self._calls.pop(attempt_id, None)
        if call is not None:
            self._drop_indexes(call)

    def state_of(self, attempt_id: int) -> AttemptState | None:
        """The state of an attempt in flight (None once it ended or if never tracked)."""
        call = self._calls.get(attempt_id)
        return call.state if call else None

    def facts_of(self, attempt_id: int) -> CallFacts | None:
        call = self._calls.get(attempt_id)
        return call.facts() if call else None

    @property
    def active(self) -> tuple[int, ...]:
        return tuple(self._calls)

    # ------------------------------------------------------------------ event handlers

    def _on_originate_response(self, ev: OriginateResponse) -> list[AttemptUpdate]:
        call = self._by_action.get(ev.action_id)
        if call is None:
            return []
        call.last_at = ev.received_at
        call.heard = call.originate_seen = True
        call.originate_reason = ev.reason
        if ev.uniqueid and call.originated is None:
            call.originated = ev.uniqueid
            self._learn(call, ev.uniqueid)
        updates = []
        if ev.success:
            call.channel = call.channel or ev.channel
            call.uniqueid = call.uniqueid or ev.uniqueid
            call.answered = True
            updates += self._advance(call, S.ANSWERED, ev.received_at, ev.name)
        return updates + self._maybe_end(call, ev.received_at, ev.name)

    def _on_newchannel(self, ev: Newchannel) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is None:
            return []
        call.channel_created = True
        if ev.channel.uniqueid == call.originated:
            return self._advance(call, S.ORIGINATED, ev.received_at, ev.name)
        return []

    def _on_newstate(self, ev: Newstate) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is None or ev.channel.uniqueid != call.originated:
            return []
        if ev.channel.state == ChannelState.RINGING:
            return self._advance(call, S.RINGING, ev.received_at, ev.name)
        if ev.channel.state == ChannelState.UP:
            call.answered = True
            return self._advance(call, S.ANSWERED, ev.received_at, ev.name)
        return []

    def _on_dial_begin(self, ev: DialBegin) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is not None and self._customer_dial(call, ev.caller):
            call.dial_began = True
        return []

    def _on_dial_state(self, ev: DialState) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is None or ev.dial_status != "RINGING" or not self._customer_dial(call, ev.caller):
            return []
        return self._advance(call, S.RINGING, ev.received_at, ev.name)

    def _on_dial_end(self, ev: DialEnd) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is None:
            return []
        if self._customer_dial(call, ev.caller):
            call.dial_began = True
            call.dial_status = ev.dial_status or call.dial_status
            if ev.dial_status == "ANSWER":
                call.answered = True
                return self._advance(call, S.ANSWERED, ev.received_at, ev.name)
            return []
        # the answered customer's channel dials an operator (Dial() in the dialplan, or a queue's ring)
        if ev.caller is not None and call.role(ev.caller.uniqueid) == "originated" \
                and ev.dial_status == "ANSWER" and not call.queued:
            call.connected = True
            call.operator_interface = operator_interface(ev.dest.name)
            return self._advance(call, S.CONNECTED, ev.received_at, ev.name)
        return []

    def _on_agent_connect(self, ev: AgentConnect | AgentComplete) -> list[AttemptUpdate]:
        """An operator took the call (AgentComplete too: attached mid-call, the connect was missed)."""
        call = self._correlate(ev)
        if call is None:
            return []
        if call.connected and isinstance(ev, AgentComplete):
            return []
        call.connected = True
        call.operator_interface = ev.interface or (operator_interface(ev.member.name) if ev.member else None)
        return self._advance(call, S.CONNECTED, ev.received_at, ev.name)

    def _on_queue_join(self, ev: QueueCallerJoin) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is not None:
            call.queued = True
        return []

    def _on_bridge_enter(self, ev: BridgeEnter) -> list[AttemptUpdate]:
        """The customer's channel and an operator's leg in one bridge: connected (if no event said so)."""
        call = self._correlate(ev)
        if call is None:
            return []
        members = call.bridges.setdefault(ev.bridge_id, set())
        members.add(ev.channel.uniqueid)
        if call.connected or call.originated not in members:
            return []
        operator = next((uid for uid in members if uid in call.operator_legs), None)
        if operator is None:
            return []
        call.connected = True
        call.operator_interface = operator_interface(call.leg_names.get(operator, ""))
        return self._advance(call, S.CONNECTED, ev.received_at, ev.name)

    def _on_queue_abandon(self, ev: QueueCallerAbandon) -> list[AttemptUpdate]:
        self._correlate(ev)  # the result follows from answered + not connected: abandoned
        return []

    def _on_hangup_request(self, ev: HangupRequest) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is not None and ev.tech_cause and call.role(ev.channel.uniqueid) != "operator":
            call.tech_cause = call.tech_cause or ev.tech_cause
        return []

    def _on_hangup(self, ev: Hangup) -> list[AttemptUpdate]:
        call = self._correlate(ev, alive=False)
        if call is None:
            return []
        if call.role(ev.channel.uniqueid) != "operator":
            if ev.cause and not call.hangup_cause:
                call.hangup_cause = ev.cause
                call.hangup_cause_txt = ev.cause_txt or None
            elif call.hangup_cause is None:
                call.hangup_cause = ev.cause
            if ev.tech_cause and not call.tech_cause:
                call.tech_cause = ev.tech_cause
        return self._maybe_end(call, ev.received_at, ev.name)

    def _on_var_set(self, ev: VarSet) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is None:
            return []
        variable = ev.variable.lstrip("_").upper()
        if variable in (LEAD_VARIABLE, ATTEMPT_VARIABLE):
            call.channel_created = True   # the Originate sets our variables as it creates the channel
        elif variable == AMD_VARIABLE and ev.value.upper() == "MACHINE":
            call.amd_machine = True
        return []

    def _on_user_event(self, ev: UserEvent) -> list[AttemptUpdate]:
        call = self._correlate(ev)
        if call is not None and ev.user_event == AMD_USER_EVENT and ev.header("AMDStatus").upper() == "MACHINE":
            call.amd_machine = True
        return []

    def _on_disconnected(self, ev: Disconnected) -> list[AttemptUpdate]:
        """Asterisk may restart while we are away, and its Uniqueids with it: keep only our ChannelIds."""
        for call in self._calls.values():
            for key in call.keys - {call.channel_id}:
                if self._by_key.get(key) is call:
                    del self._by_key[key]
            call.keys &= {call.channel_id}
        return []

    # ------------------------------------------------------------------ correlation

    def _correlate(self, event: AmiEvent, alive: bool = True) -> _Call | None:
        """The attempt this event is about (learning the ids of its other channels), or None."""
        refs = event.channels()
        call = None
        for ref in refs:
            call = self._find(ref)
            if call is not None:
                break
        if call is None:
            return None
        call.last_at = max(call.last_at, event.received_at)
        call.heard = True
        for ref in refs:
            if ref.linkedid in call.keys or ref.uniqueid in call.keys:
                self._learn(call, ref.uniqueid)
                self._touch(call, ref, event.received_at, alive)
        return call

    def _find(self, ref: ChannelRef) -> _Call | None:
        call = self._by_key.get(ref.uniqueid) or self._by_key.get(ref.linkedid)
        if call is not None:
            return call
        variables = ref.variables
        if not variables:
            return None
        attempt = variables.get(ATTEMPT_VARIABLE, "")
        call = self._calls.get(int(attempt)) if attempt.isdigit() else None
        if call is None:
            lead = variables.get(LEAD_VARIABLE)
            call = self._by_lead.get(lead) if lead else None
        if call is None:
            return None
        if call.originated is None and ref.uniqueid == ref.linkedid:
            call.originated = ref.uniqueid   # the oldest channel of the linked group: the originated one
        self._learn(call, ref.uniqueid)
        if ref.linkedid:
            self._learn(call, ref.linkedid)
        return call

    def _learn(self, call: _Call, key: str) -> None:
        if key and key not in call.keys:
            call.keys.add(key)
            self._by_key[key] = call

    def _touch(self, call: _Call, ref: ChannelRef, at: datetime, alive: bool = True) -> None:
        """Record a channel of the call: the originated one, a customer-side leg, or an operator leg."""
        uid = ref.uniqueid
        if uid == call.originated:
            if call.originated_alive is not False:
                call.originated_alive = alive
            call.uniqueid = uid
            call.channel = ref.name or call.channel
            if ref.state == ChannelState.UP and not call.answered:
                # every channel event carries ChannelState: attached mid-call, this is how we learn it
                call.answered = True
                self._implied += self._advance(call, S.ANSWERED, at, "ChannelState Up")
        elif uid in call.operator_legs:
            call.leg_names[uid] = ref.name or call.leg_names.get(uid, "")
        elif uid in call.customer_legs:
            if call.customer_legs[uid]:
                call.customer_legs[uid] = alive
        elif call.answered:
            call.operator_legs.add(uid)
            call.leg_names[uid] = ref.name
        else:
            call.customer_legs[uid] = alive

    def _customer_dial(self, call: _Call, caller: ChannelRef | None) -> bool:
        """A dial toward the customer: the Originate's own (no caller) or one made by a customer-side leg."""
        return caller is None or call.role(caller.uniqueid) == "customer"

    # ------------------------------------------------------------------ transitions

    def _maybe_end(self, call: _Call, at: datetime, event: str) -> list[AttemptUpdate]:
        if call.originated_alive or any(call.customer_legs.values()):
            return []
        over = call.originated_alive is False if call.answered else call.originate_seen
        return self._end(call, at, event) if over else []

    def _end(self, call: _Call, at: datetime, event: str) -> list[AttemptUpdate]:
        result, row = decide(call.facts())
        detail = row.evidence if row else "nothing was learned about the call"
        update = self._transition(call, S.ENDED, at, event, result, detail)
        self.forget(call.attempt_id)
        return [update] if update else []

    def _advance(self, call: _Call, state: AttemptState, at: datetime, event: str) -> list[AttemptUpdate]:
        update = self._transition(call, state, at, event)
        return [update] if update else []

    def _transition(self, call: _Call, state: AttemptState, at: datetime, event: str,
                    result: CallResult | None = None, detail: str = "") -> AttemptUpdate | None:
        if state.rank <= call.state.rank:
            return None   # states only move forward; a late or repeated event changes nothing
        update = AttemptUpdate(call.attempt_id, event, call.state, state, at, call.fields(), result, detail)
        log.info("attempt_id=%s uniqueid=%s %s -> %s -> %s%s", call.attempt_id, call.uniqueid or "-",
                 call.state.value, event, state.value, f" result={result.value}" if result else "")
        call.state = state
        return update

    def _drop_indexes(self, call: _Call) -> None:
        for key in call.keys:
            if self._by_key.get(key) is call:
                del self._by_key[key]
        if self._by_action.get(call.action_id) is call:
            del self._by_action[call.action_id]
        if call.lead_id is not None and self._by_lead.get(call.lead_id) is call:
            del self._by_lead[call.lead_id]


_Handler = Callable[[CallTracker, Any], list[AttemptUpdate]]

# The ONE table: event type -> what it means for an attempt. Other events change nothing.
_HANDLERS: dict[type, _Handler] = {
    OriginateResponse: CallTracker._on_originate_response,
    Newchannel: CallTracker._on_newchannel,
    Newstate: CallTracker._on_newstate,
    DialBegin: CallTracker._on_dial_begin,
    DialState: CallTracker._on_dial_state,
    DialEnd: CallTracker._on_dial_end,
    AgentConnect: CallTracker._on_agent_connect,
    AgentComplete: CallTracker._on_agent_connect,
    BridgeEnter: CallTracker._on_bridge_enter,
    QueueCallerJoin: CallTracker._on_queue_join,
    QueueCallerAbandon: CallTracker._on_queue_abandon,
    HangupRequest: CallTracker._on_hangup_request,
    Hangup: CallTracker._on_hangup,
    VarSet: CallTracker._on_var_set,
    UserEvent: CallTracker._on_user_event,
    Disconnected: CallTracker._on_disconnected,
}
