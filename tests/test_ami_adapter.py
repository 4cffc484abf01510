"""The AMI adapter against a tiny fake AMI server (real TCP on 127.0.0.1, ephemeral port).

Each panoramisk 1.4 defect the adapter neutralizes has a test here; its docstring says what
panoramisk alone does, so what would fail without the fix.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable

import pytest

from dialer.ami.adapter import AmiClient, OriginateRequest, _Protocol
from dialer.ami.errors import (
    AmiActionError, AmiAuthError, AmiConnectionLost, AmiNotConnected, AmiProtocolError, AmiRequestError,
    AmiTimeout,
)
from dialer.ami.events import (
    AmiEvent, Connected, CoreShowChannel, Disconnected, FullyBooted, Hangup, LoginFailed, Newchannel,
    OriginateResponse, Shutdown,
)
from dialer.ami.transcript import read_transcript
from kernel.clock import ManualClock
from kernel.settings import AmiSettings, DialSettings
from tests.recordings import AMI_RECORDINGS as TRANSCRIPTS

pytestmark = pytest.mark.timeout(30)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SECRET = "s3cret"

Handler = Callable[["Conn", dict], Awaitable[None]]


# ---------------------------------------------------------------------------------------- fake server


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[dict] = []

    async def send(self, *messages: dict | list[tuple[str, str]]) -> None:
        for message in messages:
            pairs = message.items() if isinstance(message, dict) else message
            self.writer.write(("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8"))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    def actions(self, name: str) -> list[dict]:
        return [m for m in self.received if m.get("Action", "").lower() == name.lower()]


class FakeAmi:
    """Speaks enough AMI for the adapter: banner, Login (checks the secret), Ping; the rest per test."""

    def __init__(self) -> None:
        self.connections: list[Conn] = []
        self.clients: list[AmiClient] = []
        self.handlers: dict[str, Handler] = {"login": self._login, "ping": self._ping}
        self.drop_first = 0           # close this many connections right after accepting them
        self.answer_pings = True

    def on(self, action: str, handler: Handler) -> None:
        self.handlers[action.lower()] = handler

    async def __aenter__(self) -> "FakeAmi":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def client(self, on_event: Callable[[AmiEvent], object] | None = None,
                     sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, **overrides) -> AmiClient:
        """A client of this server, connected; closed with the server."""
        client = AmiClient(settings(self.port, **overrides), ManualClock(T0),
                           on_event=on_event, sleep=sleep)  # type: ignore[arg-type]
        self.clients.append(client)
        await client.connect(timeout=5)
        return client

    async def __aexit__(self, *exc) -> None:
        for client in self.clients:
            await client.close()
        for conn in self.connections:
            conn.close()
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer)
        self.connections.append(conn)
        if self.drop_first > 0:
            self.drop_first -= 1
            writer.close()
            return
        await conn.send_raw(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                message = {}
                for line in raw.decode("utf-8").split("\r\n"):
                    if ": " in line:
                        key, value = line.split(": ", 1)
                        message[key] = [*message[key], value] if key == "Variable" and key in message \
                            else ([value] if key == "Variable" else value)
                conn.received.append(message)
                handler = self.handlers.get(message.get("Action", "").lower())
                if handler is not None:
                    await handler(conn, message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def _login(self, conn: Conn, m: dict) -> None:
        if m.get("Secret") != SECRET:
            await conn.send({"Response": "Error", "ActionID": m["ActionID"], "Message": "Authentication failed"})
            conn.close()
            return
        await conn.send({"Response": "Success", "ActionID": m["ActionID"], "Message": "Authentication accepted"},
                        {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"})

    async def _ping(self, conn: Conn, m: dict) -> None:
        if self.answer_pings:
            await conn.send({"Response": "Success", "ActionID": m["ActionID"], "Ping": "Pong"})


def settings(port: int, **overrides) -> AmiSettings:
    values = dict(name="pbx-test", host="127.0.0.1", port=port, username="dialer", secret=SECRET,
                  action_timeout_seconds=1.0, ping_interval_seconds=60.0,
                  reconnect_min_seconds=0.01, reconnect_max_seconds=0.05)
    values.update(overrides)
    return AmiSettings(**values)


def request(attempt_id: int = 7, **overrides) -> OriginateRequest:
    req = OriginateRequest.build(DialSettings(channel="PJSIP/{number}@trunk", caller_id='"Магазин" <74950000000>'),
                                 attempt_id=attempt_id, lead_id=42, number="+79123456789", timeout_seconds=30)
    return OriginateRequest(**{**{f: getattr(req, f) for f in req.__dataclass_fields__}, **overrides})


async def next_event(client: AmiClient, kind: type, timeout: float = 3.0) -> AmiEvent:
    async def wait() -> AmiEvent:
        while True:
            event = await client.events.get()
            if isinstance(event, kind):
                return event
    return await asyncio.wait_for(wait(), timeout)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


def run(coro) -> None:
    asyncio.run(coro)


def event_bytes(*pairs: tuple[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


def newchannel(uniqueid: str, name: str = "Иван Петров") -> bytes:
    return event_bytes(("Event", "Newchannel"), ("Privilege", "call,all"), ("Channel", "PJSIP/trunk-00000001"),
                       ("ChannelState", "0"), ("CallerIDNum", "79123456789"), ("CallerIDName", name),
                       ("Uniqueid", uniqueid), ("Linkedid", uniqueid), ("ChanVariable", "LEAD_ID=42"))


# ---------------------------------------------------------------------------------------- connecting


def test_given_a_server_when_connecting_then_connected_comes_before_fully_booted_stamped_by_the_clock():
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            first = await asyncio.wait_for(client.events.get(), 2)
            second = await asyncio.wait_for(client.events.get(), 2)
            assert isinstance(first, Connected) and first.server_version == "11.0.0"
            assert isinstance(second, FullyBooted) and second.status == "Fully Booted"
            assert second.received_at == T0
            assert client.connected
            assert await client.ping() >= 0
            await client.close()
            assert not client.connected
    run(scenario())


def test_given_a_wrong_secret_when_connecting_then_amiautherror_and_no_retry():
    """panoramisk's Manager ignores a refused Login (login() just sets authenticated=False) and keeps
    the connection; the adapter raises AmiAuthError with Asterisk's message and stops."""
    async def scenario():
        async with FakeAmi() as server:
            client = AmiClient(settings(server.port, secret="wrong"), ManualClock(T0))
            server.clients.append(client)
            with pytest.raises(AmiAuthError, match="Authentication failed"):
                await client.connect(timeout=5)
            assert isinstance(await next_event(client, LoginFailed), LoginFailed)
            await asyncio.sleep(0.2)          # far longer than the reconnect delays
            assert len(server.connections) == 1
            with pytest.raises(AmiAuthError):
                await client.wait_stopped()
            with pytest.raises(AmiNotConnected):
                await client.originate(request())
    run(scenario())


