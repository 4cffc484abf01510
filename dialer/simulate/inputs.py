"""What a simulated day is given: lead arrivals (a profile by hour, or a CSV of past leads) and staffing.

Pure: arrivals and staffing are frozen data; the only file read is the CSV, through the CSV import's
own column rules (leads.sources.csv_import.plan_columns, field_problems), so a file `dialer leads
import` accepts reads the same here, plus one column with each lead's arrival time.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Mapping, Sequence
from zoneinfo import ZoneInfo

from kernel.errors import UsageError
from leads.intake import LeadIn, field_problems
from leads.samples import sample_leads
from leads.sources.csv_import import header_key, plan_columns
from leads.sources.json_lead import lead_from_json

# Share of a day's leads arriving in each hour of the center's day (an online store: evening peak, quiet
# night); the same curve as benchmarks/bench_daemon.py. Hours 22-23 belong to the evening before the day.
HOURLY_SHARE: Mapping[int, float] = {
    22: 2.0, 23: 1.4, 0: 0.8, 1: 0.4, 2: 0.25, 3: 0.2, 4: 0.2, 5: 0.3, 6: 0.6, 7: 1.2, 8: 2.0, 9: 3.2,
    10: 5.0, 11: 6.0, 12: 6.5, 13: 6.5, 14: 6.5, 15: 6.5, 16: 6.5, 17: 6.8, 18: 7.2, 19: 7.8, 20: 7.5, 21: 6.5}

# Header names read as the arrival time, written as header_key() leaves them.
ARRIVAL_HEADERS = ("received at", "received", "arrived at", "arrival", "created at", "created", "date",
                   "time", "datetime", "timestamp", "дата", "время", "дата создания", "создан", "поступил")


@dataclass(frozen=True)
class Arrival:
    """One lead handed to the intake at `at`."""

    at: datetime
    lead: LeadIn


@dataclass(frozen=True)
class Shift:
    """`operators` more operators on duty from `start` to `end` (center time, hours of the day)."""

    start: time
    end: time
    operators: int


@dataclass(frozen=True)
class Staffing:
    """Operators on duty through the day: overlapping shifts add up."""

    shifts: tuple[Shift, ...]

    def on_duty(self, moment: datetime, zone: ZoneInfo) -> int:
        clock = moment.astimezone(zone).time()
        return sum(s.operators for s in self.shifts if s.start <= clock < s.end)

    @property
    def most(self) -> int:
        """The most operators on duty at once (shift starts are the only moments the count grows)."""
        return max((sum(o.operators for o in self.shifts if o.start <= s.start < o.end) for s in self.shifts),
                   default=0)

    def changes(self, day: date, zone: ZoneInfo) -> list[datetime]:
        """The moments the count may change: every shift's start and end on `day`."""
        moments = {_at(day, s.start, zone) for s in self.shifts} | {_at(day, s.end, zone) for s in self.shifts}
        return sorted(moments)

    def operator_hours(self) -> float:
        return sum(s.operators * _hours(s.start, s.end) for s in self.shifts)


def constant_staffing(operators: int, opens: time, closes: time) -> Staffing:
    if operators < 1:
        raise UsageError(f"--operators {operators}: give at least 1 operator")
    if closes <= opens:
        raise UsageError(f"--opens {opens:%H:%M} --closes {closes:%H:%M}: the day must close after it opens")
    return Staffing((Shift(opens, closes, operators),))


_SHIFT = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*:\s*(\d+)\s*$")


def parse_shifts(text: str) -> Staffing:
    """`"10-16:6,16-22:10"`: 6 operators from 10:00 to 16:00, 10 from 16:00 to 22:00 (HH or HH:MM)."""
    shifts = []
    for part in text.split(","):
        match = _SHIFT.match(part)
        if not match:
            raise UsageError(f"--shifts {text!r}: {part.strip()!r} is not START-END:OPERATORS, "
                             f"e.g. \"10-16:6,16-22:10\"")
        h1, m1, h2, m2, count = match.groups()
        try:
            start = time(int(h1), int(m1 or 0))
            end = time(23, 59, 59, 999999) if (int(h2), int(m2 or 0)) == (24, 0) else time(int(h2), int(m2 or 0))
        except ValueError:
            raise UsageError(f"--shifts {text!r}: {part.strip()!r} has an hour or minute out of range") from None
        if end <= start:
            raise UsageError(f"--shifts {text!r}: {part.strip()!r} ends before it starts (a shift lies "
                             f"within one day)")
        if int(count) < 1:
            raise UsageError(f"--shifts {text!r}: {part.strip()!r} has no operators")
        shifts.append(Shift(start, end, int(count)))
    return Staffing(tuple(shifts))


