"""Dedup rules of DESIGN §2, as a pure function over the earlier leads with the same phone.

- Variant A (the lead has an order number): the phone is known and an earlier lead with that phone
  has the same order number -> duplicate. Same phone with a new order number -> new lead.
- Variant B (phone only): a lead with that phone was accepted as new within the window -> duplicate.
  The window is measured from the last lead accepted as new, never from a duplicate ("if the first
  request was earlier than the agreed period, the new one is treated as new"): with a 24 h window,
  leads at 0 h (new), 20 h (duplicate) and 40 h make the 40 h lead new. The window is inclusive: a lead
  exactly 24 h after the original is still a duplicate.

Both variants look at every earlier lead with the phone, whatever variant that lead came in by.
A duplicate links to the original lead (the root of the duplicate chain), never to another duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable


@dataclass(frozen=True)
class EarlierLead:
    id: int
    received_at: datetime
    order_number: str | None
    duplicate_of_id: int | None

    @property
    def original_id(self) -> int:
        return self.duplicate_of_id or self.id


@dataclass(frozen=True)
class DedupVerdict:
    duplicate_of: int | None  # None: the lead is new
    rule: str

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_of is not None


def same_order_number(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_order_number(a) == normalize_order_number(b)


def normalize_order_number(value: str) -> str:
    return value.strip().casefold()


def dedup(order_number: str | None, received_at: datetime, earlier: Iterable[EarlierLead],
          window: timedelta) -> DedupVerdict:
    """Is a lead with this order number, received at this time, a duplicate of an earlier one?"""
    earlier = [e for e in earlier if e.received_at <= received_at]
    if order_number and order_number.strip():
        if not earlier:
            return DedupVerdict(None, "A: phone not seen before")
        matches = [e for e in earlier if same_order_number(e.order_number, order_number)]
        if matches:
            first = min(matches, key=lambda e: (e.received_at, e.id))
            return DedupVerdict(first.original_id, "A: same phone and order number")
        return DedupVerdict(None, "A: known phone, new order number")
    recent = [e for e in earlier if e.duplicate_of_id is None and received_at - e.received_at <= window]
    if recent:
        latest = max(recent, key=lambda e: (e.received_at, e.id))
        return DedupVerdict(latest.original_id, f"B: same phone within {_hours(window)}")
    return DedupVerdict(None, f"B: phone not accepted as new within {_hours(window)}")


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h"