def test_given_refused_connections_when_connecting_then_delays_back_off_and_reset_after_success():
    """panoramisk retries every 2 s forever (reconnect_timeout); the adapter doubles the delay from
    ami.reconnect_min_seconds up to ami.reconnect_max_seconds, and starts over once connected."""
    async def scenario():
        async with FakeAmi() as server:
            server.drop_first = 5
            delays: list[float] = []

            async def sleep(seconds: float) -> None:
                delays.append(seconds)
                await asyncio.sleep(0)

            client = await server.client(sleep=sleep, reconnect_min_seconds=0.1, reconnect_max_seconds=0.5)
            assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
            server.connections[-1].close()       # the working connection drops
            await next_event(client, Disconnected)
            await next_event(client, Connected)
            assert delays[5] == 0.1
    run(scenario())


# ---------------------------------------------------------------------------------------- originate


def test_given_an_originate_then_it_goes_async_with_our_ids_and_variables_and_the_response_event_arrives():
    """Defect 1: panoramisk's Action.multi reads self['async'] for a 'successfully queued' reply;
    an Originate without Async raises KeyError('async') inside data_received and the connection
    drops (issue #90). The adapter always sends Async: true and takes the first reply as the answer,
    so the later OriginateResponse reaches us as an event."""
    async def scenario():
        async with FakeAmi() as server:
            async def originate(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Success", "ActionID": m["ActionID"],
                                 "Message": "Originate successfully queued"})
                await conn.send({"Event": "OriginateResponse", "Privilege": "call,all", "ActionID": m["ActionID"],
                                 "Response": "Failure", "Channel": m["Channel"], "Reason": "0",
                                 "Uniqueid": m["ChannelId"], "CallerIDName": "Магазин"})
            server.on("originate", originate)
            client = await server.client()
            await client.originate(request())
            sent = server.connections[0].actions("Originate")[0]
            assert sent["Async"] == "true"
            assert sent["ActionID"] == "dialer-originate-7" and sent["ChannelId"] == "dialer-7"
            assert sent["Variable"] == ["__LEAD_ID=42", "__ATTEMPT_ID=7"]
            assert sent["Channel"] == "PJSIP/+79123456789@trunk" and sent["Timeout"] == "30000"
            assert sent["CallerID"] == '"Магазин" <74950000000>'
            event = await next_event(client, OriginateResponse)
            assert (event.action_id, event.success, event.reason, event.uniqueid) == \
                ("dialer-originate-7", False, 0, "dialer-7")
            assert event.caller_id_name == "Магазин"
            assert client.connected and len(server.connections) == 1
    run(scenario())


