"""The nightly export: every outcome in exactly one file across runs, as CSV (Excel-friendly) or JSONL.

How exactly-once works (DESIGN §5). A run has three steps, each recorded in the `cursors` row
"export:outcomes" (the watermark: the last export batch and its state):
  1. one transaction stamps every outcome not yet exported, created before `until`, with the next batch
     number, and records that batch as `open` with its file name;
  2. the batch's rows are streamed to a temporary file that is renamed over the final name;
  3. the batch is recorded `done`.
A run that finds an `open` batch (the previous one died in step 2 or 3) writes that batch again, to the
same file name, instead of starting a new one: a crash loses nothing and duplicates nothing.
The stamp, not an id or a time, decides what a run takes: on PostgreSQL a transaction that got a lower
outbox id may commit after a higher id was exported; its outcome is unstamped then, and the next run
takes it. No safety lag, nothing skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update

from dialer.recordings.links import public_base, with_recording_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kernel.clock import Clock, require_aware
from dialer.crm.outbox import OUTCOME_FIELDS, Topic
from kernel.db.engine import Database
from kernel.db.models import Cursor, OutboxMessage
from kernel.errors import DialerError, UsageError
from kernel.settings import Settings

log = logging.getLogger("dialer.crm.export")

CURSOR = "export:outcomes"
JOB_ID = "nightly-export"
FORMATS = ("csv", "jsonl")
COLUMNS: tuple[str, ...] = ("outcome_id",) + OUTCOME_FIELDS
TIME_FIELDS = frozenset({"outcome_at", "callback_at", "claimed_at", "dialed_at", "answered_at", "connected_at",
                         "ended_at"})
FREE_TEXT_FIELDS = frozenset({"name", "comment", "product", "order_number", "custom_fields", "operator", "source"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FETCH_ROWS = 5000


class ExportFailed(DialerError):
    """The export file could not be written."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    batch: int | None       # None for a --since/--until re-export (the watermark does not move)
    resumed: bool = False   # this run finished a batch a failed run had started


@dataclass(frozen=True)
class Watermark:
    batch: int
    state: str              # open (being written) or done
    path: str
    format: str
    until: datetime
    run_at: datetime
    rows: int | None = None

    def dumps(self) -> str:
        return json.dumps({"batch": self.batch, "state": self.state, "path": self.path, "format": self.format,
                           "until": self.until.isoformat(), "run_at": self.run_at.isoformat(),
                           "rows": self.rows}, ensure_ascii=False)

    @staticmethod
    def loads(text: str) -> "Watermark":
        data = json.loads(text)
        return Watermark(data["batch"], data["state"], data["path"], data["format"],
                         datetime.fromisoformat(data["until"]), datetime.fromisoformat(data["run_at"]),
                         data.get("rows"))


# ---------------------------------------------------------------- the runs

def export_outcomes(db: Database, settings: Settings, now: datetime, *, fmt: str | None = None,
                    out: Path | None = None, until: datetime | None = None) -> ExportResult:
    """Export every outcome not exported yet (created before `until`, default `now`) to one new file.

    The file goes to `out`, or to export.directory as outcomes-<local time>-b<batch>.<csv|jsonl>.
    If the previous run died before it finished, this run finishes that batch (same file) instead.
    """
    require_aware(now)
    until = require_aware(until) if until is not None else now
    fmt = _check_format(fmt or settings.export.format)
    zone = export_zone(settings)
    with db.write() as session:
        cursor = _locked_cursor(session, now)
        previous = Watermark.loads(cursor.value) if cursor.value else None
        if previous is not None and previous.state == "open":
            mark, resumed = previous, True
            log.warning("export.resume batch=%s path=%s", mark.batch, mark.path)
        else:
            batch = previous.batch + 1 if previous is not None else 1
            path = out or Path(settings.export.directory) / default_name(until, zone, batch, fmt)
            stamped = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.topic == Topic.OUTCOME.value, OutboxMessage.export_batch.is_(None),
                       OutboxMessage.created_at < until)
                .values(export_batch=batch).execution_options(synchronize_session=False)).rowcount
            mark, resumed = Watermark(batch, "open", str(path), fmt, until, now), False
            log.info("export.batch batch=%s outcomes=%s until=%s", batch, stamped, until.isoformat())
        cursor.value, cursor.updated_at = mark.dumps(), now
    try:
        rows = write_atomically(Path(mark.path), lambda stream: _write_batch(db, mark.batch, mark.format, stream,
                                                                             settings, zone))
    except OSError as exc:
        raise ExportFailed(f"cannot write {mark.path}: {exc}; batch {mark.batch} stays open and the next "
                           f"run writes it") from exc
    _finish(db, mark, rows, now)
    log.info("export.done batch=%s rows=%s path=%s", mark.batch, rows, mark.path)
    return ExportResult(Path(mark.path), rows, mark.batch, resumed)


