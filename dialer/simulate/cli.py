"""`dialer simulate`: a whole day of the product's decisions on a virtual clock, strategies side by side.

No rule lives here: the command reads its inputs (inputs.py), runs the day (day.py) and renders the
KPIs (kpis.py, plot.py). Bad inputs are one-line usage errors (exit code 2).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from datetime import date, time, timedelta
from enum import Enum
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from dialer.simulate.customers import Behaviour, parse_range
from dialer.simulate.day import DayPlan, simulate
from dialer.simulate.inputs import constant_staffing, day_of, parse_shifts, read_arrivals_csv, synthetic_arrivals
from dialer.simulate.kpis import COLUMNS, day_kpis
from dialer.simulate.strategies import BUILT_IN, parse_strategy
from kernel.errors import DialerError, UsageError

HELP = ("Run a whole day (leads arriving, operators by shift, customers answering or not) through the "
        "product's own intake, policy, claim and result rules on a temporary store, on a virtual clock, and "
        "print the KPIs of each --policy side by side. Built-in: " + ", ".join(BUILT_IN) + "; or a FILE.toml "
        "of policy keys. See docs/simulate.md.")
app = typer.Typer(help=HELP, invoke_without_command=True, rich_markup_mode=None)
console = Console()


class Format(str, Enum):
    table = "table"
    json = "json"


@app.callback()
def simulate_day(ctx: typer.Context,
                 policies: Optional[list[str]] = typer.Option(
                     None, "--policy", help="current (the store's), progressive, fifo-hopper-60s, predictive, or "
                                            "FILE.toml; repeat to compare [default: current, fifo-hopper-60s]"),
                 leads_file: Optional[Path] = typer.Option(None, "--leads", help="CSV of past leads with a "
                                                                                 "received_at column"),
                 from_db: bool = typer.Option(False, "--from-db", help="The store's own leads of --from..--to "
                                              "as the arrivals (each day: from 22:00 the evening before)"),
                 start: Optional[str] = typer.Option(None, "--from", help="With --from-db: the first day "
                                                                          "(YYYY-MM-DD) [default: --to]"),
                 end: Optional[str] = typer.Option(None, "--to", help="With --from-db: the last day (YYYY-MM-DD)"),
                 leads_count: int = typer.Option(2000, "--leads-count", help="Synthetic leads over the day's "
                                                                             "hourly profile (without --leads)"),
                 operators: Optional[int] = typer.Option(None, "--operators", help="Operators on duty all day "
                                                                                   "[default: 10]"),
                 shifts: Optional[str] = typer.Option(None, "--shifts", help="Operators by shift, e.g. "
                                                                             "\"10-16:6,16-22:10\" (overlaps add)"),
                 day: Optional[str] = typer.Option(None, "--date", help="The (first) day, YYYY-MM-DD [default: "
                                                                        "the CSV's, else 2026-11-24]"),
                 days: int = typer.Option(1, "--days", min=1, max=31, help="Consecutive days on one store "
                                          "(retries carry over; synthetic leads: --leads-count each day)"),
                 opens: str = typer.Option("10:00", "--opens", help="With --operators: the shift's start"),
                 closes: str = typer.Option("22:00", "--closes", help="No new call after this time"),
                 answer_rate: Optional[float] = typer.Option(None, "--answer-rate", help="Probability a first "
                                                             "call is answered, every hour [default: 0.55]"),
                 talk: Optional[str] = typer.Option(None, "--talk", help="Talk seconds, LOW-HIGH (uniform) "
                                                                         "[default: 60-180]"),
                 wrapup: Optional[str] = typer.Option(None, "--wrapup", help="Wrap-up seconds, LOW-HIGH (uniform) "
                                                                             "[default: 20-40]"),
                 calibrate: bool = typer.Option(False, "--calibrate", help="Fit answer rates (by hour and attempt), "
                                                "answer delay, talk and wrap-up from the store's own calls; "
                                                "--answer-rate/--talk/--wrapup still override"),
                 seed: int = typer.Option(1, "--seed", help="Same seed, same inputs: the same output"),
                 fmt: Format = typer.Option(Format.table, "--format", help="table or json"),
                 plot_file: Optional[Path] = typer.Option(None, "--plot", help="Also draw FILE.png / FILE.svg"),
                 ) -> None:
    settings = _settings(ctx)
    if plot_file is not None and plot_file.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {plot_file}: give a .png or .svg file name")
    zone = _zone(settings.center_timezone if settings else "Europe/Moscow")
    if operators is not None and shifts is not None:
        raise UsageError("give --operators or --shifts, not both")
    closing = _clock(closes, "--closes")
    staffing = parse_shifts(shifts) if shifts is not None else constant_staffing(10 if operators is None else operators, _clock(opens, "--opens"),
                                                                     closing)
    if from_db:
        if leads_file is not None:
            raise UsageError("give --leads or --from-db, not both")
        if end is None:
            raise UsageError("--from-db needs --to (and --from for several days), e.g. --from-db --to 2026-11-24")
        from dialer.simulate.history import arrivals_of_store
        last = _date(end, "--to")
        the_day = _date(start, "--from") if start else last
        days = (last - the_day).days + 1
        if days > 31:
            raise UsageError(f"--from {the_day} --to {last}: at most 31 days")
        arrivals = arrivals_of_store(_store(ctx, "--from-db"), the_day, last, zone)
    elif start is not None or end is not None:
        raise UsageError("--from/--to go with --from-db")
    elif leads_file is not None:
        arrivals = read_arrivals_csv(leads_file, zone)
        the_day = _date(day) if day else day_of(arrivals, zone) - timedelta(days=days - 1)
    else:
        the_day = _date(day) if day else date(2026, 11, 24)
        arrivals = [a for k in range(days)
                    for a in synthetic_arrivals(leads_count, the_day + timedelta(days=k), zone, seed + k)]
    behaviour = Behaviour()
    if calibrate:
        from dialer.simulate.calibrate import calls_of_store, fit_behaviour
        behaviour = fit_behaviour(calls_of_store(_store(ctx, "--calibrate")), zone)
    if talk is not None:
        behaviour = replace(behaviour, talk=parse_range(talk, "--talk"))
    if wrapup is not None:
        behaviour = replace(behaviour, wrapup=parse_range(wrapup, "--wrapup"))
    if answer_rate is not None:
        behaviour = behaviour.with_answer_rate(answer_rate)
    current = _current_policy(ctx)
    strategies = [parse_strategy(name, current) for name in (policies or ["current", "fifo-hopper-60s"])]
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise UsageError(f"--policy: the same policy is given twice ({', '.join(names)})")
    plan = DayPlan(the_day, zone.key, tuple(arrivals), staffing, behaviour, closing, seed, days=days)
    import logging
    logging.disable(logging.WARNING)    # the product's own notices (alerts raised, leases) about a simulated day
    try:
        with tempfile.TemporaryDirectory(prefix="dialer-simulate-") as folder:
            records = simulate(plan, strategies, Path(folder))
    finally:
        logging.disable(logging.NOTSET)
    kpis = [day_kpis(r) for r in records]
    if plot_file is not None:
        from dialer.simulate.plot import draw
        draw(plot_file, records, kpis, zone)
    if fmt is Format.json:
        sys.stdout.write(json.dumps({"date": the_day.isoformat(), "days": days, "center_zone": zone.key,
                                     "seed": seed, "leads": len(arrivals),
                                     "operator_hours": staffing.operator_hours() * days,
                                     "strategies": [_stable(k.as_dict()) for k in kpis]},
                                    ensure_ascii=False, indent=2) + "\n")
        return
    period = f"day {the_day}" if days == 1 else f"{days} days from {the_day}"
    table = Table(title=f"simulated {period}, {len(arrivals)} leads, {staffing.operator_hours() * days:g} "
                        f"operator-hours, seed {seed}")
    table.add_column("KPI")
    for k in kpis:
        paced = "" if k.pacing == "progressive" or k.pacing in k.strategy else f" ({k.pacing})"
        table.add_column(k.strategy + paced, justify="right")
    for key, label in COLUMNS:
        table.add_row(label, *[_cell(getattr(k, key)) for k in kpis])
    console.print(table)


def _stable(row: dict) -> dict:
    """JSON without the wall time, so that the same seed gives byte-identical output."""
    return {k: v for k, v in row.items() if k != "wall_seconds"}


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _settings(ctx: typer.Context):
    obj = ctx.find_root().obj
    if obj is None:
        return None
    return obj.settings


def _store(ctx: typer.Context, flag: str):
    """The configured store, only if it exists (never created by reading it)."""
    from sqlalchemy.engine import make_url
    obj = ctx.find_root().obj
    if obj is None:
        raise UsageError(f"{flag}: no store configured (--db-url or DIALER_DB_URL)")
    url = make_url(obj.settings.db_url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        raise UsageError(f"{flag}: the store {url.database or ':memory:'} does not exist (--db-url or DIALER_DB_URL)")
    return obj.db


def _current_policy(ctx: typer.Context):
    """The store's policy in force, read only when a strategy asks for it; the defaults without a store."""
    def read():
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.engine import make_url

        from leads.policy.store import current_policy
        from leads.policy.values import DEFAULTS
        obj = ctx.find_root().obj
        if obj is None:
            return DEFAULTS
        url = make_url(obj.settings.db_url)
        if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
            return DEFAULTS                              # no store here: never create one to read it
        try:
            return current_policy(obj.db)
        except SQLAlchemyError as exc:
            raise DialerError(f"--policy current: cannot read the store's policy ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}); give --policy progressive for the defaults") from None
    return read


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"center_timezone {name!r} is not a time zone") from None


def _clock(text: str, flag: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a time of day such as 22:00") from None


def _date(text: str, flag: str = "--date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give a day as YYYY-MM-DD") from None
