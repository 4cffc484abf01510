"""The simulated PBX (`dialer pbx-sim`): real AMI over TCP on 127.0.0.1, compared with recordings of a
real Asterisk 22 (tests/fixtures/ami/).

Event sequences are compared per channel: for every leg of the call (the Local ;1 and ;2 halves,
the trunk, the operator) the ordered list of its significant events with their scenario-invariant
headers (state, cause, dial status, originate reason) must equal the recording's. The order
between legs varies from run to run on a real Asterisk too (OriginateResponse before or after the
last Hangup), so it is not compared.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from dialer.ami.transcript import read_transcript
from kernel.errors import UsageError
from dialer.pbx_sim import (
    CustomerBook, CustomerMix, OperatorSpec, Outcome, PbxConfig, PbxUser, SimulatedPbx,
)
from dialer.pbx_sim.calls import parse_callerid, parse_variables
from dialer.pbx_sim.protocol import Action, ActionReader, MessageTooLarge, encode
from dialer.pbx_sim.runner import customers_from_data
from tests.recordings import AMI_RECORDINGS as TRANSCRIPTS

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
NUMBER = "+79001234567"
SPEED = 100.0


@pytest.fixture
def anyio_backend():
    return "asyncio"


# ---------------------------------------------------------------------------------------------- helpers

class Client:
    """A raw AMI client: bytes on a socket, messages parsed with the PBX's own reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, banner: str) -> None:
        self.reader, self.writer, self.banner = reader, writer, banner
        self._parser = ActionReader(limit=10_000_000)
        self._pending: list[Action] = []
        self.seen: list[Action] = []
        self._ids = 0

    @classmethod
    async def connect(cls, port: int, login: bool = True, username: str = "dialer", secret: str = "dialer-secret",
                      events: str = "on") -> "Client":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = (await asyncio.wait_for(reader.readline(), 5)).decode()
        client = cls(reader, writer, banner)
        if login:
            reply = await client.action("Login", Username=username, Secret=secret, Events=events)
            assert reply.get("Response") == "Success", reply
        return client

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def send(self, name: str, *extra: tuple[str, str], **headers: Any) -> str:
        self._ids += 1
        action_id = headers.pop("ActionID", f"{name.lower()}-{self._ids}")
        pairs = [("Action", name), ("ActionID", action_id)] + [(k, str(v)) for k, v in headers.items()]
        self.writer.write(encode(pairs + list(extra)))
        await self.writer.drain()
        return action_id

    async def next(self, timeout: float = 5.0) -> Action | None:
        """The next message, or None at EOF."""
        while not self._pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self._pending.extend(self._parser.feed(data))
        message = self._pending.pop(0)
        self.seen.append(message)
        return message

    async def until(self, done: Callable[[Action], bool], timeout: float = 10.0) -> Action:
        """The first message, already read or still to come, for which `done` is true."""
        for message in self.seen:
            if done(message):
                return message

        async def read() -> Action:
            while True:
                message = await self.next(timeout)
                assert message is not None, "EOF before the expected message"
                if done(message):
                    return message
        return await asyncio.wait_for(read(), timeout)

    async def action(self, name: str, *extra: tuple[str, str], **headers: Any) -> Action:
        action_id = await self.send(name, *extra, **headers)
        return await self.until(lambda m: m.has("Response") and m.action_id == action_id)

    async def event_list(self, name: str, **headers: Any) -> tuple[Action, list[Action]]:
        """An action answered by an event list: the response and the events up to '...Complete'."""
        start = len(self.seen)
        reply = await self.action(name, **headers)
        await self.until(lambda m: m.get("EventList") == "Complete" and m.action_id == reply.action_id)
        items = [m for m in self.seen[start:] if m.action_id == reply.action_id and m.has("Event")]
        return reply, items

    async def eof(self, timeout: float = 5.0) -> bool:
        async def read() -> bool:
            while await self.next(timeout) is not None:
                pass
            return True
        return await asyncio.wait_for(read(), timeout)

    def events(self, name: str | None = None) -> list[Action]:
        return [m for m in self.seen if m.has("Event") and (name is None or m.get("Event") == name)]

    async def close(self) -> None:
        self.writer.close()


def originate_headers(number: str = NUMBER, channel_id: str = "att-1", lead: str = "42", attempt: str = "7",
                      **extra: Any) -> tuple[tuple[tuple[str, str], ...], dict[str, Any]]:
    variables = (("Variable", f"__LEAD_ID={lead}"), ("Variable", f"__ATTEMPT_ID={attempt}"))
    headers = dict(Channel=f"Local/{number}@dialer-trunk", Context="dialer-outbound", Exten="s", Priority=1,
                   Timeout=15000, CallerID='"Магазин" <74950000000>', Async="true", ChannelId=channel_id)
    headers.update(extra)
    return variables, headers


async def originate(client: Client, *more_vars: tuple[str, str], **kw: Any) -> Action:
    variables, headers = originate_headers(**kw)
    return await client.action("Originate", *variables, *more_vars, **headers)


async def one_call(pbx: SimulatedPbx, *variables: tuple[str, str], **kw: Any) -> Client:
    """Start the PBX, log in, originate one call (ChannelId att-1 unless given) and return when it is over.

    The legs that hang up after the originated channel do so in the same step, so the Ping after
    its Hangup is answered only after all of them were sent."""
    async with running(pbx) as port:
        client = await Client.connect(port)
        reply = await originate(client, *variables, **kw)
        assert (reply.get("Response"), reply.get("Message")) == ("Success", "Originate successfully queued")
        await client.until(call_ended(kw.get("channel_id", "att-1")))
        await client.action("Ping")
    return client


async def call_in_talk(port: int) -> Client:
    """Log in and originate att-1; return once the customer talks to an operator."""
    client = await Client.connect(port)
    await originate(client)
    await client.until(lambda m: m.get("Event") == "AgentConnect")
    return client


def call_ended(uniqueid: str) -> Callable[[Action], bool]:
    """True at the Hangup of the originated channel (Local ;1)."""
    return lambda m: m.get("Event") == "Hangup" and m.get("Uniqueid") == uniqueid