def export_range(db: Database, settings: Settings, since: datetime, until: datetime, *, fmt: str | None = None,
                 out: Path | None = None) -> ExportResult:
    """A re-export of the outcomes created in [since, until), whatever was exported before.
    The watermark does not move: the nightly files stay exactly-once."""
    require_aware(since), require_aware(until)
    if since >= until:
        raise UsageError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    fmt = _check_format(fmt or settings.export.format)
    zone = export_zone(settings)
    path = out or Path(settings.export.directory) / (
        f"outcomes-{since.astimezone(zone):%Y-%m-%d_%H%M}-to-{until.astimezone(zone):%Y-%m-%d_%H%M}.{fmt}")
    query = (select(OutboxMessage.id, OutboxMessage.payload)
             .where(OutboxMessage.topic == Topic.OUTCOME.value, OutboxMessage.created_at >= since,
                    OutboxMessage.created_at < until)
             .order_by(OutboxMessage.created_at, OutboxMessage.id))
    try:
        rows = write_atomically(path, lambda stream: _write_rows(db, query, fmt, stream, settings, zone))
    except OSError as exc:
        raise ExportFailed(f"cannot write {path}: {exc}") from exc
    return ExportResult(path, rows, None)


def _finish(db: Database, mark: Watermark, rows: int, now: datetime) -> None:
    done = Watermark(mark.batch, "done", mark.path, mark.format, mark.until, mark.run_at, rows)
    with db.write() as session:
        cursor = session.get(Cursor, CURSOR, with_for_update=True)
        current = Watermark.loads(cursor.value)
        if current.batch == mark.batch and current.state == "open":
            cursor.value, cursor.updated_at = done.dumps(), now


def watermark(db: Database) -> Watermark | None:
    with db.read() as session:
        cursor = session.get(Cursor, CURSOR)
        return Watermark.loads(cursor.value) if cursor is not None and cursor.value else None


def _locked_cursor(session: Session, now: datetime) -> Cursor:
    """The watermark row, locked until the transaction ends (export runs take turns here)."""
    cursor = session.get(Cursor, CURSOR, with_for_update=True)
    if cursor is not None:
        return cursor
    try:
        with session.begin_nested():
            session.add(Cursor(name=CURSOR, value="", updated_at=now))
    except IntegrityError:   # another run created it at the same moment
        pass
    return session.get(Cursor, CURSOR, with_for_update=True, populate_existing=True)


# ---------------------------------------------------------------- the file

def write_atomically(path: Path, write: Callable[[TextIO], int]) -> int:
    """Write through a temporary file in the same folder, then rename: the final name only ever holds
    a complete file. The path "-" is standard output (`dialer export --out -`)."""
    if str(path) == "-":
        rows = write(sys.stdout)
        sys.stdout.flush()
        return rows
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            rows = write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    _fsync_folder(path.parent)
    return rows


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_batch(db: Database, batch: int, fmt: str, stream: TextIO, settings: Settings, zone: ZoneInfo) -> int:
    query = (select(OutboxMessage.id, OutboxMessage.payload).where(OutboxMessage.export_batch == batch)
             .order_by(OutboxMessage.id))
    return _write_rows(db, query, fmt, stream, settings, zone)


def _write_rows(db: Database, query, fmt: str, stream: TextIO, settings: Settings, zone: ZoneInfo) -> int:
    if fmt == "csv":
        writer = CsvOutcomes(stream, settings.export.excel_bom, settings.export.csv_delimiter, zone)
    else:
        writer = JsonlOutcomes(stream)
    count = 0
    base = public_base(settings)
    for outcome_id, payload in _stream(db, query):
        writer.write(outcome_id, with_recording_url(payload, base))
        count += 1
    return count


