"""`dialer prune [--dry-run]`: apply the retention settings now (what the nightly job does)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from dialer.housekeeping.prune import prune
from kernel.clock import SystemClock

app = typer.Typer(help="Housekeeping: delete sent outbox rows, old attempt event logs and export files "
                       "older than the [retention] settings.")


@app.callback(invoke_without_command=True)
def prune_cmd(ctx: typer.Context,
              dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted")) -> None:
    """Delete what the [retention] settings say is old (pending and dead outbox rows are never deleted)."""
    from dialer.bootstrap import ensure_ready
    settings = ctx.obj.settings
    db = ctx.obj.db
    ensure_ready(db)
    report = prune(db, settings, SystemClock().now(), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    table = Table(title=f"housekeeping ({'dry run' if dry_run else 'done'})")
    for column in ("what", "older than", verb):
        table.add_column(column)
    cut = report.cutoffs

    def older(at):
        return at.isoformat(timespec="minutes") if at else "kept forever"
    table.add_row("sent + exported outbox rows", older(cut.sent_outbox_before), str(report.sent_outbox_rows))
    table.add_row("attempt event logs", older(cut.attempt_events_before), str(report.attempt_event_rows))
    table.add_row("export files", older(cut.export_files_before),
                  f"{len(report.export_files)} ({report.export_bytes} bytes)")
    Console().print(table)
