"""Where an attempt's recording is, and which recordings retention deletes.

The dialplan (asterisk_conf/extensions.conf) records with MixMonitor(<ATTEMPT_ID>.wav,b): only while
the customer is bridged to an operator, so an attempt has a recording exactly when it connected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.db.models import CallAttempt
from kernel.errors import NotFound

log = logging.getLogger("dialer.recordings")

REF_PATTERN = re.compile(r"^[0-9]{1,18}\.wav$")


def recording_ref(attempt_id: int) -> str:
    """The recording reference stored on the attempt: MixMonitor's file name for it."""
    return f"{int(attempt_id)}.wav"


def recording_path(directory: str | Path, ref: str | None) -> Path | None:
    """The file of a stored reference, or None for a reference that is not one of ours (never a path
    outside the folder: a reference is a bare `<digits>.wav`)."""
    if not ref or not REF_PATTERN.match(ref):
        return None
    return Path(directory) / ref


@dataclass(frozen=True)
class RecordingFile:
    name: str
    modified_at: datetime
    size: int


def expired(files: Iterable[RecordingFile], now: datetime, retention_days: int) -> list[RecordingFile]:
    """The recordings retention deletes: last written more than `retention_days` days before `now`.
    0 days keeps everything."""
    if retention_days <= 0:
        return []
    limit = now - timedelta(days=retention_days)
    return sorted((f for f in files if f.modified_at < limit), key=lambda f: (f.modified_at, f.name))


def list_recordings(directory: str | Path) -> list[RecordingFile]:
    folder = Path(directory)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if not REF_PATTERN.match(path.name) or not path.is_file():
            continue
        stat = path.stat()
        found.append(RecordingFile(path.name, datetime.fromtimestamp(stat.st_mtime, timezone.utc), stat.st_size))
    return found


def prune(directory: str | Path, now: datetime, retention_days: int, *, dry_run: bool = False
          ) -> list[RecordingFile]:
    """Delete the expired recordings; log each one. Returns what was (or, dry run, would be) deleted."""
    doomed = expired(list_recordings(directory), now, retention_days)
    deleted = []
    for item in doomed:
        if not dry_run:
            try:
                (Path(directory) / item.name).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("recordings.delete_failed file=%s error=%s", item.name, exc)
                continue
            log.info("recordings.deleted file=%s modified_at=%s bytes=%s retention_days=%s", item.name,
                     item.modified_at.isoformat(), item.size, retention_days)
        deleted.append(item)
    return deleted


def stored_recording(db: Database, attempt_id: int) -> str | None:
    """The attempt's recording reference; NotFound for an unknown attempt."""
    with db.read() as session:
        row = session.execute(select(CallAttempt.recording_ref).where(CallAttempt.id == attempt_id)).first()
    if row is None:
        raise NotFound(f"no call attempt with id {attempt_id}")
    return row.recording_ref


def schedule_retention(scheduler, settings, clock):
    """The daemon's nightly pruning (APScheduler 3), at the nightly export's time; None when recordings are
    kept forever (recordings.retention_days = 0)."""
    days = settings.recordings.retention_days
    if days <= 0:
        return None
    from apscheduler.triggers.cron import CronTrigger
    from dialer.crm.export import export_zone, nightly_time
    hour, minute = nightly_time(settings)
    trigger = CronTrigger(hour=hour, minute=minute, timezone=export_zone(settings))
    return scheduler.add_job(lambda: prune(settings.recordings.directory, clock.now(), days), trigger,
                             id="recordings-retention", name="recordings retention", replace_existing=True,
                             coalesce=True, max_instances=1, misfire_grace_time=3600)
