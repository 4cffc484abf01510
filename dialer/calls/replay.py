"""Runner for recorded AMI sessions: a transcript through parse_event and the CallTracker.

It plays the daemon's part from the client side of the recording: each `Action: Originate` the
client sent becomes a tracked attempt (ids 1, 2, ... in order; ActionID, ChannelId and LEAD_ID
from its headers), its Response tells originated / refused, a dialer `Action: Hangup` of a call
is a cancel, a CoreShowChannels reply is reconciled, and an EOF note is a Disconnected.
Event times are `start + t` of the recording: replays are deterministic.
`skip_events` drops the first N server events, as if the dialer attached to Asterisk mid-call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialer.ami.errors import AmiProtocolError
from dialer.ami.events import AmiEvent, Connected, CoreShowChannel, Disconnected, parse_event
from dialer.ami.transcript import Direction, Entry, Transcript
from dialer.calls.tracker import AttemptUpdate, CallTracker


@dataclass
class ReplayResult:
    events: list[AmiEvent] = field(default_factory=list)           # typed events, in order
    updates: list[AttemptUpdate] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)          # Originate ActionID -> attempt id
    protocol_errors: list[str] = field(default_factory=list)

    def final(self, attempt_id: int) -> AttemptUpdate | None:
        return next((u for u in self.updates if u.attempt_id == attempt_id and u.result), None)

    def states(self, attempt_id: int) -> list[str]:
        return [u.state.value for u in self.updates if u.attempt_id == attempt_id]


def replay(transcript: Transcript, start: datetime, *, tracker: CallTracker | None = None,
           skip_events: int = 0, server: str = "replay") -> ReplayResult:
    tracker = tracker or CallTracker()
    out = ReplayResult()
    originates: dict[str, int] = {}      # pending Originate ActionID -> attempt id
    listings: dict[str, list[CoreShowChannel]] = {}
    channels: dict[str, int] = {}        # channel name -> attempt id (from the updates)
    logins: set[str] = set()
    connected = False

    def apply(updates: list[AttemptUpdate]) -> None:
        for update in updates:
            out.updates.append(update)
            name = update.fields.get("channel")
            if name:
                channels[name] = update.attempt_id

    for entry in transcript.entries:
        at = start + timedelta(seconds=entry.t)
        if entry.direction is Direction.NOTE:
            if connected and "EOF" in (entry.note or ""):
                connected = False
                event = Disconnected(received_at=at, server=server, reason=entry.note or "")
                out.events.append(event)
                apply(tracker.feed(event))
            continue
        if entry.direction is Direction.CLIENT:
            _client_action(entry, at, tracker, out, originates, listings, channels, logins)
            continue
        if entry.kind == "response":
            action_id = entry.get("ActionID", "") or ""
            if action_id in logins and entry.name == "Success":
                connected = True
                event = Connected(received_at=at, server=server)
                out.events.append(event)
                apply(tracker.feed(event))
            elif action_id in originates:
                attempt_id = originates.pop(action_id)
                if entry.name == "Success":
                    apply(tracker.originated(attempt_id, at))
                else:
                    apply(tracker.originate_failed(attempt_id, at, entry.get("Message", "") or ""))
            continue
        if entry.kind != "event":
            continue
        action_id = entry.get("ActionID", "") or ""
        if action_id in listings:
            if entry.name == "CoreShowChannelsComplete":
                apply(tracker.reconcile(listings.pop(action_id), at))
            else:
                row = _parse(entry, at, out)
                if isinstance(row, CoreShowChannel):
                    listings[action_id].append(row)
            continue
        if skip_events > 0:
            skip_events -= 1
            continue
        event = _parse(entry, at, out)
        if event is not None:
            out.events.append(event)
            apply(tracker.feed(event))
    return out


def _client_action(entry: Entry, at: datetime, tracker: CallTracker, out: ReplayResult,
                   originates: dict[str, int], listings: dict[str, list[CoreShowChannel]],
                   channels: dict[str, int], logins: set[str]) -> None:
    action = (entry.get("Action") or "").lower()
    action_id = entry.get("ActionID", "") or ""
    if action == "login":
        logins.add(action_id)
    elif action == "originate":
        attempt_id = len(out.attempts) + 1
        out.attempts[action_id] = attempt_id
        originates[action_id] = attempt_id
        lead = None
        for variable in entry.get_all("Variable"):
            name, _, value = variable.partition("=")
            if name.lstrip("_") == "LEAD_ID":
                lead = value
        tracker.track(attempt_id, action_id=action_id, channel_id=entry.get("ChannelId"), lead_id=lead, at=at)
    elif action == "hangup":
        attempt_id = channels.get(entry.get("Channel") or "")
        if attempt_id is None and len(tracker.active) == 1:   # attached mid-call: the one call in flight
            attempt_id = tracker.active[0]
        if attempt_id is not None:
            tracker.cancel_requested(attempt_id)
    elif action == "coreshowchannels":
        listings[action_id] = []


def _parse(entry: Entry, at: datetime, out: ReplayResult) -> AmiEvent | None:
    try:
        return parse_event(entry.as_mapping(), at)
    except AmiProtocolError as exc:
        out.protocol_errors.append(f"line {entry.line_no}: {exc}")
        return None
