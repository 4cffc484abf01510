"""RetailCRM as a source of leads (a feed PageSource) and a sink of outcomes (the sender's `deliver`).

Leads in. The stored cursor says where the source is:
- none yet: remember the newest history id (the history's last page), then read the orders to confirm;
- `orders:<page>:<history id>`: the orders list (filter[statuses][], filter[sites][]) page by page;
- `history:<id>`: after the list, only changes since that id (`filter[sinceId]`): an order created, or
  moved into a status to confirm, is fetched with `filter[ids][]` and stored.
The order's RetailCRM id is the item id, so an order seen both in the list and in the history is stored
once; its number is the lead's order number (dedup variant A).

Outcomes out: each outcome of a lead from this source is one `POST /orders/{id}/edit` (by=id): the
status from retailcrm.status_map, a line appended to the manager comment, the corrected sum in a custom
field if retailcrm.sum_field names one. The line carries the outcome's idempotency key; the current
comment is read first, so a replay after a crash between the edit and our bookkeeping changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import httpx

from kernel.errors import SettingsError
from kernel.settings import FeedSettings, RetailCrmSettings
from leads.sources.feed import FeedError, FeedPage, FeedUnreachable
from dialer.crm.retailcrm.api import CrmApiError, RetailCrmApi
from dialer.crm.retailcrm.mapping import check_status_map, edit_form, order_as_lead, order_edit, split_list
from dialer.crm.sender import DeliveryFailed

log = logging.getLogger("dialer.crm.retailcrm")

SOURCE = "retailcrm"           # leads are stored with source "feed:retailcrm"
PAGE_LIMIT = 100               # the largest page RetailCRM gives (20, 50 or 100)


def check_settings(settings: RetailCrmSettings) -> None:
    if not settings.url:
        raise SettingsError("retailcrm.url is required (the address of the RetailCRM account, "
                            "e.g. https://myshop.retailcrm.ru)")
    if not settings.api_key:
        raise SettingsError("retailcrm.api_key is required (Settings > Integration > API access keys)")
    if not split_list(settings.statuses):
        raise SettingsError("retailcrm.statuses must name at least one status code to confirm, e.g. new")
    check_status_map(settings.status_map, "retailcrm")


def feed_settings(settings: RetailCrmSettings) -> FeedSettings:
    """The feed poller's view of this source (id key `id`, our field names already)."""
    return FeedSettings(name=SOURCE, url=settings.url, interval_seconds=settings.interval_seconds,
                        timeout_seconds=settings.timeout_seconds)


class RetailCrmOrders:
    """A PageSource: pages of orders to confirm, as feed items."""

    def __init__(self, settings: RetailCrmSettings, client: httpx.AsyncClient) -> None:
        check_settings(settings)
        self.settings = settings
        self.api = RetailCrmApi(client, settings.url, settings.api_key, settings.timeout_seconds)
        self.statuses = split_list(settings.statuses)
        self.sites = split_list(settings.sites)

    async def fetch(self, cursor: str | None) -> FeedPage:
        try:
            return await self._fetch(cursor)
        except CrmApiError as exc:
            raise FeedUnreachable(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedError(f"RetailCRM answered in a shape we do not know ({type(exc).__name__}: {exc})") from None

    async def _fetch(self, cursor: str | None) -> FeedPage:
        if cursor is None:
            head = await self.api.history(since_id=None, limit=PAGE_LIMIT)
            last_page = int(head["pagination"]["totalPageCount"] or 1)
            tail = head if last_page <= 1 else await self.api.history(since_id=None, limit=PAGE_LIMIT,
                                                                      page=last_page)
            newest = max((int(h["id"]) for h in tail.get("history") or ()), default=0)
            return await self._orders_page(1, newest)
        kind, _, rest = cursor.partition(":")
        if kind == "orders":
            page, _, newest = rest.partition(":")
            return await self._orders_page(int(page), int(newest))
        if kind == "history":
            return await self._history_page(int(rest))
        raise FeedError(f"RetailCRM: stored cursor {cursor!r} is not ours; set it with `dialer feeds set-cursor`")

    async def _orders_page(self, page: int, newest: int) -> FeedPage:
        answer = await self.api.orders(page=page, limit=PAGE_LIMIT, statuses=self.statuses, sites=self.sites)
        total = int(answer["pagination"]["totalPageCount"] or 0)
        items = tuple(order_as_lead(o) for o in answer.get("orders") or ())
        after = f"orders:{page + 1}:{newest}" if page < total else f"history:{newest}"
        return FeedPage(items, after)

    async def _history_page(self, since: int) -> FeedPage:
        answer = await self.api.history(since_id=since, limit=PAGE_LIMIT)
        entries = answer.get("history") or ()
        if not entries:
            return FeedPage((), f"history:{since}")
        wanted: list[int] = []
        for entry in entries:
            order = entry.get("order") or {}
            if self.sites and order.get("site") not in self.sites:
                continue
            new_status = entry.get("newValue") if entry.get("field") == "status" else None
            code = new_status.get("code") if isinstance(new_status, dict) else None
            if entry.get("created") or code in self.statuses:
                if order.get("id") is not None and int(order["id"]) not in wanted:
                    wanted.append(int(order["id"]))
        newest = max(int(e["id"]) for e in entries)
        items: tuple[dict[str, Any], ...] = ()
        if wanted:
            found = await self.api.orders(page=1, limit=PAGE_LIMIT, statuses=self.statuses, sites=self.sites,
                                          ids=wanted)
            items = tuple(order_as_lead(o) for o in found.get("orders") or ())
        return FeedPage(items, f"history:{newest}")


class RetailCrmSink:
    """The outbox sender's CRM: `deliver(key, payload)` edits the order the lead came from."""

    def __init__(self, settings: RetailCrmSettings, client: httpx.AsyncClient) -> None:
        check_settings(settings)
        self.settings = settings
        self.api = RetailCrmApi(client, settings.url, settings.api_key, settings.timeout_seconds)
        self.status_map = check_status_map(settings.status_map, "retailcrm")

    async def deliver(self, key: str, payload: Mapping[str, Any]) -> None:
        if payload.get("source") != f"feed:{SOURCE}" or not payload.get("source_item_id"):
            log.info("retailcrm.skip key=%s source=%s (not an order from RetailCRM)", key, payload.get("source"))
            return
        ref = str(payload["source_item_id"])
        try:
            current = await self.api.order(ref, by="id", site=None)
            order = order_edit(payload, current.get("managerComment"), self.status_map, self.settings.sum_field)
            if order is None:
                log.info("retailcrm.already_there key=%s order_id=%s", key, ref)
                return
            await self.api.edit(ref, edit_form(order, "id", current.get("site")))
        except CrmApiError as exc:
            raise DeliveryFailed(str(exc)) from None
        except (KeyError, TypeError, AttributeError) as exc:
            raise DeliveryFailed(f"RetailCRM answered in a shape we do not know ({exc})") from None
