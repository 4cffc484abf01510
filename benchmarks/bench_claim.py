"""Claim-next-attempt latency with a big leads table, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_claim.py            # 1,000,000 leads (goal: p99 <= 5 ms)
    .venv/bin/python benchmarks/bench_claim.py --quick    # 20,000 leads
    .venv/bin/python benchmarks/bench_claim.py --leads 200000 --only sqlite --claims 2000

The table is filled with bulk inserts (SQLAlchemy executemany on SQLite, COPY on PostgreSQL) in a
realistic mix: most leads closed, a few percent new (received in the last hours, some at night),
retries with delays ending around now, callbacks, invalid / duplicate / DNC leads, 10% landlines in
other zones (some inside their own quiet hours at the measured time), numbers later put on the DNC list.
Then a daemon's loop is replayed: claim, keep ~50 calls in progress, record each result. Prints p50,
p90, p99 and max of claim_next (wall clock, and the CPU time of this process: on a machine shared with
other work the wall clock includes waiting for a core; on PostgreSQL the server's CPU is not in it) and
of record_attempt_result, per database, time of day and tier variant.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from kernel.db.models import DncEntry, Lead  # noqa: E402
from leads.policy.claim import claim_next  # noqa: E402
from leads.policy.results import record_attempt_result  # noqa: E402
from leads.policy.store import change_policy, seed_policy  # noqa: E402

CENTER = "Europe/Moscow"
MSK = ZoneInfo(CENTER)
PG_ADMIN_URL = os.environ.get("DIALER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LANDLINES = ["4232", "4012", "383", "495", "343"]   # Vladivostok, Kaliningrad, Novosibirsk, Moscow, Yekaterinburg
RESULTS = ["no_answer", "busy", "no_answer", "failed", "answering_machine", "connected"]
STATUS_MIX = [("closed", 78), ("invalid", 3), ("duplicate", 5), ("dnc", 1), ("new", 2), ("retry", 9),
              ("callback", 2)]


def lead_rows(count: int, now: datetime, seed: int = 11):
    """The leads as dicts, in a realistic mix of statuses (see the module doc)."""
    rnd = random.Random(seed)
    statuses = [s for s, w in STATUS_MIX for _ in range(w)]
    for n in range(1, count + 1):
        status = rnd.choice(statuses)
        if rnd.random() < 0.1:
            prefix = rnd.choice(LANDLINES)
            phone = "+7" + prefix + "".join(rnd.choice("0123456789") for _ in range(10 - len(prefix)))
        else:
            phone = "+79" + "".join(rnd.choice("0123456789") for _ in range(9))
        row = {"id": n, "source": "bench", "phone_e164": phone, "name": "Анна", "product": "Пылесос Vortex X2",
               "status": status, "attempts_count": 0, "contacts_count": 0,
               "received_at": now - timedelta(days=rnd.uniform(1, 60)),
               "timezone": "Asia/Yekaterinburg" if rnd.random() < 0.05 else None,
               "next_attempt_at": None, "last_attempt_at": None, "callback_at": None, "last_contact_at": None}
        if status == "new":
            row["received_at"] = now - timedelta(hours=rnd.uniform(0, 14))   # some arrived at night
        elif status == "retry":
            attempts = rnd.randint(1, 6)
            row.update(attempts_count=attempts, next_attempt_at=now + timedelta(minutes=rnd.uniform(-180, 180)),
                       received_at=now - timedelta(hours=rnd.uniform(1, 72)))
            row["last_attempt_at"] = row["next_attempt_at"] - timedelta(minutes=30)
            if rnd.random() < 0.2:
                row.update(contacts_count=1, last_contact_at=now - timedelta(days=rnd.uniform(1, 3)))
        elif status == "callback":
            row.update(attempts_count=rnd.randint(1, 4), callback_at=now + timedelta(minutes=rnd.uniform(-120, 2880)),
                       contacts_count=1, received_at=now - timedelta(days=rnd.uniform(1, 5)))
            row["last_attempt_at"] = row["last_contact_at"] = row["received_at"] + timedelta(minutes=5)
        elif status == "invalid":
            row.update(phone_e164=None, invalid_reason="unparsable_phone")
        elif status == "closed":
            row.update(attempts_count=rnd.randint(1, 7), close_reason="unreachable")
        yield row


def dnc_rows(count: int, now: datetime, seed: int = 11):
    """Every 100th lead's number goes on the DNC list after the lead arrived."""
    return [{"phone_e164": row["phone_e164"], "reason": "bench", "added_by": "bench", "added_at": now}
            for row in lead_rows(count, now, seed) if row["id"] % 100 == 0 and row["phone_e164"]]


COLUMNS = ["id", "source", "phone_e164", "name", "product", "status", "attempts_count", "contacts_count",
           "received_at", "timezone", "next_attempt_at", "last_attempt_at", "callback_at", "last_contact_at",
           "invalid_reason", "close_reason"]


