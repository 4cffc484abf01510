"""`dialer chains`: the e-mail catalog (list, validate, render) and the chains of leads (show, stop, run)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

app = typer.Typer(help="E-mail touch chains: catalog, preview, the chain of a lead, stop, send.",
                  no_args_is_help=True)


def _cli():
    """The root CLI's state and renderers, imported late (cli.py imports this module). Run as
    `python -m cli` the root is __main__: use that copy, whose AppState holds the --config given."""
    main = sys.modules.get("__main__")
    if main is not None and hasattr(main, "AppState") and hasattr(main, "_ready_store"):
        return main
    import cli
    return cli


def _catalog(ctx: typer.Context):
    from dialer.chains.catalog import catalog_directory, load_catalog
    return load_catalog(catalog_directory(_cli().state(ctx).settings.chains.directory))


@app.command("list")
def chains_list(ctx: typer.Context,
                fmt: str = typer.Option("table", "--format", help="table, json or csv")) -> None:
    """Every chain with its entries, steps (template and delay) and send window."""
    catalog = _catalog(ctx)
    rows = [{"chain": f"{c.id} v{c.version}", "entries": ", ".join(e.value for e in c.entries),
             "steps": " -> ".join(f"{s.template} (+{s.delay.total_seconds() / 86400:g}d)" for s in c.steps),
             "window": f"{c.window.start:%H:%M}-{c.window.end:%H:%M} local",
             "stops": ", ".join(s.value for s in c.stops)} for c in catalog.chains]
    _cli().render(rows, fmt, title="touch chains")


@app.command("validate")
def chains_validate(ctx: typer.Context) -> None:
    """Check the catalog: chain rules (2-4 e-mails, 3 days apart), templates, fields, both languages."""
    catalog = _catalog(ctx)   # raises CatalogError (exit 2) listing every problem
    _cli().console.print(f"[green]catalog ok[/green]: {len(catalog.chains)} chains, "
                         f"{len(catalog.templates)} templates")


@app.command("render")
def chains_render(ctx: typer.Context, template_id: str = typer.Argument(..., help="Template id, e.g. offer-gift"),
                  language: str = typer.Option("ru", "--language", "-l", help="ru or en"),
                  lead: Optional[int] = typer.Option(None, "--lead", help="Fill the fields from this lead "
                                                                          "[default: sample values]"),
                  fmt: str = typer.Option("text", "--format", help="text or json")) -> None:
    """Preview an e-mail as the customer gets it."""
    from dialer.chains.catalog import SAMPLE_FIELDS, render
    from kernel.db.models import Lead
    from kernel.errors import NotFound
    cli = _cli()
    s = cli.state(ctx)
    template = _catalog(ctx).template(template_id, language)
    fields = dict(SAMPLE_FIELDS, shop=s.settings.chains.shop_name, call_url=s.settings.chains.site_url,
                  offer_code=f"{template.variant.upper().replace('_', '')}-1042")
    if lead is not None:
        with cli._ready_store(s).read() as session:
            row = session.get(Lead, lead)
            if row is None:
                raise NotFound(f"no lead with id {lead}")
            fields.update(name=row.name, product=row.product, order_number=row.order_number,
                          offer_code=f"{template.variant.upper().replace('_', '')}-{row.id}")
    page = render(template, fields)
    if fmt == "json":
        sys.stdout.write(cli.to_json({"template": template.ref, "subject": page.subject, "body": page.body}) + "\n")
        return
    cli.console.print(f"[bold]template[/bold] {template.ref}   [bold]file[/bold] {template.path}")
    cli.console.print(f"[bold]Subject:[/bold] {page.subject}", markup=True, highlight=False)
    cli.console.print(page.body, markup=False, highlight=False)


@app.command("show")
def chains_show(ctx: typer.Context, lead_id: int = typer.Argument(..., help="Lead id"),
                fmt: str = typer.Option("table", "--format", help="table or json")) -> None:
    """The lead's chain: entry, status, why it stopped, each e-mail with its template version and delivery."""
    from dialer.chains.store import chain_of_lead
    cli = _cli()
    info = chain_of_lead(cli._ready_store(cli.state(ctx)), lead_id)
    if fmt == "json":
        sys.stdout.write(cli.to_json(info) + "\n")
        return
    emails = info.pop("emails")
    cli.render_record(info, "table", title=f"lead {lead_id}: e-mail chain")
    cli.render(emails, "table", title="e-mails")


@app.command("stop")
def chains_stop(ctx: typer.Context, lead_id: int = typer.Argument(..., help="Lead id"),
                reason: str = typer.Option(..., "--reason", help="reply, order, unsubscribe, new_lead or dnc")) -> None:
    """Stop a lead's chain (the customer replied, ordered elsewhere, ...); undelivered e-mails are cancelled."""
    from dialer.chains.model import StopReason
    from dialer.chains.store import record_stop
    from kernel.errors import UsageError
    cli = _cli()
    try:
        why = StopReason(reason)
    except ValueError:
        raise UsageError(f"unknown reason {reason!r}; one of: " + ", ".join(r.value for r in StopReason)) from None
    cancelled = record_stop(cli._ready_store(cli.state(ctx)), lead_id, why, cli.clock.now())
    cli.console.print(f"chain of lead {lead_id} stopped ({why.value}); {cancelled} undelivered e-mail(s) cancelled")


@app.command("run")
def chains_run(ctx: typer.Context) -> None:
    """One pass now: enrol leads that entered a chain, queue the e-mails due, send them (chains.smtp_host)."""
    import random
    from dialer.chains.mailer import EmailSender
    from dialer.chains.store import tick
    cli = _cli()
    s = cli.state(ctx)
    db = cli._ready_store(s)
    now = cli.clock.now()
    counts = tick(db, _catalog(ctx), s.settings.chains, now)
    sent = EmailSender(db, s.settings.chains, cli.clock, random.Random()).send_due(now)
    cli.render([{"enrolled": counts.enrolled, "skipped": counts.skipped, "queued": counts.queued,
                 "stopped": counts.stopped, "sent": sent.sent, "retrying": sent.retrying, "dead": sent.dead}],
               "table", title="chains pass")


@app.command("failed")
def chains_failed(ctx: typer.Context, fmt: str = typer.Option("table", "--format", help="table, json or csv")) -> None:
    """E-mails the SMTP server did not take after chains.max_failures tries."""
    from dataclasses import asdict
    from dialer.crm.outbox import Topic, dead_letters
    cli = _cli()
    rows = [asdict(d) for d in dead_letters(cli._ready_store(cli.state(ctx)), topic=Topic.EMAIL)]
    cli.render(rows, fmt, title="e-mail dead letters",
               columns=["id", "lead_id", "failures", "last_error", "created_at", "key"])


@app.command("retry")
def chains_retry(ctx: typer.Context, ids: Optional[list[int]] = typer.Argument(None, help="Outbox ids"),
                 all_: bool = typer.Option(False, "--all", help="Every e-mail dead letter")) -> None:
    """Put e-mail dead letters back in the queue (the next pass sends them)."""
    from dialer.crm.outbox import Topic, requeue
    from kernel.errors import UsageError
    cli = _cli()
    if bool(ids) == all_:
        raise UsageError("give the outbox ids to resend, or --all (not both)")
    chosen = requeue(cli._ready_store(cli.state(ctx)), None if all_ else ids, cli.clock.now(), topic=Topic.EMAIL)
    cli.console.print(f"{len(chosen)} e-mail(s) back in the queue")
