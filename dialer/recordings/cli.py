"""`dialer recordings prune` and `dialer recordings list`: the recordings folder and its retention.

Settings from the root command's state (ctx.obj, see cli.py): `recordings.directory` and
`recordings.retention_days`. A file's age is its modification time against the system clock (the
files' own clock).
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from kernel.clock import SystemClock
from dialer.recordings.files import list_recordings, prune as prune_files

app = typer.Typer(help="Call recordings: the folder MixMonitor writes to and how long files are kept.",
                  no_args_is_help=True)
console = Console()


@app.command("prune")
def prune(ctx: typer.Context,
          days: Optional[int] = typer.Option(None, "--days", min=1, help="Keep this many days [default: "
                                                                          "recordings.retention_days]"),
          dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted, delete nothing")
          ) -> None:
    """Delete recordings older than the retention (each deleted file is logged and listed)."""
    from dialer.logs import setup_logging
    settings = ctx.obj.settings
    setup_logging(settings.log_level)
    keep = settings.recordings.retention_days if days is None else days
    if keep <= 0:
        console.print("recordings.retention_days is 0: recordings are kept forever; nothing deleted "
                      "(pass --days N to prune anyway)", highlight=False)
        return
    now = SystemClock().now()
    gone = prune_files(settings.recordings.directory, now, keep, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for item in gone:
        console.print(f"{verb} {item.name} (written {item.modified_at:%Y-%m-%d %H:%M} UTC, {item.size} bytes)",
                      highlight=False)
    console.print(f"{len(gone)} recording(s) {verb}, older than {keep} day(s) in "
                  f"{settings.recordings.directory}", highlight=False)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """The recordings in the folder, oldest first."""
    settings = ctx.obj.settings
    files = sorted(list_recordings(settings.recordings.directory), key=lambda f: (f.modified_at, f.name))
    table = Table("file", "written (UTC)", "bytes")
    for item in files:
        table.add_row(item.name, f"{item.modified_at:%Y-%m-%d %H:%M:%S}", str(item.size))
    console.print(table)
    console.print(f"{len(files)} recording(s) in {settings.recordings.directory}", highlight=False)
