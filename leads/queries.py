"""Read-only views of stored leads for the CLI, the web pages and reports."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Disposition, Lead
from kernel.errors import NotFound, UsageError
from leads.lead import LeadStatus


@dataclass(frozen=True)
class LeadSummary:
    id: int
    received_at: datetime
    status: str
    phone: str | None
    name: str | None
    order_number: str | None
    product: str | None
    source: str
    reason: str | None
    duplicate_of: int | None
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _summary(lead: Lead) -> LeadSummary:
    reason = lead.invalid_reason or lead.close_reason
    return LeadSummary(lead.id, lead.received_at, lead.status, lead.phone_e164 or lead.phone_raw, lead.name,
                       lead.order_number, lead.product, lead.source, reason, lead.duplicate_of_id,
                       lead.attempts_count)


def list_leads(db: Database, status: str | None = None, limit: int | None = 100) -> list[LeadSummary]:
    query = select(Lead).order_by(Lead.id.desc())
    if status:
        try:
            query = query.where(Lead.status == LeadStatus(status).value)
        except ValueError:
            raise UsageError(f"unknown status {status!r}; one of: "
                             + ", ".join(s.value for s in LeadStatus)) from None
    if limit:
        query = query.limit(limit)
    with db.read() as session:
        return [_summary(lead) for lead in session.scalars(query)]


def lead_details(db: Database, lead_id: int) -> dict[str, Any]:
    """Everything stored about one lead, with its attempts and dispositions."""
    with db.read() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {lead_id}")
        details = {c.name: getattr(lead, c.name) for c in Lead.__table__.columns}
        attempts = session.scalars(select(CallAttempt).where(CallAttempt.lead_id == lead_id)
                                   .order_by(CallAttempt.attempt_no)).all()
        details["attempts"] = [{c.name: getattr(a, c.name) for c in CallAttempt.__table__.columns}
                               for a in attempts]
        dispositions = session.scalars(select(Disposition).where(Disposition.lead_id == lead_id)
                                       .order_by(Disposition.id)).all()
        details["dispositions"] = [{c.name: getattr(d, c.name) for c in Disposition.__table__.columns}
                                   for d in dispositions]
        details.update(_ledger(session, lead))   # consent, e-mail chain and e-mails (issue 19)
        return details


def _ledger(session, lead: Lead) -> dict[str, Any]:
    """Where the lead's consent came from, its later changes, its e-mail chain and each e-mail's template."""
    from kernel.db.models import ConsentRecord, TouchChain, TouchEmail
    from leads.consent import consent_line, consent_of
    consent = consent_of(lead.source, lead.received_at, lead.extra)
    out: dict[str, Any] = {"consent": consent_line(consent), "consent_form_id": consent["form_id"],
                           "consent_text": consent["consent_text"], "consent_version": consent["consent_version"],
                           "consent_ip": consent["ip"], "consent_user_agent": consent["user_agent"]}
    run = session.scalar(select(TouchChain).where(TouchChain.lead_id == lead.id))
    out["email_chain"] = (f"{run.chain_id} v{run.chain_version} ({run.entry}): {run.status}"
                          + (f", {run.stop_reason}" if run.stop_reason else "")) if run else None
    who = [ConsentRecord.lead_id == lead.id]
    if lead.phone_e164:
        who.append(ConsentRecord.phone_e164 == lead.phone_e164)
    out["consent_changes"] = [{"at": c.at, "channel": c.channel, "granted": c.granted, "source": c.source,
                               "by": c.recorded_by, "ip": c.ip, "user_agent": c.user_agent}
                              for c in session.scalars(select(ConsentRecord).where(or_(*who))
                                                       .order_by(ConsentRecord.at, ConsentRecord.id))]
    out["emails"] = [{"step": e.step, "template": e.template, "to": e.to_address, "planned_at": e.planned_at,
                      "queued_at": e.queued_at, "subject": e.subject}
                     for e in session.scalars(select(TouchEmail).where(TouchEmail.lead_id == lead.id)
                                              .order_by(TouchEmail.step))]
    return out
