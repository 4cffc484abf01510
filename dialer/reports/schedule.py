"""Scheduled reports (issue 14): each [[reports.schedule]] entry e-mails the report of its period at the
times of its crontab line, in the center's zone.

A run is written to the outbox (topic `report`) under a key made of the entry's name and the run's
due time, then e-mailed with the report attached (rendered when sent, from the stored period) and
retried with backoff like every outbox row. The key makes each due run happen once: the scheduler's
run and the catch-up after a restart (a run that fell due while the daemon was down) are the same row.
"""

from __future__ import annotations

import email.policy
import logging
import random
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import select

from kernel.clock import Clock, require_aware
from kernel.db.engine import Database
from kernel.db.models import OutboxMessage
from kernel.errors import SettingsError, UsageError
from kernel.settings import ReportScheduleSettings, Settings
from dialer.reports.kpi import CALL_COLUMNS, COLUMNS, LEAD_DIMENSIONS, Period, parse_by

log = logging.getLogger("dialer.reports.schedule")

TOPIC = "report"
LOOKBACK = (timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# ---------------------------------------------------------------- pure: when, which days

_WEEKDAYS = {"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri", "6": "sat", "7": "sun"}


def crontab_weekdays(field: str) -> str:
    """crontab counts weekdays from Sunday = 0 (1-5 is Monday to Friday); APScheduler 3 from Monday = 0.
    Numbers become names, which both read the same way."""
    if "/" in field:
        return field
    return re.sub(r"\d", lambda m: _WEEKDAYS[m.group()], field)


def trigger(entry: ReportScheduleSettings, zone: str):
    from apscheduler.triggers.cron import CronTrigger
    minute, hour, day, month, weekday = entry.cron.split()
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday),
                       timezone=ZoneInfo(zone))


def last_due(entry: ReportScheduleSettings, zone: str, now: datetime) -> datetime | None:
    """The latest run time at or before `now` (None: none in the past year)."""
    require_aware(now)
    cron = trigger(entry, zone)
    for back in LOOKBACK:
        moment, found = now - back, None
        while True:
            nxt = cron.get_next_fire_time(None, moment)
            if nxt is None or nxt > now:
                break
            found, moment = nxt, nxt + timedelta(seconds=1)
        if found is not None:
            return found
    return None


def period_of(name: str, due: datetime, zone: str) -> Period:
    """The days a run due at `due` reports on, on the center's calendar; `today` and `this_month` end at
    the run (one at midnight reports the day, or the month, that just ended)."""
    local = due.astimezone(ZoneInfo(zone))
    day = local.date()
    midnight = local.time() == time(0)
    if name == "today":   # run at midnight: the day that just ended
        if midnight:
            return Period.days(day - timedelta(days=1), day - timedelta(days=1), zone)
        return Period(datetime.combine(day, time(0), ZoneInfo(zone)), due, zone)
    if name == "yesterday":
        return Period.days(day - timedelta(days=1), day - timedelta(days=1), zone)
    if name == "last_7_days":
        return Period.days(day - timedelta(days=7), day - timedelta(days=1), zone)
    if name == "last_week":   # Monday to Sunday before the run's week
        monday = day - timedelta(days=day.weekday() + 7)
        return Period.days(monday, monday + timedelta(days=6), zone)
    if name == "this_month":   # run at midnight of the 1st: the month that just ended
        if midnight and day.day == 1:
            last = day - timedelta(days=1)
            return Period.days(last.replace(day=1), last, zone)
        return Period(datetime.combine(day.replace(day=1), time(0), ZoneInfo(zone)), due, zone)
    if name == "last_month":
        last = day.replace(day=1) - timedelta(days=1)
        return Period.days(last.replace(day=1), last, zone)
    raise UsageError(f"unknown report period {name!r}")


def run_key(entry: ReportScheduleSettings, due: datetime) -> str:
    return f"report-{entry.name}-{due.astimezone(ZoneInfo('UTC')):%Y%m%d%H%M}"[:100]


def check_entries(settings: Settings) -> list[str]:
    """What is wrong with the [[reports.schedule]] entries beyond the settings' own checks."""
    problems = []
    for entry in settings.reports.schedule:
        try:
            parse_by(entry.by or None)
        except UsageError as exc:
            problems.append(f"reports.schedule '{entry.name}': by: {exc}")
    return problems


