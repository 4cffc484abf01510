"""Alerts (issue 14): raised with the fact that caused them, grouped and rate limited per rule, delivered
once per channel (a real SMTP server with STARTTLS, a fake Telegram Bot API and a webhook over real HTTP
on loopback), retried, dead-lettered. Expected texts and counts follow the issue's rules, by hand."""

from __future__ import annotations

import asyncio
import re
import email.policy
import ssl
import subprocess
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from dialer.alerts.dispatch import dispatch
from dialer.alerts.kinds import AlertKind, Channel, notice_text
from dialer.alerts.raising import alerts_for_outcome, raise_alert
from dialer.alerts.rules import Rule, add_rule, check_rule, list_rules, remove_rule
from dialer.alerts.watch import abandon_alert, sla_alerts
from dialer.alerts.worker import AlertWorker
from dialer.crm.outbox import enqueue_outcome
from dialer.crm.sender import OutboxSender
from dialer.dispositions import record_disposition
from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead, OutboxMessage
from kernel.errors import UsageError
from kernel.settings import load_settings
from leads.disposition import DispositionInput
from leads.policy.queue import leads_at_risk
from leads.policy.results import record_attempt_result
from tests.conftest import moscow
from tests.http_recorder import HttpRecorder
from tests.outcome_rows import add_attempt, add_lead, connected_call
from tests.smtp_inbox import SmtpInbox, free_port

NOW = moscow(2026, 12, 7, 14, 0)
CENTER = "Europe/Moscow"
MSK = ZoneInfo(CENTER)
PHONE = "+79123456789"
MASKED = "+7912***6789"


def alerts(db: Database, kind: str | None = None) -> list[OutboxMessage]:
    with db.read() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alert")
                               .order_by(OutboxMessage.id)).all()
    return [r for r in rows if kind is None or r.payload["alert"] == kind]


def notices(db: Database) -> list[OutboxMessage]:
    with db.read() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "alert_notice")
                               .order_by(OutboxMessage.id)).all()


def dispatch_at(db: Database, when):
    with db.write() as session:
        return dispatch(session, when, link="http://dialer.example/console/teamlead", zone=MSK)


def sla_risk(db: Database, lead_id: int, when) -> None:
    with db.write() as session:
        raise_alert(session, AlertKind.SLA_AT_RISK, {"lead_id": lead_id, "phone_masked": MASKED,
                                                     "deadline": (when + timedelta(minutes=5)).isoformat()},
                    f"alert-sla_at_risk-{lead_id}", when)   # no lead row: only the facts carry it


def settings_for(db: Database, **values):
    return load_settings(env={}, overrides={"db_url": str(db.engine.url.render_as_string(hide_password=False)),
                                            "alerts.retry_base_seconds": 10.0, "alerts.retry_max_seconds": 60.0,
                                            **values})


# ---------------------------------------------------------------- the rules, pure

def _rule(kind: AlertKind, **values) -> Rule:
    return Rule(1, kind, Channel.EMAIL, "lead@shop.ru", values.get("min_amount"), values.get("above_percent"),
                300, True, None)


def test_a_large_order_rule_takes_orders_from_its_amount_on():
    rule = _rule(AlertKind.LARGE_ORDER, min_amount=Decimal("50000"))
    assert rule.takes({"alert": "large_order", "amount": "50000.00"})
    assert not rule.takes({"alert": "large_order", "amount": "49999.99"})
    assert not rule.takes({"alert": "complaint", "amount": "90000"})


def test_an_abandon_rule_takes_rates_strictly_above_its_percent():
    rule = _rule(AlertKind.ABANDON_RATE, above_percent=3.0)
    assert not rule.takes({"alert": "abandon_rate_above", "percent": 3.0})
    assert rule.takes({"alert": "abandon_rate_above", "percent": 3.1})


