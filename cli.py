"""The `dialer` command: parses, calls the library, renders with Rich. No rule lives here.

Exit codes: 0 ok, 1 failure, 2 usage error (bad flag, bad value, bad configuration).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer
from rich.console import Console
from rich.table import Table

from kernel.clock import SystemClock
from kernel.errors import DialerError, NotFound, SettingsError, UsageError
from kernel.settings import Settings, describe, load_settings

app = typer.Typer(help="Outbound call-center dialer and web-lead callback engine.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  rich_markup_mode=None)
leads_app = typer.Typer(help="Leads: list, show, import from CSV.", no_args_is_help=True)
dnc_app = typer.Typer(help="The do-not-call list.", no_args_is_help=True)
app.add_typer(leads_app, name="leads")
app.add_typer(dnc_app, name="dnc")
from dialer.reports.cli import app as report_app  # noqa: E402  reports (issue 13)
app.add_typer(report_app, name="report")
from dialer.doctor.cli import app as doctor_app  # noqa: E402  doctor (issue 17)
app.add_typer(doctor_app, name="doctor")
from dialer.housekeeping.cli import app as prune_app  # noqa: E402  housekeeping (issue 17)
app.add_typer(prune_app, name="prune")
from dialer.alerts.cli import app as alerts_app  # noqa: E402  alerts (issue 14)
app.add_typer(alerts_app, name="alerts")
from dialer.simulate.cli import app as simulate_app  # noqa: E402  simulate (issue 15)
app.add_typer(simulate_app, name="simulate")

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
    verbose: bool = False   # -v or an explicit --log-level: plain commands log at the configured level

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, overrides=self.overrides)
            from leads.numbering.plan import use_file
            use_file(self._settings.zones.registry_file or None)
        return self._settings

    def override(self, **values: Any) -> None:
        """Command flags beat file and environment; drop the cached settings so they apply."""
        self.overrides.update({k: v for k, v in values.items() if v is not None})
        self._settings = None

    @property
    def db(self):
        if self._db is None:
            from kernel.db.engine import Database
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
                                                                           "[env: DIALER_LOG_LEVEL]"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Show INFO logs of plain commands (they "
                                                                      "print only warnings and errors)")) -> None:
    app_state = state(ctx)
    app_state.config = config
    app_state.verbose = verbose or log_level is not None
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
    if not 1970 <= when.year <= 2999:  # beyond these, shifting by a zone or a day overflows datetime
        raise UsageError(f"{text!r} is out of range; give a time between the years 1970 and 2999")
    return when


# ---------------------------------------------------------------- init and config

@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database (or bring it up to date) by running the migrations."""
    from dialer.bootstrap import initialize
    from sqlalchemy.exc import SQLAlchemyError
    settings = state(ctx).settings
    try:
        report = initialize(state(ctx).db, settings, clock.now())
    except SQLAlchemyError as exc:  # unreachable server, missing database, a folder that is not there
        raise _database_error(state(ctx), exc) from None
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
    s = state(ctx)
    rows = _in_center_zone([lead.as_dict() for lead in list_leads(_ready_store(s), status, limit)], s.settings)
    if not rows and fmt is Format.table:
        console.print("no leads" + (f" with status {status}" if status else "") + " yet")
        return
    render(rows, fmt.value, title="leads", columns=["id", "received_at", "status", "phone", "name", "order_number",
                                                    "product", "source", "reason", "duplicate_of", "attempts"])


