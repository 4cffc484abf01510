"""`dialer operators add|list|set`: the registry the distribution chooses from (real command, real SQLite)."""

import json
import shutil

import pytest

from tests.test_policy_cli import initialized, run  # noqa: F401 - the module fixture is shared


@pytest.fixture
def db_file(initialized, tmp_path):  # noqa: F811
    path = tmp_path / "dialer.db"
    shutil.copyfile(initialized, path)
    return path


def operators(db_file):
    listed = run(db_file, "operators", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {o["interface"]: o for o in json.loads(listed.stdout)}


def test_given_operators_added_and_changed_then_list_shows_them(db_file):
    added = run(db_file, "operators", "add", "Анна Смирнова", "--interface", "PJSIP/op1", "--extension", "101",
                "--skills", "Пылесос Vortex X2, Матрас Сон+", "--level", "3")
    assert added.returncode == 0, added.stderr
    assert "operator 1 Анна Смирнова (PJSIP/op1) added" in added.stdout
    assert run(db_file, "operators", "add", "Иван", "-i", "PJSIP/op2").returncode == 0
    changed = run(db_file, "operators", "set", "PJSIP/op2", "--level", "2", "--skills", "Роутер Wi-Fi 6",
                  "--inactive")
    assert changed.returncode == 0, changed.stderr
    listed = operators(db_file)
    assert listed["PJSIP/op1"]["skills"] == ["Пылесос Vortex X2", "Матрас Сон+"]
    assert (listed["PJSIP/op1"]["level"], listed["PJSIP/op1"]["extension"], listed["PJSIP/op1"]["active"]) == \
        (3, "101", True)
    assert (listed["PJSIP/op2"]["level"], listed["PJSIP/op2"]["skills"], listed["PJSIP/op2"]["active"]) == \
        (2, ["Роутер Wi-Fi 6"], False)


def test_given_bad_operator_input_then_refused_and_nothing_stored(db_file):
    assert run(db_file, "operators", "add", "Анна", "--interface", "PJSIP/op1").returncode == 0
    taken = run(db_file, "operators", "add", "Ольга", "--interface", "PJSIP/op1")
    assert taken.returncode == 2 and "already belongs to operator 1" in taken.stderr
    bad = run(db_file, "operators", "add", "Ольга", "--interface", "op 3")
    assert bad.returncode == 2 and "not an Asterisk device" in bad.stderr
    level = run(db_file, "operators", "set", "1", "--level", "11")
    assert level.returncode == 2 and "from 1 to 10" in level.stderr
    missing = run(db_file, "operators", "set", "PJSIP/op9", "--level", "2")
    assert missing.returncode == 1 and "no operator" in missing.stderr
    assert list(operators(db_file)) == ["PJSIP/op1"]
    assert operators(db_file)["PJSIP/op1"]["level"] == 1
