"""Bitrix24 as a source of leads (a feed PageSource over crm.lead.list) and a sink of outcomes.

Leads in: `crm.lead.list` filtered by STATUS_ID (bitrix24.lead_statuses) and `>=DATE_MODIFY` the last
seen modification time, ordered by DATE_MODIFY, paged by `start`/`next` (50 a page). The cursor is
`<DATE_MODIFY>;<start>`. The lead's ID is the item id, so a lead read again is never stored twice.

Outcomes out: one `crm.timeline.comment.list` (is this outcome's key on the timeline already?) and one
`batch` (halt on the first error): crm.lead.update (STATUS_ID by bitrix24.status_map, OPPORTUNITY from
the sum), telephony.externalcall.register + finish (if bitrix24.register_calls), and the timeline
comment last, which marks the outcome as delivered. QUERY_LIMIT_EXCEEDED (HTTP 503) is retried here
with backoff; anything else failed is the outbox's to retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Mapping

import httpx

from kernel.errors import DialerError, SettingsError
from kernel.settings import Bitrix24Settings, FeedSettings
from leads.sources.feed import FeedError, FeedPage, FeedUnreachable
from dialer.crm.bitrix24.mapping import lead_as_item, outcome_batch
from dialer.crm.retailcrm.mapping import check_status_map, split_list
from dialer.crm.sender import DeliveryFailed

log = logging.getLogger("dialer.crm.bitrix24")

SOURCE = "bitrix24"
RATE_LIMIT_RETRIES = 4
RATE_LIMIT_BASE_SECONDS = 0.5
EPOCH = "2000-01-01T00:00:00+03:00"


class Bitrix24Error(DialerError):
    pass


def check_settings(settings: Bitrix24Settings) -> None:
    if not settings.webhook_url:
        raise SettingsError("bitrix24.webhook_url is required (Developer resources > Other > Inbound webhook)")
    check_status_map(settings.status_map, "bitrix24")


def feed_settings(settings: Bitrix24Settings) -> FeedSettings:
    return FeedSettings(name=SOURCE, url=settings.webhook_url, interval_seconds=settings.interval_seconds,
                        timeout_seconds=settings.timeout_seconds)


class Bitrix24Api:
    def __init__(self, client: httpx.AsyncClient, webhook_url: str, timeout: float) -> None:
        self._client = client
        self._base = webhook_url.rstrip("/") + "/"
        self._timeout = timeout

    async def call(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = await self._client.post(f"{self._base}{method}.json", json=params,
                                                   timeout=self._timeout)
            except httpx.TimeoutException:
                raise Bitrix24Error(f"Bitrix24 {method}: no answer within {self._timeout:g} s") from None
            except httpx.HTTPError as exc:
                raise Bitrix24Error(f"Bitrix24 {method}: cannot be reached: {exc or type(exc).__name__}") from None
            try:
                body = json.loads(response.content)
            except (ValueError, RecursionError):
                body = None
            if isinstance(body, dict) and body.get("error") == "QUERY_LIMIT_EXCEEDED" \
                    and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(RATE_LIMIT_BASE_SECONDS * 2 ** attempt)
                continue
            if isinstance(body, dict) and "error" not in body and response.status_code < 400:
                return body
            if isinstance(body, dict):
                raise Bitrix24Error(f"Bitrix24 {method}: HTTP {response.status_code}: {body.get('error')}: "
                                    f"{body.get('error_description') or ''}".rstrip(": "))
            raise Bitrix24Error(f"Bitrix24 {method}: HTTP {response.status_code}: not a Bitrix24 answer: "
                                f"{response.text[:120]!r}")
        raise AssertionError("unreachable")


class Bitrix24Leads:
    """A PageSource over crm.lead.list."""

    def __init__(self, settings: Bitrix24Settings, client: httpx.AsyncClient) -> None:
        check_settings(settings)
        self.settings = settings
        self.api = Bitrix24Api(client, settings.webhook_url, settings.timeout_seconds)

    async def fetch(self, cursor: str | None) -> FeedPage:
        since, _, start = (cursor or f"{EPOCH};0").partition(";")
        params = {"filter": {">=DATE_MODIFY": since, "STATUS_ID": split_list(self.settings.lead_statuses)},
                  "order": {"DATE_MODIFY": "ASC", "ID": "ASC"}, "select": ["*", "UF_*", "PHONE"],
                  "start": int(start or 0)}
        try:
            answer = await self.api.call("crm.lead.list", params)
            leads = answer["result"]
            items = tuple(lead_as_item(lead, self.settings.order_field) for lead in leads)
        except Bitrix24Error as exc:
            raise FeedUnreachable(str(exc)) from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise FeedError(f"Bitrix24 answered in a shape we do not know ({exc})") from None
        if answer.get("next"):
            return FeedPage(items, f"{since};{answer['next']}")
        newest = max((str(lead.get("DATE_MODIFY")) for lead in leads if lead.get("DATE_MODIFY")), default=since)
        return FeedPage(items, f"{max(newest, since)};0")


class Bitrix24Sink:
    def __init__(self, settings: Bitrix24Settings, client: httpx.AsyncClient) -> None:
        check_settings(settings)
        self.settings = settings
        self.status_map = check_status_map(settings.status_map, "bitrix24")
        self.api = Bitrix24Api(client, settings.webhook_url, settings.timeout_seconds)

    async def deliver(self, key: str, payload: Mapping[str, Any]) -> None:
        if payload.get("source") != f"feed:{SOURCE}" or not payload.get("source_item_id"):
            log.info("bitrix24.skip key=%s source=%s (not a lead from Bitrix24)", key, payload.get("source"))
            return
        lead_id = str(payload["source_item_id"])
        try:
            seen = await self.api.call("crm.timeline.comment.list", {
                "filter": {"ENTITY_ID": lead_id, "ENTITY_TYPE": "lead"}, "select": ["ID", "COMMENT"]})
            if any(f"[{key}]" in str(c.get("COMMENT") or "") for c in seen.get("result") or ()):
                log.info("bitrix24.already_there key=%s lead=%s", key, lead_id)
                return
            cmd = outcome_batch(payload, lead_id, self.status_map, register_calls=self.settings.register_calls,
                                user_id=self.settings.user_id)
            answer = await self.api.call("batch", {"halt": 1, "cmd": cmd})
        except Bitrix24Error as exc:
            raise DeliveryFailed(str(exc)) from None
        errors = (answer.get("result") or {}).get("result_error") or {}
        if errors:
            raise DeliveryFailed("Bitrix24 batch: " + "; ".join(
                f"{name}: {e.get('error')}: {e.get('error_description')}" if isinstance(e, dict) else f"{name}: {e}"
                for name, e in errors.items()))
