"""What the policy rules know about a lead: a frozen snapshot of the stored dialing state.

The rules never see ORM rows; the claim, the queue view and `dialer why` read these columns and build
one `LeadFacts` per lead (see candidates.py), plus two facts that live in other tables: whether the
number is on the do-not-call list now, and whether an attempt of the lead is still in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LeadFacts:
    id: int
    status: str
    received_at: datetime
    phone_e164: str | None
    phone_ext: str | None = None
    timezone: str | None = None          # explicit IANA zone sent with the lead
    region: str | None = None            # region or city sent with the lead (its zone: leads/numbering)
    product: str | None = None
    name: str | None = None
    attempts_count: int = 0
    contacts_count: int = 0
    first_dialed_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_contact_at: datetime | None = None
    last_result: str | None = None
    next_attempt_at: datetime | None = None
    callback_at: datetime | None = None
    callback_operator_id: int | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    invalid_reason: str | None = None
    close_reason: str | None = None
    closed_at: datetime | None = None
    duplicate_of_id: int | None = None
    on_dnc: bool = False                 # the number is on the do-not-call list now
    attempt_in_progress: bool = False    # an attempt of this lead has not ended


# The Lead columns a LeadFacts is read from (the two table facts come from subqueries).
LEAD_COLUMNS = tuple(name for name in LeadFacts.__dataclass_fields__ if name not in ("on_dnc",
                                                                                      "attempt_in_progress"))
