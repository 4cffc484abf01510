"""Running the real daemon against the simulated PBX over TCP, with a real database, in a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

import httpx
from sqlalchemy import select

from kernel.clock import Clock, ScaledClock
from dialer.daemon import Daemon
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead
from dialer.pbx_sim.operators import OperatorSpec
from dialer.pbx_sim.scenarios import CustomerBook
from dialer.pbx_sim.server import PbxConfig, SimulatedPbx
from kernel.settings import Settings, load_settings
from leads.attempt import AttemptState

TOKEN = "test-token"
SPEED = 10.0   # simulated seconds per wall second, for the PBX and the daemon's clock alike
REPO = Path(__file__).resolve().parents[1]


def daemon_settings(db_url: str, ami_port: int, **overrides: Any) -> Settings:
    values = {"db_url": db_url, "ami.port": ami_port, "ami.secret": "dialer-secret", "intake.token": TOKEN,
              "ami.ping_interval_seconds": 2.0, "ami.reconnect_min_seconds": 0.05,
              "ami.reconnect_max_seconds": 0.5, "dial.number_format": "e164", "dial.wrapup_limit_seconds": 5.0,
              "daemon_id": "test-daemon"}
    values.update(overrides)
    return load_settings(env={}, overrides=values)


def make_pbx(rules: list[dict[str, Any]], operators: Iterable[OperatorSpec] | None = None,
             speed: float = SPEED, clock: Clock | None = None, **config: Any) -> SimulatedPbx:
    ops = list(operators) if operators is not None else [
        OperatorSpec("PJSIP/op1", "Анна", talk=5, wrapup=0.5, ring=0.5),
        OperatorSpec("PJSIP/op2", "Иван", talk=5, wrapup=0.5, ring=0.5)]
    return SimulatedPbx(PbxConfig(speed=speed, seed=1, auth_failure_delay=0.05, **config),
                        CustomerBook.from_rules(rules),
                        ops, clock=clock)


@contextlib.asynccontextmanager
async def running_daemon(settings: Settings, db: Database, clock: Clock, **kwargs: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, db, clock, http_port=0, drain_seconds=kwargs.pop("drain_seconds", 10.0), **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await asyncio.wait_for(daemon.ready.wait(), 20)
    if task.done():
        task.result()
    try:
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def post_leads(url: str, leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        answers = []
        for lead in leads:
            response = await client.post(f"{url}/leads", json=lead, headers={"X-Dialer-Token": TOKEN})
            assert response.status_code == 202, response.text
            answers.append(response.json())
        return answers


def attempts(db: Database) -> list[CallAttempt]:
    with db.read() as session:
        return list(session.scalars(select(CallAttempt).order_by(CallAttempt.id)))


def leads(db: Database) -> list[Lead]:
    with db.read() as session:
        return list(session.scalars(select(Lead).order_by(Lead.id)))


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def all_ended(db: Database, expected: int):
    rows = attempts(db)
    return len(rows) >= expected and all(a.state == AttemptState.ENDED.value for a in rows)


def moscow_day_clock(hour: int = 11, speed: float = SPEED) -> ScaledClock:
    from zoneinfo import ZoneInfo
    return ScaledClock(datetime(2026, 11, 24, hour, 0, tzinfo=ZoneInfo("Europe/Moscow")), speed)


class PbxThread:
    """The simulated PBX on its own event loop thread (for tests that run the daemon as a subprocess)."""

    def __init__(self, pbx: SimulatedPbx) -> None:
        self.pbx = pbx
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> "PbxThread":
        self.thread.start()
        self.port = self.call(self.pbx.start("127.0.0.1", 0))
        return self

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def run(self, function, *args):
        async def wrapper():
            return function(*args)
        return self.call(wrapper())

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.call(self.pbx.stop(), timeout=15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_daemon_process(env: dict[str, str], http_port: int) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    # simulated daytime (Moscow 11:00), so the test does not depend on when it runs (quiet hours)
    return subprocess.Popen([sys.executable, "-m", "cli", "run", "--port", str(http_port), "--drain-seconds", "5",
                             "--sim-start", "2026-11-24T11:00+03:00", "--sim-speed", "10"],
                            cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited early ({process.returncode}): {process.stdout.read()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("daemon HTTP did not come up")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"daemon did not stop within {timeout}s: {out[-3000:]}")
    return process.returncode, out


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
