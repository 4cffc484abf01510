"""The simulated PBX: an AMI server over TCP that behaves like Asterisk 22 for what the dialer uses.

    pbx = SimulatedPbx(PbxConfig(speed=100, seed=1), customers=CustomerBook(...), operators=[...])
    port = await pbx.start("127.0.0.1", 0)
    ...
    pbx.drop_connections()        # every client gets EOF; calls go on
    await pbx.restart()           # calls hung up, Shutdown event, sockets closed, Uniqueids start again
    pbx.kill()                    # plain EOF, no events (as after SIGKILL); state starts again
    pbx.freeze(); pbx.thaw()      # a hung Asterisk: actions unanswered meanwhile
    await pbx.stop()

Each client is served like an Asterisk manager session: actions are handled one after the other
(a blocking Originate without `Async` holds the session's events until its response, as Asterisk
does), and everything written to a client goes through one writer task per connection, so
messages never interleave. A client that logged in with `Events: on` gets every event its user's
`read` classes allow. Time is simulated: every delay is divided by `speed`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Awaitable, Callable

from kernel.clock import Clock, ScaledClock, SystemClock
from kernel.errors import UsageError
from dialer.pbx_sim.calls import Call, CallRecord, CallResult, LocalTarget, OriginateRefused, OriginateRequest
from dialer.pbx_sim.channels import UNKNOWN, ChannelRegistry, ChannelState
from dialer.pbx_sim.events import AmiEvent, EventFactory, OriginateReason, list_complete
from dialer.pbx_sim.operators import CallQueue, DeviceState, OperatorSpec, QueueMember, numbered_operators
from dialer.pbx_sim.protocol import BANNER, Action, ActionReader, MessageTooLarge, encode, parse_classes
from dialer.pbx_sim.scenarios import CustomerBook
from leads.phone import mask_phone

log = logging.getLogger("dialer.pbx_sim")

DEFAULT_READ = "system,call,log,verbose,agent,user,config,dtmf,reporting,cdr,dialplan,originate"
DEFAULT_WRITE = "system,call,agent,user,config,command,reporting,originate"
SHUTDOWN_SOFTHANGUP = 4  # AST_SOFTHANGUP_SHUTDOWN, as SoftHangupRequest shows it on `core stop now`


@dataclass(frozen=True)
class PbxUser:
    """An AMI user as manager.conf declares it."""

    username: str
    secret: str
    read: frozenset[str] = field(default_factory=lambda: parse_classes(DEFAULT_READ))
    write: frozenset[str] = field(default_factory=lambda: parse_classes(DEFAULT_WRITE))

    @classmethod
    def from_conf(cls, username: str, secret: str, read: str = DEFAULT_READ, write: str = DEFAULT_WRITE
                  ) -> "PbxUser":
        if not username:
            raise UsageError("an AMI user needs a name")
        return cls(username, secret, parse_classes(read), parse_classes(write))


@dataclass(frozen=True)
class PbxConfig:
    users: tuple[PbxUser, ...] = (PbxUser("dialer", "dialer-secret"),)
    channelvars: tuple[str, ...] = ("LEAD_ID", "ATTEMPT_ID")  # manager.conf channelvars
    queue: str = "operators"
    queue_wait: float = 20.0            # DIALER_QUEUE_WAIT: Queue(operators,,,,20), longest wait for an operator
    operator_ring: float = 12.0         # DIALER_OPERATOR_RING: Dial() of the promised operator
    member_timeout: float = 15.0        # queues.conf timeout: how long one operator's phone rings
    member_retry: float = 1.0           # queues.conf retry
    trunk: str = "PJSIP/trunk"          # the customer's channel is <trunk>-NNNNNNNN
    amd_seconds: float = 2.5            # how long AMD() listens (calls with __DIALER_AMD=1)
    speed: float = 1.0                  # simulated seconds per wall-clock second
    seed: int | None = None             # customers' random draws
    auth_failure_delay: float = 1.0     # wall-clock seconds before "Authentication failed"
    response_delay: float = 0.0         # wall-clock seconds before each action is answered (a slow PBX)
    max_pending_messages: int = 100_000  # a client that falls this far behind is disconnected
    cdr_path: str | None = None         # cdr_custom's CSV file (asterisk_conf/cdr_custom.conf); None: no CDR
    recordings_dir: str | None = None   # MixMonitor's folder: <ATTEMPT_ID>.wav per connected call; None: none
    # The dialplan as ShowDialPlan lists it (asterisk_conf/extensions.conf): context -> (extension or
    # pattern, the application its priority 2 runs); priority 1 is a NoOp as in the shipped file.
    dialplan: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
        ("dialer-trunk", (("_X.", "Dial"), ("_+X.", "Dial"))), ("dialer-outbound", (("s", "Queue"),)),
        ("operators", (("_op.", "Dial"),)))

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise UsageError("speed must be positive")
        if "/" not in self.trunk:
            raise UsageError("trunk must look like PJSIP/trunk")
        if not self.users:
            raise UsageError("at least one AMI user is needed")


@dataclass(frozen=True)
class OperatorStats:
    interface: str
    name: str
    status: int
    paused: bool
    calls_connected: int       # every call the operator talked on
    calls_taken: int           # queue calls (QueueMember CallsTaken)
    peak_concurrent: int       # most calls ringing or connected to them at once (1 unless something is wrong)


@dataclass(frozen=True)
class PbxStats:
    calls_placed: int
    calls_in_progress: int
    peak_calls_in_progress: int
    answered: int
    results: dict[str, int]
    queue_waiting: int
    queue_peak_waiting: int
    queue_completed: int
    queue_abandoned: int
    operators: tuple[OperatorStats, ...]


Handler = Callable[["Session", Action], Awaitable[bool]]


class Session:
    """One AMI client connection."""

    def __init__(self, pbx: "SimulatedPbx", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pbx = pbx
        self.reader = reader
        self.writer = writer
        self.user: PbxUser | None = None
        self.event_classes: frozenset[str] = frozenset()
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._held: list[bytes] | None = None
        self._closing = False
        self.peer = writer.get_extra_info("peername")

    async def serve(self) -> None:
        writer_task = asyncio.create_task(self._write_loop())
        self._put((BANNER + "\r\n").encode())
        parser = ActionReader()
        try:
            while not self._closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    actions = parser.feed(data)
                except MessageTooLarge as exc:
                    self.respond(Action(()), "Error", ("Message", str(exc)))
                    break
                for action in actions:
                    await self.pbx.wait_responsive()
                    if self._closing or not await self.pbx.handle(self, action):
                        break
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()
            try:
                await asyncio.wait_for(writer_task, 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                writer_task.cancel()
            self.pbx.forget(self)

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self._outbox.get()
                if data is None:
                    break
                chunks = [data]
                while not self._outbox.empty() and len(chunks) < 256:
                    more = self._outbox.get_nowait()
                    if more is None:
                        self._outbox.put_nowait(None)
                        break
                    chunks.append(more)
                self.writer.write(b"".join(chunks))
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    def _put(self, data: bytes) -> None:
        if self._closing:
            return
        if self._outbox.qsize() >= self.pbx.config.max_pending_messages:
            log.warning("pbx-sim: client %s is %d messages behind; disconnecting it", self.peer, self._outbox.qsize())
            self.abort()
            return
        self._outbox.put_nowait(data)

    def send(self, pairs: list[tuple[str, str]]) -> None:
        self._put(encode(pairs))

    def respond(self, action: Action, response: str, *headers: tuple[str, str]) -> None:
        pairs = [("Response", response)]
        if action.action_id:
            pairs.append(("ActionID", action.action_id))
        self.send(pairs + list(headers))

    def reply_event(self, event: AmiEvent) -> None:
        """An event that is part of an action's reply (event lists): always goes to the asker."""
        self.send(event.pairs())

    def wants(self, event: AmiEvent) -> bool:
        return self.user is not None and not self._closing and bool(event.classes & self.event_classes)

    def deliver(self, event: AmiEvent, data: bytes | None = None) -> None:
        """Send an event if this client's user may read it (`data`: the event already encoded)."""
        if not self.wants(event):
            return
        data = data or encode(event.pairs())
        if self._held is not None:
            self._held.append(data)
        else:
            self._put(data)

    def hold_events(self) -> None:
        self._held = []

    def release_events(self) -> None:
        held, self._held = self._held or [], None
        for data in held:
            self._put(data)

    def close(self) -> None:
        """Flush what is queued, then close (the client reads EOF)."""
        if not self._closing:
            self._closing = True
            self._outbox.put_nowait(None)

    def abort(self) -> None:
        """Close at once, dropping whatever was not sent yet."""
        self._closing = True
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        self._outbox.put_nowait(None)


