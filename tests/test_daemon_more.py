"""More daemon end-to-end cases, found while benchmarking it (benchmarks/bench_daemon.py).

The daemon against the simulated PBX over real AMI/TCP, a real database, real HTTP (tests/daemon_harness.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

import dialer.attempts
import dialer.daemon
from tests.daemon_harness import (all_ended, attempts, daemon_settings, make_pbx, moscow_day_clock, post_leads,
                                  running_daemon, wait_until)

pytestmark = pytest.mark.timeout(120)


def test_given_slow_store_write_before_originate_when_reconciling_meanwhile_then_the_call_is_not_lost(
        db, monkeypatch):
    """Reconciliation compares the calls the daemon tracks with Asterisk's channels. A call whose
    Originate has not gone out yet has no channel: it must not be ended as `unknown` (the lead
    released, its operator freed) while the Originate is still on its way, to be placed afterwards."""
    real_mark_dialing = dialer.attempts.mark_dialing

    def slow_mark_dialing(*args, **kwargs):
        time.sleep(1.5)     # a busy database: 15 s of the daemon's clock at 10x, more than the reconcile grace
        return real_mark_dialing(*args, **kwargs)

    monkeypatch.setattr(dialer.attempts, "mark_dialing", slow_mark_dialing)
    monkeypatch.setattr(dialer.daemon, "JOB_INTERVAL", 0.1)
    monkeypatch.setattr(dialer.daemon, "RECONCILE_INTERVAL", 0.2)   # several reconciliations meanwhile

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "answer", "after": 1, "talk": 2}])
        port = await pbx.start()
        settings = daemon_settings(db.engine.url.render_as_string(hide_password=False), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79126000001", "name": "Пётр Долгих"}])
                await wait_until(lambda: pbx.stats().calls_placed == 1 and all_ended(db, 1), 60,
                                 what="the call placed and its attempt ended")
                await asyncio.sleep(0.5)      # anything else the daemon would do now
                return pbx.stats()
        finally:
            await pbx.stop()

    pbx_stats = asyncio.run(scenario())
    rows = attempts(db)
    assert pbx_stats.calls_placed == 1
    assert [(a.result, a.originated_at is not None) for a in rows] == [("connected", True)]


def test_given_originate_in_progress_when_daemon_stops_then_the_call_is_placed_and_its_result_written(
        sqlite_db, monkeypatch):
    """A graceful stop lets the attempt being originated go out and end, as any call in progress
    (the daemon's run(): stop claiming, let calls finish, write every result), instead of leaving it
    claimed in the store for the next start to settle as `unknown`."""
    db = sqlite_db
    real_mark_dialing = dialer.attempts.mark_dialing

    def slow_mark_dialing(*args, **kwargs):
        time.sleep(1.0)
        return real_mark_dialing(*args, **kwargs)

    monkeypatch.setattr(dialer.attempts, "mark_dialing", slow_mark_dialing)

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "answer", "after": 1, "talk": 2}])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock(), drain_seconds=20) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79126000002", "name": "Вера Ночная"}])
                await wait_until(lambda: len(attempts(db)) == 1, 10, what="the claim")
            return pbx.stats()      # the daemon has stopped
        finally:
            await pbx.stop()

    pbx_stats = asyncio.run(scenario())
    assert pbx_stats.calls_placed == 1
    assert [(a.state, a.result) for a in attempts(db)] == [("ended", "connected")]
