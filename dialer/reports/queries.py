"""The KPIs computed in the database: a few GROUP BY queries (SQLAlchemy Core), the same on SQLite and
PostgreSQL. Python only merges the aggregated lines and divides.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import Integer, and_, case, cast, extract, func, literal, or_, select, type_coerce
from sqlalchemy.engine import Engine

from dialer.reports.kpi import (CALL_DIMENSIONS, CALLBACK_ON_TIME_SECONDS, FIRST_CALL_TARGET_SECONDS,
                                LEAD_DIMENSIONS, WORKED_DIMENSIONS, KpiRow, Period, RefusalRow, ResultRow, parse_by,
                                zone_offsets)
from kernel.db.models import (CallAttempt, Disposition, Lead, Operator, OperatorGroupMember, OperatorPresence,
                              ScriptGap)
from kernel.db.types import UTCDateTime
from leads.attempt import AttemptState, CallResult, DispositionKind
from leads.lead import CloseReason, LeadStatus

L = Lead.__table__
A = CallAttempt.__table__
D = Disposition.__table__
O = Operator.__table__
G = OperatorGroupMember.__table__
S = ScriptGap.__table__
P = OperatorPresence.__table__

# close_reason is NULL on open leads: compared through coalesce so that NOT(...) stays true or false.
_REASON = func.coalesce(L.c.close_reason, "")
DUPLICATE = or_(L.c.status == LeadStatus.DUPLICATE.value, _REASON == CloseReason.DUPLICATE.value)
FAKE = or_(L.c.status == LeadStatus.INVALID.value,
           _REASON.in_([CloseReason.FAKE.value, CloseReason.WRONG_NUMBER.value,
                                 CloseReason.INVALID_NUMBER.value]))
ACTUAL = and_(~DUPLICATE, ~FAKE)
REFUSED = _REASON.in_([CloseReason.NOT_INTERESTED.value, CloseReason.DNC.value,
                                CloseReason.COMPLAINT.value])
REFUSAL_KINDS = (DispositionKind.NOT_INTERESTED.value, DispositionKind.DO_NOT_CALL.value,
                 DispositionKind.COMPLAINT.value)
CONNECTED = or_(func.coalesce(A.c.result, "") == CallResult.CONNECTED.value, A.c.connected_at.is_not(None))
ANSWERED = or_(A.c.answered_at.is_not(None), A.c.connected_at.is_not(None),
               func.coalesce(A.c.result, "").in_([CallResult.CONNECTED.value, CallResult.ABANDONED.value]))


class _Sql:
    """The few expressions that differ between the two databases."""

    def __init__(self, engine: Engine, period: Period) -> None:
        self.postgres = engine.dialect.name == "postgresql"
        self.period = period
        self._offsets = None if self.postgres else zone_offsets(period.zone, period.start, period.end)

    def scan(self, column):
        """SQLite: the column as an expression its planner will not answer from an index. A report reads
        most rows of the period; through an index that means one random page read per row."""
        if self.postgres:
            return column
        return type_coerce(func.coalesce(column, column), column.type)

    def seconds(self, later, earlier):
        if self.postgres:
            return extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    def local(self, column):
        """The instant as a wall-clock timestamp of the report's zone."""
        if self.postgres:
            return func.timezone(self.period.zone, column)
        offsets = self._offsets
        if len(offsets) == 1:
            return func.datetime(column, f"{offsets[0][1]:+d} seconds")
        shift = case(*[(column < until, f"{off:+d} seconds") for until, off in offsets[:-1]],
                     else_=f"{offsets[-1][1]:+d} seconds")
        return func.datetime(column, shift)

    def day(self, column):
        local = self.local(column)
        return func.to_char(local, "YYYY-MM-DD") if self.postgres else func.strftime("%Y-%m-%d", local)

    def hour(self, column):
        local = self.local(column)
        if self.postgres:
            return cast(extract("hour", local), Integer)
        return cast(func.strftime("%H", local), Integer)

    def weekday(self, column):
        """ISO: 1 = Monday ... 7 = Sunday."""
        local = self.local(column)
        if self.postgres:
            return cast(extract("isodow", local), Integer)
        return (cast(func.strftime("%w", local), Integer) + 6) % 7 + 1


def _time_dims(sql: _Sql, column, dims: Sequence[str]) -> dict[str, Any]:
    out = {}
    for d in dims:
        if d == "day":
            out[d] = sql.day(column)
        elif d == "hour":
            out[d] = sql.hour(column)
        elif d == "weekday":
            out[d] = sql.weekday(column)
    return out


