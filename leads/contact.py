"""'Write, don't call': a customer's wish to get e-mail instead of calls (issue 19).

A lead whose form or import row says so, or whose call ends with the disposition `write_instead`, is
closed for calls with close_reason `write_instead`, and so is every other open lead with that number;
the claim never returns a closed lead, and the e-mail chain (dialer/chains) takes over.
A later lead from the same number without the wish is a new request to be called, and is called.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel.db.models import Lead
from leads.lead import DIALABLE_STATUSES, CloseReason, LeadStatus
from leads.phone import mask_phone

log = logging.getLogger("leads.contact")

# The lead field (webhook JSON key or CSV column; it lands in the lead's extra) and the values that ask.
WISH_FIELDS = ("write_instead", "contact_by")
_YES = {"1", "true", "yes", "y", "да", "email", "e-mail", "mail", "почта", "письмо"}


def wants_email(extra: Mapping[str, Any] | None) -> bool:
    """Does the lead ask to be written to instead of called? `write_instead: true` or `contact_by: email`."""
    if not extra:
        return False
    for name in WISH_FIELDS:
        value = extra.get(name)
        if value is True or (isinstance(value, str) and value.strip().lower() in _YES):
            return True
        if isinstance(value, int) and not isinstance(value, bool) and value == 1:
            return True
    return False


def switch_to_email(session: Session, phones: Iterable[str], lead_ids: Iterable[int], now: datetime) -> list[int]:
    """Close for calls the given leads and every open lead with one of `phones`; returns the leads closed."""
    phones, lead_ids = sorted(set(phones)), sorted(set(lead_ids))
    query = select(Lead).where(Lead.status.in_([s.value for s in DIALABLE_STATUSES]))
    if phones and lead_ids:
        query = query.where(Lead.phone_e164.in_(phones) | Lead.id.in_(lead_ids))
    elif phones:
        query = query.where(Lead.phone_e164.in_(phones))
    elif lead_ids:
        query = query.where(Lead.id.in_(lead_ids))
    else:
        return []
    closed = []
    for lead in session.scalars(query.with_for_update()).all():
        log.info("lead.closed lead_id=%s: %s -> write_instead -> closed (phone %s)", lead.id, lead.status,
                 mask_phone(lead.phone_e164))
        lead.status = LeadStatus.CLOSED.value
        lead.close_reason = CloseReason.WRITE_INSTEAD.value
        lead.closed_at = now
        lead.callback_at = None
        lead.callback_operator_id = None
        lead.next_attempt_at = None
        closed.append(lead.id)
    return closed