def test_a_grouped_notice_says_how_many_lists_ten_and_says_what_to_do():
    items = [{"alert": "sla_at_risk", "lead_id": 100 + i, "phone_masked": MASKED,
              "deadline": moscow(2026, 12, 7, 14, 15).isoformat()} for i in range(12)]
    subject, body = notice_text(AlertKind.SLA_AT_RISK, items, "http://dialer.example/console/teamlead", MSK)
    assert subject == "Заявки под угрозой срыва срока первого звонка: 12"
    assert body.count("• ") == 10 and "… и ещё 2" in body
    assert "заявка 100, +7912***6789: срок 07.12 14:15" in body
    assert "Что сделать:" in body and "http://dialer.example/console/teamlead" in body
    assert PHONE not in body


@pytest.mark.parametrize("kind, channel, to, amount, above, group, reason", [
    ("storm", "email", "a@b.ru", None, None, 300, "unknown alert kind"),
    ("complaint", "pigeon", "a@b.ru", None, None, 300, "unknown channel"),
    ("complaint", "email", "not-an-address", None, None, 300, "not an e-mail address"),
    ("complaint", "telegram", "Иван", None, None, 300, "not a Telegram chat id"),
    ("complaint", "webhook", "ftp://x", None, None, 300, "not an http(s) URL"),
    ("large_order", "email", "a@b.ru", None, None, 300, "needs --min-amount"),
    ("large_order", "email", "a@b.ru", "много", None, 300, "is not a number"),
    ("large_order", "email", "a@b.ru", "-5", None, 300, "from 0 up to"),
    ("complaint", "email", "a@b.ru", "100", None, 300, "only goes with --kind large_order"),
    ("abandon_rate_above", "email", "a@b.ru", None, 150.0, 300, "percent from 0 up to 100"),
    ("abandon_rate_above", "email", "a@b.ru", None, None, 300, "needs --above"),
    ("complaint", "email", "a@b.ru", None, None, -1, "from 0 to 86400"),
])
def test_a_rule_that_cannot_work_is_refused_with_the_reason(kind, channel, to, amount, above, group, reason):
    with pytest.raises(UsageError, match=re.escape(reason)):
        check_rule(kind, channel, to, amount, above, group)


# ---------------------------------------------------------------- raised with the fact that caused them

def test_a_complaint_raises_one_alert_in_the_disposition_transaction_with_the_masked_phone(db):
    call = connected_call(db, NOW, PHONE)
    record_disposition(db, call.attempt_id, DispositionInput("complaint", comment="Звонят пятый раз!"), now=NOW,
                       center_zone=CENTER, recorded_by="Ольга", operator_id=None)
    [alert] = alerts(db)
    assert (alert.payload["alert"], alert.payload["comment"], alert.payload["phone_masked"]) == \
        ("complaint", "Звонят пятый раз!", MASKED)
    assert PHONE not in str(alert.payload) and alert.created_at == NOW


def test_a_large_order_alert_only_from_the_smallest_rule_amount_on(db):
    add_rule(db, "large_order", "email", "owner@shop.ru", min_amount="50000", by="test", now=NOW)
    big, small = connected_call(db, NOW, "+79123450001"), connected_call(db, NOW, "+79123450002")
    for call, amount in ((big, 60000), (small, 49999)):
        record_disposition(db, call.attempt_id, DispositionInput("confirmed", amount=amount, currency="RUB"),
                           now=NOW, center_zone=CENTER, recorded_by="Ольга", operator_id=None)
    assert [(a.payload["alert"], Decimal(a.payload["amount"]), a.lead_id) for a in alerts(db)] == \
        [("large_order", Decimal(60000), big.lead_id)]


def test_no_large_order_alert_without_a_rule(db):
    call = connected_call(db, NOW)
    record_disposition(db, call.attempt_id, DispositionInput("confirmed", amount=10**6, currency="RUB"), now=NOW,
                       center_zone=CENTER, recorded_by="Ольга", operator_id=None)
    assert alerts(db) == []


