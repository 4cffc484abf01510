"""The `dialer` command: parses, calls the library, renders with Rich. No rule lives here.

Exit codes: 0 ok, 1 failure, 2 usage error (bad flag, bad value, bad configuration).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import click
import typer
from rich.console import Console
from rich.table import Table

from dialer.clock import SystemClock
from dialer.errors import DialerError, NotFound, SettingsError, UsageError
from dialer.settings import Settings, describe, load_settings

app = typer.Typer(help="Outbound call-center dialer and web-lead callback engine.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
leads_app = typer.Typer(help="Leads: list, show, import from CSV.", no_args_is_help=True)
dnc_app = typer.Typer(help="The do-not-call list.", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(dnc_app, name="dnc")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
clock = SystemClock()


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


@dataclass
class AppState:
    config: Optional[Path] = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Optional[Settings] = None
    _db: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, overrides=self.overrides)
        return self._settings

    def override(self, **values: Any) -> None:
        """Command flags beat file and environment; drop the cached settings so they apply."""
        self.overrides.update({k: v for k, v in values.items() if v is not None})
        self._settings = None

    @property
    def db(self):
        if self._db is None:
            from dialer.db.engine import Database
            self._db = Database(self.settings.db_url)
        return self._db


def state(ctx: typer.Context) -> AppState:
    return ctx.ensure_object(AppState)


@app.callback()
def _root(ctx: typer.Context,
          config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                help="TOML settings file [env: DIALER_CONFIG; default ./dialer.toml]"),
          db_url: Optional[str] = typer.Option(None, "--db-url", help="Database URL [env: DIALER_DB_URL]"),
          log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING, ERROR "
                                                                           "[env: DIALER_LOG_LEVEL]")) -> None:
    app_state = state(ctx)
    app_state.config = config
    app_state.override(db_url=db_url, log_level=log_level)


# ---------------------------------------------------------------- rendering helpers

def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def to_json(data: Any) -> str:
    return json.dumps(data, default=_plain, ensure_ascii=False, indent=2)


def render(rows: Sequence[dict[str, Any]], fmt: str = "table", title: str | None = None,
           columns: Sequence[str] | None = None, styles: Callable[[dict[str, Any]], str | None] | None = None
           ) -> None:
    """Rows as a Rich table, JSON (for scripts) or CSV."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        sys.stdout.write(to_json([{c: row.get(c) for c in columns} for row in rows]) + "\n")
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _plain(row.get(c)) for c in columns])
        sys.stdout.write(out.getvalue())
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns], style=styles(row) if styles else None)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=_plain)
    return str(_plain(value))


def render_record(record: dict[str, Any], fmt: str, title: str | None = None) -> None:
    if fmt == "json":
        sys.stdout.write(to_json(record) + "\n")
        return
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            continue
        table.add_row(key, _cell(value))
    console.print(table)
    for key, value in record.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            render(value, "table", title=key)


def parse_when(text: str | None, settings: Settings) -> datetime:
    """A CLI time: ISO 8601; without an offset it means the call center's zone. None: now."""
    if text is None:
        return clock.now()
    from zoneinfo import ZoneInfo
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a time; use ISO 8601 such as 2026-11-23T10:30 "
                         f"(center zone) or 2026-11-23T10:30+03:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(settings.center_timezone))
    return when


# ---------------------------------------------------------------- init and config

@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database (or bring it up to date) by running the migrations."""
    from dialer.bootstrap import initialize
    settings = state(ctx).settings
    report = initialize(state(ctx).db, settings, clock.now())
    console.print(f"[green]database ready[/green] {report}")


@app.command("config")
def show_config(ctx: typer.Context,
                fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Show the effective settings (secrets hidden) and their environment variables."""
    settings = state(ctx).settings
    rows = []
    for info in describe():
        value: Any = settings
        for part in info.key.split("."):
            value = getattr(value, part)
        if info.secret and value:
            value = "***"
        rows.append({"key": info.key, "value": value, "env": info.env, "help": info.help})
    render(rows, fmt.value, title="settings")


# ---------------------------------------------------------------- leads

@leads_app.command("list")
def leads_list(ctx: typer.Context,
               status: Optional[str] = typer.Option(None, "--status", "-s", help="Only leads with this status"),
               limit: int = typer.Option(100, "--limit", "-n", min=1, help="Newest N leads"),
               fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """List leads, newest first."""
    from leads.queries import list_leads
    rows = [lead.as_dict() for lead in list_leads(state(ctx).db, status, limit)]
    render(rows, fmt.value, title="leads", columns=["id", "received_at", "status", "phone", "name", "order_number",
                                                    "product", "source", "reason", "duplicate_of", "attempts"])


@leads_app.command("show")
def leads_show(ctx: typer.Context, lead_id: int = typer.Argument(..., help="Lead id"),
               fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Everything stored about one lead, with its attempts and dispositions."""
    from leads.queries import lead_details
    render_record(lead_details(state(ctx).db, lead_id), fmt.value, title=f"lead {lead_id}")


# ---------------------------------------------------------------- DNC

@dnc_app.command("add")
def dnc_add(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number in any usual format"),
            reason: Optional[str] = typer.Option(None, "--reason", help="Why (e.g. the customer's words)"),
            by: str = typer.Option("cli", "--by", help="Who asked for it")) -> None:
    """Put a number on the do-not-call list."""
    from leads import dnc
    from leads.phone import mask_phone
    s = state(ctx)
    number, added = dnc.add(s.db, phone, region=s.settings.default_region, reason=reason, added_by=by,
                            now=clock.now())
    console.print(f"{mask_phone(number)} {'added to' if added else 'was already on'} the DNC list")


@dnc_app.command("remove")
def dnc_remove(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number"),
               by: str = typer.Option("cli", "--by", help="Who asked for it")) -> None:
    """Take a number off the do-not-call list."""
    from leads import dnc
    from leads.phone import mask_phone
    s = state(ctx)
    number, removed = dnc.remove(s.db, phone, region=s.settings.default_region, removed_by=by)
    if not removed:
        raise NotFound(f"{mask_phone(number)} is not on the DNC list")
    console.print(f"{mask_phone(number)} removed from the DNC list")


@dnc_app.command("list")
def dnc_list(ctx: typer.Context,
             fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """The do-not-call list."""
    from dataclasses import asdict
    from leads import dnc
    rows = [asdict(r) for r in dnc.list_entries(state(ctx).db)]
    render(rows, fmt.value, title="do-not-call", columns=["phone", "reason", "added_by", "added_at"])


# ---------------------------------------------------------------- entry point

def main(argv: Sequence[str] | None = None) -> None:
    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=True)
    except (UsageError, SettingsError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except DialerError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
