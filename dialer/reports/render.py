"""Reports as files and pictures: CSV, JSON, Excel (xlsxwriter), charts (matplotlib, no display needed)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy.engine import Engine

from dialer.reports.kpi import FIRST_CALL_TARGET_SECONDS, GLOSSARY, KpiRow, Period
from kernel.errors import UsageError


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else (str(row[c]) if isinstance(row[c], Decimal) else _plain(row[c]))
                         for c in columns])
    return out.getvalue()


def to_json(rows: Sequence[dict[str, Any]], period: Period | None = None) -> str:
    data: Any = [{k: (str(v) if isinstance(v, Decimal) else _plain(v)) for k, v in row.items()} for row in rows]
    if period is not None:
        data = {"from": period.start.isoformat(), "to": period.end.isoformat(), "zone": period.zone, "rows": data}
    return json.dumps(data, ensure_ascii=False, indent=2)


def write_xlsx(path: Path, sheets: dict[str, Sequence[dict[str, Any]]], period: Period | None = None) -> None:
    """One sheet per table, plus the glossary so the file explains itself when forwarded."""
    import xlsxwriter
    if path.suffix.lower() != ".xlsx":
        raise UsageError(f"{path} does not end in .xlsx")
    book = xlsxwriter.Workbook(str(path), {"remove_timezone": True})
    try:
        bold = book.add_format({"bold": True})
        money = book.add_format({"num_format": "#,##0.00"})
        for name, rows in sheets.items():
            sheet = book.add_worksheet(name[:31])
            columns = list(rows[0]) if rows else []
            for col, title in enumerate(columns):
                sheet.write(0, col, title, bold)
                sheet.set_column(col, col, max(10, min(40, len(title) + 2)))
            for r, row in enumerate(rows, start=1):
                for col, title in enumerate(columns):
                    value = row.get(title)
                    if value is None:
                        continue
                    if isinstance(value, Decimal):
                        sheet.write_number(r, col, float(value), money)
                    elif isinstance(value, datetime):
                        sheet.write_string(r, col, value.isoformat())
                    else:
                        sheet.write(r, col, value)
        info = book.add_worksheet("glossary")
        info.set_column(0, 0, 24)
        info.set_column(1, 1, 110)
        line = 0
        if period is not None:
            info.write(0, 0, "period", bold)
            info.write(0, 1, f"{period.start.isoformat()} .. {period.end.isoformat()} ({period.zone})")
            line = 2
        for key, text in GLOSSARY.items():
            info.write(line, 0, key, bold)
            info.write(line, 1, text)
            line += 1
    finally:
        book.close()


def plot(path: Path, engine: Engine, period: Period, now: datetime | None = None) -> list[str]:
    """The team lead's four charts in one figure; returns their titles."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from dialer.reports.queries import compute_summary, first_dial_histogram
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: the file must end in .png or .svg")
    hist = first_dial_histogram(engine, period)
    by_day = compute_summary(engine, period, by=["day"])
    by_hour = compute_summary(engine, period, by=["hour"])
    by_operator = compute_summary(engine, period, by=["operator"], now=now)
    titles = ["Arrival to first dial (min)", "Contact and confirmed rate per day (%)",
              "Answer rate by hour of day (%)", "Talk minutes per operator-hour"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    try:
        ax = axes[0][0]
        ax.bar([b for b, _ in hist], [n for _, n in hist], width=1.0, align="edge", color="#4c72b0")
        ax.axvline(FIRST_CALL_TARGET_SECONDS / 60, color="#c44e52", linestyle="--", label="15 min target")
        ax.set_xlabel("minutes (120 = 120 or more)")
        ax.set_ylabel("leads")
        ax.legend()
        ax = axes[0][1]
        days = [r.key["day"] for r in by_day]
        ax.plot(days, [r.contact_rate_pct or 0 for r in by_day], marker="o", label="contact rate")
        ax.plot(days, [r.confirmed_pct or 0 for r in by_day], marker="o", label="confirmed")
        ax.set_ylim(0, 100)
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        ax = axes[1][0]
        ax.bar([r.key["hour"] for r in by_hour], [r.answer_rate_pct or 0 for r in by_hour], color="#55a868")
        ax.set_xticks(range(0, 24, 2))
        ax.set_xlim(-0.5, 23.5)
        ax.set_ylim(0, 100)
        ax.set_xlabel("hour (center's zone)")
        ax = axes[1][1]
        named = sorted((r for r in by_operator if r.key["operator"] != "(no operator)"),
                       key=lambda r: r.talk_min_per_hour or 0)
        ax.barh([r.key["operator"] for r in named], [r.talk_min_per_hour or 0 for r in named], color="#8172b2")
        ax.tick_params(axis="y", labelsize=max(4.0, min(10.0, 240.0 / max(len(named), 1))))
        ax.axvline(45, color="#c44e52", linestyle="--", label="45 min (tuned predictive)")
        ax.set_xlabel("talk minutes per hour worked (0: no hours worked recorded)")
        ax.legend()
        for a, title in zip([axes[0][0], axes[0][1], axes[1][0], axes[1][1]], titles):
            a.set_title(title)
        fig.suptitle(f"{period.start.astimezone(_zone(period)):%Y-%m-%d %H:%M} - "
                     f"{period.end.astimezone(_zone(period)):%Y-%m-%d %H:%M} ({period.zone})")
        fig.tight_layout()
        fig.savefig(str(path))
    finally:
        plt.close(fig)
    return titles


def _zone(period: Period):
    from zoneinfo import ZoneInfo
    return ZoneInfo(period.zone)


def kpi_dicts(rows: Sequence[KpiRow]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in rows]