def _group_at(moment):
    """The operator's team at `moment`: the latest membership that started by then."""
    return (select(G.c.group_name).where(G.c.operator_id == A.c.operator_id, G.c.valid_from <= moment)
            .order_by(G.c.valid_from.desc(), G.c.id.desc()).limit(1).scalar_subquery())


def compute_summary(engine: Engine, period: Period, by: Sequence[str] | str | None = (),
                    now: datetime | None = None) -> list[KpiRow]:
    """Every KPI over the period, one KpiRow per combination of the breakdown's values (one row without `by`).

    Lead KPIs are filled where every dimension of `by` applies to leads, call KPIs always, hours worked
    without a breakdown or by operator / group. `now`: what has not happened by then (an operator still
    working, a callback not yet due) is not counted past it.
    """
    dims = parse_by(by)
    sql = _Sql(engine, period)
    cap = period.end if now is None or now > period.end else max(now, period.start)
    rows: dict[tuple, KpiRow] = {}

    def row_for(key: dict[str, Any]) -> KpiRow:
        k = tuple(key.get(d) for d in dims)
        if k not in rows:
            rows[k] = KpiRow(key={d: key.get(d) for d in dims})
        return rows[k]

    lead_family = all(d in LEAD_DIMENSIONS for d in dims)
    worked = all(d in WORKED_DIMENSIONS for d in dims)
    statements = {}   # the longest first (measured at 1M leads), so that neither connection waits at the end
    if lead_family:
        statements["percentiles"] = _first_dial_percentiles(sql, dims)
        statements["lead"] = _lead_query(sql, dims)
    statements["calls"] = _call_query(sql, dims)
    if lead_family:
        statements["callbacks"] = _callback_query(sql, dims)
        statements["overdue"] = _overdue_callbacks(sql, dims, cap)
    statements["orders"] = _call_query(sql, dims, orders=True)
    if worked:
        statements["worked"] = _worked_query(sql, dims, cap)
    found = _run_all(engine, sql, statements)
    for rec in found.get("lead", ()):
        row = row_for(rec)
        row.leads, row.duplicates, row.fakes = int(rec["leads"]), _int(rec["duplicates"]), _int(rec["fakes"])
        row.actual = row.leads - row.duplicates - row.fakes
        row.contacted, row.confirmed = _int(rec["contacted"]), _int(rec["confirmed"])
        row.refused = _int(rec["refused"])
        row.refused_not_interested = _int(rec["refused_not_interested"])
        row.refused_dnc, row.refused_complaint = _int(rec["refused_dnc"]), _int(rec["refused_complaint"])
        row.first_dial_within_15_allowed = _int(rec["within_15_allowed"])
        row.attempts_to_contact = (round(float(rec["contact_attempts"]) / row.contacted, 2)
                                   if row.contacted else None)
        row.order_sum = _money(rec["order_sum"])
        row.dialed, row.first_dial_within_15 = _int(rec["dialed"]), _int(rec["within_15"])
        row.sla_alerts = _int(rec["sla_alerts"])
    for rec in found.get("percentiles", ()):
        row = row_for(rec)
        row.first_dial_p50_min = _minutes(rec["p50"])
        row.first_dial_p90_min = _minutes(rec["p90"])
        row.first_dial_max_min = _minutes(rec["max"])
    for rec in found.get("callbacks", ()):
        row = row_for(rec)
        row.callbacks, row.callbacks_on_time = int(rec["callbacks"]), _int(rec["on_time"])
        row.callback_late_avg_min = _minutes(rec["late_avg"])
        row.callback_late_max_min = _minutes(rec["late_max"])
    for rec in found.get("overdue", ()):
        row_for(rec).callbacks_overdue = int(rec["overdue"])
    for rec in found["calls"]:
        row = row_for(rec)
        row.calls, row.answered = int(rec["calls"]), _int(rec["answered"])
        row.abandoned, row.conversations = _int(rec["abandoned"]), _int(rec["conversations"])
        row.talk_min = _minutes(rec["talk"] or 0)
        row.wrapup_min = _minutes(rec["wrapup"] or 0)
        row.call_orders, row.call_order_sum = 0, _money(0)
    for rec in found["orders"]:
        row = row_for(rec)
        row.call_orders, row.call_order_sum = _int(rec["orders"]), _money(rec["order_sum"])
    for rec in found.get("worked", ()):
        row_for(rec).worked_hours = round(float(rec["worked"] or 0) / 3600.0, 3)
    if not dims and not rows:
        rows[()] = KpiRow()
    for row in rows.values():   # a line with leads but no calls (or the reverse) still reads as zeros
        if row.leads is None and lead_family:
            row.leads = row.duplicates = row.fakes = row.actual = row.contacted = row.confirmed = 0
            row.refused = row.dialed = row.first_dial_within_15 = row.sla_alerts = 0
            row.refused_not_interested = row.refused_dnc = row.refused_complaint = 0
            row.first_dial_within_15_allowed = 0
            row.order_sum = Decimal("0.00")
        if lead_family:
            if row.callbacks is None:
                row.callbacks = row.callbacks_on_time = 0
            if row.callbacks_overdue is None:
                row.callbacks_overdue = 0
        if worked and row.worked_hours is None:
            row.worked_hours = 0.0
        if row.calls is None:
            row.calls = row.answered = row.abandoned = row.conversations = row.call_orders = 0
            row.talk_min = row.wrapup_min = 0.0
            row.call_order_sum = Decimal("0.00")
    return [rows[k] for k in sorted(rows, key=lambda k: tuple((v is None, str(v) if not isinstance(v, int)
                                                              else f"{v:012d}") for v in k))]


