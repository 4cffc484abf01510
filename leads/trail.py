"""`dialer leads trail PHONE`: every lead, call, e-mail, consent and DNC change of a number, in time order,
so the store can answer "why did you contact me" with one command (issue 19)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from kernel.db.engine import Database
from kernel.db.models import (CallAttempt, ConsentRecord, Disposition, DncEntry, Lead, OutboxMessage, TouchChain,
                              TouchEmail)
from leads.consent import consent_line, consent_of


@dataclass(frozen=True)
class TrailEvent:
    at: datetime
    kind: str         # lead, closed, call, disposition, email, chain, consent, dnc
    lead_id: int | None
    what: str
    rank: int = 5     # among events at the same moment: a cause before its effects

    def as_dict(self) -> dict:
        return {"at": self.at, "kind": self.kind, "lead_id": self.lead_id, "what": self.what}


def trail(db: Database, phone_e164: str) -> list[TrailEvent]:
    events: list[TrailEvent] = []
    with db.read() as session:
        leads = session.scalars(select(Lead).where(Lead.phone_e164 == phone_e164).order_by(Lead.id)).all()
        ids = [lead.id for lead in leads]
        emails = {lead.extra.get("email") for lead in leads if lead.extra and lead.extra.get("email")}
        for lead in leads:
            consent = consent_of(lead.source, lead.received_at, lead.extra)
            events.append(TrailEvent(lead.received_at, "lead", lead.id,
                                     f"request received ({lead.status}{'' if not lead.order_number else ', order ' + lead.order_number}"
                                     f"{', ' + lead.product if lead.product else ''}); consent: {consent_line(consent)}"))
            if lead.closed_at is not None:
                events.append(TrailEvent(lead.closed_at, "closed", lead.id, f"closed: {lead.close_reason}"))
        if ids:
            for a in session.scalars(select(CallAttempt).where(CallAttempt.lead_id.in_(ids))):
                end = f" -> {a.result}" if a.result else f" ({a.state})"
                events.append(TrailEvent(a.originated_at or a.claimed_at, "call", a.lead_id,
                                         f"attempt {a.attempt_no}, caller ID {a.caller_id or '-'}{end}"
                                         + (f", operator {a.operator_interface}" if a.connected_at else "")))
            for d in session.scalars(select(Disposition).where(Disposition.lead_id.in_(ids))):
                events.append(TrailEvent(d.created_at, "disposition", d.lead_id,
                                         f"{d.kind} by {d.recorded_by}" + (f": {d.comment}" if d.comment else "")))
            for run in session.scalars(select(TouchChain).where(TouchChain.lead_id.in_(ids))):
                events.append(TrailEvent(run.started_at, "chain", run.lead_id,
                                         f"e-mail chain {run.chain_id} v{run.chain_version} ({run.entry}) to "
                                         f"{run.email or '-'}"))
                if run.ended_at is not None:
                    events.append(TrailEvent(run.ended_at, "chain", run.lead_id,
                                             f"chain {run.status}" + (f": {run.stop_reason}" if run.stop_reason else ""),
                                             rank=9))
            rows = session.execute(select(TouchEmail, OutboxMessage.status, OutboxMessage.sent_at)
                                   .outerjoin(OutboxMessage, OutboxMessage.id == TouchEmail.outbox_id)
                                   .where(TouchEmail.lead_id.in_(ids))).all()
            for e, status, sent_at in rows:
                events.append(TrailEvent(sent_at or e.queued_at, "email", e.lead_id,
                                         f"e-mail {e.step} {e.template} to {e.to_address} ({status}): {e.subject}"))
        who = [ConsentRecord.phone_e164 == phone_e164]
        if emails:
            who.append(ConsentRecord.email.in_(sorted(emails)))
        for c in session.scalars(select(ConsentRecord).where(or_(*who))):
            kind = "dnc" if c.source in ("dnc", "dnc_removed") else "consent"
            verb = "allowed" if c.granted else "withdrawn"
            detail = ", ".join(x for x in (c.consent_text, f"IP {c.ip}" if c.ip else None, c.user_agent) if x)
            events.append(TrailEvent(c.at, kind, c.lead_id, f"{c.channel} {verb} ({c.source}, by {c.recorded_by})"
                                     + (f": {detail}" if detail else "")))
        entry = session.get(DncEntry, phone_e164)
        if entry is not None and not any(e.kind == "dnc" for e in events):
            events.append(TrailEvent(entry.added_at, "dnc", None, f"on the do-not-call list (by {entry.added_by}"
                                     + (f": {entry.reason})" if entry.reason else ")")))
    order = {"lead": 0, "call": 1, "disposition": 2, "closed": 3, "dnc": 4, "consent": 5, "chain": 6, "email": 7}
    return sorted(events, key=lambda e: (e.at, e.rank == 9, order.get(e.kind, 9)))