# ---------------------------------------------------------------- queueing a run

def queue_run(db: Database, entry: ReportScheduleSettings, due: datetime, zone: str, now: datetime) -> bool:
    """Write the run due at `due` unless it is written already. True when this call wrote it."""
    key = run_key(entry, due)
    period = period_of(entry.period, due, zone)
    with db.write() as session:
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)) is not None:
            return False
        session.add(OutboxMessage(topic=TOPIC, lead_id=None, attempt_id=None, idempotency_key=key,
                                  payload={"name": entry.name, "due": due.isoformat(), "from": period.start.isoformat(),
                                           "to": period.end.isoformat(), "zone": zone, "period": entry.period,
                                           "by": entry.by, "format": entry.format,
                                           "recipients": [a.strip() for a in entry.recipients.split(",")]},
                                  status="pending", failures=0, next_try_at=now, created_at=now))
    log.info("report.queued name=%s due=%s", entry.name, due.isoformat())
    return True


def catch_up(db: Database, settings: Settings, now: datetime) -> list[str]:
    """On start: queue each entry's latest run that fell due while the daemon was down, once. An entry
    that never ran before (a new one) starts with its next run, not with a past one."""
    queued = []
    for entry in settings.reports.schedule:
        due = last_due(entry, settings.center_timezone, now)
        if due is None:
            continue
        with db.read() as session:
            ran_before = session.scalar(select(OutboxMessage.id).where(
                OutboxMessage.topic == TOPIC, OutboxMessage.idempotency_key.like(f"report-{entry.name}-%")).limit(1))
        if ran_before is None:
            continue
        if queue_run(db, entry, due, settings.center_timezone, now):
            log.warning("report.catch_up name=%s due=%s", entry.name, due.isoformat())
            queued.append(entry.name)
    return queued


# ---------------------------------------------------------------- the attachment and the e-mail

@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


def render(db: Database, payload: Mapping[str, Any]) -> tuple[Attachment, dict[str, Any]]:
    """The report file of a stored run, and the totals the e-mail's text quotes."""
    from dialer.reports.queries import compute_summary
    from dialer.reports.render import plot, to_csv, write_xlsx
    period = Period(datetime.fromisoformat(payload["from"]), datetime.fromisoformat(payload["to"]), payload["zone"])
    dims = parse_by(payload.get("by") or None)
    totals = compute_summary(db.engine, period, by=())[0]
    stem = f"{payload['name']}-{period.start.astimezone(ZoneInfo(period.zone)):%Y-%m-%d}"
    fmt = payload["format"]
    with tempfile.TemporaryDirectory() as folder:
        if fmt == "png":
            path = Path(folder) / f"{stem}.png"
            plot(path, db.engine, period)
            return Attachment(path.name, path.read_bytes(), "image", "png"), _totals(totals)
        columns = COLUMNS if all(d in LEAD_DIMENSIONS for d in dims) else CALL_COLUMNS
        rows = [{**r.key, **{c: getattr(r, c) for c in columns}} for r in compute_summary(db.engine, period, by=dims)]
        if fmt == "csv":   # with a BOM, so Excel shows Cyrillic
            return Attachment(f"{stem}.csv", to_csv(rows).encode("utf-8-sig"), "text", "csv"), _totals(totals)
        path = Path(folder) / f"{stem}.xlsx"
        write_xlsx(path, {"summary": rows}, period)
        return Attachment(path.name, path.read_bytes(), "application", XLSX.split("/")[1]), _totals(totals)


def _totals(row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ("leads", "actual", "contact_rate_pct", "confirmed", "confirmed_pct",
                                                   "order_sum", "first_dial_15min_pct")}


def _shown(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value}{unit}"


