"""The consent and caller-ID ledger through the CLI: `dialer leads show` and `dialer leads trail PHONE`
list every lead, call (with its caller ID), e-mail (with its template version), consent and DNC change
of a number, in time order."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from dialer.chains.catalog import PACKAGED_CATALOG, load_catalog
from dialer.chains.mailer import EmailSender
from dialer.chains.store import tick, unsubscribe
from dialer.chains.store import chain_of_lead
from kernel.db.models import CallAttempt, Lead, TouchChain
from kernel.settings import ChainsSettings
from leads.dnc import add as dnc_add, remove as dnc_remove
from leads.intake import Intake, LeadIn
from tests.conftest import moscow
from tests.smtp_inbox import SmtpInbox

T0 = moscow(2026, 12, 7, 12, 0)


def test_leads_show_and_trail_tell_why_we_contacted_a_number(cli_db, run_dialer):
    db = cli_db
    [lead] = Intake(db).submit([LeadIn(phone="+7 912 777-00-01", name="Анна", product="Чайник", source="site",
                                       extra={"email": "anna@example.ru", "form_id": "callback-1",
                                              "consent_version": "v3", "ip": "203.0.113.7",
                                              "user_agent": "Mozilla/5.0 Firefox/120"})], T0)
    with db.write() as session:   # one unanswered call, then the attempts run out (as the daemon leaves it)
        session.add(CallAttempt(lead_id=lead.lead_id, attempt_no=1, daemon_id="d", state="ended", result="no_answer",
                                claimed_at=T0 + timedelta(minutes=2), originated_at=T0 + timedelta(minutes=2),
                                ended_at=T0 + timedelta(minutes=3), caller_id="+74951110001"))
        row = session.get(Lead, lead.lead_id)
        row.status, row.close_reason, row.closed_at = "closed", "unreachable", T0 + timedelta(hours=1)
    with SmtpInbox() as inbox:
        settings = ChainsSettings(smtp_host="127.0.0.1", smtp_port=inbox.port)
        now = T0 + timedelta(hours=1)
        tick(db, load_catalog(PACKAGED_CATALOG), settings, now)
        EmailSender(db, settings, _Clock(now), random.Random(1)).send_due(now)
        inbox.wait_for(1)
    with db.read() as session:
        token = session.query(TouchChain.token).scalar()
    unsubscribe(db, token, T0 + timedelta(days=1), ip="198.51.100.9", user_agent="Chrome/131")
    dnc_add(db, "+79127770001", region="RU", reason="просил не звонить", added_by="cli:olga",
            now=T0 + timedelta(days=2))
    dnc_remove(db, "+79127770001", region="RU", removed_by="cli:olga", now=T0 + timedelta(days=3))

    shown = run_dialer("leads", "show", str(lead.lead_id), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    card = json.loads(shown.stdout)
    assert card["consent"] == "site, form callback-1, consent v3, IP 203.0.113.7, Mozilla/5.0 Firefox/120"
    assert card["attempts"][0]["caller_id"] == "+74951110001"
    assert card["emails"][0]["template"].startswith("offer-gift.v1.ru#")
    assert card["email_chain"] == "unreached v1 (exhausted): stopped, unsubscribe"
    assert [(c["channel"], c["granted"], c["source"]) for c in card["consent_changes"]] == [
        ("email", False, "unsubscribe_link"), ("call", False, "dnc"), ("call", True, "dnc_removed")]

    result = run_dialer("leads", "trail", "8 912 777 00 01", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["kind"] for r in rows] == ["lead", "call", "closed", "chain", "email", "consent", "chain", "dnc", "dnc"]
    assert [r["at"][:16] for r in rows] == ["2026-12-07T12:00", "2026-12-07T12:02", "2026-12-07T13:00",
                                            "2026-12-07T13:00", "2026-12-07T13:00", "2026-12-08T12:00",
                                            "2026-12-08T12:00", "2026-12-09T12:00", "2026-12-10T12:00"]
    assert "caller ID +74951110001 -> no_answer" in rows[1]["what"]
    assert "offer-gift.v1.ru#" in rows[4]["what"] and "(sent)" in rows[4]["what"]
    assert "IP 198.51.100.9" in rows[5]["what"] and "withdrawn" in rows[5]["what"]
    assert rows[7]["what"].startswith("call withdrawn (dnc, by cli:olga): просил не звонить")
    table = run_dialer("leads", "trail", "+79127770001")
    assert table.returncode == 0 and "offer-gift" in table.stdout
    unknown = run_dialer("leads", "trail", "12")
    assert unknown.returncode == 2 and "not a phone number" in unknown.stderr
    assert chain_of_lead(db, lead.lead_id)["status"] == "stopped"


class _Clock:
    def __init__(self, now):
        self._now = now

    def now(self):
        return self._now


def test_the_lead_card_shows_the_caller_id_the_consent_and_the_emails(db):
    from zoneinfo import ZoneInfo
    from dialer.console.cards import ScriptBook, load_call_card
    from dialer.console.pages import call_card
    from kernel.db.models import TouchEmail
    from scripts_catalog import PACKAGED_CATALOG as SCRIPTS
    from tests.outcome_rows import add_attempt, add_lead, add_operator
    operator = add_operator(db, T0, "Анна")
    lead_id = add_lead(db, T0, "+79127770002", status="new")
    with db.write() as session:
        lead = session.get(Lead, lead_id)
        lead.extra = {"form_id": "callback-2", "consent_text": "Согласен на звонок и письма", "ip": "203.0.113.8"}
        run = TouchChain(lead_id=lead_id, phone_e164="+79127770002", email="x@example.ru", chain_id="unreached",
                         chain_version=1, entry="exhausted", language="ru", zones="Europe/Moscow", status="done",
                         steps_sent=1, token="tok-card", started_at=T0 - timedelta(days=5))
        session.add(run)
        session.flush()
        session.add(TouchEmail(chain_run_id=run.id, lead_id=lead_id, step=1, template="offer-gift.v1.ru#abcd1234",
                               to_address="x@example.ru", subject="Подарок", planned_at=T0 - timedelta(days=5),
                               queued_at=T0 - timedelta(days=5)))
    call = add_attempt(db, lead_id, T0, operator_id=operator)
    with db.write() as session:
        session.get(CallAttempt, call).caller_id = "+74951110002"
    card = load_call_card(db, call, ScriptBook(SCRIPTS, "ru"), "Анна")
    assert card.caller_id == "+74951110002"
    # the operator's card is in the operator's language (issue 16); the CLI's `leads show` stays English
    assert card.consent == "webhook, форма callback-2, согласие «Согласен на звонок и письма», IP 203.0.113.8"
    assert card.emails == ("2026-12-02 offer-gift.v1.ru: Подарок",)
    page = call_card(card, ZoneInfo("Europe/Moscow"), T0, "Europe/Moscow")
    assert '<span id="lead-caller-id">+74951110002</span>' in page
    assert "форма callback-2" in page and "offer-gift.v1.ru: Подарок" in page


def test_the_nightly_export_carries_the_caller_id_and_the_consent(db, tmp_path):
    import csv
    from dialer.crm.export import export_outcomes
    from dialer.crm.outbox import enqueue_outcome
    from kernel.settings import load_settings
    [lead] = Intake(db).submit([LeadIn(phone="+79127770003", source="site", extra={
        "form_id": "callback-3", "consent_version": "v7", "ip": "203.0.113.9", "user_agent": "Safari/17"})], T0)
    with db.write() as session:
        attempt = CallAttempt(lead_id=lead.lead_id, attempt_no=1, daemon_id="d", state="ended", result="busy",
                              claimed_at=T0, ended_at=T0 + timedelta(seconds=20), caller_id="+74951110001")
        session.add(attempt)
        session.flush()
        enqueue_outcome(session, attempt, session.get(Lead, lead.lead_id), None, T0 + timedelta(seconds=20))
    settings = load_settings(env={}, overrides={"db_url": str(db.engine.url), "export.directory": str(tmp_path)})
    result = export_outcomes(db, settings, T0 + timedelta(hours=16))
    with open(result.path, encoding="utf-8-sig", newline="") as stream:
        [row] = list(csv.DictReader(stream, delimiter=";"))
    assert (row["caller_id"], row["consent_form_id"], row["consent_version"], row["consent_ip"],
            row["consent_user_agent"]) == ("+74951110001", "callback-3", "v7", "203.0.113.9", "Safari/17")