class SimulatedPbx:
    def __init__(self, config: PbxConfig | None = None, customers: CustomerBook | None = None,
                 operators: list[OperatorSpec] | None = None, clock: Clock | None = None) -> None:
        self.config = config or PbxConfig()
        self.customers = customers or CustomerBook()
        self.speed = self.config.speed
        self._clock: Clock = clock or ScaledClock(SystemClock().now(), self.speed)
        self.rng = random.Random(self.config.seed)
        self.factory = EventFactory(self.config.channelvars)
        self.registry = ChannelRegistry()
        self.amd_seconds = self.config.amd_seconds
        self.operator_ring = self.config.operator_ring
        self.member_timeout = self.config.member_timeout
        self.member_retry = self.config.member_retry
        self.trunk = self.config.trunk
        self._users = {u.username: u for u in self.config.users}
        self._operator_specs = list(operators) if operators is not None else numbered_operators(2)
        self._sessions: set[Session] = set()
        self._session_tasks: set[asyncio.Task] = set()
        self._calls: dict[Call, asyncio.Task] = {}
        self._timers: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.call_log: list[CallRecord] = []
        self._responsive = asyncio.Event()
        self._responsive.set()
        self._boot()
        self._actions: dict[str, tuple[frozenset[str] | None, Handler]] = {
            "login": (None, self._login),
            "logoff": (None, self._logoff),
            "challenge": (None, self._not_simulated),
            "ping": (None, self._ping),
            "events": (None, self._events),
            "originate": (frozenset({"originate"}), self._originate),
            "hangup": (frozenset({"system", "call"}), self._hangup),
            "coreshowchannels": (frozenset({"system", "reporting"}), self._core_show_channels),
            "queuestatus": (None, self._queue_status),
            "queuesummary": (None, self._queue_summary),
            "queuepause": (frozenset({"agent"}), self._queue_pause),
            "queueadd": (frozenset({"agent"}), self._not_simulated),
            "queueremove": (frozenset({"agent"}), self._not_simulated),
            "command": (frozenset({"command"}), self._not_simulated),
            "status": (frozenset({"system", "call", "reporting"}), self._not_simulated),
            "getvar": (frozenset({"call", "reporting"}), self._not_simulated),
            "setvar": (frozenset({"call"}), self._not_simulated),
            "showdialplan": (frozenset({"config", "reporting"}), self._show_dialplan),
            "listcommands": (None, self._list_commands),
            "modulecheck": (frozenset({"system"}), self._not_simulated),
            "reload": (frozenset({"system", "config"}), self._not_simulated),
            "updateconfig": (frozenset({"config"}), self._not_simulated),
        }

    def _boot(self) -> None:
        """State of a freshly started Asterisk: no channels, sequence at 0, members idle."""
        self._generation = getattr(self, "_generation", 0) + 1
        self.registry.reset()
        self._booted_at = self.now()
        login = int(self._booted_at.timestamp())
        self.queue = CallQueue(self.config.queue, self._operator_specs, login, self.config.queue_wait)
        self._placed = 0
        self._answered = 0
        self._peak_calls = 0
        self._results: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for AMI clients; returns the port (pass 0 for a free one)."""
        self.host = host
        self._server = await asyncio.start_server(self._on_connect, host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("pbx-sim: listening on %s:%d, %d operators, speed %gx", host, self.port,
                 len(self.queue.members), self.speed)
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection, end every call (no events)."""
        await self._stop_listening()
        self._drop_calls()
        for task in list(self._timers):
            task.cancel()
        await self._close_sessions(graceful=False)
        await self._wait_calls()

    def drop_connections(self) -> None:
        """Every client gets EOF (a network blip); calls go on and their events reach new logins."""
        for session in list(self._sessions):
            session.close()

    async def restart(self, down_for: float = 0.0) -> None:
        """`core restart now`: channels hung up, Shutdown event, sockets closed, a fresh PBX.

        `down_for` simulated seconds with the port closed (connections refused) before it listens again.
        """
        calls = list(self._calls)
        self._drop_calls()
        self._shutdown_events(restart=True)
        await self._close_sessions(graceful=True)
        await self._wait_calls(calls)
        for task in list(self._timers):
            task.cancel()
        if down_for > 0 and self._server is not None:
            await self._stop_listening()
            await asyncio.sleep(down_for / self.speed)
        self._boot()
        if self._server is None:
            await self.start(self.host, self.port)

    def freeze(self) -> None:
        """A hung Asterisk: connections stay open, actions (Ping too) get no answer until `thaw()`."""
        self._responsive.clear()

    def thaw(self) -> None:
        self._responsive.set()

    async def wait_responsive(self) -> None:
        await self._responsive.wait()
        if self.config.response_delay > 0:
            await asyncio.sleep(self.config.response_delay)

    def kill(self) -> None:
        """SIGKILL and an immediate start: connections just close, no events; state starts again."""
        self._drop_calls()
        for session in list(self._sessions):
            session.abort()
        for task in list(self._timers):
            task.cancel()
        self._boot()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _drop_calls(self) -> None:
        for call, task in list(self._calls.items()):
            call.result = call.result or CallResult.DROPPED
            task.cancel()

    async def _wait_calls(self, calls: list[Call] | None = None) -> None:
        tasks = [self._calls[c] for c in (calls or list(self._calls)) if c in self._calls]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_sessions(self, graceful: bool) -> None:
        for session in list(self._sessions):
            session.close() if graceful else session.abort()
        tasks = list(self._session_tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    def _shutdown_events(self, restart: bool) -> None:
        live = self.registry.live()
        for ch in live:
            self.emit(self.factory.soft_hangup_request(ch, SHUTDOWN_SOFTHANGUP))
        for ch in live:
            self.emit(self.factory.hangup(ch, 16))
        for member in self.queue.members.values():
            if member.status is not DeviceState.NOT_INUSE:
                member.status = DeviceState.NOT_INUSE
                member.in_call = False
                self.emit(self.factory.queue_member_status(member.snapshot(self.queue.name)))
        self.emit(self.factory.shutdown(restart))

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._session_tasks.add(task)
        try:
            await session.serve()
        finally:
            if task is not None:
                self._session_tasks.discard(task)

    def forget(self, session: Session) -> None:
        self._sessions.discard(session)

    # ------------------------------------------------------------------ what calls use

    def now(self) -> datetime:
        return self._clock.now()

    def emit(self, event: AmiEvent) -> None:
        """Every logged-in client whose user may read the event gets it; encoded once for all."""
        data: bytes | None = None
        for session in list(self._sessions):
            if session.wants(event):
                data = data or encode(event.pairs())
                session.deliver(event, data)

    def member_released(self, member: QueueMember, talked: bool) -> None:
        if talked and member.wrapup_until is not None:
            until = member.wrapup_until
            self._later(member.spec.wrapup, lambda: self._wrapup_over(member, until))
        else:
            self.queue.dispatch(self.now())

    def _wrapup_over(self, member: QueueMember, until: datetime | None) -> None:
        if member.wrapup_until == until:      # no newer call since: the wrap-up is over, whatever the clock says
            member.wrapup_until = None
        self.queue.dispatch(self.now())

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        async def wait_then_run() -> None:
            await asyncio.sleep(seconds / self.speed)
            action()

        task = asyncio.create_task(wait_then_run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # ------------------------------------------------------------------ operators and customers

    def set_customers(self, customers: CustomerBook) -> None:
        self.customers = customers

    def add_operator(self, spec: OperatorSpec) -> None:
        self._operator_specs.append(spec)
        self.queue.add(spec, int(self._booted_at.timestamp()))
        self.queue.dispatch(self.now())

    def set_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        """Pause or unpause an operator (as the QueuePause action does): emits QueueMemberPause."""
        member = self.queue.member(interface)
        if member is None:
            raise UsageError(f"{interface} is not a member of queue {self.queue.name}")
        member.paused = paused
        member.paused_reason = reason if paused else ""
        member.last_pause = int(self.now().timestamp())
        self.emit(self.factory.queue_member_pause(member.snapshot(self.queue.name)))
        self.queue.dispatch(self.now())     # unpaused: takes a waiting caller; all paused: LEAVEEMPTY

    def stats(self) -> PbxStats:
        operators = tuple(OperatorStats(m.interface, m.spec.name, int(m.status), m.paused, m.connected_calls,
                                        m.calls_taken, m.peak_engaged) for m in self.queue.members.values())
        return PbxStats(self._placed, len(self._calls), self._peak_calls, self._answered, dict(self._results),
                        len(self.queue.waiting), self.queue.peak_waiting, self.queue.completed,
                        self.queue.abandoned, operators)

    # ------------------------------------------------------------------ actions

    async def handle(self, session: Session, action: Action) -> bool:
        """Answer one action; False when the session must end."""
        name = action.name.lower()
        if not name:
            session.respond(action, "Error", ("Message", "Missing action in request"))
            return True
        if session.user is None and name not in ("login", "logoff", "challenge"):
            session.respond(action, "Error", ("Message", "Permission denied"))
            return True
        entry = self._actions.get(name)
        if entry is None:
            session.respond(action, "Error", ("Message", "Invalid/unknown command"))
            return True
        authority, handler = entry
        if authority is not None and session.user is not None and not (authority & session.user.write):
            session.respond(action, "Error", ("Message", "Permission denied"))
            return True
        return await handler(session, action)

    async def _login(self, session: Session, action: Action) -> bool:
        user = self._users.get(action.get("Username"))
        if user is None or not hmac.compare_digest(user.secret.encode(), action.get("Secret").encode()):
            log.info("pbx-sim: failed login for %r from %s", action.get("Username"), session.peer)
            await asyncio.sleep(self.config.auth_failure_delay)
            session.respond(action, "Error", ("Message", "Authentication failed"))
            session.close()
            return False
        session.user = user
        session.event_classes = _event_mask(action.get("Events", "on"), user.read)
        session.respond(action, "Success", ("Message", "Authentication accepted"))
        uptime = self._uptime()
        session.deliver(self.factory.fully_booted(uptime, uptime))
        return True

    async def _logoff(self, session: Session, action: Action) -> bool:
        session.respond(action, "Goodbye", ("Message", "Thanks for all the fish."))
        session.close()
        return False

    async def _ping(self, session: Session, action: Action) -> bool:
        session.respond(action, "Success", ("Ping", "Pong"), ("Timestamp", f"{self.now().timestamp():.6f}"))
        return True

    async def _events(self, session: Session, action: Action) -> bool:
        assert session.user is not None
        session.event_classes = _event_mask(action.get("EventMask", "on"), session.user.read)
        session.respond(action, "Success", ("Events", "On" if session.event_classes else "Off"))
        return True

    async def _list_commands(self, session: Session, action: Action) -> bool:
        """Asterisk's ListCommands: `Name: synopsis (Priv: classes)` for every action the user may send."""
        assert session.user is not None
        rows = [(_ACTION_NAMES.get(name, name.title()), f"{name} (Priv: {','.join(sorted(auth)) if auth else '<none>'})")
                for name, (auth, _) in self._actions.items() if auth is None or auth & session.user.write]
        session.respond(action, "Success", *rows)
        return True

    async def _show_dialplan(self, session: Session, action: Action) -> bool:
        """ShowDialPlan [Context] [Extension]: ListDialplan events; an extension matches patterns as in
        Asterisk (_X. and the like), so the dialed number itself can be asked for."""
        context, exten = action.get("Context"), action.get("Extension")
        plan = dict(self.config.dialplan)
        if context and context not in plan:
            session.respond(action, "Error", ("Message", f"Did not find context {context}"))
            return True
        rows = [(c, e, app) for c, exts in plan.items() if not context or c == context
                for e, app in exts if not exten or _extension_match(e, exten)]
        if exten and not rows:
            session.respond(action, "Error", ("Message", f"Did not find extension {exten}@{context or ''}"))
            return True
        session.respond(action, "Success", ("EventList", "start"), ("Message", "DialPlan list will follow"))
        aid = action.action_id
        for c, e, app in rows:
            for priority, application in ((1, "NoOp"), (2, app)):
                session.reply_event(AmiEvent("ListDialplan", None, (
                    ("Context", c), ("Extension", e), ("Priority", str(priority)), ("Application", application),
                    ("AppData", ""), ("Registrar", "pbx_config")) + ((("ActionID", aid),) if aid else ())))
        session.reply_event(list_complete("ShowDialPlanComplete", aid, 2 * len(rows)))
        return True

    async def _not_simulated(self, session: Session, action: Action) -> bool:
        session.respond(action, "Error", ("Message", f"{action.name} is not simulated by dialer pbx-sim"))
        return True

    async def _originate(self, session: Session, action: Action) -> bool:
        try:
            request = OriginateRequest.from_action(action)
        except OriginateRefused as exc:
            session.respond(action, "Error", ("Message", str(exc)))
            return True
        if request.asynchronous:
            session.respond(action, "Success", ("Message", "Originate successfully queued"))
        else:
            session.hold_events()
        self._placed += 1
        target = LocalTarget.parse(request.channel)
        taken = request.channel_id and self.registry.uniqueid_in_use(request.channel_id)
        if target is None or taken:
            why = "Uniqueid already in use" if taken else "only Local/<number>@<context> channels are simulated"
            log.info("pbx-sim: originate %s failed: %s", request.action_id or "-", why)
            self._count(CallResult.FAILED)
            if request.asynchronous:
                self.emit(self.factory.originate_response(
                    request.action_id, False, request.channel, request.context, request.exten,
                    OriginateReason.FAILED, request.channel_id or UNKNOWN, request.caller_num, request.caller_name))
            else:
                session.respond(action, "Error", ("Message", "Originate failed"))
                session.release_events()
            return True
        plan = self.customers.plan_for(target.number, self.rng)
        call = Call(self, request, target, plan)
        call.setup()
        task = asyncio.create_task(call.run())
        self._calls[call] = task
        self._peak_calls = max(self._peak_calls, len(self._calls))
        generation = self._generation
        task.add_done_callback(lambda t, c=call: self._finished(c, t, generation))
        log.info("pbx-sim: dialing %s uniqueid=%s plan=%s", mask_phone(target.number), call.l1.uniqueid,
                 plan.outcome.value)
        if not request.asynchronous:
            ok = await call.originated
            if ok:
                session.respond(action, "Success", ("Message", "Originate successfully queued"))
            else:
                session.respond(action, "Error", ("Message", "Originate failed"))
            session.release_events()
        return True

    def _finished(self, call: Call, task: asyncio.Task, generation: int) -> None:
        self._calls.pop(call, None)
        if generation != self._generation:      # a call of the PBX before a restart or kill
            self.call_log.append(call.record())
            return
        try:
            self._write_cdr(call)
        except Exception:
            log.exception("pbx-sim: writing the CDR of call %s failed", call.l1.uniqueid if call.l1 else "-")
        try:
            self._write_recording(call)
        except Exception:
            log.exception("pbx-sim: writing the recording of call %s failed", call.l1.uniqueid if call.l1 else "-")
        if not task.cancelled() and task.exception() is not None:
            log.error("pbx-sim: call %s failed inside the simulator", call.l1.uniqueid, exc_info=task.exception())
            call.result = CallResult.FAILED
            for ch in call.channels:
                self.registry.remove(ch)
            if call.member is not None and call.member.engaged:
                self.queue.release(call.member, self.now(), int(self.now().timestamp()), False, call.via_queue)
        record = call.record()
        self.call_log.append(record)
        if record.answered_at is not None:
            self._answered += 1
        self._count(record.result)
        log.info("pbx-sim: call %s uniqueid=%s result=%s operator=%s", mask_phone(record.number), record.uniqueid,
                 record.result.value, record.operator or "-")

    def _write_cdr(self, call: Call) -> None:
        """The PBX's own record (CDR), written when the call is over, as Asterisk's cdr_custom does."""
        if not self.config.cdr_path or call.l1 is None:
            return
        from dialer.pbx_sim.cdr import CdrWriter, cdr_rows
        record = call.record() if call.result is not None else None
        if record is None:
            return
        from dialer.pbx_sim.cdr import call_attempt_id
        account = call.request.account or call_attempt_id(call)
        CdrWriter(self.config.cdr_path).write(cdr_rows(record, account=account, channel=call.request.channel,
                                                       context=call.request.context, trunk=self.config.trunk))

    def _write_recording(self, call: Call) -> None:
        """MixMonitor(<ATTEMPT_ID>.wav,b): a file when the customer was bridged to an operator."""
        if not self.config.recordings_dir or call.connected_at is None:
            return
        from dialer.pbx_sim.cdr import call_attempt_id
        from dialer.recordings.wav import write_call_wav
        name = call_attempt_id(call) or (call.l1.uniqueid if call.l1 else "")
        if not name:
            return
        talk = ((call.ended_at or self.now()) - call.connected_at).total_seconds()
        write_call_wav(Path(self.config.recordings_dir) / f"{name}.wav", talk)

    def _count(self, result: CallResult) -> None:
        self._results[result.value] = self._results.get(result.value, 0) + 1

    async def _hangup(self, session: Session, action: Action) -> bool:
        name = action.get("Channel")
        if not name:
            session.respond(action, "Error", ("Message", "No channel specified"))
            return True
        found = self.registry.find(name)
        if not found:
            session.respond(action, "Error", ("Message", "No such channel"))
            return True
        session.respond(action, "Success", ("Message", "Channel Hungup"))
        for ch in found:
            cause_text = action.get("Cause")
            cause = int(cause_text) if cause_text.isdigit() else (16 if ch.state is ChannelState.UP else 0)
            for call in self._calls:
                if call.owns(ch):
                    call.request_hangup(ch, cause)
        return True

    async def _core_show_channels(self, session: Session, action: Action) -> bool:
        session.respond(action, "Success", ("EventList", "start"), ("Message", "Channels will follow"))
        now = self.now()
        live = self.registry.live()
        for ch in live:
            session.reply_event(self.factory.core_show_channel(ch, _hms((now - ch.created_at).total_seconds()),
                                                               action.action_id))
        session.reply_event(list_complete("CoreShowChannelsComplete", action.action_id, len(live)))
        return True

    def _queue_selected(self, action: Action) -> bool:
        wanted = action.get("Queue")
        return not wanted or wanted == self.queue.name

    async def _queue_status(self, session: Session, action: Action) -> bool:
        session.respond(action, "Success", ("EventList", "start"), ("Message", "Queue status will follow"))
        items = 0
        if self._queue_selected(action):
            queue, aid, now = self.queue, action.action_id, self.now()
            rows = (("Queue", queue.name), ("Max", "0"), ("Strategy", "fewestcalls"),
                    ("Calls", str(len(queue.waiting))), ("Holdtime", str(queue.holdtime)),
                    ("TalkTime", str(queue.talktime)), ("Completed", str(queue.completed)),
                    ("Abandoned", str(queue.abandoned)), ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"),
                    ("ServicelevelPerf2", "0.0"), ("Weight", "0"))
            session.reply_event(AmiEvent("QueueParams", None, rows + ((("ActionID", aid),) if aid else ())))
            items += 1
            member_filter = action.get("Member")
            for member in queue.members.values():
                if member_filter and member.interface != member_filter:
                    continue
                session.reply_event(self.factory.queue_member(member.snapshot(queue.name), aid))
                items += 1
            for position, entry in enumerate(queue.waiting, start=1):
                caller = entry.caller
                if isinstance(caller, Call):
                    wait = int((now - entry.joined_at).total_seconds())
                    session.reply_event(self.factory.queue_entry(queue.name, position, caller.l1, wait, aid))
                    items += 1
        session.reply_event(list_complete("QueueStatusComplete", action.action_id, items))
        return True

    async def _queue_summary(self, session: Session, action: Action) -> bool:
        session.respond(action, "Success", ("EventList", "start"), ("Message", "Queue summary will follow"))
        items = 0
        if self._queue_selected(action):
            queue, now = self.queue, self.now()
            longest = max((int((now - e.joined_at).total_seconds()) for e in queue.waiting), default=0)
            rows = (("Queue", queue.name), ("LoggedIn", str(len(queue.members))),
                    ("Available", str(len(queue.available(now)))), ("Callers", str(len(queue.waiting))),
                    ("HoldTime", str(queue.holdtime)), ("TalkTime", str(queue.talktime)),
                    ("LongestHoldTime", str(longest)))
            aid = action.action_id
            session.reply_event(AmiEvent("QueueSummary", None, rows + ((("ActionID", aid),) if aid else ())))
            items = 1
        session.reply_event(list_complete("QueueSummaryComplete", action.action_id, items))
        return True

    async def _queue_pause(self, session: Session, action: Action) -> bool:
        interface, paused = action.get("Interface"), action.get("Paused")
        if not interface or not paused:
            session.respond(action, "Error", ("Message", "Need 'Interface' and 'Paused' parameters."))
            return True
        if not self._queue_selected(action) or self.queue.member(interface) is None:
            session.respond(action, "Error", ("Message", "Interface not found"))
            return True
        pause = paused.strip().lower() in ("yes", "true", "y", "t", "1", "on")
        session.respond(action, "Success",
                        ("Message", "Interface paused successfully" if pause else "Interface unpaused successfully"))
        self.set_paused(interface, pause, action.get("Reason"))
        return True

    def _uptime(self) -> int:
        return int((self.now() - self._booted_at).total_seconds())


_ACTION_NAMES = {"coreshowchannels": "CoreShowChannels", "queuestatus": "QueueStatus",
                 "queuesummary": "QueueSummary", "queuepause": "QueuePause", "queueadd": "QueueAdd",
                 "queueremove": "QueueRemove", "getvar": "Getvar", "setvar": "Setvar",
                 "showdialplan": "ShowDialPlan", "listcommands": "ListCommands", "modulecheck": "ModuleCheck",
                 "updateconfig": "UpdateConfig"}


def _extension_match(pattern: str, exten: str) -> bool:
    """Asterisk's extension patterns: _ then X (0-9), Z (1-9), N (2-9), [..], . (one or more), ! (zero or more)."""
    if not pattern.startswith("_"):
        return pattern == exten
    import re
    regex, i, body = "", 0, pattern[1:]
    while i < len(body):
        ch = body[i]
        if ch in "xX":
            regex += "[0-9]"
        elif ch in "zZ":
            regex += "[1-9]"
        elif ch in "nN":
            regex += "[2-9]"
        elif ch == "[":
            end = body.index("]", i)
            regex += "[" + body[i + 1:end] + "]"
            i = end
        elif ch == ".":
            regex += ".+"
        elif ch == "!":
            regex += ".*"
        else:
            regex += re.escape(ch)
        i += 1
    return re.fullmatch(regex, exten) is not None


def _event_mask(value: str, read: frozenset[str]) -> frozenset[str]:
    """Login `Events:` / Events action `EventMask:`: on, off, or a list of classes (within the user's read)."""
    lowered = value.strip().lower()
    if lowered in ("", "on", "yes", "true", "1", "all"):
        return read
    if lowered in ("off", "no", "false", "0"):
        return frozenset()
    try:
        return parse_classes(lowered) & read
    except UsageError:
        return read


def _hms(seconds: float) -> str:
    total = int(max(seconds, 0))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