def report_email(key: str, payload: Mapping[str, Any], attachment: Attachment, totals: Mapping[str, Any],
                 sender: str, at: datetime) -> EmailMessage:
    zone = ZoneInfo(payload["zone"])
    start = datetime.fromisoformat(payload["from"]).astimezone(zone)
    end = datetime.fromisoformat(payload["to"]).astimezone(zone) - timedelta(seconds=1)
    span = f"{start:%d.%m.%Y}" if start.date() == end.date() else f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(payload["recipients"])
    message["Subject"] = f"Отчёт «{payload['name']}» за {span}"
    message["Date"] = format_datetime(at)
    message["Message-ID"] = f"<{key}@dialer.reports>"
    message.set_content("\n".join([
        f"Отчёт «{payload['name']}» за {span} (часовой пояс {payload['zone']}).", "",
        f"Заявок: {_shown(totals['leads'])}, из них настоящих: {_shown(totals['actual'])}",
        f"Дозвон: {_shown(totals['contact_rate_pct'], '%')}",
        f"Подтверждено заказов: {_shown(totals['confirmed'])} ({_shown(totals['confirmed_pct'], '%')}), "
        f"на сумму {_shown(totals['order_sum'])}",
        f"Первый звонок за 15 минут: {_shown(totals['first_dial_15min_pct'], '%')}", "",
        f"Подробности во вложении: {attachment.filename}. Определения показателей — в README, раздел KPI.",
    ]), charset="utf-8")
    message.add_attachment(attachment.content, maintype=attachment.maintype, subtype=attachment.subtype,
                           filename=attachment.filename,
                           params={"charset": "utf-8"} if attachment.maintype == "text" else None)
    return message


# ---------------------------------------------------------------- delivery

class ReportMailer:
    def __init__(self, db: Database, settings: Settings, clock: Clock, rng: random.Random | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()

    def send_due(self, now: datetime | None = None) -> int:
        """E-mail every due run; failures are retried later (alerts.retry_* settings). Returns how many went."""
        from dialer.alerts.channels import smtp_server
        from dialer.crm.outbox import Topic, claim_due, mark_failed, mark_sent
        from dialer.crm.sender import retry_delay
        now = require_aware(now or self.clock.now())
        a = self.settings.alerts
        with self.db.write() as session:
            due = claim_due(session, now, now + timedelta(minutes=10), 20, topic=Topic.REPORT)
        sent = 0
        server = smtp_server(self.settings)
        for run in due:
            try:
                if server is None:
                    raise smtplib.SMTPException("no SMTP server: set alerts.smtp_host (or chains.smtp_host)")
                attachment, totals = render(self.db, run.payload)
                message = report_email(run.key, run.payload, attachment, totals, server.from_address, now)
                with smtplib.SMTP(server.host, server.port, timeout=server.timeout) as client:
                    if server.starttls:
                        client.starttls(context=ssl.create_default_context(cafile=server.ca_file or None))
                    if server.username:
                        client.login(server.username, server.password)
                    client.send_message(message, from_addr=server.from_address, to_addrs=run.payload["recipients"])
            except (smtplib.SMTPException, OSError, UsageError, SettingsError) as exc:
                delay = retry_delay(run.failures + 1, a.retry_base_seconds, a.retry_max_seconds, self.rng)
                with self.db.write() as session:
                    status = mark_failed(session, run.id, f"{type(exc).__name__}: {exc}", now + timedelta(seconds=delay),
                                         a.max_failures)
                log.warning("report.failed name=%s status=%s error=%s", run.payload.get("name"), status, exc)
                continue
            with self.db.write() as session:
                mark_sent(session, run.id, now)
            sent += 1
            log.info("report.sent name=%s to=%s", run.payload.get("name"), ",".join(run.payload["recipients"]))
        return sent

    def run_due(self, entry: ReportScheduleSettings) -> None:
        """The scheduler's job: queue the run due now, then send."""
        now = self.clock.now()
        due = last_due(entry, self.settings.center_timezone, now) or now
        queue_run(self.db, entry, due, self.settings.center_timezone, now)
        self.send_due(now)


def schedule_reports(scheduler, mailer: ReportMailer) -> list[str]:
    """One APScheduler job per valid entry; an entry with a bad breakdown is logged and left out."""
    settings = mailer.settings
    bad = {p.split("'")[1] for p in check_entries(settings)}
    for problem in check_entries(settings):
        log.error("report.schedule_refused %s", problem)
    names = []
    for entry in settings.reports.schedule:
        if entry.name in bad:
            continue
        scheduler.add_job(mailer.run_due, trigger(entry, settings.center_timezone), args=(entry,),
                          id=f"report:{entry.name}", name=f"report {entry.name}", replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=3600)
        names.append(entry.name)
    return names
