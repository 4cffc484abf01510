"""`dialer report` as a user runs it: a real process on a real SQLite file with the hand-built dataset."""

from __future__ import annotations

import csv
import io
import json

import pytest

from dialer.reports.groups import group_history
from dialer.reports.kpi import GLOSSARY
from tests import report_dataset

SPAN = ("--from", "2026-11-23", "--to", "2026-11-24")


@pytest.fixture
def ids(cli_db):
    return report_dataset.build(cli_db)


def test_summary_json_and_table(run_dialer, ids):
    done = run_dialer("report", *SPAN, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["zone"] == "Europe/Moscow" and data["from"].startswith("2026-11-23T00:00:00+03:00")
    [row] = data["rows"]
    # the same hand-computed figures as tests/test_reports.py::test_summary_every_kpi
    assert (row["leads"], row["actual"], row["contacted"], row["confirmed"]) == (9, 5, 4, 3)
    assert (row["order_sum"], row["average_check"], row["contact_rate_pct"]) == ("15500.00", "5166.67", 80.0)
    table = run_dialer("report", *SPAN)
    assert table.returncode == 0, table.stderr
    assert "contact_rate_pct" in table.stdout and "80.0" in table.stdout and "5166.67" in table.stdout


def test_by_day_operator_csv(run_dialer, ids):
    done = run_dialer("report", *SPAN, "--by", "day,operator", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    found = {(r["day"], r["operator"]): r for r in rows}
    assert found["2026-11-23", "Анна"]["talk_min"] == "5.0" and found["2026-11-23", "Анна"]["call_orders"] == "1"
    assert found["2026-11-24", "Борис"]["talk_min"] == "10.0"
    assert "leads" not in rows[0]      # leads are not split by operator


def test_refusals_by_reason_and_the_script_breakdown(run_dialer, ids):
    done = run_dialer("report", "refusals", *SPAN, "--format", "json")
    assert done.returncode == 0, done.stderr
    # the dataset's one refusal: L7's not_interested with the topic цена
    assert json.loads(done.stdout)["rows"] == [{"kind": "not_interested", "topic": "цена", "refusals": 1,
                                               "share_pct": 100.0}]
    table = run_dialer("report", "refusals", *SPAN)
    assert table.returncode == 0 and "not_interested" in table.stdout and "цена" in table.stdout
    done = run_dialer("report", *SPAN, "--by", "script", "--format", "csv")
    assert done.returncode == 0, done.stderr
    found = {r["script"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    # L1#2 was recorded with the script ru-order-first-contact: one conversation, one order of 12500
    assert (found["ru-order-first-contact"]["calls"], found["ru-order-first-contact"]["call_orders"]) == ("1", "1")
    assert found["ru-order-first-contact"]["call_order_sum"] == "12500.00"
    assert "worked_hours" not in found["ru-order-first-contact"]   # hours worked are not split by script
    by_operator = run_dialer("report", *SPAN, "--by", "operator", "--format", "json")
    assert by_operator.returncode == 0, by_operator.stderr
    assert all("occupancy_pct" in r for r in json.loads(by_operator.stdout)["rows"])


def test_abandon_budget(run_dialer, ids):
    done = run_dialer("report", "budget", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["limit_percent"], data["window_days"]) == (3.0, 30)   # the policy's defaults
    assert data["state"] in ("ok", "near", "over") and data["day_answered"] >= 0
    table = run_dialer("report", "budget")
    assert table.returncode == 0 and "abandon budget" in table.stdout


def test_xlsx_and_plot(run_dialer, ids, tmp_path):
    import openpyxl
    done = run_dialer("report", *SPAN, "--by", "day", "--format", "xlsx", "-o", "r.xlsx", "--plot", "charts.png")
    assert done.returncode == 0, done.stderr
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    sheet = book["summary"]
    header = [c.value for c in sheet[1]]
    first = dict(zip(header, [c.value for c in sheet[2]]))
    assert first["day"] == "2026-11-23" and first["leads"] == 7 and first["order_sum"] == 15500
    glossary = {r[0].value: r[1].value for r in book["glossary"].iter_rows(min_row=3)}
    assert glossary["contact_rate_pct"] == GLOSSARY["contact_rate_pct"]
    assert (tmp_path / "charts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = run_dialer("report", *SPAN, "--plot", "charts.svg", "--format", "json")
    assert svg.returncode == 0, svg.stderr
    text = (tmp_path / "charts.svg").read_text()
    assert "<svg" in text and "15 min target" in text


def test_results(run_dialer, ids):
    done = run_dialer("report", "results", *SPAN, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [(r["lead_name"], r["kind"], r["topic"]) for r in rows][:2] == [("L7", "not_interested", "цена"),
                                                                           ("L2", "confirmed", None)]
    assert rows[0]["script_gaps"] == "Есть ли гарантия на мотор?"
    table = run_dialer("report", "results", *SPAN, "--kind", "confirmed")
    assert table.returncode == 0, table.stderr
    assert "доставка" in table.stdout and "дорого" not in table.stdout


def test_operators_set_group(run_dialer, cli_db, ids):
    done = run_dialer("operators", "set", "PJSIP/op2", "--group", "Команда В", "--group-from", "2026-11-24T12:00")
    assert done.returncode == 0, done.stderr
    assert [(m.group, m.valid_from.isoformat()) for m in group_history(cli_db, ids["boris"])][-1] == (
        "Команда В", "2026-11-24T09:00:00+00:00")
    rows = json.loads(run_dialer("report", *SPAN, "--by", "group", "--format", "json").stdout)["rows"]
    assert {r["group"]: r["calls"] for r in rows} == {"Команда А": 4, "Команда Б": 1, "(no group)": 4}


@pytest.mark.parametrize("args, message", [
    (("--by", "weekly"), "unknown breakdown weekly"),
    (("--from", "вчера"), "is not a date or time"),
    (("--from", "2026-11-24", "--to", "2026-11-23"), "the period is empty"),
    (("--plot", "charts.gif"), "must end in .png or .svg"),
    (("--format", "xlsx"), "needs --output"),
    (("results", "--kind", "maybe"), "unknown disposition"),
])
def test_garbage_refused_with_a_reason(run_dialer, cli_db, args, message):
    done = run_dialer("report", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