def customers(*rules: dict) -> CustomerBook:
    return CustomerBook.from_rules(list(rules))


def make_pbx(*rules: dict, operators: list[OperatorSpec] | None = None, **config: Any) -> SimulatedPbx:
    config.setdefault("speed", SPEED)
    config.setdefault("seed", 7)
    config.setdefault("auth_failure_delay", 0.05)
    config.setdefault("users", (PbxUser("dialer", "dialer-secret"),
                                PbxUser.from_conf("monitor", "monitor-secret", read="system,call,agent,user",
                                                  write="")))
    ops = operators if operators is not None else [OperatorSpec("PJSIP/op1", "Анна", talk=5, wrapup=1),
                                                   OperatorSpec("PJSIP/op2", "Иван", talk=5, wrapup=1)]
    return SimulatedPbx(PbxConfig(**config), customers=customers(*rules), operators=ops)


class running:
    """async with running(pbx) as port: started on an ephemeral port, stopped after."""

    def __init__(self, pbx: SimulatedPbx) -> None:
        self.pbx = pbx

    async def __aenter__(self) -> int:
        return await self.pbx.start("127.0.0.1", 0)

    async def __aexit__(self, *exc: object) -> None:
        await self.pbx.stop()


# --- per-leg comparison ---------------------------------------------------------------------------------

SIGNIFICANT = {
    "Newchannel": ("ChannelState",), "Newstate": ("ChannelState",), "DialBegin": (), "DialState": ("DialStatus",),
    "DialEnd": ("DialStatus",), "HangupRequest": ("Cause", "TechCause"), "SoftHangupRequest": ("Cause",),
    "Hangup": ("Cause", "TechCause"), "OriginateResponse": ("Response", "Reason"), "QueueCallerJoin": (),
    "QueueCallerLeave": (), "QueueCallerAbandon": (), "AgentCalled": (), "AgentConnect": (),
    "AgentComplete": ("Reason",), "AgentRingNoAnswer": (),
}


def _first(message: Any, key: str) -> str:
    value = message.get(key)
    return "-" if value in (None, "") else value


def leg_of(channel: str) -> str | None:
    if channel.startswith("Local/") and "@operators" in channel or re.match(r"PJSIP/op\d+-", channel):
        return "operator"
    if channel.startswith("Local/"):
        return "local1" if channel.endswith(";1") else "local2"
    if channel.startswith("PJSIP/trunk-"):
        return "trunk"
    return None


def per_channel(messages: Iterable[Any], names: Iterable[str] | None = None) -> dict[str, list[tuple[str, ...]]]:
    """Channel name -> its significant events in order. A two-channel event (Dial*, Agent*) belongs to its
    DestChannel; OriginateResponse to 'originate'."""
    wanted = set(names or SIGNIFICANT)
    out: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for m in messages:
        event = m.get("Event")
        if event not in wanted:
            continue
        key = "originate" if event == "OriginateResponse" else (m.get("DestChannel") or m.get("Channel"))
        out[key].append((event, *(_first(m, k) for k in SIGNIFICANT[event])))
    return out


def per_leg(messages: Iterable[Any], names: Iterable[str] | None = None) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {}
    for channel, events in per_channel(messages, names).items():
        leg = "originate" if channel == "originate" else leg_of(channel)
        if leg is not None and leg != "operator":      # operators: several in ringall recordings, per channel
            assert leg not in out, f"two channels for leg {leg}: compare per channel instead"
            out[leg] = events
    return out


def recorded(name: str) -> list[Any]:
    """What the real Asterisk sent in one recording, as parsed by the AMI adapter's transcript reader."""
    return [e for e in read_transcript(TRANSCRIPTS / name).server_messages() if e.kind == "event"]


# ------------------------------------------------------------------------------- wire format, pure rules

def test_given_action_split_at_every_byte_when_fed_then_the_same_action_comes_out():
    wire = encode([("Action", "Originate"), ("CallerID", '"Магазин" <74950000000>'), ("Variable", "A=1"),
                   ("Variable", "B=2")])
    for cut in range(1, len(wire)):
        reader = ActionReader()
        actions = reader.feed(wire[:cut]) + reader.feed(wire[cut:])
        assert len(actions) == 1
        assert actions[0].get("callerid") == '"Магазин" <74950000000>'
        assert actions[0].get_all("Variable") == ["A=1", "B=2"]


def test_given_two_actions_with_bare_lf_in_one_chunk_then_both_are_read():
    actions = ActionReader().feed(b"Action: Ping\nActionID: 1\n\nAction: Ping\r\nActionID: 2\r\n\r\n")
    assert [a.action_id for a in actions] == ["1", "2"]


def test_given_endless_message_then_it_is_refused():
    reader = ActionReader(limit=1000)
    with pytest.raises(MessageTooLarge):
        reader.feed(b"Action: Ping\r\n" + b"X-Junk: " + b"a" * 2000)


def test_given_value_with_line_break_when_encoded_then_it_cannot_start_a_new_header():
    assert encode([("Message", "one\r\nEvent: Fake")]) == b"Message: one  Event: Fake\r\n\r\n"


def test_given_callerid_and_variables_then_parsed_like_asterisk():
    assert parse_callerid('"Магазин" <74950000000>') == ("74950000000", "Магазин")
    assert parse_callerid("74950000000") == ("74950000000", "<unknown>")
    assert parse_callerid("") == ("<unknown>", "<unknown>")
    assert parse_variables(["__LEAD_ID=42,__ATTEMPT_ID=7", "X=a=b", "junk"]) == (
        ("__LEAD_ID", "42"), ("__ATTEMPT_ID", "7"), ("X", "a=b"))


