"""`dialer doctor`: one line per check, what is right and what to fix; exit 0 only if every required
check passed (warnings and skips do not fail it)."""

from __future__ import annotations

import asyncio
import json
import sys

import typer
from rich.console import Console
from rich.markup import escape

from dialer.doctor.checks import Status, exit_code
from dialer.doctor.probes import run_doctor
from kernel.clock import SystemClock

app = typer.Typer(help="Check a real setup (database, Asterisk, CRM) before the first call.")

MARK = {Status.OK: "[green]ok  [/green]", Status.WARN: "[yellow]warn[/yellow]", Status.FAIL: "[red]FAIL[/red]",
        Status.SKIP: "[dim]skip[/dim]"}


@app.callback(invoke_without_command=True)
def doctor(ctx: typer.Context,
           crm_dry_run: bool = typer.Option(False, "--crm-dry-run", help="POST a test outcome marked dry_run to "
                                            "the CRM (default: only an OPTIONS request)"),
           as_json: bool = typer.Option(False, "--json", help="Findings as JSON")) -> None:
    """Database migrated, AMI login and permissions, queue and members, dialplan for the number format,
    caller ID, CRM endpoint, clock skew."""
    settings = ctx.obj.settings
    findings = asyncio.run(run_doctor(settings, SystemClock(), crm_dry_run=crm_dry_run))
    if as_json:
        sys.stdout.write(json.dumps([{**f.__dict__, "status": f.status.value} for f in findings],
                                    ensure_ascii=False, indent=2) + "\n")
    else:
        out = Console(highlight=False, soft_wrap=True)
        for f in findings:
            fix = f"\n      fix: {escape(f.fix)}" if f.fix and f.status in (Status.FAIL, Status.WARN) else ""
            out.print(f"{MARK[f.status]} {escape(f.check)}: {escape(f.detail)}{fix}")
        code = exit_code(findings)
        out.print("[green]all required checks passed[/green]" if code == 0 else
                  "[red]some required checks failed[/red]: fix them before the first call")
    raise typer.Exit(exit_code(findings))
