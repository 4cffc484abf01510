"""Touch chains in the store: who enters a chain, what stops it, and each e-mail queued in the outbox.

`tick(db, catalog, settings, now)` is one pass (the daemon runs it every chains.poll_seconds; tests
drive it over a ManualClock): enrol the leads that just entered a chain, then, for every chain due,
check the stop conditions and queue the step's e-mail on the outbox's `email` topic in the same
transaction (so an e-mail is queued exactly once; mailer.py delivers it over SMTP).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import ConsentRecord, Disposition, DncEntry, Lead, OutboxMessage, TouchChain, TouchEmail
from kernel.errors import NotFound, UsageError
from kernel.settings import ChainsSettings
from dialer.chains.catalog import LANGUAGES, Catalog, render
from dialer.chains.model import Chain, ChainStatus, Entry, StopReason
from dialer.chains.schedule import first_send_time, in_window, planned_step_time
from dialer.crm.outbox import OutboxStatus, Topic
from leads.lead import CloseReason, LeadStatus
from leads.policy.store import current_policy
from leads.policy.zones import lead_zones

log = logging.getLogger("dialer.chains")

# A lead closed longer ago than this when the chains first look at it is not enrolled: turning the
# feature on must not mail every customer the store ever failed to reach.
ENROL_WITHIN = timedelta(days=7)
ENTRY_REASONS = (CloseReason.UNREACHABLE.value, CloseReason.NO_DECISION.value, CloseReason.WRITE_INSTEAD.value)
THINKING_KINDS = ("no_decision", "callback")   # the last word was "I'll think" or "call me later"
EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")
BATCH = 200


@dataclass(frozen=True)
class TickCounts:
    enrolled: int = 0
    skipped: int = 0
    queued: int = 0
    stopped: int = 0
    done: int = 0


def email_of(extra: dict[str, Any] | None) -> str | None:
    value = (extra or {}).get("email") or (extra or {}).get("e-mail")
    if isinstance(value, str) and len(value) <= 320 and EMAIL.match(value.strip()):
        return value.strip()
    return None


def tick(db: Database, catalog: Catalog, settings: ChainsSettings, now: datetime) -> TickCounts:
    require_aware(now)
    enrolled = skipped = 0
    while True:   # in batches, each its own transaction
        with db.write() as session:
            batch = enrol(session, catalog, settings, now)
        enrolled, skipped = enrolled + batch[0], skipped + batch[1]
        if sum(batch) < BATCH:
            break
    queued = stopped = done = 0
    while True:
        with db.write() as session:
            runs = session.scalars(select(TouchChain).where(TouchChain.status == ChainStatus.ACTIVE.value,
                                                            TouchChain.next_send_at <= now)
                                   .order_by(TouchChain.next_send_at, TouchChain.id).limit(BATCH)
                                   .with_for_update(skip_locked=True)).all()
            for run in runs:
                with session.no_autoflush:
                    outcome = _advance(session, run, catalog, settings, now)
                queued += outcome == "queued"
                stopped += outcome == "stopped"
                done += run.status == ChainStatus.DONE.value
        if len(runs) < BATCH:
            break
    return TickCounts(enrolled, skipped, queued, stopped, done)


# ---------------------------------------------------------------- entering a chain

def entry_of(session: Session, lead: Lead) -> Entry | None:
    if lead.close_reason == CloseReason.WRITE_INSTEAD.value:
        return Entry.WRITE_INSTEAD
    if lead.close_reason == CloseReason.NO_DECISION.value:
        return Entry.THINKING
    if lead.close_reason == CloseReason.UNREACHABLE.value:
        last = session.scalar(select(Disposition.kind).where(Disposition.lead_id == lead.id)
                              .order_by(Disposition.created_at.desc(), Disposition.id.desc()).limit(1))
        return Entry.THINKING if last in THINKING_KINDS else Entry.EXHAUSTED
    return None


def enrol(session: Session, catalog: Catalog, settings: ChainsSettings, now: datetime) -> tuple[int, int]:
    """Give each lead that just entered a chain its run (or a skipped one saying why)."""
    has_run = exists().where(TouchChain.lead_id == Lead.id)
    leads = session.scalars(select(Lead).where(Lead.status == LeadStatus.CLOSED.value,
                                               Lead.close_reason.in_(ENTRY_REASONS),
                                               Lead.closed_at >= now - ENROL_WITHIN, ~has_run)
                            .order_by(Lead.closed_at, Lead.id).limit(BATCH)).all()
    policy = current_policy(session)
    enrolled = skipped = 0
    for lead in leads:
        entry = entry_of(session, lead)
        chain = catalog.chain_for(entry) if entry else None
        if chain is None:   # recorded, so the lead is not looked at again and again
            session.add(TouchChain(lead_id=lead.id, phone_e164=lead.phone_e164, email=None, chain_id="-",
                                   chain_version=0, entry=entry.value if entry else "-", language=settings.language,
                                   zones="", status=ChainStatus.SKIPPED.value, steps_sent=0,
                                   token=secrets.token_urlsafe(24), started_at=lead.closed_at or now, ended_at=now,
                                   stop_reason=f"no chain in the catalog takes {entry.value if entry else '-'!r} "
                                               f"leads"))
            skipped += 1
            continue
        zones = lead_zones(lead.timezone, lead.phone_e164, policy.unknown_zone_rule).zones or (
            ZoneInfo("Europe/Moscow"),)
        extra = _contact_extra(session, lead)
        language = str(extra.get("language") or settings.language).lower()
        run = TouchChain(lead_id=lead.id, phone_e164=lead.phone_e164, email=email_of(extra),
                         chain_id=chain.id, chain_version=chain.version, entry=entry.value,
                         language=language if language in LANGUAGES else settings.language,
                         zones=",".join(zone.key for zone in zones), status=ChainStatus.ACTIVE.value,
                         steps_sent=0, token=secrets.token_urlsafe(24), started_at=lead.closed_at or now)
        why_not = _skip_reason(session, run)
        if why_not is None:
            run.next_send_at = planned_step_time(chain, 0, run.started_at, zones)
            if run.next_send_at is None:
                why_not = "no moment is inside the send window in every zone the customer may be in"
        if why_not is not None:
            run.status, run.stop_reason, run.ended_at = ChainStatus.SKIPPED.value, why_not, now
            skipped += 1
        else:
            _stop_older_runs(session, run, now)
            enrolled += 1
        session.add(run)
        log.info("chain.enrolled lead_id=%s chain=%s entry=%s status=%s reason=%s first=%s", lead.id, chain.id,
                 entry.value, run.status, run.stop_reason, run.next_send_at)
    session.flush()
    return enrolled, skipped


def _contact_extra(session: Session, lead: Lead) -> dict[str, Any]:
    """The lead's e-mail and language; else those of the newest lead of the same number that has an
    e-mail (the customer often leaves it on a later request, stored as a duplicate)."""
    if email_of(lead.extra) or not lead.phone_e164:
        return dict(lead.extra or {})
    for extra in session.scalars(select(Lead.extra).where(Lead.phone_e164 == lead.phone_e164, Lead.id != lead.id)
                                 .order_by(Lead.received_at.desc(), Lead.id.desc()).limit(20)):
        if email_of(extra):
            return dict(extra)
    return dict(lead.extra or {})


def _skip_reason(session: Session, run: TouchChain) -> str | None:
    if run.email is None:
        return "no e-mail address on the lead or on another lead of the number (field 'email')"
    if _unsubscribed(session, run):
        return "the customer unsubscribed from e-mails earlier"
    if run.phone_e164 and session.get(DncEntry, run.phone_e164) is not None:
        return "the number is on the do-not-call list"
    return None


def _stop_older_runs(session: Session, run: TouchChain, now: datetime) -> None:
    """One chain per customer: the newer lead's chain replaces an older one still running."""
    if not run.phone_e164:
        return
    for older in session.scalars(select(TouchChain).where(TouchChain.phone_e164 == run.phone_e164,
                                                          TouchChain.status == ChainStatus.ACTIVE.value)).all():
        stop_run(session, older, StopReason.NEW_LEAD, now)