def test_given_rules_then_the_first_matching_rule_wins_and_others_use_the_mix():
    import random
    book = CustomerBook.from_rules([{"pattern": r"\+7912.*", "outcome": "busy"},
                                    {"pattern": r".*", "outcome": "answer", "after": 3, "talk": 60}],
                                   CustomerMix(((Outcome.NO_ANSWER, 1.0),)))
    rng = random.Random(1)
    assert book.plan_for("+79120000000", rng).outcome is Outcome.BUSY
    plan = book.plan_for("+74950000000", rng)
    assert (plan.outcome, plan.after, plan.talk) == (Outcome.ANSWER, 3.0, 60.0)
    assert CustomerBook(mix=CustomerMix(((Outcome.NO_ANSWER, 1.0),))).plan_for("1", rng).outcome is Outcome.NO_ANSWER


def test_given_seed_then_the_mix_is_reproducible_and_follows_its_weights():
    import random

    def draws(seed: int) -> list[Outcome]:
        rng, book = random.Random(seed), CustomerBook()
        return [book.plan_for("+79001234567", rng).outcome for _ in range(20000)]

    first, again, other = draws(5), draws(5), draws(6)
    assert first == again and first != other
    assert 0.53 < first.count(Outcome.ANSWER) / len(first) < 0.57
    assert 0.18 < first.count(Outcome.NO_ANSWER) / len(first) < 0.22
    assert first.count(Outcome.MACHINE) > 0


@pytest.mark.parametrize("bad", [
    {"pattern": "(", "outcome": "busy"},
    {"pattern": ".*", "outcome": "maybe"},
    {"pattern": ".*", "outcome": "answer", "after": -1},
    {"pattern": ".*", "outcome": "answer", "colour": "red"},
    {"outcome": "answer"},
])
def test_given_bad_customer_rule_then_a_clear_error(bad):
    with pytest.raises(UsageError):
        customers_from_data({"rules": [bad]})


def test_given_customer_file_data_then_rules_and_mix_are_built():
    book = customers_from_data({"rules": [{"pattern": "1.*", "outcome": "reject", "after": 0}],
                                "mix": {"answer": 1}, "patience": 10})
    assert book.rules[0].outcome is Outcome.REJECT
    assert book.mix.weights == ((Outcome.ANSWER, 1.0),) and book.mix.patience == 10


def test_given_bad_operator_then_a_clear_error():
    with pytest.raises(UsageError):
        OperatorSpec("op1", "Анна")
    with pytest.raises(UsageError):
        OperatorSpec("PJSIP/op1", "Анна", talk=-5)
    assert OperatorSpec.parse("PJSIP/op7:Анна Петрова") == OperatorSpec("PJSIP/op7", "Анна Петрова")


# ------------------------------------------------------------------------------- login and permissions

async def test_given_good_secret_when_logging_in_then_banner_success_and_fully_booted():
    async with running(make_pbx()) as port:
        client = await Client.connect(port)
        assert client.banner == "Asterisk Call Manager/11.0.0\r\n"
        booted = await client.until(lambda m: m.get("Event") == "FullyBooted")
        assert booted.get("Privilege") == "system,all" and booted.get("Status") == "Fully Booted"
        await client.close()


@pytest.mark.parametrize("username, secret", [("dialer", "wrong"), ("nobody", "x")])
async def test_given_bad_credentials_when_logging_in_then_authentication_failed_and_closed(username, secret):
    async with running(make_pbx(auth_failure_delay=0.2)) as port:
        client = await Client.connect(port, login=False)
        started = asyncio.get_running_loop().time()
        reply = await client.action("Login", Username=username, Secret=secret)
        assert (reply.get("Response"), reply.get("Message")) == ("Error", "Authentication failed")
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert await client.eof()


async def test_given_no_login_when_originating_then_permission_denied():
    async with running(make_pbx()) as port:
        client = await Client.connect(port, login=False)
        reply = await originate(client)
        assert (reply.get("Response"), reply.get("Message")) == ("Error", "Permission denied")
        goodbye = await client.action("Logoff")
        assert (goodbye.get("Response"), goodbye.get("Message")) == ("Goodbye", "Thanks for all the fish.")
        assert await client.eof()


async def test_given_read_only_user_then_actions_outside_write_are_denied_and_ping_works():
    pbx = make_pbx()
    async with running(pbx) as port:
        client = await Client.connect(port, username="monitor", secret="monitor-secret")
        for name, headers in [("Originate", originate_headers()[1]), ("Command", {"Command": "core show channels"}),
                              ("Hangup", {"Channel": "Local/1@x-00000000;1"}), ("CoreShowChannels", {}),
                              ("QueuePause", {"Interface": "PJSIP/op1", "Paused": "true"})]:
            reply = await client.action(name, **headers)
            assert (reply.get("Response"), reply.get("Message")) == ("Error", "Permission denied"), name
        pong = await client.action("Ping")
        assert pong.get("Response") == "Success" and pong.get("Ping") == "Pong"
        assert re.fullmatch(r"\d{10}\.\d{6}", pong.get("Timestamp"))
        status, items = await client.event_list("QueueStatus", Queue="operators")
        assert status.get("Response") == "Success" and items[0].get("Event") == "QueueParams"
        assert pbx.stats().calls_placed == 0


async def test_given_unknown_or_missing_action_then_errors_like_asterisk():
    async with running(make_pbx()) as port:
        client = await Client.connect(port)
        reply = await client.action("Frobnicate")
        assert reply.get("Message") == "Invalid/unknown command"
        client.send_raw(b"ActionID: x1\r\nFoo: bar\r\n\r\n")
        missing = await client.until(lambda m: m.action_id == "x1")
        assert (missing.get("Response"), missing.get("Message")) == ("Error", "Missing action in request")


async def test_given_user_reading_only_call_events_then_no_queue_events_reach_it():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 1},
                   users=(PbxUser.from_conf("dialer", "dialer-secret", read="call", write="originate"),))
    client = await one_call(pbx)
    names = {m.get("Event") for m in client.events()}
    assert "Hangup" in names and "OriginateResponse" in names
    assert not names & {"QueueCallerJoin", "AgentConnect", "VarSet", "Newexten", "FullyBooted"}


# ------------------------------------------------------------------------------- outcomes vs recordings

