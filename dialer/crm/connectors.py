"""Which CRM the daemon talks to, chosen by settings: the generic JSON push and feeds, RetailCRM or Bitrix24.

A connector is a source of leads (a feed PageSource polled by leads.sources.feed.FeedPoller) and a sink of
outcomes (an OutcomeSink for the outbox sender). At most one connector receives the outcomes.
"""

from __future__ import annotations

from typing import Callable

import httpx

from kernel.errors import SettingsError
from kernel.settings import Settings
from dialer.crm.sender import OutcomeSink


def chosen(settings: Settings) -> str | None:
    """'retailcrm', 'bitrix24' or None (the generic crm.webhook_url push, if any)."""
    on = [name for name, enabled in (("retailcrm", bool(settings.retailcrm.url)),
                                     ("bitrix24", bool(settings.bitrix24.webhook_url))) if enabled]
    if len(on) > 1:
        raise SettingsError("retailcrm.url and bitrix24.webhook_url are both set; outcomes go to one CRM, "
                            "keep one of them")
    if on and settings.crm.webhook_url:
        raise SettingsError(f"crm.webhook_url and the {on[0]} connector are both set; outcomes go to one CRM, "
                            "keep one of them")
    return on[0] if on else None


def sink_factory(settings: Settings) -> Callable[[httpx.AsyncClient], OutcomeSink] | None:
    name = chosen(settings)
    if name == "retailcrm":
        from dialer.crm.retailcrm.connector import RetailCrmSink, check_settings
        check_settings(settings.retailcrm)
        return lambda client: RetailCrmSink(settings.retailcrm, client)
    if name == "bitrix24":
        from dialer.crm.bitrix24.connector import Bitrix24Sink, check_settings as check_b24
        check_b24(settings.bitrix24)
        return lambda client: Bitrix24Sink(settings.bitrix24, client)
    return None


def lead_source(settings: Settings, client: httpx.AsyncClient):
    """(FeedSettings, PageSource) of the chosen connector, or None."""
    name = chosen(settings)
    if name == "retailcrm":
        from dialer.crm.retailcrm.connector import RetailCrmOrders, feed_settings
        return feed_settings(settings.retailcrm), RetailCrmOrders(settings.retailcrm, client)
    if name == "bitrix24":
        from dialer.crm.bitrix24.connector import Bitrix24Leads, feed_settings as b24_feed
        return b24_feed(settings.bitrix24), Bitrix24Leads(settings.bitrix24, client)
    return None