# ---------------------------------------------------------------- each due step

def _advance(session: Session, run: TouchChain, catalog: Catalog, settings: ChainsSettings, now: datetime) -> str:
    try:
        chain = catalog.chain(run.chain_id)
    except UsageError:
        stop_run(session, run, None, now, reason_text=f"chain {run.chain_id!r} is no longer in the catalog")
        return "stopped"
    reason = stop_condition(session, run, chain)
    if reason is not None:
        stop_run(session, run, reason, now)
        return "stopped"
    zones = _zones(run)
    if not in_window(now, zones, chain.window):     # the daemon was down, or the tick came late
        run.next_send_at = first_send_time(now, zones, chain.window)
        return "moved"
    if run.steps_sent >= len(chain.steps):
        _finish(run, now)
        return "done"
    queue_email(session, run, chain, catalog, settings, now)
    run.steps_sent += 1
    run.last_planned_at = run.next_send_at
    if run.steps_sent >= len(chain.steps):
        _finish(run, now)
    else:
        run.next_send_at = planned_step_time(chain, run.steps_sent, now, zones)
    return "queued"


def _finish(run: TouchChain, now: datetime) -> None:
    run.status, run.next_send_at, run.ended_at = ChainStatus.DONE.value, None, now


def _zones(run: TouchChain) -> tuple[ZoneInfo, ...]:
    return tuple(ZoneInfo(name) for name in run.zones.split(",") if name)