REPORT_CONNECTIONS = 2   # the queries are independent reads: two at a time use both cores of a small server
REPORT_SQLITE_CACHE_KIB = 65536


def _run_all(engine: Engine, sql: _Sql, statements: dict[str, Any]) -> dict[str, list]:
    """Each statement's rows. The statements go, in the order given (the longest first), to whichever of
    REPORT_CONNECTIONS connections is free: SQLite and PostgreSQL both run a statement without holding
    Python's lock. A SQLite database in memory is one connection's own: one after another there."""
    import queue
    database = engine.url.database or ""
    workers = 1 if not sql.postgres and database in ("", ":memory:") else min(REPORT_CONNECTIONS, len(statements))
    todo: "queue.SimpleQueue[str]" = queue.SimpleQueue()
    for name in statements:
        todo.put(name)
    out: dict[str, list] = {}

    def run() -> None:
        with engine.connect() as conn:
            if sql.postgres:   # the percentile sort and the GROUP BYs stay in memory (this transaction only)
                conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
            else:              # a report reads most of the file: a page cache big enough not to re-read it
                conn.exec_driver_sql(f"PRAGMA cache_size = -{REPORT_SQLITE_CACHE_KIB}")
            try:
                while True:
                    try:
                        name = todo.get_nowait()
                    except queue.Empty:
                        return
                    out[name] = list(conn.execute(statements[name]).mappings())
            finally:
                if not sql.postgres:   # the pooled connection goes back with the store's small cache
                    from kernel.db.engine import SQLITE_CACHE_KIB
                    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
                    conn.exec_driver_sql("PRAGMA shrink_memory")

    if workers <= 1:
        run()
        return out
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="report") as pool:
        for done in [pool.submit(run) for _ in range(workers)]:
            done.result()
    return out


def _lead_scope(sql: _Sql, dims: Sequence[str]):
    """Leads of the period with their breakdown values and confirmed orders (one row each). The first
    contact's attempt number and the first dial's dial-allowed moment are on the lead row itself."""
    orders = (select(D.c.lead_id, func.count().label("n"), func.sum(D.c.amount).label("amount"))
              .where(D.c.kind == DispositionKind.CONFIRMED.value).group_by(D.c.lead_id).subquery("orders"))
    key = _time_dims(sql, L.c.received_at, dims)
    if "source" in dims:
        key["source"] = L.c.source
    if "product" in dims:
        key["product"] = L.c.product
    scope = L.outerjoin(orders, orders.c.lead_id == L.c.id)
    where = and_(sql.scan(L.c.received_at) >= sql.period.start, sql.scan(L.c.received_at) < sql.period.end)
    return key, scope, where, orders


