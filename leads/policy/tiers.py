"""Priority tiers (DESIGN §3): which kind of dial a lead is, its deadline, and its place in the order.

Variant 1 (default): the tiers in the policy's `tier_order`; variant 2: new leads first, then the lead
with the fewest attempts. Inside a tier (variant 1) or an attempt count (variant 2) the lead whose
deadline comes first goes first, then the one received first, then the lower lead id.

Deadlines:
- new: the first-call deadline, received_at + first_call_minutes, where a lead that arrives in quiet
  hours (the center's or its own zone's) counts from the moment dialing is allowed again;
- callback: the agreed time;
- second_attempt / redial: the time the retry delay ends (next_attempt_at);
- follow_up: the cadence deadline of the next contact.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence
from zoneinfo import ZoneInfo

from leads.lead import LeadStatus
from leads.policy.cadence import contact_window
from leads.policy.quiet_hours import first_allowed

if TYPE_CHECKING:
    from leads.policy.facts import LeadFacts
    from leads.policy.values import Policy


class Tier(StrEnum):
    NEW = "new"                         # never dialed
    SECOND_ATTEMPT = "second_attempt"   # exactly one attempt, no conversation yet
    CALLBACK = "callback"               # the customer agreed a time
    REDIAL = "redial"                   # two or more attempts (or, oddly, none), no conversation yet
    FOLLOW_UP = "follow_up"             # had a conversation; the next contact follows the cadence


def tier_of(lead: LeadFacts) -> Tier | None:
    """The kind of dial the lead waits for; None for a lead that is not in the call queue at all."""
    if lead.status == LeadStatus.NEW:
        return Tier.NEW
    if lead.status == LeadStatus.CALLBACK:
        return Tier.CALLBACK
    if lead.status == LeadStatus.RETRY:
        if lead.contacts_count > 0:
            return Tier.FOLLOW_UP
        return Tier.SECOND_ATTEMPT if lead.attempts_count == 1 else Tier.REDIAL
    return None


def rank(tier: Tier, lead: LeadFacts, policy: Policy) -> tuple[int, ...]:
    """Smaller goes first. Variant 1: the tier's place in tier_order; variant 2: new, then fewest attempts."""
    if policy.tier_variant == 2:
        return (0, 0) if tier is Tier.NEW else (1, lead.attempts_count)
    return (policy.tier_order.index(tier.value),)


def rank_label(tier: Tier, lead: LeadFacts, policy: Policy) -> str:
    if policy.tier_variant == 2:
        return "new" if tier is Tier.NEW else f"{lead.attempts_count} attempts"
    return f"{policy.tier_order.index(tier.value) + 1}. {tier.value}"


def deadline(tier: Tier, lead: LeadFacts, policy: Policy, center: ZoneInfo,
             zones: Sequence[ZoneInfo]) -> datetime | None:
    """When the lead must be dialed by (see the module doc); None when there is no such time."""
    if tier is Tier.NEW:
        return first_call_deadline(lead.received_at, policy, center, zones)
    if tier is Tier.CALLBACK:
        return lead.callback_at
    if tier is Tier.FOLLOW_UP:
        return contact_window(lead, policy, center).deadline
    return lead.next_attempt_at or lead.last_attempt_at or lead.received_at


def first_call_deadline(received_at: datetime, policy: Policy, center: ZoneInfo,
                        zones: Sequence[ZoneInfo]) -> datetime | None:
    """received_at + first_call_minutes, counted from the end of quiet hours for a lead that arrived in them."""
    return _first_call_deadline(received_at, policy, center, tuple(zones))


# The claim asks this of the same waiting leads at every claim (their order bound and their deadline).
@lru_cache(maxsize=65536)
def _first_call_deadline(received_at: datetime, policy: Policy, center: ZoneInfo,
                         zones: tuple[ZoneInfo, ...]) -> datetime | None:
    start = first_allowed(received_at, (center, *zones), policy)
    return None if start is None else start + policy.first_call_delay
