"""The outbox and its sender against a real HTTP CRM stub on 127.0.0.1 that fails, hangs, is slow, goes
down and comes back: every outcome delivered once, in order per lead, with a stable idempotency key;
dead letters after crm.max_failures, listed and resent. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kernel.clock import ManualClock
from dialer.crm.outbox import OUTCOME_FIELDS, dead_letters, enqueue_outcome, next_due_at, outbox_counts, requeue
from dialer.crm.sender import OutboxSender, SendCounts, crm_body, retry_delay
from dialer.crm.stub import CrmStub
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead, OutboxMessage
from kernel.errors import SettingsError, UsageError
from kernel.settings import CrmSettings
from leads.attempt import CallResult
from tests.conftest import moscow
from tests.outcome_rows import add_lead, connected_call, unanswered_outcome

START = moscow(2026, 11, 23, 14, 0)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def crm():
    with CrmStub(token="crm-token") as stub:
        yield stub


def crm_settings(stub: CrmStub, **overrides) -> CrmSettings:
    values = {"webhook_url": stub.url, "token": "crm-token", "timeout_seconds": 2.0, **overrides}
    return CrmSettings(**values)


def sender_for(db: Database, settings: CrmSettings, clock: ManualClock, seed: int = 7) -> OutboxSender:
    return OutboxSender(db, settings, clock, random.Random(seed))


def send(sender: OutboxSender, now=None) -> SendCounts:
    return asyncio.run(sender.send_due(now or sender.clock.now()))


def pending_ids(db: Database) -> list[int]:
    with db.read() as session:
        return list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.status == "pending")))


def advance_to_next_try(db: Database, clock: ManualClock) -> None:
    with db.read() as session:
        due = next_due_at(session)
    if due is not None:
        clock.set(max(due, clock.now()))


def keys_by_lead(stub: CrmStub) -> dict[int, list[str]]:
    order: dict[int, list[str]] = {}
    for key in stub.accepted_keys:
        order.setdefault(stub.accepted[key]["lead_id"], []).append(key)
    return order


# ---------------------------------------------------------------- enqueue

def test_every_attempt_gets_exactly_one_outcome_and_a_connected_call_waits_for_its_disposition(db):
    lead_id = add_lead(db, START)
    first = unanswered_outcome(db, lead_id, 1, START, CallResult.BUSY)
    with db.write() as session:   # the daemon calling it again for the same attempt gets the same row
        message = session.get(OutboxMessage, first)
        again = enqueue_outcome(session, session.get(CallAttempt, message.attempt_id), session.get(Lead, lead_id),
                                None, START + timedelta(seconds=5))
        assert again.id == first
    call = connected_call(db, START)
    with db.write() as session:
        waiting = enqueue_outcome(session, session.get(CallAttempt, call.attempt_id), session.get(Lead, call.lead_id),
                                  None, START)
    assert waiting is None
    with db.read() as session:
        rows = session.scalars(select(OutboxMessage)).all()
    assert [(r.attempt_id, r.payload["result"], r.payload["disposition"]) for r in rows] == \
        [(rows[0].attempt_id, "busy", None)]
    assert tuple(rows[0].payload) == OUTCOME_FIELDS


def test_retry_delay_doubles_is_capped_and_jittered_within_20_percent():
    rng = random.Random(1)
    for failures, nominal in [(1, 60), (2, 120), (3, 240), (5, 960), (6, 1800), (12, 1800)]:
        delays = [retry_delay(failures, 60, 1800, rng) for _ in range(200)]
        assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
        assert max(delays) - min(delays) > 0.2 * nominal   # really jittered
    assert retry_delay(3, 60, 1800, random.Random(5)) == retry_delay(3, 60, 1800, random.Random(5))


def test_field_map_renames_and_drops_fields_and_refuses_unknown_ones():
    payload = {"lead_id": 7, "phone": "+79123456789", "disposition": "confirmed"}
    assert crm_body(payload, {"lead_id": "LEAD_ID", "phone": ""}) == {"LEAD_ID": 7, "disposition": "confirmed"}
    with pytest.raises(SettingsError, match="'sum' is not an outcome field"):
        OutboxSender(None, CrmSettings(webhook_url="http://127.0.0.1:1/x", field_map={"sum": "OPPORTUNITY"}),
                     ManualClock(START))


# ---------------------------------------------------------------- delivery

def test_given_outcomes_when_sent_then_each_arrives_once_with_its_key_in_header_and_body(db, crm):
    clock = ManualClock(START)
    leads = [add_lead(db, START, f"+7912345670{i}", name="Анна Ёлкина") for i in range(3)]
    for lead_id in leads:
        for attempt_no in (1, 2):
            unanswered_outcome(db, lead_id, attempt_no, START)
    sender = sender_for(db, crm_settings(crm, field_map={"lead_id": "LEAD_ID"}), clock)
    assert send(sender) == SendCounts(sent=6)
    assert send(sender) == SendCounts()
    assert len(crm.requests) == 6 and not any(r.duplicate for r in crm.requests)
    for request in crm.requests:
        assert request.body["idempotency_key"] == request.key and "LEAD_ID" in request.body
        assert request.body["name"] == "Анна Ёлкина"
    order = {}
    for key in crm.accepted_keys:
        order.setdefault(crm.accepted[key]["LEAD_ID"], []).append(crm.accepted[key]["attempt_no"])
    assert order == {lead_id: [1, 2] for lead_id in leads}
    with db.read() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {"sent"}
        assert set(session.scalars(select(OutboxMessage.sent_at))) == {START}


def test_given_the_crm_down_for_an_hour_then_nothing_is_lost_and_order_per_lead_holds(db, crm):
    clock = ManualClock(START)
    a, b = add_lead(db, START, "+79120000001"), add_lead(db, START, "+79120000002")
    for attempt_no in (1, 2, 3):
        unanswered_outcome(db, a, attempt_no, START)
    unanswered_outcome(db, b, 1, START)
    sender = sender_for(db, crm_settings(crm), clock)
    crm.stop()
    back_at = START + timedelta(hours=1)
    for _ in range(40):
        if clock.now() >= back_at and crm._server is None:
            crm.come_back()
        send(sender)
        if not pending_ids(db):
            break
        advance_to_next_try(db, clock)
    assert clock.now() >= back_at
    assert pending_ids(db) == [] and dead_letters(db) == []
    assert len(crm.accepted) == 4 and not any(r.duplicate for r in crm.requests)
    assert [crm.accepted[k]["attempt_no"] for k in keys_by_lead(crm)[a]] == [1, 2, 3]
    with db.read() as session:
        failures = session.scalar(select(func.max(OutboxMessage.failures)))
        errors = set(session.scalars(select(OutboxMessage.last_error)))
    assert failures >= 3 and errors == {None}


def test_given_a_500_for_one_outcome_then_its_lead_waits_but_other_leads_go_and_the_key_is_stable(db, crm):
    clock = ManualClock(START)
    a, b = add_lead(db, START, "+79120000001"), add_lead(db, START, "+79120000002")
    a1 = unanswered_outcome(db, a, 1, START)
    unanswered_outcome(db, a, 2, START)
    unanswered_outcome(db, b, 1, START)
    with db.read() as session:
        crm.fail_next(1, 500, key=session.get(OutboxMessage, a1).idempotency_key)
    sender = sender_for(db, crm_settings(crm), clock)
    assert send(sender) == SendCounts(sent=1, retrying=1)
    assert [crm.accepted[k]["lead_id"] for k in crm.accepted_keys] == [b]   # a's 2nd outcome did not overtake
    with db.read() as session:
        failed = session.get(OutboxMessage, a1)
    assert failed.failures == 1 and failed.last_error.startswith("HTTP 500")
    assert START + timedelta(seconds=48) <= failed.next_try_at <= START + timedelta(seconds=72)
    assert send(sender) == SendCounts()    # not due yet
    advance_to_next_try(db, clock)
    assert send(sender) == SendCounts(sent=2)
    assert [crm.accepted[k]["attempt_no"] for k in keys_by_lead(crm)[a]] == [1, 2]
    assert crm.tries_of(failed.idempotency_key) == 2
    assert {r.body["idempotency_key"] for r in crm.requests if r.key == failed.idempotency_key} == \
        {failed.idempotency_key}


def test_given_a_hanging_crm_then_the_try_times_out_and_the_outcome_goes_when_it_answers(db, crm):
    clock = ManualClock(START)
    lead_id = add_lead(db, START)
    unanswered_outcome(db, lead_id, 1, START)
    sender = sender_for(db, crm_settings(crm, timeout_seconds=0.3), clock)
    crm.hang()
    started = time.monotonic()
    assert send(sender) == SendCounts(retrying=1)
    assert time.monotonic() - started < 5
    with db.read() as session:
        assert "no answer within 0.3 s" in session.scalar(select(OutboxMessage.last_error))
    crm.healthy()
    advance_to_next_try(db, clock)
    assert send(sender) == SendCounts(sent=1)
    assert len(crm.accepted) == 1


def test_given_a_crm_slower_than_the_timeout_then_the_retry_is_recognised_by_its_key(db, crm):
    clock = ManualClock(START)
    lead_id = add_lead(db, START)
    unanswered_outcome(db, lead_id, 1, START)
    sender = sender_for(db, crm_settings(crm, timeout_seconds=0.3), clock)
    crm.slow(0.8)                      # the CRM stores it, but answers after we gave up
    assert send(sender) == SendCounts(retrying=1)
    crm.healthy()
    advance_to_next_try(db, clock)
    assert send(sender) == SendCounts(sent=1)
    [key] = crm.accepted_keys
    assert crm.tries_of(key) == 2 and [r.duplicate for r in crm.requests] == [False, True]


def test_given_n_failures_then_a_dead_letter_holds_its_lead_back_until_resent(db, crm):
    clock = ManualClock(START)
    a, b = add_lead(db, START, "+79120000001"), add_lead(db, START, "+79120000002")
    a1 = unanswered_outcome(db, a, 1, START)
    unanswered_outcome(db, a, 2, START)
    sender = sender_for(db, crm_settings(crm, max_failures=3), clock)
    crm.fail_always(503)
    counts = SendCounts()
    for _ in range(3):
        counts += send(sender)
        advance_to_next_try(db, clock)
    assert counts == SendCounts(retrying=2, dead=1)
    crm.fail_always(None)
    unanswered_outcome(db, b, 1, clock.now())
    clock.advance(timedelta(hours=2))
    assert send(sender) == SendCounts(sent=1)            # lead b goes; lead a's 2nd waits behind the dead one
    [dead] = dead_letters(db)
    assert (dead.id, dead.failures, dead.holds_back) == (a1, 3, 1) and "HTTP 503" in dead.last_error
    assert outbox_counts(db, clock.now())["dead"] == 1
    with pytest.raises(UsageError, match="not a dead letter"):
        requeue(db, [a1 + 1], clock.now())
    assert requeue(db, None, clock.now()) == [a1]
    assert send(sender) == SendCounts(sent=2)
    assert [crm.accepted[k]["attempt_no"] for k in keys_by_lead(crm)[a]] == [1, 2]
    assert dead_letters(db) == [] and len(crm.accepted) == 3


def test_given_two_senders_at_once_then_no_outcome_is_posted_twice(db, crm):
    clock = ManualClock(START)
    for i in range(20):
        lead_id = add_lead(db, START, f"+791200000{i:02d}")
        unanswered_outcome(db, lead_id, 1, START)
        unanswered_outcome(db, lead_id, 2, START)
    settings = crm_settings(crm)

    async def both() -> list[SendCounts]:
        first, second = sender_for(db, settings, clock, 1), sender_for(db, settings, clock, 2)
        first.batch_size = second.batch_size = 5
        return await asyncio.gather(first.send_due(START), second.send_due(START))

    counts = asyncio.run(both())
    assert sum(c.sent for c in counts) == 40 and len(crm.requests) == 40
    assert all(v == [1, 2] for v in ({lead: [crm.accepted[k]["attempt_no"] for k in keys]
                                      for lead, keys in keys_by_lead(crm).items()}).values())


def test_run_loop_delivers_when_woken_and_stops_on_the_event(db, crm):
    clock = ManualClock(START)
    lead_id = add_lead(db, START)
    sender = sender_for(db, crm_settings(crm, poll_seconds=60), clock)

    async def scenario() -> float:
        stop = asyncio.Event()
        loop_task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(0.2)                        # the loop is asleep now, for up to 60 s
        await asyncio.to_thread(unanswered_outcome, db, lead_id, 1, START)
        woken = time.monotonic()
        sender.wake()
        while not crm.accepted and time.monotonic() - woken < 10:
            await asyncio.sleep(0.02)
        delivered_after = time.monotonic() - woken
        stop.set()
        await asyncio.wait_for(loop_task, 10)
        return delivered_after

    assert asyncio.run(scenario()) < 5
    assert len(crm.accepted) == 1


# ---------------------------------------------------------------- CLI

def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env={**os.environ, **env,
                                                                              "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)


def test_cli_lists_dead_letters_and_resends_them(sqlite_db, crm):
    clock = ManualClock(START)
    lead_id = add_lead(sqlite_db, START)
    first = unanswered_outcome(sqlite_db, lead_id, 1, START)
    sender = sender_for(sqlite_db, crm_settings(crm, max_failures=1), clock)
    crm.fail_next(1, 500)
    assert send(sender) == SendCounts(dead=1)
    env = {"DIALER_DB_URL": sqlite_db.url, "DIALER_CRM_WEBHOOK_URL": crm.url, "DIALER_CRM_TOKEN": "crm-token"}
    listed = run_cli("crm", "failed", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f'"id": {first}' in listed.stdout and "HTTP 500" in listed.stdout
    assert run_cli("crm", "retry", env=env).returncode == 2
    resent = run_cli("crm", "retry", str(first), env=env)
    assert resent.returncode == 0, resent.stderr
    assert "1 outcome(s) back in the queue" in resent.stdout
    assert len(crm.accepted) == 1 and dead_letters(sqlite_db) == []
    unanswered_outcome(sqlite_db, lead_id, 2, START)
    drained = run_cli("crm", "send", "--once", env=env)
    assert drained.returncode == 0, drained.stderr
    assert len(crm.accepted) == 2
