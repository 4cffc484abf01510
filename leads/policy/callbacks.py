"""Scheduled callbacks (DESIGN §3): a time agreed with the customer is a promise.

A callback is due at its agreed time, preferably dialed for the operator who agreed it; if that
operator is not available within `callback_operator_wait_minutes` of the agreed time, any operator
takes it. The cadence does not hold a callback back (it was agreed otherwise). The retry delay of
an earlier attempt holds a callback back only when that attempt was made for this callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, AbstractSet

if TYPE_CHECKING:
    from leads.policy.facts import LeadFacts
    from leads.policy.values import Policy


@dataclass(frozen=True)
class CallbackRouting:
    operator_id: int | None          # the operator to dial for (None: any operator)
    wait_until: datetime | None      # not dialable for another operator before this (None: no wait)


def is_due(lead: LeadFacts, now: datetime) -> bool:
    return lead.callback_at is not None and lead.callback_at <= now


def attempted_for_callback(lead: LeadFacts) -> bool:
    """The last attempt was made at or after the agreed time: its retry delay applies to the callback."""
    return (lead.callback_at is not None and lead.last_attempt_at is not None
            and lead.last_attempt_at >= lead.callback_at)


def served_by(callback_at: datetime | None, attempt_claimed_at: datetime) -> bool:
    """A conversation in an attempt claimed at or after the agreed time keeps the promise."""
    return callback_at is not None and attempt_claimed_at >= callback_at


def route(lead: LeadFacts, now: datetime, policy: Policy,
          available_operator_ids: AbstractSet[int] | None) -> CallbackRouting:
    """Who should take the due callback. Availability unknown (None): the agreeing operator, no wait."""
    preferred = lead.callback_operator_id
    if preferred is None or lead.callback_at is None:
        return CallbackRouting(None, None)
    if available_operator_ids is None or preferred in available_operator_ids:
        return CallbackRouting(preferred, None)
    wait_until = lead.callback_at + policy.callback_operator_wait
    if now < wait_until:
        return CallbackRouting(preferred, wait_until)
    return CallbackRouting(None, None)