def test_the_last_allowed_unanswered_attempt_raises_unreachable(db):
    max_attempts = 7   # the policy's default (README: max_attempts)
    lead_id = add_lead(db, NOW, PHONE, attempts=max_attempts - 1)
    attempt_id = add_attempt(db, lead_id, NOW, result=None, state="ringing", attempt_no=max_attempts)
    with db.write() as session:
        record_attempt_result(session, attempt_id, "no_answer", NOW, center_zone=CENTER)
        lead, attempt = session.get(Lead, lead_id), session.get(CallAttempt, attempt_id)
        session.refresh(lead)
        session.refresh(attempt)
        enqueue_outcome(session, attempt, lead, None, NOW)
    assert (lead.status, lead.close_reason) == ("closed", "unreachable")
    [alert] = alerts(db)
    assert (alert.payload["alert"], alert.payload["attempts"], alert.lead_id) == \
        ("unreachable_after_all_attempts", max_attempts, lead_id)


def test_a_lead_near_its_deadline_then_past_it_raises_at_risk_once_then_breached_once(db):
    # received 14:00 Moscow in the day: deadline 14:15 (15 min), at risk from 14:10 (5 min warning)
    with db.write() as session:
        lead = Lead(received_at=NOW, source="webhook", phone_raw=PHONE, phone_e164=PHONE, timezone=CENTER,
                    status="new", attempts_count=0, contacts_count=0)
        session.add(lead)
        session.flush()
        lead_id = lead.id
    for minute in (9, 11, 12, 16, 17):
        when = NOW + timedelta(minutes=minute)
        with db.write() as session:
            sla_alerts(session, leads_at_risk(session, when, center_zone=CENTER), when)
    assert [(a.payload["alert"], a.created_at) for a in alerts(db)] == \
        [("sla_at_risk", NOW + timedelta(minutes=11)), ("sla_breached", NOW + timedelta(minutes=16))]
    assert all(datetime.fromisoformat(a.payload["deadline"]) == moscow(2026, 12, 7, 14, 15) and a.lead_id == lead_id
               for a in alerts(db))


def test_abandon_rate_alert_once_a_day_when_above_the_lowest_rule(db):
    settings = settings_for(db, **{"alerts.abandon_min_answered": 20})
    add_rule(db, "abandon_rate_above", "email", "lead@shop.ru", above_percent=3.0, by="test", now=NOW)
    lead_id = add_lead(db, NOW)
    for i in range(19):
        add_attempt(db, lead_id, NOW - timedelta(minutes=i), attempt_no=i + 1)   # connected
    add_attempt(db, lead_id, NOW, result="abandoned", attempt_no=20)
    with db.write() as session:   # 1 of 20 answered = 5% > 3%
        assert abandon_alert(session, NOW, settings)
        assert not abandon_alert(session, NOW + timedelta(hours=1), settings)   # the same day: once
    [alert] = alerts(db, "abandon_rate_above")
    assert (alert.payload["abandoned"], alert.payload["answered"], alert.payload["percent"]) == (1, 20, 5.0)


def test_an_outcome_the_crm_never_takes_raises_crm_dead_letters(db):
    settings = settings_for(db, **{"crm.webhook_url": f"http://127.0.0.1:{free_port()}/nobody",
                                   "crm.max_failures": 1})
    call = connected_call(db, NOW)
    record_disposition(db, call.attempt_id, DispositionInput("no_decision"), now=NOW, center_zone=CENTER,
                       recorded_by="Ольга", operator_id=None)
    counts = asyncio.run(OutboxSender(db, settings.crm, ManualClock(NOW)).send_due(NOW))
    assert counts.dead == 1
    [alert] = alerts(db, "crm_dead_letters")
    assert alert.payload["lead_id"] == call.lead_id and alert.payload["phone_masked"] == MASKED


# ---------------------------------------------------------------- grouping and rate limits