def _lead_query(sql: _Sql, dims: Sequence[str]):
    key, scope, where, orders = _lead_scope(sql, dims)
    # Leads dialed before the moment was recorded (older rows) count from arrival.
    delay_allowed = sql.seconds(L.c.first_dialed_at, func.coalesce(L.c.first_dial_allowed_at, L.c.received_at))
    contacted = and_(ACTUAL, L.c.first_contact_attempt_no.is_not(None))
    confirmed = and_(ACTUAL, orders.c.n.is_not(None))
    delay = sql.seconds(L.c.first_dialed_at, L.c.received_at)
    one = lambda cond: func.sum(case((cond, 1), else_=0))   # noqa: E731
    labels = [v.label(k) for k, v in key.items()]
    return (select(*labels, func.count().label("leads"), one(DUPLICATE).label("duplicates"),
                   one(and_(FAKE, ~DUPLICATE)).label("fakes"), one(contacted).label("contacted"),
                   func.sum(case((contacted, L.c.first_contact_attempt_no), else_=0)).label("contact_attempts"),
                   one(confirmed).label("confirmed"), one(and_(ACTUAL, REFUSED)).label("refused"),
                   one(and_(ACTUAL, _REASON == CloseReason.NOT_INTERESTED.value)).label("refused_not_interested"),
                   one(and_(ACTUAL, _REASON == CloseReason.DNC.value)).label("refused_dnc"),
                   one(and_(ACTUAL, _REASON == CloseReason.COMPLAINT.value)).label("refused_complaint"),
                   func.sum(case((confirmed, orders.c.amount), else_=0)).label("order_sum"),
                   one(L.c.first_dialed_at.is_not(None)).label("dialed"),
                   one(and_(L.c.first_dialed_at.is_not(None), delay <= FIRST_CALL_TARGET_SECONDS)
                       ).label("within_15"),
                   one(and_(L.c.first_dialed_at.is_not(None), delay_allowed <= FIRST_CALL_TARGET_SECONDS)
                       ).label("within_15_allowed"),
                   one(L.c.sla_alerted_at.is_not(None)).label("sla_alerts"))
            .select_from(scope).where(where).group_by(*key.values()))


def _first_dial_percentiles(sql: _Sql, dims: Sequence[str]):
    """Nearest-rank p50/p90 of arrival -> first dial: the smallest delay whose rank reaches p% of the line."""
    key, _, where, _ = _lead_scope(sql, dims)
    delay = sql.seconds(L.c.first_dialed_at, L.c.received_at)
    parts = list(key.values()) or None
    ranked = (select(*[v.label(k) for k, v in key.items()], delay.label("delay"),
                     func.row_number().over(partition_by=parts, order_by=delay).label("rn"),
                     func.count().over(partition_by=parts).label("n"))
              .where(where, L.c.first_dialed_at.is_not(None)).subquery("ranked"))
    cols = [ranked.c[k] for k in key]
    return (select(*cols, func.min(case((ranked.c.rn * 2 >= ranked.c.n, ranked.c.delay))).label("p50"),
                   func.min(case((ranked.c.rn * 10 >= ranked.c.n * 9, ranked.c.delay))).label("p90"),
                   func.max(ranked.c.delay).label("max"))
            .group_by(*cols))


def _call_query(sql: _Sql, dims: Sequence[str], orders: bool = False):
    """Calls of the period by the breakdown; orders=True: the same lines over the calls' confirmed orders
    (a second, small query from dispositions, rather than a join probed for every call)."""
    key = _time_dims(sql, A.c.claimed_at, dims)
    scope = D.join(A, A.c.id == D.c.attempt_id) if orders else A
    if "source" in dims or "product" in dims:
        scope = scope.join(L, L.c.id == A.c.lead_id)
        if "source" in dims:
            key["source"] = L.c.source
        if "product" in dims:
            key["product"] = L.c.product
    if "operator" in dims:
        scope = scope.outerjoin(O, O.c.id == A.c.operator_id)
        key["operator"] = func.coalesce(O.c.name, literal("(no operator)"))
    if "group" in dims:
        key["group"] = func.coalesce(func.nullif(_group_at(A.c.claimed_at), ""), literal("(no group)"))
    if "attempt" in dims:
        key["attempt"] = A.c.attempt_no
    if "script" in dims:
        if not orders:
            scope = scope.outerjoin(D, D.c.attempt_id == A.c.id)
        key["script"] = func.coalesce(D.c.script_id, literal("(no script)"))
    labels = [v.label(k) for k, v in key.items()]
    where = [sql.scan(A.c.claimed_at) >= sql.period.start, sql.scan(A.c.claimed_at) < sql.period.end,
             sql.scan(A.c.state) == AttemptState.ENDED.value]
    if orders:
        return (select(*labels, func.count().label("orders"), func.sum(D.c.amount).label("order_sum"))
                .select_from(scope).where(D.c.kind == DispositionKind.CONFIRMED.value, *where)
                .group_by(*key.values()))
    one = lambda cond: func.sum(case((cond, 1), else_=0))   # noqa: E731
    talk = case((and_(A.c.connected_at.is_not(None), A.c.ended_at > A.c.connected_at),
                 sql.seconds(A.c.ended_at, A.c.connected_at)), else_=0)
    wrapup = case((and_(A.c.wrapup_until.is_not(None), A.c.ended_at.is_not(None), A.c.wrapup_until > A.c.ended_at),
                   sql.seconds(A.c.wrapup_until, A.c.ended_at)), else_=0)
    return (select(*labels, func.count().label("calls"),
                   one(ANSWERED).label("answered"),
                   one(func.coalesce(A.c.result, "") == CallResult.ABANDONED.value).label("abandoned"),
                   one(CONNECTED).label("conversations"), func.sum(talk).label("talk"),
                   func.sum(wrapup).label("wrapup"))
            .select_from(scope).where(*where).group_by(*key.values()))


