"""RetailCRM connector against the contract stub (tests/crm_stubs/retailcrm.py): real HTTP, a real DB."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from dialer.crm import connectors
from dialer.crm.retailcrm import api as retail_api
from dialer.crm.retailcrm.connector import RetailCrmOrders, feed_settings
from dialer.crm.sender import OutboxSender
from dialer.dispositions import record_disposition
from kernel.clock import ManualClock
from kernel.db.models import Lead, OutboxMessage
from kernel.errors import SettingsError
from kernel.settings import load_settings
from leads.disposition import DispositionInput
from leads.intake import Intake
from leads.sources.feed import FeedPoller, read_cursor
from tests.conftest import utc
from tests.crm_stubs.retailcrm import RetailCrmStub
from tests.outcome_rows import add_attempt, add_operator

NOW = utc(2026, 12, 7, 9, 0)
STATUS_MAP = {"confirmed": "client-confirmed", "not_interested": "cancel-other", "callback": "call-later"}


@pytest.fixture
def crm():
    stub = RetailCrmStub(api_key="key-1").start()
    yield stub
    stub.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(retail_api, "RATE_LIMIT_BASE_SECONDS", 0.01)


def settings_for(stub: RetailCrmStub, **overrides):
    values = {"retailcrm.url": stub.url, "retailcrm.api_key": "key-1", "retailcrm.sites": "shop",
              "retailcrm.statuses": "new", "retailcrm.status_map": STATUS_MAP, "retailcrm.timeout_seconds": 2.0,
              "crm.retry_base_seconds": 1.0, "crm.retry_max_seconds": 2.0, **overrides}
    return load_settings(env={}, overrides=values)


async def poll(db, settings, clock) -> dict:
    async with httpx.AsyncClient() as client:
        source = RetailCrmOrders(settings.retailcrm, client)
        poller = FeedPoller(feed_settings(settings.retailcrm), source, Intake(db), db, clock)
        return (await poller.poll_once()).as_dict()


def stored(db) -> dict[str, str]:
    with db.read() as session:
        return dict(session.execute(select(Lead.source_item_id, Lead.order_number)
                                    .where(Lead.source == "feed:retailcrm")).tuples().all())


def test_orders_to_confirm_come_in_by_status_and_site_across_pages_then_history_adds_only_new_ones(db, crm):
    for i in range(1, 131):                      # 130 new orders of our store: two pages of 100
        crm.add_order(i, phone=f"+7912{i:07d}")
    crm.add_order(500, status="complete")        # another status
    crm.add_order(501, site="other-shop")         # another store
    settings, clock = settings_for(crm), ManualClock(NOW)

    report = asyncio.run(poll(db, settings, clock))
    assert report["error"] is None and report["new"] == 130
    got = stored(db)
    assert set(got) == {str(i) for i in range(1, 131)} and got["7"] == "7A"
    assert read_cursor(db, "feed:retailcrm") == f"history:{len(crm.history)}"

    crm.add_order(600, phone="+79990000600")      # created after the first read
    crm.set_status(500, "new")                   # moved back to "new": to confirm now
    crm.set_status(3, "complete")                # a change that is not ours to call
    crm.add_order(601, site="other-shop")
    report = asyncio.run(poll(db, settings, clock))
    assert report["error"] is None and report["new"] == 2 and report["already_stored"] == 0
    assert set(stored(db)) - {str(i) for i in range(1, 131)} == {"500", "600"}

    report = asyncio.run(poll(db, settings, clock))   # nothing changed: nothing stored, no error
    assert report["error"] is None and report["stored"] == 0


def test_a_wrong_key_and_the_request_limit_are_told_apart(db, crm):
    crm.add_order(1)
    clock = ManualClock(NOW)
    report = asyncio.run(poll(db, settings_for(crm, **{"retailcrm.api_key": "wrong"}), clock))
    assert "HTTP 403" in report["error"] and "apiKey" in report["error"] and stored(db) == {}

    crm.limit_next = 2                           # two 503s, then answers: retried with backoff
    report = asyncio.run(poll(db, settings_for(crm), clock))
    assert report["error"] is None and stored(db) == {"1": "1A"}
    # the 403, then the same call twice refused by the limit and once answered, then the orders
    assert crm.calls[:5] == ["GET /api/v5/orders/history"] * 4 + ["GET /api/v5/orders"]


def test_settings_refuse_an_unknown_disposition_and_two_crms_at_once(crm):
    with pytest.raises(SettingsError, match="status_map: 'sold'"):
        connectors.sink_factory(settings_for(crm, **{"retailcrm.status_map": {"sold": "complete"}}))
    with pytest.raises(SettingsError, match="both set"):
        connectors.chosen(settings_for(crm, **{"crm.webhook_url": "http://127.0.0.1:9/x"}))
    with pytest.raises(SettingsError, match="api_key is required"):
        connectors.sink_factory(settings_for(crm, **{"retailcrm.api_key": ""}))


def _confirm_first_lead(db, amount="2490.00") -> int:
    with db.read() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.source == "feed:retailcrm").order_by(Lead.id))
    operator = add_operator(db, NOW, name="Анна Иванова")
    attempt = add_attempt(db, lead_id, NOW, operator_id=operator, talk=timedelta(seconds=95))
    record_disposition(db, attempt, DispositionInput("confirmed", amount=amount, comment="доставка завтра"),
                       now=NOW, center_zone="Europe/Moscow", recorded_by="Анна Иванова", operator_id=operator)
    return lead_id


def sender(db, settings, clock) -> OutboxSender:
    return OutboxSender(db, settings.crm, clock, random.Random(3), sink_factory=connectors.sink_factory(settings))


def test_an_outcome_edits_its_order_once_across_an_outage_and_a_replay(db, crm):
    crm.add_order(41, number="41A")
    settings, clock = settings_for(crm, **{"retailcrm.sum_field": "confirmed_sum"}), ManualClock(NOW)
    asyncio.run(poll(db, settings, clock))
    _confirm_first_lead(db)
    out = sender(db, settings, clock)

    crm.stop()                                   # the CRM is down: the outcome waits, nothing lost
    counts = asyncio.run(out.send_due(NOW))
    assert (counts.sent, counts.retrying) == (0, 1) and crm.edits == []
    crm.start()
    counts = asyncio.run(out.send_due(NOW + timedelta(seconds=5)))
    assert counts.sent == 1

    order = crm.orders[41]
    assert order["status"] == "client-confirmed" and order["customFields"] == {"confirmed_sum": "2490.00"}
    assert "confirmed" in order["managerComment"] and "Анна Иванова" in order["managerComment"]
    assert "95 с" in order["managerComment"] and "доставка завтра" in order["managerComment"]
    assert len(crm.edits) == 1 and crm.edits[0]["by"] == "id" and crm.edits[0]["site"] == "shop"

    # A crash after the CRM took the edit but before we wrote "sent": the outcome is sent again.
    with db.write() as session:
        session.execute(update(OutboxMessage).values(status="pending", next_try_at=NOW))
    assert asyncio.run(out.send_due(NOW + timedelta(seconds=10))).sent == 1
    assert len(crm.edits) == 1 and order["managerComment"].count("outcome-") == 1


def test_a_refused_edit_is_retried_with_the_crms_reason_and_other_leads_outcomes_are_left_alone(db, crm):
    crm.add_order(7)
    settings, clock = settings_for(crm, **{"retailcrm.status_map": {"confirmed": " "}}), ManualClock(NOW)
    with pytest.raises(SettingsError):
        connectors.sink_factory(settings)
    settings = settings_for(crm)
    asyncio.run(poll(db, settings, clock))
    _confirm_first_lead(db)
    del crm.orders[7]                            # deleted in the CRM meanwhile: 404 Not found
    out = sender(db, settings, clock)
    assert asyncio.run(out.send_due(NOW)).retrying == 1
    with db.read() as session:
        error = session.scalar(select(OutboxMessage.last_error))
    assert "HTTP 404" in error and "Not found" in error


def test_connector_check_says_what_it_found_and_what_is_wrong_in_the_crms_words(tmp_path, crm):
    import os
    import subprocess
    import sys
    crm.add_order(1)
    crm.add_order(2, status="complete")
    env = {**os.environ, "DIALER_RETAILCRM_URL": crm.url, "DIALER_RETAILCRM_API_KEY": "key-1",
           "DIALER_RETAILCRM_SITES": "shop"}
    run = lambda e: subprocess.run([sys.executable, "-m", "cli", "connector", "check"], cwd=tmp_path, env=e,
                                   capture_output=True, text=True, timeout=60)
    good = run(env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "connector: retailcrm" in good.stdout and "orders to confirm now: 1" in good.stdout
    bad = run({**env, "DIALER_RETAILCRM_API_KEY": "nope"})
    assert bad.returncode == 1 and "apiKey" in bad.stdout and "Traceback" not in bad.stdout + bad.stderr
