"""Bitrix24's outgoing webhook (ONCRMLEADADD): answered at once, the lead then fetched with crm.lead.get.

Bitrix24 posts form-encoded `event=ONCRMLEADADD&data[FIELDS][ID]=123&auth[application_token]=...`.
The token must be bitrix24.application_token; the answer (200) goes before the lead is fetched, so a
slow portal never makes Bitrix24 give up on us. A fetch that fails is logged and left to the periodic
crm.lead.list catch-up, which stores the lead on its next pass (the lead ID makes that once-only).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse

from kernel.clock import Clock
from kernel.settings import Bitrix24Settings
from leads.intake import Intake
from leads.sources.json_lead import MalformedLead, lead_from_json
from dialer.crm.bitrix24.connector import SOURCE, Bitrix24Api, Bitrix24Error
from dialer.crm.bitrix24.mapping import lead_as_item
from dialer.crm.retailcrm.mapping import split_list

log = logging.getLogger("dialer.crm.bitrix24.events")

EVENTS = ("ONCRMLEADADD",)
MAX_BODY = 64 * 1024


def parse_event(body: bytes) -> dict[str, Any]:
    """The form body as nested dicts (PHP-style keys); cp1251 accepted when it is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("cp1251", errors="replace")
    out: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        names = re.findall(r"[^\[\]]+", key) or [key]
        node = out
        for name in names[:-1]:
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        node[names[-1]] = value
    return out


def events_router(settings: Bitrix24Settings, intake: Intake, clock: Clock) -> APIRouter:
    router = APIRouter()

    async def fetch_and_store(lead_id: str) -> None:
        try:
            async with httpx.AsyncClient() as client:
                api = Bitrix24Api(client, settings.webhook_url, settings.timeout_seconds)
                lead = (await api.call("crm.lead.get", {"id": lead_id}))["result"]
            if lead.get("STATUS_ID") not in split_list(settings.lead_statuses):
                log.info("bitrix24.event_lead_not_to_call lead=%s status=%s", lead_id, lead.get("STATUS_ID"))
                return
            item = lead_as_item(lead, settings.order_field)
            item.pop("id", None)
            lead_in = lead_from_json(item, fixed_source=f"feed:{SOURCE}", source_item_id=lead_id)
            await asyncio.to_thread(intake.submit, [lead_in], clock.now())
        except (Bitrix24Error, MalformedLead, KeyError, TypeError, AttributeError) as exc:
            log.warning("bitrix24.event_fetch_failed lead=%s error=%s (the catch-up will take it)", lead_id, exc)

    @router.post("/crm/bitrix24/events")
    async def event(request: Request, background: BackgroundTasks) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"accepted": False, "reason": "body too large"}, status_code=413)
        form = parse_event(body)
        auth = form.get("auth") if isinstance(form.get("auth"), dict) else {}
        token = str(auth.get("application_token") or "")
        if not settings.application_token or not hmac.compare_digest(token, settings.application_token):
            return JSONResponse({"accepted": False, "reason": "application_token does not match "
                                 "bitrix24.application_token"}, status_code=403)
        name = str(form.get("event") or "").upper()
        if name not in EVENTS:
            return JSONResponse({"accepted": False, "reason": f"event {name or '(none)'} is not handled; "
                                 "one of: " + ", ".join(EVENTS)}, status_code=400)
        data = form.get("data") if isinstance(form.get("data"), dict) else {}
        fields = data.get("FIELDS") if isinstance(data.get("FIELDS"), dict) else {}
        lead_id = str(fields.get("ID") or "")
        if not lead_id.isdigit():
            return JSONResponse({"accepted": False, "reason": "data[FIELDS][ID] must be the lead's number"},
                                status_code=400)
        background.add_task(fetch_and_store, lead_id)
        return JSONResponse({"accepted": True, "lead": lead_id})

    return router
