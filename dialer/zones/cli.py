"""`dialer zones update FILE...` and `dialer zones lookup PHONE`: the numbering plan in use.

The settings come from the root command's state (ctx.obj, see cli.py): `zones.registry_file` names
the table `update` writes and every command then uses.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from kernel.errors import InvalidPhone, UsageError
from leads.numbering.plan import NumberingPlan, active_plan, load_file, national_number, use_file
from leads.numbering.registry_csv import read_registry
from leads.phone import normalize_phone

app = typer.Typer(help="Russia's numbering plan: a number's region, operator and time zone.",
                  no_args_is_help=True)
console = Console()


@app.command("lookup")
def lookup(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number, e.g. +7 914 700-12-34"),
           fmt: str = typer.Option("table", "--format", help="table or json")) -> None:
    """Region, operator and time zone(s) of a number, and the date of the source they come from."""
    from leads.policy.zones import lead_zones
    ctx.obj.settings   # applies zones.registry_file
    try:
        e164 = normalize_phone(phone, ctx.obj.settings.default_region).e164
    except InvalidPhone as exc:
        raise UsageError(f"{phone!r} is not a callable phone number ({exc})") from None
    plan = active_plan()
    national = national_number(e164)
    found = plan.find(national) if national is not None else None
    zones = lead_zones(None, e164, "center")
    record = {"phone": e164, "region": found.region if found else None,
              "operator": found.operator if found else None,
              "range": f"{found.start}-{found.end}" if found else None,
              "zones": list(zones.names), "zone_source": zones.source_words,
              "source": plan.source.get("source"), "source_date": plan.source.get("date")}
    if fmt == "json":
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        return
    for key, value in record.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{key:12} {shown if shown not in (None, '') else '-'}", highlight=False)


@app.command("update")
def update(ctx: typer.Context,
           files: list[Path] = typer.Argument(..., help="Official registry CSV files (DEF-9xx.csv, ABC-3xx.csv, "
                                                        "ABC-4xx.csv, ABC-8xx.csv)"),
           source_date: Optional[str] = typer.Option(None, "--date", help="Date of the extract, YYYY-MM-DD "
                                                                          "(default: the newest file's date)"),
           out: Optional[Path] = typer.Option(None, "--out", help="Table to write [default: zones.registry_file]")
           ) -> None:
    """Load a newer official registry extract; `lookup`, `why`, `queue` and the daemon then use it."""
    target = out or (Path(ctx.obj.settings.zones.registry_file) if ctx.obj.settings.zones.registry_file else None)
    if target is None:
        raise UsageError("no place to keep the table: set zones.registry_file (env DIALER_ZONES_REGISTRY_FILE) "
                         "or pass --out")
    if source_date is not None:
        try:
            date.fromisoformat(source_date)
        except ValueError:
            raise UsageError(f"--date {source_date!r} is not a date as YYYY-MM-DD") from None
    ranges, skipped = [], 0
    for path in files:
        report = read_registry(path)
        ranges += report.ranges
        skipped += len(report.skipped)
        for line in report.skipped[:5]:
            console.print(f"[yellow]{path.name}[/yellow] {line}", highlight=False)
        console.print(f"{path.name}: {len(report.ranges)} ranges", highlight=False)
    newest = max(date.fromtimestamp(p.stat().st_mtime) for p in files).isoformat()
    plan = NumberingPlan.from_ranges(ranges, {"source": ", ".join(p.name for p in files),
                                              "date": source_date or newest})
    target.parent.mkdir(parents=True, exist_ok=True)
    plan.write(target)
    use_file(target)
    unzoned = sum(1 for a in plan.ranges() if not a.zones)
    console.print(f"[green]{len(plan)} ranges[/green] written to {target} (source date {plan.source['date']}; "
                  f"{unzoned} without a known region, {skipped} rows skipped); restart a running daemon to use "
                  f"them", highlight=False)
    load_file(target)   # read back: what was written is readable