def _lead_keys(sql: _Sql, moment, dims: Sequence[str]) -> dict[str, Any]:
    key = _time_dims(sql, moment, dims)
    if "source" in dims:
        key["source"] = L.c.source
    if "product" in dims:
        key["product"] = L.c.product
    return key


def _callback_query(sql: _Sql, dims: Sequence[str]):
    """Promised callbacks of the period by their promised time: each promise once, by its first dial (a
    callback re-dialed after no answer keeps its promise, and would otherwise look later and later)."""
    promise = (select(A.c.lead_id, A.c.dial_allowed_at.label("promised"), func.min(A.c.claimed_at).label("first"))
               .where(A.c.tier == "callback", A.c.dial_allowed_at.is_not(None),
                      A.c.dial_allowed_at >= sql.period.start, A.c.dial_allowed_at < sql.period.end)
               .group_by(A.c.lead_id, A.c.dial_allowed_at).subquery("promise"))
    key = _lead_keys(sql, promise.c.promised, dims)
    late = sql.seconds(promise.c.first, promise.c.promised)
    late = case((late > 0, late), else_=0)
    labels = [v.label(k) for k, v in key.items()]
    return (select(*labels, func.count().label("callbacks"),
                   func.sum(case((late <= CALLBACK_ON_TIME_SECONDS, 1), else_=0)).label("on_time"),
                   func.avg(late).label("late_avg"), func.max(late).label("late_max"))
            .select_from(promise.join(L, L.c.id == promise.c.lead_id)).group_by(*key.values()))


def _overdue_callbacks(sql: _Sql, dims: Sequence[str], cap: datetime):
    """Leads waiting for a callback whose promised time (in the period, before `cap`) passed with no dial."""
    key = _lead_keys(sql, L.c.callback_at, dims)
    dialed = select(A.c.id).where(A.c.lead_id == L.c.id, A.c.claimed_at >= L.c.callback_at).exists()
    labels = [v.label(k) for k, v in key.items()]
    return (select(*labels, func.count().label("overdue"))
            .where(L.c.status == LeadStatus.CALLBACK.value, L.c.callback_at >= sql.period.start,
                   L.c.callback_at < cap, ~dialed)
            .group_by(*key.values()))


def _worked_query(sql: _Sql, dims: Sequence[str], cap: datetime):
    """Seconds operators were working (in the queue, not paused) within [period start, cap): each presence
    row lasts until the operator's next one, or until `cap`."""
    spans = (select(P.c.interface, P.c.state, P.c.at.label("since"),
                    func.lead(P.c.at).over(partition_by=P.c.interface, order_by=(P.c.at, P.c.id)).label("until"))
             .where(P.c.at < cap).subquery("spans"))
    start = literal(sql.period.start, UTCDateTime())
    end = literal(cap, UTCDateTime())
    begin = case((spans.c.since > start, spans.c.since), else_=start)
    finish = case((and_(spans.c.until.is_not(None), spans.c.until < end), spans.c.until), else_=end)
    key: dict[str, Any] = {}
    scope = spans.outerjoin(O, O.c.interface == spans.c.interface)
    if "operator" in dims:
        key["operator"] = func.coalesce(O.c.name, spans.c.interface)
    if "group" in dims:
        team = (select(G.c.group_name).where(G.c.operator_id == O.c.id, G.c.valid_from <= spans.c.since)
                .order_by(G.c.valid_from.desc(), G.c.id.desc()).limit(1).scalar_subquery())
        key["group"] = func.coalesce(func.nullif(team, ""), literal("(no group)"))
    labels = [v.label(k) for k, v in key.items()]
    return (select(*labels, func.sum(sql.seconds(finish, begin)).label("worked")).select_from(scope)
            .where(spans.c.state == "working", finish > begin).group_by(*key.values()))


