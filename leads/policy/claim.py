"""The claim: the next attempt to dial, taken in one atomic database transaction (DESIGN §3, §8).

The dialer daemon calls `claim_next` when an operator is free. In one transaction it:
1. gives back leases that expired (a crashed daemon's claims, see results.py), every few seconds;
2. reads the candidates bucket by bucket in dialing order (SQL: candidates.py), applies the rules
   (why.py) and orders them (selector.py);
3. locks the best one: PostgreSQL `FOR UPDATE SKIP LOCKED` on that row with the claim conditions
   re-checked, so concurrent claimers (several daemons on one database) never take the same lead;
   SQLite: the transaction holds the database write lock from its start (BEGIN IMMEDIATE);
4. leases the lead to the daemon (lease_owner, lease_expires_at = now + lease_seconds) and creates
   the CallAttempt (state `claimed`, attempt_no, tier, daemon_id, claimed_at, planned operator).
   On PostgreSQL steps 3 and 4 are one statement (one round trip).
A lead with an attempt not yet ended is never a candidate: a lead is never dialed twice at once.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Sequence

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead
from leads.attempt import AttemptState
from leads.operators import operator_loads
from leads.phone import mask_phone
from leads.policy.candidates import AsleepLeads, LateLeads, best_candidate, buckets, claimable
from leads.policy.distribution import OperatorChoice, OperatorLoad, choose_operator
from leads.policy.quiet_hours import start_of_day
from leads.policy.results import release_expired_leases, zone
from leads.policy.store import current_policy
from leads.policy.tiers import Tier
from leads.policy.values import Policy
from leads.policy.why import Verdict

log = logging.getLogger("leads.policy.claim")

MAX_SCAN = 1024      # candidates read per bucket and claim, at most (then the next bucket)
RELEASE_EVERY = timedelta(seconds=5)
_MEMORY: "weakref.WeakKeyDictionary[Database, _ClaimerMemory]" = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()
_L = Lead.__table__.c
_A = CallAttempt.__table__.c
_ATTEMPT_COLUMNS = ("lead_id", "attempt_no", "tier", "daemon_id", "pbx", "state", "claimed_at", "operator_id",
                    "operator_interface", "dial_allowed_at")
_NEW_ATTEMPT = insert(CallAttempt.__table__).returning(_A.id)
_LEASE = (update(Lead.__table__).where(_L.id == bindparam("lead_id"))
          .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires")))


@dataclass(frozen=True)
class Claim:
    """One attempt to dial now. The daemon originates it and reports its result by attempt_id."""

    attempt_id: int
    lead_id: int
    phone_e164: str
    extension: str | None              # to dial after the answer (DTMF), if the lead gave one
    attempt_no: int                    # 1 for the first attempt of the lead
    tier: str                          # new, second_attempt, callback, redial, follow_up
    deadline: datetime | None          # the deadline that ordered it (first-call SLA, callback time, ...)
    operator_id: int | None            # the operator to connect (None: the queue decides)
    operator_interface: str | None     # for the channel variable DIALER_OPERATOR, e.g. PJSIP/op1
    operator_reason: str
    ring_timeout_seconds: int          # Originate Timeout
    lease_expires_at: datetime         # renew with renew_leases() while the call is in progress
    policy_version: int
    lead_name: str | None = None
    product: str | None = None


def claim_next(db: Database, *, daemon_id: str, now: datetime, center_zone: str,
               operators: Sequence[str] | None = None, pbx: str | None = None) -> Claim | None:
    """Claim the lead to dial next, or None when nothing is dialable now.

    `operators`: interfaces of the operators free right now (OperatorBoard.available); an empty list
    claims nothing; None claims without choosing an operator (the queue decides).
    """
    require_aware(now)
    if operators is not None and not operators:
        return None
    memory = _memory_of(db)
    with db.write() as session:
        return claim_in(session, daemon_id=daemon_id, now=now, center_zone=center_zone, operators=operators,
                        pbx=pbx, lock_rows=db.is_postgres, asleep=memory.asleep, late=memory.late,
                        release_leases=memory.time_to_release(now))


@dataclass
class _ClaimerMemory:
    """What a process's claims on one database remember between calls (see AsleepLeads, LateLeads)."""

    asleep: AsleepLeads = field(default_factory=AsleepLeads)
    late: LateLeads = field(default_factory=LateLeads)
    released_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def time_to_release(self, now: datetime) -> bool:
        """Expired leases are looked for every RELEASE_EVERY of claim time, not at every claim."""
        with self.lock:
            if self.released_at is None or now < self.released_at or now - self.released_at >= RELEASE_EVERY:
                self.released_at = now
                return True
            return False


def _memory_of(db: Database) -> _ClaimerMemory:
    with _MEMORY_LOCK:
        return _MEMORY.setdefault(db, _ClaimerMemory())


