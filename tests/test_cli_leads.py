"""The `dialer` command as a subprocess: init, leads list/show, the DNC list, and its exit codes
(0 ok, 1 failure such as an unknown lead, 2 usage such as a bad flag or value)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from kernel.db.models import DncEntry
from leads.intake import Intake, LeadIn
from leads.lead import LeadStatus
from tests.conftest import utc

T0 = utc(2026, 11, 23, 9, 0)


@pytest.fixture
def leads(cli_db):
    """Four stored leads: new, duplicate, invalid, new (ids 1-4)."""
    intake = Intake(cli_db, dedup_window=timedelta(hours=24))
    outcomes = intake.submit([
        LeadIn("8 (912) 345-67-89", name="Иванов Иван", order_number="ЗК-1", product="Диван",
               extra={"Город": "Москва"}),
        LeadIn("+7 912 345 67 89", name="Иванов Иван", order_number="ЗК-1"),
        LeadIn("9999999999", name="Фейк"),
        LeadIn("9161234567", name="Петрова Анна, \"VIP\"", comment="после 18:00"),
    ], T0)
    assert [o.status for o in outcomes] == [LeadStatus.NEW, LeadStatus.DUPLICATE, LeadStatus.INVALID,
                                            LeadStatus.NEW]
    return outcomes


def test_given_a_fresh_file_when_init_runs_twice_then_the_schema_is_created_once(run_dialer, tmp_path):
    first = run_dialer("init")
    assert first.returncode == 0, first.stderr
    assert "database ready" in first.stdout and (tmp_path / "cli.db").exists()
    again = run_dialer("init")
    assert again.returncode == 0 and "already up to date" in again.stdout


def test_given_a_database_never_initialized_when_listing_then_exit_1_asking_for_init(run_dialer):
    result = run_dialer("leads", "list")
    assert result.returncode == 1
    assert "dialer init" in result.stderr and "Traceback" not in result.stderr


def test_given_stored_leads_when_listed_as_json_then_newest_first_with_cyrillic_intact(run_dialer, leads):
    result = run_dialer("leads", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["id"] for row in rows] == [4, 3, 2, 1]
    assert rows[3]["name"] == "Иванов Иван" and rows[3]["phone"] == "+79123456789"
    assert (rows[2]["status"], rows[2]["duplicate_of"]) == ("duplicate", 1)
    assert (rows[1]["status"], rows[1]["reason"]) == ("invalid", "obvious_fake")


def test_given_a_status_when_listed_as_csv_then_only_those_leads_in_valid_csv(run_dialer, leads):
    result = run_dialer("leads", "list", "--status", "new", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["id"], row["status"]) for row in rows] == [("4", "new"), ("1", "new")]
    assert rows[0]["name"] == 'Петрова Анна, "VIP"'


def test_given_stored_leads_when_listed_as_a_table_then_a_limit_applies(run_dialer, leads):
    result = run_dialer("leads", "list", "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert "Петрова Анна" in result.stdout and "Фейк" in result.stdout
    assert "Иванов Иван" not in result.stdout


def test_given_an_unknown_status_when_listing_then_exit_2_naming_the_statuses(run_dialer, cli_db):
    result = run_dialer("leads", "list", "--status", "hot")
    assert result.returncode == 2
    assert "hot" in result.stderr and "duplicate" in result.stderr


def test_given_a_lead_id_when_shown_as_json_then_every_stored_field(run_dialer, leads):
    result = run_dialer("leads", "show", "1", "--format", "json")
    assert result.returncode == 0, result.stderr
    lead = json.loads(result.stdout)
    assert (lead["id"], lead["phone_e164"], lead["phone_raw"], lead["order_number"], lead["product"]) == (
        1, "+79123456789", "8 (912) 345-67-89", "ЗК-1", "Диван")
    assert lead["extra"] == {"Город": "Москва"}
    assert lead["attempts"] == [] and lead["dispositions"] == []
    table = run_dialer("leads", "show", "2")
    assert table.returncode == 0 and "duplicate_of_id" in table.stdout


def test_given_an_unknown_lead_id_when_shown_then_exit_1(run_dialer, leads):
    result = run_dialer("leads", "show", "999")
    assert result.returncode == 1
    assert "999" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["leads", "show", "первый"], ["leads", "list", "--format", "xml"],
                                  ["leads", "frobnicate"], ["leads", "list", "--limit", "0"]])
def test_given_a_bad_argument_when_run_then_exit_2(run_dialer, args):
    assert run_dialer(*args).returncode == 2


def test_given_the_dnc_list_when_a_number_is_added_listed_and_removed_then_each_step_is_reported(
        run_dialer, cli_db):
    added = run_dialer("dnc", "add", "8 (912) 345-67-89", "--reason", "просил писать на почту", "--by", "оператор")
    assert added.returncode == 0, added.stderr
    assert "+7912***6789 added" in added.stdout and "3456789" not in added.stdout
    again = run_dialer("dnc", "add", "+79123456789")
    assert again.returncode == 0 and "already" in again.stdout

    listed = json.loads(run_dialer("dnc", "list", "--format", "json").stdout)
    assert [(r["phone"], r["reason"], r["added_by"]) for r in listed] == [
        ("+79123456789", "просил писать на почту", "оператор")]
    as_csv = list(csv.DictReader(io.StringIO(run_dialer("dnc", "list", "--format", "csv").stdout)))
    assert as_csv[0]["phone"] == "+79123456789"

    removed = run_dialer("dnc", "remove", "9123456789")
    assert removed.returncode == 0 and "removed" in removed.stdout
    with cli_db.read() as session:
        assert session.get(DncEntry, "+79123456789") is None
    missing = run_dialer("dnc", "remove", "9123456789")
    assert missing.returncode == 1 and "not on the DNC list" in missing.stderr


def test_given_a_number_that_cannot_be_called_when_added_to_dnc_then_exit_2(run_dialer, cli_db):
    result = run_dialer("dnc", "add", "не номер")
    assert result.returncode == 2 and "не номер" in result.stderr


def test_given_a_number_on_dnc_when_a_csv_with_it_is_imported_then_the_lead_is_dnc(run_dialer, cli_db, tmp_path):
    assert run_dialer("dnc", "add", "+79123456789").returncode == 0
    (tmp_path / "leads.csv").write_text("телефон;имя\n8 912 345 67 89;Иван\n89161234567;Анна\n", encoding="utf-8")
    result = run_dialer("leads", "import", "leads.csv", "--format", "json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["dnc"], summary["new"]) == (1, 1)
