"""`dialer report`: the KPIs in the terminal, as CSV/JSON/Excel files and as charts. No rule lives here."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Sequence

import typer
from rich.console import Console
from rich.table import Table

from dialer.reports.kpi import (CALL_COLUMNS, COLUMNS, DIMENSION_HELP, GLOSSARY, LEAD_COLUMNS, LEAD_DIMENSIONS,
                                WORKED_DIMENSIONS, Period, glossary_text, parse_by)
from kernel.clock import SystemClock
from kernel.errors import DialerError, UsageError

HELP = ("KPIs of a period: leads, duplicates, fakes, contact and confirmed rates, orders, first-dial speed, "
        "calls and operators.\n\nGlossary (the README says the same):\n\n" + glossary_text().replace("\n", "\n\n"))
app = typer.Typer(help=HELP, invoke_without_command=True, rich_markup_mode=None)
console = Console()
clock = SystemClock()

# The columns the terminal shows (files carry all of them).
TABLE_LEAD = ("leads", "duplicates_pct", "fakes_pct", "actual", "contact_rate_pct", "attempts_to_contact",
              "confirmed", "confirmed_pct", "refused", "order_sum", "average_check", "first_dial_p50_min",
              "first_dial_p90_min", "first_dial_15min_pct", "first_dial_15min_allowed_pct", "callbacks",
              "callbacks_on_time_pct", "callbacks_overdue", "callback_late_avg_min")
TABLE_CALLS = ("calls", "answer_rate_pct", "abandoned_pct", "conversations", "talk_min", "wrapup_min",
               "call_orders", "call_order_sum")
TABLE_WORKED = ("worked_hours", "calls_per_hour", "talk_min_per_hour", "occupancy_pct")


class ReportFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    xlsx = "xlsx"


def _store(ctx: typer.Context):
    """The root command's settings and database (cli.AppState), or this process's own."""
    from sqlalchemy.exc import SQLAlchemyError

    from dialer.bootstrap import ensure_ready
    obj = ctx.obj
    if obj is None:
        from kernel.db.engine import Database
        from kernel.settings import load_settings
        settings = load_settings(None)
        db = Database(settings.db_url)
    else:
        settings, db = obj.settings, obj.db
    try:
        ensure_ready(db)
    except SQLAlchemyError as exc:
        raise DialerError(f"cannot use the database {db.engine.url!r}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0]}") from None
    return settings, db


def _period(settings, start: Optional[str], end: Optional[str]) -> Period:
    return Period.parse(start, end, now=clock.now(), zone=settings.center_timezone)


FROM_HELP = "Start: a date (from its 00:00) or a time, in the center's zone [default: today 00:00]"
TO_HELP = "End: a date (included, to its 24:00) or a time (excluded), center's zone [default: now]"


@app.callback()
def summary(ctx: typer.Context,
            by: Optional[str] = typer.Option(None, "--by", help="Breakdown, comma-separated, e.g. day,operator: "
                                                                + DIMENSION_HELP),
            start: Optional[str] = typer.Option(None, "--from", help=FROM_HELP),
            end: Optional[str] = typer.Option(None, "--to", help=TO_HELP),
            fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, csv, json or xlsx"),
            output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (xlsx: required; "
                                                                               "csv/json: default stdout)"),
            plot_file: Optional[Path] = typer.Option(None, "--plot", help="Also draw the charts into FILE.png "
                                                                          "or FILE.svg")) -> None:
    """The KPIs of the period, optionally broken down (see the glossary above)."""
    if ctx.invoked_subcommand is not None:
        return
    from dialer.reports.queries import compute_summary
    from dialer.reports.render import plot, to_csv, to_json, write_xlsx
    dims = parse_by(by)
    if plot_file is not None and plot_file.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot_file}: the file must end in .png or .svg")
    if fmt is ReportFormat.xlsx and output is None:
        raise UsageError("--format xlsx needs --output FILE.xlsx")
    settings, db = _store(ctx)
    period = _period(settings, start, end)
    rows = compute_summary(db.engine, period, by=dims, now=clock.now())
    columns = _columns(dims)
    dicts = [{**r.key, **{c: getattr(r, c) for c in columns}} for r in rows]
    if fmt is ReportFormat.xlsx:
        write_xlsx(output, {"summary": dicts}, period)
        console.print(f"report written to {output}", highlight=False)
    elif fmt is ReportFormat.table:
        _table(rows, dims, period)
    else:
        _emit(to_csv(dicts) if fmt is ReportFormat.csv else to_json(dicts, period) + "\n", output)
    if plot_file is not None:
        plot(plot_file, db.engine, period, now=clock.now())
        (Console(stderr=True) if fmt is not ReportFormat.table and output is None else console).print(
            f"charts drawn in {plot_file}", highlight=False)


@app.command("results")
def results(ctx: typer.Context,
            start: Optional[str] = typer.Option(None, "--from", help=FROM_HELP),
            end: Optional[str] = typer.Option(None, "--to", help=TO_HELP),
            kind: Optional[str] = typer.Option(None, "--kind", help="Only this disposition, e.g. not_interested"),
            limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many, newest first"),
            fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, csv, json or xlsx"),
            output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write")) -> None:
    """Conversation results of the period: lead, operator, disposition, topic, comment, amount, and the
    questions the script had no answer for (operators' gap flags) on the same call."""
    from dialer.reports.queries import compute_results
    from dialer.reports.render import to_csv, to_json, write_xlsx
    from leads.disposition import parse_kind
    if kind:
        kind = parse_kind(kind).value
    if fmt is ReportFormat.xlsx and output is None:
        raise UsageError("--format xlsx needs --output FILE.xlsx")
    settings, db = _store(ctx)
    period = _period(settings, start, end)
    rows = [r.as_dict() for r in compute_results(db.engine, period, kind=kind, limit=limit)]
    if fmt is ReportFormat.xlsx:
        write_xlsx(output, {"results": rows}, period)
        console.print(f"results written to {output}", highlight=False)
    elif fmt is ReportFormat.table:
        table = Table(title=f"conversation results {_span(period)}")
        for column in ("at", "lead_id", "lead_name", "operator", "kind", "topic", "comment", "amount",
                       "script_gaps"):
            table.add_column(column)
        from zoneinfo import ZoneInfo
        for row in rows:
            table.add_row(f"{row['at'].astimezone(ZoneInfo(period.zone)):%Y-%m-%d %H:%M}", str(row["lead_id"]),
                          *[_cell(row[c]) for c in ("lead_name", "operator", "kind", "topic", "comment", "amount",
                                                    "script_gaps")])
        console.print(table)
    else:
        _emit(to_csv(rows) if fmt is ReportFormat.csv else to_json(rows, period) + "\n", output)


@app.command("budget")
def budget(ctx: typer.Context,
           fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table or json")) -> None:
    """The abandon budget now: abandoned calls (answered, no operator within 2 s) as a share of answered
    calls today and over the policy's rolling window (abandon_budget_days), against abandon_budget_percent;
    state ok, near (80% of the limit or more: a predictive pacer falls back to progressive) or over."""
    from dialer.reports.budget import read_budget
    from leads.policy.store import current_policy
    if fmt not in (ReportFormat.table, ReportFormat.json):
        raise UsageError("--format for the budget: table or json")
    settings, db = _store(ctx)
    state = read_budget(db.engine, clock.now(), settings.center_timezone, current_policy(db))
    if fmt is ReportFormat.json:
        import json
        sys.stdout.write(json.dumps(state.as_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=f"abandon budget: at most {state.limit_percent:g}% of answered calls ({state.state})")
    for column in ("window", "answered", "abandoned", "abandoned %", "limit %"):
        table.add_column(column)
    table.add_row("today", str(state.day_answered), str(state.day_abandoned), _cell(state.day_percent),
                  f"{state.limit_percent:g}")
    table.add_row(f"last {state.window_days} days", str(state.window_answered), str(state.window_abandoned),
                  _cell(state.window_percent), f"{state.limit_percent:g}")
    console.print(table)


@app.command("refusals")
def refusals(ctx: typer.Context,
             start: Optional[str] = typer.Option(None, "--from", help=FROM_HELP),
             end: Optional[str] = typer.Option(None, "--to", help=TO_HELP),
             fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="table, csv, json or xlsx"),
             output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write")) -> None:
    """Refusals recorded in the period (not interested, do not call, complaint) by kind and topic (the reason
    the operator chose from reports.topics), most frequent first, each with its share of all refusals."""
    from dialer.reports.queries import compute_refusals
    from dialer.reports.render import to_csv, to_json, write_xlsx
    if fmt is ReportFormat.xlsx and output is None:
        raise UsageError("--format xlsx needs --output FILE.xlsx")
    settings, db = _store(ctx)
    period = _period(settings, start, end)
    rows = [r.as_dict() for r in compute_refusals(db.engine, period)]
    if fmt is ReportFormat.xlsx:
        write_xlsx(output, {"refusals": rows}, period)
        console.print(f"refusals written to {output}", highlight=False)
    elif fmt is ReportFormat.table:
        table = Table(title=f"refusals by reason {_span(period)}")
        for column in ("kind", "topic", "refusals", "share %"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["kind"], _cell(row["topic"]), str(row["refusals"]), str(row["share_pct"]))
        console.print(table)
    else:
        _emit(to_csv(rows) if fmt is ReportFormat.csv else to_json(rows, period) + "\n", output)


def _columns(dims: Sequence[str]) -> tuple[str, ...]:
    columns = COLUMNS if all(d in LEAD_DIMENSIONS for d in dims) else CALL_COLUMNS
    if not all(d in WORKED_DIMENSIONS for d in dims):
        columns = tuple(c for c in columns if c not in WORKED_COLUMNS)
    return columns


WORKED_COLUMNS = ("worked_hours", "calls_per_hour", "talk_min_per_hour", "wrapup_min_per_hour", "occupancy_pct")


def _emit(text: str, output: Optional[Path]) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"written to {output}", highlight=False)


def _span(period: Period) -> str:
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(period.zone)
    return f"{period.start.astimezone(tz):%Y-%m-%d %H:%M} - {period.end.astimezone(tz):%Y-%m-%d %H:%M} ({period.zone})"


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _table(rows, dims: Sequence[str], period: Period) -> None:
    if not dims:
        row = rows[0]
        table = Table(title=f"report {_span(period)}")
        for column in ("KPI", "value", "definition"):
            table.add_column(column)
        for name in TABLE_LEAD + TABLE_CALLS + TABLE_WORKED:
            table.add_row(name, _cell(getattr(row, name)), GLOSSARY.get(name, ""))
        console.print(table)
        return
    shown = ((TABLE_LEAD if all(d in LEAD_DIMENSIONS for d in dims) else ()) + TABLE_CALLS
             + (TABLE_WORKED if all(d in WORKED_DIMENSIONS for d in dims) else ()))
    table = Table(title=f"report by {', '.join(dims)} {_span(period)}")
    for column in (*dims, *shown):
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.key[d]) for d in dims], *[_cell(getattr(row, c)) for c in shown])
    console.print(table)
