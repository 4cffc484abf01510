"""The crashes a new user met (issue 16), each now one line on stderr with a documented exit code:
0 ok, 1 failure (the database or the port cannot be used), 2 usage error (bad value or configuration)."""

from __future__ import annotations

import io
import socket

import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from kernel.db.models import Lead
from leads.intake import Intake
from leads.sources.csv_import import import_csv
from tests.conftest import utc


def one_line_error(result) -> str:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("url, words", [
    ("sqlite:///{tmp}/no/such/folder/dialer.db", "unable to open database file"),
    ("postgresql+psycopg://postgres@127.0.0.1:{closed}/test", "Connection refused"),
    ("postgresql+psycopg://postgres@127.0.0.1:5432/dialer_no_such_database", "does not exist"),
])
def test_init_on_a_database_it_cannot_reach_says_why_in_one_line(run_dialer, tmp_path, url, words):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]   # bound, never listening: connections are refused
        result = run_dialer("init", env={"DIALER_DB_URL": url.format(tmp=tmp_path, closed=closed)})
    assert result.returncode == 1
    assert words in one_line_error(result)


def test_serve_on_a_port_in_use_exits_1_in_one_line(run_dialer, cli_db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_dialer("serve", "--port", str(taken.getsockname()[1]),
                            env={"DIALER_INTAKE_TOKEN": "t", "DIALER_LOG_LEVEL": "ERROR"})
    assert result.returncode == 1
    assert "cannot listen for HTTP" in one_line_error(result)


def test_run_on_a_port_in_use_exits_1_in_one_line(run_dialer, cli_db):
    with socket.socket() as taken, socket.socket() as ami:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ami.bind(("127.0.0.1", 0))
        result = run_dialer("run", "--port", str(taken.getsockname()[1]), "--ami-port", str(ami.getsockname()[1]),
                            env={"DIALER_INTAKE_TOKEN": "t", "DIALER_LOG_LEVEL": "ERROR"})
    assert result.returncode == 1
    assert "cannot listen for HTTP" in one_line_error(result)


@pytest.mark.parametrize("at", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_queue_at_a_time_out_of_range_is_a_usage_error(run_dialer, cli_db, at):
    result = run_dialer("queue", "--at", at)
    assert result.returncode == 2
    assert "out of range" in one_line_error(result)


@pytest.mark.parametrize("zone", ["Europe", "Etc", "America/Argentina"])
def test_a_zone_folder_as_center_timezone_is_a_settings_error(run_dialer, zone):
    result = run_dialer("config", env={"DIALER_CENTER_TIMEZONE": zone})
    assert result.returncode == 2
    assert "center_timezone" in one_line_error(result)


def test_a_command_before_init_creates_no_empty_database(run_dialer, tmp_path):
    for command in (["leads", "list"], ["dnc", "list"], ["queue"]):
        result = run_dialer(*command)
        assert result.returncode == 1 and "dialer init" in one_line_error(result)
    assert not (tmp_path / "cli.db").exists()


def test_csv_import_skips_only_the_row_with_a_zone_folder(sqlite_db):
    csv = "phone;name;timezone\n+79123456789;Анна;Europe/Moscow\n+79123456780;Борис;Europe\n" \
          "+79123456781;Вера;Asia/Vladivostok\n"
    report = import_csv(io.BytesIO(csv.encode()), Intake(sqlite_db), ManualClock(utc(2026, 11, 23, 7)))
    assert report.malformed == 1 and report.malformed_rows[0].line == 3
    assert "not an IANA time zone" in report.malformed_rows[0].problem
    with sqlite_db.read() as session:
        assert list(session.scalars(select(Lead.name).order_by(Lead.id))) == ["Анна", "Вера"]


@pytest.mark.parametrize("command", [["leads", "show", "99999999999999999999"], ["why", "99999999999999999999"],
                                     ["leads", "list", "--limit", "99999999999999999999"],
                                     ["crm", "retry", "99999999999999999999"]])
def test_a_number_beyond_what_the_database_stores_is_a_usage_error(run_dialer, cli_db, command):
    result = run_dialer(*command)
    assert result.returncode == 2
    assert "out of range" in one_line_error(result)


def test_a_settings_error_never_prints_a_secret_or_a_urls_password(run_dialer, tmp_path):
    short = run_dialer("config", env={"DIALER_CONSOLE_SECRET": "tiny-secret"})
    assert short.returncode == 2 and "console.secret" in one_line_error(short) and "tiny-secret" not in short.stderr
    url = run_dialer("config", env={"DIALER_DB_URL": "postgres://dialer:hunter2@db/dialer"})
    assert url.returncode == 2 and "hunter2" not in url.stderr and "dialer:***@db" in one_line_error(url)
    port = run_dialer("config", env={"DIALER_INTAKE_TOKEN": "s3cret", "DIALER_HTTP_PORT": "s3cret"})
    assert port.returncode == 2 and "http.port" in one_line_error(port)


def test_a_section_key_at_the_top_level_names_its_section(run_dialer, tmp_path):
    (tmp_path / "dialer.toml").write_text('token = "abc"\nport = 8081\n', encoding="utf-8")
    result = run_dialer("config")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "[intake] token" in line and "abc" not in line