def claim_in(session: Session, *, daemon_id: str, now: datetime, center_zone: str,
             operators: Sequence[str] | None, pbx: str | None, lock_rows: bool,
             asleep: AsleepLeads | None = None, late: LateLeads | None = None,
             release_leases: bool = True) -> Claim | None:
    """The claim inside the caller's write transaction (`lock_rows`: PostgreSQL row locks)."""
    policy = current_policy(session)
    center = zone(center_zone)
    if release_leases:
        release_expired_leases(session, now, center_zone=center_zone, policy=policy, skip_locked=lock_rows)
    loads: list[OperatorLoad] | None = None
    if operators is not None:
        loads = operator_loads(session, operators, since=start_of_day(now.astimezone(center).date(), center))
    available = frozenset(o.id for o in loads) if loads is not None else None
    for bucket in buckets(policy, center, session.get_bind().dialect.name):
        taken: set[int] = set()   # leads another claimer locked meanwhile (PostgreSQL)
        while (verdict := best_candidate(session, bucket, now, policy, center, available, skip=taken,
                                         asleep=asleep, late=late, max_rows=MAX_SCAN)) is not None:
            claim = _lease(session, verdict, loads, policy, daemon_id=daemon_id, now=now, pbx=pbx,
                           lock_row=lock_rows)
            if claim is not None:
                return claim
            taken.add(verdict.lead.id)
    return None


def _lease(session: Session, verdict: Verdict, loads: list[OperatorLoad] | None, policy: Policy, *,
           daemon_id: str, now: datetime, pbx: str | None, lock_row: bool) -> Claim | None:
    """Lease the lead and create its attempt; None when `lock_row` and another claimer holds the lead."""
    lead = verdict.lead
    choice: OperatorChoice | None = None
    if loads:
        choice = choose_operator(loads, policy.distribution, lead.product, preferred_id=verdict.operator_id)
    expires = now + policy.lease
    attempt_no = lead.attempts_count + 1
    connection = session.connection()
    attempt = {
        "lead_id": lead.id, "attempt_no": attempt_no, "tier": verdict.tier.value, "daemon_id": daemon_id,
        "pbx": pbx, "state": AttemptState.CLAIMED.value, "claimed_at": now,
        "operator_id": choice.operator_id if choice else None,
        "operator_interface": choice.interface if choice else None,
        "dial_allowed_at": dial_allowed_at(verdict, policy),
    }
    if lock_row:
        attempt_id = connection.execute(_lock_lease_and_attempt(policy), {
            **{f"new_{name}": value for name, value in attempt.items()}, "chosen_id": lead.id, "now": now,
            "chosen_status": lead.status, "chosen_attempts": lead.attempts_count, "owner": daemon_id,
            "expires": expires,
        }).scalar()
        if attempt_id is None:
            return None
    else:
        attempt_id = connection.execute(_NEW_ATTEMPT, attempt).scalar_one()
        connection.execute(_LEASE, {"lead_id": lead.id, "owner": daemon_id, "expires": expires})
    log.info("lead.claimed lead_id=%s attempt_id=%s attempt_no=%s tier=%s daemon_id=%s operator=%s phone=%s",
             lead.id, attempt_id, attempt_no, verdict.tier.value, daemon_id,
             choice.interface if choice else "-", mask_phone(lead.phone_e164))
    return Claim(attempt_id=attempt_id, lead_id=lead.id, phone_e164=lead.phone_e164, extension=lead.phone_ext,
                 attempt_no=attempt_no, tier=verdict.tier.value, deadline=verdict.deadline,
                 operator_id=choice.operator_id if choice else None,
                 operator_interface=choice.interface if choice else None,
                 operator_reason=choice.reason if choice else "the queue decides",
                 ring_timeout_seconds=policy.ring_timeout_seconds, lease_expires_at=expires,
                 policy_version=policy.version, lead_name=lead.name, product=lead.product)


def dial_allowed_at(verdict: Verdict, policy: Policy) -> datetime | None:
    """What the report measures this call's promptness from: a first call from the end of quiet hours (its
    deadline less the first-call delay), a callback from the promised time; other retries: None."""
    if verdict.deadline is None:
        return None
    if verdict.tier is Tier.NEW:
        return verdict.deadline - policy.first_call_delay
    if verdict.tier is Tier.CALLBACK:
        return verdict.deadline
    return None


@lru_cache(maxsize=16)
def _lock_lease_and_attempt(policy: Policy):
    """PostgreSQL, in one round trip: lock the chosen lead unless another claimer holds it (FOR UPDATE
    SKIP LOCKED), re-checking that it is unchanged and still claimable; lease it; create its attempt.

    Candidates are read without locks; only the chosen row is locked, and the re-check sees the latest
    committed row, so two claimers never take the same lead. No row back: another claimer has it.
    """
    # No parameter may be named like a column of leads: SQLAlchemy would add it to the UPDATE's SET.
    locked = (select(_L.id).where(_L.id == bindparam("chosen_id"), _L.status == bindparam("chosen_status"),
                                  _L.attempts_count == bindparam("chosen_attempts"), *claimable(policy))
              .with_for_update(skip_locked=True, of=Lead.__table__).cte("locked"))
    leased = (update(Lead.__table__).where(_L.id == locked.c.id)
              .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires"))
              .returning(_L.id).cte("leased"))
    values = [leased.c.id if name == "lead_id" else bindparam(f"new_{name}", type_=_A[name].type)
              for name in _ATTEMPT_COLUMNS]
    return (insert(CallAttempt.__table__).from_select(list(_ATTEMPT_COLUMNS), select(*values))
            .returning(_A.id))
