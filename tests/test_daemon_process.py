"""The CLI as a subprocess: `dialer run` against the simulated PBX, stopped with SIGINT or killed."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from dialer.pbx_sim.operators import OperatorSpec
from leads.attempt import AttemptState
from tests.daemon_harness import (TOKEN, PbxThread, attempts, free_port, make_pbx, start_daemon_process,
                                  stop_process, wait_http)

pytestmark = pytest.mark.timeout(240)


def _env(db_url: str, ami_port: int) -> dict[str, str]:
    return {"DIALER_DB_URL": db_url, "DIALER_AMI_PORT": str(ami_port), "DIALER_AMI_SECRET": "dialer-secret",
            "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_DAEMON_ID": "proc-daemon", "DIALER_DIAL_NUMBER_FORMAT": "e164",
            "DIALER_AMI_RECONNECT_MIN_SECONDS": "0.05", "DIALER_LOG_LEVEL": "INFO"}


def _post(url: str, phones: list[str]) -> None:
    for phone in phones:
        response = httpx.post(f"{url}/leads", json={"phone": phone, "name": "Пётр"},
                              headers={"X-Dialer-Token": TOKEN}, timeout=10)
        assert response.status_code == 202, response.text


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_given_dialer_run_when_leads_posted_and_sigint_then_results_are_in_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    pbx = make_pbx([{"pattern": r"\+79126.*1", "outcome": "answer", "after": 1, "talk": 1},
                    {"pattern": r"\+79126.*", "outcome": "busy"}], speed=10)
    with PbxThread(pbx) as sim:
        port = free_port()
        process = start_daemon_process(_env(url, sim.port), port)
        try:
            wait_http(f"http://127.0.0.1:{port}", process)
            _post(f"http://127.0.0.1:{port}", ["+79126000001", "+79126000002", "+79126000011"])
            _wait(lambda: len(attempts(db)) == 3 and all(a.state == "ended" for a in attempts(db)), 60,
                  "three settled attempts")
        finally:
            code, output = stop_process(process, signal.SIGINT)
    assert code == 0, output[-3000:]
    assert "daemon.stopped" in output
    assert sorted(a.result for a in attempts(db)) == ["busy", "connected", "connected"]
    assert "+79126000001" not in output   # phones are masked in logs
    db.dispose()


def test_given_daemon_killed_mid_call_when_restarted_then_in_flight_attempts_are_reconciled(tmp_path):
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    # one call still talking when the new daemon starts, one that ends while no daemon is running
    pbx = make_pbx([{"pattern": r"\+79127000001", "outcome": "answer", "after": 1, "talk": 150},
                    {"pattern": r"\+79127000002", "outcome": "answer", "after": 1, "talk": 20}],
                   [OperatorSpec("PJSIP/op1", "Анна", talk=1000, ring=0.5),
                    OperatorSpec("PJSIP/op2", "Иван", talk=1000, ring=0.5)], speed=10)
    with PbxThread(pbx) as sim:
        port = free_port()
        first = start_daemon_process(_env(url, sim.port), port)
        try:
            wait_http(f"http://127.0.0.1:{port}", first)
            _post(f"http://127.0.0.1:{port}", ["+79127000001", "+79127000002"])
            _wait(lambda: sum(a.state == AttemptState.CONNECTED.value for a in attempts(db)) == 2, 60,
                  "two connected calls")
        finally:
            first.kill()
            first.communicate()
        in_flight = {a.lead_id: a.id for a in attempts(db) if a.state != "ended"}
        assert len(in_flight) == 2
        _wait(lambda: len(sim.run(lambda: list(pbx.call_log))) == 1, 60, "the short call to end meanwhile")
        second = start_daemon_process(_env(url, sim.port), port)
        try:
            wait_http(f"http://127.0.0.1:{port}", second)
            _wait(lambda: all(a.state == "ended" for a in attempts(db)), 90, "the adopted calls to settle")
        finally:
            code, output = stop_process(second, signal.SIGTERM)
    assert code == 0, output[-3000:]
    rows = {a.id: a for a in attempts(db)}
    assert sorted(rows) == sorted(in_flight.values())       # nothing dialed twice meanwhile
    lead_of = {a.id: a.lead_id for a in rows.values()}
    results = {lead_of[i]: rows[i].result for i in rows}
    long_lead, short_lead = sorted(in_flight)
    assert results[long_lead] == "connected", output[-6000:]  # still up at restart: tracked to its end
    # ended while no daemon ran, but its connection to an operator was stored as it happened (issue 11):
    # a contact, never re-dialed as if unanswered
    assert results[short_lead] == "connected", output[-6000:]
    assert rows[in_flight[short_lead]].connected_at is not None
    assert pbx.stats().calls_placed == 2
    db.dispose()


def test_given_fresh_machine_when_dialer_demo_runs_then_calls_happen_and_it_stops_by_itself(tmp_path):
    import subprocess
    import sys
    from tests.daemon_harness import REPO
    process = subprocess.run([sys.executable, "-m", "cli", "demo", "--duration", "12", "--leads", "6",
                              "--speed", "20"], cwd=tmp_path, env={**__import__("os").environ,
                                                                   "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert "demo finished" in process.stdout
    assert "results so far" in process.stdout
    assert "(none yet)" not in process.stdout     # at least one call reached a result
