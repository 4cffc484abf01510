"""The official registry extract as published (Rossvyaz / the Ministry's "Выписка из реестра Российской
системы и плана нумерации": files ABC-3xx.csv, ABC-4xx.csv, ABC-8xx.csv, DEF-9xx.csv).

Columns, separated by ';', first line a header: `АВС/ DEF` (the 3-digit code), `От` and `До` (the first and
last 7-digit subscriber number of the range), `Емкость` (capacity), `Оператор`, `Регион`, and in newer
extracts `Территория ГАР` (the region by the state address register, preferred when present) and `ИНН`.
Encoding UTF-8 (with or without BOM) or Windows-1251, as the registry has published both.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kernel.errors import UsageError
from leads.numbering.plan import Range

CODE, FROM, TO = "АВС/ DEF", "От", "До"


class RegistryFileRefused(UsageError):
    """The registry file is refused."""


@dataclass(frozen=True)
class ReadReport:
    ranges: list[Range]
    skipped: list[str]     # "line N: why"


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1251")


def _header_key(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).replace("ABC", "АВС").replace("АВС/DEF", CODE)


def read_registry(path: Path) -> ReadReport:
    """Every range of one official CSV; rows that are not a range are reported, not guessed."""
    try:
        return _read(path)
    except csv.Error as exc:
        raise RegistryFileRefused(f"{path}: not a readable CSV ({exc})") from None


def _read(path: Path) -> ReadReport:
    try:
        text = _text(path)
    except OSError as exc:
        raise RegistryFileRefused(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RegistryFileRefused(f"{path}: neither UTF-8 nor Windows-1251 text") from None
    if "\x00" in text:
        raise RegistryFileRefused(f"{path}: binary data, not a CSV text")
    reader = csv.reader(io.StringIO(text), delimiter=";")
    header = [_header_key(h) for h in next(reader, [])]
    missing = [c for c in (CODE, FROM, TO, "Оператор", "Регион") if c not in header]
    if missing:
        raise RegistryFileRefused(f"{path}: not a numbering registry extract (no column {', '.join(missing)}; "
                                  f"expected {CODE};От;До;Емкость;Оператор;Регион[;Территория ГАР;ИНН])")
    col = {name: header.index(name) for name in header}
    region_col = col.get("Территория ГАР", col["Регион"])
    ranges, skipped = [], []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            code, start, end = (row[col[c]].strip() for c in (CODE, FROM, TO))
            if not (len(code) == 3 and code.isdigit() and start.isdigit() and end.isdigit()
                    and len(start) <= 7 and len(end) <= 7 and int(start) <= int(end)):
                raise ValueError
            region = row[region_col].strip() or row[col["Регион"]].strip()
            operator = row[col["Оператор"]].strip()
        except (IndexError, ValueError):
            skipped.append(f"line {line_no}: not a range ({';'.join(row)[:80]})")
            continue
        base = int(code) * 10_000_000
        ranges.append(Range(base + int(start), base + int(end), region.replace(";", ","),
                            operator.replace(";", ",")))
    if not ranges:
        raise RegistryFileRefused(f"{path}: no range read")
    return ReadReport(ranges, skipped)


def read_registries(paths: list[Path]) -> Iterator[tuple[Path, ReadReport]]:
    for path in paths:
        yield path, read_registry(path)