@pytest.mark.parametrize("outcome, recording", [
    ("busy", "pjsip-busy-486-via-local.txt"),
    ("congestion", "pjsip-unavailable-503-via-local.txt"),
    ("invalid", "pjsip-notfound-404-via-local.txt"),
    ("reject", "pjsip-decline-603-via-local.txt"),
    ("unavailable", "pjsip-tempunavail-480-via-local.txt"),
    ("no_answer", "pjsip-noanswer-timeout-via-local.txt"),
])
async def test_given_customer_outcome_when_originated_then_each_leg_has_the_recorded_events(outcome, recording):
    pbx = make_pbx({"pattern": r"\+7900.*", "outcome": outcome, "after": 0})
    client = await one_call(pbx)
    expected = per_leg(recorded(recording))
    got = per_leg(client.seen)
    assert set(got) == {"local1", "local2", "trunk", "originate"}
    for leg in got:
        assert got[leg] == expected[leg], leg
    response = client.events("OriginateResponse")[0]
    assert response.get("Channel") == f"Local/{NUMBER}@dialer-trunk"
    assert response.get("Uniqueid") == "att-1"
    assert pbx.call_log[-1].result.value == outcome


async def test_given_answering_customer_then_queue_and_operator_events_match_the_recordings():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 2, "talk": 3})
    client = await one_call(pbx)
    sim = client.seen
    connect = client.events("AgentConnect")[0]
    operator = connect.get("DestChannel")
    assert re.fullmatch(r"PJSIP/op1-[0-9a-f]{8}", operator)
    assert (connect.get("Queue"), connect.get("Interface"), connect.get("MemberName")) == (
        "operators", "PJSIP/op1", "Анна")

    # the originated Local ;1 and ;2, as in the Local-channel queue recording
    local = per_leg(recorded("originate-answered-queue.txt"), names=[n for n in SIGNIFICANT if n != "DialBegin"])
    mine = per_leg(sim, names=[n for n in SIGNIFICANT if n != "DialBegin"])
    assert mine["local1"] == local["local1"]
    assert mine["local2"] == local["local2"]
    assert mine["originate"] == local["originate"] == [("OriginateResponse", "Success", "4")]

    # the customer's trunk leg and the winning operator leg, as in the chan_pjsip queue recording
    pjsip = recorded("pjsip-answered-queue.txt")
    pjsip_legs = per_channel(pjsip)
    dial_names = ["Newchannel", "DialBegin", "Newstate", "DialState", "DialEnd", "HangupRequest", "Hangup"]
    trunk = next(ch for ch in pjsip_legs if ch.startswith("PJSIP/trunk"))
    mine_trunk = next(ch for ch in per_channel(sim) if ch.startswith("PJSIP/trunk"))
    assert per_channel(sim, dial_names)[mine_trunk] == per_channel(pjsip, dial_names)[trunk]
    winner = next(e.get("DestChannel") for e in pjsip if e.get("Event") == "AgentConnect")
    assert per_channel(sim)[operator] == pjsip_legs[winner]

    # the queue's story and the winner's member states
    def story(events):
        names = [e.get("Event") for e in events if e.get("Event") in
                 ("QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect", "AgentComplete")]
        return [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert story(sim) == story(pjsip) == story(recorded("originate-answered-queue.txt"))
    statuses = [e.get("Status") for e in sim if e.get("Event") == "QueueMemberStatus"
                and e.get("Interface") == "PJSIP/op1"]
    recorded_statuses = [e.get("Status") for e in pjsip if e.get("Event") == "QueueMemberStatus"
                         and e.get("Interface") == "PJSIP/op1"]
    assert statuses == recorded_statuses == ["6", "2", "1"]
    assert client.events("AgentComplete")[0].get("Reason") == "caller"
    assert pbx.call_log[-1].operator == "PJSIP/op1" and pbx.call_log[-1].result.value == "connected"


async def test_given_customer_who_hangs_up_at_once_then_legs_match_the_immediate_hangup_recording():
    client = await one_call(make_pbx({"pattern": ".*", "outcome": "hangup", "after": 0}))
    expected = per_leg(recorded("originate-answered-immediate-hangup.txt"))
    got = per_leg(client.seen)
    for leg in ("local1", "local2", "originate"):
        assert got[leg] == expected[leg], leg
    assert not client.events("QueueCallerJoin")


async def test_given_answering_machine_and_amd_on_then_user_event_dialer_amd_and_hangup():
    pbx = make_pbx({"pattern": ".*", "outcome": "machine", "after": 1})
    client = await one_call(pbx, ("Variable", "__DIALER_AMD=1"))
    amd = client.events("UserEvent")
    assert [(e.get("UserEvent"), e.get("AMDStatus"), e.get("LeadId"), e.get("AttemptId")) for e in amd] == [
        ("DialerAMD", "MACHINE", "42", "7")]
    assert amd[0].get("Privilege") == "user,all" and amd[0].get("Uniqueid") == "att-1"
    assert ("AMDSTATUS", "MACHINE") in [(e.get("Variable"), e.get("Value")) for e in client.events("VarSet")]
    assert client.events("OriginateResponse")[0].get("Reason") == "4"
    assert per_leg(client.seen)["local1"][-1] == ("Hangup", "16", "-")
    assert not client.events("QueueCallerJoin")
    assert pbx.call_log[-1].result.value == "machine"


async def test_given_answering_machine_and_amd_off_then_an_operator_gets_it():
    client = await one_call(make_pbx({"pattern": ".*", "outcome": "machine", "after": 1, "talk": 2}))
    assert not client.events("UserEvent")
    assert client.events("AgentConnect")


LONG_CALL = {"pattern": r"\+79001.*", "outcome": "answer", "after": 0, "talk": 600}


async def second_call_while_the_only_operator_talks(pbx: SimulatedPbx, channel_id: str) -> Client:
    """op1 takes a long call from +79001..., then +79002... is dialed; returns when that second call ended."""
    async with running(pbx) as port:
        client = await Client.connect(port)
        await originate(client, number="+79001000000", channel_id="busy-op")
        await client.until(lambda m: m.get("Event") == "AgentConnect")
        await originate(client, number="+79002000000", channel_id=channel_id)
        await client.until(call_ended(channel_id))
    return client


async def test_given_no_free_operator_when_customer_answers_then_abandoned_after_the_queue_wait():
    pbx = make_pbx(LONG_CALL, {"pattern": r"\+79002.*", "outcome": "answer", "after": 0},
                   operators=[OperatorSpec("PJSIP/op1", "Анна", talk=600)], queue_wait=5)
    client = await second_call_while_the_only_operator_talks(pbx, "waits")
    mine = [m for m in client.seen if m.get("Uniqueid") == "waits" and m.has("Event")]
    names = [m.get("Event") for m in mine if m.get("Event") in (
        "QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "UserEvent", "AgentCalled", "Hangup")]
    assert names == ["QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "UserEvent", "Hangup"]
    user_event = next(m for m in mine if m.get("Event") == "UserEvent")
    assert (user_event.get("UserEvent"), user_event.get("QueueStatus")) == ("DialerQueue", "TIMEOUT")
    abandon = next(m for m in mine if m.get("Event") == "QueueCallerAbandon")
    assert (abandon.get("HoldTime"), abandon.get("OriginalPosition")) == ("5", "1")
    assert [r.result.value for r in pbx.call_log] == ["abandoned", "dropped"]
    assert pbx.stats().queue_abandoned == 1


async def test_given_impatient_customer_when_waiting_then_abandon_without_queue_status_event():
    pbx = make_pbx(LONG_CALL, {"pattern": r"\+79002.*", "outcome": "answer", "after": 0, "patience": 2},
                   operators=[OperatorSpec("PJSIP/op1", "Анна", talk=600)], queue_wait=20)
    client = await second_call_while_the_only_operator_talks(pbx, "impatient")
    mine = [m for m in client.seen if m.get("Linkedid") == "impatient"]
    assert [m.get("Event") for m in mine if m.get("Event", "").startswith("QueueCaller")] == [
        "QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave"]
    assert next(m for m in mine if m.get("Event") == "QueueCallerAbandon").get("HoldTime") == "2"
    assert not [m for m in mine if m.get("Event") == "UserEvent"]
    first_hangup = next(m for m in mine if m.get("Event") in ("HangupRequest", "SoftHangupRequest", "Hangup"))
    assert first_hangup.get("Channel").startswith("PJSIP/trunk-"), "the customer's side hangs up first"


async def test_given_all_operators_paused_when_customer_answers_then_joinempty():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0})
    async with running(pbx) as port:
        client = await Client.connect(port)
        for interface in ("PJSIP/op1", "PJSIP/op2"):
            reply = await client.action("QueuePause", Interface=interface, Paused="true", Reason="break")
            assert reply.get("Message") == "Interface paused successfully"
        await originate(client)
        await client.until(call_ended("att-1"))
    assert not client.events("QueueCallerJoin")
    assert [(e.get("UserEvent"), e.get("QueueStatus")) for e in client.events("UserEvent")] == [
        ("DialerQueue", "JOINEMPTY")]
    assert pbx.call_log[-1].result.value == "abandoned"


async def test_given_operator_ringing_past_member_timeout_then_agent_ring_no_answer():
    client = await one_call(make_pbx({"pattern": ".*", "outcome": "answer", "after": 0},
                                      operators=[OperatorSpec("PJSIP/op1", "Анна", ring=100)], queue_wait=20))
    rna = client.events("AgentRingNoAnswer")
    assert rna and rna[0].get("Interface") == "PJSIP/op1" and rna[0].get("RingTime") == "15000"
    assert [e.get("DialStatus") for e in client.events("DialEnd") if e.get("DestChannel", "").startswith("PJSIP/op1")
            ][:1] == ["NOANSWER"]
    assert client.events("QueueCallerAbandon") and not client.events("AgentConnect")


async def test_given_panoramisk_client_then_login_originate_and_events_work():
    from panoramisk import Manager
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 1, "talk": 2})
    async with running(pbx) as port:
        events: list[Any] = []
        manager = Manager(host="127.0.0.1", port=port, username="dialer", secret="dialer-secret", ping_delay=0,
                          loop=asyncio.get_running_loop())
        manager.register_event("*", lambda _, message: events.append(message))
        await manager.connect()
        try:
            replies = await manager.send_action({
                "Action": "Originate", "Channel": f"Local/{NUMBER}@dialer-trunk", "Context": "dialer-outbound",
                "Exten": "s", "Priority": 1, "Async": "true", "ChannelId": "pano-1",
                "CallerID": '"Магазин" <74950000000>', "Variable": ["__LEAD_ID=42", "__ATTEMPT_ID=7"]})
            assert [r.Response for r in replies] == ["Success", "Success"]
            assert (replies[1].Event, replies[1].Reason, replies[1].Uniqueid) == ("OriginateResponse", "4", "pano-1")
            assert replies[1].CallerIDName == "Магазин"
            for _ in range(200):
                if any(e.Event == "AgentComplete" for e in events):
                    break
                await asyncio.sleep(0.02)
            names = [e.Event for e in events]
            assert names.index("QueueCallerJoin") < names.index("AgentConnect") < names.index("AgentComplete")
        finally:
            manager.close()


