"""The alert loop: group pending alerts into notices (dispatch.py), then deliver the due notices, each
once per idempotency key, retried with backoff (a channel's own retry-after honoured), dead-lettered
after alerts.max_failures. `run_once(now)` is one pass (tests, `dialer alerts send`); `run(stop)` is
the daemon's loop."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from kernel.clock import Clock, require_aware
from kernel.db.engine import Database
from kernel.settings import Settings
from dialer.alerts.channels import NoticeFailed, deliver
from dialer.alerts.dispatch import DispatchCounts, dispatch
from dialer.crm.outbox import Topic, claim_due, mark_failed, mark_sent
from dialer.crm.sender import SendCounts, retry_delay

log = logging.getLogger("dialer.alerts.worker")

LEASE_MARGIN = timedelta(seconds=30)


def console_link(settings: Settings) -> str:
    from dialer.recordings.links import public_base
    base = settings.alerts.console_url.rstrip("/") or public_base(settings)
    return base + "/console/teamlead"


class AlertWorker:
    def __init__(self, db: Database, settings: Settings, clock: Clock, rng: random.Random | None = None,
                 batch_size: int = 50) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.zone = ZoneInfo(settings.center_timezone)

    def dispatch(self, now: datetime) -> DispatchCounts:
        from sqlalchemy import select
        from kernel.db.models import OutboxMessage
        with self.db.read() as session:   # most passes find nothing: no write transaction for them
            if session.scalar(select(OutboxMessage.id).where(OutboxMessage.topic == Topic.ALERT.value,
                                                             OutboxMessage.status == "pending").limit(1)) is None:
                return DispatchCounts()
        with self.db.write() as session:
            return dispatch(session, now, link=console_link(self.settings), zone=self.zone)

    async def run_once(self, now: datetime | None = None) -> tuple[DispatchCounts, SendCounts]:
        now = require_aware(now or self.clock.now())
        grouped = await asyncio.to_thread(self.dispatch, now)
        async with httpx.AsyncClient(follow_redirects=False) as client:
            sent = await self.send_due(client, now)
        return grouped, sent

    async def send_due(self, client: httpx.AsyncClient, now: datetime) -> SendCounts:
        a = self.settings.alerts
        lease = now + timedelta(seconds=a.timeout_seconds) + LEASE_MARGIN
        total = SendCounts()
        tried: set[int] = set()
        while True:
            batch = await asyncio.to_thread(self._claim, now, lease, frozenset(tried))
            if not batch:
                return total
            tried.update(d.id for d in batch)
            for delivery in batch:
                try:
                    await deliver(client, self.settings, delivery.key, delivery.payload, now)
                except NoticeFailed as exc:
                    total += await asyncio.to_thread(self._failed, delivery, exc, now)
                    continue
                await asyncio.to_thread(self._sent, delivery.id, delivery.payload)
                total += SendCounts(sent=1)

    def _claim(self, now, lease, tried):
        with self.db.write() as session:
            return claim_due(session, now, lease, self.batch_size, tried, topic=Topic.ALERT_NOTICE)

    def _sent(self, notice_id: int, payload) -> None:
        with self.db.write() as session:
            mark_sent(session, notice_id, self.clock.now())
        log.info("alert.sent notice_id=%s kind=%s channel=%s count=%s", notice_id, payload.get("kind"),
                 payload.get("channel"), payload.get("count"))

    def _failed(self, delivery, exc: NoticeFailed, now: datetime) -> SendCounts:
        a = self.settings.alerts
        failures = delivery.failures + 1
        if exc.retry_after is not None:
            delay = max(exc.retry_after, 0.0)
        else:
            delay = retry_delay(failures, a.retry_base_seconds, a.retry_max_seconds, self.rng)
        with self.db.write() as session:
            status = mark_failed(session, delivery.id, str(exc), now + timedelta(seconds=delay),
                                 1 if exc.permanent else a.max_failures)
        log.warning("alert.failed notice_id=%s status=%s retry_in=%.1fs error=%s", delivery.id, status, delay, exc)
        return SendCounts(dead=1) if status == "dead" else SendCounts(retrying=1)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while not stop.is_set():
                try:
                    now = self.clock.now()
                    await asyncio.to_thread(self.dispatch, now)
                    await self.send_due(client, now)
                except Exception:   # a store outage pauses alerts; the next pass retries
                    log.exception("alerts.pass_failed")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.settings.alerts.poll_seconds)
                except TimeoutError:
                    pass
