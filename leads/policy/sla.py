"""SLA state of a lead waiting in the queue: ok, at risk, breached (DESIGN §3 Timing, §7 Alerts).

- new leads: the first-call deadline; at risk `sla_warning_minutes` before it, breached after it;
- callbacks: the agreed time, kept on time within `callback_operator_wait_minutes` (the wait for the
  agreeing operator); at risk in the last `sla_warning_minutes` of that window, breached after it;
- follow-ups: the cadence deadline of the next contact;
- second attempts and redials have no promise to keep: no SLA state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from leads.policy.tiers import Tier

if TYPE_CHECKING:
    from leads.policy.values import Policy


class SlaState(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"


def sla_deadline(tier: Tier | None, deadline: datetime | None, policy: Policy) -> datetime | None:
    if deadline is None or tier not in (Tier.NEW, Tier.CALLBACK, Tier.FOLLOW_UP):
        return None
    if tier is Tier.CALLBACK:
        return deadline + policy.callback_operator_wait
    return deadline


def sla_state(tier: Tier | None, deadline: datetime | None, now: datetime, policy: Policy) -> SlaState | None:
    due = sla_deadline(tier, deadline, policy)
    if due is None:
        return None
    return state_against(due, now, policy.sla_warning)


def state_against(due: datetime, now: datetime, warning: timedelta) -> SlaState:
    if now > due:
        return SlaState.BREACHED
    if now >= due - warning:
        return SlaState.AT_RISK
    return SlaState.OK
