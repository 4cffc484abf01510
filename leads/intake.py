"""The one intake function every source calls: normalize, check DNC, dedup, store every lead.

Order of the checks: invalid (cannot be called) > dnc (never dial) > duplicate > new.
The dedup decision is made under a lock on the lead's phone (SQLite: the database write lock taken
by BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock per phone), so two identical leads
arriving at the same moment give one `new` and one `duplicate`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import Lead
from kernel.errors import InvalidPhone
from leads.dedup import EarlierLead, dedup
from leads.dnc import numbers_on_dnc
from leads.lead import LeadStatus
from leads.phone import Phone, mask_phone, normalize_phone
from leads.policy.store import current_policy

log = logging.getLogger("leads.intake")

# Longest value of each text field; sources refuse longer ones with a clear message.
FIELD_LIMITS = {
    "phone": 100, "name": 200, "order_number": 100, "product": 200, "comment": 10_000,
    "preferred_time": 100, "timezone": 64, "region": 100, "source": 64, "source_item_id": 200,
}
LEAD_FIELDS = ("phone", "name", "order_number", "product", "comment", "preferred_time", "timezone", "region")


@dataclass(frozen=True)
class LeadIn:
    """A lead as a source hands it over, before any rule has looked at it."""

    phone: str | None
    name: str | None = None
    order_number: str | None = None
    product: str | None = None
    comment: str | None = None
    preferred_time: str | None = None
    timezone: str | None = None
    region: str | None = None
    extra: dict[str, Any] | None = None
    source: str = "api"
    source_item_id: str | None = None


@dataclass(frozen=True)
class IntakeOutcome:
    lead_id: int
    status: LeadStatus
    reason: str | None = None
    duplicate_of: int | None = None
    phone: str | None = None
    already_stored: bool = False   # a feed item that was stored before (exactly-once)


@dataclass
class IntakeCounts:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, outcomes: Sequence[IntakeOutcome]) -> None:
        for outcome in outcomes:
            self.counts["already_stored" if outcome.already_stored else outcome.status.value] += 1


def field_problems(lead: LeadIn) -> list[str]:
    """What makes this input malformed (not merely uncallable): over-long fields, an unknown zone."""
    problems = []
    for name, limit in FIELD_LIMITS.items():
        value = getattr(lead, name)
        if value is not None and len(value) > limit:
            problems.append(f"{name} is longer than {limit} characters")
    if lead.timezone:
        try:
            ZoneInfo(lead.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder such as "Europe"
            problems.append(f"timezone {lead.timezone!r} is not an IANA time zone such as Asia/Vladivostok")
    return problems


class Intake:
    """Stores leads. `submit` is the single entry for the webhook, CSV import and feeds."""

    def __init__(self, db: Database, *, default_region: str = "RU",
                 dedup_window: timedelta | None = None,
                 on_new_leads: Callable[[list[int]], None] | None = None) -> None:
        self.db = db
        self.default_region = default_region
        self.dedup_window = dedup_window   # None: the policy's dedup_window_hours, read in each transaction
        self.on_new_leads = on_new_leads

    def submit(self, leads: Sequence[LeadIn], received_at: datetime, *, fields_checked: bool = False,
               phones: Sequence[Phone | InvalidPhone] | None = None) -> list[IntakeOutcome]:
        """Store every lead, in order, as one transaction; returns one outcome per lead.

        `fields_checked`: the source has refused every lead with field_problems already (CSV import).
        `phones`: each lead's phone normalized already with this intake's default region (the CSV
        import does it in its reading process).
        """
        require_aware(received_at)
        for lead in () if fields_checked else leads:
            problems = field_problems(lead)
            if problems:
                raise ValueError("; ".join(problems))
        if phones is None or len(phones) != len(leads):
            phones = [self._normalize(lead) for lead in leads]
        with self.db.write() as session:
            outcomes = self._store(session, leads, phones, received_at)
        new_ids = [o.lead_id for o in outcomes if o.status is LeadStatus.NEW and not o.already_stored]
        if new_ids and self.on_new_leads is not None:
            self.on_new_leads(new_ids)
        return outcomes

    def _normalize(self, lead: LeadIn) -> Phone | InvalidPhone:
        try:
            return normalize_phone(lead.phone, self.default_region)
        except InvalidPhone as exc:
            return exc

    def _store(self, session: Session, leads: Sequence[LeadIn], phones: Sequence[Phone | InvalidPhone],
               received_at: datetime) -> list[IntakeOutcome]:
        known_phones = sorted({p.e164 for p in phones if isinstance(p, Phone)})
        if self.db.is_postgres and known_phones:
            _lock_phones(session, known_phones)
        already = _already_stored(session, leads)
        on_dnc = _dnc_numbers(session, known_phones)
        earlier = _earlier_leads(session, known_phones)
        ids = iter(_allocate_ids(session, self.db, len(leads)))
        window = self.dedup_window if self.dedup_window is not None else current_policy(session).dedup_window

        rows: list[dict[str, Any]] = []
        outcomes: list[IntakeOutcome] = []
        seen_items: dict[tuple[str, str], IntakeOutcome] = {}
        for lead, phone in zip(leads, phones):
            item_key = (lead.source, lead.source_item_id) if lead.source_item_id else None
            if item_key in already or item_key in seen_items:
                first = already.get(item_key) or seen_items[item_key]
                outcomes.append(IntakeOutcome(first.lead_id, first.status, first.reason, first.duplicate_of,
                                              first.phone, already_stored=True))
                continue
            lead_id = next(ids)
            outcome = self._decide(lead_id, phone, lead, received_at, on_dnc, earlier, window)
            if isinstance(phone, Phone):
                earlier[phone.e164].append(EarlierLead(lead_id, received_at, lead.order_number,
                                                       outcome.duplicate_of))
            rows.append(_row(lead_id, lead, phone, outcome, received_at))
            outcomes.append(outcome)
            if item_key:
                seen_items[item_key] = outcome
        if rows:
            _insert_leads(session, self.db, rows)
            if self.db.is_postgres and any(o.status is LeadStatus.NEW for o in outcomes):
                session.execute(text("SELECT pg_notify('dialer_new_leads', '')"))
        for outcome in outcomes if log.isEnabledFor(logging.DEBUG) else ():
            if not outcome.already_stored:
                log.debug("lead.stored lead_id=%s status=%s reason=%s phone=%s", outcome.lead_id,
                          outcome.status.value, outcome.reason, mask_phone(outcome.phone))
        return outcomes

    def _decide(self, lead_id: int, phone: Phone | InvalidPhone, lead: LeadIn, received_at: datetime,
                on_dnc: set[str], earlier: dict[str, list[EarlierLead]], window: timedelta) -> IntakeOutcome:
        if isinstance(phone, InvalidPhone):
            return IntakeOutcome(lead_id, LeadStatus.INVALID, phone.reason)
        if phone.e164 in on_dnc:
            return IntakeOutcome(lead_id, LeadStatus.DNC, "number is on the do-not-call list", phone=phone.e164)
        verdict = dedup(lead.order_number, received_at, earlier[phone.e164], window)
        status = LeadStatus.DUPLICATE if verdict.is_duplicate else LeadStatus.NEW
        return IntakeOutcome(lead_id, status, verdict.rule, verdict.duplicate_of, phone.e164)


def _row(lead_id: int, lead: LeadIn, phone: Phone | InvalidPhone, outcome: IntakeOutcome,
         received_at: datetime) -> dict[str, Any]:
    valid = isinstance(phone, Phone)
    return {
        "id": lead_id, "received_at": received_at, "source": lead.source, "source_item_id": lead.source_item_id,
        "phone_raw": lead.phone, "phone_e164": phone.e164 if valid else None,
        "phone_ext": phone.extension if valid else None,
        "name": lead.name, "order_number": lead.order_number, "product": lead.product, "comment": lead.comment,
        "preferred_time": lead.preferred_time, "timezone": lead.timezone or None, "region": lead.region,
        "extra": lead.extra or None, "status": outcome.status.value,
        "invalid_reason": outcome.reason if outcome.status is LeadStatus.INVALID else None,
        "duplicate_of_id": outcome.duplicate_of, "attempts_count": 0, "contacts_count": 0,
    }


def _insert_leads(session: Session, db: Database, rows: list[dict[str, Any]]) -> None:
    """Insert the batch with one executemany.

    PostgreSQL: a Core insert. SQLite: SQLAlchemy's per-row conversion of twenty parameters costs about
    as much as SQLite's insert itself, so the few columns that need converting (received_at, extra) are
    converted here with the column types' own bind processors, once per distinct value (received_at is
    the same for the whole batch), and the rows go straight to the driver.
    """
    if db.is_postgres and len(rows) >= COPY_FROM_ROWS:
        _copy_leads(session, rows)
        return
    if not db.is_sqlite:
        session.execute(insert(Lead.__table__), rows)
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    columns = [[row[name] for row in rows] for name in names]
    for name, values in zip(names, columns):
        process = Lead.__table__.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            continue
        last_in: Any = _NOTHING
        last_out: Any = None
        for i, value in enumerate(values):
            if value is not last_in:
                last_in, last_out = value, process(value)
            values[i] = last_out
    quote = dialect.identifier_preparer.quote
    # Positional parameters: the driver binds a tuple faster than it looks twenty names up in a dict.
    connection.exec_driver_sql(f"INSERT INTO leads ({', '.join(quote(n) for n in names)}) "
                               f"VALUES ({', '.join('?' for _ in names)})", list(zip(*columns)))


_NOTHING = object()

# PostgreSQL: a batch this big (the CSV import's) goes in with COPY, in the same transaction: about a
# third of the server's and the driver's work of an executemany of INSERTs (issue 18).
COPY_FROM_ROWS = 200


def _copy_leads(session: Session, rows: list[dict[str, Any]]) -> None:
    names = list(rows[0])
    json_columns = {i for i, name in enumerate(names) if name == "extra"}
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        with cursor.copy(f"COPY leads ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                values = list(row.values())
                for i in json_columns:
                    if values[i] is not None:
                        values[i] = json.dumps(values[i], ensure_ascii=False)
                copy.write_row(values)
    finally:
        cursor.close()

# Built once (compiled once): the per-lead cost of the webhook is mostly such overhead.
_L = Lead.__table__.c
_STORED_ITEMS = select(_L.id, _L.source_item_id, _L.status, _L.invalid_reason, _L.duplicate_of_id, _L.phone_e164) \
    .where(_L.source == bindparam("source"), _L.source_item_id.in_(bindparam("items", expanding=True)))
_EARLIER_LEADS = select(_L.id, _L.phone_e164, _L.received_at, _L.order_number, _L.duplicate_of_id) \
    .where(_L.phone_e164.in_(bindparam("phones", expanding=True)))


def _lock_phones(session: Session, phones: list[str]) -> None:
    # Sorted keys: two transactions locking overlapping phone sets cannot deadlock.
    session.execute(text(
        "SELECT pg_advisory_xact_lock(k) FROM "
        "(SELECT DISTINCT hashtextextended(p, 0) AS k FROM unnest(CAST(:phones AS text[])) AS p ORDER BY k) s"
    ), {"phones": phones})


def _already_stored(session: Session, leads: Sequence[LeadIn]) -> dict[tuple[str, str], IntakeOutcome]:
    keys = {(lead.source, lead.source_item_id) for lead in leads if lead.source_item_id}
    found: dict[tuple[str, str], IntakeOutcome] = {}
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, item in keys:
        by_source[source].append(item)
    for source, items in by_source.items():
        for chunk in _chunks(items, 900):
            rows = session.connection().execute(_STORED_ITEMS, {"source": source, "items": list(chunk)})
            for row in rows:
                found[(source, row.source_item_id)] = IntakeOutcome(
                    row.id, LeadStatus(row.status), row.invalid_reason, row.duplicate_of_id, row.phone_e164)
    return found


def _dnc_numbers(session: Session, phones: list[str]) -> set[str]:
    numbers: set[str] = set()
    for chunk in _chunks(phones, 900):
        numbers |= numbers_on_dnc(session, list(chunk))
    return numbers


def _earlier_leads(session: Session, phones: list[str]) -> dict[str, list[EarlierLead]]:
    earlier: dict[str, list[EarlierLead]] = defaultdict(list)
    for chunk in _chunks(phones, 900):
        rows = session.connection().execute(_EARLIER_LEADS, {"phones": list(chunk)})
        for row in rows:
            earlier[row.phone_e164].append(EarlierLead(row.id, row.received_at, row.order_number,
                                                       row.duplicate_of_id))
    return earlier


def _allocate_ids(session: Session, db: Database, count: int) -> list[int]:
    """Ids are taken before insert so that a duplicate inside the same batch can link to its original."""
    if count == 0:
        return []
    if db.is_postgres:
        return list(session.scalars(text(
            "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, :n)"), {"n": count}))
    # SQLite: the write lock (BEGIN IMMEDIATE) is held, so nobody else can take these ids meanwhile.
    top = session.scalar(text("SELECT COALESCE(MAX(id), 0) FROM leads"))
    return list(range(top + 1, top + 1 + count))


def _chunks(items: Sequence[str], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
