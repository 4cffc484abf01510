"""Delivers outbox outcomes to the CRM webhook: once per idempotency key, in order per lead, retried
with exponential backoff and jitter, dead-lettered after crm.max_failures.

`send_due(now)` is one pass (tests and `dialer crm send --once` drain with it); `run(stop_event)` is the
daemon's loop: a pass, then sleep until the next retry is due, the poll interval ends, or `wake()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable, Mapping, Protocol

import httpx
from sqlalchemy.exc import SQLAlchemyError

from kernel.clock import Clock, require_aware
from kernel.db.engine import Database
from kernel.errors import DialerError, SettingsError
from kernel.settings import CrmSettings
from dialer.crm.outbox import (OUTCOME_FIELDS, Delivery, OutboxStatus, claim_due, mark_failed, mark_sent,
                               next_due_at)
from dialer.recordings.links import with_recording_url

log = logging.getLogger("dialer.crm.sender")

LEASE_MARGIN = timedelta(seconds=30)   # on top of the HTTP timeout: how long a claimed outcome stays ours
JITTER = 0.2                            # each delay is the nominal one +-20%


@dataclass(frozen=True)
class SendCounts:
    sent: int = 0
    retrying: int = 0   # failed, will be tried again
    dead: int = 0       # failed for the last allowed time

    @property
    def tried(self) -> int:
        return self.sent + self.retrying + self.dead

    def __add__(self, other: "SendCounts") -> "SendCounts":
        return SendCounts(self.sent + other.sent, self.retrying + other.retrying, self.dead + other.dead)


def retry_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before the next try after `failures` failed ones: base * 2^(failures-1), capped, +-20%."""
    nominal = min(cap, base * 2 ** max(0, failures - 1))
    return nominal * (1 - JITTER + 2 * JITTER * rng.random())


def check_field_map(field_map: Mapping[str, Any]) -> dict[str, str]:
    """crm.field_map: our field name -> the CRM's; an empty name leaves the field out."""
    for ours, theirs in field_map.items():
        if ours not in OUTCOME_FIELDS:
            raise SettingsError(f"crm.field_map: {ours!r} is not an outcome field; known: "
                                + ", ".join(OUTCOME_FIELDS))
        if not isinstance(theirs, str):
            raise SettingsError(f"crm.field_map.{ours} must be the CRM's field name as a string")
    return dict(field_map)


