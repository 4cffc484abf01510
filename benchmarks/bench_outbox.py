"""Outbox throughput: outcomes delivered per second to a local CRM stub (a real HTTP server in its own
process on 127.0.0.1), through the real sender (claim with lease, POST, record), on SQLite or PostgreSQL.

    .venv/bin/python benchmarks/bench_outbox.py                 # 5,000 outcomes, concurrency 1, 4, 16
    .venv/bin/python benchmarks/bench_outbox.py --quick         # 200 outcomes
    .venv/bin/python benchmarks/bench_outbox.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Two outcomes per lead (order per lead is kept, so a lead's second outcome waits for its first). Each run
twice: a CRM that answers at once (the sender's own cost) and one that takes 50 ms a call (where
crm.concurrency pays).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from sqlalchemy import func, insert, select, update  # noqa: E402

from kernel.clock import SystemClock  # noqa: E402
from dialer.crm.sender import OutboxSender  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from kernel.db.models import Lead, OutboxMessage  # noqa: E402
from kernel.settings import CrmSettings  # noqa: E402
from benchmarks.scratch_db import scratch_database  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
LATENCY = 0.05   # a CRM that takes 50 ms per webhook call, as hosted CRMs do


def fill(db: Database, outcomes: int) -> None:
    leads = outcomes // 2
    with db.write() as session:
        session.execute(insert(Lead), [
            {"received_at": NOW, "source": "bench", "phone_e164": f"+7912{i:07d}", "name": "Мария Кузнецова",
             "status": "retry", "attempts_count": 2, "contacts_count": 0} for i in range(leads)])
        lead_ids = list(session.scalars(select(Lead.id).order_by(Lead.id)))
        rows = []
        for n in (1, 2):
            for lead_id in lead_ids:
                key = f"outcome-{lead_id}-{n}"
                rows.append({"topic": "outcome", "lead_id": lead_id, "idempotency_key": key, "status": "pending",
                             "failures": 0, "next_try_at": NOW, "created_at": NOW,
                             "payload": {"idempotency_key": key, "lead_id": lead_id, "attempt_no": n,
                                         "result": "no_answer", "name": "Мария Кузнецова",
                                         "phone": "+79120000000", "order_number": f"A-{lead_id}",
                                         "comment": "Перезвонить после обеда"}})
        session.execute(insert(OutboxMessage), rows)


def reset(db: Database) -> None:
    with db.write() as session:
        session.execute(update(OutboxMessage).values(status="pending", failures=0, next_try_at=NOW, sent_at=None))


def start_stub(delay: float) -> tuple[subprocess.Popen, str]:
    stub = subprocess.Popen([sys.executable, "-m", "dialer.crm.stub", "--delay", str(delay)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return stub, stub.stdout.readline().strip()


def run(db: Database, url: str, concurrency: int) -> tuple[float, int]:
    settings = CrmSettings(webhook_url=url, concurrency=concurrency, timeout_seconds=30)
    sender = OutboxSender(db, settings, SystemClock(), random.Random(1))
    started = time.perf_counter()
    counts = asyncio.run(sender.send_due(SystemClock().now() + timedelta(days=1)))
    return time.perf_counter() - started, counts.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 outcomes")
    parser.add_argument("--outcomes", type=int, default=None)
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server URL (a scratch database is created)")
    args = parser.parse_args()
    outcomes = args.outcomes or (200 if args.quick else 5_000)

    with scratch_database(args.pg, tempfile.mkdtemp(prefix="bench-outbox-"), "bench_outbox") as url:
        db = Database(url)
        try:
            upgrade(db)
            fill(db, outcomes)
            print(f"outbox -> CRM stub ({'PostgreSQL' if args.pg else 'SQLite'}), {outcomes} outcomes, "
                  f"{outcomes // 2} leads; machine shared with other work, figures are indicative")
            for delay in (0.0, LATENCY):
                stub, crm_url = start_stub(delay)
                try:
                    for concurrency in ((4, 16) if args.quick and delay else (1, 4, 16)):
                        reset(db)
                        seconds, sent = run(db, crm_url, concurrency)
                        with db.read() as session:
                            delivered = session.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
                        assert sent == delivered == outcomes, (sent, delivered)
                        print(f"  CRM answers in {delay * 1000:3.0f} ms + HTTP, concurrency {concurrency:>2}: "
                              f"{seconds:6.2f} s  {sent / seconds:8.0f} outcomes/s")
                finally:
                    stub.send_signal(signal.SIGTERM)
                    stub.communicate(timeout=10)
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