# ------------------------------------------------------------------------------- operators

async def test_given_paused_operator_then_queue_member_pause_and_no_calls_for_them():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 1})
    async with running(pbx) as port:
        client = await Client.connect(port)
        reply = await client.action("QueuePause", Interface="PJSIP/op1", Paused="true", Reason="обед")
        assert (reply.get("Response"), reply.get("Message")) == ("Success", "Interface paused successfully")
        pause = await client.until(lambda m: m.get("Event") == "QueueMemberPause")
        assert (pause.get("Interface"), pause.get("Paused"), pause.get("PausedReason")) == ("PJSIP/op1", "1", "обед")
        _, items = await client.event_list("QueueStatus", Queue="operators")
        paused = {m.get("Location"): m.get("Paused") for m in items if m.get("Event") == "QueueMember"}
        assert paused == {"PJSIP/op1": "1", "PJSIP/op2": "0"}
        for i in range(3):
            await originate(client, channel_id=f"c{i}")
            await client.until(call_ended(f"c{i}"))
        called = {e.get("Interface") for e in client.events("AgentCalled")}
        assert called == {"PJSIP/op2"}
        bad = await client.action("QueuePause", Interface="PJSIP/op9", Paused="true")
        assert (bad.get("Response"), bad.get("Message")) == ("Error", "Interface not found")
        await client.action("QueuePause", Interface="PJSIP/op1", Paused="false")
        unpause = await client.until(lambda m: m.get("Event") == "QueueMemberPause" and m.get("Paused") == "0")
        assert unpause.get("Interface") == "PJSIP/op1"


