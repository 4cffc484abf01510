"""Dispositions: the rules table, validation (nothing changed on refusal), the lead's new state, DNC,
the wrap-up timeout, the HTTP endpoint and `dialer dispose`. Store tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from kernel.clock import ManualClock
from dialer.crm.outbox import Topic
from kernel.db.engine import Database
from kernel.db.models import Disposition, DncEntry, Lead, OutboxMessage
from dialer.dispositions import WRAPUP_TIMEOUT, expire_wrapups, record_disposition
from kernel.errors import NotFound
from kernel.settings import Settings
from dialer.web.app import create_app
from dialer.web.dispositions import dispositions_router
from dialer.web.server import ServerThread
from leads.attempt import CallResult, DispositionKind
from leads.disposition import (RULES, AlreadyDisposed, DispositionInput, DispositionRefused, NotYourAttempt,
                               validate)
from leads.intake import Intake
from leads.lead import CloseReason, LeadStatus
from leads.policy.claim import claim_next
from leads.policy.store import change_policy
from tests.conftest import moscow
from tests.outcome_rows import add_attempt, add_lead, add_operator, connected_call

NOW = moscow(2026, 11, 23, 14, 0)
CENTER = "Europe/Moscow"
REPO = Path(__file__).resolve().parent.parent


def dispose(db: Database, attempt_id: int, kind: str, **values) -> object:
    operator_id = values.pop("operator_id", None)
    return record_disposition(db, attempt_id, DispositionInput(kind, **values), now=NOW, center_zone=CENTER,
                              recorded_by="Ольга Смирнова", operator_id=operator_id)


def lead_of(db: Database, lead_id: int) -> Lead:
    with db.read() as session:
        return session.get(Lead, lead_id)


def snapshot(db: Database) -> dict:
    """Everything a refused disposition must leave as it was."""
    with db.read() as session:
        leads = [tuple(r) for r in session.execute(select(Lead.__table__).order_by(Lead.id))]
        return {"leads": leads,
                "dispositions": session.scalar(select(func.count()).select_from(Disposition)),
                "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)),
                "dnc": session.scalar(select(func.count()).select_from(DncEntry))}


def outcomes(db: Database) -> list[OutboxMessage]:
    with db.read() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.topic == Topic.OUTCOME.value)
                               .order_by(OutboxMessage.id)).all()


# ---------------------------------------------------------------- pure rules

def test_every_disposition_kind_has_exactly_one_rule_and_closing_kinds_name_a_close_reason():
    assert set(RULES) == set(DispositionKind)
    for kind, rule in RULES.items():
        assert (rule.status is LeadStatus.CLOSED) == (rule.close_reason is not None), kind
    assert RULES[DispositionKind.NO_DECISION].status is LeadStatus.RETRY
    assert RULES[DispositionKind.CALLBACK].status is LeadStatus.CALLBACK
    assert RULES[DispositionKind.COMPLAINT].close_reason is CloseReason.COMPLAINT
    assert RULES[DispositionKind.COMPLAINT].alert == "complaint"
    assert [k for k, r in RULES.items() if r.adds_to_dnc] == [DispositionKind.DO_NOT_CALL]


def test_callback_quiet_hours_are_the_stored_policys_and_the_refusal_names_the_next_allowed_time(db):
    call = connected_call(db, NOW)
    dispose_at = "2026-11-24T21:30"
    change_policy(db, {"quiet_start": "21:00"}, by="team-lead", now=NOW)
    with pytest.raises(DispositionRefused, match=r"quiet hours for the call center \(21:00-10:00\); "
                                                 r"the next allowed time is 2026-11-25 10:00"):
        dispose(db, call.attempt_id, "callback", callback_at=dispose_at)
    change_policy(db, {"quiet_start": "22:00"}, by="team-lead", now=NOW)
    record = dispose(db, call.attempt_id, "callback", callback_at=dispose_at)
    assert record.callback_at == moscow(2026, 11, 24, 21, 30)


def test_given_a_callback_time_without_offset_then_it_is_read_on_the_customers_clock():
    valid = validate(DispositionInput("callback", callback_at="2026-11-24T18:00"), now=NOW, center_zone=CENTER,
                     lead_zone="Asia/Vladivostok")
    assert valid.callback_at == moscow(2026, 11, 24, 11, 0)   # 18:00 in Vladivostok is 11:00 in Moscow
    valid = validate(DispositionInput("callback", callback_at="2026-11-24T18:00"), now=NOW, center_zone=CENTER)
    assert valid.callback_at == moscow(2026, 11, 24, 18, 0)


@pytest.mark.parametrize("given, lead_zone, message", [
    (DispositionInput("sold"), None, "unknown disposition 'sold'"),
    (DispositionInput("confirmed"), None, "needs the order amount"),
    (DispositionInput("confirmed", amount="-1"), None, "negative"),
    (DispositionInput("confirmed", amount="двадцать"), None, "not a number"),
    (DispositionInput("confirmed", amount="10.005"), None, "2 decimal places"),
    (DispositionInput("confirmed", amount="100", currency="рубли"), None, "3-letter ISO 4217"),
    (DispositionInput("not_interested", amount="100"), None, "only goes with 'confirmed'"),
    (DispositionInput("fake", callback_at="2026-11-24T12:00"), None, "only goes with 'callback'"),
    (DispositionInput("callback"), None, "needs the time agreed"),
    (DispositionInput("callback", callback_at="завтра"), None, "is not a time"),
    (DispositionInput("callback", callback_at="2026-11-23T13:59"), None, "in the past"),
    (DispositionInput("callback", callback_at="2026-11-23T23:00"), None, "quiet hours for the call center"),
    (DispositionInput("callback", callback_at="2026-11-24T09:30+03:00"), None, "quiet hours for the call center"),
    # 23:00 in Vladivostok is 16:00 in Moscow: fine for the center, not for the customer.
    (DispositionInput("callback", callback_at="2026-11-24T23:00"), "Asia/Vladivostok", "quiet hours for the customer"),
    (DispositionInput("no_decision", custom_fields={"": "x"}), None, "custom field name"),
])
def test_given_bad_values_when_validated_then_refused_with_what_is_wrong(given, lead_zone, message):
    with pytest.raises(DispositionRefused, match=message):
        validate(given, now=NOW, center_zone=CENTER, lead_zone=lead_zone)


def test_amount_is_kept_exactly_and_currency_defaults_to_rub():
    valid = validate(DispositionInput("confirmed", amount="12 500,50"), now=NOW, center_zone=CENTER)
    assert (valid.amount, valid.currency) == (Decimal("12500.50"), "RUB")
    valid = validate(DispositionInput("CONFIRMED", amount=0, currency="kzt"), now=NOW, center_zone=CENTER)
    assert (valid.kind, valid.amount, valid.currency) == (DispositionKind.CONFIRMED, Decimal("0.00"), "KZT")


# ---------------------------------------------------------------- recording (both databases)

def test_given_a_connected_call_when_confirmed_then_lead_closed_and_outcome_queued_in_the_same_commit(db):
    call = connected_call(db, NOW)
    record = dispose(db, call.attempt_id, "confirmed", amount="12500", comment="Доставка завтра, курьер",
                     custom_fields={"доставка": "курьер", "этаж": 5})
    lead = lead_of(db, call.lead_id)
    assert (lead.status, lead.close_reason, lead.closed_at) == ("closed", "confirmed", NOW)
    assert (record.kind, record.amount, record.currency, record.lead_status) == \
        ("confirmed", Decimal("12500.00"), "RUB", "closed")
    [outcome] = outcomes(db)
    assert outcome.id == record.outcome_id and outcome.status == "pending" and outcome.next_try_at == NOW
    body = outcome.payload
    assert (body["disposition"], body["amount"], body["currency"], body["result"]) == \
        ("confirmed", "12500.00", "RUB", "connected")
    assert (body["lead_id"], body["attempt_id"], body["order_number"], body["operator"]) == \
        (call.lead_id, call.attempt_id, "A-1001", "Ольга Смирнова")
    assert body["comment"] == "Доставка завтра, курьер" and body["custom_fields"] == {"доставка": "курьер", "этаж": 5}
    assert body["talk_seconds"] == 180 and body["recording"] == f"rec/{call.lead_id}-1.wav"
    assert body["idempotency_key"] == outcome.idempotency_key


def test_given_a_callback_when_recorded_then_the_lead_waits_for_that_time_and_that_operator(db):
    call = connected_call(db, NOW, timezone="Asia/Vladivostok")
    dispose(db, call.attempt_id, "callback", callback_at="2026-11-24T18:00")
    lead = lead_of(db, call.lead_id)
    assert (lead.status, lead.callback_at, lead.callback_operator_id, lead.close_reason) == \
        ("callback", moscow(2026, 11, 24, 11, 0), call.operator_id, None)
    assert outcomes(db)[0].payload["callback_at"] == moscow(2026, 11, 24, 11, 0).astimezone(ZoneInfo("UTC")).isoformat()


def test_given_no_decision_then_lead_stays_open_and_next_attempt_is_left_to_the_policy(db):
    call = connected_call(db, NOW)
    with db.write() as session:
        session.get(Lead, call.lead_id).next_attempt_at = NOW + timedelta(days=1)
    dispose(db, call.attempt_id, "no_decision", comment="думает")
    lead = lead_of(db, call.lead_id)
    assert (lead.status, lead.close_reason, lead.next_attempt_at) == ("retry", None, NOW + timedelta(days=1))


def test_given_a_complaint_then_lead_closed_and_an_alert_is_written_with_the_outcome(db):
    call = connected_call(db, NOW)
    dispose(db, call.attempt_id, "complaint", comment="Звонят пятый раз!")
    assert (lead_of(db, call.lead_id).status, lead_of(db, call.lead_id).close_reason) == ("closed", "complaint")
    with db.read() as session:
        alerts = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == Topic.ALERT.value)).all()
    assert [(a.payload["alert"], a.payload["comment"], a.attempt_id) for a in alerts] == \
        [("complaint", "Звонят пятый раз!", call.attempt_id)]
    assert outcomes(db)[0].payload["alert"] == "complaint"


def test_given_do_not_call_then_number_on_dnc_and_every_open_lead_with_it_closed(db):
    call = connected_call(db, NOW, phone="+79123456789")
    same_phone_open = add_lead(db, NOW, "+79123456789", status="new", order_number="A-2002")
    same_phone_callback = add_lead(db, NOW, "+79123456789", status="callback", order_number="A-2003")
    same_phone_confirmed = add_lead(db, NOW, "+79123456789", status="closed", order_number="A-0999")
    with db.write() as session:
        session.get(Lead, same_phone_confirmed).close_reason = "confirmed"
    other_phone = add_lead(db, NOW, "+79990001122", status="new")
    record = dispose(db, call.attempt_id, "do_not_call", comment="просит писать на почту")
    with db.read() as session:
        entry = session.get(DncEntry, "+79123456789")
    assert entry is not None and "просит писать на почту" in entry.reason and entry.added_at == NOW
    assert record.other_leads_closed == 2
    for lead_id in (call.lead_id, same_phone_open, same_phone_callback):
        assert (lead_of(db, lead_id).status, lead_of(db, lead_id).close_reason) == ("closed", "dnc")
    assert (lead_of(db, same_phone_confirmed).status, lead_of(db, same_phone_confirmed).close_reason) == \
        ("closed", "confirmed")
    assert lead_of(db, other_phone).status == "new"
    # The selection skips the number even for a lead left open (say one reopened by hand later).
    with db.write() as session:
        reopened = session.get(Lead, same_phone_open)
        reopened.status, reopened.close_reason, reopened.closed_at, reopened.attempts_count = "new", None, None, 0
    claimed = [claim_next(db, daemon_id="test", now=NOW, center_zone=CENTER) for _ in range(2)]
    assert claimed[0] is not None and claimed[0].lead_id == other_phone
    assert claimed[1] is None


@pytest.mark.parametrize("kind, values, error, message", [
    ("sold", {}, DispositionRefused, "unknown disposition"),
    ("confirmed", {"amount": "-5"}, DispositionRefused, "negative"),
    ("confirmed", {}, DispositionRefused, "needs the order amount"),
    ("callback", {"callback_at": "2026-11-23T12:00"}, DispositionRefused, "in the past"),
    ("callback", {"callback_at": "2026-11-23T22:30"}, DispositionRefused, "quiet hours"),
    ("do_not_call", {"custom_fields": {"x" * 65: 1}}, DispositionRefused, "custom field name"),
])
def test_given_a_refused_disposition_then_nothing_changed(db, kind, values, error, message):
    call = connected_call(db, NOW)
    before = snapshot(db)
    with pytest.raises(error, match=message):
        dispose(db, call.attempt_id, kind, **values)
    assert snapshot(db) == before


def test_given_a_call_that_never_reached_an_operator_then_refused_and_nothing_changed(db):
    lead_id = add_lead(db, NOW)
    attempt_id = add_attempt(db, lead_id, NOW, result=CallResult.NO_ANSWER.value)
    before = snapshot(db)
    with pytest.raises(DispositionRefused, match="never reached an operator"):
        dispose(db, attempt_id, "not_interested")
    assert snapshot(db) == before
    with pytest.raises(NotFound, match="no call attempt"):
        dispose(db, 999_999, "not_interested")


def test_given_a_disposition_when_a_second_is_recorded_then_refused_and_the_first_stands(db):
    call = connected_call(db, NOW)
    dispose(db, call.attempt_id, "callback", callback_at="2026-11-24T12:00")
    before = snapshot(db)
    with pytest.raises(AlreadyDisposed, match="already has the disposition 'callback'"):
        dispose(db, call.attempt_id, "confirmed", amount="100")
    assert snapshot(db) == before
    assert len(outcomes(db)) == 1


def test_given_another_operators_call_then_refused(db):
    call = connected_call(db, NOW)
    stranger = add_operator(db, NOW, "Пётр")
    with pytest.raises(NotYourAttempt):
        dispose(db, call.attempt_id, "fake", operator_id=stranger)
    dispose(db, call.attempt_id, "fake", operator_id=call.operator_id)
    assert lead_of(db, call.lead_id).close_reason == "fake"


def test_given_a_closed_lead_when_no_decision_comes_then_it_is_not_reopened(db):
    call = connected_call(db, NOW)
    with db.write() as session:   # its number went on the DNC list while the call went on
        lead = session.get(Lead, call.lead_id)
        lead.status, lead.close_reason = "closed", "dnc"
    dispose(db, call.attempt_id, "no_decision")
    assert (lead_of(db, call.lead_id).status, lead_of(db, call.lead_id).close_reason) == ("closed", "dnc")
    assert len(outcomes(db)) == 1


# ---------------------------------------------------------------- wrap-up timeout

def test_given_silent_operators_when_wrapup_runs_out_then_no_decision_and_the_lead_follows_policy(db):
    limit = 300.0
    expired = connected_call(db, NOW - timedelta(seconds=301))
    not_yet = connected_call(db, NOW - timedelta(seconds=299))
    explicit_until = connected_call(db, NOW - timedelta(seconds=10), wrapup_until=NOW - timedelta(seconds=1))
    disposed = connected_call(db, NOW - timedelta(hours=1))
    dispose(db, disposed.attempt_id, "fake")
    still_talking = connected_call(db, NOW - timedelta(hours=1), state="connected")
    lead_id = add_lead(db, NOW)
    unanswered = add_attempt(db, lead_id, NOW - timedelta(hours=1), result=CallResult.NO_ANSWER.value)

    assert expire_wrapups(db, NOW, limit) == 2
    assert expire_wrapups(db, NOW, limit) == 0
    with db.read() as session:
        got = dict(session.execute(select(Disposition.attempt_id, Disposition.recorded_by)).tuples().all())
    assert got == {expired.attempt_id: WRAPUP_TIMEOUT, explicit_until.attempt_id: WRAPUP_TIMEOUT,
                   disposed.attempt_id: "Ольга Смирнова"}
    assert not_yet.attempt_id not in got and still_talking.attempt_id not in got and unanswered not in got
    assert lead_of(db, expired.lead_id).status == "retry"
    assert [o.payload["disposition"] for o in outcomes(db)] == ["fake", "no_decision", "no_decision"]
    with pytest.raises(AlreadyDisposed, match="wrapup-timeout"):
        dispose(db, expired.attempt_id, "confirmed", amount="10")


# ---------------------------------------------------------------- HTTP endpoint (real HTTP, both databases)

def test_http_disposition_records_201_and_refuses_with_the_right_status(db):
    clock = ManualClock(NOW)
    settings = Settings(db_url=db.url)
    woken = []
    app = create_app(settings, db, Intake(db), clock,
                     routers=[dispositions_router(db, clock, settings, on_outcome=lambda: woken.append(1))])
    call = connected_call(db, NOW)
    stranger = add_operator(db, NOW, "Пётр")
    lead_id = add_lead(db, NOW)
    unanswered = add_attempt(db, lead_id, NOW, result=CallResult.BUSY.value)
    url = f"/attempts/{call.attempt_id}/disposition"
    mine = {"X-Operator-Id": str(call.operator_id)}
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post(url, json={"kind": "fake"}).status_code == 401
        assert client.post(url, json={"kind": "fake"}, headers={"X-Operator-Id": "777"}).status_code == 401
        refused = client.post(url, json={"kind": "fake"}, headers={"X-Operator-Id": str(stranger)})
        assert refused.status_code == 403 and "another operator" in refused.json()["error"]
        assert client.post("/attempts/999999/disposition", json={"kind": "fake"}, headers=mine).status_code == 404
        bad = client.post(url, json={"kind": "confirmed", "amount": -3}, headers=mine)
        assert bad.status_code == 422 and "negative" in bad.json()["error"]
        quiet = client.post(url, json={"kind": "callback", "callback_at": "2026-11-24T07:00"}, headers=mine)
        assert quiet.status_code == 422 and "quiet hours" in quiet.json()["error"]
        never = client.post(f"/attempts/{unanswered}/disposition", json={"kind": "fake"},
                            headers={"X-Operator-Id": str(call.operator_id)})
        assert never.status_code == 422 and "never reached an operator" in never.json()["error"]
        assert woken == [] and outcomes(db) == []

        ok = client.post(url, json={"kind": "confirmed", "amount": "4990.00", "comment": "Оплата картой",
                                    "fields": {"доставка": "самовывоз"}}, headers=mine)
        assert ok.status_code == 201, ok.text
        assert (ok.json()["kind"], ok.json()["amount"], ok.json()["lead_status"]) == ("confirmed", "4990.00", "closed")
        again = client.post(url, json={"kind": "fake"}, headers=mine)
        assert again.status_code == 409 and "already has the disposition" in again.json()["error"]
        shown = client.get(url).json()
        assert (shown["kind"], shown["comment"], shown["recorded_by"]) == ("confirmed", "Оплата картой",
                                                                          "Ольга Смирнова")
        kinds = client.get("/dispositions/kinds").json()
        assert {k["kind"] for k in kinds} == {k.value for k in DispositionKind}
    assert woken == [1]
    assert [o.payload["custom_fields"] for o in outcomes(db)] == [{"доставка": "самовывоз"}]


# ---------------------------------------------------------------- CLI

def run_cli(*args: str, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DIALER_DB_URL": db_url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_dispose_records_and_refuses_bad_values_with_exit_2(sqlite_db):
    now = ManualClock(NOW).now()
    call = connected_call(sqlite_db, now - timedelta(minutes=1))
    refused = run_cli("dispose", str(call.attempt_id), "confirmed", "--amount", "-10", db_url=sqlite_db.url)
    assert refused.returncode == 2 and "negative" in refused.stderr
    refused = run_cli("dispose", str(call.attempt_id), "продано", db_url=sqlite_db.url)
    assert refused.returncode == 2 and "unknown disposition" in refused.stderr
    assert outcomes(sqlite_db) == []
    done = run_cli("dispose", str(call.attempt_id), "not_interested", "--comment", "Дорого",
                   "--field", "причина=цена", "--by", "lead-anna", "--format", "json", db_url=sqlite_db.url)
    assert done.returncode == 0, done.stderr
    assert '"recorded_by": "cli:lead-anna"' in done.stdout and '"причина": "цена"' in done.stdout
    assert lead_of(sqlite_db, call.lead_id).close_reason == "not_interested"
    twice = run_cli("dispose", str(call.attempt_id), "fake", db_url=sqlite_db.url)
    assert twice.returncode == 2 and "already has the disposition" in twice.stderr
    missing = run_cli("dispose", "424242", "fake", db_url=sqlite_db.url)
    assert missing.returncode == 1 and "no call attempt" in missing.stderr
