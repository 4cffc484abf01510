"""Garbage into the connectors' entry points: never a traceback, every refusal with a reason."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from hypothesis import given, settings, strategies as st

from dialer.crm.bitrix24.events import events_router, parse_event
from dialer.crm.bitrix24.mapping import lead_as_item
from dialer.crm.retailcrm.mapping import order_as_lead
from kernel.clock import ManualClock
from kernel.settings import Bitrix24Settings
from tests.conftest import utc

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)
crm_objects = st.dictionaries(st.sampled_from(["id", "ID", "phone", "PHONE", "firstName", "NAME", "LAST_NAME",
                                               "number", "externalId", "customer", "COMMENTS", "UF_CRM_ORDER",
                                               "totalSumm", "site", "TITLE", "additionalPhone"]), json_values)


@given(crm_objects)
@settings(max_examples=300, deadline=None)
def test_any_crm_object_maps_to_a_feed_item_or_a_clear_refusal_never_a_crash(obj):
    for item in (order_as_lead(obj), lead_as_item(obj, "UF_CRM_ORDER")):
        assert isinstance(item, dict)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_event_body_parses(body):
    assert isinstance(parse_event(body), dict)


class _NoIntake:
    def submit(self, leads, now):
        raise AssertionError("nothing may be stored from garbage")


@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: ("event=ONCRMLEADADD&" + t).encode()))
@settings(max_examples=150, deadline=None)
def test_the_event_endpoint_answers_garbage_with_a_reason_and_never_a_5xx(body):
    app = FastAPI()
    app.include_router(events_router(Bitrix24Settings(webhook_url="http://127.0.0.1:9/rest/1/x/",
                                                      application_token="tok"), _NoIntake(),
                                     ManualClock(utc(2026, 12, 7, 9, 0))))

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/crm/bitrix24/events", content=body)

    response = asyncio.run(go())
    assert response.status_code < 500
    if response.status_code != 200:
        assert response.json()["reason"]