def answered_and_abandoned(engine: Engine, period: Period) -> tuple[int, int]:
    """Calls of the period the customer picked up, and those of them abandoned (the abandon budget)."""
    with engine.connect() as conn:
        row = conn.execute(_call_query(_Sql(engine, period), ())).mappings().first()
    return (int(row["answered"] or 0), int(row["abandoned"] or 0)) if row else (0, 0)


def compute_refusals(engine: Engine, period: Period) -> list[RefusalRow]:
    """Refusals recorded in the period (not interested, do not call, complaint) by kind and topic, most first."""
    query = (select(D.c.kind, D.c.topic, func.count().label("n"), func.sum(D.c.amount))
             .where(D.c.kind.in_(REFUSAL_KINDS), D.c.created_at >= period.start, D.c.created_at < period.end)
             .group_by(D.c.kind, D.c.topic))
    with engine.connect() as conn:
        found = [(kind, topic, int(n)) for kind, topic, n, _ in conn.execute(query)]
    total = sum(n for _, _, n in found)
    found.sort(key=lambda r: (-r[2], r[0], r[1] or ""))
    return [RefusalRow(kind, topic, n, round(100.0 * n / total, 1)) for kind, topic, n in found]


def compute_results(engine: Engine, period: Period, *, kind: str | None = None,
                    limit: int | None = None) -> list[ResultRow]:
    """The conversation results recorded in the period, newest first, with the script gaps of the same call."""
    query = (select(D.c.id, D.c.created_at, D.c.lead_id, L.c.name, L.c.product, O.c.name.label("operator"),
                    D.c.kind, D.c.topic, D.c.comment, D.c.amount, D.c.currency, D.c.attempt_id)
             .select_from(D.join(L, L.c.id == D.c.lead_id).outerjoin(O, O.c.id == D.c.operator_id))
             .where(D.c.created_at >= period.start, D.c.created_at < period.end)
             .order_by(D.c.created_at.desc(), D.c.id.desc()))
    if kind:
        query = query.where(D.c.kind == kind)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        found = conn.execute(query).all()
        attempt_ids = [r.attempt_id for r in found]
        gaps: dict[int, list[str]] = {}
        for start in range(0, len(attempt_ids), 500):
            chunk = attempt_ids[start:start + 500]
            for attempt_id, question in conn.execute(select(S.c.attempt_id, S.c.question)
                                                     .where(S.c.attempt_id.in_(chunk)).order_by(S.c.id)):
                gaps.setdefault(attempt_id, []).append(question)
    return [ResultRow(r.id, r.created_at, r.lead_id, r.name, r.product, r.operator, r.kind, r.topic, r.comment,
                      _money(r.amount) if r.amount is not None else None, r.currency,
                      tuple(gaps.get(r.attempt_id, ()))) for r in found]


def _int(value: Any) -> int:
    return int(value or 0)


def _money(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(Decimal("0.01"))


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60.0, 2)


def first_dial_histogram(engine: Engine, period: Period, bucket_minutes: int = 1,
                         cap_minutes: int = 120) -> list[tuple[int, int]]:
    """[(minute bucket start, leads)]: arrival -> first dial, delays past cap_minutes in the last bucket."""
    sql = _Sql(engine, period)
    minutes = sql.seconds(L.c.first_dialed_at, L.c.received_at) / 60.0
    bucket = cast(func.floor(case((minutes < cap_minutes, minutes), else_=cap_minutes) / bucket_minutes),
                  Integer) * bucket_minutes
    if not sql.postgres:   # SQLite has no floor() before 3.35: a cast truncates, delays are >= 0
        bucket = cast(case((minutes < cap_minutes, minutes), else_=cap_minutes) / bucket_minutes,
                      Integer) * bucket_minutes
    query = (select(bucket.label("b"), func.count()).where(L.c.received_at >= period.start,
                                                          L.c.received_at < period.end,
                                                          L.c.first_dialed_at.is_not(None))
             .group_by(bucket).order_by(bucket))
    with engine.connect() as conn:
        return [(int(b), int(n)) for b, n in conn.execute(query)]
