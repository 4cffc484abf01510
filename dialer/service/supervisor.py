"""`dialer run` under systemd (Type=notify): READY=1 once the AMI is logged in and the webhook
answers /health, WATCHDOG=1 while the event loop turns (also while draining on stop), STOPPING=1
on stop, and SIGHUP: re-read the policy and the scripts catalog at once (calls go on untouched).

Outside systemd ($NOTIFY_SOCKET unset) the notes go nowhere and the daemon runs the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

import httpx

from dialer.service.notify import sd_notify, watchdog_interval

if TYPE_CHECKING:
    from dialer.daemon import Daemon

log = logging.getLogger("dialer.service")

READY_POLL = 0.2


async def run_as_service(daemon: "Daemon", stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload(daemon)))
    run = asyncio.create_task(daemon.run(stop), name="daemon")
    side = [asyncio.create_task(_ready_when_up(daemon, run), name="sd-ready"),
            asyncio.create_task(_stopping_when_asked(stop), name="sd-stopping")]
    interval = watchdog_interval()
    if interval:
        side.append(asyncio.create_task(_watchdog(interval), name="sd-watchdog"))
    try:
        await run
    finally:
        for task in side:
            task.cancel()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)


async def _ready_when_up(daemon: "Daemon", run: asyncio.Task) -> None:
    await daemon.ready.wait()
    async with httpx.AsyncClient(timeout=2) as client:
        while not run.done():
            if daemon.ami.connected and (daemon.http_url is None or await _healthy(client, daemon.http_url)):
                sd_notify(f"READY=1\nSTATUS=dialing: AMI {daemon.pbx} logged in, webhook {daemon.http_url}")
                log.info("service.ready ami=%s http=%s", daemon.pbx, daemon.http_url)
                return
            await asyncio.sleep(READY_POLL)


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def _stopping_when_asked(stop: asyncio.Event) -> None:
    await stop.wait()
    sd_notify("STOPPING=1\nSTATUS=stopping: letting calls in progress finish")


async def _watchdog(interval: float) -> None:
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def reload(daemon: "Daemon") -> None:
    """SIGHUP: the policy and the scripts catalog are read again now, not at the next claim or card.
    Nothing else changes: calls in progress, the AMI connection and the HTTP server stay as they are."""
    sd_notify("RELOADING=1")
    try:
        policy_version, scripts = await asyncio.to_thread(_reread, daemon)
        log.info("service.reloaded policy_version=%s scripts=%s", policy_version, scripts)
    except Exception as exc:   # a bad catalog or an unreachable store must not stop the daemon
        log.error("service.reload_failed reason=%s", exc)
    finally:
        sd_notify("READY=1")


def _reread(daemon: "Daemon") -> tuple[int, str]:
    from leads.policy import store
    with store._cache_lock:
        store._cache.clear()
    policy = store.current_policy(daemon.db)
    console = getattr(daemon, "console", None)
    if console is None:
        return policy.version, "not loaded (no console)"
    book = console.scripts
    with book._lock:
        book._signature = None            # force a fresh read of every file
    catalog, problem = book.catalog()
    return policy.version, problem or f"ok ({len(catalog.scripts) if catalog is not None else 0} scripts)"
