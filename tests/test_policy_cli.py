"""`dialer policy`, `dialer queue`, `dialer why` as a team lead runs them: the real command, a real SQLite file."""

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kernel.db.engine import Database
from kernel.db.models import PolicyChange, PolicyVersion
from tests.conftest import moscow
from tests.policy_helpers import VLADIVOSTOK, lead, store

DIALER = str(Path(sys.executable).parent / "dialer")


def run(db_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update({"DIALER_DB_URL": f"sqlite:///{db_file}", "COLUMNS": "200", "NO_COLOR": "1",
                "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([DIALER, *args], cwd=db_file.parent, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=120)


@pytest.fixture(scope="module")
def initialized(tmp_path_factory):
    """One `dialer init` (migrations + policy version 1), copied for each test."""
    path = tmp_path_factory.mktemp("init") / "dialer.db"
    done = run(path, "init")
    assert done.returncode == 0, done.stderr
    assert "policy version 1 seeded" in done.stdout
    return path


@pytest.fixture
def db_file(initialized, tmp_path):
    path = tmp_path / "dialer.db"
    shutil.copyfile(initialized, path)
    return path


def stored(db_file):
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.read() as session:
            newest = session.scalars(select(PolicyVersion).order_by(PolicyVersion.id.desc())).first()
            changes = session.scalar(select(func.count()).select_from(PolicyChange))
            return newest.id, newest.values, changes
    finally:
        db.dispose()


def test_given_policy_show_then_every_key_with_value_default_and_meaning(db_file):
    shown = run(db_file, "policy", "show", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    keys = {k["key"]: k for k in data["keys"]}
    assert data["version"] == 1
    assert (keys["max_attempts"]["value"], keys["max_attempts"]["default"]) == (7, 7)
    assert "unreachable" in keys["max_attempts"]["meaning"] and "1 to 20" in keys["max_attempts"]["allowed"]
    assert keys["quiet_start"]["value"] == "22:00"


@pytest.mark.parametrize("args, words", [
    (("max_attemps", "5"), "unknown policy key 'max_attemps'"),       # bad key
    (("max_attempts", "seven"), "whole number from 1 to 20"),          # bad value
    (("max_attempts", "-3"), "whole number from 1 to 20"),             # out of range
    (("quiet_end", "22:00"), "must differ"),                           # contradicts another key
])
def test_given_refused_value_then_exit_2_with_what_is_allowed_and_nothing_stored(db_file, args, words):
    before = stored(db_file)
    refused = run(db_file, "policy", "set", *args, "--by", "anna")
    assert refused.returncode == 2
    assert words in " ".join(refused.stderr.split())
    assert stored(db_file) == before


def test_given_good_value_then_new_version_and_history_shows_who_and_what(db_file):
    done = run(db_file, "policy", "set", "max_attempts", "5", "--by", "Анна")
    assert done.returncode == 0, done.stderr
    assert "max_attempts: 7 -> 5 (version 2, by Анна)" in done.stdout
    version, values, changes = stored(db_file)
    assert (version, values["max_attempts"], changes) == (2, 5, 1)
    history = json.loads(run(db_file, "policy", "history", "--format", "json").stdout)
    assert [(h["version"], h["key"], h["old"], h["new"], h["changed_by"]) for h in history] == \
        [(2, "max_attempts", 7, 5, "Анна")]


def test_given_leads_then_queue_lists_them_in_dialing_order_and_why_explains_each(db_file):
    noon = moscow(2026, 11, 23, 12, 0)
    db = Database(f"sqlite:///{db_file}")
    store(db, lead(1, noon - timedelta(minutes=2), name="Анна Иванова"),
          lead(2, noon - timedelta(minutes=12), phone="+79161234567"),
          lead(3, noon - timedelta(minutes=5), phone=VLADIVOSTOK))
    db.dispose()
    queue = run(db_file, "queue", "--at", "2026-11-23T16:00", "--format", "json")
    assert queue.returncode == 0, queue.stderr
    rows = json.loads(queue.stdout)
    assert [(r["lead_id"], r["tier"], r["sla"]) for r in rows] == [(2, "new", "breached"), (1, "new", "breached")]
    assert rows[1]["name"] == "Анна Иванова" and rows[0]["deadline"].startswith("2026-11-23T12:03:00+03:00")

    why = json.loads(run(db_file, "why", "3", "--at", "2026-11-23T16:00", "--format", "json").stdout)
    assert why["dialable"] is False
    assert [b["rule"] for b in why["blocks"]] == ["quiet_hours_lead"]
    assert why["dialable_from"].startswith("2026-11-24T10:00")
    table = run(db_file, "why", "3", "--at", "2026-11-23T16:00")
    assert "not dialable" in table.stdout and "Asia/Vladivostok" in table.stdout


def test_given_unknown_lead_or_bad_time_then_clear_errors(db_file):
    missing = run(db_file, "why", "999")
    assert missing.returncode == 1 and "no lead with id 999" in missing.stderr
    bad_time = run(db_file, "queue", "--at", "tomorrow")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr


def test_given_two_keys_with_a_comment_then_one_version_and_history_shows_the_comment(db_file):
    done = run(db_file, "policy", "set", "quiet_start", "21:00", "quiet_end=11:00", "--by", "Анна",
               "--comment", "зимнее время")
    assert done.returncode == 0, done.stderr
    version, values, changes = stored(db_file)
    assert (version, values["quiet_start"], values["quiet_end"], changes) == (2, "21:00", "11:00", 2)
    history = json.loads(run(db_file, "policy", "history", "--format", "json").stdout)
    assert {(h["version"], h["key"], h["comment"]) for h in history} == \
        {(2, "quiet_start", "зимнее время"), (2, "quiet_end", "зимнее время")}


def test_given_short_quiet_hours_then_refused_unless_the_flag_and_overnight_always(db_file):
    refused = run(db_file, "policy", "set", "quiet_start", "23:00")
    assert refused.returncode == 2 and "--allow-short-quiet-hours" in " ".join(refused.stderr.split())
    assert stored(db_file)[0] == 1
    overnight = run(db_file, "policy", "set", "quiet_start", "01:00", "quiet_end", "07:00",
                    "--allow-short-quiet-hours")
    assert overnight.returncode == 2 and "overnight" in " ".join(overnight.stderr.split())
    done = run(db_file, "policy", "set", "quiet_start", "23:00", "--allow-short-quiet-hours")
    assert done.returncode == 0, done.stderr
    assert stored(db_file)[1]["quiet_start"] == "23:00"


@pytest.mark.parametrize("args, words", [
    (("max_attempts",), "has no value"),
    (("max_attempts", "5", "max_attempts", "6"), "given twice"),
])
def test_given_malformed_pairs_then_exit_2_and_nothing_stored(db_file, args, words):
    refused = run(db_file, "policy", "set", *args)
    assert refused.returncode == 2 and words in " ".join(refused.stderr.split())
    assert stored(db_file)[0] == 1


def test_given_policy_show_then_the_retry_plan_is_printed_and_changeable(db_file):
    shown = run(db_file, "policy", "show")
    assert shown.returncode == 0, shown.stderr
    assert "attempt 4: next day 10:00-13:00 local (morning), day 2" in shown.stdout
    done = run(db_file, "policy", "set", "max_attempts_per_day", "2", "retry_day_parts", "10:00-14:00,14:00-22:00")
    assert done.returncode == 0, done.stderr
    plan = json.loads(run(db_file, "policy", "show", "--format", "json").stdout)["retry_plan"]
    assert plan[2] == "attempt 3: next day 10:00-14:00 local (morning), day 2"


def test_given_a_vladivostok_mobile_then_why_and_queue_show_its_zone_from_the_numbering_plan(db_file):
    noon = moscow(2026, 11, 23, 12, 0)
    db = Database(f"sqlite:///{db_file}")
    store(db, lead(1, noon - timedelta(minutes=2), phone="+79147001234"))
    db.dispose()
    why = json.loads(run(db_file, "why", "1", "--at", "2026-11-23T16:00", "--format", "json").stdout)
    assert (why["zones"], why["zone_source"]) == (["Asia/Vladivostok"], "registry")
    assert [b["rule"] for b in why["blocks"]] == ["quiet_hours_lead"]    # 23:00 in Vladivostok
    queue = json.loads(run(db_file, "queue", "--at", "2026-11-23T12:00", "--format", "json").stdout)
    assert queue[0]["zone"] == "Asia/Vladivostok (numbering plan)"