def test_given_a_reply_that_trips_panoramisk_then_only_that_action_fails_and_the_connection_stays():
    """Defect 1, the general case: panoramisk's Action.multi raises KeyError('async') for any
    reply whose Message ends in 'successfully queued' to an action without Async, inside
    data_received, which drops the connection. The adapter fails that one action instead."""
    async def scenario():
        async with FakeAmi() as server:
            async def odd_pause_reply(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Success", "ActionID": m["ActionID"],
                                 "Message": "Pause successfully queued"})
            server.on("queuepause", odd_pause_reply)
            client = await server.client()
            with pytest.raises(AmiProtocolError, match="QueuePause"):
                await client.queue_pause("PJSIP/op1", True)
            assert client.connected and await client.ping() >= 0
            assert len(server.connections) == 1
    run(scenario())


def test_given_permission_denied_when_originating_then_amiactionerror_with_the_message():
    async def scenario():
        async with FakeAmi() as server:
            async def deny(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Error", "ActionID": m["ActionID"], "Message": "Permission denied"})
            server.on("originate", deny)
            client = await server.client()
            with pytest.raises(AmiActionError, match="Permission denied") as info:
                await client.originate(request())
            assert info.value.reason == "Permission denied"
            assert client.connected
    run(scenario())


def test_given_a_value_with_a_line_break_then_the_originate_is_refused_before_sending():
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            with pytest.raises(AmiRequestError, match="line break"):
                await client.originate(request(caller_id="x\r\nAction: Hangup"))
            with pytest.raises(AmiRequestError, match="variable name"):
                await client.originate(request(variables={"BAD NAME": "1"}))
            assert server.connections[0].actions("Originate") == []
    run(scenario())


def test_given_an_originate_in_flight_when_the_connection_drops_then_it_fails_and_is_never_resent():
    """Defect 2: panoramisk's AMIProtocol.close() puts actions without a reply into
    awaiting_actions and Manager.send_awaiting_actions re-sends them on FullyBooted after the
    reconnect: a second call to the same customer. Here it fails with AmiConnectionLost and the
    second connection never sees an Originate."""
    async def scenario():
        async with FakeAmi() as server:
            async def swallow_and_drop(conn: Conn, m: dict) -> None:
                conn.close()
            server.on("originate", swallow_and_drop)
            client = await server.client(action_timeout_seconds=10)
            with pytest.raises(AmiConnectionLost):
                await asyncio.wait_for(client.originate(request()), 3)
            await next_event(client, Disconnected)
            await next_event(client, FullyBooted)          # logged in again
            await asyncio.sleep(0.2)
            assert len(server.connections) == 2
            assert len(server.connections[0].actions("Originate")) == 1
            assert server.connections[1].actions("Originate") == []
    run(scenario())


def test_given_two_originates_with_one_actionid_then_the_second_is_refused_and_the_first_completes():
    """Defect 3: panoramisk keys pending actions by ActionID; a second action with the same id
    replaces the first in the table and the first future never resolves."""
    async def scenario():
        async with FakeAmi() as server:
            release = asyncio.Event()

            async def slow(conn: Conn, m: dict) -> None:
                await release.wait()
                await conn.send({"Response": "Success", "ActionID": m["ActionID"],
                                 "Message": "Originate successfully queued"})
            server.on("originate", slow)
            client = await server.client()
            first = asyncio.create_task(client.originate(request()))
            await wait_until(lambda: len(server.connections[0].actions("Originate")) == 1)
            with pytest.raises(AmiRequestError, match="already waiting"):
                await client.originate(request())
            release.set()
            await asyncio.wait_for(first, 3)
    run(scenario())


# ---------------------------------------------------------------------------------------- hanging futures


def test_given_a_list_reply_without_its_complete_event_then_amitimeout_and_the_connection_still_works():
    """Defect 3: panoramisk waits for the '...Complete' event of a list forever; the adapter gives
    up after ami.action_timeout_seconds and the late rows do not leak out as events."""
    async def scenario():
        async with FakeAmi() as server:
            async def partial(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Success", "ActionID": m["ActionID"], "EventList": "start",
                                 "Message": "Channels will follow"},
                                {"Event": "CoreShowChannel", "ActionID": m["ActionID"], "Channel": "PJSIP/x-1",
                                 "Uniqueid": "u1", "Linkedid": "u1"})
            server.on("coreshowchannels", partial)
            client = await server.client(action_timeout_seconds=0.3)
            with pytest.raises(AmiTimeout, match="CoreShowChannels"):
                await client.core_show_channels()
            assert await client.ping() >= 0
            while not client.events.empty():
                assert not isinstance(client.events.get_nowait(), CoreShowChannel)
    run(scenario())


