"""Delivers the outbox's `email` topic over SMTP: once per idempotency key, in order per lead, retried
with backoff, dead-lettered after chains.max_failures (the same bookkeeping as the CRM outcomes).

The Message-ID is derived from the idempotency key, so if the process dies after the server took an
e-mail but before it was marked sent, the retry carries the same Message-ID and mail clients show it
once. `send_due(now)` is one pass; `run(stop)` is the daemon's loop (chain tick, then a pass).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import random
import smtplib
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Mapping

from kernel.clock import Clock, require_aware
from kernel.db.engine import Database
from kernel.settings import ChainsSettings
from dialer.chains.catalog import Catalog
from dialer.crm.outbox import Topic, claim_due, mark_failed, mark_sent
from dialer.crm.sender import SendCounts, retry_delay

log = logging.getLogger("dialer.chains.mailer")

LEASE_MARGIN = timedelta(seconds=30)
# Unfolded headers up to RFC 5322's 998: the List-Unsubscribe URL stays on one line.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_message(payload: Mapping[str, Any], sent_at: datetime) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["From"] = payload["from"]
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = payload["message_id"]
    for name, value in (payload.get("headers") or {}).items():
        message[name] = value
    message["X-Dialer-Template"] = payload.get("template", "")
    message.set_content(payload["body"], charset="utf-8")
    return message


class SmtpMailer:
    def __init__(self, settings: ChainsSettings) -> None:
        self.settings = settings

    def open(self) -> smtplib.SMTP:
        s = self.settings
        client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        if s.smtp_starttls:
            client.starttls(context=ssl.create_default_context())
        if s.smtp_username:
            client.login(s.smtp_username, s.smtp_password)
        return client


class EmailSender:
    def __init__(self, db: Database, settings: ChainsSettings, clock: Clock, rng: random.Random | None = None,
                 batch_size: int = 100) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.smtp = SmtpMailer(settings)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    def send_due(self, now: datetime | None = None) -> SendCounts:
        """One pass over the e-mails due now; SMTP errors count as failed deliveries, never raise."""
        now = now or self.clock.now()
        require_aware(now)
        if not self.enabled:
            return SendCounts()
        lease = now + timedelta(seconds=self.settings.smtp_timeout_seconds) + LEASE_MARGIN
        with self.db.write() as session:
            due = claim_due(session, now, lease, self.batch_size, topic=Topic.EMAIL)
        if not due:
            return SendCounts()
        counts = SendCounts()
        client: smtplib.SMTP | None = None
        try:
            for delivery in due:
                try:
                    if client is None:
                        client = self.smtp.open()
                    message = build_message(delivery.payload, now)
                    client.send_message(message, from_addr=delivery.payload["from"],
                                        to_addrs=[delivery.payload["to"]])
                except (smtplib.SMTPException, OSError) as exc:
                    counts += self._failed(delivery.id, f"{type(exc).__name__}: {exc}", delivery.failures, now)
                    if not isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)):
                        client = _close(client)
                    continue
                with self.db.write() as session:
                    mark_sent(session, delivery.id, now)
                log.info("email.sent outbox_id=%s lead_id=%s template=%s", delivery.id, delivery.lead_id,
                         delivery.payload.get("template"))
                counts += SendCounts(sent=1)
        finally:
            _close(client)
        return counts

    def _failed(self, outbox_id: int, error: str, failures: int, now: datetime) -> SendCounts:
        s = self.settings
        retry_at = now + timedelta(seconds=retry_delay(failures + 1, s.retry_base_seconds, s.retry_max_seconds,
                                                       self.rng))
        with self.db.write() as session:
            status = mark_failed(session, outbox_id, error, retry_at, s.max_failures)
        log.warning("email.failed outbox_id=%s status=%s error=%s", outbox_id, status, error)
        return SendCounts(dead=1) if status == "dead" else SendCounts(retrying=1)

    async def run(self, catalog: Catalog, stop: asyncio.Event) -> None:
        """The daemon's loop: enrol and queue (store.tick), then deliver, every chains.poll_seconds."""
        from dialer.chains.store import tick
        while not stop.is_set():
            try:
                await asyncio.to_thread(tick, self.db, catalog, self.settings, self.clock.now())
                await asyncio.to_thread(self.send_due)
            except Exception:
                log.exception("chains.pass_failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_seconds)
            except TimeoutError:
                pass


def _close(client: smtplib.SMTP | None) -> None:
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
    return None
