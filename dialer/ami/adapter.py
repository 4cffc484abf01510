"""The AMI adapter: one connection to one Asterisk, typed requests out, typed events in.

Built on panoramisk 1.4: its AMIProtocol sends `Action`s and its `Action.add_message` decides
when a reply (or a list of them) is complete and resolves the action's future; the framing of
the byte stream is the adapter's own. panoramisk's defects, and what this adapter does instead:

1. `Originate` without `Async` raises KeyError('async') inside the protocol and drops the
   connection (upstream issue #90)  -> every Originate carries `Async: true` and is sent as a
   single-reply action; an exception while routing any reply fails that action, not the connection.
2. After a reconnect the Manager re-sends actions that got no reply (a second call to the same
   customer)  -> nothing is ever re-sent: on disconnect every pending action fails with
   AmiConnectionLost; the daemon reconciles (CoreShowChannels, the ChannelId) instead.
3. Futures can hang forever (partial list replies, duplicate ActionIDs, actions forgotten on
   reconnect)  -> every await has a timeout (ami.action_timeout_seconds), a timed-out action is
   forgotten, a duplicate ActionID in flight is refused.
4. Each TCP chunk is decoded on its own with errors ignored (a Cyrillic name split across two
   reads loses characters)  -> one incremental UTF-8 decoder per connection.
5. A sync event handler that raises drops the connection; async handlers are fire-and-forget
   -> events go into `AmiClient.events` (an asyncio.Queue); the optional handler is awaited in
   order, one event at a time, by a dispatcher task that logs and survives its errors.
6. Ping replies are never checked, reconnect is a fixed 2 s retry, a failed login is silent
   -> a watchdog Pings every ami.ping_interval_seconds and drops a silent peer; reconnects back
   off from ami.reconnect_min_seconds doubling to ami.reconnect_max_seconds; a refused login
   raises AmiAuthError (and stops the client: wrong credentials do not fix themselves).
panoramisk's Manager is not used: its reconnect, login, ping and dispatch are the parts above.
No panoramisk object and no raw AMI dict leaves this module. Events the dialer has no use for
(Newexten, Cdr, DeviceStateChange... most of the stream) are dropped by name before their
headers are read.
"""

from __future__ import annotations

import asyncio
import codecs
import inspect
import itertools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from dialer.ami.errors import (
    AmiActionError, AmiAuthError, AmiConnectionLost, AmiError, AmiNotConnected, AmiProtocolError,
    AmiRequestError, AmiTimeout,
)
from dialer.ami.events import (
    EVENT_NAMES, AmiEvent, Connected, CoreShowChannel, Disconnected, LoginFailed, QueueEntry, QueueMember, QueueParams,
    Shutdown, parse_event,
)
from kernel.clock import Clock
from kernel.settings import AmiSettings, DialSettings

log = logging.getLogger(__name__)

EOL = "\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"
MAX_MESSAGE_CHARS = 1_000_000          # a peer sending more without a blank line is not Asterisk
LOGIN_TIMEOUT_FLOOR = 5.0              # Asterisk answers a wrong secret after ~1 s
_VARIABLE_NAME = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]*$")

EventHandler = Callable[[AmiEvent], "Awaitable[None] | None"]


