"""End to end: the daemon against the simulated PBX over real AMI/TCP, a real database, real HTTP.

Leads go in through the webhook; calls are placed by Originate; results come from the AMI events
and are recorded on the attempts and the leads (DESIGN §4).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kernel.clock import ManualClock
from dialer.pbx_sim.operators import OperatorSpec
from leads.attempt import AttemptState
from tests.daemon_harness import (all_ended, attempts, daemon_settings, leads, make_pbx, moscow_day_clock,
                                  post_leads, running_daemon, wait_until)

pytestmark = pytest.mark.timeout(180)

# The customer behind each number (the simulated PBX matches the number as dialed, E.164).
BEHAVIOURS = {
    "+79121000001": ({"outcome": "answer", "after": 1, "talk": 2}, "connected"),
    "+79121000002": ({"outcome": "busy"}, "busy"),
    "+79121000003": ({"outcome": "no_answer"}, "no_answer"),
    "+79121000004": ({"outcome": "congestion"}, "congestion"),
    "+79121000005": ({"outcome": "invalid"}, "invalid_number"),
    "+79121000006": ({"outcome": "reject", "after": 1}, "rejected"),
    "+79121000007": ({"outcome": "unavailable", "after": 1}, "no_answer"),
    "+79121000008": ({"outcome": "hangup", "after": 1, "talk": 0}, "abandoned"),
}


def rules_for(behaviours=BEHAVIOURS):
    return [{"pattern": number.replace("+", r"\+"), **plan} for number, (plan, _) in behaviours.items()]


def test_given_every_customer_behaviour_when_daemon_runs_then_each_result_is_recorded(db):
    async def scenario():
        pbx = make_pbx(rules_for())
        port = await pbx.start()
        clock = moscow_day_clock()
        settings = daemon_settings(str(db.engine.url.render_as_string(hide_password=False)), port)
        try:
            async with running_daemon(settings, db, clock) as daemon:
                sent = [{"phone": number, "name": "Клиент Тестов", "order_number": f"Z-{i}"}
                        for i, number in enumerate(BEHAVIOURS)]
                answers = await post_leads(daemon.http_url, sent)
                assert {a["status"] for a in answers} == {"new"}
                await wait_until(lambda: all_ended(db, len(BEHAVIOURS)), 90, what="every attempt to end")
        finally:
            await pbx.stop()
        return pbx

    pbx = asyncio.run(scenario())
    by_lead = {lead.id: lead for lead in leads(db)}
    results = {}
    for attempt in attempts(db):
        results.setdefault(by_lead[attempt.lead_id].phone_e164, attempt.result)
        assert attempt.state == AttemptState.ENDED.value
        assert attempt.originated_at is not None and attempt.ended_at >= attempt.originated_at
        assert attempt.action_id and attempt.channel_id
    assert results == {number: expected for number, (_, expected) in BEHAVIOURS.items()}
    connected = [a for a in attempts(db) if a.result == "connected"]
    assert connected[0].operator_interface in ("PJSIP/op1", "PJSIP/op2")
    assert connected[0].connected_at is not None and connected[0].answered_at is not None
    invalid = by_lead[next(a.lead_id for a in attempts(db) if a.result == "invalid_number")]
    assert invalid.status == "closed" and invalid.close_reason == "invalid_number"
    busy = by_lead[next(a.lead_id for a in attempts(db) if a.result == "busy")]
    assert busy.status == "retry" and busy.next_attempt_at is not None
    assert pbx.stats().calls_placed == len(BEHAVIOURS)


def test_given_two_operators_when_many_leads_then_calls_never_outnumber_free_operators(sqlite_db):
    db = sqlite_db
    numbers = [f"+7912200{i:04d}" for i in range(8)]

    async def scenario():
        pbx = make_pbx([{"pattern": r"\+79122.*", "outcome": "answer", "after": 2, "talk": 3}])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": n, "name": "Ольга"} for n in numbers])
                await wait_until(lambda: all_ended(db, len(numbers)), 120, what="all calls")
                return pbx.stats(), daemon.stats
        finally:
            await pbx.stop()

    pbx_stats, daemon_stats = asyncio.run(scenario())
    assert pbx_stats.calls_placed == len(numbers)
    # never more calls than free operators, and no operator left idle while leads wait (issue 15, item 5)
    assert pbx_stats.peak_calls_in_progress == 2
    assert daemon_stats.max_in_progress == 2
    assert all(op.calls_connected >= 2 for op in pbx_stats.operators), pbx_stats.operators
    assert all(op.peak_concurrent <= 1 for op in pbx_stats.operators)
    assert Counter(a.result for a in attempts(db)) == Counter({"connected": len(numbers)})


def test_given_paused_operator_then_all_calls_go_to_the_other_one(sqlite_db):
    db = sqlite_db

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "answer", "after": 1, "talk": 1}],
                       [OperatorSpec("PJSIP/op1", "Анна", talk=5, wrapup=0.5, ring=0.5),
                        OperatorSpec("PJSIP/op2", "Иван", talk=5, wrapup=0.5, ring=0.5, paused=True)])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": f"+7912300{i:04d}"} for i in range(3)])
                await wait_until(lambda: all_ended(db, 3), 90, what="all calls")
                return pbx.stats(), daemon.stats
        finally:
            await pbx.stop()

    pbx_stats, daemon_stats = asyncio.run(scenario())
    assert {a.operator_interface for a in attempts(db)} == {"PJSIP/op1"}
    assert daemon_stats.max_in_progress <= 1
    op2 = next(op for op in pbx_stats.operators if op.interface == "PJSIP/op2")
    assert op2.calls_connected == 0


def test_given_quiet_hours_when_lead_arrives_at_night_then_it_is_dialed_only_after_ten(sqlite_db):
    db = sqlite_db
    moscow = ZoneInfo("Europe/Moscow")
    clock = ManualClock(datetime(2026, 11, 24, 23, 30, tzinfo=moscow))

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "busy"}])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, clock) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79124000001", "name": "Ночной"}])
                await asyncio.sleep(2.5)   # several dialing cycles at 23:30
                placed_at_night = pbx.stats().calls_placed
                clock.set(datetime(2026, 11, 25, 9, 59, tzinfo=moscow))
                daemon.wake()
                await asyncio.sleep(1.5)
                placed_before_ten = pbx.stats().calls_placed
                clock.set(datetime(2026, 11, 25, 10, 0, tzinfo=moscow))
                daemon.wake()
                await wait_until(lambda: all_ended(db, 1), 30, what="the morning call")
                return placed_at_night, placed_before_ten, pbx.stats().calls_placed
        finally:
            await pbx.stop()

    night, before_ten, after = asyncio.run(scenario())
    assert (night, before_ten, after) == (0, 0, 1)
    (attempt,) = attempts(db)
    assert attempt.claimed_at == datetime(2026, 11, 25, 10, 0, tzinfo=moscow)


def test_given_ami_dropped_at_random_points_then_no_result_lost_no_double_dial_nothing_left_in_progress(sqlite_db):
    db = sqlite_db
    rng = random.Random(5)
    numbers = [f"+7912500{i:04d}" for i in range(10)]
    rules = [{"pattern": r"\+791250000(0[0-4])", "outcome": "answer", "after": 2, "talk": 4},
             {"pattern": r"\+7912500000[5-7]", "outcome": "busy", "after": 1},
             {"pattern": r"\+791250000(0[8-9])", "outcome": "reject", "after": 3}]

    async def scenario():
        pbx = make_pbx(rules, [OperatorSpec(f"PJSIP/op{i}", f"Оператор {i}", talk=8, wrapup=0.5, ring=0.5)
                               for i in range(1, 5)])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": n} for n in numbers])
                for _ in range(4):
                    await asyncio.sleep(rng.uniform(0.1, 0.6))
                    pbx.drop_connections()
                await wait_until(lambda: len({a.lead_id for a in attempts(db)}) == len(numbers)
                                 and all_ended(db, len(numbers)), 120, what="every lead dialed and settled")
                return pbx.call_log
        finally:
            await pbx.stop()

    call_log = asyncio.run(scenario())
    rows = attempts(db)
    assert all(a.state == AttemptState.ENDED.value and a.result for a in rows)
    # every call the PBX saw belongs to exactly one attempt, and no attempt was dialed twice
    channel_ids = [record.uniqueid for record in call_log]   # = our ChannelId
    assert len(channel_ids) == len(set(channel_ids))
    assert set(channel_ids) <= {a.channel_id for a in rows}
    # never two calls to the same lead at the same time
    by_lead: dict[int, list] = {}
    for a in rows:
        by_lead.setdefault(a.lead_id, []).append(a)
    for lead_attempts in by_lead.values():
        spans = sorted((a.claimed_at, a.ended_at) for a in lead_attempts)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end


def test_given_crm_webhook_when_calls_end_and_operator_disposes_then_crm_gets_each_outcome_once(sqlite_db):
    """The whole path: webhook lead -> call -> result -> outbox -> CRM push, and the disposition's outcome."""
    from dialer.crm.stub import CrmStub
    db = sqlite_db
    behaviours = {"+79128000001": ({"outcome": "busy"}, "busy"),
                  "+79128000002": ({"outcome": "answer", "after": 1, "talk": 1}, "connected")}

    async def scenario(crm):
        crm_url = crm.url
        pbx = make_pbx(rules_for(behaviours))
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port, **{"crm.webhook_url": crm_url,
                                                                "crm.poll_seconds": 0.2})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": n, "name": "Мария", "order_number": f"Z-{n[-1]}"}
                                                   for n in behaviours])
                await wait_until(lambda: all_ended(db, 2), 60, what="both calls")
                connected = next(a for a in attempts(db) if a.result == "connected")
                # what `dialer dispose` and the console do: record it; the running daemon's sender delivers it
                from dialer.dispositions import record_disposition
                from leads.disposition import DispositionInput
                await asyncio.to_thread(record_disposition, db, connected.id,
                                        DispositionInput("confirmed", amount="12990.50", comment="Подтвердила заказ"),
                                        now=daemon.clock.now(), center_zone=daemon.center_zone,
                                        recorded_by="test", operator_id=connected.operator_id)
                await wait_until(lambda: crm.accepted_for("disposition", "confirmed"), 30,
                                 what="the confirmed outcome at the CRM")
        finally:
            await pbx.stop()

    with CrmStub() as crm:
        from leads.operators import add_operator
        from datetime import datetime, timezone
        for i, name in ((1, "Анна"), (2, "Иван")):
            add_operator(db, name=name, interface=f"PJSIP/op{i}", now=datetime.now(timezone.utc))
        asyncio.run(scenario(crm))
    busy = crm.accepted_for("result", "busy")
    confirmed = crm.accepted_for("disposition", "confirmed")
    assert len(busy) == 1 and len(confirmed) == 1
    assert confirmed[0]["amount"] == "12990.50" and confirmed[0]["comment"] == "Подтвердила заказ"
    assert confirmed[0]["operator"] in ("Анна", "Иван")


