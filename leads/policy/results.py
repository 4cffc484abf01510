"""Results back from the dialer: the one place a call result changes its lead (rule: retry.after_result).

- `record_attempt_result` ends the attempt and applies the retry / close / contact rules to the lead,
  releasing the lead's lease. Recording the same attempt twice changes nothing the second time.
- `renew_leases`: a running daemon keeps the leads of its calls in progress leased (every minute or so).
- `release_expired_leases`: leases whose daemon stopped renewing come back: an attempt never dialed is
  given back (not counted), an attempt that was dialed ends with result `unknown` (counted, retried
  after retry_unknown_minutes). The claim calls it first, so expired leases are simply claimable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from kernel.clock import require_aware
from kernel.db.models import CallAttempt, Lead
from kernel.errors import NotFound, UsageError
from leads.attempt import AttemptState, CallResult
from leads.policy.candidates import COLUMNS, facts_from_row
from leads.policy.retry import LeadUpdate, after_result
from leads.policy.spread import local_day_start
from leads.policy.store import current_policy
from leads.policy.values import Policy
from leads.policy.zones import lead_zones

log = logging.getLogger("leads.policy.results")

_L = Lead.__table__.c
_A = CallAttempt.__table__.c
# Built once (their SQL is compiled once): the row locks are FOR UPDATE on PostgreSQL, nothing on SQLite.
_ATTEMPT = (select(_A.id, _A.lead_id, _A.state, _A.result, _A.claimed_at, _A.originated_at, _A.ended_at,
                   _A.daemon_id, _A.attempt_no, _A.dial_allowed_at)
            .where(_A.id == bindparam("attempt_id")).with_for_update())
_LEAD = select(*COLUMNS).where(_L.id == bindparam("lead_id")).with_for_update()
_UPDATE_LEAD = (update(Lead.__table__).where(_L.id == bindparam("lead_id"))
                .values({name: bindparam(f"v_{name}") for name in
                         [*(n for n in LeadUpdate.__dataclass_fields__ if n != "counted"), "lease_owner",
                          "lease_expires_at"]}))
_END_ATTEMPT = (update(CallAttempt.__table__).where(_A.id == bindparam("attempt_id"))
                .values(state=AttemptState.ENDED.value, result=bindparam("v_result"),
                        ended_at=bindparam("v_ended_at")))
_EXPIRED = select(_L.id).where(_L.lease_expires_at <= bindparam("now", type_=_L.lease_expires_at.type)) \
    .order_by(_L.lease_expires_at)


@dataclass(frozen=True)
class RecordedResult:
    attempt_id: int
    lead_id: int
    result: str                       # the result stored on the attempt (the first one recorded)
    counted: bool                     # counted towards max_attempts
    lead_status: str
    next_attempt_at: datetime | None
    close_reason: str | None
    already_recorded: bool = False    # the attempt had ended before: nothing changed


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_result(result: CallResult | str) -> CallResult:
    try:
        return CallResult(result)
    except ValueError:
        raise UsageError(f"unknown call result {result!r}; one of: "
                         + ", ".join(r.value for r in CallResult)) from None


def record_attempt_result(session: Session, attempt_id: int, result: CallResult | str, at: datetime, *,
                          center_zone: str, policy: Policy | None = None) -> RecordedResult:
    """End attempt `attempt_id` with `result` at `at` and update its lead, in the caller's transaction."""
    require_aware(at)
    outcome = parse_result(result)
    connection = session.connection()
    attempt = connection.execute(_ATTEMPT, {"attempt_id": attempt_id}).first()
    if attempt is None:
        raise NotFound(f"no call attempt with id {attempt_id}")
    lead = facts_from_row(connection.execute(_LEAD, {"lead_id": attempt.lead_id}).one())
    if attempt.state == AttemptState.ENDED.value:
        if attempt.result != outcome.value:
            log.warning("attempt.result_ignored attempt_id=%s lead_id=%s stored=%s late=%s", attempt.id,
                        attempt.lead_id, attempt.result, outcome.value)
        return RecordedResult(attempt.id, lead.id, attempt.result or outcome.value, False, lead.status,
                              lead.next_attempt_at, lead.close_reason, already_recorded=True)
    policy = policy or current_policy(session)
    dialed = attempt.originated_at is not None or attempt.state != AttemptState.CLAIMED.value
    center = zone(center_zone)
    own = lead_zones(lead.timezone, lead.phone_e164, policy.unknown_zone_rule, lead.region)
    lead_zone = own.zones[0] if own.known and own.zones else center
    change = after_result(lead, outcome, at, claimed_at=attempt.claimed_at, dialed=dialed, policy=policy,
                          center=center, lead_zone=lead_zone,
                          attempts_today=_attempts_since(connection, lead.id, attempt.id, local_day_start(at, lead_zone)))
    connection.execute(_UPDATE_LEAD, {"lead_id": lead.id, **{f"v_{k}": v for k, v in change.columns().items()}})
    firsts = _report_firsts(lead, change, attempt)
    if firsts:
        connection.execute(update(Lead.__table__).where(_L.id == lead.id).values(**firsts))
    connection.execute(_END_ATTEMPT, {"attempt_id": attempt.id, "v_result": outcome.value,
                                   "v_ended_at": attempt.ended_at or at})
    _expire_loaded(session, (Lead, lead.id), (CallAttempt, attempt.id))
    log.info("attempt %s -> %s -> ended attempt_id=%s lead_id=%s lead %s -> %s next_attempt_at=%s counted=%s",
             attempt.state, outcome.value, attempt.id, lead.id, lead.status, change.status,
             change.next_attempt_at, change.counted)
    return RecordedResult(attempt.id, lead.id, outcome.value, change.counted, change.status,
                          change.next_attempt_at, change.close_reason)


