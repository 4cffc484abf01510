"""Bitrix24 connector against the contract stub (tests/crm_stubs/bitrix24.py): real HTTP, a real DB."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from dialer.crm import connectors
from dialer.crm.bitrix24 import connector as b24
from dialer.crm.bitrix24.mapping import query
from dialer.crm.sender import OutboxSender
from dialer.dispositions import record_disposition
from kernel.clock import ManualClock
from kernel.db.models import Lead, OutboxMessage
from kernel.errors import SettingsError
from kernel.settings import load_settings
from leads.disposition import DispositionInput
from leads.intake import Intake
from leads.sources.feed import FeedPoller
from tests.conftest import utc
from tests.crm_stubs.bitrix24 import Bitrix24Stub, nested
from tests.outcome_rows import add_attempt, add_operator

NOW = utc(2026, 12, 7, 9, 0)


@pytest.fixture
def crm():
    stub = Bitrix24Stub().start()
    yield stub
    stub.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(b24, "RATE_LIMIT_BASE_SECONDS", 0.01)


def settings_for(stub: Bitrix24Stub, **overrides):
    values = {"bitrix24.webhook_url": stub.url, "bitrix24.order_field": "UF_CRM_ORDER",
              "bitrix24.status_map": {"confirmed": "CONVERTED", "do_not_call": "JUNK"},
              "bitrix24.timeout_seconds": 2.0, "crm.retry_base_seconds": 1.0, "crm.retry_max_seconds": 2.0,
              **overrides}
    return load_settings(env={}, overrides=values)


async def poll(db, settings, clock) -> dict:
    async with httpx.AsyncClient() as client:
        feed, source = connectors.lead_source(settings, client)
        return (await FeedPoller(feed, source, Intake(db), db, clock).poll_once()).as_dict()


def stored(db) -> dict[str, tuple]:
    with db.read() as session:
        rows = session.execute(select(Lead.source_item_id, Lead.phone_e164, Lead.order_number)
                               .where(Lead.source == "feed:bitrix24"))
        return {r[0]: (r[1], r[2]) for r in rows}


def test_the_batch_query_string_round_trips_through_the_php_style_parser():
    params = {"id": "5", "fields": {"STATUS_ID": "JUNK", "COMMENT": "Итог: да & нет"}, "list": ["a", "b"]}
    assert nested(query(params)) == {"id": "5", "fields": {"STATUS_ID": "JUNK", "COMMENT": "Итог: да & нет"},
                                     "list": {"0": "a", "1": "b"}}


def test_new_leads_come_in_across_pages_and_a_later_change_is_caught_up(db, crm):
    for i in range(1, 61):                       # 60 new leads: pages of 50 by start/next
        crm.add_lead(i, phone=f"+7912{i:07d}", UF_CRM_ORDER=f"Z-{i}",
                     modified=f"2026-12-07T09:{i // 60:02d}:{i % 60:02d}+03:00")
    crm.add_lead(99, status="JUNK")
    crm.add_lead(61, modified="2026-12-07T09:30:00+03:00")["PHONE"] = []   # a lead without a phone
    settings, clock = settings_for(crm), ManualClock(NOW)
    report = asyncio.run(poll(db, settings, clock))
    assert report["error"] is None and report["new"] == 60 and report["invalid"] == 1
    assert stored(db)["61"] == (None, None) and stored(db)["7"] == ("+79120000007", "Z-7")
    crm.add_lead(100, phone="+79990000100", modified="2026-12-07T10:00:00+03:00")
    report = asyncio.run(poll(db, settings, clock))
    assert report["error"] is None and report["new"] == 1 and "100" in stored(db)


def test_query_limit_exceeded_is_retried_and_a_wrong_webhook_is_reported(db, crm):
    crm.add_lead(1)
    clock = ManualClock(NOW)
    crm.limit_next = 2
    assert asyncio.run(poll(db, settings_for(crm), clock))["error"] is None and set(stored(db)) == {"1"}
    assert crm.requests[:3] == ["crm.lead.list"] * 3
    wrong = settings_for(crm, **{"bitrix24.webhook_url": crm.url.replace("abc123", "nope")})
    assert "INVALID_CREDENTIALS" in asyncio.run(poll(db, wrong, clock))["error"]
    with pytest.raises(SettingsError, match="status_map: 'sold'"):
        connectors.sink_factory(settings_for(crm, **{"bitrix24.status_map": {"sold": "CONVERTED"}}))


def test_an_outcome_sets_status_opportunity_call_and_comment_once_across_an_outage_and_a_replay(db, crm):
    crm.add_lead(41, UF_CRM_ORDER="Z-41")
    settings, clock = settings_for(crm), ManualClock(NOW)
    asyncio.run(poll(db, settings, clock))
    with db.read() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.source_item_id == "41"))
    operator = add_operator(db, NOW, name="Анна Иванова")
    attempt = add_attempt(db, lead_id, NOW, operator_id=operator, talk=timedelta(seconds=95))
    record_disposition(db, attempt, DispositionInput("confirmed", amount="2490.00"), now=NOW,
                       center_zone="Europe/Moscow", recorded_by="Анна Иванова", operator_id=operator)
    out = OutboxSender(db, settings.crm, clock, random.Random(3), sink_factory=connectors.sink_factory(settings))

    crm.stop()
    assert asyncio.run(out.send_due(NOW)).retrying == 1
    crm.start()
    crm.limit_next = 1                           # the portal is busy once more: retried in place
    assert asyncio.run(out.send_due(NOW + timedelta(seconds=5))).sent == 1
    lead = crm.leads[41]
    assert lead["STATUS_ID"] == "CONVERTED" and lead["OPPORTUNITY"] == "2490.00"
    [comment] = crm.comments
    assert "confirmed" in comment["COMMENT"] and "Анна Иванова" in comment["COMMENT"] and "95" in comment["COMMENT"]
    [call] = crm.calls_registered.values()
    assert call["CRM_ENTITY_ID"] == "41" and call["finished"]["DURATION"] == "95"
    assert call["finished"]["STATUS_CODE"] == "200" and call["finished"]["RECORD_URL"].startswith("rec/")

    with db.write() as session:                  # a crash before we wrote "sent": sent again
        session.execute(update(OutboxMessage).values(status="pending", next_try_at=NOW))
    assert asyncio.run(out.send_due(NOW + timedelta(seconds=10))).sent == 1
    assert len(crm.comments) == 1 and len(crm.updates) == 1 and len(crm.calls_registered) == 1


def test_a_status_the_portal_does_not_know_is_refused_with_its_words_and_nothing_half_done_counts(db, crm):
    crm.add_lead(5)
    settings, clock = settings_for(crm, **{"bitrix24.status_map": {"confirmed": "SOLD"}}), ManualClock(NOW)
    asyncio.run(poll(db, settings, clock))
    with db.read() as session:
        lead_id = session.scalar(select(Lead.id))
    operator = add_operator(db, NOW)
    attempt = add_attempt(db, lead_id, NOW, operator_id=operator)
    record_disposition(db, attempt, DispositionInput("confirmed", amount="100"), now=NOW,
                       center_zone="Europe/Moscow", recorded_by="x", operator_id=operator)
    out = OutboxSender(db, settings.crm, clock, random.Random(3), sink_factory=connectors.sink_factory(settings))
    assert asyncio.run(out.send_due(NOW)).retrying == 1
    with db.read() as session:
        error = session.scalar(select(OutboxMessage.last_error))
    assert "Status not found: SOLD" in error and crm.comments == []   # halted before the comment



def test_oncrmleadadd_is_answered_at_once_checked_by_token_and_the_lead_is_fetched_and_dialed(db):
    from tests.daemon_harness import (attempts, daemon_settings, make_pbx, moscow_day_clock, running_daemon,
                                      wait_until)
    stub = Bitrix24Stub().start()
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    async def scenario():
        pbx = make_pbx([{"pattern": r"\+7912770.*", "outcome": "busy"}])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url.render_as_string(hide_password=False)), port, **{
            "bitrix24.webhook_url": stub.url, "bitrix24.application_token": "app-token",
            "bitrix24.order_field": "UF_CRM_ORDER", "bitrix24.interval_seconds": 3600.0})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                # the catch-up's first pass finds nothing; the next one is an hour away
                await wait_until(lambda: "crm.lead.list" in stub.requests, 10, what="the first catch-up")
                stub.add_lead(77, phone="+79127700077", name="Ольга", UF_CRM_ORDER="Z-77")
                url = f"{daemon.http_url}/crm/bitrix24/events"
                async with httpx.AsyncClient() as client:
                    wrong = await client.post(url, headers=form, content="event=ONCRMLEADADD&data[FIELDS][ID]=77"
                                                                         "&auth[application_token]=nope")
                    assert wrong.status_code == 403 and "application_token" in wrong.json()["reason"]
                    bad = await client.post(url, headers=form, content=b"\xff\xfe%%%&event=ONCRMDEALADD"
                                                                       b"&auth[application_token]=app-token")
                    assert bad.status_code == 400 and "not handled" in bad.json()["reason"]
                    gone = await client.post(url, headers=form, content="event=ONCRMLEADADD&data[FIELDS][ID]=999"
                                                                        "&auth[application_token]=app-token")
                    assert gone.status_code == 200       # answered at once; the fetch fails later, logged
                    good = await client.post(url, headers=form, content="event=ONCRMLEADADD&data[FIELDS][ID]=77"
                                                                        "&auth[application_token]=app-token")
                    assert good.status_code == 200 and good.json() == {"accepted": True, "lead": "77"}
                await wait_until(lambda: len(attempts(db)) >= 1, 30, what="lead 77 dialed")
        finally:
            await pbx.stop()

    try:
        asyncio.run(scenario())
        assert stub.requests.count("crm.lead.get") == 2
        assert stored(db) == {"77": ("+79127700077", "Z-77")}
    finally:
        stub.stop()
