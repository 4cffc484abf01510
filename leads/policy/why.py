"""Is a lead dialable at a given moment, and if not, every rule that blocks it (`dialer why`).

`evaluate` is the one composition of the rules; the selector (and so the claim) keeps exactly the
leads it finds no block for. Each block names its rule, says why in words, and, when the block ends
by itself, until when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import AbstractSet
from zoneinfo import ZoneInfo

from leads.lead import LeadStatus
from leads.phone import mask_phone
from leads.policy import callbacks
from leads.policy.cadence import contact_window
from leads.policy.facts import LeadFacts
from leads.policy.quiet_hours import first_allowed, in_quiet_hours, quiet_until
from leads.policy.sla import SlaState, sla_state
from leads.policy.tiers import Tier, deadline, rank, rank_label, tier_of
from leads.policy.values import Policy
from leads.policy.zones import LeadZones, ZoneSource, lead_zones

_MAX_LOOKAHEAD_STEPS = 12
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


class Rule(StrEnum):
    CLOSED = "closed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    DNC = "dnc"
    NO_PHONE = "no_phone"
    IN_PROGRESS = "in_progress"
    LEASED = "leased"
    MAX_ATTEMPTS = "max_attempts"
    RETRY_DELAY = "retry_delay"
    CALLBACK_NOT_DUE = "callback_not_due"
    CALLBACK_OPERATOR = "callback_operator"
    CADENCE = "cadence"
    QUIET_HOURS_CENTER = "quiet_hours_center"
    QUIET_HOURS_LEAD = "quiet_hours_lead"
    NO_ALLOWED_TIME = "no_allowed_time"


@dataclass(frozen=True)
class Block:
    rule: Rule
    message: str
    until: datetime | None = None   # the block ends by itself then; None: it ends only when someone acts


@dataclass(frozen=True)
class Verdict:
    lead: LeadFacts
    at: datetime
    tier: Tier | None
    rank: tuple[int, ...]
    deadline: datetime | None
    sla: SlaState | None
    zones: LeadZones
    blocks: tuple[Block, ...]
    operator_id: int | None = None   # a callback's agreeing operator, to dial for when available
    policy: Policy | None = None

    @property
    def rank_label(self) -> str:
        return "-" if self.tier is None or self.policy is None else rank_label(self.tier, self.lead, self.policy)

    @property
    def dialable(self) -> bool:
        return not self.blocks

    def order_key(self) -> tuple:
        """Dialing order: rank, then the earliest deadline, then the earliest received, then the lowest id."""
        return (self.rank, self.deadline or _NEVER, self.lead.received_at, self.lead.id)


def evaluate(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo,
             available_operator_ids: AbstractSet[int] | None = None) -> Verdict:
    """Every rule applied to `lead` at `now`. `available_operator_ids`: None when unknown (views)."""
    zones = lead_zones(lead.timezone, lead.phone_e164, policy.unknown_zone_rule, lead.region)
    tier = tier_of(lead)
    blocks: list[Block] = []
    blocks += _status_blocks(lead)
    blocks += _dialing_blocks(lead, now, policy, center)
    routing = callbacks.CallbackRouting(None, None)
    if tier is Tier.CALLBACK:
        callback_blocks, routing = _callback_blocks(lead, now, policy, center, available_operator_ids)
        blocks += callback_blocks
    else:
        blocks += _retry_and_cadence_blocks(lead, now, policy, center)
    blocks += _quiet_blocks(lead, now, policy, center, zones)
    if tier is None:
        return Verdict(lead, now, None, (99,), None, None, zones, tuple(blocks), None, policy)
    when = deadline(tier, lead, policy, center, zones.zones)
    return Verdict(lead, now, tier, rank(tier, lead, policy), when, sla_state(tier, when, now, policy), zones,
                   tuple(blocks), routing.operator_id, policy)


def dialable_from(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo) -> datetime | None:
    """The first moment from `now` the lead becomes dialable by itself; None if someone must act first."""
    moment = now
    for _ in range(_MAX_LOOKAHEAD_STEPS):
        verdict = evaluate(lead, moment, policy, center)
        if verdict.dialable:
            return moment
        ends = [block.until for block in verdict.blocks]
        if any(end is None for end in ends):
            return None
        moment = max(ends)
    return None


def _status_blocks(lead: LeadFacts) -> list[Block]:
    status = lead.status
    if status == LeadStatus.CLOSED:
        return [Block(Rule.CLOSED, f"closed ({lead.close_reason or 'no reason recorded'})")]
    if status == LeadStatus.INVALID:
        return [Block(Rule.INVALID, f"invalid ({lead.invalid_reason or 'no reason recorded'})")]
    if status == LeadStatus.DUPLICATE:
        return [Block(Rule.DUPLICATE, f"duplicate of lead {lead.duplicate_of_id}")]
    if status == LeadStatus.DNC:
        return [Block(Rule.DNC, "the number was on the do-not-call list when the lead arrived")]
    if status not in (LeadStatus.NEW, LeadStatus.RETRY, LeadStatus.CALLBACK):
        return [Block(Rule.CLOSED, f"status {status!r} is not one the dialer dials")]
    return []


def _dialing_blocks(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo) -> list[Block]:
    blocks = []
    if not lead.phone_e164:
        blocks.append(Block(Rule.NO_PHONE, "no phone number"))
    if lead.on_dnc:
        blocks.append(Block(Rule.DNC, f"{mask_phone(lead.phone_e164)} is on the do-not-call list"))
    if lead.attempt_in_progress:
        blocks.append(Block(Rule.IN_PROGRESS, "an attempt of this lead is still in progress"))
    if lead.lease_owner and lead.lease_expires_at is not None and lead.lease_expires_at > now:
        blocks.append(Block(Rule.LEASED, f"claimed by daemon {lead.lease_owner} until "
                                         f"{_local(lead.lease_expires_at, center)}", lead.lease_expires_at))
    if lead.attempts_count >= policy.max_attempts:
        blocks.append(Block(Rule.MAX_ATTEMPTS, f"max attempts reached ({lead.attempts_count} of "
                                               f"{policy.max_attempts})"))
    return blocks


def explain_retry_plan(lead: LeadFacts, policy: Policy) -> str:
    """Where the lead stands in the retry plan (spread.py), in words."""
    parts = ", ".join(policy.retry_day_parts)
    return (f"retry plan: attempt {lead.attempts_count + 1} of {policy.max_attempts}, at most "
            f"{policy.max_attempts_per_day} a day, after no answer the next part of the customer's day ({parts})")


def _retry_block(lead: LeadFacts, now: datetime, center: ZoneInfo, policy: Policy | None = None) -> list[Block]:
    if lead.next_attempt_at is None and lead.status == LeadStatus.RETRY:
        return [Block(Rule.RETRY_DELAY, "a retry without a scheduled time (next_attempt_at is empty): "
                                        "the dialer does not pick it; record the attempt's result")]
    if lead.next_attempt_at is None or lead.next_attempt_at <= now:
        return []
    after = f"after {lead.last_result}" if lead.last_result else "as scheduled"
    plan = f"; {explain_retry_plan(lead, policy)}" if policy is not None and lead.status == LeadStatus.RETRY else ""
    return [Block(Rule.RETRY_DELAY, f"next attempt not before {_local(lead.next_attempt_at, center)} ({after}{plan})",
                  lead.next_attempt_at)]


def _retry_and_cadence_blocks(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo) -> list[Block]:
    blocks = _retry_block(lead, now, center, policy)
    window = contact_window(lead, policy, center)
    if window.earliest is not None and now < window.earliest:
        blocks.append(Block(Rule.CADENCE, f"cadence: contact {lead.contacts_count} was at "
                                          f"{_local(lead.last_contact_at, center)}; the next contact not "
                                          f"before {_local(window.earliest, center)}", window.earliest))
    return blocks


def _callback_blocks(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo,
                     available: AbstractSet[int] | None) -> tuple[list[Block], callbacks.CallbackRouting]:
    routing = callbacks.CallbackRouting(None, None)
    if lead.callback_at is None:
        return [Block(Rule.CALLBACK_NOT_DUE, "callback without an agreed time")], routing
    if not callbacks.is_due(lead, now):
        return [Block(Rule.CALLBACK_NOT_DUE, f"callback agreed for {_local(lead.callback_at, center)}",
                      lead.callback_at)], routing
    blocks = _retry_block(lead, now, center) if callbacks.attempted_for_callback(lead) else []
    routing = callbacks.route(lead, now, policy, available)
    if routing.wait_until is not None:
        blocks.append(Block(Rule.CALLBACK_OPERATOR, f"waiting for operator {routing.operator_id}, who agreed "
                                                    f"the callback, until {_local(routing.wait_until, center)}",
                            routing.wait_until))
    return blocks, routing


def _quiet_blocks(lead: LeadFacts, now: datetime, policy: Policy, center: ZoneInfo,
                  zones: LeadZones) -> list[Block]:
    blocks = []
    if in_quiet_hours(now, center, policy):
        until = quiet_until(now, center, policy)
        blocks.append(Block(Rule.QUIET_HOURS_CENTER,
                            f"quiet hours in the call center ({center.key}, {_clock(now, center)} there) until "
                            f"{_clock(until, center)}", until))
    quiet = [zone for zone in zones.zones if in_quiet_hours(now, zone, policy)]
    if quiet:
        until = max(quiet_until(now, zone, policy) for zone in quiet)
        if zones.source == ZoneSource.STRICT:
            shown = ", ".join(zone.key for zone in quiet)
            blocks.append(Block(Rule.QUIET_HOURS_LEAD,
                                f"quiet hours in {len(quiet)} of the {len(zones.names)} zones the number may be "
                                f"in ({shown}; unknown_zone_rule=strict) until {_local(until, center)}", until))
        elif len(zones.names) > 1:
            shown = ", ".join(zone.key for zone in quiet)
            blocks.append(Block(Rule.QUIET_HOURS_LEAD,
                                f"quiet hours in {len(quiet)} of the {len(zones.names)} zones of the lead's region "
                                f"({shown}; {zones.source_words}) until {_local(until, center)}", until))
        else:
            zone = quiet[0]
            blocks.append(Block(Rule.QUIET_HOURS_LEAD,
                                f"quiet hours in the lead's zone {zone.key} ({zones.source_words}; "
                                f"{_clock(now, zone)} there) until {_clock(until, zone)} local "
                                f"({_local(until, center)})", until))
    if blocks and zones.zones and first_allowed(now, (center, *zones.zones), policy) is None:
        blocks.append(Block(Rule.NO_ALLOWED_TIME, "no time of day is outside quiet hours in the center and in "
                                                  "every zone the number may be in"))
    return blocks


def _clock(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%H:%M")


def _local(when: datetime | None, zone: ZoneInfo) -> str:
    return "-" if when is None else when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
