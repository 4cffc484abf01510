"""`dialer alerts`: the rule table, what was raised and sent, a test through every channel. No rule lives here."""

from __future__ import annotations

import asyncio
import json
import sys
from enum import Enum
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from dialer.alerts.kinds import KINDS, AlertKind
from kernel.clock import SystemClock
from kernel.errors import UsageError

KIND_HELP = "; ".join(f"{k.value}: {t.meaning}" for k, t in KINDS.items())
app = typer.Typer(help="Alerts for the team lead (e-mail, Telegram, webhook): rules, what was raised and sent, "
                       "a test.\n\nKinds: " + KIND_HELP, no_args_is_help=True, rich_markup_mode=None)
rules_app = typer.Typer(help="The alert rule table: which kind goes to whom by which channel.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(rules_app, name="rules")
console = Console()
clock = SystemClock()


class Fmt(str, Enum):
    table = "table"
    json = "json"


def _store(ctx: typer.Context):
    from dialer.reports.cli import _store as store
    return store(ctx)


def _print(rows: list[dict[str, Any]], fmt: Fmt, title: str) -> None:
    if fmt is Fmt.json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    table = Table(title=title)
    for column in (rows[0].keys() if rows else ("(none)",)):
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape("" if v is None else str(v)) for v in row.values()))
    console.print(table)


# ---------------------------------------------------------------- rules

@rules_app.command("list")
def rules_list(ctx: typer.Context, fmt: Fmt = typer.Option(Fmt.table, "--format")) -> None:
    """Every rule, enabled or not."""
    from dialer.alerts.rules import list_rules
    _, db = _store(ctx)
    rows = [{"id": r.id, "kind": r.kind.value, "channel": r.channel.value, "to": r.recipient,
             "min_amount": r.min_amount, "above_pct": r.above_percent, "group_s": r.group_seconds,
             "enabled": r.enabled, "last_notice_at": r.last_notice_at} for r in list_rules(db)]
    _print(rows, fmt, "alert rules")


@rules_app.command("add")
def rules_add(ctx: typer.Context,
              kind: str = typer.Option(..., "--kind", help="One of: " + ", ".join(k.value for k in AlertKind)),
              channel: str = typer.Option(..., "--channel", help="email, telegram or webhook"),
              to: str = typer.Option(..., "--to", help="E-mail address, Telegram chat id, or webhook URL"),
              min_amount: Optional[str] = typer.Option(None, "--min-amount",
                                                       help="large_order: orders from this sum on"),
              above: Optional[float] = typer.Option(None, "--above",
                                                    help="abandon_rate_above: percent of answered calls"),
              group_seconds: int = typer.Option(300, "--group-seconds",
                                                help="At most one notice per this many seconds; alerts in "
                                                     "between go out together")) -> None:
    """Send alerts of one kind to one recipient by one channel."""
    from dialer.alerts.rules import add_rule
    _, db = _store(ctx)
    rule = add_rule(db, kind, channel, to, min_amount=min_amount, above_percent=above, group_seconds=group_seconds,
                    by="cli", now=clock.now())
    console.print(f"rule {rule.id}: {rule.kind.value} -> {rule.channel.value} {escape(rule.recipient)}")


@rules_app.command("remove")
def rules_remove(ctx: typer.Context, rule_id: int = typer.Argument(..., min=1, max=2**62)) -> None:
    """Delete a rule (one that already sent notices is disabled instead, so the record stays)."""
    from dialer.alerts.rules import remove_rule
    _, db = _store(ctx)
    remove_rule(db, rule_id)
    console.print(f"rule {rule_id} removed")


@rules_app.command("enable")
def rules_enable(ctx: typer.Context, rule_id: int = typer.Argument(..., min=1, max=2**62)) -> None:
    from dialer.alerts.rules import set_enabled
    _, db = _store(ctx)
    set_enabled(db, rule_id, True)
    console.print(f"rule {rule_id} enabled")


@rules_app.command("disable")
def rules_disable(ctx: typer.Context, rule_id: int = typer.Argument(..., min=1, max=2**62)) -> None:
    from dialer.alerts.rules import set_enabled
    _, db = _store(ctx)
    set_enabled(db, rule_id, False)
    console.print(f"rule {rule_id} disabled")


# ---------------------------------------------------------------- what was raised and sent

