"""Report speed: `dialer report` over 1,000,000 leads and 3,000,000 call attempts, on SQLite and PostgreSQL.
Goals: <= 5 s for the summary, <= 10 s for `--by day,operator`; peak RSS of the reporting process.

    .venv/bin/python benchmarks/bench_report.py                       # 1,000,000 leads, SQLite
    .venv/bin/python benchmarks/bench_report.py --leads 100000        # smaller
    .venv/bin/python benchmarks/bench_report.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

The data (30 days, 50 operators in 5 teams, 3 attempts a lead, 1 in 4 connected) is written by this
process; each report runs in a fresh process (--repeat times) so its peak RSS is the report's own.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sqlalchemy import insert  # noqa: E402

from benchmarks.scratch_db import scratch_database  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from kernel.db.models import (CallAttempt, Disposition, Lead, Operator, OperatorGroupMember,  # noqa: E402
                              OperatorPresence)

START = datetime(2026, 10, 1, 7, 0, tzinfo=timezone.utc)
DAYS = 30
CHUNK = 20_000
GOALS = {"summary": 5.0, "day,operator": 10.0, "operator": 10.0}   # operator: with hours worked


def fill(db: Database, leads: int, seed: int = 13) -> None:
    rnd = random.Random(seed)
    with db.engine.begin() as conn:
        conn.execute(insert(Operator.__table__), [
            {"id": i, "name": f"Оператор {i}", "interface": f"PJSIP/op{i}", "skills": [], "level": 1, "active": True,
             "state": "unknown", "created_at": START} for i in range(1, 51)])
        conn.execute(insert(OperatorGroupMember.__table__), [
            {"operator_id": i, "group_name": f"Команда {i % 5 + 1}", "valid_from": START, "set_by": "bench"}
            for i in range(1, 51)] + [
            {"operator_id": i, "group_name": f"Команда {(i + 1) % 5 + 1}", "valid_from": START + timedelta(days=15),
             "set_by": "bench"} for i in range(1, 51, 7)])
        # each operator's day: working from 10:00 Moscow, a 30-minute pause, offline after 8 hours
        conn.execute(insert(OperatorPresence.__table__), [
            {"interface": f"PJSIP/op{i}", "pbx": "bench", "state": state, "at": START + timedelta(days=d, minutes=m)}
            for i in range(1, 51) for d in range(DAYS)
            for state, m in (("working", 0), ("paused", 240), ("working", 270), ("offline", 480))])
    attempt_id = disposition_id = 0
    for first in range(0, leads, CHUNK):
        lead_rows, attempt_rows, disposition_rows = [], [], []
        for lead_id in range(first + 1, min(first + CHUNK, leads) + 1):
            received = START + timedelta(seconds=rnd.randrange(DAYS * 86400))
            kind = rnd.random()
            status = "duplicate" if kind < 0.05 else "invalid" if kind < 0.10 else "retry"
            dialed = received + timedelta(seconds=rnd.randrange(60, 3600)) if status == "retry" else None
            lead_rows.append({"id": lead_id, "received_at": received, "source": f"src{lead_id % 5}",
                              "product": f"Товар {lead_id % 20}", "status": status, "first_dialed_at": dialed,
                              "first_dial_allowed_at": None, "first_contact_attempt_no": None,
                              "attempts_count": 0, "contacts_count": 0,
                              "sla_alerted_at": received + timedelta(minutes=15) if dialed and
                              dialed - received > timedelta(minutes=15) else None})
            if dialed is None:
                continue
            at = dialed
            first_contact = None
            for no in (1, 2, 3):
                attempt_id += 1
                connected = rnd.random() < 0.25
                abandoned = not connected and rnd.random() < 0.05
                operator = rnd.randrange(1, 51) if connected else None
                answered = at + timedelta(seconds=8) if connected or abandoned else None
                talk = timedelta(seconds=rnd.randrange(30, 600))
                tier = "new" if no == 1 else "callback" if no == 3 and rnd.random() < 0.1 else "redial"
                allowed = (received if tier == "new" else at - timedelta(seconds=rnd.randrange(0, 900))
                           if tier == "callback" else None)
                attempt_rows.append({
                    "id": attempt_id, "lead_id": lead_id, "attempt_no": no, "daemon_id": "bench", "state": "ended",
                    "tier": tier, "dial_allowed_at": allowed,
                    "result": "connected" if connected else "abandoned" if abandoned else "no_answer",
                    "operator_id": operator, "claimed_at": at, "answered_at": answered,
                    "connected_at": at + timedelta(seconds=15) if connected else None,
                    "ended_at": at + timedelta(seconds=15) + talk if connected else at + timedelta(seconds=30),
                    "wrapup_until": at + timedelta(seconds=45) + talk if connected else None})
                if connected and first_contact is None:
                    first_contact = no
                if connected:
                    disposition_id += 1
                    confirmed = rnd.random() < 0.5
                    disposition_rows.append({
                        "id": disposition_id, "attempt_id": attempt_id, "lead_id": lead_id, "operator_id": operator,
                        "kind": "confirmed" if confirmed else "not_interested",
                        "amount": Decimal(rnd.randrange(500, 50000)) if confirmed else None,
                        "currency": "RUB" if confirmed else None, "recorded_by": "bench",
                        "created_at": at + talk})
                at += timedelta(hours=rnd.randrange(1, 30))
            # what the results writer keeps on the lead: the first dial's dial-allowed moment, first contact
            lead_rows[-1]["first_dial_allowed_at"] = received
            lead_rows[-1]["first_contact_attempt_no"] = first_contact
        with db.engine.begin() as conn:
            conn.execute(insert(Lead.__table__), lead_rows)
            if attempt_rows:
                conn.execute(insert(CallAttempt.__table__), attempt_rows)
            if disposition_rows:
                conn.execute(insert(Disposition.__table__), disposition_rows)
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            # the bench wrote explicit ids: move the sequences past them
            for table in ("leads", "call_attempts", "dispositions", "operators"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT coalesce(max(id), 1) FROM {table}))")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


CHILD = r"""
import json, resource, sys, time
from datetime import date
sys.path.insert(0, sys.argv[1])
from kernel.db.engine import Database
from dialer.reports import Period, compute_summary
db = Database(sys.argv[2])
period = Period.days(date(2026, 10, 1), date(2026, 10, 31), "Europe/Moscow")
t = time.perf_counter()
rows = compute_summary(db.engine, period, by=sys.argv[3] or None)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rows": len(rows), "leads": sum(r.leads or 0 for r in rows),
                  "calls": sum(r.calls for r in rows),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_report(url: str, by: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), url, by], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--pg", help="PostgreSQL server URL (a scratch database is created there)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, scratch_database(args.pg, folder, "bench_report") as url:
        db = Database(url)
        upgrade(db)
        t = time.perf_counter()
        fill(db, args.leads)
        print(f"{'PostgreSQL' if db.is_postgres else 'SQLite'}: {args.leads:,} leads written in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        db.dispose()
        for by, goal in GOALS.items():
            runs = [run_report(url, "" if by == "summary" else by) for _ in range(args.repeat)]
            times = sorted(r["seconds"] for r in runs)
            print(f"report {by:<13} {runs[0]['leads']:>9,} leads {runs[0]['calls']:>9,} calls "
                  f"{runs[0]['rows']:>5} rows: min {times[0]:.2f} s, median {times[len(times) // 2]:.2f} s "
                  f"(goal <= {goal:.0f} s), peak RSS {max(r['rss_mb'] for r in runs):.0f} MB", flush=True)


if __name__ == "__main__":
    main()