def test_given_a_pending_action_when_the_server_closes_then_it_fails_at_once():
    """Defect 3: panoramisk leaves a pending action's future unresolved when the connection goes."""
    async def scenario():
        async with FakeAmi() as server:
            async def drop(conn: Conn, m: dict) -> None:
                conn.close()
            server.on("queuestatus", drop)
            client = await server.client(action_timeout_seconds=20)
            with pytest.raises(AmiConnectionLost):
                await asyncio.wait_for(client.queue_status("sales"), 3)
    run(scenario())


def test_given_a_silent_peer_then_the_watchdog_drops_it_and_reconnects():
    """Defect 6: panoramisk sends a Ping every ping_interval but never looks at the reply, so a dead
    peer (socket open, nobody answering) is never noticed."""
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client(ping_interval_seconds=0.1, action_timeout_seconds=0.2)
            server.answer_pings = False
            gone = await next_event(client, Disconnected, timeout=5)
            assert "Ping" in gone.reason
            server.answer_pings = True
            await next_event(client, Connected, timeout=5)
            assert len(server.connections) == 2
    run(scenario())


# ---------------------------------------------------------------------------------------- bytes on the wire


def test_given_a_cyrillic_name_split_inside_a_character_across_tcp_reads_then_it_arrives_whole():
    """Defect 4: panoramisk decodes each chunk with errors='ignore': the two halves of 'И' are
    dropped and 'Иван' arrives as 'ван'."""
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            data = newchannel("u-1")
            cut = data.index("Иван".encode()) + 1          # inside the two bytes of 'И'
            conn = server.connections[0]
            await conn.send_raw(data[:cut])
            await asyncio.sleep(0.05)
            await conn.send_raw(data[cut:])
            event = await next_event(client, Newchannel)
            assert event.channel.caller_id_name == "Иван Петров"
    run(scenario())


def test_given_every_split_point_of_a_cyrillic_event_then_the_protocol_decodes_it_whole():
    """Defect 4, byte by byte without a network: the protocol fed two chunks at every split point."""
    class FakeTransport:
        def close(self) -> None: ...
        def abort(self) -> None: ...

    async def scenario():
        client = AmiClient(settings(1), ManualClock(T0))
        data = b"Asterisk Call Manager/11.0.0\r\n" + newchannel("u-2", "Ёжик Щукин")
        for cut in range(1, len(data)):
            protocol = _Protocol(client)
            protocol.connection_made(FakeTransport())  # type: ignore[arg-type]
            protocol.data_received(data[:cut])
            protocol.data_received(data[cut:])
            event = client.events.get_nowait()
            assert isinstance(event, Newchannel) and event.channel.caller_id_name == "Ёжик Щукин", cut
            assert protocol.version == "11.0.0"
    run(scenario())


