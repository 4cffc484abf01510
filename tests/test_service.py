"""`dialer run` as a systemd service: sd_notify over a real unix datagram socket, the watchdog,
SIGHUP reloading without dropping the call in progress, JSON log lines; the unit files' hardening."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from dialer.pbx_sim.operators import OperatorSpec
from dialer.service.notify import sd_notify, watchdog_interval
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from leads.policy.store import change_policy, current_policy
from tests.daemon_harness import REPO, TOKEN, PbxThread, attempts, free_port, make_pbx

pytestmark = pytest.mark.timeout(240)


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except BlockingIOError:
            return into


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_given_a_notify_socket_when_notifying_then_the_datagram_arrives(tmp_path):
    with _listen(tmp_path / "notify") as sock:
        assert sd_notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert _wait(lambda: _drain(sock, []), 5, "the datagram") == ["READY=1\nSTATUS=ok"]
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False


def test_given_an_abstract_notify_socket_then_it_is_reached_too():
    name = f"dialer-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_given_a_receiver_that_does_not_read_then_notifying_never_blocks(tmp_path):
    with _listen(tmp_path / "notify") as sock:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify")}
        sent = [sd_notify("WATCHDOG=1", env) for _ in range(500)]   # far more than the socket queue holds
        assert sent[0] and not all(sent)
        assert _drain(sock, [])[0] == "WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_sec_and_only_for_this_process():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


class Systemd:
    """What systemd does with $NOTIFY_SOCKET: reads every datagram as it comes (on a thread here)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.notes.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue

    def __enter__(self) -> "Systemd":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def saw(self, prefix: str, since: int = 0) -> bool:
        return any(note.startswith(prefix) for note in self.notes[since:])


def test_given_systemd_when_dialer_runs_then_ready_after_ami_login_watchdog_sighup_reload_keeps_the_call(tmp_path):
    url = f"sqlite:///{tmp_path / 'dialer.db'}"
    db = Database(url)
    upgrade(db)
    pbx = make_pbx([{"pattern": r".*", "outcome": "answer", "after": 1, "talk": 60}],
                   [OperatorSpec("PJSIP/op1", "Анна", talk=60, wrapup=0.5, ring=0.5)], speed=10)
    notify_path = tmp_path / "notify"
    with PbxThread(pbx) as sim, Systemd(notify_path) as systemd:
        sim.run(pbx.freeze)                                 # a hung Asterisk: the login is not answered
        port = free_port()
        env = {"DIALER_DB_URL": url, "DIALER_AMI_PORT": str(sim.port), "DIALER_AMI_SECRET": "dialer-secret",
               "DIALER_INTAKE_TOKEN": TOKEN, "DIALER_DIAL_NUMBER_FORMAT": "e164",
               "DIALER_AMI_RECONNECT_MIN_SECONDS": "0.05", "DIALER_AMI_RECONNECT_MAX_SECONDS": "0.2",
               "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000", "DIALER_SERVICE_LOG_FORMAT": "json"}
        log_path = tmp_path / "daemon.log"
        log_file = log_path.open("w")   # a file, not a pipe: a full pipe would block the daemon
        process = subprocess.Popen([sys.executable, "-m", "cli", "run", "--port", str(port), "--drain-seconds", "5",
                                    "--sim-start", "2026-11-24T11:00+03:00", "--sim-speed", "10"],
                                   cwd=REPO, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                   stdout=log_file, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _health(base), 60, "the webhook to answer")
            _wait(lambda: systemd.notes.count("WATCHDOG=1") >= 2, 20, "watchdog pings")
            assert not systemd.saw("READY=1"), "READY before the AMI login"
            sim.run(pbx.thaw)
            _wait(lambda: systemd.saw("READY=1"), 60, "READY=1")

            httpx.post(f"{base}/leads", json={"phone": "+79127000001", "name": "Пётр"},
                       headers={"X-Dialer-Token": TOKEN}, timeout=10).raise_for_status()
            _wait(lambda: any(a.state == "connected" for a in attempts(db)), 60, "the call to reach the operator")
            before = current_policy(db).version
            change_policy(db, {"max_attempts": str(current_policy(db).max_attempts + 1)}, by="test", now=datetime.now(timezone.utc))
            mark = len(systemd.notes)
            process.send_signal(signal.SIGHUP)
            _wait(lambda: systemd.saw("RELOADING=1", mark) and systemd.saw("READY=1", mark), 30, "RELOADING, READY")
            assert process.poll() is None, "SIGHUP must not stop the daemon"
            assert any(a.state == "connected" for a in attempts(db)), "the call goes on through the reload"
            _wait(lambda: attempts(db)[0].state == "ended", 60, "the call to end by itself")
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(60)
            log_file.close()
            output = log_path.read_text()
        _wait(lambda: systemd.saw("STOPPING=1"), 10, "STOPPING=1")
    assert code == 0, output[-3000:]
    (attempt,) = attempts(db)
    assert attempt.result == "connected"
    assert [r.result.value for r in pbx.call_log] == ["connected"]
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]   # every line is JSON
    reloaded = [line for line in lines if line["event"] == "service.reloaded"]
    assert len(reloaded) == 1 and int(reloaded[0]["policy_version"]) > before
    assert all({"ts", "level", "logger", "event", "message"} <= set(line) for line in lines)


def _health(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


UNITS = REPO / "deploy" / "systemd"


def test_the_unit_asks_for_notify_watchdog_a_user_and_hardening():
    unit = (UNITS / "dialer.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "User=dialer", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/dialer", "ExecReload=/bin/kill -HUP $MAINPID", "StandardOutput=journal"):
        assert line in unit, line


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="systemd-analyze not installed")
def test_systemd_analyze_finds_no_syntax_error_in_the_units(tmp_path):
    for name in ("dialer.service", "dialer-prune.service", "dialer-prune.timer"):
        (tmp_path / name).write_text((UNITS / name).read_text().replace("/opt/dialer/venv/bin/dialer", "/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                           *[str(tmp_path / n) for n in ("dialer.service", "dialer-prune.service", "dialer-prune.timer")]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(tmp_path / "dialer.service")],
                              capture_output=True, text=True, timeout=60)
    exposure = float(re.search(r"Overall exposure level for dialer.service: ([0-9.]+)", security.stdout).group(1))
    assert exposure <= 2.0, security.stdout[-2000:]   # systemd rates 0-10; "OK" is below 3