def _stream(db: Database, query) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows in fetches of FETCH_ROWS (a server-side cursor on PostgreSQL): flat memory. Core, not the ORM
    session: rows are read-only here, and that halves the cost of a million of them."""
    with db.engine.connect() as connection:
        for outcome_id, payload in connection.execution_options(yield_per=FETCH_ROWS).execute(query):
            yield outcome_id, payload


class CsvOutcomes:
    """One outcome a row. Times on the export zone's wall clock (Excel reads them as dates), free text
    guarded against formula injection, custom fields as JSON text."""

    def __init__(self, stream: TextIO, bom: bool, delimiter: str, zone: ZoneInfo) -> None:
        if bom:
            stream.write("\ufeff")
        self._writer = csv.writer(stream, delimiter=delimiter, lineterminator="\r\n")
        self._writer.writerow(COLUMNS)
        self._zone = zone

    def write(self, outcome_id: int, payload: dict[str, Any]) -> None:
        cells: list[Any] = [outcome_id]
        append = cells.append
        for name in OUTCOME_FIELDS:            # inlined: this loop runs 33 times per outcome
            value = payload.get(name)
            if value is None:
                append("")
            elif name in TIME_FIELDS:
                append(datetime.fromisoformat(value).astimezone(self._zone).isoformat(" ", "seconds")[:19])
            elif name in FREE_TEXT_FIELDS or isinstance(value, (dict, list)):
                append(_safe_text(value))
            else:
                append(value)
        self._writer.writerow(cells)


def _safe_text(value: Any) -> Any:
    """Free text as Excel should show it: JSON for structures, a leading ' before a would-be formula."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class JsonlOutcomes:
    """One outcome a line, our field names, times in ISO 8601 with offset."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, outcome_id: int, payload: dict[str, Any]) -> None:
        self._stream.write(json.dumps({"outcome_id": outcome_id, **payload}, ensure_ascii=False) + "\n")


def default_name(until: datetime, zone: ZoneInfo, batch: int, fmt: str) -> str:
    return f"outcomes-{until.astimezone(zone):%Y-%m-%d_%H%M}-b{batch:06d}.{fmt}"


def export_zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.export.timezone or settings.center_timezone)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; one of: {', '.join(FORMATS)}")
    return fmt


# ---------------------------------------------------------------- the schedule

def nightly_time(settings: Settings) -> tuple[int, int]:
    hour, minute = settings.export.at.split(":")
    return int(hour), int(minute)


def previous_run_time(now: datetime, at: tuple[int, int], zone: ZoneInfo) -> datetime:
    """The last moment at or before `now` when the nightly export was due (at HH:MM on `zone`'s clock)."""
    local = require_aware(now).astimezone(zone)
    due = datetime.combine(local.date(), time(*at), tzinfo=zone)
    if due > local:
        due = datetime.combine(local.date() - timedelta(days=1), time(*at), tzinfo=zone)
    return due


def run_nightly_export(db: Database, settings: Settings, clock: Clock) -> ExportResult:
    """The scheduled job (also what catch-up runs)."""
    return export_outcomes(db, settings, clock.now())


def schedule_nightly_export(scheduler, db: Database, settings: Settings, clock: Clock):
    """Add the nightly export to an APScheduler 3 scheduler: a CronTrigger at export.at in export.timezone
    (or the center's zone). One instance at a time; runs missed while the scheduler was up are
    coalesced into one. Returns the job."""
    from apscheduler.triggers.cron import CronTrigger
    hour, minute = nightly_time(settings)
    trigger = CronTrigger(hour=hour, minute=minute, timezone=export_zone(settings))
    return scheduler.add_job(run_nightly_export, trigger, args=(db, settings, clock), id=JOB_ID,
                             name="nightly CRM export", replace_existing=True, coalesce=True, max_instances=1,
                             misfire_grace_time=3600)


def catch_up_missed_export(db: Database, settings: Settings, clock: Clock) -> ExportResult | None:
    """Call on start: run the export now if the last due nightly run did not happen (the daemon was down
    at that time), or finish a run that died half-way. Returns None when nothing was missed."""
    now = clock.now()
    due = previous_run_time(now, nightly_time(settings), export_zone(settings))
    mark = watermark(db)
    if mark is not None and mark.state == "done" and mark.run_at >= due:
        return None
    if mark is None and not _unexported_before(db, due):
        return None    # a new installation: nothing was ever due
    log.warning("export.catch_up due=%s last_run=%s", due.isoformat(), mark.run_at.isoformat() if mark else "never")
    return export_outcomes(db, settings, now)


def _unexported_before(db: Database, when: datetime) -> bool:
    with db.read() as session:
        return bool(session.scalar(select(exists().where(
            OutboxMessage.topic == Topic.OUTCOME.value, OutboxMessage.export_batch.is_(None),
            OutboxMessage.created_at < when))))
