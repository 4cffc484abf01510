"""Contact cadence (DESIGN §3). A contact is a conversation (CallResult.CONNECTED), not a dial attempt.

- the first contact on the day the lead arrives (the first-call deadline drives it, see tiers.py);
- the second contact the next day: not earlier than `cadence_min_gap_days` calendar days after the
  first (1 = not the same day), due by the end of day first + `cadence_second_contact_days`;
- each further contact not earlier than the same gap, and no later than `cadence_max_gap_days` after
  the previous one.

"Unless agreed otherwise": a callback (an agreed time) is not held back by the cadence. Calendar days
are the call center's. Computed at selection time from contacts_count / last_contact_at, so it holds
whoever changed the lead's status (dispositions only set status and callback fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from leads.policy.quiet_hours import start_of_day

if TYPE_CHECKING:
    from leads.policy.facts import LeadFacts
    from leads.policy.values import Policy


@dataclass(frozen=True)
class ContactWindow:
    earliest: datetime | None   # the next contact not before this (None: no limit)
    deadline: datetime | None   # the next contact due by this (None: no cadence deadline yet)


def contact_window(lead: LeadFacts, policy: Policy, center: ZoneInfo) -> ContactWindow:
    last = lead.last_contact_at
    if lead.contacts_count <= 0 or last is None:
        return ContactWindow(None, None)
    earliest = next_contact_not_before(last, policy, center) if policy.cadence_min_gap_days > 0 else None
    day = last.astimezone(center).date()
    if lead.contacts_count == 1:
        deadline = start_of_day(day + timedelta(days=policy.cadence_second_contact_days + 1), center)
    else:
        deadline = last + timedelta(days=policy.cadence_max_gap_days)
    return ContactWindow(earliest, deadline)


def next_contact_not_before(last_contact_at: datetime, policy: Policy, center: ZoneInfo) -> datetime:
    """After a conversation at `last_contact_at`, the earliest the next one may happen."""
    if policy.cadence_min_gap_days <= 0:
        return last_contact_at
    day = last_contact_at.astimezone(center).date()
    return start_of_day(day + timedelta(days=policy.cadence_min_gap_days), center)