async def test_given_promised_operator_free_then_dialed_directly_else_queue():
    pbx = make_pbx({"pattern": r"\+79001.*", "outcome": "answer", "after": 0, "talk": 1},
                   {"pattern": r"\+79002.*", "outcome": "answer", "after": 0, "talk": 600}, speed=50)
    async with running(pbx) as port:
        client = await Client.connect(port)
        promised = ("Variable", "__DIALER_OPERATOR=PJSIP/op2")
        await originate(client, promised, number="+79001000000", channel_id="direct")
        await client.until(call_ended("direct"))
        direct = [m for m in client.seen if m.get("Linkedid") == "direct"]
        assert not [m for m in direct if m.get("Event") in ("AgentCalled", "QueueCallerJoin")]
        answered = [m for m in direct if m.get("Event") == "DialEnd" and m.get("DialStatus") == "ANSWER"
                    and m.get("DestChannel", "").startswith("PJSIP/op2-")]
        assert answered and answered[0].get("DestChanVariable") == "LEAD_ID=42"
        assert pbx.call_log[-1].operator == "PJSIP/op2"

        await originate(client, promised, number="+79002000000", channel_id="long")      # op2 now on a call
        await client.until(lambda m: m.get("Event") == "BridgeEnter" and m.get("Channel", "").startswith("PJSIP/op2-")
                           and m.get("Linkedid") == "long")
        await originate(client, promised, number="+79001000000", channel_id="queued")
        await client.until(call_ended("queued"))
        called = [m.get("Interface") for m in client.events("AgentCalled") if m.get("Uniqueid") == "queued"]
        assert called == ["PJSIP/op1"]


async def test_given_queue_status_then_params_members_entries_and_complete():
    pbx = make_pbx(LONG_CALL, {"pattern": r"\+79002.*", "outcome": "answer", "after": 0},
                   operators=[OperatorSpec("PJSIP/op1", "Анна", talk=600)], queue_wait=600, speed=20)
    async with running(pbx) as port:
        client = await Client.connect(port)
        reply, items = await client.event_list("QueueStatus", Queue="operators")
        assert reply.get("Message") == "Queue status will follow"
        assert [m.get("Event") for m in items] == ["QueueParams", "QueueMember", "QueueStatusComplete"]
        assert items[-1].get("ListItems") == "2" and items[1].get("Name") == "Анна"
        assert items[1].get("Status") == "1" and items[0].get("Strategy") == "fewestcalls"
        await originate(client, number="+79001000000", channel_id="talking")
        await client.until(lambda m: m.get("Event") == "AgentConnect")
        await originate(client, number="+79002000000", channel_id="waiting")
        await client.until(lambda m: m.get("Event") == "QueueCallerJoin" and m.get("Uniqueid") == "waiting")
        _, items = await client.event_list("QueueStatus")
        member = next(m for m in items if m.get("Event") == "QueueMember")
        entry = next(m for m in items if m.get("Event") == "QueueEntry")
        assert (member.get("Status"), member.get("InCall")) == ("2", "1")
        assert (entry.get("Position"), entry.get("Uniqueid"), entry.get("Queue")) == ("1", "waiting", "operators")
        assert next(m for m in items if m.get("Event") == "QueueParams").get("Calls") == "1"
        _, summary = await client.event_list("QueueSummary")
        assert (summary[0].get("Callers"), summary[0].get("Available")) == ("1", "0")


# ------------------------------------------------------------------------------- channels and hangup

async def test_given_live_call_then_core_show_channels_lists_its_four_channels():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 600},
                   operators=[OperatorSpec("PJSIP/op1", "Анна", talk=600)], speed=20)
    async with running(pbx) as port:
        client = await Client.connect(port)
        _, idle = await client.event_list("CoreShowChannels")
        assert [m.get("Event") for m in idle] == ["CoreShowChannelsComplete"] and idle[0].get("ListItems") == "0"
        await originate(client)
        await client.until(lambda m: m.get("Event") == "AgentConnect")
        reply, items = await client.event_list("CoreShowChannels")
        assert reply.get("Message") == "Channels will follow"
        channels = {m.get("Channel"): m for m in items if m.get("Event") == "CoreShowChannel"}
        assert {leg_of(name) for name in channels} == {"local1", "local2", "trunk", "operator"}
        assert items[-1].get("ListItems") == "4"
        l1 = next(m for name, m in channels.items() if leg_of(name) == "local1")
        assert (l1.get("Uniqueid"), l1.get("Application"), l1.get("ChannelStateDesc")) == ("att-1", "Queue", "Up")
        assert {m.get("Linkedid") for m in channels.values()} == {"att-1"}
        assert re.fullmatch(r"\d\d:\d\d:\d\d", l1.get("Duration")) and l1.get("BridgeId")
        hung = await client.action("Hangup", Channel=l1.get("Channel"), Cause=16)
        assert hung.get("Message") == "Channel Hungup"
        await client.until(call_ended("att-1"))
        complete = client.events("AgentComplete")[0]
        assert complete.get("Reason") == "caller"
        _, after = await client.event_list("CoreShowChannels")
        assert after[-1].get("ListItems") == "0"