def test_one_notice_then_the_storm_waits_and_goes_out_as_one_notice(db):
    rule = add_rule(db, "sla_at_risk", "webhook", "http://hooks.example/x", group_seconds=300, by="t", now=NOW)
    sla_risk(db, 1, NOW)
    assert dispatch_at(db, NOW).notices == 1
    for lead in range(2, 14):   # 12 more at risk within the rule's 5 minutes
        sla_risk(db, lead, NOW + timedelta(seconds=10))
    held = dispatch_at(db, NOW + timedelta(seconds=20))
    assert (held.notices, held.held) == (0, 12)
    later = dispatch_at(db, NOW + timedelta(seconds=300))
    assert (later.notices, later.grouped) == (1, 12)
    assert dispatch_at(db, NOW + timedelta(seconds=900)).notices == 0
    assert [(n.payload["count"], n.payload["rule_id"]) for n in notices(db)] == [(1, rule.id), (12, rule.id)]
    assert notices(db)[1].payload["subject"] == "Заявки под угрозой срыва срока первого звонка: 12"
    assert {a.status for a in alerts(db)} == {"sent"}


def test_two_rules_of_a_kind_each_get_one_notice_and_an_alert_no_rule_wants_is_cancelled_with_why(db):
    add_rule(db, "sla_at_risk", "email", "lead@shop.ru", by="t", now=NOW)
    add_rule(db, "sla_at_risk", "telegram", "-1001234567890", by="t", now=NOW)
    sla_risk(db, 1, NOW)
    with db.write() as session:
        raise_alert(session, AlertKind.AMI_DOWN, {"pbx": "pbx1", "since": NOW.isoformat()}, "alert-ami_down-x", NOW)
    assert dispatch_at(db, NOW).notices == 2
    assert sorted(n.payload["channel"] for n in notices(db)) == ["email", "telegram"]
    sla, ami = alerts(db)
    assert sla.status == "sent"
    assert (ami.status, ami.last_error) == ("cancelled", "no enabled alert rule takes 'ami_down'")
    assert dispatch_at(db, NOW + timedelta(hours=1)).notices == 0


def test_the_same_event_raised_twice_is_one_alert(db):
    sla_risk(db, 1, NOW)
    sla_risk(db, 1, NOW + timedelta(seconds=5))
    assert len(alerts(db)) == 1


def test_a_rule_that_already_notified_is_disabled_not_deleted(db):
    used = add_rule(db, "sla_at_risk", "email", "lead@shop.ru", by="t", now=NOW)
    unused = add_rule(db, "complaint", "email", "lead@shop.ru", by="t", now=NOW)
    sla_risk(db, 1, NOW)
    dispatch_at(db, NOW)
    remove_rule(db, used.id)
    remove_rule(db, unused.id)
    assert [(r.id, r.enabled) for r in list_rules(db)] == [(used.id, False)]


# ---------------------------------------------------------------- delivery over real servers

def test_telegram_429_retry_after_is_honoured_and_the_message_arrives_once(sqlite_db):
    db = sqlite_db
    with HttpRecorder() as bot:
        bot.replies = [(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                              "parameters": {"retry_after": 7}})]
        settings = settings_for(db, **{"alerts.telegram_bot_token": "123:ABC", "alerts.telegram_api_url": bot.url})
        add_rule(db, "complaint", "telegram", "-1001234567890", by="t", now=NOW)
        call = connected_call(db, NOW)
        record_disposition(db, call.attempt_id, DispositionInput("complaint", comment="хамство"), now=NOW,
                           center_zone=CENTER, recorded_by="Ольга", operator_id=None)
        worker = AlertWorker(db, settings, ManualClock(NOW))
        _, first = asyncio.run(worker.run_once(NOW))
        assert (first.sent, first.retrying) == (0, 1)
        asyncio.run(worker.run_once(NOW + timedelta(seconds=6)))
        assert len(bot.requests) == 1        # 6 s < retry_after: not tried again
        _, second = asyncio.run(worker.run_once(NOW + timedelta(seconds=7)))
        assert second.sent == 1
        asyncio.run(worker.run_once(NOW + timedelta(seconds=60)))
        assert [r.status for r in bot.requests] == [429, 200]
        [accepted] = bot.accepted()
    assert accepted.path == "/bot123:ABC/sendMessage"
    assert accepted.body["chat_id"] == "-1001234567890"
    assert "Жалоба клиента: 1" in accepted.body["text"] and "«хамство»" in accepted.body["text"]
    assert MASKED in accepted.body["text"] and PHONE not in accepted.body["text"]
    assert notices(db)[0].status == "sent"


