"""Call recordings (issue 14), from the dialplan's file name to the HTTP answer.

- the rules by hand: which files retention deletes, which references are ours, the URL;
- the simulated PBX writes <ATTEMPT_ID>.wav (MixMonitor's name in asterisk_conf/extensions.conf) for a
  connected call and none for a busy one, over real AMI;
- end to end with the real daemon, the simulated PBX, a SQLite file, the CRM stub and real HTTP:
  the attempt stores its reference, the CRM and the nightly file get the console URL, the console
  serves the audio with HTTP Range (206, Content-Range, 416) to the team lead and to the operator of
  the call only, and a deleted file is a 404 with a reason, never a 500;
- `dialer recordings prune` deletes what is older than the retention and says what it deleted.
"""

from __future__ import annotations

import re

import contextlib
import json
import logging
import os
import time
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dialer.console.auth import set_operator_password
from dialer.crm.export import export_outcomes
from dialer.crm.stub import CrmStub
from dialer.recordings.files import RecordingFile, expired, prune, recording_path, recording_ref
from dialer.recordings.links import recording_url, with_recording_url
from dialer.recordings.wav import write_call_wav
from kernel.db.models import CallAttempt
from kernel.settings import load_settings
from leads.operators import add_operator
from tests.console_harness import (OPERATOR_PASSWORD, TEAMLEAD_PASSWORD, DaemonThread, launch_chromium,
                                   register_operators)

pytestmark = pytest.mark.timeout(180)

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)
PUBLIC = "https://dialer.example.ru"
# Every customer answers at once and talks 3 simulated seconds (0.3 s at the harness's speed 10).
CUSTOMERS = [{"pattern": r"\+7912.*", "outcome": "answer", "after": 0.5, "talk": 3},
             {"pattern": r"\+7913.*", "outcome": "busy"}]


def poll(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the rules, by hand

def test_given_retention_days_then_only_files_written_before_now_minus_n_days_expire():
    files = [RecordingFile("1.wav", NOW - timedelta(days=31), 10),
             RecordingFile("2.wav", NOW - timedelta(days=30, seconds=1), 10),
             RecordingFile("3.wav", NOW - timedelta(days=30), 10),        # exactly 30 days: kept
             RecordingFile("4.wav", NOW - timedelta(days=29), 10)]
    assert [f.name for f in expired(files, NOW, 30)] == ["1.wav", "2.wav"]
    assert expired(files, NOW, 0) == []                                   # 0: kept forever
    assert [f.name for f in expired(files, NOW, 1)] == ["1.wav", "2.wav", "3.wav", "4.wav"]


@pytest.mark.parametrize("ref", ["../etc/passwd", "rec/5-1.wav", "5.mp3", "", None, "/tmp/5.wav", "5.wav/.."])
def test_given_a_reference_that_is_not_a_bare_attempt_file_then_no_path(ref, tmp_path):
    assert recording_path(tmp_path, ref) is None


def test_given_an_attempt_then_its_reference_and_url_are_mixmonitors_name_and_the_console_path(tmp_path):
    assert recording_ref(42) == "42.wav"
    assert recording_path(tmp_path, "42.wav") == tmp_path / "42.wav"
    assert recording_url(PUBLIC + "/", 42) == "https://dialer.example.ru/console/recordings/42"
    payload = {"attempt_id": 42, "recording": "42.wav", "result": "connected"}
    assert with_recording_url(payload, PUBLIC)["recording"] == "https://dialer.example.ru/console/recordings/42"
    assert payload["recording"] == "42.wav"                               # the stored outcome is not changed
    assert with_recording_url({"attempt_id": 43, "recording": None}, PUBLIC)["recording"] is None


def test_given_a_talk_then_the_wav_is_8khz_mono_and_as_long_as_the_talk_within_bounds(tmp_path):
    for talk, seconds in ((4.0, 4.0), (0.2, 1.5), (600.0, 10.0)):
        path = write_call_wav(tmp_path / f"{int(talk * 10)}.wav", talk)
        with wave.open(str(path)) as audio:
            assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 8000)
            assert audio.getnframes() == int(8000 * seconds)
    assert not list(tmp_path.glob("*.part"))