# ---------------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """One call to place. `action_id` and `channel_id` are ours: every later event is tied to them."""

    attempt_id: int
    lead_id: int
    channel: str                    # e.g. PJSIP/+79123456789@trunk or Local/89123456789@dialer-trunk
    context: str
    exten: str
    priority: int
    caller_id: str
    timeout_seconds: float
    action_id: str
    channel_id: str
    operator: str | None = None     # set as __DIALER_OPERATOR (a callback promised by this operator)
    variables: Mapping[str, str] = field(default_factory=dict)   # extra channel variables

    @classmethod
    def build(cls, dial: DialSettings, *, attempt_id: int, lead_id: int, number: str,
              timeout_seconds: float, operator: str | None = None,
              variables: Mapping[str, str] | None = None, id_prefix: str = "dialer") -> "OriginateRequest":
        """The request for an attempt from the dial settings; `number` is already formatted for
        the trunk (leads.phone.format_for_dialing(e164, dial.number_format))."""
        return cls(attempt_id=attempt_id, lead_id=lead_id, channel=dial.channel.format(number=number),
                   context=dial.context, exten=dial.exten, priority=dial.priority, caller_id=dial.caller_id,
                   timeout_seconds=timeout_seconds, action_id=f"{id_prefix}-originate-{attempt_id}",
                   channel_id=f"{id_prefix}-{attempt_id}", operator=operator, variables=dict(variables or {}))

    def to_action(self) -> dict[str, Any]:
        """The AMI action, checked: a value with a line break would inject headers."""
        if not self.channel or not self.context or not self.exten or not self.action_id or not self.channel_id:
            raise AmiRequestError("Originate needs a channel, context, exten, ActionID and ChannelId")
        if not 0 < self.timeout_seconds <= 24 * 3600:
            raise AmiRequestError(f"Originate timeout must be 0 < seconds <= 86400, got {self.timeout_seconds!r}")
        variables = {"__LEAD_ID": str(self.lead_id), "__ATTEMPT_ID": str(self.attempt_id)}
        if self.operator:
            variables["__DIALER_OPERATOR"] = self.operator
        variables.update(self.variables)
        for name in variables:
            if not _VARIABLE_NAME.match(name):
                raise AmiRequestError(f"channel variable name {name!r} is not allowed "
                                      "(letters, digits, _; up to two leading _ to inherit it)")
        action = {
            "Action": "Originate", "ActionID": self.action_id, "Channel": self.channel,
            "Context": self.context, "Exten": self.exten, "Priority": str(self.priority),
            "Timeout": str(int(self.timeout_seconds * 1000)), "CallerID": self.caller_id,
            "ChannelId": self.channel_id, "Async": "true",   # defect 1: never without Async
            "Account": str(self.attempt_id),   # the CDR's accountcode: the PBX's record names the attempt
            "Variable": [f"{k}={v}" for k, v in variables.items()],
        }
        _check_values(action)
        return action


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The QueueStatus reply of one queue, typed."""

    queue: str
    params: QueueParams | None
    members: tuple[QueueMember, ...]
    callers: tuple[QueueEntry, ...]


def _read_headers(chunk: str) -> dict[str, str | list[str]] | None:
    """One AMI message -> header: value; a repeated header (ChanVariable) -> list. None if it is
    neither an event nor a response (garbage)."""
    fields: dict[str, str | list[str]] = {}
    for line in chunk.split(EOL):
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")   # 'Key:' with an empty value
            if not sep or " " in key:
                continue
        old = fields.get(key)
        if old is None:
            fields[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            fields[key] = [old, value]
    return fields if ("Event" in fields or "Response" in fields) else None


def _check_values(action: Mapping[str, Any]) -> None:
    for key, value in action.items():
        for item in value if isinstance(value, list) else [value]:
            if "\r" in str(item) or "\n" in str(item):
                raise AmiRequestError(f"{action.get('Action')}: {key} contains a line break")


# ---------------------------------------------------------------------------------------- protocol


class _Protocol(AMIProtocol):
    """panoramisk's AMIProtocol with its framing, routing and closing fixed (defects 1-4)."""

    def __init__(self, client: "AmiClient") -> None:
        super().__init__()
        self.client = client
        self.encoding = "utf-8"        # panoramisk's default is ascii: a Cyrillic CallerID would fail
        self.transport = None
        self.closed = False
        self.responses = {}
        self._close_reason = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")   # defect 4
        self._buffer = ""
        self.login_action_id: str | None = None
        self.logged_in = False
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        received_at = self.client.clock.now()
        text = self._buffer + self._decoder.decode(data)
        if self.version is None:
            line, sep, rest = text.partition(EOL)
            if not sep:
                self._buffer = text
                self._check_size()
                return
            if line.startswith(BANNER_PREFIX):
                self.version = line[len(BANNER_PREFIX):].strip()
                text = rest
            else:
                self.version = ""
        chunks = text.split(EOL + EOL)
        self._buffer = chunks.pop()
        for chunk in chunks:
            self._handle_chunk(chunk, received_at)
        self._check_size()

    def _check_size(self) -> None:
        if len(self._buffer) > MAX_MESSAGE_CHARS:
            log.error("ami server=%s sent %d characters without a message end; dropping the connection",
                      self.client.server, len(self._buffer))
            self._buffer = ""
            self.abort("no message end within the size limit")

    def _handle_chunk(self, chunk: str, received_at: Any) -> None:
        if chunk.startswith("Event: ") and "ActionID: " not in chunk:
            end = chunk.find(EOL)
            if chunk[7:end if end >= 0 else None].strip() not in EVENT_NAMES:
                return                  # most of the stream (Newexten, Cdr, ...): of no use to the dialer
        fields = _read_headers(chunk)
        if fields is None:
            log.warning("ami server=%s message without Event or Response dropped: %.80r",
                        self.client.server, chunk)
            return
        action_id = fields.get("ActionID")
        action = self.responses.get(action_id) if isinstance(action_id, str) else None
        if action is not None:
            self._route_reply(action, Message(fields), received_at)
        elif isinstance(action_id, str) and action_id.startswith(self.client._id_prefix):
            log.debug("ami server=%s late reply to a forgotten action dropped: %s", self.client.server, action_id)
        elif "Event" in fields:
            self.client._receive(fields, received_at)
            if fields["Event"] == "Shutdown":
                self.close("Asterisk shut down")   # reconnect rather than wait for the EOF

    def _route_reply(self, action: Action, message: Message, received_at: Any) -> None:
        try:
            done = action.add_message(message)
        except Exception as exc:  # noqa: BLE001 - defect 1: the reply fails, the connection stays
            done = True
            if not action.future.done():
                action.future.set_exception(AmiProtocolError(
                    f"cannot read the reply to {action['action']}: {exc!r}"))
        if done:
            self.forget(action)
            if action.id == self.login_action_id and message.success and not self.logged_in:
                self.logged_in = True   # Connected goes out before the FullyBooted that follows
                self.client._emit(Connected(received_at=received_at or self.client.clock.now(),
                                            server=self.client.server, server_version=self.version or ""))

    def forget(self, action: Action) -> None:
        for key in (action.id, action.action_id):
            if key and self.responses.get(key) is action:
                del self.responses[key]

    def abort(self, reason: str) -> None:
        self._close_reason = self._close_reason or reason
        if self.transport is not None:
            self.transport.abort()

    def close(self, reason: str = "closed by the dialer") -> None:
        """Never queues actions for re-sending (defect 2): connection_lost fails them."""
        self._close_reason = self._close_reason or reason
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        reason = self._close_reason or (f"{type(exc).__name__}: {exc}" if exc else "closed by Asterisk")
        pending = {id(a): a for a in self.responses.values()}.values()
        self.responses.clear()
        for action in pending:   # defect 2/3: fail, never re-send
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(
                    f"the AMI connection was lost before Asterisk answered {action['action']}"))
        if self.logged_in:
            self.client._emit(Disconnected(received_at=self.client.clock.now(), server=self.client.server,
                                           reason=reason))
        if not self.lost.done():
            self.lost.set_result(reason)