def test_smtp_down_then_up_delivers_the_e_mail_once(sqlite_db):
    db = sqlite_db
    with SmtpInbox() as inbox:
        settings = settings_for(db, **{"alerts.smtp_host": "127.0.0.1", "alerts.smtp_port": inbox.port,
                                       "alerts.from_address": "dialer@shop.ru"})
        add_rule(db, "sla_at_risk", "email", "lead@shop.ru", by="t", now=NOW)
        sla_risk(db, 7, NOW)
        worker = AlertWorker(db, settings, ManualClock(NOW))
        inbox.refuse = True
        _, down = asyncio.run(worker.run_once(NOW))
        assert (down.sent, down.retrying, len(inbox.received)) == (0, 1, 0)
        inbox.refuse = False
        for seconds in (5, 20, 40, 80):   # the retry is due 10 s +-20% after the failure
            asyncio.run(worker.run_once(NOW + timedelta(seconds=seconds)))
        [mail] = inbox.wait_for(1)
    assert mail.rcpt == ("lead@shop.ru",)
    assert mail.message["Subject"] == "Заявки под угрозой срыва срока первого звонка: 1"
    assert mail.message["Message-ID"] == f"<{notices(db)[0].idempotency_key}@dialer.alerts>"
    assert "заявка 7" in mail.body and "Что сделать:" in mail.body
    assert len(inbox.received) == 1


class _Keep:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((session.extended_smtp, envelope.content))
        return "250 OK"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


