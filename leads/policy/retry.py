"""What a call result does to its lead (DESIGN §3 Attempts, Retry delays): the one place of that rule.

- every dial counts as an attempt; a claim given back before anything was dialed (CANCELLED while the
  attempt is still `claimed`) does not, and leaves the lead as it was;
- CONNECTED is a contact: contacts_count and last_contact_at move on, the next contact waits for the
  cadence, and the lead's status is left to the operator's disposition (a new lead becomes `retry`;
  a callback kept by this call becomes `retry` too, unless a disposition already set a new one);
- INVALID_NUMBER closes the lead (close reason invalid_number);
- every other result waits its retry delay (policy retry_<result>_minutes; REJECTED, CANCELLED and
  UNKNOWN have their own keys, UNKNOWN defaulting to the delay of FAILED), and the retry plan may
  move it later (spread.py: the next part of the customer's day, at most max_attempts_per_day a day);
- once attempts reach max_attempts without a conversation in this call, the lead is closed as
  unreachable. After a conversation the disposition decides (a lead left open at the limit is not
  dialed again; `dialer why` says so).
A lead whose status is no longer dialable (closed by a disposition, say) keeps its status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leads.attempt import CallResult
from leads.lead import DIALABLE_STATUSES, CloseReason, LeadStatus
from leads.policy.cadence import next_contact_not_before
from leads.policy.callbacks import served_by
from leads.policy.facts import LeadFacts
from leads.policy.spread import next_attempt_not_before
from leads.policy.values import Policy


@dataclass(frozen=True)
class LeadUpdate:
    """The lead's dialing state after one attempt's result."""

    counted: bool                    # the attempt counts towards max_attempts
    status: str
    attempts_count: int
    contacts_count: int
    first_dialed_at: datetime | None
    last_attempt_at: datetime | None
    last_contact_at: datetime | None
    last_result: str | None
    next_attempt_at: datetime | None
    callback_at: datetime | None
    callback_operator_id: int | None
    close_reason: str | None
    closed_at: datetime | None

    def columns(self) -> dict[str, Any]:
        """The Lead columns to write; the lease is released."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "counted"}
        return {**values, "lease_owner": None, "lease_expires_at": None}


def after_result(lead: LeadFacts, result: CallResult, at: datetime, *, claimed_at: datetime, dialed: bool,
                 policy: Policy, center: ZoneInfo, attempts_today: int = 0,
                 lead_zone: ZoneInfo | None = None) -> LeadUpdate:
    """The lead after `result` of an attempt claimed at `claimed_at` (`dialed`: it got past the claim).

    `attempts_today`: the lead's earlier counted attempts in this calendar day of `lead_zone` (its own
    zone where known, else the center's), this one not included.
    """
    unchanged = LeadUpdate(False, lead.status, lead.attempts_count, lead.contacts_count, lead.first_dialed_at,
                           lead.last_attempt_at, lead.last_contact_at, lead.last_result, lead.next_attempt_at,
                           lead.callback_at, lead.callback_operator_id, lead.close_reason, lead.closed_at)
    if result is CallResult.CANCELLED and not dialed:
        return unchanged
    update = replace(unchanged, counted=True, attempts_count=lead.attempts_count + 1,
                     first_dialed_at=lead.first_dialed_at or claimed_at, last_attempt_at=at,
                     last_result=result.value)
    open_lead = lead.status in DIALABLE_STATUSES
    if result is CallResult.INVALID_NUMBER:
        if not open_lead:
            return replace(update, next_attempt_at=None)
        return _closed(update, CloseReason.INVALID_NUMBER, at)
    if result.is_contact:
        update = replace(update, contacts_count=lead.contacts_count + 1, last_contact_at=at,
                         next_attempt_at=next_contact_not_before(at, policy, center))
        if lead.status == LeadStatus.NEW:
            return replace(update, status=LeadStatus.RETRY.value)
        if lead.status == LeadStatus.CALLBACK and served_by(lead.callback_at, claimed_at):
            return replace(update, status=LeadStatus.RETRY.value, callback_at=None, callback_operator_id=None)
        return update
    delay = timedelta(minutes=policy.retry_minutes(result) or 0)
    update = replace(update, next_attempt_at=next_attempt_not_before(
        at, result, delay, policy, lead_zone or center, attempts_today + 1, spread=lead.status != LeadStatus.CALLBACK))
    if not open_lead:
        return update
    if update.attempts_count >= policy.max_attempts:
        return _closed(update, CloseReason.UNREACHABLE, at)
    if lead.status == LeadStatus.NEW:
        return replace(update, status=LeadStatus.RETRY.value)
    return update


def _closed(update: LeadUpdate, reason: CloseReason, at: datetime) -> LeadUpdate:
    return replace(update, status=LeadStatus.CLOSED.value, close_reason=reason.value, closed_at=at,
                   next_attempt_at=None)