@leads_app.command("show")
def leads_show(ctx: typer.Context, lead_id: int = typer.Argument(..., help="Lead id"),
               fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Everything stored about one lead, with its attempts and dispositions."""
    from leads.queries import lead_details
    s = state(ctx)
    render_record(_in_center_zone(lead_details(_ready_store(s), lead_id), s.settings), fmt.value,
                  title=f"lead {lead_id}")


@leads_app.command("trail")
def leads_trail(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number in any usual format"),
                fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Every lead, call, e-mail, consent and DNC change of a number, in time order (center zone)."""
    from zoneinfo import ZoneInfo
    from leads.dnc import _e164
    from leads.trail import trail
    s = state(ctx)
    center = ZoneInfo(s.settings.center_timezone)
    rows = [{**e.as_dict(), "at": e.at.astimezone(center)}
            for e in trail(_ready_store(s), _e164(phone, s.settings.default_region))]
    render(rows, fmt.value, title=f"trail of {phone}", columns=["at", "kind", "lead_id", "what"])


# ---------------------------------------------------------------- DNC

@dnc_app.command("add")
def dnc_add(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number in any usual format"),
            reason: Optional[str] = typer.Option(None, "--reason", help="Why (e.g. the customer's words)"),
            by: str = typer.Option("cli", "--by", help="Who asked for it")) -> None:
    """Put a number on the do-not-call list."""
    from leads import dnc
    from leads.phone import mask_phone
    s = state(ctx)
    number, added = dnc.add(_ready_store(s), phone, region=s.settings.default_region, reason=reason, added_by=by,
                            now=clock.now())
    console.print(f"{mask_phone(number)} {'added to' if added else 'was already on'} the DNC list")


@dnc_app.command("remove")
def dnc_remove(ctx: typer.Context, phone: str = typer.Argument(..., help="Phone number"),
               by: str = typer.Option("cli", "--by", help="Who asked for it")) -> None:
    """Take a number off the do-not-call list."""
    from leads import dnc
    from leads.phone import mask_phone
    s = state(ctx)
    number, removed = dnc.remove(_ready_store(s), phone, region=s.settings.default_region, removed_by=by,
                                 now=clock.now())
    if not removed:
        raise NotFound(f"{mask_phone(number)} is not on the DNC list")
    console.print(f"{mask_phone(number)} removed from the DNC list")


@dnc_app.command("list")
def dnc_list(ctx: typer.Context,
             fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """The do-not-call list."""
    from dataclasses import asdict
    from leads import dnc
    s = state(ctx)
    rows = _in_center_zone([asdict(r) for r in dnc.list_entries(_ready_store(s))], s.settings)
    if not rows and fmt is Format.table:
        console.print("the do-not-call list is empty")
        return
    render(rows, fmt.value, title="do-not-call", columns=["phone", "reason", "added_by", "added_at"])


# ---------------------------------------------------------------- HTTP server and feeds

feeds_app = typer.Typer(help="Pull sources: JSON feeds polled with a cursor (feeds tables in the config file).",
                        no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")


def _ready_store(s: AppState):
    """The database, refused with a clear message unless it is reachable and migrated."""
    from sqlalchemy.exc import SQLAlchemyError
    from dialer.bootstrap import ensure_ready
    from dialer.logs import setup_logging
    level = s.settings.log_level
    setup_logging(level if s.verbose or level in ("WARNING", "ERROR") else "WARNING")
    try:
        ensure_ready(s.db)
    except SQLAlchemyError as exc:
        raise _database_error(s, exc) from None
    return s.db


def _database_error(s: AppState, exc: Exception) -> DialerError:
    return DialerError(f"cannot use the database {s.db.engine.url!r}: {type(exc).__name__}: "
                       f"{str(exc).splitlines()[0]}")


def _intake_for(s: AppState):
    from leads.intake import Intake
    return Intake(s.db, default_region=s.settings.default_region)  # dedup window: from the stored policy


@app.command()
def serve(ctx: typer.Context,
          host: Optional[str] = typer.Option(None, "--host", help="Listen address (env DIALER_HTTP_HOST, "
                                                                  "default 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                             help="Listen port (env DIALER_HTTP_PORT, default 8080)")) -> None:
    """Run the HTTP server: the lead webhook POST /leads, GET /health, the API docs at /docs."""
    import logging
    import uvicorn
    from dialer.web.app import create_app
    from dialer.web.server import bind, run_until_stopped, server_config
    s = state(ctx)
    s.override(**{"http.host": host, "http.port": port})
    settings = s.settings
    db = _ready_store(s)
    from dialer.logs import setup_logging
    setup_logging(settings.log_level)  # a server's log is its output: every lead accepted or refused
    if not settings.intake.token:
        logging.getLogger("dialer.serve").warning(
            "intake.token is empty: POST /leads refuses every call (set DIALER_INTAKE_TOKEN)")
    app_ = create_app(settings, db, _intake_for(s), clock)
    sock = bind(settings.http.host, settings.http.port)
    with db.checkpoints_in_background():
        run_until_stopped(uvicorn.Server(server_config(app_, settings.http.host, settings.http.port,
                                                       settings.log_level)), sock)


def _selected_feeds(settings: Settings, name: Optional[str]) -> list:
    if not settings.feeds:
        raise UsageError("no feeds are configured: add a feeds table (name, url) to the config file")
    if name is None:
        return list(settings.feeds)
    chosen = [feed for feed in settings.feeds if feed.name == name]
    if not chosen:
        raise UsageError(f"no feed named {name!r}; configured: {', '.join(f.name for f in settings.feeds)}")
    return chosen


@feeds_app.command("poll")
def feeds_poll(ctx: typer.Context,
               name: Optional[str] = typer.Option(None, "--name", "-n", help="Only this feed (default: all)"),
               once: bool = typer.Option(False, "--once", help="Poll once, print what was stored, and exit "
                                                                "(exit 1 if a feed failed)"),
               fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Poll the configured feeds: once, or every interval_seconds until Ctrl-C."""
    import asyncio
    import signal
    from leads.sources.feed import FeedPoller, HttpFeed
    s = state(ctx)
    feeds = _selected_feeds(s.settings, name)
    db = _ready_store(s)
    intake = _intake_for(s)

    async def poll() -> list:
        sources = [HttpFeed(feed) for feed in feeds]
        pollers = [FeedPoller(feed, source, intake, db, clock) for feed, source in zip(feeds, sources)]
        try:
            if once:
                return [await poller.poll_once() for poller in pollers]
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await asyncio.gather(*(poller.run(stop) for poller in pollers))
            return []
        finally:
            for source in sources:
                await source.aclose()

    reports = asyncio.run(poll())
    if once:
        render([r.as_dict() for r in reports], fmt.value, title="feeds polled",
               columns=["feed", "pages", "stored", "new", "duplicate", "dnc", "invalid", "already_stored",
                        "malformed_items", "cursor_before", "cursor_after", "error"])
        failed = [r.feed for r in reports if r.error]
        if failed:
            raise DialerError(f"feed(s) failed: {', '.join(failed)} (see the error column)")


@feeds_app.command("list")
def feeds_list(ctx: typer.Context,
               fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """The configured feeds and where each one's stored cursor stands."""
    from leads.sources.feed import list_cursors, source_name
    s = state(ctx)
    cursors = list_cursors(_ready_store(s), "feed:")
    rows = []
    for feed in s.settings.feeds:
        value, updated = cursors.get(source_name(feed), (None, None))
        rows.append({"name": feed.name, "url": feed.url, "interval_seconds": feed.interval_seconds,
                     "cursor": value, "cursor_updated_at": _center_time(updated, s.settings.center_timezone)})
    render(rows, fmt.value, title="feeds", columns=["name", "url", "interval_seconds", "cursor",
                                                    "cursor_updated_at"])


@feeds_app.command("set-cursor")
def feeds_set_cursor(ctx: typer.Context, name: str = typer.Argument(..., help="Feed name"),
                     value: str = typer.Argument(..., help="The cursor the next poll sends")) -> None:
    """Move a feed's stored cursor, e.g. past a page whose malformed items the feed cannot fix."""
    from leads.sources.feed import read_cursor, source_name, write_cursor
    s = state(ctx)
    feed = _selected_feeds(s.settings, name)[0]
    db = _ready_store(s)
    before = read_cursor(db, source_name(feed))
    write_cursor(db, source_name(feed), value, clock.now())
    console.print(f"feed {feed.name}: cursor {before!r} -> {value!r}", highlight=False, markup=False)


# ---------------------------------------------------------------- leads import (CSV)

def _parse_map(items: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise UsageError(f"--map {item!r}: write it as COLUMN=field, e.g. --map \"Контакт=phone\"")
        mapping[column.strip()] = target.strip()
    return mapping


def _parse_delimiter(text: str | None) -> str | None:
    if text is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
    value = named.get(text.lower(), text)
    if len(value) != 1 or value in "\"\r\n":
        raise UsageError(f"--delimiter {text!r}: give one character such as ',' or ';', or 'tab'")
    return value


@leads_app.command("import")
def leads_import(
        ctx: typer.Context,
        file: str = typer.Argument(..., metavar="FILE.csv", help="CSV file with a header line ('-': standard input)"),
        map_: list[str] = typer.Option([], "--map", "-m", metavar="COLUMN=FIELD",
                                       help="Read COLUMN as FIELD (phone, name, order_number, product, source, "
                                            "comment, preferred_time, timezone, region, or extra); repeatable"),
        delimiter: Optional[str] = typer.Option(None, "--delimiter", "-d",
                                                help="',' ';' or 'tab' [default: detected from the header]"),
        encoding: str = typer.Option("utf-8", "--encoding", "-e",
                                     help="Text encoding of the file, e.g. utf-8 or cp1251 (Excel in Russian)"),
        source: str = typer.Option("csv", "--source", help="Source stored on leads when the file has no "
                                                           "source column"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=100_000,
                                                 help="Rows per transaction [env: DIALER_INTAKE_CSV_BATCH_SIZE; "
                                                      "default 5000]"),
        show: int = typer.Option(20, "--show-malformed", min=0, help="List at most N malformed rows"),
        fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="Summary as table or json"),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, max=2,
                                              help="2: read the file in a second process while this one stores "
                                                   "[default: 2 for files over 1 MB on a multi-core machine]")
        ) -> None:
    """Import leads from a CSV file: every row is stored as new, duplicate, dnc or invalid.

    Columns are found by name, in English or Russian (phone/телефон, name/фио, order_number/номер заказа...).

    Other columns are kept in the lead's extra. Malformed rows are listed with their line numbers and skipped.
    """
    from leads.sources.csv_import import import_csv

    s = state(ctx)
    mapping, sep = _parse_map(map_), _parse_delimiter(delimiter)
    if batch_size is not None:
        s.override(**{"intake.csv_batch_size": batch_size})
    settings = s.settings
    db = _ready_store(s)
    intake = _intake_for(s)
    target: Any = sys.stdin.buffer if file == "-" else Path(file)
    # SQLite: the WAL is copied on the other core, not inside each batch's commit.
    with db.checkpoints_in_background(), _import_progress() as on_progress:
        report = import_csv(target, intake, clock, mapping=mapping, delimiter=sep, encoding=encoding,
                            lead_source=source, batch_size=settings.intake.csv_batch_size,
                            on_progress=on_progress, max_listed=show,
                            workers=workers or _import_workers(target))
    if fmt is TableOrJson.json:
        sys.stdout.write(to_json(report.as_dict()) + "\n")
        return
    _render_import(report)


def _import_workers(target: Any) -> int:
    """Two processes pay off on a big file (the reader's start costs ~0.5 s) with a core to spare."""
    big = isinstance(target, Path) and target.is_file() and target.stat().st_size > 1_000_000
    return 2 if big and (os.cpu_count() or 1) >= 2 else 1


def _import_progress():
    """A Rich progress bar (rows and bytes) on a terminal; a no-op otherwise."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar():
        with Progress(TextColumn("importing"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[rows]} rows"),
                      TimeElapsedColumn(), console=err_console, transient=True,
                      disable=not err_console.is_terminal) as progress:
            task = progress.add_task("import", total=None, rows=0)

            def update(p) -> None:
                progress.update(task, completed=p.bytes_read, total=p.total_bytes, rows=f"{p.rows:,}")
            yield update
    return bar()


def _render_import(report) -> None:
    table = Table(title=f"import of {report.file}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("rows", justify="right")
    for label, value, style in (("rows read", report.rows, None), ("stored", report.stored, "bold"),
                                ("  new", report.counts["new"], "green"),
                                ("  duplicate", report.counts["duplicate"], "yellow"),
                                ("  dnc", report.counts["dnc"], "magenta"),
                                ("  invalid", report.counts["invalid"], "red"),
                                ("malformed (not stored)", report.malformed, "red" if report.malformed else None),
                                ("empty rows (skipped)", report.empty_rows, None)):
        table.add_row(label, f"{value:,}", style=style)
    console.print(table)
    extra = [column for column, target in report.columns.items() if target == "extra"]
    if extra:
        console.print("kept in extra: " + ", ".join(extra), highlight=False)
    if report.malformed_rows:
        rows = [{"line": m.lines(), "problem": m.problem} for m in report.malformed_rows]
        render(rows, "table", title="malformed rows")
        rest = report.malformed - len(report.malformed_rows)
        if rest:
            console.print(f"... and {rest:,} more malformed rows", highlight=False)


# ---------------------------------------------------------------- dispositions, CRM delivery, nightly export

crm_app = typer.Typer(help="Outcomes to the CRM: send the outbox, list dead letters, resend them.",
                      no_args_is_help=True)
app.add_typer(crm_app, name="crm")
from dialer.crm.connector_cli import app as connector_app   # crm connectors (issue 20)
app.add_typer(connector_app, name="connector")



def _parse_fields(items: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--field {item!r}: write it as NAME=VALUE, e.g. --field \"доставка=курьер\"")
        fields[name.strip()] = value
    return fields


@app.command()
def dispose(ctx: typer.Context,
            attempt_id: int = typer.Argument(..., help="The call attempt (it must have reached an operator)"),
            kind: str = typer.Argument(..., help="confirmed, callback, not_interested, wrong_number, fake, "
                                                 "duplicate, do_not_call, complaint, no_decision"),
            amount: Optional[str] = typer.Option(None, "--amount", help="confirmed: the order amount"),
            currency: Optional[str] = typer.Option(None, "--currency", help="confirmed: ISO 4217 code "
                                                                            "[default: RUB]"),
            at: Optional[str] = typer.Option(None, "--at", help="callback: ISO 8601 time; without an offset it "
                                                                "is the customer's local time if known, else "
                                                                "the center's"),
            comment: Optional[str] = typer.Option(None, "--comment", help="Free comment"),
            topic: Optional[str] = typer.Option(None, "--topic", help="Topic of the conversation, one of "
                                                                      "reports.topics"),
            field_: list[str] = typer.Option([], "--field", help="Custom field NAME=VALUE (repeatable)"),
            by: Optional[str] = typer.Option(None, "--by", help="Who records it [default: your login]"),
            fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Record the disposition of a connected call; the lead follows the policy and the CRM is told."""
    import getpass
    from dialer.dispositions import record_disposition
    from leads.disposition import DispositionInput
    s = state(ctx)
    db = _ready_store(s)
    from leads.disposition import parse_topics
    given = DispositionInput(kind, amount, currency, at, comment, _parse_fields(field_), topic)
    who = by or getpass.getuser()
    record = record_disposition(db, attempt_id, given, now=clock.now(), center_zone=s.settings.center_timezone,
                                recorded_by=f"cli:{who}", topics=parse_topics(s.settings.reports.topics))
    render_record(record.as_dict(), fmt.value, title=f"disposition of call attempt {attempt_id}")


def _sender(s: AppState):
    from dialer.crm.sender import OutboxSender
    if not s.settings.crm.webhook_url:
        raise UsageError("crm.webhook_url is not set (DIALER_CRM_WEBHOOK_URL): there is no CRM to send to")
    from dialer.recordings.links import public_base
    return OutboxSender(_ready_store(s), s.settings.crm, clock, recording_base=public_base(s.settings))


def _send_once(sender) -> dict[str, int]:
    import asyncio
    counts = asyncio.run(sender.send_due(clock.now()))
    return {"sent": counts.sent, "retrying": counts.retrying, "dead": counts.dead}


@crm_app.command("send")
def crm_send(ctx: typer.Context,
             once: bool = typer.Option(False, "--once", help="Send what is due now, print the counts and exit "
                                                              "(exit 1 if something failed)")) -> None:
    """Deliver the outbox to the CRM webhook: once, or until Ctrl-C (what the daemon does itself)."""
    import asyncio
    import signal
    sender = _sender(state(ctx))
    if once:
        counts = _send_once(sender)
        render([counts], "table", title="outcomes sent")
        if counts["retrying"] or counts["dead"]:
            raise DialerError(f"{counts['retrying'] + counts['dead']} outcome(s) not delivered "
                              f"(see `dialer crm status` and `dialer crm failed`)")
        return

    async def loop() -> None:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(signum, stop.set)
        await sender.run(stop)

    asyncio.run(loop())


@crm_app.command("status")
def crm_status(ctx: typer.Context,
               fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """How delivery stands: pending (due now), sent, dead letters, the oldest undelivered outcome."""
    from dialer.crm.outbox import outbox_counts
    render_record(outbox_counts(_ready_store(state(ctx)), clock.now()), fmt.value, title="CRM outbox")


@crm_app.command("failed")
def crm_failed(ctx: typer.Context,
               fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Dead letters: outcomes the CRM did not take after crm.max_failures tries. Each holds back the later
    outcomes of its lead (delivery order per lead is kept) until resent with `dialer crm retry`."""
    from dataclasses import asdict
    from dialer.crm.outbox import dead_letters
    s = state(ctx)
    rows = _in_center_zone([asdict(d) for d in dead_letters(_ready_store(s))], s.settings)
    render(rows, fmt.value, title="dead letters", columns=["id", "lead_id", "attempt_id", "failures", "last_error",
                                                           "created_at", "holds_back", "key"])


@crm_app.command("retry")
def crm_retry(ctx: typer.Context,
              ids: Optional[list[int]] = typer.Argument(None, help="Outbox ids from `dialer crm failed`"),
              all_: bool = typer.Option(False, "--all", help="Every dead letter"),
              no_send: bool = typer.Option(False, "--no-send", help="Only put them back in the queue "
                                                                     "(the daemon sends them)")) -> None:
    """Put dead letters back in the queue with a fresh count of tries, and send them now."""
    from dialer.crm.outbox import requeue
    s = state(ctx)
    if bool(ids) == all_:
        raise UsageError("give the outbox ids to resend, or --all (not both)")
    chosen = requeue(_ready_store(s), None if all_ else ids, clock.now())
    console.print(f"{len(chosen)} outcome(s) back in the queue")
    if chosen and not no_send and s.settings.crm.webhook_url:
        render([_send_once(_sender(s))], "table", title="outcomes sent")


@app.command("export")
def export_cmd(ctx: typer.Context,
               since: Optional[str] = typer.Option(None, "--since", help="Re-export the outcomes created from "
                                                                        "this time (ISO 8601, center zone if no "
                                                                        "offset); the nightly watermark does not "
                                                                        "move"),
               until: Optional[str] = typer.Option(None, "--until", help="Only outcomes created before this time "
                                                                        "[default: now]"),
               fmt: Optional[str] = typer.Option(None, "--format", help="csv or jsonl [env: "
                                                                       "DIALER_EXPORT_FORMAT; default csv]"),
               out: Optional[Path] = typer.Option(None, "--out", help="File to write, - for standard output "
                                                                     "[default: export.directory/outcomes-...]")) -> None:
    """Export outcomes to a file, each exactly once across runs (the nightly job; for an external cron).

    Without --since: every outcome not exported before. With --since: the outcomes of [since, until),
    whether exported before or not (a re-export, e.g. for a lost file).
    """
    from dialer.crm.export import export_outcomes, export_range
    s = state(ctx)
    db = _ready_store(s)
    now = clock.now()
    until_at = parse_when(until, s.settings) if until else None
    if since is not None:
        result = export_range(db, s.settings, parse_when(since, s.settings), until_at or now, fmt=fmt, out=out)
    else:
        if until_at is not None and until_at > now:
            raise UsageError("--until is in the future; outcomes not yet recorded cannot be exported")
        result = export_outcomes(db, s.settings, now, fmt=fmt, out=out, until=until_at)
    note = " (finished the batch a failed run had started)" if result.resumed else ""
    batch = f", batch {result.batch}" if result.batch is not None else ", re-export: watermark unchanged"
    where = "standard output" if str(result.path) == "-" else result.path
    (err_console if str(result.path) == "-" else console).print(  # stdout holds only the data then
        f"{result.rows} outcome(s) written to {where}{batch}{note}", highlight=False, markup=False)


# ---------------------------------------------------------------- call scripts catalog

scripts_app = typer.Typer(help="Call scripts: list, show, validate, choose and render for a lead, and the "
                               "questions operators flagged as not covered.", no_args_is_help=True)
app.add_typer(scripts_app, name="scripts")


@scripts_app.callback()
def _scripts_root(ctx: typer.Context,
                  directory: Optional[Path] = typer.Option(None, "--dir", help="Catalog folder [env: "
                                                                              "DIALER_SCRIPTS_DIRECTORY; default: "
                                                                              "the sample catalog shipped with "
                                                                              "the dialer]")) -> None:
    if directory is not None:
        state(ctx).override(**{"scripts.directory": str(directory)})


def _scripts_directory(ctx: typer.Context) -> Path:
    from scripts_catalog import catalog_directory
    return catalog_directory(state(ctx).settings.scripts.directory)


def _scripts_catalog(ctx: typer.Context, strict: bool = True):
    """The catalog; strict refuses a catalog with errors, lenient keeps the scripts that are fine."""
    from scripts_catalog import load_catalog, validate_directory
    if strict:
        return load_catalog(_scripts_directory(ctx))
    return validate_directory(_scripts_directory(ctx)).catalog


def _print_script_page(title: str, header: Sequence[tuple[str, str]],
                       stages: Sequence[tuple[str, Sequence[tuple[Optional[str], str]]]],
                       faq: Sequence[tuple[str, str, str]]) -> None:
    """A script as the operator reads it. Texts are printed as plain text: brackets and braces are content."""
    from rich.text import Text
    console.print(Text(title, style="bold"))
    for key, value in header:
        console.print(Text.assemble((f"{key}: ", "bold"), value))
    for stage_title, variants in stages:
        console.print(Text("\n" + stage_title, style="bold cyan"))
        for number, (label, text) in enumerate(variants, start=1):
            console.print(Text.assemble(f"  {number}. ", (f"({label}) " if label else "", "italic"), text))
    if faq:
        table = Table(title="FAQ", show_lines=True)
        for column in ("kind", "question", "answer"):
            table.add_column(column)
        for kind, question, answer in faq:
            table.add_row(Text(kind), Text(question), Text(answer))
        console.print(table)


@scripts_app.command("list")
def scripts_list(ctx: typer.Context,
                 fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Every script version in the catalog; in_use marks the version calls get (newest active)."""
    catalog = _scripts_catalog(ctx)
    in_use = {s.key for s in catalog.newest_active()}
    root = _scripts_directory(ctx)
    rows = [{"id": s.id, "version": s.version, "status": s.status.value, "in_use": s.key in in_use,
             "language": s.language, "contact": s.contacts_text(), "products": ", ".join(s.products) or "any",
             "default": s.default, "title": s.title, "file": str(Path(s.path).relative_to(root))
             if Path(s.path).is_relative_to(root) else s.path} for s in catalog.scripts]
    columns = (["id", "version", "status", "in_use", "language", "contact", "products", "default", "file"]
               if fmt is Format.table else None)
    render(rows, fmt.value, title=f"call scripts ({root})", columns=columns)


@scripts_app.command("show")
def scripts_show(ctx: typer.Context, script_id: str = typer.Argument(..., help="Script id"),
                 version: Optional[int] = typer.Option(None, "--version", "-v", min=1,
                                                       help="Version [default: the newest active]"),
                 fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """A script as written, placeholders not filled."""
    from dataclasses import asdict
    from scripts_catalog.model import STAGE_TITLES
    from scripts_catalog.render import used_placeholders
    script = _scripts_catalog(ctx, strict=False).get(script_id, version)
    if fmt is TableOrJson.json:
        sys.stdout.write(to_json(asdict(script)) + "\n")
        return
    titles = STAGE_TITLES.get(script.language, STAGE_TITLES["en"])
    placeholders = used_placeholders(script)
    header = [("version", f"{script.version} ({script.status.value})"), ("language", script.language),
              ("contact", script.contacts_text()), ("products", ", ".join(script.products) or "any"),
              ("default", "yes" if script.default else "no"), ("goal", script.goal),
              ("placeholders", ", ".join(f"{{{n}}}" for n in placeholders) or "-"), ("file", script.path)]
    _print_script_page(f"{script.id}: {script.title}", header,
                       [(titles[s.name], [(v.label, v.text) for v in s.variants]) for s in script.stages],
                       [(f.kind.value, f.question, f.answer) for f in script.faq])


@scripts_app.command("validate")
def scripts_validate(ctx: typer.Context,
                     directory: Optional[Path] = typer.Argument(None, help="Catalog folder [default: "
                                                                           "scripts.directory]")) -> None:
    """Check every script file; each error is printed as file:line: message. Exit code 1 on errors."""
    from scripts_catalog import validate_directory
    folder = directory or _scripts_directory(ctx)
    report = validate_directory(folder)
    if report.ok:
        console.print(f"catalog OK: {len(report.catalog)} script version(s) in {report.files} file(s) "
                      f"in {folder}", highlight=False, markup=False)
        return
    sys.stdout.write("".join(f"{p}\n" for p in report.problems))
    err_console.print(f"{len(report.problems)} error(s) in the catalog {folder}", highlight=False, markup=False)
    raise typer.Exit(1)


@scripts_app.command("select")
def scripts_select(ctx: typer.Context, lead: int = typer.Option(..., "--lead", help="Lead id"),
                   contact: Optional[int] = typer.Option(None, "--contact", min=1,
                                                         help="Contact number [default: the lead's next]")) -> None:
    """Which script the operator gets for this lead, and why."""
    from scripts_catalog import load_lead_facts, select_for_lead
    s = state(ctx)
    facts = load_lead_facts(_ready_store(s), lead)
    choice = select_for_lead(_scripts_catalog(ctx), facts, s.settings.scripts.language, contact)
    console.print(f"lead {lead}, contact {contact or facts.contact_number}: {choice.script.id} "
                  f"v{choice.script.version} ({choice.reason})", highlight=False, markup=False)


@scripts_app.command("render")
def scripts_render(ctx: typer.Context, script_id: str = typer.Argument(..., help="Script id"),
                   lead: int = typer.Option(..., "--lead", help="Lead id whose data fills the placeholders"),
                   version: Optional[int] = typer.Option(None, "--version", "-v", min=1,
                                                         help="Version [default: the newest active]"),
                   operator: Optional[str] = typer.Option(None, "--operator", help="Operator name for {operator}"),
                   fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """The script filled with the lead's data, as the operator reads it."""
    from scripts_catalog import load_lead_facts, render as render_script
    s = state(ctx)
    script = _scripts_catalog(ctx, strict=False).get(script_id, version)
    page = render_script(script, load_lead_facts(_ready_store(s), lead, operator))
    if fmt is TableOrJson.json:
        sys.stdout.write(to_json(page.as_dict()) + "\n")
        return
    header = [("script", f"{page.script_id} v{page.version}"), ("goal", page.goal)]
    if page.markers:
        header.append(("no data", ", ".join(page.markers)))
    _print_script_page(f"lead {lead}: {page.title}", header,
                       [(st.title, [(v.label, v.text) for v in st.variants]) for st in page.stages],
                       [(f.kind.value, f.question, f.answer) for f in page.faq])


@scripts_app.command("flag")
def scripts_flag(ctx: typer.Context, script_id: str = typer.Argument(..., help="Script id"),
                 question: str = typer.Option(..., "--question", "-q", help="What the customer asked"),
                 version: Optional[int] = typer.Option(None, "--version", "-v", min=1,
                                                       help="Version used in the call [default: the newest "
                                                            "active]"),
                 lead: Optional[int] = typer.Option(None, "--lead", help="Lead id"),
                 attempt: Optional[int] = typer.Option(None, "--attempt", help="Call attempt id"),
                 operator: Optional[int] = typer.Option(None, "--operator", help="Operator id")) -> None:
    """Flag a question the script does not cover (for the next version of the script)."""
    from scripts_catalog import flag_gap
    s = state(ctx)
    script = _scripts_catalog(ctx, strict=False).get(script_id, version)
    gap_id = flag_gap(_ready_store(s), script.id, script.version, question, lead, attempt, operator, clock.now())
    console.print(f"flag {gap_id} recorded for {script.id} v{script.version}", highlight=False, markup=False)


@scripts_app.command("gaps")
def scripts_gaps(ctx: typer.Context,
                 script: Optional[str] = typer.Option(None, "--script", help="Only this script id"),
                 since: Optional[str] = typer.Option(None, "--since", help="Only flags from this time (ISO 8601, "
                                                                           "center zone if no offset)"),
                 fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Questions operators flagged as not covered, by script and how often they came up."""
    from scripts_catalog import gap_report
    s = state(ctx)
    rows = [g.as_dict() for g in gap_report(_ready_store(s), script, parse_when(since, s.settings) if since else None)]
    if fmt is Format.table:
        from rich.markup import escape
        rows = [{**row, "question": escape(row["question"])} for row in rows]   # operators' words, not markup
    render(rows, fmt.value, title="questions the scripts did not cover",
           columns=["script_id", "count", "question", "leads", "versions", "first_flagged", "last_flagged"])


# ---------------------------------------------------------------- call policy, dial queue, operators

policy_app = typer.Typer(help="The call policy: tiers, quiet hours, attempts, retry delays, cadence.",
                         no_args_is_help=True)
operators_app = typer.Typer(help="Operators who take the dialed calls: interface, skills, level.",
                            no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(operators_app, name="operators")
from dialer.zones.cli import app as zones_app  # noqa: E402
app.add_typer(zones_app, name="zones")
from dialer.recordings.cli import app as recordings_app  # noqa: E402
app.add_typer(recordings_app, name="recordings")


def _center_time(value: Any, zone: str) -> Any:
    """Datetimes shown on the center's wall clock."""
    from zoneinfo import ZoneInfo
    return value.astimezone(ZoneInfo(zone)) if isinstance(value, datetime) else value


def _in_center_zone(data: Any, settings: Settings) -> Any:
    """Every time inside rows or a record, shown in the call center's zone (the store keeps UTC)."""
    if isinstance(data, dict):
        return {k: _in_center_zone(v, settings) for k, v in data.items()}
    if isinstance(data, list):
        return [_in_center_zone(v, settings) for v in data]
    return _center_time(data, settings.center_timezone)


def _sla_style(row: dict[str, Any]) -> str | None:
    return {"breached": "red", "at_risk": "yellow"}.get(row.get("sla") or "")


@policy_app.command("show")
def policy_show(ctx: typer.Context,
                fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """The policy in force: every key, its value, default, meaning and what it accepts."""
    from dataclasses import asdict
    from leads.policy.store import current_policy, describe_policy
    policy = current_policy(_ready_store(state(ctx)))
    rows = [asdict(k) for k in describe_policy(policy)]
    from leads.policy.spread import plan_lines
    if fmt is TableOrJson.json:
        sys.stdout.write(to_json({"version": policy.version, "keys": rows, "retry_plan": plan_lines(policy)}) + "\n")
        return
    render(rows, "table", title=f"call policy, version {policy.version or 'defaults (not stored yet)'}",
           columns=["key", "value", "default", "meaning", "allowed"],
           styles=lambda row: "bold" if row["value"] != row["default"] else None)
    console.print("retry plan (no answer every time):\n  " + "\n  ".join(plan_lines(policy)), highlight=False)


@policy_app.command("set", context_settings={"ignore_unknown_options": True})
def policy_set(ctx: typer.Context,
               pairs: list[str] = typer.Argument(..., metavar="KEY VALUE [KEY VALUE]...",
                                                 help="Policy key and new value, e.g. max_attempts 5; several "
                                                      "pairs (or KEY=VALUE words) are applied as one change"),
               by: str = typer.Option("cli", "--by", help="Who changes it (kept in the audit)"),
               comment: Optional[str] = typer.Option(None, "--comment", help="Why (kept with the version, shown "
                                                                             "by `policy history`)"),
               allow_short_quiet_hours: bool = typer.Option(
                   False, "--allow-short-quiet-hours",
                   help="Accept quiet hours shorter than the legal 22:00-10:00 (never dialing over midnight)")) -> None:
    """Change policy keys as one new version; a bad key or value is refused (exit 2) and nothing changes."""
    from leads.policy.store import change_policy
    from leads.policy.values import pairs_to_changes
    changes = pairs_to_changes(pairs)
    policy, records = change_policy(_ready_store(state(ctx)), changes, by=by, now=clock.now(),
                                    comment=comment, allow_short_quiet_hours=allow_short_quiet_hours)
    if not records:
        shown = ", ".join(f"{k} is already {json.dumps(policy.values()[k], ensure_ascii=False)}" for k in changes)
        console.print(f"{shown}; nothing changed (version {policy.version})", highlight=False)
        return
    for r in records:
        console.print(f"[green]{r.key}[/green]: {json.dumps(r.old, ensure_ascii=False)} -> "
                      f"{json.dumps(r.new, ensure_ascii=False)} "
                      f"(version {r.version}, by {r.changed_by})", highlight=False)


@policy_app.command("history")
def policy_history_cmd(ctx: typer.Context,
                       limit: int = typer.Option(50, "--limit", "-n", min=1, help="Newest N changes"),
                       fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Every policy change, newest first: version, when, who, key, old and new value."""
    from dataclasses import asdict
    from leads.policy.store import policy_history
    s = state(ctx)
    rows = [asdict(r) for r in policy_history(_ready_store(s), limit)]
    for row in rows:
        row["changed_at"] = _center_time(row["changed_at"], s.settings.center_timezone)
    render(rows, fmt.value, title="policy changes",
           columns=["version", "changed_at", "changed_by", "key", "old", "new", "comment"])


@app.command("queue")
def queue_cmd(ctx: typer.Context,
              at: Optional[str] = typer.Option(None, "--at", help="At this time instead of now (ISO 8601; "
                                                                  "without an offset: the center's zone)"),
              limit: int = typer.Option(30, "--limit", "-n", min=1, max=10000, help="First N leads"),
              fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """The leads in the order they would be dialed, with tier, deadline, attempts and SLA state."""
    from leads.policy.queue import dial_queue
    s = state(ctx)
    when = parse_when(at, s.settings)
    zone = s.settings.center_timezone
    rows = [{k: _center_time(v, zone) for k, v in e.as_dict().items()}
            for e in dial_queue(_ready_store(s), when, center_zone=zone, limit=limit)]
    columns = ["position", "lead_id", "rank", "tier", "deadline", "sla", "attempts", "phone", "name", "product",
               "zone"]
    if not rows and fmt is TableOrJson.table:
        console.print(f"the dial queue is empty at {_center_time(when, zone):%Y-%m-%d %H:%M %Z}: no lead can be "
                      f"dialed then (see `dialer leads list` and `dialer why LEAD_ID`)")
        return
    render(rows, fmt.value, title=f"dial queue at {_center_time(when, zone):%Y-%m-%d %H:%M %Z}",
           columns=columns, styles=_sla_style)


@app.command("why")
def why_cmd(ctx: typer.Context, lead_id: int = typer.Argument(..., help="Lead id"),
            at: Optional[str] = typer.Option(None, "--at", help="At this time instead of now (ISO 8601; "
                                                                "without an offset: the center's zone)"),
            fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", help="table or json")) -> None:
    """Is this lead dialable at that time, and if not, every rule that blocks it."""
    from leads.policy.queue import explain_lead
    s = state(ctx)
    when = parse_when(at, s.settings)
    zone = s.settings.center_timezone
    explained = explain_lead(_ready_store(s), lead_id, when, center_zone=zone)
    verdict, lead = explained.verdict, explained.verdict.lead
    record = {
        "lead_id": lead.id, "at": _center_time(when, zone), "dialable": verdict.dialable,
        "status": lead.status, "tier": verdict.tier.value if verdict.tier else None, "rank": verdict.rank_label,
        "deadline": _center_time(verdict.deadline, zone), "sla": verdict.sla.value if verdict.sla else None,
        "attempts": lead.attempts_count, "contacts": lead.contacts_count,
        "zones": list(verdict.zones.names) or ["center only"], "zone_source": verdict.zones.source,
        "dialable_from": _center_time(explained.dialable_from, zone), "policy_version": explained.policy_version,
        "blocks": [{"rule": b.rule.value, "reason": b.message, "until": _center_time(b.until, zone)}
                   for b in verdict.blocks],
    }
    if fmt is TableOrJson.json:
        sys.stdout.write(to_json(record) + "\n")
        return
    verdict_words = "[green]dialable now[/green]" if verdict.dialable else "[red]not dialable[/red]"
    console.print(f"lead {lead.id} at {record['at']:%Y-%m-%d %H:%M %Z}: {verdict_words}")
    render_record({k: v for k, v in record.items() if k != "blocks"}, "table", title=f"lead {lead.id}")
    if record["blocks"]:
        render(record["blocks"], "table", title="blocked by", columns=["rule", "reason", "until"])


@operators_app.command("add")
def operators_add(ctx: typer.Context, name: str = typer.Argument(..., help="Operator's name"),
                  interface: str = typer.Option(..., "--interface", "-i", help="Asterisk device / queue member, "
                                                                                "e.g. PJSIP/op1"),
                  extension: Optional[str] = typer.Option(None, "--extension", "-e", help="Phone extension"),
                  skills: Optional[str] = typer.Option(None, "--skills", help="Products / tags, comma-separated"),
                  level: int = typer.Option(1, "--level", help="Skill level, 1 (junior) to 10")) -> None:
    """Register an operator."""
    from leads.operators import add_operator, parse_skills
    record = add_operator(_ready_store(state(ctx)), name=name, interface=interface, extension=extension,
                          skills=parse_skills(skills), level=level, now=clock.now())
    console.print(f"operator {record.id} {record.name} ({record.interface}) added", highlight=False)


@operators_app.command("list")
def operators_list(ctx: typer.Context,
                   active_only: bool = typer.Option(False, "--active", help="Only active operators"),
                   fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv")) -> None:
    """Registered operators."""
    from leads.operators import list_operators
    rows = [r.as_dict() for r in list_operators(_ready_store(state(ctx)), include_inactive=not active_only)]
    for row in rows:
        row["skills"] = ", ".join(row["skills"]) if fmt is not Format.json else list(row["skills"])
    render(rows, fmt.value, title="operators",
           columns=["id", "name", "interface", "extension", "skills", "level", "active", "state"])


@operators_app.command("set")
def operators_set(ctx: typer.Context, operator: str = typer.Argument(..., help="Operator id or interface"),
                  name: Optional[str] = typer.Option(None, "--name", help="New name"),
                  interface: Optional[str] = typer.Option(None, "--interface", "-i", help="New interface"),
                  extension: Optional[str] = typer.Option(None, "--extension", "-e",
                                                          help="New extension ('' clears it)"),
                  skills: Optional[str] = typer.Option(None, "--skills", help="New skills, comma-separated "
                                                                              "('' clears them)"),
                  level: Optional[int] = typer.Option(None, "--level", help="New level, 1 to 10"),
                  active: Optional[bool] = typer.Option(None, "--active/--inactive",
                                                        help="Take calls or not"),
                  group: Optional[str] = typer.Option(None, "--group", help="Team from now on (or from "
                                                                            "--group-from); '' : none"),
                  group_from: Optional[str] = typer.Option(None, "--group-from", help="When the team change "
                                                           "starts: ISO time, center's zone [default: now]")
                  ) -> None:
    """Change an operator's name, interface, extension, skills, level, active flag or team."""
    from leads.operators import parse_skills, update_operator
    if all(v is None for v in (name, interface, extension, skills, level, active, group)):
        raise UsageError("nothing to change: give --name, --interface, --extension, --skills, --level, "
                         "--active/--inactive or --group")
    if group is not None:   # reports (issue 13): teams over time
        from dialer.reports.groups import parse_group_from, set_group
        member = set_group(_ready_store(state(ctx)), operator, group, now=clock.now(), set_by="cli",
                           valid_from=parse_group_from(group_from, state(ctx).settings.center_timezone))
        console.print(f"operator {member.operator_id}: group {member.group or '(none)'} from "
                      f"{member.valid_from.isoformat()}", highlight=False)
        if all(v is None for v in (name, interface, extension, skills, level, active)):
            return
    record = update_operator(_ready_store(state(ctx)), operator, name=name, interface=interface,
                             extension=extension, skills=None if skills is None else parse_skills(skills),
                             level=level, active=active)
    render_record(record.as_dict(), "table", title=f"operator {record.id}")


# ---------------------------------------------------------------- simulated PBX

@app.command("pbx-sim")
def pbx_sim(ctx: typer.Context,
            host: Optional[str] = typer.Option(None, "--host", help="Listen address [default: ami.host, "
                                                                    "127.0.0.1]"),
            port: Optional[int] = typer.Option(None, "--port", min=0, max=65535,
                                               help="AMI port [default: ami.port, 5038; 0 = any free port]"),
            operators: int = typer.Option(2, "--operators", min=1, help="Operators PJSIP/op1..N "
                                                                        "(ignored with --operator)"),
            operator: Optional[list[str]] = typer.Option(None, "--operator",
                                                         help="An operator as IFACE:NAME, e.g. 'PJSIP/op1:Анна' "
                                                              "(repeat for each)"),
            talk: float = typer.Option(60.0, "--talk", min=0, help="Seconds an operator talks per call"),
            wrapup: float = typer.Option(5.0, "--wrapup", min=0, help="Seconds between an operator's calls"),
            speed: float = typer.Option(1.0, "--speed", min=0.01, help="Simulated seconds per real second"),
            seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the customers' random draws "
                                                                    "(same seed, same customers)"),
            customers: Optional[Path] = typer.Option(None, "--customers", help="YAML/JSON file: rules by "
                                                                               "number pattern and outcome mix"),
            queue_wait: float = typer.Option(20.0, "--queue-wait", min=0, help="Seconds an answered "
                                                                               "customer waits for an operator"),
            username: Optional[str] = typer.Option(None, "--username", help="AMI user [default: ami.username]"),
            secret: Optional[str] = typer.Option(None, "--secret", help="AMI secret [default: ami.secret, "
                                                                        "env DIALER_AMI_SECRET]"),
            cdr: Optional[Path] = typer.Option(None, "--cdr", help="Append each call's CDR to this CSV file, as "
                                                                   "Asterisk's cdr_custom does [default: "
                                                                   "ami.cdr_csv_path]"),
            recordings: Optional[Path] = typer.Option(None, "--recordings", help="Write a short WAV "
                                                      "<attempt id>.wav per connected call into this folder, as "
                                                      "MixMonitor does (e.g. recordings.directory)")) -> None:
    """Run a simulated Asterisk (AMI over TCP) with customers and operators, until Ctrl-C."""
    import asyncio
    from dialer.logs import setup_logging
    from dialer.pbx_sim import OperatorSpec, PbxConfig, PbxUser, SimulatedPbx, numbered_operators
    from dialer.pbx_sim.runner import customers_from_file, serve_until_stopped
    settings = state(ctx).settings
    secret = settings.ami.secret if secret is None else secret
    if not secret:
        raise UsageError("the AMI secret is empty: pass --secret or set DIALER_AMI_SECRET "
                         "(the daemon logs in with the same ami.secret)")
    user = PbxUser.from_conf(username or settings.ami.username, secret)
    specs = ([OperatorSpec.parse(text, talk=talk, wrapup=wrapup) for text in operator] if operator
             else numbered_operators(operators, talk=talk, wrapup=wrapup))
    book = customers_from_file(customers) if customers else None
    config = PbxConfig(users=(user,), queue=settings.dial.queue, queue_wait=queue_wait, speed=speed, seed=seed,
                       cdr_path=str(cdr) if cdr else (settings.ami.cdr_csv_path or None),
                       recordings_dir=str(recordings) if recordings else None)
    pbx = SimulatedPbx(config, customers=book, operators=specs)
    setup_logging(settings.log_level)

    def ready(bound: int) -> None:
        console.print(f"pbx-sim: AMI on {host or settings.ami.host}:{bound} (user {user.username}), "
                      f"queue {config.queue} with {len(specs)} operators, speed {speed:g}x. Ctrl-C to stop.",
                      highlight=False)

    try:
        asyncio.run(serve_until_stopped(pbx, host or settings.ami.host,
                                        settings.ami.port if port is None else port, ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise DialerError(f"pbx-sim cannot listen: {exc.strerror or exc}") from None
    stats = pbx.stats()
    console.print(f"pbx-sim stopped: {stats.calls_placed} calls placed, {stats.answered} answered, "
                  f"results {stats.results or '{}'}", highlight=False)


# ---------------------------------------------------------------- the daemon

def _run_until_signal(make_coroutine) -> None:
    """Run a coroutine that takes a stop event; SIGINT / SIGTERM set it (graceful stop)."""
    import asyncio
    import signal

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await make_coroutine(stop)

    asyncio.run(runner())


@app.command("run")
def run_daemon(ctx: typer.Context,
               host: Optional[str] = typer.Option(None, "--host", help="HTTP listen address [env: DIALER_HTTP_HOST]"),
               port: Optional[int] = typer.Option(None, "--port", help="HTTP port [env: DIALER_HTTP_PORT]"),
               ami_host: Optional[str] = typer.Option(None, "--ami-host", help="Asterisk AMI host [env: DIALER_AMI_HOST]"),
               ami_port: Optional[int] = typer.Option(None, "--ami-port", help="Asterisk AMI port [env: DIALER_AMI_PORT]"),
               drain: float = typer.Option(30.0, "--drain-seconds", min=0,
                                           help="On stop, how long calls in progress may take to finish"),
               sim_start: Optional[str] = typer.Option(None, "--sim-start",
                                                       help="Simulation only: run on simulated time starting at "
                                                            "this ISO time (center zone if no offset)"),
               sim_speed: float = typer.Option(1.0, "--sim-speed", min=0.01,
                                               help="Simulation only: simulated seconds per real second"),
               log_format: Optional[str] = typer.Option(None, "--log-format", help="text or json (one JSON object "
                                                        "a line) [env: DIALER_SERVICE_LOG_FORMAT]")) -> None:
    """Run the dialer daemon: webhook, feeds, AMI, dialing loop, CRM sender, nightly export."""
    from kernel.clock import ScaledClock
    from dialer.daemon import Daemon
    from dialer.logs import setup_logging
    s = state(ctx)
    s.override(**{"http.host": host, "http.port": port, "ami.host": ami_host, "ami.port": ami_port,
                  "service.log_format": log_format})
    settings = s.settings
    setup_logging(settings.log_level, fmt=settings.service.log_format)
    daemon_clock = clock
    if sim_start is not None or sim_speed != 1.0:
        daemon_clock = ScaledClock(parse_when(sim_start, settings), sim_speed)
    daemon = Daemon(settings, s.db, daemon_clock, drain_seconds=drain)
    from dialer.service.supervisor import run_as_service   # service (issue 17): sd_notify, watchdog, SIGHUP
    _run_until_signal(lambda stop: run_as_service(daemon, stop))


@app.command("demo")
def demo(operators: int = typer.Option(3, "--operators", min=1, max=8, help="Simulated operators"),
         leads: int = typer.Option(40, "--leads", min=0, max=5000, help="Sample leads posted during the day"),
         speed: float = typer.Option(10.0, "--speed", min=1, max=1000, help="Simulated seconds per real second"),
         duration: float = typer.Option(90.0, "--duration", min=5, help="How long to run, in real seconds"),
         seed: int = typer.Option(7, "--seed", help="Seed for customers and sample leads")) -> None:
    """See it work: the simulated PBX, the daemon and sample leads, with a live view (Ctrl-C stops)."""
    import asyncio
    import signal
    from rich.columns import Columns
    from rich.console import Group
    from rich.live import Live
    from rich.panel import Panel
    from dialer.demo import DemoOptions, demo_start, run_demo

    def tables(view) -> Group:
        def table(title: str, rows: list[dict[str, Any]], empty: str) -> Table:
            t = Table(title=title, expand=False)
            columns = list(rows[0]) if rows else ["-"]
            for c in columns:
                t.add_column(c)
            for row in rows:
                t.add_row(*[_cell(row.get(c)) for c in columns])
            if not rows:
                t.add_row(empty)
            return t
        header = (f"simulated time {view.now.astimezone(ZoneInfo('Europe/Moscow')):%H:%M:%S} Moscow  |  "
                  f"leads posted {view.posted}  |  intake {dict(sorted(view.intake.items()))}")
        results = [{"result": k, "attempts": v} for k, v in sorted(view.results.items())]
        return Group(Panel(header, title="dialer demo"),
                     Columns([table("operators", view.operators, "(waiting for the PBX)"),
                              table("results so far", results, "(none yet)")]),
                     table("calls in progress", view.calls, "(none)"),
                     table("queue head: dialed next", view.queue, "(nothing dialable now)"))

    from zoneinfo import ZoneInfo
    options = DemoOptions(operators=operators, leads=leads, speed=speed, duration=duration, seed=seed,
                          start=demo_start(clock.now()))
    interactive = console.is_terminal

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if interactive:
            with Live(console=console, refresh_per_second=4) as live:
                return await run_demo(options, lambda view: live.update(tables(view)), stop)
        last = {"t": 0.0}

        def show(view) -> None:
            if loop.time() - last["t"] >= 10:
                last["t"] = loop.time()
                console.print(f"{view.now.astimezone(ZoneInfo('Europe/Moscow')):%H:%M:%S} posted={view.posted} "
                              f"in_progress={len(view.calls)} results={dict(sorted(view.results.items()))}")
        return await run_demo(options, show, stop)

    view = asyncio.run(main())
    console.print(tables(view))
    console.print("[green]demo finished[/green]: every call above went over real AMI to the simulated PBX.")


# ---------------------------------------------------------------- console (issue 6): operators' passwords

@operators_app.command("passwd")
def operators_passwd(ctx: typer.Context, operator: str = typer.Argument(..., help="Operator id or interface"),
                     password: Optional[str] = typer.Option(None, "--password",
                                                            help="The new password (for scripts; without it "
                                                                 "you are asked twice, nothing is echoed)")) -> None:
    """Set an operator's console password (at least 8 characters; stored as a salted scrypt hash).

    Their open console sessions end.
    """
    from dialer.console.auth import check_password_rules, set_operator_password
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    check_password_rules(password)
    operator_id, name, interface = set_operator_password(_ready_store(state(ctx)), operator, password)
    console.print(f"password set for operator {operator_id} {name} ({interface})", highlight=False)


from dialer.chains.cli import app as chains_app   # noqa: E402  touch chains (issue 19)
app.add_typer(chains_app, name="chains")

# ---------------------------------------------------------------- entry point

def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=True)
    except (UsageError, SettingsError) as exc:
        err_console.print(f"[red]error:[/red] {_escape(str(exc))}", highlight=False)  # "[intake]" is no markup
        sys.exit(2)
    except DialerError as exc:
        err_console.print(f"[red]error:[/red] {_escape(str(exc))}", highlight=False)
        sys.exit(1)
    except Exception as exc:  # never a traceback for a user: one line, the traceback only with -v
        from rich.markup import escape
        from sqlalchemy.exc import DataError, SQLAlchemyError
        if "-v" in (argv or sys.argv) or "--verbose" in (argv or sys.argv):
            raise
        first_line = escape(str(exc).splitlines()[0] if str(exc) else "")
        if isinstance(exc, (OverflowError, DataError)):  # an id or count beyond what the database stores
            err_console.print(f"[red]error:[/red] a number given is out of range ({first_line})", highlight=False)
            sys.exit(2)
        if isinstance(exc, SQLAlchemyError):
            err_console.print(f"[red]error:[/red] the database failed: {type(exc).__name__}: {first_line}",
                              highlight=False)
            sys.exit(1)
        err_console.print(f"[red]error:[/red] internal error {type(exc).__name__}: {first_line} (run with -v "
                          f"for the traceback, and please report it)", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
