"""The three ways a notice reaches a person: e-mail (SMTP, STARTTLS), Telegram (Bot API), a webhook."""

from __future__ import annotations

import asyncio
import email.policy
import json
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Mapping

import httpx

from kernel.errors import DialerError
from kernel.settings import Settings

TELEGRAM_LIMIT = 4096   # characters of one Telegram message


class NoticeFailed(DialerError):
    """The channel did not take the notice; retry_after: the channel said when to try again."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    starttls: bool
    username: str
    password: str
    timeout: float
    from_address: str
    ca_file: str = ""


def smtp_server(settings: Settings) -> SmtpServer | None:
    """alerts.smtp_* or, when alerts.smtp_host is empty, the chains' SMTP server."""
    a, c = settings.alerts, settings.chains
    if a.smtp_host:
        return SmtpServer(a.smtp_host, a.smtp_port, a.smtp_starttls, a.smtp_username, a.smtp_password,
                          a.timeout_seconds, a.from_address, a.smtp_ca_file)
    if c.smtp_host:
        return SmtpServer(c.smtp_host, c.smtp_port, c.smtp_starttls, c.smtp_username, c.smtp_password,
                          a.timeout_seconds, a.from_address)
    return None


def email_message(key: str, payload: Mapping[str, Any], sender: str, at: datetime) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = payload["recipient"]
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(at)
    # from the idempotency key: a retry after a lost reply carries the same Message-ID, clients show it once
    message["Message-ID"] = f"<{key}@dialer.alerts>"
    message["X-Dialer-Alert"] = payload["kind"]
    message.set_content(payload["text"], charset="utf-8")
    return message


def send_email(server: SmtpServer | None, key: str, payload: Mapping[str, Any], at: datetime) -> None:
    if server is None:
        raise NoticeFailed("no SMTP server: set alerts.smtp_host (or chains.smtp_host)")
    try:
        with smtplib.SMTP(server.host, server.port, timeout=server.timeout) as client:
            if server.starttls:
                client.starttls(context=ssl.create_default_context(cafile=server.ca_file or None))
            if server.username:
                client.login(server.username, server.password)
            client.send_message(email_message(key, payload, server.from_address, at),
                                from_addr=server.from_address, to_addrs=[payload["recipient"]])
    except smtplib.SMTPRecipientsRefused as exc:
        raise NoticeFailed(f"SMTP refused the recipient: {exc.recipients}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NoticeFailed(f"{type(exc).__name__}: {exc}") from None


async def send_telegram(client: httpx.AsyncClient, settings: Settings, payload: Mapping[str, Any]) -> None:
    a = settings.alerts
    if not a.telegram_bot_token:
        raise NoticeFailed("no Telegram bot: set alerts.telegram_bot_token")
    url = f"{a.telegram_api_url.rstrip('/')}/bot{a.telegram_bot_token}/sendMessage"
    text = payload["text"]
    if len(text) > TELEGRAM_LIMIT:
        text = text[:TELEGRAM_LIMIT - 1] + "…"
    body = {"chat_id": payload["recipient"], "text": text, "disable_web_page_preview": True}
    try:
        response = await client.post(url, json=body, timeout=a.timeout_seconds)
    except httpx.HTTPError as exc:
        raise NoticeFailed(f"Telegram: {type(exc).__name__}: {exc or 'connection failed'}") from None
    if response.status_code == 200:
        return
    description, retry_after = _telegram_error(response)
    if response.status_code == 429:
        raise NoticeFailed(f"Telegram: too many requests, retry after {retry_after} s", retry_after=retry_after)
    raise NoticeFailed(f"Telegram: HTTP {response.status_code}: {description}")


def _telegram_error(response: httpx.Response) -> tuple[str, float | None]:
    try:
        data = response.json()
    except (json.JSONDecodeError, ValueError):
        return response.text[:200], None
    retry = (data.get("parameters") or {}).get("retry_after") if isinstance(data, dict) else None
    try:
        retry = float(retry) if retry is not None else None
    except (TypeError, ValueError):
        retry = None
    return str(data.get("description", ""))[:200] if isinstance(data, dict) else "", retry


async def send_webhook(client: httpx.AsyncClient, settings: Settings, key: str, payload: Mapping[str, Any]) -> None:
    body = {"idempotency_key": key, "kind": payload["kind"], "count": payload["count"],
            "subject": payload["subject"], "text": payload["text"], "test": payload.get("test", False),
            "alerts": payload.get("alerts", [])}
    try:
        response = await client.post(payload["recipient"], content=json.dumps(body, ensure_ascii=False).encode(),
                                     headers={"Idempotency-Key": key,
                                              "Content-Type": "application/json; charset=utf-8"},
                                     timeout=settings.alerts.timeout_seconds)
    except httpx.HTTPError as exc:
        raise NoticeFailed(f"webhook: {type(exc).__name__}: {exc or 'connection failed'}") from None
    if not 200 <= response.status_code < 300:
        retry = response.headers.get("Retry-After")
        raise NoticeFailed(f"webhook: HTTP {response.status_code}: {response.text[:200]}",
                           retry_after=float(retry) if retry and retry.isdigit() else None)


async def deliver(client: httpx.AsyncClient, settings: Settings, key: str, payload: Mapping[str, Any],
                  at: datetime) -> None:
    channel = payload.get("channel")
    if channel == "email":
        await asyncio.to_thread(send_email, smtp_server(settings), key, payload, at)
    elif channel == "telegram":
        await send_telegram(client, settings, payload)
    elif channel == "webhook":
        await send_webhook(client, settings, key, payload)
    else:
        raise NoticeFailed(f"unknown channel {channel!r}", permanent=True)
