"""Which dialable lead goes first (pure): the rules of why.py on each lead, then the tier order.

Order: rank (the tier's place in variant 1; new-then-fewest-attempts in variant 2), then the earliest
deadline, then the earliest received, then the lowest lead id (Verdict.order_key).
"""

from __future__ import annotations

from datetime import datetime
from typing import AbstractSet, Iterable
from zoneinfo import ZoneInfo

from leads.policy.facts import LeadFacts
from leads.policy.values import Policy
from leads.policy.why import Verdict, evaluate


def order_dialable(leads: Iterable[LeadFacts], now: datetime, policy: Policy, center: ZoneInfo,
                   available_operator_ids: AbstractSet[int] | None = None) -> list[Verdict]:
    """The dialable leads among `leads`, in the order the dialer would dial them at `now`."""
    verdicts = (evaluate(lead, now, policy, center, available_operator_ids) for lead in leads)
    return sorted((v for v in verdicts if v.dialable), key=Verdict.order_key)


def next_lead(leads: Iterable[LeadFacts], now: datetime, policy: Policy, center: ZoneInfo,
              available_operator_ids: AbstractSet[int] | None = None) -> Verdict | None:
    ordered = order_dialable(leads, now, policy, center, available_operator_ids)
    return ordered[0] if ordered else None
