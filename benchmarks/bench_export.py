"""Nightly export speed: 1,000,000 outcomes to CSV (the incremental, exactly-once run: stamp + stream +
atomic rename) and to JSONL (a --since/--until re-export), with peak RSS of the exporting process.

    .venv/bin/python benchmarks/bench_export.py              # 1,000,000 outcomes, SQLite
    .venv/bin/python benchmarks/bench_export.py --quick      # 20,000 outcomes
    .venv/bin/python benchmarks/bench_export.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

The outbox is filled by a separate process, and each export runs in a fresh process, so each peak RSS
is the export's own (flat memory: the rows are streamed in fetches of 5,000).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from sqlalchemy import insert  # noqa: E402

from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from kernel.db.models import OutboxMessage  # noqa: E402
from kernel.settings import ExportSettings, Settings  # noqa: E402
from benchmarks.scratch_db import scratch_database  # noqa: E402

START = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
CHUNK = 20_000


def payload(i: int) -> dict:
    at = START + timedelta(seconds=i % 50_000)
    connected = i % 4 == 0
    return {
        "idempotency_key": f"outcome-{i}", "outcome_at": at.isoformat(), "lead_id": i // 3 + 1,
        "order_number": f"A-{i:08d}", "source": "site-form", "source_item_id": None, "phone": f"+7912{i % 10_000_000:07d}",
        "name": "Екатерина Соколова", "product": "Диван угловой «Модерн»", "attempt_id": i + 1, "attempt_no": i % 3 + 1,
        "attempts": i % 3 + 1, "result": "connected" if connected else "no_answer", "hangup_cause": 16,
        "disposition": "confirmed" if connected else None, "amount": "15990.00" if connected else None,
        "currency": "RUB" if connected else None, "callback_at": None,
        "comment": "Доставка в субботу, позвонить за час" if connected else None,
        "custom_fields": {"доставка": "курьер"} if connected else None, "operator_id": 3 if connected else None,
        "operator": "Ольга Смирнова" if connected else None, "recorded_by": "Ольга Смирнова" if connected else None,
        "claimed_at": at.isoformat(), "dialed_at": at.isoformat(), "answered_at": at.isoformat() if connected else None,
        "connected_at": at.isoformat() if connected else None, "ended_at": at.isoformat(),
        "talk_seconds": 184 if connected else None, "recording": f"rec/{i}.wav" if connected else None,
        "lead_status": "closed" if connected else "retry", "close_reason": "confirmed" if connected else None,
        "alert": None,
    }


def fill(url: str, outcomes: int) -> None:
    db = Database(url)
    upgrade(db)
    for first in range(0, outcomes, CHUNK):
        rows = [{"topic": "outcome", "idempotency_key": f"outcome-{i}", "payload": payload(i), "status": "sent",
                 "failures": 0, "next_try_at": START, "created_at": START + timedelta(seconds=i % 50_000)}
                for i in range(first, min(first + CHUNK, outcomes))]
        with db.write() as session:
            session.execute(insert(OutboxMessage), rows)
    db.dispose()


def export(url: str, folder: str, kind: str) -> dict:
    from dialer.crm.export import export_outcomes, export_range
    db = Database(url)
    settings = Settings(db_url=url, export=ExportSettings(directory=folder))
    now = START + timedelta(days=1)
    started = time.perf_counter()
    if kind == "nightly-csv":
        result = export_outcomes(db, settings, now)
    else:
        result = export_range(db, settings, START - timedelta(days=1), now, fmt="jsonl")
    seconds = time.perf_counter() - started
    db.dispose()
    return {"seconds": seconds, "rows": result.rows, "bytes": result.path.stat().st_size,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    if done.returncode != 0:
        sys.exit(done.stderr)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 outcomes")
    parser.add_argument("--outcomes", type=int, default=None)
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--fill", nargs=2, metavar=("DB_URL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=3, metavar=("DB_URL", "FOLDER", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        fill(args.fill[0], int(args.fill[1]))
        return
    if args.export:
        print(json.dumps(export(*args.export)))
        return

    outcomes = args.outcomes or (20_000 if args.quick else 1_000_000)
    folder = tempfile.mkdtemp(prefix="bench-export-")
    try:
        with scratch_database(args.pg, folder, "bench_export") as url:
            started = time.perf_counter()
            child("--fill", url, str(outcomes))
            print(f"export of {outcomes:,} outcomes ({'PostgreSQL' if args.pg else 'SQLite'}); filled in "
                  f"{time.perf_counter() - started:.1f} s; machine shared with other work, figures are indicative")
            for kind in ("nightly-csv", "range-jsonl"):
                figures = json.loads(child("--export", url, folder, kind))
                assert figures["rows"] == outcomes, figures
                print(f"  {kind:<12} {figures['seconds']:7.1f} s  {figures['rows'] / figures['seconds']:9.0f} "
                      f"outcomes/s  file {figures['bytes'] / 1e6:7.1f} MB  peak RSS {figures['peak_rss_mb']:6.1f} MB")
    finally:
        for path in Path(folder).glob("*"):
            path.unlink()
        os.rmdir(folder)


if __name__ == "__main__":
    main()
