"""The numbering plan as a range table: 10-digit national numbers [start, end] -> region, operator, zones.

Ranges are kept in sorted arrays and found by binary search (bisect over an array of ints: O(log n),
about a microsecond). Number portability moves a number between operators, never between regions, so
the region (and with it the zone) of the range stays true; the operator shown is the one the range was
allocated to.

The compact file (gzip CSV, UTF-8): a first line `# {json}` with the source and its date, then
`start;end;region;operator` rows (start/end as 10-digit national numbers). The snapshot shipped in
data/ranges.csv.gz is used unless `use_file` names a newer one (`dialer zones update`).
"""

from __future__ import annotations

import gzip
import json
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, TextIO

from leads.numbering.regions import zones_of_region

SHIPPED = "data/ranges.csv.gz"


@dataclass(frozen=True)
class Allocation:
    start: int
    end: int
    region: str
    operator: str
    zones: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    start: int          # 10-digit national number, e.g. 9143000000
    end: int
    region: str
    operator: str


@dataclass
class NumberingPlan:
    source: dict = field(default_factory=dict)   # {"source": ..., "date": ..., "ranges": N}
    _starts: array = field(default_factory=lambda: array("q"))
    _ends: array = field(default_factory=lambda: array("q"))
    _place: array = field(default_factory=lambda: array("i"))      # index into _places
    _places: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @classmethod
    def from_ranges(cls, ranges: Iterable[Range], source: dict) -> NumberingPlan:
        plan = cls(dict(source))
        index: dict[tuple[str, str], int] = {}
        last_end = -1
        for r in sorted(ranges, key=lambda r: (r.start, r.end)):
            if r.start <= last_end:      # an overlap in the source: the earlier range keeps its numbers
                if r.end <= last_end:
                    continue
                r = Range(last_end + 1, r.end, r.region, r.operator)
            key = (r.region, r.operator)
            if key not in index:
                index[key] = len(plan._places)
                plan._places.append((r.region, r.operator, _known_zones(zones_of_region(r.region))))
            plan._starts.append(r.start)
            plan._ends.append(r.end)
            plan._place.append(index[key])
            last_end = r.end
        plan.source["ranges"] = len(plan._starts)
        return plan

    def __len__(self) -> int:
        return len(self._starts)

    def find(self, national: int) -> Allocation | None:
        i = bisect_right(self._starts, national) - 1
        if i < 0 or national > self._ends[i]:
            return None
        region, operator, zones = self._places[self._place[i]]
        return Allocation(self._starts[i], self._ends[i], region, operator, zones)

    def zones(self, national: int) -> tuple[str, ...] | None:
        """The zones of the range holding `national`; None when no range holds it (() : no known region)."""
        i = bisect_right(self._starts, national) - 1
        if i < 0 or national > self._ends[i]:
            return None
        return self._places[self._place[i]][2]

    def ranges(self) -> Iterable[Allocation]:
        for i in range(len(self._starts)):
            region, operator, zones = self._places[self._place[i]]
            yield Allocation(self._starts[i], self._ends[i], region, operator, zones)

    # --- the compact file

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8", newline="") as f:
            f.write("# " + json.dumps(self.source, ensure_ascii=False) + "\n")
            for a in self.ranges():
                f.write(f"{a.start};{a.end};{a.region};{a.operator}\n")
        tmp.replace(path)

    @classmethod
    def read(cls, f: TextIO) -> NumberingPlan:
        first = f.readline()
        source = json.loads(first[1:]) if first.startswith("#") else {}
        ranges = []
        for line in f:
            start, end, region, operator = line.rstrip("\n").split(";", 3)
            ranges.append(Range(int(start), int(end), region, operator))
        return cls.from_ranges(ranges, source)


def load_file(path: Path) -> NumberingPlan:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return NumberingPlan.read(f)


def load_shipped() -> NumberingPlan:
    with resources.files("leads.numbering").joinpath(SHIPPED).open("rb") as raw, \
            gzip.open(raw, "rt", encoding="utf-8") as f:
        return NumberingPlan.read(f)


# --- the plan in use by this process (the CLI edge names the file; the shipped one by default)

_lock = threading.Lock()
_path: Path | None = None
_plan: NumberingPlan | None = None


def use_file(path: str | Path | None) -> None:
    """Use the compact table at `path` (if it exists) instead of the shipped snapshot; None: shipped."""
    global _path, _plan
    new = Path(path) if path else None
    with _lock:
        if new != _path:
            _path, _plan = new, None


def active_plan() -> NumberingPlan:
    global _plan
    plan = _plan
    if plan is not None:
        return plan
    with _lock:
        if _plan is None:
            _plan = load_file(_path) if _path is not None and _path.exists() else load_shipped()
        return _plan


def national_number(phone_e164: str) -> int | None:
    """+79143001234 -> 9143001234; None for a number outside Russia's +7 plan (Kazakhstan's +76/+77 included)."""
    if len(phone_e164) != 12 or phone_e164[:2] != "+7" or phone_e164[2] in "67":
        return None
    digits = phone_e164[2:]
    return int(digits) if digits.isdigit() else None


def zones_for_e164(phone_e164: str) -> tuple[str, ...]:
    """The zones of the plan in use for an E.164 number; () when no range with a region holds it."""
    national = national_number(phone_e164)
    if national is None:
        return ()
    return (_plan or active_plan()).zones(national) or ()


def _known_zones(names: tuple[str, ...]) -> tuple[str, ...]:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    known = []
    for name in names:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        known.append(name)
    return tuple(known)