# ---------------------------------------------------------------------------------------- client


class AmiClient:
    """One AMI connection to one Asterisk server, kept up for as long as the client runs.

    `events` receives every typed event and the lifecycle events (Connected, Disconnected,
    LoginFailed) in order; if `on_event` is given, a dispatcher awaits it for each event instead.
    """

    def __init__(self, settings: AmiSettings, clock: Clock, *, on_event: EventHandler | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.settings = settings
        self.clock = clock
        self.server = settings.name
        self.events: asyncio.Queue[AmiEvent] = asyncio.Queue()
        self.server_version: str | None = None
        self.failure: AmiAuthError | None = None
        self._on_event = on_event
        self._sleep = sleep                       # the reconnect back-off waits through this
        self._protocol: _Protocol | None = None
        self._ready: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._id_prefix = f"dialer-{uuid.uuid4().hex[:8]}"
        self.on_action: Callable[[str, float], None] | None = None   # metrics: (action, seconds) per answer

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    def start(self) -> None:
        """Start connecting in the background (reconnects on its own until close())."""
        if self._supervisor is None:
            self._ready = asyncio.Event()
            self._closing = False
            self._supervisor = asyncio.create_task(self._run(), name=f"ami-{self.server}")
            if self._on_event is not None:
                self._dispatcher = asyncio.create_task(self._dispatch(), name=f"ami-{self.server}-events")

    async def connect(self, timeout: float | None = None) -> None:
        """Start and wait until logged in. AmiAuthError on bad credentials (the client stops);
        AmiNotConnected after `timeout` seconds (it keeps trying in the background)."""
        self.start()
        assert self._ready is not None and self._supervisor is not None
        ready = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait({ready, self._supervisor}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self.failure is not None:
            raise self.failure
        if not self._ready.is_set():
            raise AmiNotConnected(f"no AMI connection to {self._address} within {timeout:g} s; still trying")

    async def close(self) -> None:
        self._closing = True
        if self._protocol is not None:
            self._protocol.close()
        for task in (self._supervisor, self._dispatcher):
            if task is not None:
                task.cancel()
        for task in (self._supervisor, self._dispatcher):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing: errors were logged
                    pass
        self._supervisor = self._dispatcher = None

    async def wait_stopped(self) -> None:
        """Wait until the client stops on its own; raises the AmiAuthError that stopped it."""
        if self._supervisor is not None:
            await asyncio.shield(self._supervisor)
        if self.failure is not None:
            raise self.failure

    @property
    def _address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    async def _run(self) -> None:
        delay = self.settings.reconnect_min_seconds
        while not self._closing:
            try:
                await self._session()
                delay = self.settings.reconnect_min_seconds      # it was up: start the back-off over
                wait = delay
            except AmiAuthError as exc:
                self.failure = exc
                log.error("ami server=%s login refused: %s; not retrying", self.server, exc.reason)
                self._emit(LoginFailed(received_at=self.clock.now(), server=self.server, message=exc.reason))
                return
            except (OSError, AmiError, asyncio.TimeoutError) as exc:
                wait, delay = delay, min(delay * 2, self.settings.reconnect_max_seconds)
                log.warning("ami server=%s address=%s connect failed: %s; retrying in %.2f s",
                            self.server, self._address, _describe(exc), wait)
            except Exception:  # noqa: BLE001 - a bug must not end the connection for good
                wait, delay = delay, min(delay * 2, self.settings.reconnect_max_seconds)
                log.exception("ami server=%s session failed; retrying in %.2f s", self.server, wait)
            if self._closing:
                return
            await self._sleep(wait)

    async def _session(self) -> None:
        """One connection: connect, log in, then watch it until it ends."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.action_timeout_seconds
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(self), self.settings.host, self.settings.port), timeout)
        assert isinstance(protocol, _Protocol)
        watchdog = None
        try:
            await self._login(protocol)
            self._protocol = protocol
            self.server_version = protocol.version
            assert self._ready is not None
            self._ready.set()
            log.info("ami server=%s address=%s connected version=%s", self.server, self._address,
                     protocol.version or "?")
            watchdog = asyncio.create_task(self._watchdog(protocol), name=f"ami-{self.server}-watchdog")
            reason = await protocol.lost
            log.warning("ami server=%s disconnected: %s", self.server, reason)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if self._ready is not None:
                self._ready.clear()
            self._protocol = None
            transport.abort()

    async def _login(self, protocol: _Protocol) -> None:
        action = {"Action": "Login", "ActionID": self._next_id("login"), "Username": self.settings.username,
                  "Secret": self.settings.secret, "Events": "on"}
        protocol.login_action_id = action["ActionID"]
        timeout = max(self.settings.action_timeout_seconds, LOGIN_TIMEOUT_FLOOR)
        reply = await self._send(action, protocol=protocol, timeout=timeout)
        if not reply.success:
            raise AmiAuthError(reply.message or reply.response or "no reason given")

    async def _watchdog(self, protocol: _Protocol) -> None:
        """Defect 6: a peer that stops answering Ping is dropped (then reconnected)."""
        while not protocol.closed:
            await asyncio.sleep(self.settings.ping_interval_seconds)
            try:
                await self._send({"Action": "Ping"}, protocol=protocol)
            except AmiTimeout:
                log.error("ami server=%s did not answer Ping within %.1f s; dropping the connection",
                          self.server, self.settings.action_timeout_seconds)
                protocol.abort("no answer to Ping")
                return
            except AmiError:
                return

    # ------------------------------------------------------------------ events

    def _receive(self, message: Mapping[str, Any], received_at: Any) -> None:
        try:
            event = parse_event(message, received_at)
        except AmiProtocolError as exc:
            log.warning("ami server=%s event dropped: %s", self.server, exc)
            return
        if event is not None:
            if isinstance(event, Shutdown):
                log.warning("ami server=%s Asterisk is shutting down (%s)", self.server, event.shutdown)
            self._emit(event)

    def _emit(self, event: AmiEvent) -> None:
        self.events.put_nowait(event)

    async def _dispatch(self) -> None:
        """Defect 5: the handler is awaited in order; its errors are logged, the connection stays."""
        assert self._on_event is not None
        while True:
            event = await self.events.get()
            try:
                result = self._on_event(event)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad event must not stop the others
                log.exception("ami server=%s event handler failed on %s; continuing", self.server, event.name)

    # ------------------------------------------------------------------ actions

    async def originate(self, request: OriginateRequest) -> None:
        """Place a call. Returns when Asterisk queued it; the result comes as events.

        AmiActionError: Asterisk refused it (Permission denied, ...): nothing was dialed.
        AmiConnectionLost / AmiTimeout: unknown whether it was queued; never re-sent: reconcile.
        """
        reply = await self._send(request.to_action(), single_reply=True)
        if not reply.success:
            raise AmiActionError("Originate", reply.message)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang a channel up (a channel name, or our ChannelId / its Uniqueid)."""
        reply = await self._send({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})
        if not reply.success:
            raise AmiActionError("Hangup", reply.message)

    async def ping(self) -> float:
        """Round trip of one Ping, in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await self._send({"Action": "Ping"})
        if not reply.success:
            raise AmiActionError("Ping", reply.message)
        return loop.time() - start

    async def core_show_channels(self) -> list[CoreShowChannel]:
        """Every live channel, typed (for reconciliation)."""
        rows = await self._list({"Action": "CoreShowChannels"})
        return [row for row in rows if isinstance(row, CoreShowChannel)]

    async def queue_status(self, queue: str) -> QueueSnapshot:
        rows = await self._list({"Action": "QueueStatus", "Queue": queue})
        params = [r for r in rows if isinstance(r, QueueParams) and r.queue == queue]
        return QueueSnapshot(
            queue=queue, params=params[0] if params else None,
            members=tuple(r for r in rows if isinstance(r, QueueMember) and r.queue == queue),
            callers=tuple(r for r in rows if isinstance(r, QueueEntry) and r.queue == queue))

    async def queue_pause(self, interface: str, paused: bool, reason: str = "", queue: str | None = None) -> None:
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        reply = await self._send(action)
        if not reply.success:
            raise AmiActionError("QueuePause", reply.message)

    async def send_action(self, fields: dict[str, Any]) -> Any:
        """Any action, raw: a Message, or a list of them for an event-list reply (for `dialer doctor`)."""
        return await self._send(fields)

    async def _list(self, action: dict[str, Any]) -> list[AmiEvent]:
        replies = await self._send(action)
        if isinstance(replies, Message):   # a single reply: an error, or an empty list
            if not replies.success:
                raise AmiActionError(action["Action"], replies.message)
            return []
        first, items = replies[0], replies[1:]
        if not first.success:
            raise AmiActionError(action["Action"], first.message)
        at = self.clock.now()
        out = []
        for item in items:
            try:
                event = parse_event(item, at)
            except AmiProtocolError as exc:
                log.warning("ami server=%s %s row dropped: %s", self.server, action["Action"], exc)
                continue
            if event is not None:
                out.append(event)
        return out

    def _next_id(self, kind: str) -> str:
        return f"{self._id_prefix}-{kind}-{next(self._ids)}"

    async def _send(self, fields: dict[str, Any], *, protocol: _Protocol | None = None,
                    timeout: float | None = None, single_reply: bool = False) -> Any:
        """Send one action and await its reply (a Message, or a list of them for list actions)."""
        protocol = protocol or self._protocol
        if protocol is None or protocol.closed:
            raise AmiNotConnected(f"not connected to Asterisk {self.server} ({self._address})")
        fields = dict(fields)
        fields.setdefault("ActionID", self._next_id(fields["Action"].lower()))
        _check_values(fields)
        if fields["ActionID"] in protocol.responses:   # defect 3: the first one's future would hang
            raise AmiRequestError(f"ActionID {fields['ActionID']!r} is already waiting for an answer")
        action = Action(fields, as_list=False if single_reply else None)
        future = protocol.send(action, as_list=action.as_list)
        timeout = timeout or self.settings.action_timeout_seconds
        started = time.monotonic()
        try:
            reply = await asyncio.wait_for(future, timeout)
            if self.on_action is not None:
                self.on_action(fields["Action"], time.monotonic() - started)
            return reply
        except asyncio.TimeoutError:
            protocol.forget(action)
            raise AmiTimeout(f"Asterisk {self.server} did not answer {fields['Action']} within {timeout:g} s") from None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
