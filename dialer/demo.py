"""`dialer demo`: the simulated PBX, the real daemon and a stream of sample leads, on simulated time.

Everything is real except the telephone network: leads are POSTed to the daemon's webhook over
HTTP, the daemon talks AMI over TCP to the simulated PBX, and results land in a SQLite file.
The simulated day starts at 09:58 Moscow time, so the first leads arrive in quiet hours and are
dialed when they end at 10:00.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from dialer.bootstrap import initialize
from kernel.clock import ScaledClock
from dialer.daemon import Daemon
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Lead
from dialer.pbx_sim.operators import OperatorSpec
from dialer.pbx_sim.scenarios import CustomerBook
from dialer.pbx_sim.server import PbxConfig, SimulatedPbx
from kernel.settings import Settings, load_settings
from leads.operators import add_operator
from leads.phone import mask_phone
from leads.policy.queue import dial_queue
from leads.samples import sample_leads

OPERATOR_NAMES = ["Анна Смирнова", "Игорь Петров", "Ольга Кузнецова", "Дмитрий Волков", "Елена Соколова",
                  "Павел Морозов", "Татьяна Лебедева", "Сергей Козлов"]
DEMO_SECRET = "demo-secret"


@dataclass
class DemoOptions:
    operators: int = 3
    leads: int = 40
    night_leads: int = 5
    speed: float = 10.0
    duration: float = 90.0        # wall-clock seconds
    seed: int = 7
    db_url: str | None = None
    start: datetime | None = None  # simulated start; see demo_start()


@dataclass
class DemoView:
    """What the live view shows; refreshed by the demo loop."""

    now: datetime
    operators: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    queue: list[dict[str, Any]]
    results: dict[str, int]
    intake: dict[str, int]
    posted: int


def demo_start(today: datetime, zone: str = "Europe/Moscow") -> datetime:
    """09:58 on that day in the center's zone: two simulated minutes of quiet hours, then dialing."""
    return today.astimezone(ZoneInfo(zone)).replace(hour=9, minute=58, second=0, microsecond=0)


async def run_demo(options: DemoOptions, show: Callable[[DemoView], None], stop: asyncio.Event) -> DemoView:
    workdir = Path(tempfile.mkdtemp(prefix="dialer-demo-"))
    db_url = options.db_url or f"sqlite:///{workdir / 'demo.db'}"
    if options.start is None:
        raise ValueError("DemoOptions.start is required (demo_start(now))")
    clock = ScaledClock(options.start, options.speed)
    specs = [OperatorSpec(f"PJSIP/op{i + 1}", OPERATOR_NAMES[i % len(OPERATOR_NAMES)], talk=90, wrapup=10, ring=2)
             for i in range(options.operators)]
    pbx = SimulatedPbx(PbxConfig(speed=options.speed, seed=options.seed), CustomerBook(), specs, clock=clock)
    port = await pbx.start()
    token = secrets.token_urlsafe(16)
    settings = load_settings(env={}, overrides={
        "db_url": db_url, "ami.port": port, "ami.secret": "dialer-secret", "intake.token": token,
        "dial.number_format": "e164", "dial.wrapup_limit_seconds": 20.0, "daemon_id": "demo"})
    db = Database(settings.db_url)
    initialize(db, settings, clock.now())
    for spec in specs:
        with contextlib.suppress(Exception):
            add_operator(db, name=spec.name, interface=spec.interface, now=clock.now())
    daemon = Daemon(settings, db, clock, http_port=0, drain_seconds=10)
    daemon_stop = asyncio.Event()
    daemon_task = asyncio.create_task(daemon.run(daemon_stop))
    await asyncio.wait_for(daemon.ready.wait(), 30)
    if daemon_task.done():
        daemon_task.result()
    posted = {"count": 0}
    intake: dict[str, int] = {}
    feeder = asyncio.create_task(_feed_leads(daemon.http_url, token, options, clock, posted, intake, stop))
    view = _snapshot(daemon, db, pbx, clock, settings, posted["count"], intake)
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + options.duration
    try:
        while not stop.is_set() and loop.time() < ends_at:
            view = await asyncio.to_thread(_snapshot, daemon, db, pbx, clock, settings, posted["count"], intake)
            show(view)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
        daemon_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(daemon_task, 60)
        await pbx.stop()
        view = await asyncio.to_thread(_snapshot, daemon, db, pbx, clock, settings, posted["count"], intake)
        db.dispose()
    return view


async def _feed_leads(url: str, token: str, options: DemoOptions, clock: ScaledClock, posted: dict[str, int],
                      intake: dict[str, int], stop: asyncio.Event) -> None:
    """Night arrivals at once (it is 09:58), then one lead every ~20 simulated seconds."""
    leads = list(sample_leads(options.leads + options.night_leads, seed=options.seed))
    async with httpx.AsyncClient(timeout=10) as client:
        for n, lead in enumerate(leads):
            if stop.is_set():
                return
            if n >= options.night_leads:
                await asyncio.sleep(20 / options.speed)
            response = await client.post(f"{url}/leads", json=lead, headers={"X-Dialer-Token": token})
            posted["count"] += 1
            status = response.json().get("status", "refused") if response.status_code == 202 else "refused"
            intake[status] = intake.get(status, 0) + 1


def _snapshot(daemon: Daemon, db: Database, pbx: SimulatedPbx, clock: ScaledClock, settings: Settings,
              posted: int, intake: dict[str, int]) -> DemoView:
    now = clock.now()
    operators = [{"operator": p.name, "interface": p.interface, "state": p.state(now).value}
                 for p in daemon.board.presences()]
    with db.read() as session:
        in_progress = session.execute(
            select(CallAttempt.id, CallAttempt.lead_id, CallAttempt.state, CallAttempt.operator_interface,
                   CallAttempt.tier, Lead.phone_e164, Lead.name)
            .join(Lead, Lead.id == CallAttempt.lead_id).where(CallAttempt.state != "ended")
            .order_by(CallAttempt.id)).all()
        results = dict(session.execute(select(CallAttempt.result, func.count()).where(CallAttempt.result.is_not(None))
                                       .group_by(CallAttempt.result)).all())
    calls = [{"attempt": r.id, "lead": r.lead_id, "phone": mask_phone(r.phone_e164), "name": r.name or "-",
              "tier": r.tier, "state": r.state, "operator": r.operator_interface or "-"} for r in in_progress]
    try:
        head = dial_queue(db, now, center_zone=settings.center_timezone, limit=5)
    except Exception:   # a snapshot must never stop the demo
        head = []
    center = ZoneInfo(settings.center_timezone)
    queue = [{"lead": e.lead_id, "tier": e.tier, "attempts": e.attempts,
              "deadline": e.deadline.astimezone(center).strftime("%H:%M:%S") if e.deadline else "-", "sla": e.sla or "-",
              "zone": e.zone} for e in head]
    return DemoView(now, operators, calls, queue, results, dict(intake), posted)