async def test_given_ringing_call_when_dialer_hangs_up_then_legs_match_the_cancel_recording():
    pbx = make_pbx({"pattern": ".*", "outcome": "no_answer"}, speed=20)
    async with running(pbx) as port:
        client = await Client.connect(port)
        await originate(client, channel_id="lead42-attempt1", OtherChannelId="lead42-attempt1-2")
        ringing = await client.until(lambda m: m.get("Event") == "Newstate" and m.get("Uniqueid") == "lead42-attempt1")
        missing = await client.action("Hangup", Channel="Local/nothing@here-00000000;1")
        assert (missing.get("Response"), missing.get("Message")) == ("Error", "No such channel")
        reply = await client.action("Hangup", Channel=ringing.get("Channel"))
        assert (reply.get("Response"), reply.get("Message")) == ("Success", "Channel Hungup")
        await client.until(lambda m: m.get("Event") == "Hangup" and m.get("Channel", "").startswith("PJSIP/trunk"))
    expected = per_leg(recorded("originate-cancelled-by-dialer.txt"))
    got = per_leg(client.seen)
    for leg in ("local1", "local2", "originate"):
        assert got[leg] == expected[leg], leg
    response = client.events("OriginateResponse")[0]
    assert response.get("Uniqueid") == "lead42-attempt1"
    assert [m.get("Uniqueid") for m in client.events("Newchannel")][:2] == ["lead42-attempt1", "lead42-attempt1-2"]
    assert pbx.call_log[-1].result.value == "cancelled"


async def test_given_channelvars_then_chanvariable_headers_and_linkedid_of_the_originated_channel():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 1})
    async with running(pbx) as port:
        client = await Client.connect(port)
        await client.action("Originate", ("Variable", "__LEAD_ID=42"), ("Variable", "__ATTEMPT_ID=7"),
                            Channel=f"Local/{NUMBER}@dialer-trunk", Context="dialer-outbound", Exten="s",
                            Priority=1, Timeout=15000, Async="true")
        response = await client.until(lambda m: m.get("Event") == "OriginateResponse")
        uniqueid = response.get("Uniqueid")
        assert re.fullmatch(r"\d{10}\.\d+", uniqueid)
        assert response.get(f"ChanVariable({response.get('Channel')})") == "LEAD_ID=42"
        assert response.get_all(f"ChanVariable({response.get('Channel')})") == ["LEAD_ID=42", "ATTEMPT_ID=7"]
        await client.until(call_ended(uniqueid))
    hangups = client.events("Hangup")
    assert {e.get("Linkedid") for e in hangups} == {uniqueid}
    assert all(e.get_all("ChanVariable") == ["LEAD_ID=42", "ATTEMPT_ID=7"] for e in hangups)
    operator_leg = next(e for e in hangups if e.get("Channel").startswith("PJSIP/op"))
    assert operator_leg.get("Uniqueid") != uniqueid

    client = await one_call(make_pbx({"pattern": ".*", "outcome": "busy"}, channelvars=()))
    assert not [m for m in client.events() if m.has("ChanVariable")]


async def test_given_action_sent_in_tiny_chunks_with_cyrillic_then_it_survives():
    pbx = make_pbx({"pattern": ".*", "outcome": "busy"})
    async with running(pbx) as port:
        client = await Client.connect(port)
        variables, headers = originate_headers()
        wire = encode([("Action", "Originate"), ("ActionID", "split-1"), *headers.items(), *variables])
        for i in range(0, len(wire), 3):
            client.send_raw(wire[i:i + 3])
            await client.writer.drain()
            await asyncio.sleep(0)
        response = await client.until(lambda m: m.get("Event") == "OriginateResponse")
        assert response.get("CallerIDName") == "Магазин" and response.get("ActionID") == "split-1"


async def test_given_no_async_then_the_response_waits_for_the_answer_and_events_follow_it():
    pbx = make_pbx({"pattern": r"\+79001.*", "outcome": "answer", "after": 1, "talk": 1},
                   {"pattern": r"\+79002.*", "outcome": "busy"})
    async with running(pbx) as port:
        client = await Client.connect(port)
        await client.until(lambda m: m.get("Event") == "FullyBooted")
        variables, headers = originate_headers(number="+79001000000", channel_id="sync-ok")
        headers.pop("Async")
        reply = await client.action("Originate", *variables, **headers)
        assert (reply.get("Response"), reply.get("Message")) == ("Success", "Originate successfully queued")
        assert not [m for m in client.seen if m.has("Event") and m.get("Event") != "FullyBooted"]
        variables, headers = originate_headers(number="+79002000000", channel_id="sync-busy")
        headers.pop("Async")
        reply = await client.action("Originate", *variables, **headers)
        assert (reply.get("Response"), reply.get("Message")) == ("Error", "Originate failed")
        await client.until(call_ended("sync-ok"))
    assert not client.events("OriginateResponse")


# ------------------------------------------------------------------------------- failures of the PBX

async def test_given_dropped_connections_then_clients_get_eof_and_calls_go_on():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 300}, speed=20)
    async with running(pbx) as port:
        client = await call_in_talk(port)
        pbx.drop_connections()
        assert await client.eof()
        again = await Client.connect(port)
        _, items = await again.event_list("CoreShowChannels")
        assert items[-1].get("ListItems") == "4"
        assert pbx.stats().calls_in_progress == 1


async def test_given_restart_then_shutdown_event_eof_and_a_fresh_pbx():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 0, "talk": 300}, speed=20)
    async with running(pbx) as port:
        client = await call_in_talk(port)
        await pbx.restart()
        shutdown = await client.until(lambda m: m.get("Event") == "Shutdown")
        assert (shutdown.get("Shutdown"), shutdown.get("Restart"), shutdown.get("Privilege")) == (
            "Cleanly", "True", "system,all")
        assert await client.eof()
        before = [e for e in client.seen if e.get("Event") in ("SoftHangupRequest", "Hangup")]
        assert {e.get("Cause") for e in before if e.get("Event") == "SoftHangupRequest"} >= {"4"}
        again = await Client.connect(port)
        _, items = await again.event_list("CoreShowChannels")
        assert items[-1].get("ListItems") == "0"
        await again.action("Originate", Channel="Local/+79005550000@dialer-trunk", Context="dialer-outbound",
                           Exten="s", Async="true")
        first = await again.until(lambda m: m.get("Event") == "Newchannel")
        assert first.get("Uniqueid").endswith(".0")
        assert pbx.call_log[0].result.value == "dropped"