def test_e_mail_alerts_go_over_starttls_checked_against_the_relays_ca(sqlite_db, tmp_path):
    db = sqlite_db
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, port = _Keep(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        add_rule(db, "ami_down", "email", "oncall@shop.ru", by="t", now=NOW)
        with db.write() as session:
            raise_alert(session, AlertKind.AMI_DOWN, {"pbx": "pbx1", "since": NOW.isoformat()}, "alert-ami-1", NOW)
        plain = settings_for(db, **{"alerts.smtp_host": "127.0.0.1", "alerts.smtp_port": port,
                                    "alerts.smtp_starttls": False})
        _, refused = asyncio.run(AlertWorker(db, plain, ManualClock(NOW)).run_once(NOW))
        assert (refused.sent, handler.messages) == (0, [])   # the server insists on STARTTLS
        tls = settings_for(db, **{"alerts.smtp_host": "127.0.0.1", "alerts.smtp_port": port,
                                  "alerts.smtp_starttls": True, "alerts.smtp_ca_file": str(cert)})
        _, sent = asyncio.run(AlertWorker(db, tls, ManualClock(NOW)).run_once(NOW + timedelta(minutes=5)))
    finally:
        controller.stop()
    assert sent.sent == 1 and len(handler.messages) == 1
    message = email.message_from_bytes(handler.messages[0][1], policy=email.policy.default)
    assert message["Subject"] == "Нет связи с АТС"
    assert "АТС pbx1: нет связи с 07.12 14:00" in message.get_content()


def test_webhook_notice_carries_the_idempotency_key_and_dead_letters_are_listed_and_retried(cli_db, run_dialer):
    db = cli_db
    with HttpRecorder() as hook:
        hook.replies = [(500, {"error": "down"})] * 2
        settings = settings_for(db, **{"alerts.max_failures": 2})
        add_rule(db, "sla_at_risk", "webhook", hook.url + "/alerts", by="t", now=NOW)
        sla_risk(db, 3, NOW)
        worker = AlertWorker(db, settings, ManualClock(NOW))
        asyncio.run(worker.run_once(NOW))
        _, second = asyncio.run(worker.run_once(NOW + timedelta(minutes=5)))
        assert second.dead == 1
        listed = run_dialer("alerts", "list", "--dead", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        assert '"status": "dead"' in listed.stdout and "HTTP 500" in listed.stdout
        again = run_dialer("alerts", "retry")
        assert again.returncode == 0 and "1 notice(s) queued again" in again.stdout
        # the CLI requeues at the real time (it runs on the system clock)
        _, third = asyncio.run(worker.run_once(datetime.now(MSK) + timedelta(seconds=1)))
        assert third.sent == 1
        [accepted] = hook.accepted()
    key = notices(db)[0].idempotency_key
    assert accepted.headers["idempotency-key"] == key and accepted.body["idempotency_key"] == key
    assert (accepted.body["kind"], accepted.body["count"]) == ("sla_at_risk", 1)
    assert [r.headers["idempotency-key"] for r in hook.requests] == [key] * 3


# ---------------------------------------------------------------- the CLI

def test_alerts_cli_rules_and_a_test_alert_through_a_webhook(cli_db, run_dialer):
    bad = run_dialer("alerts", "rules", "add", "--kind", "large_order", "--channel", "email", "--to", "owner@shop.ru")
    assert bad.returncode == 2 and "needs --min-amount" in bad.stderr and "Traceback" not in bad.stderr
    none = run_dialer("alerts", "test", "--kind", "complaint")
    assert none.returncode == 2 and "no enabled rule for complaint" in none.stderr
    unknown = run_dialer("alerts", "test", "--kind", "всё")
    assert unknown.returncode == 2 and "unknown alert kind" in unknown.stderr
    with HttpRecorder() as hook:
        added = run_dialer("alerts", "rules", "add", "--kind", "complaint", "--channel", "webhook", "--to", hook.url + "/a")
        assert added.returncode == 0, added.stderr
        tested = run_dialer("alerts", "test", "--kind", "complaint")
        assert tested.returncode == 0, tested.stdout + tested.stderr
        [got] = hook.accepted()
    assert got.body["test"] is True and got.body["subject"].startswith("Проверка оповещений: Жалоба клиента")
    listed = run_dialer("alerts", "rules", "list", "--format", "json")
    assert '"kind": "complaint"' in listed.stdout and '"channel": "webhook"' in listed.stdout


# ---------------------------------------------------------------- the daemon

def test_the_daemon_without_asterisk_alerts_ami_down_once_through_the_settings_webhook(sqlite_db):
    from kernel.clock import SystemClock
    from tests.daemon_harness import daemon_settings, running_daemon, wait_until
    db = sqlite_db

    async def scenario(hook: HttpRecorder) -> None:
        settings = daemon_settings(str(db.engine.url), free_port(),   # nothing listens there: no Asterisk
                                   **{"alerts.webhook_url": hook.url + "/ops", "alerts.ami_down_seconds": 1.0,
                                      "alerts.poll_seconds": 0.1, "metrics.enabled": False})
        async with running_daemon(settings, db, SystemClock()):
            await wait_until(lambda: hook.accepted(), timeout=60, what="the ami_down notice")
            await asyncio.sleep(0)   # let a pass in flight finish before the daemon stops

    with HttpRecorder() as hook:
        asyncio.run(scenario(hook))
        [got] = hook.accepted()
    assert (got.body["kind"], got.body["count"]) == ("ami_down", 1)
    assert got.body["subject"] == "Нет связи с АТС" and "dialer doctor" in got.body["text"]
    kinds = {r.kind.value for r in list_rules(db)}
    assert kinds == {k.value for k in AlertKind} - {"large_order"}   # alerts.webhook_url: every kind but large orders
    assert len(alerts(db, "ami_down")) == 1