def _report_firsts(lead, change: LeadUpdate, attempt) -> dict:
    """The lead's first dial and first conversation as the reports read them (issue 13): written once each."""
    out = {}
    if lead.first_dialed_at is None and change.first_dialed_at is not None:
        out["first_dial_allowed_at"] = attempt.dial_allowed_at
    if change.contacts_count > lead.contacts_count and lead.contacts_count == 0:
        out["first_contact_attempt_no"] = attempt.attempt_no
    return out


# Counted attempts of a lead since a moment: every attempt but those given back before dialing.
_ATTEMPTS_SINCE = (select(func.count()).select_from(CallAttempt.__table__)
                   .where(_A.lead_id == bindparam("lead_id"), _A.id != bindparam("attempt_id"),
                          _A.claimed_at >= bindparam("since", type_=_A.claimed_at.type),
                          ~and_(_A.result == CallResult.CANCELLED.value, _A.originated_at.is_(None))))


def _attempts_since(connection: Any, lead_id: int, attempt_id: int, since: datetime) -> int:
    return connection.execute(_ATTEMPTS_SINCE, {"lead_id": lead_id, "attempt_id": attempt_id,
                                                "since": since}).scalar_one()


def _expire_loaded(session: Session, *keys: tuple[type, int]) -> None:
    """Rows changed here with SQL statements: the caller's ORM objects for them reload on next access."""
    for model, row_id in keys:
        loaded = session.identity_map.get(identity_key(model, row_id))
        if loaded is not None:
            session.expire(loaded)


def renew_leases(session: Session, daemon_id: str, now: datetime, policy: Policy | None = None) -> int:
    """Extend every lease `daemon_id` holds to now + lease_seconds; returns how many."""
    require_aware(now)
    policy = policy or current_policy(session)
    result = session.execute(update(Lead.__table__).where(_L.lease_expires_at.is_not(None),
                                                          _L.lease_owner == daemon_id)
                             .values(lease_expires_at=now + policy.lease))
    return result.rowcount or 0


def release_expired_leases(session: Session, now: datetime, *, center_zone: str,
                           policy: Policy | None = None, skip_locked: bool = False) -> list[int]:
    """End the attempts of leases that expired before `now` (see the module doc); the leads' ids."""
    require_aware(now)
    query = _EXPIRED.with_for_update(skip_locked=True) if skip_locked else _EXPIRED
    lead_ids = list(session.connection().execute(query, {"now": now}).scalars())
    if not lead_ids:
        return []
    policy = policy or current_policy(session)
    for lead_id in lead_ids:
        open_attempts = session.execute(select(_A.id, _A.state, _A.originated_at, _A.daemon_id).where(
            _A.lead_id == lead_id, _A.state != AttemptState.ENDED.value).order_by(_A.id)).all()
        for attempt in open_attempts:
            never_dialed = attempt.state == AttemptState.CLAIMED.value and attempt.originated_at is None
            result = CallResult.CANCELLED if never_dialed else CallResult.UNKNOWN
            log.warning("lease.expired lead_id=%s attempt_id=%s daemon_id=%s -> %s", lead_id, attempt.id,
                        attempt.daemon_id, result.value)
            record_attempt_result(session, attempt.id, result, now, center_zone=center_zone, policy=policy)
        session.execute(update(Lead.__table__).where(_L.id == lead_id, _L.lease_expires_at <= now)
                        .values(lease_owner=None, lease_expires_at=None))
        _expire_loaded(session, (Lead, lead_id))
    return lead_ids