async def test_given_restart_with_downtime_then_connections_are_refused_meanwhile():
    pbx = make_pbx(speed=1)
    async with running(pbx) as port:
        restarting = asyncio.create_task(pbx.restart(down_for=0.5))
        await asyncio.sleep(0.2)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        await restarting
        client = await Client.connect(port)
        assert (await client.action("Ping")).get("Ping") == "Pong"


async def test_given_kill_then_plain_eof_without_events_and_no_channels_after():
    pbx = make_pbx({"pattern": ".*", "outcome": "no_answer"}, speed=20)
    async with running(pbx) as port:
        client = await Client.connect(port)
        await originate(client)
        await client.until(lambda m: m.get("Event") == "DialState")
        seen = len(client.seen)
        pbx.kill()
        assert await client.eof()
        assert not [m for m in client.seen[seen:] if m.get("Event") in ("Shutdown", "Hangup")]
        again = await Client.connect(port)
        _, items = await again.event_list("CoreShowChannels")
        assert items[-1].get("ListItems") == "0"


async def test_given_frozen_pbx_then_ping_is_unanswered_until_thawed():
    pbx = make_pbx()
    async with running(pbx) as port:
        client = await Client.connect(port)
        pbx.freeze()
        action_id = await client.send("Ping")
        with pytest.raises(asyncio.TimeoutError):
            await client.until(lambda m: m.action_id == action_id, timeout=0.3)
        pbx.thaw()
        pong = await client.until(lambda m: m.action_id == action_id)
        assert pong.get("Ping") == "Pong"


# ------------------------------------------------------------------------------- time and load

async def test_given_speed_100_then_a_60_second_talk_completes_in_order_within_seconds():
    pbx = make_pbx({"pattern": ".*", "outcome": "answer", "after": 1, "talk": 60},
                   operators=[OperatorSpec("PJSIP/op1", "Анна", talk=600)], speed=100)
    async with running(pbx) as port:
        client = await Client.connect(port)
        await originate(client)
        complete = await client.until(lambda m: m.get("Event") == "AgentComplete", timeout=10)
        await client.until(call_ended("att-1"), timeout=10)
    assert complete.get("TalkTime") == "60" and complete.get("Reason") == "caller"
    order = [m.get("Event") for m in client.events() if m.get("Event") in (
        "OriginateResponse", "QueueCallerJoin", "AgentConnect", "AgentComplete")]
    assert order == ["OriginateResponse", "QueueCallerJoin", "AgentConnect", "AgentComplete"]


async def test_given_many_calls_and_two_clients_then_both_get_every_event_and_no_operator_takes_two():
    pbx = make_pbx({"pattern": r".*[0-4]$", "outcome": "answer", "after": 1, "talk": 3},
                   {"pattern": r".*[5-6]$", "outcome": "busy"},
                   {"pattern": r".*[7-9]$", "outcome": "no_answer"},
                   operators=[OperatorSpec(f"PJSIP/op{i}", f"Оператор {i}", talk=4, wrapup=1) for i in range(1, 5)],
                   queue_wait=60, speed=50)
    count = 40
    async with running(pbx) as port:
        dialer = await Client.connect(port)
        watcher = await Client.connect(port, username="monitor", secret="monitor-secret")
        for i in range(count):
            await dialer.send("Originate", ("Variable", f"__LEAD_ID={i}"), Channel=f"Local/+7900000{i:04d}@dialer-trunk",
                              Context="dialer-outbound", Exten="s", Timeout=10000, Async="true", ChannelId=f"m{i}")
        for i in range(count):
            await dialer.until(call_ended(f"m{i}"), timeout=30)
        await asyncio.sleep(0.2)
        await dialer.action("Ping")
        await watcher.action("Ping")
    keys = lambda client: [(m.get("Event"), m.get("Channel"), m.get("DestChannel"), m.get("Uniqueid"))
                           for m in client.events() if m.get("Privilege") in ("call,all", "agent,all", "user,all")]
    assert keys(dialer) == keys(watcher)
    assert all(m.headers[0][0] in ("Event", "Response") for m in dialer.seen + watcher.seen)
    stats = pbx.stats()
    assert stats.calls_placed == count and stats.calls_in_progress == 0
    assert sum(stats.results.values()) == count
    assert stats.results["busy"] == 8 and stats.results["no_answer"] == 12
    assert stats.results.get("connected", 0) + stats.results.get("abandoned", 0) == 20
    assert all(op.peak_concurrent <= 1 for op in stats.operators)
    assert stats.peak_calls_in_progress > 4
    assert pbx.registry.live() == [] and pbx.queue.waiting == []            # nothing leaked
    assert all(m.engaged == 0 and m.status == 1 for m in pbx.queue.members.values())


# ------------------------------------------------------------------------------- the CLI

def test_given_cli_when_started_then_it_serves_ami_until_ctrl_c(tmp_path):
    rules = tmp_path / "customers.yaml"
    rules.write_text("rules:\n  - {pattern: '.*', outcome: busy}\n", encoding="utf-8")
    env = {**os.environ, "DIALER_AMI_SECRET": "s3cret", "DIALER_CONFIG": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "pbx-sim", "--port", "0", "--operator", "PJSIP/op1:Анна",
                             "--speed", "50", "--customers", str(rules)], cwd=tmp_path, env={**env,
                            "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"AMI on 127\.0\.0\.1:(\d+)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line

        async def talk(port: int) -> list[str]:
            client = await Client.connect(port, secret="s3cret")
            await originate(client)
            await client.until(call_ended("att-1"))
            _, items = await client.event_list("QueueStatus")
            return [m.get("Name") for m in items if m.get("Event") == "QueueMember"]

        assert asyncio.run(talk(int(match.group(1)))) == ["Анна"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "1 calls placed" in out and "busy" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_given_cli_without_secret_then_usage_error():
    env = {**os.environ, "DIALER_AMI_SECRET": "", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "cli", "pbx-sim", "--port", "0"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "secret" in result.stderr
