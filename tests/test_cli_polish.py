"""What a team lead notices in the CLI (issue 16): times in the center's zone, `--out -`, quiet plain
commands, empty lists that say so, `dnc remove` wording."""

from __future__ import annotations

import json

from kernel.clock import ManualClock
from leads import dnc
from leads.intake import Intake, LeadIn
from tests.conftest import moscow, utc
from tests.test_export import outcomes_made

RECEIVED = utc(2026, 11, 23, 7, 30)   # 10:30 in Moscow (UTC+3)


def test_leads_list_and_show_give_times_in_the_centers_zone(run_dialer, cli_db):
    [outcome] = Intake(cli_db).submit([LeadIn("+79123456789", name="Анна")], RECEIVED)
    listed = run_dialer("leads", "list", "--format", "json")
    assert json.loads(listed.stdout)[0]["received_at"] == "2026-11-23T10:30:00+03:00"
    table = run_dialer("leads", "list")
    assert "2026-11-23 10:30:00+0300" in table.stdout
    shown = json.loads(run_dialer("leads", "show", str(outcome.lead_id), "--format", "json").stdout)
    assert shown["received_at"] == "2026-11-23T10:30:00+03:00"
    in_vladivostok = run_dialer("leads", "list", "--format", "json", env={"DIALER_CENTER_TIMEZONE": "Asia/Vladivostok"})
    assert json.loads(in_vladivostok.stdout)[0]["received_at"] == "2026-11-23T17:30:00+10:00"


def test_dnc_list_gives_times_in_the_centers_zone(run_dialer, cli_db):
    dnc.add(cli_db, "+79123456789", region="RU", reason=None, added_by="t", now=RECEIVED)
    listed = run_dialer("dnc", "list", "--format", "json")
    assert json.loads(listed.stdout)[0]["added_at"] == "2026-11-23T10:30:00+03:00"


def test_plain_commands_print_no_info_logs_unless_verbose(run_dialer, cli_db):
    quiet = run_dialer("dnc", "add", "+79123456789", env={"DIALER_LOG_LEVEL": "INFO"})
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = run_dialer("-v", "dnc", "remove", "+79123456789", env={"DIALER_LOG_LEVEL": "INFO"})
    assert loud.returncode == 0 and "INFO" in loud.stderr and "dnc.removed" in loud.stderr


def test_empty_queue_and_lists_say_so(run_dialer, cli_db):
    queue = run_dialer("queue", "--at", "2026-11-23T11:00")
    assert queue.returncode == 0 and "the dial queue is empty at 2026-11-23 11:00 MSK" in queue.stdout
    assert "no leads yet" in run_dialer("leads", "list").stdout
    assert "the do-not-call list is empty" in run_dialer("dnc", "list").stdout
    assert json.loads(run_dialer("queue", "--format", "json").stdout) == []


def test_dnc_remove_of_a_bad_number_says_remove(run_dialer, cli_db):
    result = run_dialer("dnc", "remove", "12")
    assert result.returncode == 2
    assert "removed from the DNC list" in result.stderr and "put on" not in result.stderr


def test_export_out_dash_writes_the_data_to_stdout_and_the_summary_to_stderr(run_dialer, cli_db, tmp_path):
    made = outcomes_made(cli_db, 2, moscow(2026, 11, 23, 12, 0))
    result = run_dialer("export", "--format", "jsonl", "--out", "-",
                        env={"DIALER_EXPORT_DIRECTORY": str(tmp_path / "exports")})
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(made) and "2 outcome(s) written to standard output" in result.stderr
    assert not (tmp_path / "-").exists() and not (tmp_path / "exports").exists()


def test_the_machines_tz_does_not_change_the_zone_shown(run_dialer, cli_db):
    """The center's zone comes from settings, not from the machine's TZ."""
    Intake(cli_db).submit([LeadIn("+79123456780")], ManualClock(RECEIVED).now())
    listed = run_dialer("leads", "list", "--format", "json", env={"TZ": "America/New_York"})
    assert json.loads(listed.stdout)[0]["received_at"].endswith("+03:00")
