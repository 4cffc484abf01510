"""Several daemons on one PostgreSQL (issue 18): 1, 2 and 4 `dialer run` processes, each with its own
simulated PBX (its own process, AMI over TCP on loopback) and its own operators, leads fed through all
their webhooks.

Two phases per daemon count, on one scratch database (optionally pre-filled with --store leads of
bench_claim's mix, so that the claims run against a big table):
1. backlog: --backlog leads posted as fast as the webhooks take them (lists of 50, round robin); the
   daemons dial them all. Claims per second = Originates at the PBXs / seconds from the first to the
   last one.
2. trickle: --trickle single leads, one every 1/--rate s, round robin; webhook 202 -> Originate at
   the PBX (stamped by the PBX process with time.monotonic(), system-wide) p50 / p99.
Every customer is busy at once (a busy lead is redialed only after 10 minutes, longer than a run), so
a lead originated twice, at the same PBX or at two, is a double dial: counted from the PBXs' records.
Also: lock waits of the database's backends (pg_stat_activity, sampled every 50 ms), the server's CPU
per claim (its backends' /proc/<pid>/schedstat; intake and results included: all the database work a
lead costs), and each daemon's own CPU.

    .venv/bin/python benchmarks/bench_multi_daemon.py                            # 1, 2, 4 daemons
    .venv/bin/python benchmarks/bench_multi_daemon.py --daemons 1,2 --backlog 500 --trickle 100
    .venv/bin/python benchmarks/bench_multi_daemon.py --store 1000000            # on a 1M-lead table
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import httpx  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from benchmarks.bench_claim import fill  # noqa: E402
from benchmarks.bench_daemon import PbxPlan, PbxProcess  # noqa: E402
from benchmarks.scratch_db import scratch_database  # noqa: E402
from dialer.pbx_sim import CustomerBook, OperatorSpec  # noqa: E402
from kernel.clock import ScaledClock  # noqa: E402
from kernel.db.engine import Database  # noqa: E402
from kernel.db.migrate import upgrade  # noqa: E402
from leads.operators import add_operator  # noqa: E402
from tests.daemon_harness import free_port, stop_process, wait_http  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("Europe/Moscow"))
PG_URL = os.environ.get("DIALER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DatabaseWatch:
    """Samples the scratch database's backends: lock waits, and their CPU time (schedstat, ns)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.samples = self.lock_waits = 0
        self.cpu_ns: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "DatabaseWatch":
        self._thread.start()
        return self

    def _loop(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(0.05):
                rows = conn.execute(text("SELECT pid, wait_event_type FROM pg_stat_activity WHERE datname = :n "
                                         "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"),
                                    {"n": self.name}).all()
                self.samples += 1
                self.lock_waits += sum(1 for _, wait in rows if wait == "Lock")
                for pid, _ in rows:
                    try:
                        with open(f"/proc/{pid}/schedstat") as stat:
                            self.cpu_ns[pid] = int(stat.read().split()[0])
                    except OSError:
                        pass

    def cpu_seconds(self) -> float:
        return sum(self.cpu_ns.values()) / 1e9

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.engine.dispose()


def start_daemon(db_url: str, n: int, ami_port: int, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "DIALER_DB_URL": db_url,
           "DIALER_AMI_PORT": str(ami_port), "DIALER_AMI_SECRET": "dialer-secret", "DIALER_INTAKE_TOKEN": TOKEN,
           "DIALER_DAEMON_ID": f"daemon-{n}", "DIALER_DIAL_NUMBER_FORMAT": "e164", "DIALER_LOG_LEVEL": "WARNING",
           "DIALER_EXPORT_DIRECTORY": str(folder / f"exports-{n}")}
    process = subprocess.Popen([sys.executable, "-m", "cli", "run", "--port", str(port), "--drain-seconds", "5",
                                "--sim-start", NOON.isoformat(timespec="minutes"), "--sim-speed", "1"],
                               cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, f"http://127.0.0.1:{port}"


def lead(n: int) -> dict:
    return {"phone": f"+7915{n:07d}", "name": "Анна Петрова", "order_number": f"M-{n}", "product": "кофемашина"}


def run(count: int, args: argparse.Namespace, serial: itertools.count) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(PG_URL, tmp, "dialer_multi18") as url:
        folder = Path(tmp)
        db = Database(url)
        upgrade(db)
        if args.store:
            fill(db, args.store, NOON, pg_fill="sql")
        customers = CustomerBook.from_rules([{"pattern": r".*", "outcome": "busy", "after": 0.05}])
        pbxs, daemons = [], []
        for d in range(1, count + 1):
            operators = tuple(OperatorSpec(f"PJSIP/d{d}op{o}", f"Оператор {d}-{o}", talk=5, wrapup=0.5, ring=0.2)
                              for o in range(1, args.operators + 1))
            for spec in operators:
                add_operator(db, name=spec.name, interface=spec.interface, now=NOON)
            pbxs.append(PbxProcess(PbxPlan(customers, operators, 1.0)).__enter__())
        clock = ScaledClock(NOON, 1.0)
        try:
            for d, pbx in enumerate(pbxs, 1):
                daemons.append(start_daemon(url, d, pbx.start(clock), folder))
            for process, base in daemons:
                wait_http(base, process, timeout=120)
            time.sleep(2)   # the daemons read their PBX's queue status (operators) once connected
            cpu_before = [process_cpu(p.pid) for p, _ in daemons]
            clients = [httpx.Client(base_url=base, headers={"X-Dialer-Token": TOKEN}, timeout=60)
                       for _, base in daemons]
            with DatabaseWatch(make_db_name(url)) as watch:
                # 1. backlog
                backlog_ids = post_backlog(clients, args.backlog, serial)
                backlog_done = wait_dialed(url, set(backlog_ids), args.timeout)
                # 2. trickle
                trickle = post_trickle(clients, args.trickle, args.rate, serial)
                wait_dialed(url, {lead_id for lead_id, _ in trickle}, args.timeout)
                db_cpu = watch.cpu_seconds()
                lock_share = watch.lock_waits / max(1, watch.samples)
            cpu_after = [process_cpu(p.pid) for p, _ in daemons]
            for client in clients:
                client.close()
        finally:
            outputs = []
            for process, _ in daemons:
                code, output = stop_process(process, signal.SIGINT, timeout=60)
                outputs.append((code, output))
            originates = []
            for pbx in pbxs:
                stats, stamps = pbx.stop()
                originates.append(stamps)
                pbx.__exit__(None, None, None)
            db.dispose()
        for code, output in outputs:
            if code != 0:
                print(output[-2000:])
    all_stamps = [(lead_id, t) for stamps in originates for lead_id, t in stamps]
    per_lead = Counter(lead_id for lead_id, _ in all_stamps)
    first_at = {}
    for lead_id, t in all_stamps:
        first_at[lead_id] = min(t, first_at.get(lead_id, t))
    backlog_times = sorted(first_at[i] for i in backlog_ids if i in first_at)
    span = backlog_times[-1] - backlog_times[0] if len(backlog_times) > 1 else float("nan")
    latencies = [first_at[i] - received for i, received in trickle if i in first_at]
    claims = len(all_stamps)
    return {"daemons": count, "backlog": len(backlog_ids), "backlog_dialed": len(backlog_times),
            "claims_per_s": (len(backlog_times) - 1) / span if span == span and span > 0 else float("nan"),
            "p50": quantile(latencies, 0.5) * 1000, "p99": quantile(latencies, 0.99) * 1000,
            "trickle": len(trickle), "trickle_dialed": len(latencies),
            "double": sum(1 for c in per_lead.values() if c > 1), "claims": claims,
            "per_pbx": [len(s) for s in originates], "db_cpu_ms": db_cpu * 1000 / max(1, claims),
            "lock_share": lock_share, "daemon_cpu_ms": [(a - b) * 1000 / max(1, claims)
                                                       for a, b in zip(cpu_after, cpu_before)],
            "backlog_done": backlog_done}


def make_db_name(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).database


def post_backlog(clients: list[httpx.Client], count: int, serial: itertools.count) -> list[int]:
    batches = []
    while sum(len(b) for b in batches) < count:
        batches.append([lead(next(serial)) for _ in range(min(50, count - sum(len(b) for b in batches)))])

    def post(item: tuple[int, list[dict]]) -> list[int]:
        n, batch = item
        answer = clients[n % len(clients)].post("/leads", json=batch)
        if answer.status_code != 202:
            raise SystemExit(f"webhook answered {answer.status_code}: {answer.text[:300]}")
        return [row["lead_id"] for row in answer.json()["leads"]]

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return [i for ids in pool.map(post, enumerate(batches)) for i in ids]


def post_trickle(clients: list[httpx.Client], count: int, rate: float, serial: itertools.count
                 ) -> list[tuple[int, float]]:
    sent = []
    started = time.monotonic()
    for n in range(count):
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        answer = clients[n % len(clients)].post("/leads", json=lead(next(serial)))
        received = time.monotonic()
        if answer.status_code != 202 or answer.json()["status"] != "new":
            raise SystemExit(f"lead refused: {answer.status_code} {answer.text[:300]}")
        sent.append((answer.json()["lead_id"], received))
    return sent


def wait_dialed(url: str, lead_ids: set[int], timeout: float) -> bool:
    """Bounded wait until the store has an attempt for every lead (the PBXs' records are read at the end)."""
    engine = create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with engine.connect() as conn:
                dialed = conn.execute(text("SELECT count(DISTINCT lead_id) FROM call_attempts "
                                           "WHERE lead_id = ANY(:ids)"), {"ids": sorted(lead_ids)}).scalar()
            if dialed >= len(lead_ids):
                return True
        return False
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", default="1,2,4")
    parser.add_argument("--operators", type=int, default=10, help="operators per daemon (its own PBX)")
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--trickle", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="trickle leads per second (all webhooks)")
    parser.add_argument("--store", type=int, default=0, help="leads already in the store (bench_claim mix)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    print(f"several daemons on one PostgreSQL ({args.operators} operators each, backlog {args.backlog}, "
          f"trickle {args.trickle} at {args.rate:g}/s, store {args.store:,}; 2-core machine shared with other work)")
    serial = itertools.count(1)
    for count in [int(c) for c in args.daemons.split(",")]:
        figures = run(count, args, serial)
        print(f" {count} daemon(s): backlog {figures['backlog_dialed']}/{figures['backlog']} dialed at "
              f"{figures['claims_per_s']:.0f} claims/s; webhook->Originate p50 {figures['p50']:.0f} ms, "
              f"p99 {figures['p99']:.0f} ms ({figures['trickle_dialed']}/{figures['trickle']}); "
              f"double dials {figures['double']} (goal 0)")
        print(f"   calls per PBX {figures['per_pbx']}; database CPU {figures['db_cpu_ms']:.2f} ms per claim "
              f"(intake and result included); backends waiting on a lock {figures['lock_share']:.2f} on "
              f"average; daemon CPU per claim " + ", ".join(f"{c:.1f}" for c in figures['daemon_cpu_ms']) + " ms",
              flush=True)


if __name__ == "__main__":
    main()
