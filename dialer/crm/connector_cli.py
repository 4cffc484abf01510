"""`dialer connector check`: can the chosen CRM be reached with these settings, and is the mapping sane."""

from __future__ import annotations

import asyncio

import httpx
import typer
from rich.console import Console

from kernel.errors import DialerError, SettingsError

app = typer.Typer(help="The CRM connector (Bitrix24 or RetailCRM): check the connection and the mapping.",
                  no_args_is_help=True)


async def _check(settings) -> list[str]:
    from dialer.crm import connectors
    name = connectors.chosen(settings)
    if name is None:
        raise SettingsError("no CRM connector is set: fill [bitrix24] webhook_url or [retailcrm] url")
    connectors.sink_factory(settings)            # the settings and the status map
    lines = [f"connector: {name}"]
    async with httpx.AsyncClient() as client:
        if name == "retailcrm":
            from dialer.crm.retailcrm.api import RetailCrmApi
            from dialer.crm.retailcrm.mapping import split_list
            s = settings.retailcrm
            api = RetailCrmApi(client, s.url, s.api_key, s.timeout_seconds)
            answer = await api.orders(page=1, limit=20, statuses=split_list(s.statuses), sites=split_list(s.sites))
            lines.append(f"orders to confirm now: {answer['pagination']['totalCount']}")
            await api.history(since_id=None, limit=20)
            lines.append("order history: readable")
        else:
            from dialer.crm.bitrix24.connector import Bitrix24Api
            s = settings.bitrix24
            api = Bitrix24Api(client, s.webhook_url, s.timeout_seconds)
            answer = await api.call("crm.lead.list", {"filter": {"STATUS_ID": s.lead_statuses.split(",")},
                                                      "select": ["ID"]})
            lines.append(f"leads to call now: {answer.get('total', len(answer.get('result') or ()))}")
            if not s.application_token:
                lines.append("warning: bitrix24.application_token is empty, every ONCRMLEADADD event is refused")
        mapped = ", ".join(f"{k} -> {v}" for k, v in (settings.retailcrm.status_map if name == "retailcrm"
                                                       else settings.bitrix24.status_map).items())
        lines.append(f"status map: {mapped or '(empty: outcomes only add a comment)'}")
    return lines


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Call the CRM once with the configured key and filters; say what is wrong in the CRM's words."""
    console = Console()
    try:
        settings = ctx.obj.settings if hasattr(ctx.obj, "settings") else _settings()
        for line in asyncio.run(_check(settings)):
            console.print(line)
    except (DialerError, KeyError, TypeError) as exc:   # SettingsError is a DialerError
        console.print(f"[red]connector check failed:[/red] {exc}")
        raise typer.Exit(1) from None


def _settings():
    from kernel.settings import load_settings
    return load_settings()
