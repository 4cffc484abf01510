"""Caller ID per attempt from the pool of the lead's source/product: the daemon against the simulated PBX
over real AMI/TCP; what each attempt stored is checked against the CallerID the PBX itself received."""

from __future__ import annotations

import asyncio

import pytest

from leads.caller_id import choose_caller_id, pool_for, with_number
from tests.daemon_harness import (all_ended, attempts, daemon_settings, leads, make_pbx, moscow_day_clock,
                                  post_leads, running_daemon, wait_until)

pytestmark = pytest.mark.timeout(180)

POOL = {"site-a/Чайник": ["+74951110001", "+74951110002"], "site-b": ["+74952220001"], "*": ["+74953330001"]}


def test_the_pool_is_chosen_by_source_and_product_and_stable_per_customer():
    assert pool_for(POOL, "site-a", "Чайник") == POOL["site-a/Чайник"]
    assert pool_for(POOL, "site-a", "Утюг") == POOL["*"]
    assert pool_for(POOL, "site-b", None) == POOL["site-b"]
    assert pool_for({}, "site-a", "Чайник") == ()
    picks = {choose_caller_id(POOL, "site-a", "Чайник", f"+7912000{i:04d}") for i in range(50)}
    assert picks == set(POOL["site-a/Чайник"])        # both numbers used, nothing else
    assert len({choose_caller_id(POOL, "site-a", "Чайник", "+79120000001") for _ in range(5)}) == 1
    assert with_number('"Shop" <74950000000>', "+74951110001") == '"Shop" <+74951110001>'


def test_each_attempt_shows_and_stores_a_number_of_its_pool(sqlite_db):
    db = sqlite_db
    sent = [{"phone": f"+7912555{i:04d}", "source": source, "product": product}
            for i, (source, product) in enumerate([("site-a", "Чайник")] * 4 + [("site-b", "Утюг")] * 2
                                                  + [("yandex", None)] * 2)]

    async def scenario():
        pbx = make_pbx([{"pattern": r"\+7912555.*", "outcome": "busy"}])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url.render_as_string(hide_password=False)), port,
                                   **{"ledger.caller_ids": POOL})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, sent)
                await wait_until(lambda: all_ended(db, len(sent)), 90, what="every attempt to end")
        finally:
            await pbx.stop()
        return pbx

    pbx = asyncio.run(scenario())
    shown_by_pbx = {record.action_id: record.caller_num for record in pbx.call_log}
    by_lead = {lead.id: lead for lead in leads(db)}
    checked = 0
    for attempt in attempts(db):
        lead = by_lead[attempt.lead_id]
        expected_pool = pool_for(POOL, lead.source, lead.product)
        assert attempt.caller_id in expected_pool
        assert attempt.caller_id == choose_caller_id(POOL, lead.source, lead.product, lead.phone_e164)
        assert shown_by_pbx[attempt.action_id] == attempt.caller_id
        checked += 1
    assert checked >= len(sent)