def crm_body(payload: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    """The outcome under the CRM's field names."""
    body = {}
    for key, value in payload.items():
        name = field_map.get(key, key)
        if name:
            body[name] = value
    return body


class DeliveryFailed(DialerError):
    """The CRM did not take the outcome."""


class HttpCrm:
    """The CRM webhook: one JSON POST per outcome, the idempotency key in a header and in the body."""

    def __init__(self, client: httpx.AsyncClient, settings: CrmSettings) -> None:
        self._client = client
        self._settings = settings
        self._field_map = check_field_map(settings.field_map)

    async def deliver(self, key: str, payload: Mapping[str, Any]) -> None:
        body = json.dumps(crm_body(payload, self._field_map), ensure_ascii=False).encode("utf-8")
        headers = {"Idempotency-Key": key, "Content-Type": "application/json; charset=utf-8"}
        if self._settings.token:
            headers["Authorization"] = f"Bearer {self._settings.token}"
        timeout = self._settings.timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.post(self._settings.webhook_url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryFailed(f"no answer within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:300]}")


class OutcomeSink(Protocol):
    """Where outcomes go: HttpCrm (the generic push) or a CRM connector (dialer/crm/<crm>/)."""

    async def deliver(self, key: str, payload: Mapping[str, Any]) -> None: ...


class OutboxSender:
    def __init__(self, db: Database, settings: CrmSettings, clock: Clock, rng: random.Random | None = None, *,
                 batch_size: int = 200,
                 sink_factory: Callable[[httpx.AsyncClient], OutcomeSink] | None = None,
                 recording_base: str = "") -> None:
        check_field_map(settings.field_map)
        self.recording_base = recording_base   # recordings (issue 14): `recording` sent as a console URL
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.sink_factory = sink_factory
        self._crm: OutcomeSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_url) or self.sink_factory is not None

    # ------------------------------------------------------------ one pass

    async def send_due(self, now: datetime | None = None) -> SendCounts:
        """Deliver every outcome due at `now` (heads of their lead's queue; a lead's next outcome follows
        in the same pass once the earlier one is delivered). Each outcome is tried at most once a pass."""
        if not self.enabled:
            return SendCounts()
        now = require_aware(now or self.clock.now())
        async with self._connected() as crm:
            return await self._drain(crm, now)

    async def _drain(self, crm: OutcomeSink, now: datetime) -> SendCounts:
        total = SendCounts()
        tried: set[int] = set()
        gate = asyncio.Semaphore(self.settings.concurrency)
        lease = timedelta(seconds=self.settings.timeout_seconds) + LEASE_MARGIN
        while True:
            batch = await asyncio.to_thread(self._claim, now, now + lease, frozenset(tried))
            if not batch:
                return total
            tried.update(d.id for d in batch)

            async def attempt(delivery: Delivery) -> tuple[Delivery, str | None]:
                async with gate:
                    try:
                        await crm.deliver(delivery.key, with_recording_url(delivery.payload, self.recording_base)
                                          if self.recording_base else delivery.payload)
                    except DeliveryFailed as exc:
                        return delivery, str(exc)
                    return delivery, None

            results = await asyncio.gather(*(attempt(d) for d in batch))
            total += await asyncio.shield(asyncio.to_thread(self._record, results))

    def _claim(self, now: datetime, lease_until: datetime, tried: frozenset[int]) -> list[Delivery]:
        with self.db.write() as session:
            return claim_due(session, now, lease_until, self.batch_size, tried)

    def _record(self, results: list[tuple[Delivery, str | None]]) -> SendCounts:
        sent = retrying = dead = 0
        at = self.clock.now()
        with self.db.write() as session:
            for delivery, error in results:
                if error is None:
                    mark_sent(session, delivery.id, at)
                    sent += 1
                    log.info("crm.sent outbox_id=%s lead_id=%s key=%s", delivery.id, delivery.lead_id, delivery.key)
                    continue
                failures = delivery.failures + 1
                delay = retry_delay(failures, self.settings.retry_base_seconds, self.settings.retry_max_seconds,
                                    self.rng)
                status = mark_failed(session, delivery.id, error, at + timedelta(seconds=delay),
                                     self.settings.max_failures)
                if status == OutboxStatus.DEAD.value:
                    dead += 1
                    from dialer.alerts.raising import crm_dead_letter_alert   # alerts (issue 14)
                    crm_dead_letter_alert(session, delivery.id, delivery.lead_id, delivery.payload, error, at)
                    log.error("crm.dead outbox_id=%s lead_id=%s key=%s failures=%d error=%s", delivery.id,
                              delivery.lead_id, delivery.key, failures, error)
                else:
                    retrying += 1
                    log.warning("crm.failed outbox_id=%s lead_id=%s key=%s failures=%d retry_in=%.1fs error=%s",
                                delivery.id, delivery.lead_id, delivery.key, failures, delay, error)
        return SendCounts(sent, retrying, dead)

    # ------------------------------------------------------------ the loop

    async def run(self, stop_event: asyncio.Event) -> None:
        """Deliver until stop_event is set; a pass in progress finishes first."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        log.info("crm.sender started url=%s", self.settings.webhook_url or "(none: outbox only)")
        async with self._connected():
            while not stop_event.is_set():
                try:
                    await self.send_due(self.clock.now())
                    pause = await asyncio.to_thread(self._pause_seconds)
                except (SQLAlchemyError, DialerError) as exc:
                    log.error("crm.sender pass failed, next in %.1fs: %s", self.settings.poll_seconds, exc)
                    pause = self.settings.poll_seconds
                await self._sleep(stop_event, pause)
        log.info("crm.sender stopped")

    def wake(self) -> None:
        """Look at the outbox now (an outcome was just written). Safe from any thread."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            loop.call_soon_threadsafe(wakeup.set)

    def _pause_seconds(self) -> float:
        if not self.enabled:
            return self.settings.poll_seconds
        with self.db.read() as session:
            due = next_due_at(session)
        if due is None:
            return self.settings.poll_seconds
        return min(self.settings.poll_seconds, max(0.0, (due - self.clock.now()).total_seconds()))

    async def _sleep(self, stop_event: asyncio.Event, seconds: float) -> None:
        assert self._wakeup is not None
        waiters = [asyncio.create_task(stop_event.wait()), asyncio.create_task(self._wakeup.wait())]
        try:
            await asyncio.wait(waiters, timeout=max(seconds, 0.01), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._wakeup.clear()

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[OutcomeSink]:
        """The HTTP client: reused for the loop's lifetime, or opened for one pass."""
        if self._crm is not None:
            yield self._crm
            return
        limits = httpx.Limits(max_connections=self.settings.concurrency,
                              max_keepalive_connections=self.settings.concurrency)
        async with httpx.AsyncClient(timeout=self.settings.timeout_seconds, limits=limits,
                                     follow_redirects=False) as client:
            self._crm = self.sink_factory(client) if self.sink_factory else HttpCrm(client, self.settings)
            try:
                yield self._crm
            finally:
                self._crm = None