def stop_condition(session: Session, run: TouchChain, chain: Chain) -> StopReason | None:
    """The first of the chain's stop conditions that holds now, or None."""
    checks = {
        StopReason.UNSUBSCRIBE: lambda: _unsubscribed(session, run),
        StopReason.DNC: lambda: bool(run.phone_e164) and session.get(DncEntry, run.phone_e164) is not None,
        StopReason.ORDER: lambda: _ordered(session, run),
        StopReason.NEW_LEAD: lambda: _new_lead(session, run),
    }
    for reason in chain.stops:
        check = checks.get(reason)   # a reply is recorded by `record_stop` (we do not read the mailbox)
        if check is not None and check():
            return reason
    return None


def _same_customer(column_phone, column_email, run: TouchChain):
    conditions = []
    if run.phone_e164:
        conditions.append(column_phone == run.phone_e164)
    if run.email and column_email is not None:
        conditions.append(func.lower(column_email) == run.email.lower())
    if not conditions:
        return None
    condition = conditions[0]
    for other in conditions[1:]:
        condition = condition | other
    return condition


def _unsubscribed(session: Session, run: TouchChain) -> bool:
    who = _same_customer(ConsentRecord.phone_e164, ConsentRecord.email, run)
    if who is None:
        return False
    latest = session.scalar(select(ConsentRecord.granted).where(who, ConsentRecord.channel == "email")
                            .order_by(ConsentRecord.at.desc(), ConsentRecord.id.desc()).limit(1))
    return latest is False


def _ordered(session: Session, run: TouchChain) -> bool:
    if not run.phone_e164:
        return False
    return session.scalar(select(func.count()).where(Lead.phone_e164 == run.phone_e164,
                                                     Lead.close_reason == CloseReason.CONFIRMED.value,
                                                     Lead.closed_at >= run.started_at)) > 0


def _new_lead(session: Session, run: TouchChain) -> bool:
    if not run.phone_e164:
        return False
    return session.scalar(select(func.count()).where(Lead.phone_e164 == run.phone_e164, Lead.id != run.lead_id,
                                                     Lead.received_at > run.started_at)) > 0


def stop_run(session: Session, run: TouchChain, reason: StopReason | None, now: datetime, *,
             reason_text: str | None = None) -> int:
    """Stop a chain and cancel its e-mails not yet delivered; returns how many were cancelled."""
    text = reason.value if reason is not None else (reason_text or "stopped")
    run.status, run.stop_reason, run.next_send_at, run.ended_at = ChainStatus.STOPPED.value, text, None, now
    pending = select(TouchEmail.outbox_id).where(TouchEmail.chain_run_id == run.id,
                                                 TouchEmail.outbox_id.is_not(None))
    cancelled = session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(pending),
                                                            OutboxMessage.status == OutboxStatus.PENDING.value)
                                .values(status=OutboxStatus.CANCELLED.value, last_error=f"chain stopped: {text}")
                                ).rowcount or 0
    log.info("chain.stopped run=%s lead_id=%s reason=%s cancelled=%s", run.id, run.lead_id, text, cancelled)
    return cancelled


# ---------------------------------------------------------------- the e-mail

