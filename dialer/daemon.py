"""The dialer daemon (`dialer run`): one asyncio process that turns leads into calls.

It hosts, in one event loop: the intake webhook (and later the operator console), the pull feeds,
the AMI connection, the dialing loop, the result writer, the CRM outbox sender and the periodic
jobs (APScheduler: nightly export; plus wrap-up expiry, SLA alerts, lease renewal, reconciliation).

The dialing loop (procrastinate's worker shape): wait for a wake-up (a new lead from intake in this
process, a NOTIFY from another process on PostgreSQL, an operator becoming free, a call ending) or
the poll interval as the safety net; then, while an operator is free, claim the next attempt in the
database (leads.policy.claim) and Originate it. Progressive pacing: each call in progress holds
one free operator (dialer.pacing), so calls never outnumber operators who can take them.

Only this module reads the clock; everything below it takes `now`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import dataclasses
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

import httpx

from dialer import attempts as attempt_store
from dialer.ami.adapter import AmiClient, OriginateRequest
from dialer.ami.errors import AmiActionError, AmiAuthError, AmiError, AmiNotConnected
from dialer.ami.events import (AgentComplete, AgentConnect, AmiEvent, Connected, LoginFailed,
                               QueueMemberPause, QueueMemberStatus)
from dialer.calls.tracker import AttemptUpdate, CallTracker
from kernel.clock import Clock
from dialer.console.hub import ConsoleHub   # console (issue 6)
from kernel.db.engine import Database
from dialer.pacing import MemberStatus, OperatorBoard, Presence, calls_to_place
from dialer.reports.presence import PresenceLog, record_presence   # reports (issue 13): hours worked
from dialer.resilience import holds as operator_holds   # faults (issue 11)
from dialer.resilience.store import StoreHealth, is_outage   # faults (issue 11)
from kernel.settings import Settings, resolved_daemon_id
from leads.attempt import AttemptState
from leads.intake import Intake
from leads.phone import format_for_dialing, mask_phone
from leads.policy.claim import Claim, claim_next
from leads.policy.queue import leads_at_risk, mark_sla_alerted
from leads.policy.results import renew_leases
from leads.policy.store import current_policy

log = logging.getLogger("dialer.daemon")

POLL_INTERVAL = 1.0          # seconds: the safety net when no wake-up comes
JOB_INTERVAL = 1.0           # wrap-ups, board refresh
SLA_CHECK_INTERVAL = 5.0
RECONCILE_INTERVAL = 30.0
LEASE_RENEW_INTERVAL = 10.0
RECONCILE_AFTER_CONNECT = 6.0   # seconds: past the tracker's grace for an Originate just sent


@dataclass
class DaemonStats:
    claimed: int = 0
    originated: int = 0
    originate_failed: int = 0
    ended: int = 0
    results: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    max_in_progress: int = 0
    originate_times: list[float] = field(default_factory=list)   # monotonic time each Originate went out


class Daemon:
    def __init__(self, settings: Settings, db: Database, clock: Clock, *, serve_http: bool = True,
                 http_port: int | None = None, drain_seconds: float = 30.0,
                 on_originate: Callable[[Claim], None] | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.daemon_id = resolved_daemon_id(settings)
        self.pbx = settings.ami.name
        self.center_zone = settings.center_timezone
        self.board = OperatorBoard()
        self.presence_log = PresenceLog()
        self.tracker = CallTracker()
        self.stats = DaemonStats()
        self.serve_http = serve_http
        self.http_port = http_port if http_port is not None else settings.http.port
        self.drain_seconds = drain_seconds
        self.on_originate = on_originate
        self.http_url: str | None = None
        self.ready = asyncio.Event()
        self.failure: BaseException | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._writes: asyncio.Queue[Callable[[], Any]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel_ids: dict[int, str] = {}           # attempts in flight -> our ChannelId
        # Held from tracking an attempt until Asterisk answered its Originate, and by reconciliation:
        # a call whose Originate is not yet sent has no channel, and must not be settled as gone.
        self._placing = asyncio.Lock()
        self._wrapups: dict[int, str] = {}               # connected attempt -> operator interface
        self._alerted: set[int] = set()
        self._ami_down_since: datetime | None = None   # alerts (issue 14)
        self._report_mailer = None                      # scheduled reports (issue 14)
        self._next_abandon_check = clock.now()
        self._sender = None
        self.ami = AmiClient(settings.ami, clock, on_event=self._on_event)
        self.intake = Intake(db, default_region=settings.default_region, on_new_leads=self._new_leads_from_thread)
        self.console_hub = ConsoleHub(clock)   # console (issue 6): screen pops to the operators' pages
        self.store_health = StoreHealth()      # faults (issue 11): a store outage pauses, never ends, the daemon
        self.cdr = None                        # faults (issue 11): the PBX's CDR, for calls that ended while blind
        self._reconcile_again_at: float | None = None
        self.shared_operators = settings.ami.shared_with_other_daemons   # N daemons, one Asterisk
        if settings.ami.cdr_csv_path:
            from dialer.resilience.cdr import CdrLog
            self.cdr = CdrLog(settings.ami.cdr_csv_path, settings.dial.context)
        self._writes_pending = 0
        self.metrics = _metrics_for(self)      # metrics (issue 17)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop claiming, let calls finish, write every result."""
        self._loop = asyncio.get_running_loop()
        tasks: dict[str, asyncio.Task] = {}
        server = None
        scheduler = None
        try:
            from dialer.bootstrap import ensure_ready
            self.db.checkpoint_in_background()
            if self.serve_http:   # first: while the store is down the webhook answers 503, never a refused connection
                server = await self._start_http()
            if not await self._until_store_answers(lambda: (ensure_ready(self.db), self._adopt_open_attempts()),
                                                   stop):
                return
            tasks["writer"] = asyncio.create_task(self._writer(), name="writer")
            self.ami.start()
            try:
                await self.ami.connect(timeout=max(10.0, self.settings.ami.action_timeout_seconds * 2))
            except AmiAuthError:
                raise
            except AmiError as exc:
                log.warning("ami.not_connected_yet server=%s reason=%s (retrying in the background)", self.pbx, exc)
            scheduler = self._start_scheduler()
            tasks["dial"] = asyncio.create_task(self._dial_loop(), name="dial")
            tasks["jobs"] = asyncio.create_task(self._jobs(), name="jobs")
            if self.db.is_postgres:
                tasks["listen"] = asyncio.create_task(self._listen_for_leads(), name="listen")
            tasks.update(self._start_feeds())
            tasks.update(self._start_connector())   # crm connectors (issue 20)
            sender = self._start_sender()
            if sender is not None:
                tasks["crm"] = sender
            tasks.update(_start_chains(self))   # touch chains (issue 19)
            tasks.update(_start_alerts(self))   # alerts (issue 14)
            if self._report_mailer is not None:   # scheduled reports (issue 14): sends, and retries failed ones
                tasks["reports"] = asyncio.create_task(_send_reports(self._report_mailer, self._stopping),
                                                       name="reports")
            self.ready.set()
            log.info("daemon.started daemon_id=%s pbx=%s http=%s", self.daemon_id, self.pbx, self.http_url)
            stop_wait = asyncio.create_task(stop.wait(), name="stop")
            watched = [stop_wait, *tasks.values()]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_wait and not task.cancelled() and task.exception() is not None:
                    raise task.exception()
            stop_wait.cancel()
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self.ready.set()
            await self._shutdown(tasks, server, scheduler)

    async def _shutdown(self, tasks: dict[str, asyncio.Task], server, scheduler) -> None:
        log.info("daemon.stopping calls_in_progress=%s", len(self.tracker.active))
        self._stopping.set()
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + self.drain_seconds
        dial = tasks.pop("dial", None)
        if dial is not None:   # no new claim; a call being placed goes out and is drained with the others
            await asyncio.wait({dial}, timeout=self.drain_seconds)
            await _cancel(dial)
        while self.tracker.active and asyncio.get_running_loop().time() < deadline and self.ami.connected:
            await asyncio.sleep(0.05)
        if self.tracker.active:
            log.warning("daemon.drain_timeout calls_in_progress=%s: hanging up those not answered",
                        len(self.tracker.active))
            await self._cancel_unanswered()
        writer = tasks.pop("writer", None)
        for name, task in tasks.items():
            await _cancel(task)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if getattr(self, "metrics_server", None):   # metrics (issue 17): its own port
            self.metrics_server[0].shutdown()
        if server is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server_task, 10)
        with contextlib.suppress(Exception):
            await self.ami.close()
        if writer is not None:
            # a store still down at exit: what is not written stays open in the store, and the next start
            # adopts it and asks the PBX's record (CDR) for the outcome
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._writes.join(), self.drain_seconds)
            if self._writes_pending:
                log.error("daemon.stopped_with_unwritten_results writes=%s (the next start settles them from "
                          "the store and the PBX's CDR)", self._writes_pending)
            await _cancel(writer)
        await asyncio.to_thread(self.db.stop_background_checkpoints)
        log.info("daemon.stopped claimed=%s originated=%s ended=%s results=%s", self.stats.claimed,
                 self.stats.originated, self.stats.ended, self.stats.results)

    def _adopt_open_attempts(self) -> None:
        """Calls a crashed predecessor left in progress: re-track them; reconciliation settles them."""
        open_ = attempt_store.open_attempts(self.db, self.pbx)
        undialed = [a for a in open_ if not a.action_id]
        now = self.clock.now()
        if undialed:
            attempt_store.end_undialed(self.db, undialed, at=now, center_zone=self.center_zone)
        dialed = [a for a in open_ if a.action_id]
        policy = current_policy(self.db)
        attempt_store.take_over(self.db, dialed, self.daemon_id, now + policy.lease)
        for attempt in dialed:
            if attempt.channel_id:
                self._channel_ids[attempt.attempt_id] = attempt.channel_id
            self.tracker.track(attempt.attempt_id, action_id=attempt.action_id, at=attempt.claimed_at,
                               channel_id=attempt.channel_id, lead_id=attempt.lead_id, state=attempt.state,
                               known=attempt.facts)   # faults (issue 11): resume from the stored facts
        if open_:
            log.info("daemon.adopted attempts=%s undialed_ended=%s", len(dialed), len(undialed))

    # ------------------------------------------------------------------ wake-ups

    def wake(self) -> None:
        self._wake.set()

    def _new_leads_from_thread(self, lead_ids: list[int]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _listen_for_leads(self) -> None:
        """PostgreSQL: intake in another process says NOTIFY dialer_new_leads; we wake at once."""
        import psycopg
        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 1.0
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute("LISTEN dialer_new_leads")
                    delay = 1.0
                    async for _ in conn.notifies():
                        self._wake.set()
            except Exception as exc:  # the safety-net poll keeps dialing meanwhile
                log.warning("pg.listen_failed reason=%s retry_in=%ss", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    # ------------------------------------------------------------------ dialing

    async def _dial_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            pause = self.store_health.wait_before_retry(loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait() if not pause else self._stopping.wait(),
                                       pause or POLL_INTERVAL)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                if self.store_health.down:
                    await self._after_store_outage()
                if not self.ami.connected:
                    continue
                await self._place_calls()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                delay = self.store_health.failed(exc, loop.time())
                log.warning("store.unavailable dialing_paused_for=%.1fs reason=%s", delay, self.store_health.reason)

    async def _until_store_answers(self, work: Callable[[], Any], stop: asyncio.Event) -> bool:
        """Run `work` in a thread until the store takes it (backoff between tries); False if stopped first."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.to_thread(work)
                self.store_health.recovered()
                return True
            except Exception as exc:
                if not is_outage(exc):
                    raise
                delay = self.store_health.failed(exc, loop.time())
                log.warning("store.unavailable retry_in=%.1fs reason=%s", delay, self.store_health.reason)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return False

    async def _after_store_outage(self) -> None:
        """The store answers again: renew our leases, give back claims whose Originate never went out.

        Run by the dial loop (no claim in progress) as a write queued behind every update learned so
        far: an open attempt of ours the tracker does not follow can then only be a claim the outage
        cut off before its Originate.
        """
        tracked = set(self.tracker.active)
        now = self.clock.now()
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def settle() -> None:
            self._renew_leases(now)
            orphans = [a for a in attempt_store.open_attempts(self.db, self.pbx, daemon_id=self.daemon_id)
                       if a.attempt_id not in tracked and a.state is AttemptState.CLAIMED]
            count = attempt_store.end_undialed(self.db, orphans, at=now, center_zone=self.center_zone)
            self._loop.call_soon_threadsafe(lambda: done.done() or done.set_result(count))
        self._queue_write(settle)
        given_back = await done
        self.store_health.recovered()
        log.info("store.recovered claims_given_back=%s", given_back)

    async def _place_calls(self) -> None:
        while not self._stopping.is_set() and self.ami.connected:
            now = self.clock.now()
            free = self.board.available(now)
            if self.shared_operators and free:   # not those another daemon is dialing for
                elsewhere = await asyncio.to_thread(operator_holds.held_elsewhere, self.db, self.pbx,
                                                    self.daemon_id, now)
                mine = await asyncio.to_thread(operator_holds.mine, self.db, self.pbx, self.daemon_id)
                self.board.align({a: i for a, i in mine.items() if a in self.tracker.active})
                free = self.board.available(now)
                free = [interface for interface in free if interface not in elsewhere]
            if calls_to_place(len(free), limit=1) == 0:
                return
            claim = await asyncio.to_thread(claim_next, self.db, daemon_id=self.daemon_id, now=now,
                                            center_zone=self.center_zone, operators=free, pbx=self.pbx)
            if claim is None:
                return
            self.stats.claimed += 1
            wanted = claim.operator_interface
            if self.shared_operators:
                wanted = wanted if wanted in free else (free[0] if free else None)
            operator = self.board.reserve(claim.attempt_id, wanted, now)
            if operator is not None and self.shared_operators and not await asyncio.to_thread(
                    operator_holds.take, self.db, self.pbx, operator, daemon_id=self.daemon_id,
                    attempt_id=claim.attempt_id, until=claim.lease_expires_at, now=now):
                self.board.release(claim.attempt_id)   # another daemon took this operator a moment ago
                operator = None
            if operator is None:   # the board changed while we claimed: give the lead back
                await self._settle_undialed(claim)
                return
            async with self._placing:
                await self._originate(claim, operator if claim.operator_interface else None)

    async def _originate(self, claim: Claim, operator: str | None) -> None:
        dial = self.settings.dial
        number = format_for_dialing(claim.phone_e164, dial.number_format)
        request = OriginateRequest.build(dial, attempt_id=claim.attempt_id, lead_id=claim.lead_id, number=number,
                                         timeout_seconds=claim.ring_timeout_seconds, operator=operator,
                                         id_prefix=self.pbx)
        now = self.clock.now()
        self._channel_ids[claim.attempt_id] = request.channel_id
        self.tracker.track(claim.attempt_id, action_id=request.action_id, at=now, channel_id=request.channel_id,
                           lead_id=claim.lead_id)
        try:
            caller_id = await asyncio.to_thread(attempt_store.mark_dialing, self.db, claim.attempt_id,
                                                action_id=request.action_id, channel_id=request.channel_id,
                                                channel=request.channel, number=number,
                                                caller_ids=self.settings.ledger.caller_ids,   # issue 19
                                                default_caller_id=dial.caller_id)
        except Exception:   # not dialed: the claim is given back once the store answers (_after_store_outage)
            self._untrack(claim.attempt_id)
            raise
        request = dataclasses.replace(request, caller_id=caller_id)
        self.stats.max_in_progress = max(self.stats.max_in_progress, len(self.tracker.active))
        try:
            if self.on_originate is not None:
                self.on_originate(claim)
            await self.ami.originate(request)
        except AmiActionError as exc:
            self.stats.originate_failed += 1
            self.metrics.on_originate(claim, "refused", self.clock.now())
            log.warning("originate.refused attempt_id=%s lead_id=%s reason=%s", claim.attempt_id, claim.lead_id,
                        exc.reason)
            self._handle(self.tracker.originate_failed(claim.attempt_id, self.clock.now(), exc.reason))
            return
        except AmiNotConnected as exc:
            # never written to the socket: Asterisk knows nothing of it. Not an attempt; the lead is
            # dialable again as soon as the connection is back
            log.warning("originate.not_sent attempt_id=%s lead_id=%s reason=%s", claim.attempt_id, claim.lead_id, exc)
            self._untrack(claim.attempt_id)
            await self._settle_undialed(claim)
            return
        except AmiError as exc:
            # Lost connection or timeout: it may or may not have been placed. Never re-sent:
            # reconciliation (CoreShowChannels by our ChannelId) settles it.
            log.warning("originate.unconfirmed attempt_id=%s lead_id=%s reason=%s", claim.attempt_id,
                        claim.lead_id, exc)
            self.metrics.on_originate(claim, "unconfirmed", self.clock.now())
            return
        self.stats.originated += 1
        self.metrics.on_originate(claim, "sent", self.clock.now())
        log.info("originate.sent attempt_id=%s lead_id=%s tier=%s operator=%s phone=%s", claim.attempt_id,
                 claim.lead_id, claim.tier, operator or "queue", mask_phone(claim.phone_e164))
        self._handle(self.tracker.originated(claim.attempt_id, self.clock.now()))

    def _untrack(self, attempt_id: int) -> None:
        self.tracker.forget(attempt_id)
        self.board.release(attempt_id)
        self._channel_ids.pop(attempt_id, None)
        self._release_holds([attempt_id])

    def _release_holds(self, attempt_ids: list[int]) -> None:
        if self.shared_operators and attempt_ids:
            self._queue_write(lambda: operator_holds.release(self.db, attempt_ids))

    async def _settle_undialed(self, claim: Claim) -> None:
        open_ = attempt_store.OpenAttempt(claim.attempt_id, claim.lead_id, AttemptState.CLAIMED,
                                          None, None, self.clock.now())
        await asyncio.to_thread(attempt_store.end_undialed, self.db, [open_], at=self.clock.now(),
                                center_zone=self.center_zone)

    async def _cancel_unanswered(self) -> None:
        for attempt_id in list(self.tracker.active):
            state = self.tracker.state_of(attempt_id)
            channel_id = self._channel_ids.get(attempt_id)
            if state in (AttemptState.CLAIMED, AttemptState.ORIGINATED, AttemptState.RINGING) and channel_id:
                self.tracker.cancel_requested(attempt_id)
                with contextlib.suppress(AmiError):
                    await self.ami.hangup(channel_id)
        deadline = asyncio.get_running_loop().time() + 5
        while self.tracker.active and asyncio.get_running_loop().time() < deadline and self.ami.connected:
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ events in

    async def _on_event(self, event: AmiEvent) -> None:
        now = self.clock.now()
        if isinstance(event, Connected):
            self.metrics.ami_connects.inc()
            asyncio.create_task(self._after_connect(), name="after-connect")
        elif isinstance(event, LoginFailed):
            log.error("ami.login_failed server=%s: %s", self.pbx, event.message)
        elif isinstance(event, QueueMemberStatus):
            if event.queue == self.settings.dial.queue:
                self.board.member_status(event.interface, event.member_name, _member_status(event.status),
                                         event.paused, event.in_call)
                self._log_presence(now)
                self._wake.set()
        elif isinstance(event, QueueMemberPause):
            if event.queue == self.settings.dial.queue:
                self.board.paused(event.interface, event.paused)
                self._log_presence(now)
                log.info("operator.%s interface=%s reason=%s", "paused" if event.paused else "resumed",
                         event.interface, event.reason or "-")
                self._wake.set()
        elif isinstance(event, AgentConnect):
            self.board.connected(event.interface)
        elif isinstance(event, AgentComplete):
            self.board.completed(event.interface, now + timedelta(seconds=self.settings.dial.wrapup_limit_seconds))
        self._handle(self.tracker.feed(event))

    def _handle(self, updates: list[AttemptUpdate]) -> None:
        """Tracker updates: release operators held by calls that are over, queue the store write."""
        if not updates:
            return
        self._release_holds([u.attempt_id for u in updates if u.state.value == "ended"])
        for update in updates:
            if update.state.value == "connected" and self.shared_operators:
                self._queue_write(lambda a=update.attempt_id, i=update.fields.get("operator_interface"):
                                  operator_holds.connected(self.db, self.pbx, a, i))
            if update.state.value == "connected" and update.fields.get("operator_interface"):
                interface = update.fields["operator_interface"]
                self.board.connected(interface, update.attempt_id)
                self._wrapups[update.attempt_id] = interface
            if update.state.value == "ended":
                self.board.release(update.attempt_id)
                self._channel_ids.pop(update.attempt_id, None)
                self.tracker.forget(update.attempt_id)
                self.stats.ended += 1
                key = update.result.value if update.result else "unknown"
                self.stats.results[key] = self.stats.results.get(key, 0) + 1
                self.metrics.on_result(key)
                if update.result is None or update.result.value != "connected":
                    self._wrapups.pop(update.attempt_id, None)
                else:
                    interface = self._wrapups.get(update.attempt_id) or update.fields.get("operator_interface")
                    if interface:
                        self.board.completed(interface, update.at + timedelta(
                            seconds=self.settings.dial.wrapup_limit_seconds))
        batch = list(updates)
        self._queue_write(lambda: self._store(batch))
        # console (issue 6): screen pops, sent once the CONNECTED write is stored (the card and a disposition see it)
        pops = self.console_hub.pops_of(batch)
        if pops:
            self._queue_write(lambda: self.console_hub.publish_from_thread(pops))
        self._wake.set()

    def _store(self, updates: list[AttemptUpdate]) -> None:
        ended = attempt_store.store_updates(self.db, updates, center_zone=self.center_zone,
                                            wrapup_limit_seconds=self.settings.dial.wrapup_limit_seconds,
                                            now=self.clock.now())
        if ended and self._sender is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._sender.wake)

    async def _writer(self) -> None:
        """One writer, in order: an attempt's transitions reach the store as they happened.

        A write the store cannot take now (outage) is tried again, with backoff, until it can: a
        result is never dropped while the process lives, and later writes wait behind it.
        """
        loop = asyncio.get_running_loop()
        while True:
            job = await self._writes.get()
            try:
                while True:
                    try:
                        await asyncio.to_thread(job)
                        break
                    except Exception as exc:
                        if not is_outage(exc):
                            log.exception("store.write_failed (a bug, not an outage: not retried)")
                            break
                        delay = self.store_health.failed(exc, loop.time())
                        log.warning("store.write_retry in=%.1fs pending=%s reason=%s", delay, self._writes_pending,
                                    self.store_health.reason)
                        await asyncio.sleep(delay)
            except Exception:
                self.metrics.store_errors.labels("write").inc()
                log.exception("store.write_failed (will be settled by reconciliation)")
            finally:
                self._writes_pending -= 1
                self._writes.task_done()

    def _log_presence(self, now: datetime) -> None:
        """Operators who became working, paused or offline: one row each, written behind the calls' writes."""
        changes = self.presence_log.changes(self.board.presences(), now)
        if changes:
            self._queue_write(lambda c=tuple(changes): record_presence(self.db, self.pbx, c))

    def _queue_write(self, job: Callable[[], Any]) -> None:
        self._writes_pending += 1
        self._writes.put_nowait(job)

    def health_report(self) -> dict[str, Any]:
        """Why the daemon is degraded, for GET /health: store down, AMI down, results not yet written."""
        now = asyncio.get_running_loop().time() if self._loop is None else self._loop.time()
        reasons = []
        store = self.store_health.report(now)
        if not store["ok"]:
            reasons.append(f"store unavailable for {store['down_for_seconds']} s ({store['reason']}): "
                           "dialing paused, results held in memory and retried")
        if not self.ami.connected:
            reasons.append(f"no AMI connection to {self.pbx}: dialing paused")
        if self._writes_pending:
            reasons.append(f"{self._writes_pending} call updates waiting to be written")
        if not self.ready.is_set():
            reasons.append("starting: adopting the calls in progress")
        return {"ready": self.ready.is_set(), "degraded": reasons, "store": store, "ami_connected": self.ami.connected,
                "writes_pending": self._writes_pending, "calls_in_progress": len(self.tracker.active)}

    async def _after_connect(self) -> None:
        """On (re)connect: read the operators' queue, and settle calls Asterisk no longer has."""
        try:
            snapshot = await self.ami.queue_status(self.settings.dial.queue)
            self.board.reset([Presence(m.interface, m.member_name, _member_status(m.status), m.paused, m.in_call)
                              for m in snapshot.members if m.queue == self.settings.dial.queue])
            self._log_presence(self.clock.now())
            log.info("queue.status queue=%s members=%s available=%s", self.settings.dial.queue,
                     len(snapshot.members), len(self.board.available(self.clock.now())))
            await self._reconcile()
            # a call whose Originate was on its way when the link broke is within the reconcile grace now
            self._reconcile_again_at = asyncio.get_running_loop().time() + RECONCILE_AFTER_CONNECT
        except AmiError as exc:
            log.warning("ami.after_connect_failed reason=%s", exc)
        self._wake.set()

    async def _reconcile(self) -> None:
        async with self._placing:   # every tracked call's Originate answered before the snapshot is asked
            channels = await self.ami.core_show_channels()
            record = None
            if self.cdr is not None:   # faults (issue 11): read AFTER the snapshot, so a call gone from it has its CDR
                await asyncio.to_thread(self.cdr.read_new)
                record = self.cdr.facts_for
            self._handle(self.tracker.reconcile(channels, self.clock.now(), pbx_record=record))

    # ------------------------------------------------------------------ periodic work

    async def _jobs(self) -> None:
        loop = asyncio.get_running_loop()
        next_sla = next_reconcile = next_lease = loop.time()
        while not self._stopping.is_set():
            await asyncio.sleep(JOB_INTERVAL)
            now = self.clock.now()
            with contextlib.suppress(Exception):
                await self._finish_wrapups(now)
            if loop.time() >= next_sla:
                next_sla = loop.time() + SLA_CHECK_INTERVAL
                try:
                    await self._sla_alerts(now)
                    await self._watch_alerts(now)
                except Exception:
                    log.exception("sla.check_failed")
            if loop.time() >= next_lease:
                next_lease = loop.time() + LEASE_RENEW_INTERVAL
                try:
                    await asyncio.to_thread(self._renew_leases, now)
                except Exception:
                    log.exception("lease.renew_failed")
            if self._reconcile_again_at is not None:   # faults (issue 11): a second look after a reconnect
                next_reconcile, self._reconcile_again_at = min(next_reconcile, self._reconcile_again_at), None
            if loop.time() >= next_reconcile and self.ami.connected:
                next_reconcile = loop.time() + RECONCILE_INTERVAL
                with contextlib.suppress(AmiError):
                    await self._reconcile()

    def _renew_leases(self, now: datetime) -> None:
        with self.db.write() as session:
            renew_leases(session, self.daemon_id, now)
        if self.shared_operators:
            operator_holds.renew(self.db, self.pbx, self.daemon_id, now + current_policy(self.db).lease)

    async def _finish_wrapups(self, now: datetime) -> None:
        from dialer.dispositions import expire_wrapups
        await asyncio.to_thread(expire_wrapups, self.db, now, self.settings.dial.wrapup_limit_seconds)
        if not self._wrapups:
            return
        # only calls that are over: a disposition recorded mid-call must not end a wrap-up not yet begun
        over = [a for a in self._wrapups if a not in self.tracker.active]
        done = await asyncio.to_thread(attempt_store.finished_wrapups, self.db, over, now)
        for attempt_id in done:
            interface = self._wrapups.pop(attempt_id, None)
            if interface:
                self.board.wrapup_done(interface)
                self._wake.set()

    async def _sla_alerts(self, now: datetime) -> None:
        """Once per lead: a log line, and the lead's sla_at_risk / sla_breached alert (dialer/alerts)."""
        from dialer.alerts.watch import sla_alerts

        def at_risk():
            with self.db.write() as session:
                risks = leads_at_risk(session, now, center_zone=self.center_zone)
                fresh = [r for r in risks if r.lead_id not in self._alerted]
                mark_sla_alerted(session, [r.lead_id for r in fresh], now)
                sla_alerts(session, risks, now)   # alerts (issue 14): in the same transaction
                return fresh
        risks = await asyncio.to_thread(at_risk)
        for risk in risks:
            self._alerted.add(risk.lead_id)
            self.stats.alerts += 1
            self.metrics.sla_at_risk.inc()
            log.warning("sla.at_risk lead_id=%s deadline=%s", risk.lead_id, risk.deadline)

    async def _watch_alerts(self, now: datetime) -> None:
        """alerts (issue 14): ami_down after alerts.ami_down_seconds without AMI; today's abandon rate."""
        from dialer.alerts.watch import abandon_alert, ami_down_alert
        if self.ami.connected:
            self._ami_down_since = None
        elif self._ami_down_since is None:
            self._ami_down_since = now
        since = self._ami_down_since
        down = since is not None and (now - since).total_seconds() >= self.settings.alerts.ami_down_seconds

        look_at_abandons = now >= self._next_abandon_check
        if look_at_abandons:
            self._next_abandon_check = now + timedelta(seconds=60)
        if not down and not look_at_abandons:
            return

        def raise_them():
            with self.db.write() as session:
                if down:
                    ami_down_alert(session, self.pbx, since, now)
                if look_at_abandons:
                    abandon_alert(session, now, self.settings)
        await asyncio.to_thread(raise_them)

    # ------------------------------------------------------------------ hosted services

    async def _start_http(self):
        import socket
        import uvicorn
        from dialer.web.app import create_app
        from dialer.web.server import server_config
        app = create_app(self.settings, self.db, self.intake, self.clock)
        app.state.daemon_health = self.health_report   # faults (issue 11): GET /health says why degraded
        self.app = app
        for extra in _optional_routers(self):
            app.include_router(extra)
        from dialer.metrics.http import count_webhook_requests, metrics_router   # metrics (issue 17)
        count_webhook_requests(app, self.metrics)
        if self.settings.metrics.enabled and not self.settings.metrics.port:
            app.include_router(metrics_router(self.metrics))
        elif self.settings.metrics.enabled:
            from dialer.metrics.http import serve_separately
            self.metrics_server = serve_separately(self.metrics, self.settings.metrics.host,
                                                   self.settings.metrics.port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.http.host, self.http_port))
        except OSError as exc:  # port in use, address not on this host: one line, exit code 1
            sock.close()
            from kernel.errors import DialerError
            raise DialerError(f"cannot listen for HTTP on {self.settings.http.host}:{self.http_port}: "
                              f"{exc.strerror or exc} (set http.port or --port)") from None
        host, port = sock.getsockname()[:2]
        self.http_url = f"http://{host}:{port}"
        server = uvicorn.Server(server_config(app, host, port, log_level="warning"))
        server.install_signal_handlers = lambda: None   # the daemon owns SIGINT/SIGTERM
        server.capture_signals = contextlib.nullcontext  # uvicorn >= 0.29
        self._server_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        for _ in range(500):
            if server.started or self._server_task.done():
                break
            await asyncio.sleep(0.01)
        if self._server_task.done():
            self._server_task.result()
        return server

    def _start_scheduler(self):
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from dialer.crm.export import catch_up_missed_export, schedule_nightly_export
        from dialer.recordings.files import schedule_retention
        scheduler = AsyncIOScheduler(timezone=self.center_zone)
        schedule_nightly_export(scheduler, self.db, self.settings, self.clock)
        schedule_retention(scheduler, self.settings, self.clock)   # recordings (issue 14)
        from dialer.housekeeping.prune import schedule_housekeeping   # housekeeping (issue 17)
        schedule_housekeeping(scheduler, self.db, self.settings, self.clock)
        if self.settings.reports.schedule:   # scheduled reports (issue 14)
            from dialer.reports.schedule import ReportMailer, catch_up, schedule_reports
            self._report_mailer = ReportMailer(self.db, self.settings, self.clock)
            schedule_reports(scheduler, self._report_mailer)
            asyncio.get_running_loop().run_in_executor(None, _quietly, catch_up, self.db, self.settings,
                                                       self.clock.now())
        scheduler.start()
        asyncio.get_running_loop().run_in_executor(None, _quietly, catch_up_missed_export, self.db, self.settings,
                                                   self.clock)
        return scheduler

    def _start_feeds(self) -> dict[str, asyncio.Task]:
        from leads.sources.feed import FeedPoller, HttpFeed

        async def poll(feed) -> None:
            async with HttpFeed(feed) as source:   # its HTTP client is closed when the daemon stops
                await FeedPoller(feed, source, self.intake, self.db, self.clock).run(self._stopping)
        return {f"feed:{feed.name}": asyncio.create_task(poll(feed), name=f"feed:{feed.name}")
                for feed in self.settings.feeds}

    def _start_connector(self) -> dict[str, asyncio.Task]:
        # crm connectors (issue 20): the chosen CRM's leads, polled like a feed
        from dialer.crm.connectors import chosen, lead_source
        from leads.sources.feed import FeedPoller
        if chosen(self.settings) is None:
            return {}

        async def poll() -> None:
            async with httpx.AsyncClient() as client:
                feed, source = lead_source(self.settings, client)
                await FeedPoller(feed, source, self.intake, self.db, self.clock).run(self._stopping)
        return {"connector": asyncio.create_task(poll(), name="connector")}

    def _start_sender(self) -> asyncio.Task | None:
        from dialer.crm.connectors import sink_factory
        factory = sink_factory(self.settings)   # crm connectors (issue 20)
        if not self.settings.crm.webhook_url and factory is None:
            return None
        from dialer.crm.sender import OutboxSender
        from dialer.recordings.links import public_base
        self._sender = OutboxSender(self.db, self.settings.crm, self.clock, random.Random(), sink_factory=factory,
                                    recording_base=public_base(self.settings))
        return asyncio.create_task(self._sender.run(self._stopping), name="crm")


def _optional_routers(daemon: Daemon) -> list[Any]:
    # console (issue 6): the operator console; its sign-in is who records a disposition
    from dialer.console.routes import Console
    from dialer.console.switchboard import AsteriskSwitchboard
    console = Console(daemon.db, daemon.clock, daemon.settings, daemon.console_hub,
                      AsteriskSwitchboard(daemon.board, daemon.ami, daemon.settings.dial.queue),
                      stopping=daemon._stopping)
    daemon.console = console   # service (issue 17): SIGHUP re-reads its scripts catalog
    routers = [console.router]
    if daemon.settings.bitrix24.webhook_url:   # crm connectors (issue 20): Bitrix24's outgoing webhook
        from dialer.crm.bitrix24.events import events_router
        routers.append(events_router(daemon.settings.bitrix24, daemon.intake, daemon.clock))
    try:
        from dialer.web.dispositions import dispositions_router
    except ImportError:
        return routers
    routers.append(dispositions_router(daemon.db, daemon.clock, daemon.settings,
                                       operator_identity=console.operator_identity,   # console (issue 6)
                                       on_outcome=lambda *_: daemon._sender.wake() if daemon._sender else None))
    from dialer.chains.web import unsubscribe_router   # touch chains (issue 19)
    routers.append(unsubscribe_router(daemon.db, daemon.clock))
    return routers


def _start_chains(daemon: Daemon) -> dict[str, asyncio.Task]:
    """Touch chains (issue 19): enrol, queue and send e-mails; a broken catalog stops e-mail, not calls."""
    if not daemon.settings.chains.enabled or not daemon.settings.chains.smtp_host:
        return {}
    from dialer.chains.catalog import catalog_directory, load_catalog
    from dialer.chains.mailer import EmailSender
    from kernel.errors import UsageError
    try:
        catalog = load_catalog(catalog_directory(daemon.settings.chains.directory))
    except UsageError as exc:
        log.error("chains.not_started reason=%s", exc)
        return {}
    sender = EmailSender(daemon.db, daemon.settings.chains, daemon.clock, random.Random())
    return {"chains": asyncio.create_task(sender.run(catalog, daemon._stopping), name="chains")}


def _start_alerts(daemon: Daemon) -> dict[str, asyncio.Task]:
    """alerts (issue 14): group and deliver alerts; a broken channel delays alerts, never calls."""
    from dialer.alerts.watch import settings_webhook_rules
    from dialer.alerts.worker import AlertWorker
    _quietly(settings_webhook_rules, daemon.db, daemon.settings, daemon.clock.now())
    worker = AlertWorker(daemon.db, daemon.settings, daemon.clock, random.Random())
    return {"alerts": asyncio.create_task(worker.run(daemon._stopping), name="alerts")}


async def _send_reports(mailer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        _ = await asyncio.to_thread(_quietly, mailer.send_due)
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(1.0, mailer.settings.alerts.poll_seconds))
        except TimeoutError:
            pass


def _metrics_for(daemon: Daemon):
    # metrics (issue 17): one registry per daemon; counters fed by hooks, gauges read live on scrape
    from dialer.metrics.registry import DialerMetrics
    metrics = DialerMetrics()
    metrics.observe_intake(daemon.intake)
    daemon.ami.on_action = metrics.on_ami_action
    metrics.watch_daemon(calls_in_progress=lambda: len(daemon.tracker.active),
                         operator_states=lambda: [p.state(daemon.clock.now()).value for p in daemon.board.presences()],
                         ami_connected=lambda: daemon.ami.connected)
    metrics.watch_store(daemon.db, daemon.clock, daemon.center_zone)
    return metrics


def _member_status(value: int | None) -> MemberStatus:
    try:
        return MemberStatus(int(value or 0))
    except ValueError:
        return MemberStatus.UNKNOWN


def _quietly(function, *args) -> None:
    try:
        function(*args)
    except Exception:
        log.exception("job.failed job=%s", getattr(function, "__name__", function))


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