@app.command("list")
def list_alerts(ctx: typer.Context,
                last: int = typer.Option(50, "--last", min=1, max=100000, help="How many, newest first"),
                notices: bool = typer.Option(False, "--notices", help="The notices sent per channel instead "
                                                                     "of the alerts raised"),
                dead: bool = typer.Option(False, "--dead", help="Only notices that became dead letters"),
                fmt: Fmt = typer.Option(Fmt.table, "--format")) -> None:
    """Alerts raised (kind, when, status), or with --notices / --dead the notices and their delivery."""
    from kernel.db.models import OutboxMessage
    _, db = _store(ctx)
    topic = "alert_notice" if notices or dead else "alert"
    query = select(OutboxMessage).where(OutboxMessage.topic == topic)
    if dead:
        query = query.where(OutboxMessage.status == "dead")
    with db.read() as session:
        found = session.scalars(query.order_by(OutboxMessage.id.desc()).limit(last)).all()
        if topic == "alert":
            rows = [{"id": m.id, "kind": m.payload.get("alert"), "raised_at": m.created_at, "status": m.status,
                     "lead": m.payload.get("lead_id"), "phone": m.payload.get("phone_masked"),
                     "note": m.last_error} for m in found]
        else:
            rows = [{"id": m.id, "kind": m.payload.get("kind"), "channel": m.payload.get("channel"),
                     "to": m.payload.get("recipient"), "alerts": m.payload.get("count"), "status": m.status,
                     "failures": m.failures, "sent_at": m.sent_at, "last_error": m.last_error} for m in found]
    _print(rows, fmt, "dead alert notices" if dead else ("alert notices" if notices else "alerts"))


@app.command("retry")
def retry(ctx: typer.Context, ids: list[int] = typer.Argument(None, help="Notice ids (default: every dead one)")
          ) -> None:
    """Send dead-lettered notices again."""
    from dialer.crm.outbox import Topic, requeue
    _, db = _store(ctx)
    chosen = requeue(db, ids or None, clock.now(), topic=Topic.ALERT_NOTICE)
    console.print(f"{len(chosen)} notice(s) queued again")


@app.command("send")
def send(ctx: typer.Context) -> None:
    """One pass now: group pending alerts into notices and deliver the due ones (what the daemon does)."""
    from dialer.alerts.worker import AlertWorker
    settings, db = _store(ctx)
    grouped, sent = asyncio.run(AlertWorker(db, settings, clock).run_once())
    console.print(f"notices written {grouped.notices} (carrying {grouped.grouped} alerts, {grouped.held} held by "
                  f"rate limits, {grouped.unrouted} without a rule); delivered {sent.sent}, retrying "
                  f"{sent.retrying}, dead {sent.dead}")


@app.command("test")
def test(ctx: typer.Context,
         kind: str = typer.Option("sla_at_risk", "--kind", help="Kind to test; its rules' channels are tried")
         ) -> None:
    """Raise a test alert of KIND and deliver it now through every enabled rule of that kind."""
    from kernel.db.models import OutboxMessage
    from dialer.alerts.kinds import kind_of
    from dialer.alerts.raising import raise_alert
    from dialer.alerts.rules import list_rules
    from dialer.alerts.worker import AlertWorker
    try:
        alert_kind = kind_of(kind)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings, db = _store(ctx)
    rules = [r for r in list_rules(db, enabled_only=True) if r.kind is alert_kind]
    if not rules:
        raise UsageError(f"no enabled rule for {alert_kind.value}: add one with `dialer alerts rules add "
                         f"--kind {alert_kind.value} --channel ... --to ...`")
    now = clock.now()
    facts: dict[str, Any] = {"test": True, "lead_id": None, "phone_masked": "+7912***6789",
                             "deadline": now.isoformat(), "comment": "проверка", "amount": "999999999",
                             "currency": "RUB", "attempts": 7, "percent": 99.9, "threshold": 3, "answered": 100,
                             "abandoned": 99, "day": now.date().isoformat(), "pbx": settings.ami.name,
                             "since": now.isoformat(), "error": "проверка"}
    with db.write() as session:
        alert = raise_alert(session, alert_kind, facts, f"test-{alert_kind.value}-{now:%Y%m%d%H%M%S%f}", now)
        alert_id = alert.id
    worker = AlertWorker(db, settings, clock)
    grouped, sent = asyncio.run(worker.run_once(now))
    with db.read() as session:
        from kernel.db.models import AlertDispatch
        notices = session.execute(select(OutboxMessage).join(AlertDispatch, AlertDispatch.notice_id == OutboxMessage.id)
                                  .where(AlertDispatch.alert_id == alert_id)).scalars().all()
        rows = [{"notice": m.id, "channel": m.payload.get("channel"), "to": m.payload.get("recipient"),
                 "status": m.status, "error": m.last_error} for m in notices]
    held = {r.id for r in rules} - {m.payload.get("rule_id") for m in notices}
    for rule_id in sorted(held):
        rows.append({"notice": None, "channel": next(r.channel.value for r in rules if r.id == rule_id),
                     "to": next(r.recipient for r in rules if r.id == rule_id), "status": "held",
                     "error": "rule's --group-seconds since its last notice not over; goes out with the next pass"})
    _print(rows, Fmt.table, f"test alert {alert_kind.value}")
    if any(r["status"] != "sent" for r in rows):
        raise typer.Exit(1)