def fill(db: Database, count: int, now: datetime) -> float:
    started = time.perf_counter()
    rows = lead_rows(count, now)
    if db.is_postgres:
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                with cursor.copy(f"COPY leads ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row.get(c) for c in COLUMNS])
                cursor.execute("SELECT setval(pg_get_serial_sequence('leads', 'id'), %s)", (count,))
            raw.commit()
        finally:
            raw.close()
    else:
        with db.engine.begin() as conn:
            batch = []
            for row in rows:
                batch.append({c: row.get(c) for c in COLUMNS})
                if len(batch) == 20000:
                    conn.execute(insert(Lead.__table__), batch)
                    batch = []
            if batch:
                conn.execute(insert(Lead.__table__), batch)
    with db.engine.begin() as conn:
        entries = {r["phone_e164"]: r for r in dnc_rows(count, now)}
        if entries:
            conn.execute(insert(DncEntry.__table__), list(entries.values()))
    settle(db)
    with db.write() as session:
        seed_policy(session, now, by="bench")
    return time.perf_counter() - started


def settle(db: Database) -> None:
    """Bring the freshly loaded table to the state a table of a running center is in: statistics
    gathered, vacuumed (PostgreSQL's visibility map set, as autovacuum keeps it) and the bulk load
    written out of the WAL, so the claims are not measured against the load's own checkpoint I/O."""
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) leads, dnc"))
            conn.execute(text("CHECKPOINT"))
    else:
        raw = db.engine.raw_connection()   # autocommit: a checkpoint cannot run inside a transaction
        try:
            raw.execute("ANALYZE")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def replay(db: Database, now: datetime, claims: int, in_flight: int = 50) -> tuple[list[float], list[float], int]:
    """A daemon's loop: claim, keep `in_flight` calls going, record the oldest call's result."""
    rnd = random.Random(5)
    claim_ms, record_ms, cpu_ms, empty = [], [], [], 0
    going: deque = deque()
    moment = now
    for _ in range(claims):
        moment += timedelta(milliseconds=200)
        t0, c0 = time.perf_counter(), time.process_time()
        claim = claim_next(db, daemon_id="bench", now=moment, center_zone=CENTER)
        claim_ms.append((time.perf_counter() - t0) * 1000)
        cpu_ms.append((time.process_time() - c0) * 1000)
        if claim is None:
            empty += 1
        else:
            going.append(claim.attempt_id)
        if len(going) > in_flight:
            t0 = time.perf_counter()
            with db.write() as session:
                record_attempt_result(session, going.popleft(), rnd.choice(RESULTS), moment, center_zone=CENTER)
            record_ms.append((time.perf_counter() - t0) * 1000)
    with db.write() as session:   # the calls still going end before the next scenario
        for attempt_id in going:
            record_attempt_result(session, attempt_id, "no_answer", moment, center_zone=CENTER)
    return claim_ms, record_ms, cpu_ms, empty


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<22} -"
    return (f"  {name:<22} n={len(values):<6} p50={statistics.median(values):6.2f} ms  p90={pct(values, 90):6.2f} ms"
            f"  p99={pct(values, 99):6.2f} ms  max={max(values):7.2f} ms")


def run(kind: str, leads: int, claims: int) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=MSK)   # 19:00 in Vladivostok: landlines there still allowed
    with tempfile.TemporaryDirectory() as tmp:
        db, drop = open_db(kind, tmp)
        try:
            upgrade(db)
            seconds = fill(db, leads, now)
            print(f"{kind}: {leads:,} leads filled in {seconds:.1f} s")
            for label, moment, variant in (("12:00 MSK, variant 1", now, 1),
                                           ("16:00 MSK, variant 1", now + timedelta(hours=4), 1),
                                           ("16:00 MSK, variant 2", now + timedelta(hours=4, minutes=30), 2)):
                if variant == 2:
                    change_policy(db, {"tier_variant": "2"}, by="bench", now=moment)
                claim_ms, record_ms, cpu_ms, empty = replay(db, moment, claims)
                print(f" {label} ({empty} claims found nothing)")
                print(line("claim_next", claim_ms))
                print(line("  CPU of this process", cpu_ms))
                print(line("record_attempt_result", record_ms))
        finally:
            db.dispose()
            drop()


def open_db(kind: str, tmp: str):
    if kind == "sqlite":
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.checkpoint_in_background()   # as the daemon does
        return db, lambda: None
    name = f"dialer_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return Database(url), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 leads, 300 claims")
    parser.add_argument("--leads", type=int, default=None)
    parser.add_argument("--claims", type=int, default=None)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    args = parser.parse_args()
    leads = args.leads or (20_000 if args.quick else 1_000_000)
    claims = args.claims or (300 if args.quick else 2000)
    print(f"claim benchmark: {leads:,} leads, {claims} claims per scenario "
          f"(machine shared with other work: figures are indicative)")
    for kind in ([args.only] if args.only else ["sqlite", "postgres"]):
        run(kind, leads, claims)


if __name__ == "__main__":
    main()
