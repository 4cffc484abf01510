"""'Write, don't call': the webhook/CSV field and the disposition switch the lead and every open lead with
its number to e-mail; the claim never returns them; `dialer why` says so. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from dialer.dispositions import record_disposition
from kernel.db.models import Lead
from leads.contact import wants_email
from leads.disposition import DispositionInput
from leads.intake import Intake, LeadIn
from leads.policy.claim import claim_next
from leads.policy.queue import explain_lead
from leads.policy.why import Rule
from tests.conftest import moscow
from tests.outcome_rows import add_lead, connected_call

NOW = moscow(2026, 12, 7, 12, 0)
CENTER = "Europe/Moscow"


def statuses(db, phone):
    with db.read() as session:
        return [(lead.status, lead.close_reason) for lead in
                session.scalars(select(Lead).where(Lead.phone_e164 == phone).order_by(Lead.id))]


def test_the_field_values_that_ask_for_email():
    for extra in ({"write_instead": True}, {"write_instead": "да"}, {"contact_by": "email"}, {"contact_by": "E-mail"},
                  {"write_instead": 1}, {"write_instead": "true"}):
        assert wants_email(extra), extra
    for extra in (None, {}, {"write_instead": False}, {"contact_by": "phone"}, {"write_instead": "нет"},
                  {"write_instead": 0}, {"write_instead": None}, {"write_instead": ["email"]}):
        assert not wants_email(extra), extra


def test_a_lead_sent_with_write_instead_closes_every_open_lead_of_the_number_and_is_never_claimed(db):
    intake = Intake(db)
    [first] = intake.submit([LeadIn(phone="+79121110001", name="Анна", order_number="A-1", source="site")], NOW)
    [other] = intake.submit([LeadIn(phone="+79121110002", name="Пётр", source="site")], NOW)
    assert first.status.value == "new"
    [wish] = intake.submit([LeadIn(phone="8 (912) 111-00-01", name="Анна", order_number="A-2", source="site",
                                   extra={"email": "anna@example.ru", "contact_by": "email"})],
                           NOW + timedelta(minutes=1))
    assert (wish.status.value, wish.reason) == ("closed", "write_instead")
    assert statuses(db, "+79121110001") == [("closed", "write_instead"), ("closed", "write_instead")]
    explanation = explain_lead(db, first.lead_id, NOW + timedelta(minutes=2), center_zone=CENTER)
    assert [b.rule for b in explanation.verdict.blocks] == [Rule.WRITE_INSTEAD]
    assert "asked to be written to, not called" in explanation.verdict.blocks[0].message
    claim = claim_next(db, daemon_id="t", now=NOW + timedelta(minutes=2), center_zone=CENTER)
    assert claim is not None and claim.lead_id == other.lead_id   # the other customer is still called
    assert claim_next(db, daemon_id="t", now=NOW + timedelta(minutes=3), center_zone=CENTER) is None


def test_the_disposition_write_instead_switches_the_call_and_other_open_leads_of_the_number(db):
    call = connected_call(db, NOW, "+79121110003")
    second = add_lead(db, NOW, "+79121110003", status="new")
    record = record_disposition(db, call.attempt_id, DispositionInput("write_instead", comment="пишите на почту"),
                                now=NOW, center_zone=CENTER, recorded_by="cli:test")
    assert (record.lead_status, record.close_reason, record.other_leads_closed) == ("closed", "write_instead", 1)
    assert statuses(db, "+79121110003") == [("closed", "write_instead"), ("closed", "write_instead")]
    assert claim_next(db, daemon_id="t", now=NOW + timedelta(minutes=1), center_zone=CENTER) is None
    assert explain_lead(db, second, NOW, center_zone=CENTER).verdict.blocks[0].rule is Rule.WRITE_INSTEAD


def test_a_later_lead_without_the_wish_is_a_new_request_to_be_called(db):
    intake = Intake(db)
    intake.submit([LeadIn(phone="+79121110004", source="site", extra={"write_instead": True})], NOW)
    [later] = intake.submit([LeadIn(phone="+79121110004", order_number="B-7", source="site")],
                            NOW + timedelta(days=2))
    assert later.status.value == "new"


def test_a_csv_column_write_instead_switches_the_rows_that_ask(cli_db, run_dialer, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("Телефон;Имя;email;write_instead\n+79121110010;Анна;anna@example.ru;да\n"
                    "+79121110011;Пётр;;\n", encoding="cp1251")
    result = run_dialer("leads", "import", str(path), "--encoding", "cp1251")
    assert result.returncode == 0, result.stderr
    assert statuses(cli_db, "+79121110010") == [("closed", "write_instead")]
    assert statuses(cli_db, "+79121110011") == [("new", None)]