def test_given_garbage_on_the_wire_then_it_is_dropped_and_the_good_events_still_arrive():
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            conn = server.connections[0]
            await conn.send_raw(b"\x00\xff\xfe\x80 binary junk\r\n\r\n")
            await conn.send_raw(b"no colon here at all\r\n\r\n")
            await conn.send_raw(event_bytes(("Event", "Hangup"), ("Cause", "17")))           # no Uniqueid
            await conn.send_raw(event_bytes(("Event", "Hangup"), ("Channel", "PJSIP/x"), ("Uniqueid", "u9"),
                                            ("Linkedid", "u9"), ("Cause", "seventeen"), ("TechCause", "4x6")))
            await conn.send_raw(event_bytes(("Event", "SomethingNew"), ("Foo", "bar")))
            await conn.send_raw(newchannel("u-3"))
            hangup = await next_event(client, Hangup)
            assert (hangup.channel.uniqueid, hangup.cause, hangup.tech_cause) == ("u9", 0, None)
            assert (await next_event(client, Newchannel)).channel.uniqueid == "u-3"
            assert client.connected and len(server.connections) == 1
            assert await client.ping() >= 0
    run(scenario())


def test_given_an_endless_message_then_the_connection_is_dropped_and_made_again():
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            await server.connections[0].send_raw(b"Event: X\r\nJunk: " + b"a" * 1_100_000)
            gone = await next_event(client, Disconnected)
            assert "size limit" in gone.reason
            await next_event(client, Connected)
    run(scenario())


# ---------------------------------------------------------------------------------------- handlers


def test_given_a_sync_handler_that_raises_then_the_connection_stays_and_later_events_arrive(caplog):
    """Defect 5: panoramisk calls sync handlers inside data_received; an exception there closes
    the transport. The adapter's dispatcher logs it and goes on."""
    async def scenario():
        async with FakeAmi() as server:
            seen: list[str] = []

            def handler(event: AmiEvent) -> None:
                if isinstance(event, Newchannel):
                    seen.append(event.channel.uniqueid)
                    if event.channel.uniqueid == "bad":
                        raise RuntimeError("handler bug")

            client = await server.client(on_event=handler)
            await server.connections[0].send_raw(newchannel("bad") + newchannel("good"))
            await wait_until(lambda: seen == ["bad", "good"])
            assert client.connected and len(server.connections) == 1
    with caplog.at_level(logging.ERROR, logger="dialer.ami.adapter"):
        run(scenario())
    assert "event handler failed on Newchannel" in caplog.text


def test_given_an_async_handler_then_events_are_handled_one_at_a_time_in_order(caplog):
    """Defect 5: panoramisk schedules async handlers with ensure_future and forgets them: they
    overlap and finish out of order, and an exception shows at best as 'Task exception was never
    retrieved' when the task is garbage-collected."""
    async def scenario():
        async with FakeAmi() as server:
            log: list[str] = []

            async def handler(event: AmiEvent) -> None:
                if isinstance(event, Newchannel):
                    uid = event.channel.uniqueid
                    log.append(f"start {uid}")
                    await asyncio.sleep(0.05 if uid == "slow" else 0)
                    log.append(f"end {uid}")
                    if uid == "boom":
                        raise ValueError("async handler bug")

            await server.client(on_event=handler)
            await server.connections[0].send_raw(newchannel("slow") + newchannel("boom") + newchannel("fast"))
            await wait_until(lambda: len(log) == 6)
            assert log == ["start slow", "end slow", "start boom", "end boom", "start fast", "end fast"]
    with caplog.at_level(logging.ERROR, logger="dialer.ami.adapter"):
        run(scenario())
    assert "async handler bug" in caplog.text


# ---------------------------------------------------------------------------------------- reconciliation