def test_given_old_and_new_recordings_when_pruned_then_the_old_are_deleted_and_logged(tmp_path, caplog):
    wall = time.time()
    for name, age_days in (("10.wav", 40), ("11.wav", 31), ("12.wav", 5), ("notes.txt", 400)):
        path = tmp_path / name
        path.write_bytes(b"RIFF")
        os.utime(path, (wall - age_days * 86400, wall - age_days * 86400))
    now = datetime.fromtimestamp(wall, timezone.utc)
    assert [f.name for f in prune(tmp_path, now, 30, dry_run=True)] == ["10.wav", "11.wav"]
    assert (tmp_path / "10.wav").exists()
    with caplog.at_level(logging.INFO, logger="dialer.recordings"):
        gone = prune(tmp_path, now, 30)
    assert [f.name for f in gone] == ["10.wav", "11.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["12.wav", "notes.txt"]
    deleted = [r.getMessage() for r in caplog.records if "recordings.deleted" in r.getMessage()]
    assert len(deleted) == 2 and "file=10.wav" in deleted[0] and "file=11.wav" in deleted[1]


def test_given_the_cli_when_pruning_then_it_lists_what_it_deleted(tmp_path):
    from cli import app
    folder = tmp_path / "rec"
    folder.mkdir()
    wall = time.time()
    for name, age_days in (("20.wav", 8), ("21.wav", 2)):
        (folder / name).write_bytes(b"RIFF")
        os.utime(folder / name, (wall - age_days * 86400,) * 2)
    env = {"DIALER_DB_URL": f"sqlite:///{tmp_path / 'd.db'}", "DIALER_RECORDINGS_DIRECTORY": str(folder)}
    runner = CliRunner()
    kept = runner.invoke(app, ["recordings", "prune"], env=env)
    assert kept.exit_code == 0, kept.output
    assert "kept forever" in kept.output and (folder / "20.wav").exists()
    result = runner.invoke(app, ["recordings", "prune", "--days", "7"], env=env)
    assert result.exit_code == 0, result.output
    assert "deleted 20.wav" in result.output and "1 recording(s) deleted" in result.output
    assert [p.name for p in folder.iterdir()] == ["21.wav"]
    bad = runner.invoke(app, ["recordings", "prune", "--days", "0"], env=env)
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_given_a_negative_retention_then_settings_refuse_it_with_the_key():
    with pytest.raises(Exception) as refused:
        load_settings(env={}, overrides={"recordings.retention_days": -1})
    assert "retention_days" in str(refused.value)


# ---------------------------------------------------------------- end to end

def sign_in(base: str, login: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    # as the browser does: open the sign-in page first, for the CSRF cookie and token (safety, issue 17)
    page = client.get("/console/login")
    client.headers["X-CSRF-Token"] = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    answer = client.post("/console/login", data={"login": login, "password": password, "next": "/console"})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def recorded_call(sqlite_db, tmp_path):
    """The real daemon dials one answering and one busy customer; yields (daemon, attempts, folder, stub)."""
    db = sqlite_db
    folder = tmp_path / "monitor"
    register_operators(db)
    other = add_operator(db, name="Пётр", interface="PJSIP/op9", now=datetime.now(timezone.utc))
    set_operator_password(db, "PJSIP/op9", OPERATOR_PASSWORD)
    with CrmStub() as stub, DaemonThread(db, customers=CUSTOMERS, pbx_config={"recordings_dir": str(folder)},
                                         **{"recordings.directory": str(folder), "recordings.public_url": PUBLIC,
                                            "crm.webhook_url": stub.url, "crm.poll_seconds": 0.2,
                                            "dial.wrapup_limit_seconds": 5.0,
                                            "export.directory": str(tmp_path / "exports")}) as daemon:
        answered = daemon.post_lead({"phone": "+79127000001", "name": "Иван Петров", "order_number": "R-1"})
        busy = daemon.post_lead({"phone": "+79137000002", "name": "Ольга", "order_number": "R-2"})

        def ended():
            with db.read() as session:
                rows = session.scalars(select(CallAttempt).order_by(CallAttempt.id)).all()
                done = {a.lead_id: a for a in rows if a.ended_at is not None}
                return done if answered in done and busy in done else None
        done = poll(ended, what="both calls to end")
        yield daemon, done[answered], done[busy], folder, stub, other.id


def test_given_a_connected_call_then_its_recording_is_stored_linked_and_served_with_ranges(recorded_call,
                                                                                         sqlite_db, tmp_path):
    daemon, answered, busy, folder, stub, other_operator = recorded_call
    # the dialplan's name, the attempt's reference, the PBX's file: the same <attempt id>.wav
    assert answered.result == "connected" and answered.recording_ref == f"{answered.id}.wav"
    assert busy.result == "busy" and busy.recording_ref is None
    audio = poll(lambda: (folder / f"{answered.id}.wav").is_file() and folder / f"{answered.id}.wav",
                 what="the recording file")
    assert sorted(p.name for p in folder.iterdir()) == [f"{answered.id}.wav"]
    data = audio.read_bytes()
    with wave.open(str(audio)) as sound:
        assert sound.getnframes() >= 8000                                 # at least a second to play

    # the CRM gets a URL to the console (wrap-up ran out, so the outcome went without a disposition)
    url = f"{PUBLIC}/console/recordings/{answered.id}"
    sent = poll(lambda: stub.accepted_for("attempt_id", answered.id), what="the CRM outcome")
    assert sent[0]["recording"] == url
    busy_sent = poll(lambda: stub.accepted_for("attempt_id", busy.id), what="the busy outcome")
    assert busy_sent[0]["recording"] is None

    # the nightly file too
    settings = daemon.daemon.settings
    result = export_outcomes(sqlite_db, settings, datetime.now(timezone.utc) + timedelta(seconds=1), fmt="jsonl",
                             out=tmp_path / "night.jsonl")
    rows = {r["attempt_id"]: r for r in map(json.loads, result.path.read_text(encoding="utf-8").splitlines())}
    assert rows[answered.id]["recording"] == url and rows[busy.id]["recording"] is None

    path = f"/console/recordings/{answered.id}"
    anonymous = httpx.get(daemon.url + path, timeout=30)
    assert anonymous.status_code == 401 and "sign in" in anonymous.json()["error"]

    with contextlib.closing(sign_in(daemon.url, "teamlead", TEAMLEAD_PASSWORD)) as lead:
        whole = lead.get(path)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "audio/wav" and whole.headers["accept-ranges"] == "bytes"
        part = lead.get(path, headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == data[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        tail = lead.get(path, headers={"Range": "bytes=-44"})
        assert tail.status_code == 206 and tail.content == data[-44:]
        beyond = lead.get(path, headers={"Range": f"bytes={len(data) + 10}-"})
        assert beyond.status_code == 416
        # no recording (busy), unknown attempt: 404 with a reason
        none = lead.get(f"/console/recordings/{busy.id}")
        assert none.status_code == 404 and "no recording" in none.json()["error"]
        unknown = lead.get("/console/recordings/999999")
        assert unknown.status_code == 404 and "999999" in unknown.json()["error"]
        garbage = lead.get("/console/recordings/abc")
        assert garbage.status_code == 422

        # the operator of the call hears it; another operator does not
        with contextlib.closing(sign_in(daemon.url, "PJSIP/op1", OPERATOR_PASSWORD)) as own:
            assert own.get(path, headers={"Range": "bytes=0-43"}).content == data[:44]
        with contextlib.closing(sign_in(daemon.url, "PJSIP/op9", OPERATOR_PASSWORD)) as stranger:
            refused = stranger.get(path)
            assert refused.status_code == 403 and "another operator" in refused.json()["error"]

        # retention deleted the file: a clear 404, never a 500
        audio.unlink()
        missing = lead.get(path)
        assert missing.status_code == 404 and "not on disk" in missing.json()["error"]


def test_given_a_recording_in_chromium_when_played_then_its_first_second_plays_and_it_seeks(recorded_call):
    daemon, answered, _busy, folder, _stub, _other = recorded_call
    poll(lambda: (folder / f"{answered.id}.wav").is_file(), what="the recording file")
    path = f"/console/recordings/{answered.id}"
    with launch_chromium() as browser:
        page = browser.new_page()
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if path in r.url else None)
        page.goto(f"{daemon.url}/console/login?next=/console/teamlead")
        page.fill("#login", "teamlead")
        page.fill("#password", TEAMLEAD_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#queue")
        # the team lead's player: an <audio> element on the console's page, started by a click
        page.evaluate("""path => {
            const audio = document.createElement('audio');
            audio.id = 'player'; audio.controls = true; audio.preload = 'auto'; audio.src = path;
            const button = document.createElement('button');
            button.id = 'play'; button.textContent = 'play';
            button.onclick = () => audio.play().catch(e => { window.playError = String(e); });
            document.body.prepend(button); document.body.prepend(audio);
        }""", path)
        page.click("#play")
        page.wait_for_function("() => window.playError || document.getElementById('player').currentTime >= 1.0",
                               timeout=20_000)
        assert page.evaluate("window.playError || null") is None
        duration = page.evaluate("document.getElementById('player').duration")
        assert duration >= 1.5
        # seek back to 0.25 s: the player asks for a byte range and plays from there
        page.evaluate("() => { const a = document.getElementById('player'); a.currentTime = 0.25; }")
        page.wait_for_function("() => !document.getElementById('player').seeking", timeout=10_000)
        assert page.evaluate("document.getElementById('player').error") is None
    assert 206 in statuses, statuses
