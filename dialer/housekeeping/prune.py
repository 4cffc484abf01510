"""Deleting what the retention rules say is old: in batches (short transactions, no long lock)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select

from dialer.housekeeping.rules import Cutoffs, cutoffs, export_file_is_old
from kernel.db.engine import Database
from kernel.db.models import AttemptEvent, CallAttempt, OutboxMessage
from kernel.settings import Settings

log = logging.getLogger("dialer.housekeeping")

BATCH = 5000


@dataclass
class PruneReport:
    dry_run: bool
    cutoffs: Cutoffs
    sent_outbox_rows: int = 0
    attempt_event_rows: int = 0
    export_files: list[str] = field(default_factory=list)
    export_bytes: int = 0


def settings_cutoffs(settings: Settings, now: datetime) -> Cutoffs:
    r = settings.retention
    return cutoffs(now, sent_outbox_days=r.sent_outbox_days, attempt_events_days=r.attempt_events_days,
                   export_files_days=r.export_files_days)


def _old_outbox(before: datetime):
    return (OutboxMessage.status == "sent", OutboxMessage.sent_at < before, OutboxMessage.export_batch.is_not(None))


def _old_events(before: datetime):
    ended = select(CallAttempt.id).where(CallAttempt.ended_at.is_not(None), CallAttempt.ended_at < before)
    return (AttemptEvent.attempt_id.in_(ended),)


def prune(db: Database, settings: Settings, now: datetime, *, dry_run: bool) -> PruneReport:
    from dialer.crm.export import export_zone
    cut = settings_cutoffs(settings, now)
    report = PruneReport(dry_run, cut)
    if cut.sent_outbox_before is not None:
        report.sent_outbox_rows = _delete(db, OutboxMessage, _old_outbox(cut.sent_outbox_before), dry_run)
    if cut.attempt_events_before is not None:
        report.attempt_event_rows = _delete(db, AttemptEvent, _old_events(cut.attempt_events_before), dry_run)
    folder = Path(settings.export.directory)
    if cut.export_files_before is not None and folder.is_dir():
        zone = export_zone(settings)
        for path in sorted(folder.iterdir()):
            if path.is_file() and export_file_is_old(path.name, zone, cut.export_files_before):
                report.export_files.append(path.name)
                report.export_bytes += path.stat().st_size
                if not dry_run:
                    path.unlink(missing_ok=True)
    log.info("housekeeping.%s sent_outbox_rows=%s attempt_event_rows=%s export_files=%s",
             "dry_run" if dry_run else "pruned", report.sent_outbox_rows, report.attempt_event_rows,
             len(report.export_files))
    return report


def _delete(db: Database, model, where, dry_run: bool) -> int:
    if dry_run:
        with db.read() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    total = 0
    while True:
        with db.write() as session:
            ids = list(session.scalars(select(model.id).where(*where).order_by(model.id).limit(BATCH)))
            if not ids:
                return total
            session.execute(delete(model).where(model.id.in_(ids)))
        total += len(ids)


def run_scheduled_prune(db: Database, settings: Settings, clock) -> PruneReport:
    return prune(db, settings, clock.now(), dry_run=False)


def schedule_housekeeping(scheduler, db: Database, settings: Settings, clock) -> None:
    """The daemon's nightly prune at retention.at (center zone); retention.at empty: not scheduled
    (use deploy/systemd/dialer-prune.timer, or nothing)."""
    if not settings.retention.at:
        return
    from apscheduler.triggers.cron import CronTrigger
    hour, minute = (int(part) for part in settings.retention.at.split(":"))
    scheduler.add_job(run_scheduled_prune, CronTrigger(hour=hour, minute=minute, timezone=settings.center_timezone),
                      args=(db, settings, clock), id="housekeeping", name="housekeeping (retention)",
                      replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600)
