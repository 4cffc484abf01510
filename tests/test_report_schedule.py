"""Scheduled reports (issue 14): [[reports.schedule]] runs e-mailed with the report attached, to a real
SMTP server on loopback; a run missed while the daemon was down is sent once after start, never twice."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import tomllib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dialer.reports.schedule import ReportMailer, catch_up, last_due, period_of, queue_run, run_key
from kernel.clock import ManualClock, SystemClock
from kernel.db.models import OutboxMessage
from kernel.errors import SettingsError
from kernel.settings import ReportScheduleSettings, _build, load_settings
from leads.intake import Intake, LeadIn
from tests.conftest import moscow
from tests.smtp_inbox import SmtpInbox

MSK = "Europe/Moscow"
DAILY = ReportScheduleSettings(name="daily", cron="0 8 * * 1-5", recipients="owner@shop.ru, lead@shop.ru",
                               period="yesterday", by="", format="csv")


def runs(db) -> list[OutboxMessage]:
    with db.read() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "report")
                               .order_by(OutboxMessage.id)).all()


def settings_with(db, inbox: SmtpInbox | None, entries: list[dict], **values):
    schedule = "\n".join("[[reports.schedule]]\n" + "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in e.items())
                         for e in entries)
    data = tomllib.loads("[reports]\n" + schedule)
    overrides = {"db_url": db.engine.url.render_as_string(hide_password=False), **values}
    if inbox is not None:
        overrides.update({"alerts.smtp_host": "127.0.0.1", "alerts.smtp_port": inbox.port,
                          "alerts.from_address": "dialer@shop.ru"})
    base = load_settings(env={}, overrides=overrides)
    from dataclasses import replace
    return replace(base, reports=replace(base.reports, schedule=_build(data).reports.schedule))


# ---------------------------------------------------------------- which runs, which days (by hand)

def test_crontab_weekdays_count_from_sunday_as_in_crontab():
    from dialer.reports.schedule import crontab_weekdays
    assert crontab_weekdays("1-5") == "mon-fri" and crontab_weekdays("0,6") == "sun,sat"
    assert crontab_weekdays("7") == "sun" and crontab_weekdays("*") == "*"


def test_a_weekday_schedule_last_ran_on_friday_when_asked_on_monday_before_eight():
    monday_0759 = moscow(2026, 12, 7, 7, 59)          # 2026-12-07 is a Monday
    assert last_due(DAILY, MSK, monday_0759) == moscow(2026, 12, 4, 8, 0)
    assert last_due(DAILY, MSK, moscow(2026, 12, 7, 8, 0)) == moscow(2026, 12, 7, 8, 0)


@pytest.mark.parametrize("period, first, end", [
    ("yesterday", moscow(2026, 12, 8, 0, 0), moscow(2026, 12, 9, 0, 0)),
    ("last_7_days", moscow(2026, 12, 2, 0, 0), moscow(2026, 12, 9, 0, 0)),
    ("last_week", moscow(2026, 11, 30, 0, 0), moscow(2026, 12, 7, 0, 0)),    # Monday 30.11 to Sunday 06.12
    ("last_month", moscow(2026, 11, 1, 0, 0), moscow(2026, 12, 1, 0, 0)),
    ("this_month", moscow(2026, 12, 1, 0, 0), moscow(2026, 12, 9, 8, 0)),
    ("today", moscow(2026, 12, 9, 0, 0), moscow(2026, 12, 9, 8, 0)),
])
def test_the_period_of_a_run_due_wednesday_9_december_at_eight(period, first, end):
    got = period_of(period, moscow(2026, 12, 9, 8, 0), MSK)
    assert (got.start, got.end) == (first, end)


@pytest.mark.parametrize("line, reason", [
    ('cron = "every day"', "crontab line of 5 fields"),
    ('recipients = "owner"', "e-mail addresses"),
    ('format = "pdf"', "one of: xlsx, csv, png"),
    ('colour = "red"', "unknown setting 'reports.schedule[0].colour'"),
])
def test_a_schedule_entry_that_cannot_work_is_refused_with_the_reason(line, reason):
    entry = {"name": '"d"', "cron": '"0 8 * * *"', "recipients": '"a@shop.ru"'}
    key = line.split(" ")[0]
    entry[key] = line.split(" = ")[1]
    text = "[[reports.schedule]]\n" + "\n".join(f"{k} = {v}" for k, v in entry.items())
    with pytest.raises(SettingsError, match=re.escape(reason)):
        _build(tomllib.loads("[reports]\n" + text))


def test_a_run_at_midnight_reports_the_day_or_month_that_just_ended():
    day = period_of("today", moscow(2026, 12, 9, 0, 0), MSK)
    month = period_of("this_month", moscow(2026, 12, 1, 0, 0), MSK)
    assert (day.start, day.end) == (moscow(2026, 12, 8, 0, 0), moscow(2026, 12, 9, 0, 0))
    assert (month.start, month.end) == (moscow(2026, 11, 1, 0, 0), moscow(2026, 12, 1, 0, 0))


# ---------------------------------------------------------------- once per due run

def test_the_same_due_run_is_queued_once(sqlite_db):
    due = moscow(2026, 12, 7, 8, 0)
    assert queue_run(sqlite_db, DAILY, due, MSK, due)
    assert not queue_run(sqlite_db, DAILY, due, MSK, due + timedelta(minutes=1))
    [run] = runs(sqlite_db)
    assert run.idempotency_key == "report-daily-202612070500"   # 08:00 Moscow = 05:00 UTC
    assert run.payload["recipients"] == ["owner@shop.ru", "lead@shop.ru"]


def test_catch_up_queues_the_missed_run_once_and_a_new_entry_waits_for_its_first_run(sqlite_db):
    db = sqlite_db
    settings = settings_with(db, None, [{"name": "daily", "cron": "0 8 * * 1-5", "recipients": "owner@shop.ru"}])
    entry = settings.reports.schedule[0]
    assert catch_up(db, settings, moscow(2026, 12, 8, 9, 30)) == []   # never ran: a new entry
    queue_run(db, entry, moscow(2026, 12, 7, 8, 0), MSK, moscow(2026, 12, 7, 8, 0))   # Monday's ran
    # the daemon was down on Tuesday at 08:00 and starts at 09:30
    assert catch_up(db, settings, moscow(2026, 12, 8, 9, 30)) == ["daily"]
    assert catch_up(db, settings, moscow(2026, 12, 8, 9, 45)) == []   # a second start: never twice
    assert [r.idempotency_key for r in runs(db)] == [run_key(entry, moscow(2026, 12, 7, 8, 0)),
                                                     run_key(entry, moscow(2026, 12, 8, 8, 0))]


# ---------------------------------------------------------------- the e-mail and its attachment

def _leads(db):
    intake = Intake(db)
    intake.submit([LeadIn("+79123450001", name="Анна"), LeadIn("+79123450002", name="Борис"),
                   LeadIn("+79123450003", name="Вера")], moscow(2026, 12, 7, 12, 0))   # Monday
    intake.submit([LeadIn("+79123450004", name="Глеб")], moscow(2026, 12, 8, 7, 0))  # Tuesday before the run


def test_the_run_is_e_mailed_with_yesterdays_csv_attached_and_smtp_down_then_up_sends_it_once(sqlite_db):
    db = sqlite_db
    _leads(db)
    with SmtpInbox() as inbox:
        settings = settings_with(db, inbox, [{"name": "daily", "cron": "0 8 * * 1-5", "recipients": "owner@shop.ru",
                                              "format": "csv"}], **{"alerts.retry_base_seconds": 10.0})
        due = moscow(2026, 12, 8, 8, 0)
        queue_run(db, settings.reports.schedule[0], due, MSK, due)
        mailer = ReportMailer(db, settings, ManualClock(due))
        inbox.refuse = True
        assert mailer.send_due(due) == 0
        inbox.refuse = False
        assert mailer.send_due(due + timedelta(seconds=5)) == 0    # not due again yet (10 s +-20%)
        assert mailer.send_due(due + timedelta(seconds=30)) == 1
        assert mailer.send_due(due + timedelta(hours=1)) == 0
        [mail] = inbox.wait_for(1)
    assert len(inbox.received) == 1
    message = mail.message
    assert message["Subject"] == "Отчёт «daily» за 07.12.2026"
    body = message.get_body(("plain",)).get_content()
    assert "Заявок: 3" in body       # Monday's three; Tuesday's lead is not yesterday's
    [attached] = list(message.iter_attachments())
    assert attached.get_filename() == "daily-2026-12-07.csv"
    raw = attached.get_payload(decode=True)
    assert raw.startswith("\ufeff".encode())   # the BOM Excel needs for Cyrillic
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["leads"] for r in rows] == ["3"]
    assert runs(db)[0].status == "sent"


def test_png_and_xlsx_runs_attach_a_picture_and_a_workbook(sqlite_db):
    db = sqlite_db
    _leads(db)
    with SmtpInbox() as inbox:
        settings = settings_with(db, inbox, [
            {"name": "charts", "cron": "0 8 * * *", "recipients": "owner@shop.ru", "format": "png"},
            {"name": "book", "cron": "0 8 * * *", "recipients": "owner@shop.ru", "format": "xlsx", "by": "day"}])
        due = moscow(2026, 12, 8, 8, 0)
        for entry in settings.reports.schedule:
            queue_run(db, entry, due, MSK, due)
        assert ReportMailer(db, settings, ManualClock(due)).send_due(due) == 2
        mails = inbox.wait_for(2)
    files = {a.get_filename(): a.get_content() for m in mails for a in m.message.iter_attachments()}
    assert files["charts-2026-12-07.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert files["book-2026-12-07.xlsx"][:2] == b"PK"    # a zip: the Excel file


# ---------------------------------------------------------------- the daemon

def test_the_daemon_sends_the_run_missed_while_it_was_down_once_across_two_starts(sqlite_db):
    from tests.daemon_harness import daemon_settings, running_daemon, wait_until
    from tests.smtp_inbox import free_port
    db = sqlite_db
    now = datetime.now(ZoneInfo(MSK))
    with SmtpInbox() as inbox:
        entry = {"name": "hourly", "cron": "0 * * * *", "recipients": "owner@shop.ru", "period": "today",
                 "format": "csv"}
        base = daemon_settings(str(db.engine.url), free_port(), **{"metrics.enabled": False,
                                                                   "alerts.smtp_host": "127.0.0.1",
                                                                   "alerts.smtp_port": inbox.port})
        from dataclasses import replace
        settings = replace(base, reports=replace(base.reports, schedule=settings_with(db, None, [entry])
                                                 .reports.schedule))
        due = last_due(settings.reports.schedule[0], MSK, now)
        queue_run(db, settings.reports.schedule[0], due - timedelta(hours=1), MSK, due - timedelta(hours=1))
        with db.write() as session:   # the run before: sent while the daemon was up
            session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "report")).one().status = "sent"

        async def start_once():
            async with running_daemon(settings, db, SystemClock()):
                await wait_until(lambda: any(r.status == "sent" for r in runs(db)[1:]), timeout=60,
                                 what="the missed run sent")

        asyncio.run(start_once())
        inbox.wait_for(1)

        async def start_again():
            async with running_daemon(settings, db, SystemClock()):
                await wait_until(lambda: True, timeout=1)
                await asyncio.sleep(1.5)   # room for a wrong second catch-up; the count below is the check

        asyncio.run(start_again())
    assert [r.idempotency_key for r in runs(db)] == [run_key(settings.reports.schedule[0], due - timedelta(hours=1)),
                                                     run_key(settings.reports.schedule[0], due)]
    assert len(inbox.received) == 1
