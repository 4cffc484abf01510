"""The cheap half of selection, in SQL: the leads that may be dialable now, bucket by bucket.

A bucket is one rank of the order (a tier in variant 1, an attempt count in variant 2). It reads its
leads through sources: index-friendly queries, each ordered by the deadline of its leads or by a
stand-in that bounds the deadline from below (new leads by received_at: the deadline is at least the
center-only first-call deadline of received_at). Every source also applies the filters shared by all
candidates: a phone, fewer attempts than max_attempts, lease free or expired, not on the do-not-call
list (NOT EXISTS), no attempt in progress (NOT EXISTS). The SQL filters are a superset of the rules,
never stricter.

Python then applies the exact rules (why.evaluate: quiet hours per zone, cadence, callbacks) to small
pages, and stops reading as soon as no unread lead can have an earlier deadline than the best found
(`best_candidate`): the claim reads a handful of rows on a table of millions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import AbstractSet, Any, Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, all_, bindparam, exists, literal, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from kernel.db.models import CallAttempt, DncEntry, Lead
from leads.attempt import AttemptState
from leads.lead import LeadStatus
from leads.policy.facts import LEAD_COLUMNS, LeadFacts
from leads.policy.quiet_hours import start_of_day
from leads.policy.tiers import Tier, first_call_deadline
from leads.policy.values import Policy
from leads.policy.why import Rule, Verdict, evaluate

_T = Lead.__table__.c
COLUMNS = [_T[name] for name in LEAD_COLUMNS]

# A lower bound of the deadline of a row and of every row after it in its source's order (None: none).
Bound = Callable[[LeadFacts], "datetime | None"]


@dataclass(frozen=True)
class Source:
    where: tuple[ColumnElement[bool], ...]
    order_by: tuple[Any, ...]
    bound: Bound
    new_leads: bool = False   # reads leads never dialed (status new), by arrival


@dataclass(frozen=True)
class Bucket:
    rank: tuple[int, ...]
    sources: tuple[Source, ...]
    statement: Any = None   # one page of every source (bind parameters now, page, offset)


# --- the filters --------------------------------------------------------------------------------
# Statements are built once per policy with bind parameters (`now`, `page`, `offset`) and reused:
# SQLAlchemy then compiles each once and finds it in its cache by a key memoized on the statement.

NOW = bindparam("now", type_=Lead.__table__.c.received_at.type)


def on_dnc() -> ColumnElement[bool]:
    return exists().where(DncEntry.__table__.c.phone_e164 == _T.phone_e164)


def attempt_in_progress() -> ColumnElement[bool]:
    attempts = CallAttempt.__table__.c
    return exists().where(attempts.lead_id == _T.id, attempts.state != AttemptState.ENDED.value)


def lease_free(now: Any = NOW) -> ColumnElement[bool]:
    return or_(_T.lease_expires_at.is_(None), _T.lease_expires_at <= now)


def claimable(policy: Policy) -> tuple[ColumnElement[bool], ...]:
    """The filters every candidate passes, whatever its tier (at the bind parameter `now`)."""
    return (_T.phone_e164.is_not(None), _T.attempts_count < policy.max_attempts, lease_free(),
            ~on_dnc(), ~attempt_in_progress())


# --- the sources ----------------------------------------------------------------------------------

def _new(policy: Policy, center: ZoneInfo) -> Source:
    def bound(lead: LeadFacts) -> datetime | None:
        return first_call_deadline(lead.received_at, policy, center, ())
    return Source((_T.status == LeadStatus.NEW.value, or_(_T.next_attempt_at.is_(None), _T.next_attempt_at <= NOW)),
                  (_T.received_at, _T.id), bound, new_leads=True)


def _no_contact_retries(*where: ColumnElement[bool]) -> Source:
    """Retries without a conversation yet whose delay is over, by next_attempt_at (their deadline).

    A retry lead always has a next_attempt_at (record_attempt_result sets it); one without is not
    read here, and `dialer why` says so.
    """
    return Source((_T.status == LeadStatus.RETRY.value, _T.contacts_count == 0, *where, _T.next_attempt_at <= NOW),
                  (_T.next_attempt_at, _T.id), lambda lead: lead.next_attempt_at)


def _follow_ups(policy: Policy, center: ZoneInfo, *where: ColumnElement[bool]) -> Source:
    """Retries after a conversation, by last_contact_at: the cadence deadline grows with it."""
    def bound(lead: LeadFacts) -> datetime | None:
        last = lead.last_contact_at
        if last is None:
            return None
        end_of_second_day = start_of_day(last.astimezone(center).date()
                                         + timedelta(days=policy.cadence_second_contact_days + 1), center)
        return min(end_of_second_day, last + timedelta(days=policy.cadence_max_gap_days))
    # The constants are written into the SQL (not bound) so that PostgreSQL and SQLite can prove the
    # predicate of the follow-ups' partial index (migration 0018_scale), in generic plans too.
    return Source((_T.status == literal(LeadStatus.RETRY.value, literal_execute=True),
                   _T.contacts_count > literal(0, literal_execute=True), *where, _T.next_attempt_at <= NOW),
                  (_T.last_contact_at, _T.id), bound)


def _callbacks(*where: ColumnElement[bool]) -> Source:
    # A retry delay holds a callback back only when it comes from an attempt made for this callback.
    delay_over = or_(_T.next_attempt_at.is_(None), _T.next_attempt_at <= NOW, _T.last_attempt_at.is_(None),
                     _T.last_attempt_at < _T.callback_at)
    # The status written into the SQL: the callbacks' partial index (migration 0018_scale) needs it.
    return Source((_T.status == literal(LeadStatus.CALLBACK.value, literal_execute=True), *where,
                   _T.callback_at <= NOW, delay_over),
                  (_T.callback_at, _T.id), lambda lead: lead.callback_at)


def tier_sources(tier: Tier, policy: Policy, center: ZoneInfo) -> tuple[Source, ...]:
    if tier is Tier.NEW:
        return (_new(policy, center),)
    if tier is Tier.SECOND_ATTEMPT:
        return (_no_contact_retries(_T.attempts_count == 1),)
    if tier is Tier.REDIAL:
        return (_no_contact_retries(_T.attempts_count != 1),)
    if tier is Tier.CALLBACK:
        return (_callbacks(),)
    return (_follow_ups(policy, center),)


def buckets(policy: Policy, center: ZoneInfo, dialect: str = "sqlite") -> list[Bucket]:
    """The buckets in dialing order, their statements built (once per policy, center zone and dialect)."""
    return list(_buckets(policy, center.key, dialect))


@lru_cache(maxsize=16)
def _buckets(policy: Policy, center_key: str, dialect: str) -> tuple[Bucket, ...]:
    center = ZoneInfo(center_key)
    if policy.tier_variant == 2:
        plan = [((0, 0), (_new(policy, center),))]
        for count in range(policy.max_attempts):
            same = _T.attempts_count == count
            plan.append(((1, count), (_no_contact_retries(same), _follow_ups(policy, center, same),
                                      _callbacks(same))))
    else:
        plan = [((policy.tier_order.index(name),), tier_sources(Tier(name), policy, center))
                for name in policy.tier_order]
    return tuple(Bucket(rank, sources, _statement(sources, policy, dialect)) for rank, sources in plan)


def _statement(sources: Sequence[Source], policy: Policy, dialect: str) -> Any:
    if dialect == "postgresql":
        # One array parameter: the SQL text stays the same whatever the list, so PostgreSQL keeps the
        # prepared statement and its plan (an IN list would make a new text, planned anew, per length).
        left_out = _T.id != all_(bindparam("left_out", type_=ARRAY(BigInteger())))
    else:
        left_out = _T.id.not_in(bindparam("left_out", expanding=True))
    queries = [select(*COLUMNS, literal(n).label("source_no")).where(*claimable(policy), *source.where, left_out)
               .order_by(*source.order_by).limit(bindparam("page")).offset(bindparam("offset"))
               for n, source in enumerate(sources)]
    return queries[0] if len(queries) == 1 else union_all(*[select(*q.subquery().c) for q in queries])


# --- reading ---------------------------------------------------------------------------------------

FIRST_PAGE = 8
LAST_PAGE = 256
LOOKAHEAD = 16   # rows looked at after the first dialable one, at most
LOOKAHEAD_REMEMBERING = 256   # the same when late leads are remembered: each is then read about once


def read_page(session: Session, bucket: Bucket, now: datetime, offset: int, page: int,
              left_out: Sequence[int] = ()) -> list[tuple[list[LeadFacts], bool]]:
    """Rows offset..offset+page of each source of the bucket (one statement): (rows, more may follow)."""
    per_source: list[list[LeadFacts]] = [[] for _ in bucket.sources]
    values = {"now": now, "page": page, "offset": offset, "left_out": list(left_out)}
    for row in session.connection().execute(bucket.statement, values):
        per_source[row.source_no].append(facts_from_row(row))
    return [(rows, len(rows) >= page) for rows in per_source]


def best_candidate(session: Session, bucket: Bucket, now: datetime, policy: Policy, center: ZoneInfo,
                   available_operator_ids: AbstractSet[int] | None, *, skip: AbstractSet[int] = frozenset(),
                   asleep: AsleepLeads | None = None, late: LateLeads | None = None,
                   max_rows: int = 1024) -> Verdict | None:
    """The dialable lead of this bucket that goes first (leads in `skip` left out), reading little.

    Pages grow from FIRST_PAGE; a row whose deadline bound is not before the best deadline found is
    not even evaluated, and reading stops once every source's next row is bounded that way, or once a
    source had LOOKAHEAD rows evaluated after a dialable lead was found (the bound of new leads is their
    center-only deadline, so a lead whose own zone delays its deadline, say a Kaliningrad lead that
    arrived at night, is compared with the next LOOKAHEAD leads that might go before it). Leads found in
    quiet hours in their own zone are remembered in `asleep` and left out in SQL until it ends; leads
    whose own deadline is later than their place in the SQL order are remembered in `late` and left out
    until the best lead read has a deadline they could beat (then they are read again). With `late`,
    each such lead is read about once, so the look-ahead is LOOKAHEAD_REMEMBERING rows.
    """
    if late is None or not all(source.new_leads for source in bucket.sources):
        # Only new leads are remembered as late: their deadline never changes.
        return _best_read(session, bucket, now, policy, center, available_operator_ids, skip=skip,
                          asleep=asleep, late=None, max_rows=max_rows)
    late_ids = late.ids(policy, center)
    best = _best_read(session, bucket, now, policy, center, available_operator_ids, skip=set(skip) | late_ids,
                      asleep=asleep, late=late, max_rows=max_rows)
    back = late.could_beat(best, late_ids)
    if not back:
        return best
    # Read again with the leads that could beat `best`. Every lead still remembered is due after it:
    # it was left out for that, or it was noted in this read as dialable and not first.
    late.forget(back)
    return _best_read(session, bucket, now, policy, center, available_operator_ids,
                      skip=set(skip) | late.ids(policy, center), asleep=asleep, late=late, max_rows=max_rows)


def _best_read(session: Session, bucket: Bucket, now: datetime, policy: Policy, center: ZoneInfo,
               available_operator_ids: AbstractSet[int] | None, *, skip: AbstractSet[int],
               asleep: AsleepLeads | None, late: LateLeads | None, max_rows: int) -> Verdict | None:
    best: Verdict | None = None
    looked_after_best = [0] * len(bucket.sources)   # rows evaluated per source once a best was known
    lookahead = LOOKAHEAD if late is None else LOOKAHEAD_REMEMBERING
    offset, page = 0, FIRST_PAGE
    left_out = sorted(set(skip) | (asleep.ids(policy, center, now) if asleep else set()))
    late_found: list[Verdict] = []
    while offset < max_rows:
        pages = read_page(session, bucket, now, offset, page, left_out)
        for n, (source, (rows, _)) in enumerate(zip(bucket.sources, pages)):
            for lead in rows:
                bound = source.bound(lead)
                if _cannot_beat(bound, lead, best):
                    continue
                if best is not None:
                    looked_after_best[n] += 1
                    if looked_after_best[n] > lookahead:
                        break
                verdict = evaluate(lead, now, policy, center, available_operator_ids)
                if asleep is not None:
                    asleep.note(verdict, policy, center)
                if late is not None and verdict.dialable and verdict.tier is Tier.NEW and bound is not None \
                        and verdict.deadline is not None and verdict.deadline > bound:
                    late_found.append(verdict)
                if verdict.dialable and verdict.rank == bucket.rank and (
                        best is None or verdict.order_key() < best.order_key()):
                    best = verdict
        unfinished = [(source, rows) for n, (source, (rows, more)) in enumerate(zip(bucket.sources, pages))
                      if more and looked_after_best[n] <= lookahead]
        if not unfinished or all(_rest_cannot_beat(source, rows[-1], best) for source, rows in unfinished):
            break
        offset += page
        page = min(page * 2, LAST_PAGE)
    if late is not None:
        late.note([v for v in late_found if best is None or v.lead.id != best.lead.id], policy, center)
    return best


def _cannot_beat(bound: datetime | None, lead: LeadFacts, best: Verdict | None) -> bool:
    """This lead cannot go before `best`: its deadline is later, or equal and it loses the tie-break."""
    if best is None or best.deadline is None or bound is None:
        return False
    return bound > best.deadline or (bound == best.deadline and
                                     (lead.received_at, lead.id) > (best.lead.received_at, best.lead.id))


def _rest_cannot_beat(source: Source, last: LeadFacts, best: Verdict | None) -> bool:
    """No unread row of `source` (all after `last` in its order) has an earlier deadline than `best`.

    At an equal deadline the unread rows are not read: among leads with the very same deadline the tie
    goes to the earliest received of those read (many follow-ups share the midnight of a cadence day).
    """
    if best is None or best.deadline is None:
        return False
    bound = source.bound(last)
    return bound is not None and bound >= best.deadline


class AsleepLeads:
    """Leads in quiet hours in their own zone, and until when: a claimer leaves them out of its reads.

    Far-east leads that arrived in the Moscow afternoon wait at the head of the new-lead order until
    their morning; without this every claim would read and evaluate them again. Only the quiet-hours
    block is remembered: it depends on the lead's number and zone (never changed after intake), the
    policy's quiet hours and the time, so leaving the lead out until then can only be right. Kept per
    Database (one per daemon process), bounded in size.
    """

    MAX = 2000

    def __init__(self) -> None:
        self._until: dict[int, datetime] = {}
        self._key: tuple | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _key_of(policy: Policy, center: ZoneInfo) -> tuple:
        return (policy.quiet_start, policy.quiet_end, policy.unknown_zone_rule, center.key)

    def ids(self, policy: Policy, center: ZoneInfo, now: datetime) -> set[int]:
        with self._lock:
            if self._key != self._key_of(policy, center):
                self._key, self._until = self._key_of(policy, center), {}
            self._until = {i: until for i, until in self._until.items() if until > now}
            return set(self._until)

    def note(self, verdict: Verdict, policy: Policy, center: ZoneInfo) -> None:
        ends = [b.until for b in verdict.blocks if b.rule is Rule.QUIET_HOURS_LEAD and b.until is not None]
        if not ends:
            return
        with self._lock:
            if self._key == self._key_of(policy, center) and len(self._until) < self.MAX:
                self._until[verdict.lead.id] = max(ends)


class LateLeads:
    """Leads whose own deadline is later than their place in the SQL order, and that deadline.

    New leads are read by arrival, bounded by their center-only deadline; a lead whose own zone moves
    its deadline later (a Kaliningrad lead that arrived at night is due at 10:15 in Kaliningrad, 11:15
    in Moscow) waits at the head of that order while leads due before it are dialed, and every claim
    would read it again. Remembered here, it is left out of the reads until the best lead a claim
    finds is not due before it; then it is read again with the others. Its deadline depends only on
    its arrival, its number and zone, and the policy's quiet hours and first-call minutes (the key),
    so leaving it out meanwhile can only be right. Kept per Database, bounded in size.
    """

    MAX = 20000

    def __init__(self) -> None:
        self._deadline: dict[int, tuple[datetime, datetime, int]] = {}   # id: deadline, received_at, id
        self._key: tuple | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _key_of(policy: Policy, center: ZoneInfo) -> tuple:
        return (policy.quiet_start, policy.quiet_end, policy.unknown_zone_rule, policy.first_call_minutes,
                center.key)

    def ids(self, policy: Policy, center: ZoneInfo) -> set[int]:
        with self._lock:
            if self._key != self._key_of(policy, center):
                self._key, self._deadline = self._key_of(policy, center), {}
            return set(self._deadline)

    def could_beat(self, best: Verdict | None, among: AbstractSet[int]) -> set[int]:
        """The remembered leads (of `among`) that could go before `best`: all of them if there is none."""
        with self._lock:
            if best is None or best.deadline is None:
                return {i for i in among if i in self._deadline}
            mark = (best.deadline, best.lead.received_at, best.lead.id)
            return {i for i in among if i in self._deadline and self._deadline[i] < mark}

    def forget(self, ids: AbstractSet[int]) -> None:
        with self._lock:
            for i in ids:
                self._deadline.pop(i, None)

    def note(self, verdicts: Sequence[Verdict], policy: Policy, center: ZoneInfo) -> None:
        with self._lock:
            if self._key != self._key_of(policy, center):
                return
            for verdict in verdicts:
                if len(self._deadline) >= self.MAX:
                    return
                lead = verdict.lead
                self._deadline[lead.id] = (verdict.deadline, lead.received_at, lead.id)


def bucket_leads(session: Session, bucket: Bucket, now: datetime, max_rows: int) -> list[LeadFacts]:
    """Up to about `max_rows` candidates of the bucket, for views that order them all."""
    leads: list[LeadFacts] = []
    offset, page = 0, LAST_PAGE
    while offset < max_rows:
        pages = read_page(session, bucket, now, offset, page)
        for rows, _ in pages:
            leads += rows
        if not any(more for _, more in pages):
            break
        offset += page
    return leads


def facts_from_row(row: Any, on_dnc_now: bool = False, in_progress: bool = False) -> LeadFacts:
    mapping = row._mapping
    return LeadFacts(**{name: mapping[name] for name in LEAD_COLUMNS}, on_dnc=bool(on_dnc_now),
                     attempt_in_progress=bool(in_progress))


def facts_from_lead(lead: Lead, on_dnc_now: bool = False, in_progress: bool = False) -> LeadFacts:
    return LeadFacts(**{name: getattr(lead, name) for name in LEAD_COLUMNS}, on_dnc=on_dnc_now,
                     attempt_in_progress=in_progress)


def read_leads(session: Session, where: Sequence[ColumnElement[bool]], order_by: Sequence[Any] = (_T.id,),
               limit: int | None = None) -> list[LeadFacts]:
    """Leads with their two table facts (on the DNC list now, an attempt in progress), for views."""
    query = (select(*COLUMNS, on_dnc().label("on_dnc_now"), attempt_in_progress().label("in_progress"))
             .where(*where).order_by(*order_by))
    if limit is not None:
        query = query.limit(limit)
    return [facts_from_row(row, row.on_dnc_now, row.in_progress) for row in session.execute(query)]