def _transcript_reply(name: str, action_id_in_file: str):
    """A handler answering with the S->C messages a real Asterisk sent for that ActionID."""
    replies = [e for e in read_transcript(TRANSCRIPTS / name).server_messages()
               if e.get("ActionID") == action_id_in_file]
    assert replies, f"{name} has no reply to {action_id_in_file}"

    async def handler(conn: Conn, m: dict) -> None:
        for entry in replies:
            await conn.send([(k, m["ActionID"] if k == "ActionID" else v) for k, v in entry.fields])
    return handler


def test_given_live_calls_then_core_show_channels_and_queue_status_are_typed():
    async def scenario():
        async with FakeAmi() as server:
            server.on("coreshowchannels", _transcript_reply("ping-coreshowchannels-queuestatus.txt", "csc-live"))
            server.on("queuestatus", _transcript_reply("ping-coreshowchannels-queuestatus.txt", "qs-live"))
            client = await server.client()
            channels = await client.core_show_channels()
            assert [c.channel.name for c in channels] == [
                "Local/op1@operators-00000027;1", "Local/op1@operators-00000027;2",
                "Local/5551007@customers-00000026;1", "Local/5551007@customers-00000026;2"]
            customer = channels[2]
            assert (customer.channel.uniqueid, customer.channel.linkedid, customer.channel.state) == \
                ("1795472371.76", "1795472371.76", 6)
            assert customer.channel.variables == {"LEAD_ID": "42"} and customer.application == "Queue"
            assert customer.duration_seconds is not None and customer.received_at == T0
            queue = await client.queue_status("sales")
            assert queue.params is not None and queue.params.strategy == "ringall"
            assert [(m.member_name, m.interface, m.status, m.paused, m.in_call) for m in queue.members] == [
                ("Operator Two", "Local/op2@operators/n", 1, False, False),
                ("Operator One", "Local/op1@operators/n", 2, False, True)]
            assert queue.callers == ()
    run(scenario())


def test_given_queue_pause_and_hangup_then_the_actions_carry_their_fields_and_errors_raise():
    async def scenario():
        async with FakeAmi() as server:
            async def pause(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Success", "ActionID": m["ActionID"],
                                 "Message": "Interface paused successfully"})

            async def hangup(conn: Conn, m: dict) -> None:
                await conn.send({"Response": "Error", "ActionID": m["ActionID"], "Message": "No such channel"})
            server.on("queuepause", pause)
            server.on("hangup", hangup)
            client = await server.client()
            await client.queue_pause("PJSIP/op1", True, reason="обед", queue="sales")
            sent = server.connections[0].actions("QueuePause")[0]
            assert (sent["Interface"], sent["Paused"], sent["Reason"], sent["Queue"]) == \
                ("PJSIP/op1", "true", "обед", "sales")
            with pytest.raises(AmiActionError, match="No such channel"):
                await client.hangup("dialer-7")
            assert server.connections[0].actions("Hangup")[0]["Channel"] == "dialer-7"
    run(scenario())


def test_given_asterisk_shuts_down_then_shutdown_and_disconnected_events_and_a_reconnect():
    async def scenario():
        async with FakeAmi() as server:
            client = await server.client()
            shutdown = [e for e in read_transcript(TRANSCRIPTS / "asterisk-stopped-core-stop-now.txt").events()
                        if e.name == "Shutdown"][0]
            await server.connections[0].send_raw(shutdown.to_wire())
            event = await next_event(client, Shutdown)
            assert (event.shutdown, event.restart) == ("Cleanly", False)
            assert "shut down" in (await next_event(client, Disconnected)).reason
            await next_event(client, Connected)
    run(scenario())


def test_given_no_server_when_connecting_with_a_timeout_then_aminotconnected_and_it_keeps_trying():
    async def scenario():
        async with FakeAmi() as server:
            port = server.port
            server.server.close()
            await server.server.wait_closed()
        client = AmiClient(settings(port), ManualClock(T0))
        with pytest.raises(AmiNotConnected, match="still trying"):
            await client.connect(timeout=0.2)
        assert client.failure is None and not client.connected
        await client.close()
    run(scenario())
