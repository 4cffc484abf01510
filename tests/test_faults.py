"""The daemon under faults, counted from the store and from the simulated PBX's own record.

Each test breaks something real (another process holding SQLite's write lock, a PostgreSQL server
stopped with pg_ctl, the AMI connection cut by a TCP proxy, the daemon killed) while calls are in
progress, then counts what was lost, recorded `unknown`, double-dialed or left open. The daemon's
logs are not evidence; its process (task) staying alive is checked directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import event, select

from dialer.pbx_sim.operators import OperatorSpec
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import Lead
from tests.daemon_harness import (TOKEN, attempts, daemon_settings, free_port, make_pbx, moscow_day_clock,
                                  post_leads, running_daemon, wait_until)
from tests.fault_counts import count
from tests.private_pg import PrivatePostgres, pg_bin

pytestmark = pytest.mark.timeout(180)

OPERATORS = [OperatorSpec("PJSIP/op1", "Анна", talk=3, wrapup=0.5, ring=0.5),
             OperatorSpec("PJSIP/op2", "Иван", talk=3, wrapup=0.5, ring=0.5),
             OperatorSpec("PJSIP/op3", "Ольга", talk=3, wrapup=0.5, ring=0.5)]

# Customers whose calls last a few wall seconds at the harness' 10x speed, so a fault lands mid-call.
RULES = [{"pattern": r"\+7915.*1", "outcome": "answer", "after": 2, "talk": 25},
         {"pattern": r"\+7915.*2", "outcome": "busy", "after": 8},
         {"pattern": r"\+7915.*3", "outcome": "no_answer"},
         {"pattern": r"\+7915.*4", "outcome": "reject", "after": 10},
         {"pattern": r"\+7915.*", "outcome": "answer", "after": 3, "talk": 15}]


def _phones(prefix: str, n: int) -> list[str]:
    return [f"+7915{prefix}{i:06d}" for i in range(1, n + 1)]


async def _post_one(url: str, phone: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.post(f"{url}/leads", json={"phone": phone, "name": "Сбой Тестович"},
                                 headers={"X-Dialer-Token": TOKEN})


async def _health(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.get(f"{url}/health")


def _in_progress(db: Database) -> int:
    return sum(a.state in ("ringing", "answered", "connected", "originated") for a in attempts(db))


async def _ride_out(db: Database, url: str, fault_on, fault_off, *, phones: list[str], during_outage):
    """Post leads, break the store while calls are up, check what the webhook/health say, repair."""
    pbx = make_pbx(RULES, OPERATORS)
    port = await pbx.start()
    settings = daemon_settings(url, port)
    try:
        async with running_daemon(settings, db, moscow_day_clock()) as daemon:
            answers = await post_leads(daemon.http_url, [{"phone": p, "name": "Клиент"} for p in phones])
            accepted = {a["lead_id"] for a in answers}
            await wait_until(lambda: _in_progress(db) >= 2, 30, what="calls in progress")
            await fault_on()
            try:
                await during_outage(daemon)
            finally:
                await fault_off()
            await wait_until(lambda: all(a.state == "ended" for a in attempts(db))
                             and {a.lead_id for a in attempts(db)} >= accepted, 90,
                             what="every call to be settled after the store came back")
            await wait_until(lambda: not pbx._calls, 30, what="the PBX to have no call left")
            await wait_until(lambda: all(a.state == "ended" for a in attempts(db)), 30, what="the last results")
            assert daemon.failure is None
            health = await _health(daemon.http_url)
            assert health.status_code == 200 and health.json()["daemon"]["store"]["ok"] is True, health.text
    finally:
        await pbx.stop()
    return pbx, accepted


async def _expect_503_with_reason(daemon) -> None:
    """While the store is down: the webhook says 503 + Retry-After, /health says why (never refused)."""
    response = await _post_one(daemon.http_url, "+79150099999")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert "retry" in response.json()["error"]

    async def degraded():
        body = (await _health(daemon.http_url)).json()
        return body if not body["daemon"]["store"]["ok"] else None
    deadline = time.monotonic() + 20
    body = None
    while time.monotonic() < deadline and body is None:
        body = await degraded()
        await asyncio.sleep(0.1)
    assert body is not None, "health never reported the store outage"
    assert any("store unavailable" in reason for reason in body["daemon"]["degraded"]), body
    assert body["status"] in ("degraded", "error")


def _assert_nothing_lost(db: Database, pbx, accepted: set[int]) -> None:
    counts = count(db, pbx.call_log)
    assert counts.pbx_calls >= len(accepted)
    assert counts.problems() == {}, counts
    with db.read() as session:
        stored = set(session.scalars(select(Lead.id)))
    assert accepted <= stored


# ------------------------------------------------------------------ SQLite write lock

def test_given_sqlite_write_lock_held_past_busy_timeout_when_calls_end_then_daemon_waits_and_stores_each_result(
        tmp_path):
    path = tmp_path / "dialer.db"
    url = f"sqlite:///{path}"
    db = Database(url)
    upgrade(db)

    @event.listens_for(db.engine, "connect")
    def _short_busy_timeout(dbapi_connection, _record):   # so a 4 s lock is "past the busy timeout"
        dbapi_connection.execute("PRAGMA busy_timeout=300")
    db.engine.dispose()
    holder: dict[str, subprocess.Popen] = {}
    script = ("import sqlite3, sys, time\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2]))\n"
              "c.execute('COMMIT')\n")

    async def lock():
        holder["p"] = subprocess.Popen([sys.executable, "-c", script, str(path), "4"], stdout=subprocess.PIPE,
                                       text=True)
        assert (await asyncio.to_thread(holder["p"].stdout.readline)).strip() == "locked"

    async def unlock():
        await asyncio.to_thread(holder["p"].wait, 30)

    pbx, accepted = asyncio.run(_ride_out(db, url, lock, unlock, phones=_phones("1", 8),
                                          during_outage=_expect_503_with_reason))
    _assert_nothing_lost(db, pbx, accepted)
    db.dispose()


# ------------------------------------------------------------------ PostgreSQL stopped

@pytest.fixture
def private_pg():
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("no initdb/pg_ctl on this machine (postgresql server binaries): cannot stop a private server")
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' OS user to own a private cluster")
    server = PrivatePostgres(bin_dir)
    try:
        server.init()
        server.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        server.destroy()
        pytest.skip(f"could not start a private PostgreSQL: {exc}")
    yield server
    server.destroy()


def test_given_postgresql_stopped_mid_run_when_it_starts_again_then_daemon_resumes_and_loses_no_result(private_pg):
    db = Database(private_pg.url)
    upgrade(db)

    async def stop():
        await asyncio.to_thread(private_pg.stop)

    async def start():
        await asyncio.sleep(2)   # calls keep ending while the server is down
        await asyncio.to_thread(private_pg.start)

    pbx, accepted = asyncio.run(_ride_out(db, private_pg.url, stop, start, phones=_phones("2", 8),
                                          during_outage=_expect_503_with_reason))
    _assert_nothing_lost(db, pbx, accepted)
    db.dispose()


# ------------------------------------------------------------------ an Originate that never reached Asterisk

def test_given_originate_not_sent_because_ami_is_gone_then_it_is_not_an_attempt_and_the_lead_is_dialed_after_reconnect(
        db, monkeypatch):
    """The connection drops between the claim and the Originate: the adapter refuses to send
    (AmiNotConnected, what it raises with no live connection). Asterisk never heard of that call (the
    PBX's log has none for it): the claim is given back, not counted, and the lead is dialed again
    as soon as the AMI is back, not after the 5 min retry delay of an `unknown` result."""
    from dialer.ami.adapter import AmiClient
    from dialer.ami.errors import AmiNotConnected
    real_originate = AmiClient.originate
    cut: list[int] = []
    pbx = make_pbx([{"pattern": r"\+79153.*", "outcome": "busy", "after": 1}], OPERATORS)

    async def originate_once_cut(self, request):
        if not cut:
            cut.append(request.attempt_id if hasattr(request, "attempt_id") else 0)
            pbx.drop_connections()
            raise AmiNotConnected("not connected to Asterisk (cut by the test)")
        return await real_originate(self, request)
    monkeypatch.setattr(AmiClient, "originate", originate_once_cut)

    async def scenario():
        port = await pbx.start()
        settings = daemon_settings(db.engine.url.render_as_string(hide_password=False), port)
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                await post_leads(daemon.http_url, [{"phone": "+79153000001", "name": "Клиент"}])
                await wait_until(lambda: any(a.result == "busy" for a in attempts(db))
                                 and all(a.state == "ended" for a in attempts(db)),
                                 30, what="the given-back claim and the real call")
                assert daemon.failure is None
        finally:
            await pbx.stop()
    asyncio.run(scenario())
    *given_back, second = attempts(db)
    first = given_back[0]
    # the link may still be going down when the next claim is made: that one is given back too
    assert given_back and all(a.result == "cancelled" and a.originated_at is None for a in given_back)
    assert second.result == "busy"
    # dialed again at once (simulated 10x: well under the 10 min busy / 5 min unknown retry delays)
    assert (second.claimed_at - first.claimed_at).total_seconds() < 60
    with db.read() as session:
        lead = session.scalars(select(Lead)).one()
    assert lead.attempts_count == 1          # only the call Asterisk placed counts
    assert len(pbx.call_log) == 1
    counts = count(db, pbx.call_log)
    assert counts.problems() == {}, counts


# ------------------------------------------------------------------ AMI cut through a proxy

CUT_RULES = [{"pattern": r"\+79154.*1", "outcome": "busy", "after": 6},
             {"pattern": r"\+79154.*2", "outcome": "reject", "after": 9},
             {"pattern": r"\+79154.*3", "outcome": "congestion", "after": 7},
             {"pattern": r"\+79154.*4", "outcome": "no_answer"},
             {"pattern": r"\+79154.*5", "outcome": "invalid", "after": 5},
             {"pattern": r"\+79154.*", "outcome": "answer", "after": 4, "talk": 12}]


def test_given_ami_cut_repeatedly_and_around_originates_then_every_outcome_comes_from_events_or_the_cdr(
        db, tmp_path):
    from dialer.pbx_sim.scenarios import CustomerBook
    from dialer.pbx_sim.server import PbxConfig, SimulatedPbx
    from tests.ami_proxy import AmiProxy
    cdr = tmp_path / "cdr-custom" / "dialer.csv"
    cdr.parent.mkdir()
    pbx = SimulatedPbx(PbxConfig(speed=10, seed=1, auth_failure_delay=0.05, cdr_path=str(cdr)),
                       CustomerBook.from_rules(CUT_RULES), OPERATORS)
    phones = [f"+791540{i:05d}" for i in range(1, 16)]

    async def scenario():
        pbx_port = await pbx.start()
        proxy = AmiProxy(pbx_port)
        port = await proxy.start()
        settings = daemon_settings(db.engine.url.render_as_string(hide_password=False), port,
                                   **{"ami.cdr_csv_path": str(cdr)})
        try:
            async with running_daemon(settings, db, moscow_day_clock()) as daemon:
                proxy.cut_on_originate("before")     # the first Originate never reaches Asterisk
                answers = await post_leads(daemon.http_url, [{"phone": p, "name": "Клиент"} for p in phones])
                await wait_until(lambda: proxy.originates_dropped == 1, 20, what="the dropped Originate")
                await wait_until(lambda: daemon.ami.connected, 20, what="the reconnect")
                proxy.cut_on_originate("after")      # the next one reaches it, its answer does not come back
                for _ in range(6):                   # and network outages while calls ring and talk
                    await wait_until(lambda: daemon.ami.connected and proxy.linked, 20, what="the reconnect")
                    await asyncio.sleep(0.5)
                    proxy.cut(down_for=1.0)
                await wait_until(lambda: all(a.state == "ended" for a in attempts(db))
                                 and {a.lead_id for a in attempts(db)} >= {a["lead_id"] for a in answers}
                                 and not pbx._calls, 120, what="every call to be settled")
                assert daemon.failure is None
        finally:
            await proxy.stop()
            await pbx.stop()
        return proxy
    proxy = asyncio.run(scenario())
    assert proxy.cuts >= 6
    counts = count(db, pbx.call_log)
    assert counts.problems() == {}, counts
    rows = attempts(db)
    placed = {int(v) for r in pbx.call_log for k, v in r.variables if k.lstrip("_") == "ATTEMPT_ID"}
    given_back = [a for a in rows if a.id not in placed]
    assert given_back and all(a.result == "cancelled" and a.originated_at is None for a in given_back)
    with db.read() as session:
        for lead in session.scalars(select(Lead)):
            placed_for_lead = sum(1 for a in rows if a.lead_id == lead.id and a.id in placed)
            assert lead.attempts_count == placed_for_lead, (lead.id, lead.attempts_count, placed_for_lead)


# ------------------------------------------------------------------ SIGKILL and restart of `dialer run`

KILL_RULES = [{"pattern": r"\+79155.*1", "outcome": "busy", "after": 12},
              {"pattern": r"\+79155.*2", "outcome": "reject", "after": 15},
              {"pattern": r"\+79155.*3", "outcome": "congestion", "after": 12},
              {"pattern": r"\+79155.*", "outcome": "answer", "after": 3, "talk": 30}]


def _wait_ready(url: str, process, timeout: float = 30) -> float:
    """Seconds until /health says the daemon is ready (AMI logged in, webhook up, calls adopted)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited ({process.returncode}): {process.stdout.read()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            body = httpx.get(f"{url}/health", timeout=1).json()
            if body["daemon"]["ready"] and body["daemon"]["ami_connected"]:
                return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("daemon did not become ready")


def test_given_daemon_sigkilled_three_times_mid_calls_then_no_result_is_lost_or_unknown(tmp_path):
    from dialer.pbx_sim.scenarios import CustomerBook
    from dialer.pbx_sim.server import PbxConfig, SimulatedPbx
    from tests.daemon_harness import PbxThread, start_daemon_process, stop_process
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    cdr = tmp_path / "dialer.csv"
    pbx = SimulatedPbx(PbxConfig(speed=10, seed=1, auth_failure_delay=0.05, cdr_path=str(cdr)),
                       CustomerBook.from_rules(KILL_RULES), OPERATORS)
    phones = [f"+791550{i:05d}" for i in range(1, 10)]
    restarts: list[float] = []
    with PbxThread(pbx) as sim:
        port = free_port()
        env = {"DIALER_DB_URL": url, "DIALER_AMI_PORT": str(sim.port), "DIALER_AMI_SECRET": "dialer-secret",
               "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_DAEMON_ID": "kill-daemon", "DIALER_DIAL_NUMBER_FORMAT": "e164",
               "DIALER_AMI_RECONNECT_MIN_SECONDS": "0.05", "DIALER_AMI_CDR_CSV_PATH": str(cdr),
               "DIALER_LOG_LEVEL": "WARNING"}
        base = f"http://127.0.0.1:{port}"
        process = start_daemon_process(env, port)
        try:
            _wait_ready(base, process, 60)
            for phone in phones:
                assert httpx.post(f"{base}/leads", json={"phone": phone, "name": "Клиент"},
                                  headers={"X-Dialer-Token": TOKEN}, timeout=10).status_code == 202
            for _ in range(3):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and _in_progress(db) < 2:
                    time.sleep(0.05)
                time.sleep(0.5)
                process.kill()
                process.communicate()
                time.sleep(1.0)       # calls end while no daemon listens
                process = start_daemon_process(env, port)
                restarts.append(_wait_ready(base, process, 60))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                rows = attempts(db)
                if len({a.lead_id for a in rows}) == len(phones) and all(a.state == "ended" for a in rows) \
                        and not sim.run(lambda: bool(pbx._calls)):
                    break
                time.sleep(0.2)
        finally:
            code, output = stop_process(process)
        call_log = sim.run(lambda: list(pbx.call_log))
    assert code == 0, output[-3000:]
    counts = count(db, call_log)
    assert counts.pbx_calls >= len(phones)
    assert counts.problems() == {}, (counts, output[-3000:])
    print(f"kill -> ready: {sorted(round(r, 2) for r in restarts)} s")
    db.dispose()


# ------------------------------------------------------------------ two daemons, one Asterisk

@pytest.mark.parametrize("shared", [True, False], ids=["sharing-operators", "not-sharing"])
def test_given_two_daemons_on_one_asterisk_when_sharing_operators_then_calls_never_outnumber_operators(
        db, shared):
    """Progressive pacing: a call in progress holds one operator. Two daemons on one Asterisk each
    see all 3 queue members; sharing them through the database keeps the PBX's own peak of
    simultaneous calls at 3. Without it (the control) the two daemons together exceed it."""
    pbx = make_pbx([{"pattern": r"\+79156.*", "outcome": "answer", "after": 3, "talk": 20}], OPERATORS)
    phones = [f"+791560{i:05d}" for i in range(1, 19)]

    async def scenario():
        port = await pbx.start()
        url = db.engine.url.render_as_string(hide_password=False)
        one = daemon_settings(url, port, daemon_id="daemon-a", **{"ami.shared_with_other_daemons": shared})
        two = daemon_settings(url, port, daemon_id="daemon-b", **{"ami.shared_with_other_daemons": shared})
        try:
            async with running_daemon(one, db, moscow_day_clock()) as a, \
                    running_daemon(two, Database(url), moscow_day_clock()) as b:
                answers = await post_leads(a.http_url, [{"phone": p, "name": "Клиент"} for p in phones])
                accepted = {x["lead_id"] for x in answers}
                await wait_until(lambda: {x.lead_id for x in attempts(db) if x.state == "ended"} >= accepted,
                                 150, what="every lead called once")
                assert a.failure is None and b.failure is None
                return {x.daemon_id for x in attempts(db)}
        finally:
            await pbx.stop()
    daemons = asyncio.run(scenario())
    peak = pbx.stats().peak_calls_in_progress
    if shared:
        assert daemons == {"daemon-a", "daemon-b"}        # both dialed
        assert peak <= len(OPERATORS), peak
        counts = count(db, pbx.call_log)
        assert counts.problems() == {}, counts
    else:
        assert peak > len(OPERATORS), peak                 # the fault this guards against is real
