"""Webhook intake throughput: leads/s through POST /leads into SQLite, over real HTTP on loopback.

The server (the product's app under uvicorn, as `dialer serve` runs it) lives in its own process so that
the clients do not share its GIL. Two runs: one sequential client, then 20 concurrent clients
(asyncio + httpx.AsyncClient). Every lead has its own phone, so nearly all are `new`.

    .venv/bin/python benchmarks/bench_webhook.py            # 3,000 + 6,000 leads
    .venv/bin/python benchmarks/bench_webhook.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

TOKEN = "bench-token"
GOAL = 1000.0
BATCH = 50


def serve(db_url: str, port: int) -> None:
    import uvicorn

    from kernel.clock import SystemClock
    from kernel.db.engine import Database
    from kernel.settings import IntakeSettings, Settings
    from dialer.web.app import create_app
    from dialer.web.server import server_config
    from leads.intake import Intake

    db = Database(db_url)
    db.checkpoint_in_background()   # as `dialer serve` does
    settings = Settings(db_url=db_url, intake=IntakeSettings(token=TOKEN))
    app = create_app(settings, db, Intake(db), SystemClock())
    uvicorn.Server(server_config(app, "127.0.0.1", port, log_level="warning")).run()


def lead(n: int) -> dict:
    return {"phone": f"+7912{1_000_000 + n:07d}", "name": "Анна Петрова", "order_number": f"B-{n}",
            "product": "кофемашина", "comment": "Перезвоните после обеда", "utm_source": "bench"}


def sequential(url: str, start: int, count: int) -> tuple[float, list[float], dict[str, int]]:
    latencies, statuses = [], {}
    with httpx.Client(base_url=url, headers={"X-Dialer-Token": TOKEN}) as client:
        began = time.perf_counter()
        for n in range(start, start + count):
            t = time.perf_counter()
            answer = client.post("/leads", json=lead(n))
            latencies.append(time.perf_counter() - t)
            status = answer.json()["status"] if answer.status_code == 202 else f"http {answer.status_code}"
            statuses[status] = statuses.get(status, 0) + 1
        return time.perf_counter() - began, latencies, statuses


def batched(url: str, start: int, requests: int, size: int) -> tuple[float, list[float], dict[str, int]]:
    """The webhook's list form: `size` leads per POST."""
    latencies, statuses = [], {}
    with httpx.Client(base_url=url, headers={"X-Dialer-Token": TOKEN}) as client:
        began = time.perf_counter()
        for r in range(requests):
            first = start + r * size
            t = time.perf_counter()
            answer = client.post("/leads", json=[lead(n) for n in range(first, first + size)])
            latencies.append(time.perf_counter() - t)
            status = "ok" if answer.status_code == 202 else f"http {answer.status_code}"
            statuses[status] = statuses.get(status, 0) + 1
        return time.perf_counter() - began, latencies, statuses


def concurrent(url: str, start: int, count: int, clients: int) -> tuple[float, list[float], dict[str, int]]:
    """`clients` threads, each with its own httpx.Client (keep-alive connection), posting at once."""
    share = count // clients
    results = [sequential_part(url) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=results[i], args=(start + i * share, share, barrier)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies = [t for part in results for t in part.latencies]
    statuses: dict[str, int] = {}
    for part in results:
        for status, n in part.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return elapsed, latencies, statuses


class sequential_part:
    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}

    def __call__(self, start: int, count: int, barrier: threading.Barrier) -> None:
        with httpx.Client(base_url=self.url, headers={"X-Dialer-Token": TOKEN}, timeout=60) as client:
            client.get("/health")  # open the connection before the clock starts
            barrier.wait()
            for n in range(start, start + count):
                t = time.perf_counter()
                answer = client.post("/leads", json=lead(n))
                self.latencies.append(time.perf_counter() - t)
                status = answer.json()["status"] if answer.status_code == 202 else f"http {answer.status_code}"
                self.statuses[status] = self.statuses.get(status, 0) + 1


def raw_concurrent(url: str, start: int, count: int, clients: int) -> tuple[float, list[float], dict[str, int]]:
    """Like `concurrent`, but each client is a bare keep-alive HTTP/1.1 socket (asyncio streams) that costs
    far less CPU than httpx, so the figure shows what the server itself sustains on this machine."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    def request(n: int) -> bytes:
        body = json.dumps(lead(n), ensure_ascii=False).encode()
        return (f"POST /leads HTTP/1.1\r\nHost: {host}\r\nX-Dialer-Token: {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    async def client_task(numbers: range) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for n in numbers:
            t = time.perf_counter()
            writer.write(request(n))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            status = json.loads(body)["status"] if head.startswith(b"HTTP/1.1 202") else head.split(b"\r\n")[0]
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()
        await writer.wait_closed()

    async def run() -> float:
        share = count // clients
        began = time.perf_counter()
        await asyncio.gather(*(client_task(range(start + i * share, start + (i + 1) * share))
                               for i in range(clients)))
        return time.perf_counter() - began

    return asyncio.run(run()), latencies, statuses


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, server_pid: int, run, *args) -> float:
    cpu_before, client_before = cpu_seconds(server_pid), time.process_time()
    elapsed, latencies, statuses = run(*args)
    server_cpu = cpu_seconds(server_pid) - cpu_before
    client_cpu = time.process_time() - client_before
    leads = sum(statuses.values()) * (args[-1] if run is batched else 1)
    rate = leads / elapsed
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(f"{label:<34} {leads:>6} leads in {elapsed:6.2f} s = {rate:7.0f} leads/s "
          f"({'meets' if rate >= GOAL else 'BELOW'} the {GOAL:.0f} goal); request p50 "
          f"{statistics.median(ordered) * 1000:5.1f} ms p99 {p99 * 1000:6.1f} ms; server CPU "
          f"{server_cpu / leads * 1e6:5.0f} us/lead (= {leads / max(server_cpu, 1e-9):6.0f} leads/s per core), "
          f"client CPU {client_cpu / leads * 1e6:5.0f} us/lead; {statuses}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run of a few seconds")
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    seq_count, conc_count = (300, 600) if args.quick else (3000, 6000)

    from kernel.db.engine import Database
    from kernel.db.migrate import upgrade

    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        db = Database(db_url)
        upgrade(db)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(db_url, port), daemon=True)
        server.start()
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            sequential(url, 0, 50)  # warm-up: imports, connection pools, SQLite pages
            print("webhook intake into SQLite over loopback (machine shared with other work: figures vary)")
            pid = server.pid
            measure("single leads, 1 client", pid, sequential, url, 100, seq_count)
            measure(f"single leads, {args.clients} clients", pid, concurrent, url, 100 + seq_count, conc_count,
                    args.clients)
            measure(f"single leads, {args.clients} raw sockets", pid, raw_concurrent, url,
                    100 + seq_count + conc_count, conc_count, args.clients)
            measure(f"lists of {BATCH} leads, 1 client", pid, batched, url, 100 + seq_count + 2 * conc_count,
                    conc_count // BATCH, BATCH)
        finally:
            server.terminate()
            server.join(10)
        from sqlalchemy import text
        with db.read() as session:
            rows = session.scalar(text("SELECT count(*) FROM leads"))
        expected = 50 + seq_count + 2 * (conc_count - conc_count % args.clients) + conc_count // BATCH * BATCH
        print(f"rows stored: {rows} (expected {expected})")
        db.dispose()


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