def test_given_disposition_recorded_mid_call_when_call_ends_then_operator_is_free_at_once(sqlite_db):
    """Wrap-up ends with the disposition: an operator who recorded it during the call is not held afterwards."""
    from dialer.dispositions import record_disposition
    from dialer.pacing import OperatorState
    from leads.disposition import DispositionInput
    db = sqlite_db

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "answer", "after": 1, "talk": 30}],
                       [OperatorSpec("PJSIP/op1", "Анна", talk=600, wrapup=0, ring=0.5)])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port, **{"dial.wrapup_limit_seconds": 300.0})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79129000001", "name": "Анна"}])
                attempt = await wait_until(lambda: next((a for a in attempts(db) if a.state == "connected"), None),
                                           30, what="a connected call")
                await asyncio.to_thread(record_disposition, db, attempt.id, DispositionInput("no_decision"),
                                        now=daemon.clock.now(), center_zone=daemon.center_zone, recorded_by="test")
                await wait_until(lambda: all_ended(db, 1), 30, what="the call to end")
                # the wrap-up limit is 300 simulated s (30 real s); the disposition is already there
                await wait_until(lambda: daemon.board.get("PJSIP/op1").state(daemon.clock.now())
                                 is OperatorState.AVAILABLE, 10, what="the operator to be free")
        finally:
            await pbx.stop()

    asyncio.run(scenario())


def test_given_call_still_ringing_when_stop_drain_runs_out_then_it_is_hung_up_and_recorded_cancelled(sqlite_db):
    db = sqlite_db

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "no_answer"}])   # rings until our Originate timeout
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock(), drain_seconds=0.5) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79129100001"}])
                await wait_until(lambda: any(a.state in ("originated", "ringing") for a in attempts(db)), 30,
                                 what="a ringing call")
            return pbx.stats()
        finally:
            await pbx.stop()

    stats = asyncio.run(scenario())
    (attempt,) = attempts(db)
    assert (attempt.state, attempt.result) == ("ended", "cancelled")
    assert stats.calls_in_progress == 0
    (lead,) = leads(db)
    assert lead.status == "retry" and lead.lease_owner is None
