"""The operator console in a real headless Chromium, against the real daemon and the simulated PBX.

Shared by tests/test_console_browser.py and benchmarks/bench_screen_pop.py:
- `DaemonThread`: the simulated PBX and the daemon on their own event loop thread (as if the daemon
  were another process), a real database, real HTTP on 127.0.0.1;
- `launch_chromium`: Debian's /usr/bin/chromium driven by Playwright (never `playwright install`);
- `OperatorPage`: what an operator does on the page (sign in, pause, wait for the card, dispose);
- `screen_pop_delays`: from the AMI event that connected each call to its card on screen, in ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx

from dialer.console.auth import set_operator_password
from dialer.daemon import Daemon
from kernel.db.engine import Database
from dialer.pbx_sim.operators import OperatorSpec
from leads.operators import add_operator
from tests.daemon_harness import TOKEN, daemon_settings, make_pbx, moscow_day_clock

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OPERATOR_PASSWORD = "Пароль-Анны-2026"
TEAMLEAD_PASSWORD = "смена-руководитель"
SPEED = 10.0
# Every customer answers at once and talks briefly; the operator's phone rings briefly.
CUSTOMERS = [{"pattern": r".*", "outcome": "answer", "after": 0.5, "talk": 2}]
OPERATORS = [OperatorSpec("PJSIP/op1", "Анна", talk=30, wrapup=0.2, ring=0.2)]


class DaemonThread:
    """The simulated PBX and the real Daemon, running on an event loop in a thread of their own."""

    def __init__(self, db: Database, *, operators: list[OperatorSpec] = OPERATORS,
                 customers: list[dict[str, Any]] = CUSTOMERS, speed: float = SPEED,
                 pbx_config: dict[str, Any] | None = None, **overrides: Any) -> None:
        self.db = db
        self.operators = operators
        self.customers = customers
        self.speed = speed
        self.pbx_config = pbx_config or {}
        self.overrides = {"console.teamlead_password": TEAMLEAD_PASSWORD, "console.secret": "x" * 32,
                          "dial.wrapup_limit_seconds": 600.0, **overrides}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="daemon-loop", daemon=True)
        self.daemon: Daemon | None = None
        self.url = ""

    def __enter__(self) -> "DaemonThread":
        self.thread.start()
        self._call(self._start(), 60)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with contextlib.suppress(Exception):
            self._call(self._stop(), 90)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _start(self) -> None:
        self.pbx = make_pbx(self.customers, self.operators, speed=self.speed, **self.pbx_config)
        port = await self.pbx.start()
        settings = daemon_settings(str(self.db.engine.url.render_as_string(hide_password=False)), port,
                                   **self.overrides)
        self.daemon = Daemon(settings, self.db, moscow_day_clock(speed=self.speed), http_port=0, drain_seconds=5)
        self._stop_event = asyncio.Event()
        self._task = asyncio.create_task(self.daemon.run(self._stop_event))
        await asyncio.wait_for(self.daemon.ready.wait(), 30)
        if self._task.done():
            self._task.result()
        self.url = self.daemon.http_url

    async def _stop(self) -> None:
        self._stop_event.set()
        try:
            await asyncio.wait_for(self._task, 60)
        finally:
            await self.pbx.stop()

    def post_lead(self, lead: dict[str, Any]) -> int:
        answer = httpx.post(f"{self.url}/leads", json=lead, headers={"X-Dialer-Token": TOKEN}, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()["lead_id"]


def register_operators(db: Database, operators: list[OperatorSpec] = OPERATORS,
                       password: str = OPERATOR_PASSWORD) -> dict[str, int]:
    """Each simulated operator registered in the dialer with a console password: interface -> id."""
    from datetime import datetime, timezone
    ids = {}
    for spec in operators:
        record = add_operator(db, name=spec.name, interface=spec.interface, now=datetime.now(timezone.utc))
        set_operator_password(db, spec.interface, password)
        ids[spec.interface] = record.id
    return ids


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OperatorPage:
    """One operator's console tab."""

    page: Any
    base_url: str

    def sign_in(self, login: str, password: str) -> None:
        self.page.goto(f"{self.base_url}/console/login?next=/console")
        self.page.fill("#login", login)
        self.page.fill("#password", password)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("#state")

    def wait_state(self, state: str, timeout: float = 20_000) -> None:
        self.page.wait_for_selector(f'#state[data-state="{state}"]', timeout=timeout)

    def wait_card(self, lead_id: int, timeout: float = 30_000) -> Any:
        return self.page.wait_for_selector(f'#card[data-lead="{lead_id}"] #lead-name', timeout=timeout)

    def dispose(self, kind: str, *, amount: str | None = None, comment: str | None = None,
                topic: str | None = None) -> None:
        self.page.select_option("#kind", kind)
        if amount is not None:
            self.page.fill("#amount", amount)
        if topic is not None:
            self.page.select_option("#topic", topic)
        if comment is not None:
            self.page.fill("#comment", comment)
        self.page.click("#disposition-submit")

    def pops(self) -> list[dict[str, Any]]:
        return self.page.evaluate("window.dialerConsole.pops")


def screen_pop_delays(pops: list[dict[str, Any]]) -> list[float]:
    """Milliseconds from the AMI event that connected each call to its lead card on screen."""
    return [p["shown_ms"] - p["event_ms"] for p in pops if p.get("event_ms") is not None]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated between the two nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_calls(daemon: DaemonThread, operator: OperatorPage, count: int, *, first_index: int = 0) -> list[int]:
    """`count` leads, one after another: each call pops up on the page, the operator waits for the
    end of the conversation (wrap-up) and records `not_interested`. Returns the lead ids."""
    lead_ids = []
    for i in range(first_index, first_index + count):
        lead_id = daemon.post_lead({"phone": f"+7912700{i:04d}", "name": f"Клиент №{i}", "product": "Чайник",
                                    "order_number": f"B-{i}"})
        operator.wait_card(lead_id)
        operator.wait_state("wrap_up")
        operator.dispose("not_interested", comment="Передумал")
        operator.page.wait_for_selector("#disposition-done")
        lead_ids.append(lead_id)
    return lead_ids