def unsubscribe_url(settings: ChainsSettings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/unsubscribe/{token}"


def email_fields(run: TouchChain, lead: Lead, chain: Chain, variant: str, settings: ChainsSettings,
                 step: int) -> dict[str, Any]:
    return {"name": lead.name, "product": lead.product, "order_number": lead.order_number,
            "shop": settings.shop_name, "call_url": settings.site_url,
            "offer_code": f"{variant.upper().replace('_', '')}-{lead.id}",
            "unsubscribe_url": unsubscribe_url(settings, run.token), "step": step, "steps": len(chain.steps)}


def queue_email(session: Session, run: TouchChain, chain: Chain, catalog: Catalog, settings: ChainsSettings,
                now: datetime) -> TouchEmail:
    step = run.steps_sent + 1
    lead = session.get(Lead, run.lead_id)
    template = catalog.template(chain.steps[step - 1].template, run.language)
    rendered = render(template, email_fields(run, lead, chain, template.variant, settings, step))
    key = f"email-{run.id}-{step}-{run.started_at:%Y%m%d%H%M%S}"
    url = unsubscribe_url(settings, run.token)
    domain = settings.from_address.rpartition("@")[2] or "dialer.local"
    payload = {"to": run.email, "from": settings.from_address, "subject": rendered.subject, "body": rendered.body,
               "message_id": f"<{key}@{domain}>", "template": template.ref, "lead_id": run.lead_id,
               "chain": chain.id, "step": step, "planned_at": run.next_send_at.isoformat(),
               "headers": {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}
    message = OutboxMessage(topic=Topic.EMAIL.value, lead_id=run.lead_id, attempt_id=None, idempotency_key=key,
                            payload=payload, status=OutboxStatus.PENDING.value, failures=0, next_try_at=now,
                            created_at=now)
    session.add(message)
    session.flush()
    email = TouchEmail(chain_run_id=run.id, lead_id=run.lead_id, step=step, template=template.ref,
                       to_address=run.email, subject=rendered.subject[:500], planned_at=run.next_send_at,
                       queued_at=now, outbox_id=message.id)
    session.add(email)
    log.info("chain.email_queued run=%s lead_id=%s step=%s template=%s outbox_id=%s", run.id, run.lead_id, step,
             template.ref, message.id)
    return email


# ---------------------------------------------------------------- what customers and the team do

@dataclass(frozen=True)
class Unsubscribed:
    lead_id: int
    email: str | None
    already: bool
    cancelled: int


def unsubscribe(db: Database, token: str, now: datetime, *, ip: str | None = None,
                user_agent: str | None = None, via: str = "unsubscribe_link") -> Unsubscribed:
    """The customer's one click: the chain stops, its undelivered e-mails are cancelled, and the consent
    ledger records the withdrawal (so no later chain writes to this customer). Repeating it is harmless."""
    require_aware(now)
    with db.write() as session:
        run = session.scalar(select(TouchChain).where(TouchChain.token == token).with_for_update())
        if run is None:
            raise NotFound("this unsubscribe link is not known")
        already = _unsubscribed(session, run)
        cancelled = 0
        if run.status == ChainStatus.ACTIVE.value:
            cancelled = stop_run(session, run, StopReason.UNSUBSCRIBE, now)
        if not already:
            session.add(ConsentRecord(phone_e164=run.phone_e164, email=run.email, lead_id=run.lead_id,
                                      channel="email", granted=False, source=via, form_id=None,
                                      consent_text="withdrawn: one-click unsubscribe (RFC 8058)",
                                      ip=(ip or None) and ip[:64], user_agent=(user_agent or None) and user_agent[:500],
                                      recorded_by=via, at=now))
        return Unsubscribed(run.lead_id, run.email, already, cancelled)


def record_stop(db: Database, lead_id: int, reason: StopReason, now: datetime) -> int:
    """Stop the lead's chain by hand or from the CRM (a reply, an order made elsewhere)."""
    with db.write() as session:
        run = session.scalar(select(TouchChain).where(TouchChain.lead_id == lead_id).with_for_update())
        if run is None:
            raise NotFound(f"lead {lead_id} is in no e-mail chain")
        if run.status != ChainStatus.ACTIVE.value:
            raise UsageError(f"the chain of lead {lead_id} is already {run.status}"
                             + (f" ({run.stop_reason})" if run.stop_reason else ""))
        return stop_run(session, run, reason, now)


def chain_of_lead(db: Database, lead_id: int) -> dict[str, Any]:
    with db.read() as session:
        run = session.scalar(select(TouchChain).where(TouchChain.lead_id == lead_id))
        if run is None:
            raise NotFound(f"lead {lead_id} is in no e-mail chain")
        emails = session.execute(select(TouchEmail, OutboxMessage.status, OutboxMessage.sent_at)
                                 .outerjoin(OutboxMessage, OutboxMessage.id == TouchEmail.outbox_id)
                                 .where(TouchEmail.chain_run_id == run.id).order_by(TouchEmail.step)).all()
        return {"lead_id": run.lead_id, "chain": f"{run.chain_id} v{run.chain_version}", "entry": run.entry,
                "status": run.status, "stop_reason": run.stop_reason, "email": run.email, "language": run.language,
                "zones": run.zones, "started_at": run.started_at, "next_send_at": run.next_send_at,
                "steps_sent": run.steps_sent,
                "emails": [{"step": e.step, "template": e.template, "planned_at": e.planned_at,
                            "queued_at": e.queued_at, "delivery": status, "sent_at": sent_at, "subject": e.subject}
                           for e, status, sent_at in emails]}


def language_of_token(db: Database, token: str) -> str | None:
    """The language of the chain behind an unsubscribe link; None for an unknown link."""
    with db.read() as session:
        return session.scalar(select(TouchChain.language).where(TouchChain.token == token))
