"""The nightly export: each outcome in exactly one file across runs, crashes and missed nights;
atomic files; CSV that Excel opens with Cyrillic; JSONL; the APScheduler job. Both databases."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from dialer.crm import export
from dialer.crm.export import (JOB_ID, ExportFailed, catch_up_missed_export, export_outcomes, export_range,
                               previous_run_time, schedule_nightly_export, watermark)
from kernel.db.engine import Database
from kernel.db.models import OutboxMessage
from dialer.dispositions import record_disposition
from kernel.settings import ExportSettings, Settings
from leads.disposition import DispositionInput
from tests.conftest import moscow
from tests.outcome_rows import add_lead, connected_call, unanswered_outcome

NIGHT = moscow(2026, 11, 24, 2, 0)
DAY = moscow(2026, 11, 23, 12, 0)
REPO = Path(__file__).resolve().parent.parent


def settings_for(db: Database, tmp_path: Path, **export_values) -> Settings:
    return Settings(db_url=db.url, export=ExportSettings(directory=str(tmp_path / "exports"), **export_values))


def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "exports"
    return sorted(folder.iterdir()) if folder.exists() else []


def outcomes_made(db: Database, count: int, now, phone_prefix: str = "+7912300") -> list[int]:
    ids = []
    for i in range(count):
        lead_id = add_lead(db, now, f"{phone_prefix}{i:04d}", name="Сергей Ёжиков")
        ids.append(unanswered_outcome(db, lead_id, 1, now))
    return ids


def read_csv(path: Path, delimiter: str = ";") -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream, delimiter=delimiter))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def exported_ids(path: Path) -> list[int]:
    if path.suffix == ".jsonl":
        return [row["outcome_id"] for row in read_jsonl(path)]
    return [int(row["outcome_id"]) for row in read_csv(path)]


# ---------------------------------------------------------------- exactly once

def test_given_two_runs_then_their_files_are_disjoint_and_together_hold_every_outcome(db, tmp_path):
    settings = settings_for(db, tmp_path)
    first_batch = outcomes_made(db, 5, DAY)
    first = export_outcomes(db, settings, NIGHT)
    second_batch = outcomes_made(db, 3, NIGHT + timedelta(hours=8), "+7912400")
    second = export_outcomes(db, settings, NIGHT + timedelta(days=1))
    empty = export_outcomes(db, settings, NIGHT + timedelta(days=2))
    assert (first.rows, second.rows, empty.rows) == (5, 3, 0)
    assert (first.batch, second.batch, empty.batch) == (1, 2, 3)
    assert len({first.path, second.path, empty.path}) == 3
    assert exported_ids(first.path) == first_batch
    assert exported_ids(second.path) == second_batch
    assert exported_ids(empty.path) == []
    assert first.path.name == "outcomes-2026-11-24_0200-b000001.csv"
    assert files(tmp_path) == sorted(p.path for p in (first, second, empty))


def test_until_leaves_later_outcomes_for_the_next_run(db, tmp_path):
    settings = settings_for(db, tmp_path)
    early = outcomes_made(db, 2, DAY)
    late = outcomes_made(db, 2, DAY + timedelta(hours=6), "+7912400")
    first = export_outcomes(db, settings, NIGHT, until=DAY + timedelta(hours=1))
    second = export_outcomes(db, settings, NIGHT)
    assert (exported_ids(first.path), exported_ids(second.path)) == (early, late)


def test_given_a_crash_between_file_and_watermark_then_the_rerun_rewrites_the_same_file_and_nothing_doubles(
        db, tmp_path, monkeypatch):
    settings = settings_for(db, tmp_path)
    made = outcomes_made(db, 4, DAY)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut after the rename")

    with monkeypatch.context() as patch:
        patch.setattr(export, "_finish", crash)
        with pytest.raises(RuntimeError):
            export_outcomes(db, settings, NIGHT)
    assert watermark(db).state == "open"
    [written] = files(tmp_path)
    late = outcomes_made(db, 2, NIGHT + timedelta(minutes=1), "+7912400")   # arrive before the rerun
    rerun = export_outcomes(db, settings, NIGHT + timedelta(minutes=5))
    assert rerun.resumed and rerun.path == written and rerun.batch == 1
    assert exported_ids(rerun.path) == made
    assert watermark(db).state == "done"
    following = export_outcomes(db, settings, NIGHT + timedelta(days=1))
    assert exported_ids(following.path) == late
    every = [i for p in files(tmp_path) for i in exported_ids(p)]
    assert sorted(every) == sorted(made + late) and len(every) == len(set(every))


def test_given_a_crash_while_writing_then_no_partial_file_is_left_and_the_rerun_completes(db, tmp_path, monkeypatch):
    settings = settings_for(db, tmp_path)
    made = outcomes_made(db, 6, DAY)
    written = []

    def write_then_fail(self, outcome_id, payload):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(outcome_id)

    with monkeypatch.context() as patch:
        patch.setattr(export.CsvOutcomes, "write", write_then_fail)
        with pytest.raises(ExportFailed, match="disk full; batch 1 stays open"):
            export_outcomes(db, settings, NIGHT)
    assert files(tmp_path) == []          # neither the final name nor a temporary file
    rerun = export_outcomes(db, settings, NIGHT + timedelta(hours=1))
    assert rerun.resumed and exported_ids(rerun.path) == made


def test_given_an_outcome_committed_after_a_higher_id_was_exported_then_the_next_run_takes_it(pg_url, tmp_path):
    """PostgreSQL hands out ids at insert and commits in any order: the watermark must not be an id."""
    db = Database(pg_url)
    try:
        from tests.conftest import _truncate_all
        _truncate_all(db)
        settings = settings_for(db, tmp_path)
        slow = db.write()
        session = slow.__enter__()
        lower = OutboxMessage(topic="outcome", idempotency_key="slow-commit", payload={"lead_id": None},
                              status="pending", next_try_at=DAY, created_at=DAY)
        session.add(lower)
        session.flush()                                  # id taken, not committed
        quick = outcomes_made(db, 1, DAY + timedelta(seconds=1))
        assert quick[0] > lower.id
        first = export_outcomes(db, settings, NIGHT)
        slow.__exit__(None, None, None)                  # commits now, with the lower id
        second = export_outcomes(db, settings, NIGHT + timedelta(days=1))
        assert exported_ids(first.path) == quick
        assert exported_ids(second.path) == [lower.id]
    finally:
        db.dispose()


# ---------------------------------------------------------------- missed runs and the schedule

def test_previous_run_time_is_todays_time_once_passed_else_yesterdays():
    zone = ZoneInfo("Europe/Moscow")
    assert previous_run_time(moscow(2026, 11, 24, 2, 0), (2, 0), zone) == moscow(2026, 11, 24, 2, 0)
    assert previous_run_time(moscow(2026, 11, 24, 1, 59), (2, 0), zone) == moscow(2026, 11, 23, 2, 0)
    assert previous_run_time(moscow(2026, 11, 24, 23, 0), (2, 0), zone) == moscow(2026, 11, 24, 2, 0)
    # 02:00 in Vladivostok is 19:00 the day before in Moscow
    assert previous_run_time(moscow(2026, 11, 23, 20, 0), (2, 0), ZoneInfo("Asia/Vladivostok")) == \
        moscow(2026, 11, 23, 19, 0)


def test_given_the_daemon_down_at_2am_then_the_run_is_caught_up_on_start_once(db, tmp_path):
    settings = settings_for(db, tmp_path)
    assert catch_up_missed_export(db, settings, ManualClock(DAY)) is None     # new install: nothing was due
    outcomes_made(db, 2, DAY)
    done = export_outcomes(db, settings, NIGHT)                               # the night of the 24th ran
    made = outcomes_made(db, 3, NIGHT + timedelta(hours=10), "+7912400")
    assert catch_up_missed_export(db, settings, ManualClock(NIGHT + timedelta(hours=12))) is None
    started = ManualClock(NIGHT + timedelta(days=1, hours=7))                 # down at 02:00 on the 25th
    caught = catch_up_missed_export(db, settings, started)
    assert caught is not None and exported_ids(caught.path) == made and caught.batch == done.batch + 1
    assert catch_up_missed_export(db, settings, started) is None


def test_given_a_fresh_install_with_outcomes_older_than_the_last_due_time_then_catch_up_exports_them(db, tmp_path):
    settings = settings_for(db, tmp_path, format="jsonl")
    made = outcomes_made(db, 2, DAY)
    caught = catch_up_missed_export(db, settings, ManualClock(NIGHT + timedelta(hours=1)))
    assert caught is not None and exported_ids(caught.path) == made


def test_schedule_adds_a_cron_job_at_the_export_time_in_the_export_zone(db, tmp_path):
    from apscheduler.schedulers.background import BackgroundScheduler
    settings = settings_for(db, tmp_path, at="03:30", timezone="Asia/Yekaterinburg")
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.start(paused=True)
    clock = ManualClock(NIGHT)
    job = schedule_nightly_export(scheduler, db, settings, clock)
    assert scheduler.get_job(JOB_ID).id == job.id
    yekaterinburg = ZoneInfo("Asia/Yekaterinburg")
    after = DAY.astimezone(yekaterinburg)
    assert job.trigger.get_next_fire_time(None, after) == after.replace(day=24, hour=3, minute=30, second=0,
                                                                        microsecond=0)
    made = outcomes_made(db, 2, DAY)
    result = job.func(*job.args)
    assert exported_ids(result.path) == made
    assert schedule_nightly_export(scheduler, db, settings, clock).id == JOB_ID   # replaced, not doubled
    assert len(scheduler.get_jobs()) == 1
    scheduler.shutdown(wait=False)


# ---------------------------------------------------------------- file formats

def test_csv_has_a_bom_cyrillic_local_times_and_no_formula_injection(db, tmp_path):
    settings = settings_for(db, tmp_path)
    call = connected_call(db, DAY, phone="+79161234567")
    record_disposition(db, call.attempt_id, DispositionInput("confirmed", amount="15990.50",
                                                              comment="=HYPERLINK(\"http://x\")",
                                                              custom_fields={"доставка": "курьер"}),
                       now=DAY, center_zone="Europe/Moscow", recorded_by="Ольга Смирнова")
    result = export_outcomes(db, settings, NIGHT)
    raw = result.path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    [row] = read_csv(result.path)
    assert (row["name"], row["operator"], row["product"]) == ("Иван Петров", "Ольга Смирнова", "Чайник")
    assert (row["disposition"], row["amount"], row["currency"], row["phone"]) == \
        ("confirmed", "15990.50", "RUB", "+79161234567")
    assert row["outcome_at"] == "2026-11-23 12:00:00"           # Moscow wall clock, as Excel reads dates
    assert row["comment"] == "'=HYPERLINK(\"http://x\")"
    assert json.loads(row["custom_fields"]) == {"доставка": "курьер"}
    assert row["callback_at"] == ""


def test_csv_without_bom_and_with_commas_when_configured(db, tmp_path):
    settings = settings_for(db, tmp_path, excel_bom=False, csv_delimiter=",")
    outcomes_made(db, 1, DAY)
    result = export_outcomes(db, settings, NIGHT)
    assert result.path.read_bytes().startswith(b"outcome_id,")
    assert read_csv(result.path, ",")[0]["name"] == "Сергей Ёжиков"


def test_jsonl_is_one_outcome_a_line_in_readable_utf8(db, tmp_path):
    settings = settings_for(db, tmp_path)
    made = outcomes_made(db, 3, DAY)
    result = export_outcomes(db, settings, NIGHT, fmt="jsonl", out=tmp_path / "night.jsonl")
    text = result.path.read_text(encoding="utf-8")
    assert "Сергей Ёжиков" in text and len(text.splitlines()) == 3
    rows = read_jsonl(result.path)
    assert [r["outcome_id"] for r in rows] == made
    assert rows[0]["outcome_at"] == DAY.astimezone(ZoneInfo("UTC")).isoformat()


def test_a_range_re_export_does_not_move_the_watermark(db, tmp_path):
    settings = settings_for(db, tmp_path)
    made = outcomes_made(db, 3, DAY)
    nightly = export_outcomes(db, settings, NIGHT)
    again = export_range(db, settings, DAY - timedelta(hours=1), DAY + timedelta(hours=1), fmt="jsonl")
    assert exported_ids(again.path) == exported_ids(nightly.path) == made and again.batch is None
    assert watermark(db).batch == 1
    assert export_outcomes(db, settings, NIGHT + timedelta(days=1)).rows == 0


# ---------------------------------------------------------------- CLI

def test_cli_export_writes_the_file_and_refuses_a_bad_format(sqlite_db, tmp_path):
    made = outcomes_made(sqlite_db, 2, DAY)
    env = {**os.environ, "DIALER_DB_URL": sqlite_db.url, "PYTHONPATH": str(REPO),
           "DIALER_EXPORT_DIRECTORY": str(tmp_path / "exports")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cli", "export", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)

    bad = run("--format", "xlsx")
    assert bad.returncode == 2 and "unknown export format" in bad.stderr
    out = tmp_path / "today.jsonl"
    done = run("--format", "jsonl", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 outcome(s) written" in done.stdout and exported_ids(out) == made
    nothing = run()
    assert nothing.returncode == 0 and "0 outcome(s) written" in nothing.stdout
    with sqlite_db.read() as session:
        assert set(session.scalars(select(OutboxMessage.export_batch))) == {1}
