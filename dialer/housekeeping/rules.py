"""What is old enough to delete. Pure: the retention settings and `now` in, cutoffs out.

- a sent outbox row once it is both delivered and exported, `sent_outbox_days` after delivery
  (pending and dead rows are never deleted: they still need the CRM or a person);
- an attempt's event log (attempt_events: the state -> event -> new state trail) `attempt_events_days`
  after the attempt ended (the attempt row itself, its result and disposition stay);
- an export file `export_files_days` after the time in its name (outcomes-YYYY-MM-DD_HHMM-b...;
  other files in the folder are never touched). 0 days keeps that kind forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kernel.clock import require_aware

EXPORT_NAME = re.compile(r"outcomes-(\d{4}-\d{2}-\d{2}_\d{4})-b\d{6}\.(csv|jsonl)")


@dataclass(frozen=True)
class Cutoffs:
    sent_outbox_before: datetime | None
    attempt_events_before: datetime | None
    export_files_before: datetime | None


def cutoffs(now: datetime, *, sent_outbox_days: int, attempt_events_days: int, export_files_days: int) -> Cutoffs:
    require_aware(now)

    def before(days: int) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None
    return Cutoffs(before(sent_outbox_days), before(attempt_events_days), before(export_files_days))


def export_file_time(name: str, zone: ZoneInfo) -> datetime | None:
    """The time an export file's name says it covers up to; None for any other file."""
    match = EXPORT_NAME.fullmatch(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d_%H%M").replace(tzinfo=zone)


def export_file_is_old(name: str, zone: ZoneInfo, before: datetime | None) -> bool:
    at = export_file_time(name, zone)
    return before is not None and at is not None and at < before
