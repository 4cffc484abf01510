"""Memory of the long-running processes against the size of the store (issue 18).

For each store size: a store is filled with that many leads (bench_claim's realistic mix), then the
REAL `dialer run` process dials from it against the simulated PBX (AMI over TCP on loopback) for
--seconds; its resident memory (VmRSS, and the peak VmHWM, from /proc) is read at start-up and while it
dials. Then `dialer serve` (the webhook) stores --webhook-leads leads posted over HTTP (the list form,
50 per request) and its memory is read every 10,000 leads.

    .venv/bin/python benchmarks/bench_memory.py                             # 0, 100k, 1M leads (SQLite)
    .venv/bin/python benchmarks/bench_memory.py --sizes 0,20000 --seconds 10 --webhook-leads 10000
    .venv/bin/python benchmarks/bench_memory.py --db postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        --sizes 1000000

Goals: daemon <= 150 MB at 1M leads and flat from 1M to 10M; webhook flat (no memory per lead stored).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import httpx  # noqa: E402

from benchmarks.bench_claim import fill  # noqa: E402
from benchmarks.scratch_db import scratch_database  # noqa: E402
from dialer.pbx_sim.operators import OperatorSpec  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from tests.daemon_harness import PbxThread, free_port, make_pbx, stop_process, wait_http  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Europe/Moscow"))
GOAL_DAEMON_MB = 150


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _unit = line.split()
                values[key] = int(amount) / 1024
    return values.get("VmRSS:", 0.0), values.get("VmHWM:", 0.0)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def env_for(db_url: str, ami_port: int | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "DIALER_DB_URL": db_url,
           "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_LOG_LEVEL": "WARNING", "DIALER_DAEMON_ID": "bench-memory",
           "DIALER_DIAL_NUMBER_FORMAT": "e164", "DIALER_DIAL_WRAPUP_LIMIT_SECONDS": "5"}   # no console: free again
    if ami_port is not None:
        env.update({"DIALER_AMI_PORT": str(ami_port), "DIALER_AMI_SECRET": "dialer-secret"})
    return env


def attempts_made(db: Database) -> int:
    from sqlalchemy import func, select
    from kernel.db.models import CallAttempt
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(CallAttempt))


def daemon_memory(db_url: str, seconds: float, operators: int) -> dict[str, float]:
    """`dialer run` dialing from the store for `seconds`: RSS at start, at the end, peak; calls made."""
    ops = [OperatorSpec(f"PJSIP/op{n}", f"Оператор {n}", talk=3, wrapup=0.5, ring=0.2) for n in range(1, operators + 1)]
    pbx = make_pbx([{"pattern": r"\+7.*[02468]", "outcome": "busy", "after": 1},
                    {"pattern": r"\+7.*", "outcome": "answer", "after": 1, "talk": 3}], ops, speed=10)
    db = Database(db_url)
    before = attempts_made(db)
    with PbxThread(pbx) as sim:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--port", str(port), "--drain-seconds", "2",
             "--sim-start", NOW.isoformat(timespec="minutes"), "--sim-speed", "10"],
            cwd=REPO, env=env_for(db_url, sim.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_http(f"http://127.0.0.1:{port}", process, timeout=120)
            at_start, _ = memory_mb(process.pid)
            cpu_start = cpu_seconds(process.pid)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.25)
            rss, peak = memory_mb(process.pid)
            cpu = cpu_seconds(process.pid) - cpu_start
        finally:
            code, output = stop_process(process, signal.SIGINT, timeout=60)
        if code != 0:
            print(output[-3000:])
    calls = attempts_made(db) - before
    db.dispose()
    return {"start": at_start, "end": rss, "peak": peak, "calls": calls, "cpu": cpu}


def webhook_memory(db_url: str, leads: int, step: int = 10_000) -> list[tuple[int, float, float]]:
    """`dialer serve` storing `leads` posted leads: (stored so far, RSS, peak) every `step` leads."""
    port = free_port()
    env = {**env_for(db_url), "DIALER_HTTP_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    readings = []
    try:
        wait_http(f"http://127.0.0.1:{port}", process, timeout=60)
        readings.append((0, *memory_mb(process.pid)))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Dialer-Token": TOKEN},
                          timeout=60) as client:
            sent = 0
            while sent < leads:
                batch = [{"phone": f"+7913{2_000_000 + sent + i:07d}", "name": "Анна Петрова",
                          "order_number": f"M-{sent + i}", "product": "кофемашина",
                          "comment": "Перезвоните после обеда", "utm_source": "bench"}
                         for i in range(min(50, leads - sent))]
                answer = client.post("/leads", json=batch)
                if answer.status_code != 202:
                    raise SystemExit(f"webhook answered {answer.status_code}: {answer.text[:300]}")
                sent += len(batch)
                if sent % step == 0 or sent == leads:
                    readings.append((sent, *memory_mb(process.pid)))
    finally:
        stop_process(process, signal.SIGINT, timeout=60)
    return readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100000,1000000", help="store sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the daemon dials per size")
    parser.add_argument("--operators", type=int, default=20)
    parser.add_argument("--webhook-leads", type=int, default=100_000, help="0: skip the webhook part")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (a scratch database is made on it)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    kind = "PostgreSQL" if args.db else "SQLite"
    print(f"memory benchmark ({kind}; machine shared with other work)")
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder, scratch_database(args.db, folder, "dialer_mem") as url:
            db = Database(url)
            upgrade(db)
            took = fill(db, size, NOW, pg_fill="sql") if size else 0.0
            db.dispose()
            figures = daemon_memory(url, args.seconds, args.operators)
            print(f"  daemon, {size:>10,} leads (filled in {took:5.0f} s): RSS at start {figures['start']:6.1f} MB,"
                  f" after {args.seconds:.0f} s of dialing {figures['end']:6.1f} MB, peak {figures['peak']:6.1f} MB"
                  f"  ({figures['calls']} calls, {figures['cpu']:.1f} s CPU)   goal <= {GOAL_DAEMON_MB} MB", flush=True)
    if args.webhook_leads:
        with tempfile.TemporaryDirectory() as folder, scratch_database(args.db, folder, "dialer_mem") as url:
            db = Database(url)
            upgrade(db)
            db.dispose()
            readings = webhook_memory(url, args.webhook_leads)
            print("  webhook (`dialer serve`) RSS while storing leads (goal: flat):")
            for stored, rss, peak in readings:
                print(f"    {stored:>8,} leads stored: RSS {rss:6.1f} MB, peak {peak:6.1f} MB")
            first, last = readings[1] if len(readings) > 2 else readings[0], readings[-1]
            if last[0] > first[0]:
                per_lead = (last[1] - first[1]) * 1024 / (last[0] - first[0])
                print(f"    growth after the first {first[0]:,}: {per_lead:.3f} KB per lead")


if __name__ == "__main__":
    main()