def synthetic_arrivals(count: int, day: date, zone: ZoneInfo, seed: int,
                       share: Mapping[int, float] = HOURLY_SHARE) -> list[Arrival]:
    """`count` leads over the profile, from 22:00 the evening before `day` to 22:00, in arrival order.

    The leads are leads.samples' (messy phones, 10% duplicates, 5% fakes), so the intake has to work.
    """
    if count < 0:
        raise UsageError(f"--leads-count {count}: must not be negative")
    rng = random.Random(seed)
    first = datetime.combine(day, time(22), zone) - timedelta(days=1)
    hours = [first + timedelta(hours=h) for h in range(24)]
    starts = rng.choices(hours, [share.get(h.astimezone(zone).hour, 0.0) for h in hours], k=count)
    times = sorted(h + timedelta(seconds=rng.uniform(0, 3600)) for h in starts)
    return [Arrival(t, lead_from_json(raw, default_source=raw.get("source") or "api"))
            for t, raw in zip(times, sample_leads(count, seed=seed))]


def read_arrivals_csv(path: Path, zone: ZoneInfo) -> list[Arrival]:
    """Past leads from a CSV: the import's columns plus an arrival time (ISO 8601; no zone: the center's).

    Refused with one clear message (UsageError) when the file cannot be used; a row whose fields the
    intake refuses is refused with its line number.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"--leads {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--leads {path}: is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise UsageError(f"--leads {path}: not UTF-8 text (save the CSV as UTF-8)") from None
    except OSError as exc:
        raise UsageError(f"--leads {path}: cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise UsageError(f"--leads {path}: the file is empty (a header line with phone and received_at "
                         f"columns is needed)")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(lines, dialect))
    header = rows[0]
    keys = [header_key(h) for h in header]
    when = next((i for i, k in enumerate(keys) if k in ARRIVAL_HEADERS), None)
    if when is None:
        raise UsageError(f"--leads {path}: no arrival-time column; name one received_at (ISO 8601, e.g. "
                         f"2026-11-24T10:05:00+03:00); its columns: " + ", ".join(repr(h) for h in header))
    plan = plan_columns(header)
    arrivals = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UsageError(f"--leads {path}: line {number} has {len(row)} fields, the header has {len(header)}")
        at = _moment(row[when], zone, f"--leads {path}: line {number}")
        values = {name: row[i].strip() or None for name, i in plan.fields}
        extra = {key: row[i].strip() for key, i in plan.extra if i != when and row[i].strip()}
        source = values.pop("source", None) or "csv"
        lead = LeadIn(**values, extra=extra or None, source=source)
        problems = field_problems(lead)
        if problems:
            raise UsageError(f"--leads {path}: line {number}: " + "; ".join(problems))
        arrivals.append(Arrival(at, lead))
    if not arrivals:
        raise UsageError(f"--leads {path}: no leads after the header")
    return sorted(arrivals, key=lambda a: a.at)


def _moment(text: str, zone: ZoneInfo, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T", 1) if " " in text.strip() else text.strip())
    except ValueError:
        raise UsageError(f"{where}: {text.strip()!r} is not a time; use ISO 8601 such as "
                         f"2026-11-24T10:05:00+03:00") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def day_of(arrivals: Sequence[Arrival], zone: ZoneInfo) -> date:
    """The day a CSV of past leads describes: the center's date of its latest arrival."""
    return max(a.at for a in arrivals).astimezone(zone).date()


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, zone)


def _hours(start: time, end: time) -> float:
    seconds = lambda t: t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6   # noqa: E731
    return (seconds(end) - seconds(start)) / 3600

