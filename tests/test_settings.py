"""Settings: defaults < TOML file < DIALER_* environment < CLI overrides; a bad value is refused
with a SettingsError that names the key and says what is allowed, and the CLI exits 2 with it."""

from __future__ import annotations

import pytest

from kernel.errors import SettingsError
from kernel.settings import describe, env_name, load_settings


@pytest.fixture(autouse=True)
def empty_dir(tmp_path, monkeypatch):
    """Run in a folder without dialer.toml, so only what a test writes is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def refused(**kwargs) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(**kwargs)
    return str(caught.value)


# ---- where values come from

def test_given_nothing_configured_when_loaded_then_the_documented_defaults():
    s = load_settings(env={})
    assert (s.db_url, s.default_region, s.center_timezone) == ("sqlite:///dialer.db", "RU", "Europe/Moscow")
    assert (s.intake.dedup_window_hours, s.intake.csv_batch_size, s.intake.token) == (24.0, 5000, "")
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert s.feeds == ()


def test_given_a_toml_file_when_loaded_then_its_values_replace_the_defaults(empty_dir):
    path = write(empty_dir / "site.toml", 'default_region = "KZ"\ncenter_timezone = "Asia/Almaty"\n'
                                          '[intake]\ndedup_window_hours = 12\ncsv_batch_size = 1000\n')
    s = load_settings(path, env={})
    assert (s.default_region, s.center_timezone) == ("KZ", "Asia/Almaty")
    assert (s.intake.dedup_window_hours, s.intake.csv_batch_size) == (12.0, 1000)
    assert s.http.port == 8080   # untouched keys keep their defaults


def test_given_dialer_toml_in_the_working_folder_when_loaded_without_a_path_then_it_is_read(empty_dir):
    write(empty_dir / "dialer.toml", "[http]\nport = 9000\n")
    assert load_settings(env={}).http.port == 9000


def test_given_dialer_config_in_the_environment_when_loaded_then_that_file_is_read(empty_dir):
    path = write(empty_dir / "other.toml", "[http]\nport = 9100\n")
    write(empty_dir / "dialer.toml", "[http]\nport = 9000\n")
    assert load_settings(env={"DIALER_CONFIG": str(path)}).http.port == 9100


def test_given_file_and_environment_when_loaded_then_the_environment_wins(empty_dir):
    path = write(empty_dir / "site.toml", "[intake]\ndedup_window_hours = 12\n")
    s = load_settings(path, env={"DIALER_INTAKE_DEDUP_WINDOW_HOURS": "6.5", "DIALER_HTTP_PORT": "8181"})
    assert (s.intake.dedup_window_hours, s.http.port) == (6.5, 8181)


def test_given_file_environment_and_overrides_when_loaded_then_the_overrides_win(empty_dir):
    path = write(empty_dir / "site.toml", "[intake]\ndedup_window_hours = 12\n")
    s = load_settings(path, env={"DIALER_INTAKE_DEDUP_WINDOW_HOURS": "6"},
                      overrides={"intake.dedup_window_hours": 3.0, "db_url": "sqlite:///x.db"})
    assert (s.intake.dedup_window_hours, s.db_url) == (3.0, "sqlite:///x.db")


def test_given_an_override_of_none_when_loaded_then_it_does_not_hide_the_environment():
    s = load_settings(env={"DIALER_HTTP_PORT": "8282"}, overrides={"http.port": None})
    assert s.http.port == 8282


@pytest.mark.parametrize("text, expected", [("yes", True), ("1", True), ("on", True), ("false", False),
                                            ("OFF", False), ("0", False)])
def test_given_a_boolean_in_the_environment_when_loaded_then_usual_spellings_work(text, expected):
    assert load_settings(env={"DIALER_EXPORT_EXCEL_BOM": text}).export.excel_bom is expected


def test_given_a_table_in_the_environment_when_loaded_then_it_is_read_as_json():
    s = load_settings(env={"DIALER_CRM_FIELD_MAP": '{"phone": "телефон"}'})
    assert s.crm.field_map == {"phone": "телефон"}


def test_given_every_key_when_described_then_each_has_its_environment_variable_and_help():
    infos = describe()
    assert {i.key for i in infos} >= {"db_url", "intake.dedup_window_hours", "intake.csv_batch_size", "http.port"}
    for info in infos:
        assert info.env == env_name(info.key) and info.env.startswith("DIALER_") and info.help
    assert env_name("intake.csv_batch_size") == "DIALER_INTAKE_CSV_BATCH_SIZE"


# ---- bad values are refused, naming the key and what is allowed

def test_given_a_wrong_type_in_the_file_when_loaded_then_refused_naming_key_and_type(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", '[http]\nport = "восемь"\n'), env={})
    assert "http.port" in message and "whole number" in message


def test_given_true_for_a_number_when_loaded_then_refused(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", "[intake]\ncsv_batch_size = true\n"), env={})
    assert "intake.csv_batch_size" in message


def test_given_a_value_out_of_range_when_loaded_then_refused_with_the_range(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", "[http]\nport = 70000\n"), env={})
    assert "http.port" in message and "70000" in message and "1 to 65535" in message
    message = refused(env={"DIALER_INTAKE_CSV_BATCH_SIZE": "0"})
    assert "intake.csv_batch_size" in message and "1 to 100000" in message


def test_given_an_unknown_key_when_loaded_then_refused_listing_the_known_ones(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", "[intake]\nwindow = 3\n"), env={})
    assert "intake.window" in message and "dedup_window_hours" in message
    message = refused(config_path=write(empty_dir / "t.toml", "colour = 3\n"), env={})
    assert "colour" in message and "db_url" in message


def test_given_an_unknown_time_zone_when_loaded_then_refused_asking_for_an_iana_name():
    message = refused(env={"DIALER_CENTER_TIMEZONE": "Moscow/Kremlin"})
    assert "center_timezone" in message and "Moscow/Kremlin" in message and "IANA" in message


def test_given_an_unknown_region_when_loaded_then_refused_asking_for_a_region_code():
    message = refused(overrides={"default_region": "RUS"})
    assert "default_region" in message and "two-letter region code" in message


def test_given_a_number_that_is_not_a_number_in_the_environment_when_loaded_then_the_variable_is_named():
    message = refused(env={"DIALER_HTTP_PORT": "eighty"})
    assert "DIALER_HTTP_PORT" in message and "http.port" in message and "whole number" in message


def test_given_broken_toml_when_loaded_then_refused_saying_where(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", "[intake\ndedup_window_hours = 3\n"), env={})
    assert "not valid TOML" in message and "s.toml" in message and "line 1" in message


def test_given_a_missing_config_file_when_loaded_then_refused_naming_it(empty_dir):
    message = refused(config_path=empty_dir / "nope.toml", env={})
    assert "nope.toml" in message and "does not exist" in message


def test_given_a_bad_database_url_when_loaded_then_refused_with_the_accepted_forms():
    message = refused(env={"DIALER_DB_URL": "mysql://x"})
    assert "db_url" in message and "sqlite:///" in message


def test_given_a_section_that_is_not_a_table_when_loaded_then_refused(empty_dir):
    message = refused(config_path=write(empty_dir / "s.toml", "intake = 5\n"), env={})
    assert "intake" in message and "table" in message


# ---- the CLI: exit code 2 and the message

def test_given_a_bad_environment_value_when_the_cli_starts_then_it_exits_2_with_the_message(run_dialer):
    result = run_dialer("config", env={"DIALER_HTTP_PORT": "eighty"})
    assert result.returncode == 2
    assert "DIALER_HTTP_PORT" in result.stderr and "whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_given_a_missing_config_file_when_the_cli_starts_then_it_exits_2(run_dialer, tmp_path):
    result = run_dialer("--config", str(tmp_path / "absent.toml"), "config")
    assert result.returncode == 2
    assert "absent.toml" in result.stderr and "does not exist" in result.stderr


def test_given_a_value_out_of_range_in_the_file_when_the_cli_starts_then_it_exits_2(run_dialer, tmp_path):
    write(tmp_path / "dialer.toml", "[intake]\ndedup_window_hours = -1\n")
    result = run_dialer("config")
    assert result.returncode == 2
    assert "intake.dedup_window_hours" in result.stderr and "from 0" in result.stderr


def test_given_environment_and_flags_when_the_cli_shows_config_then_the_flag_wins(run_dialer, tmp_path):
    import json
    result = run_dialer("--db-url", f"sqlite:///{tmp_path / 'flag.db'}", "config", "--format", "json",
                        env={"DIALER_INTAKE_CSV_BATCH_SIZE": "777", "DIALER_INTAKE_TOKEN": "s3cret"})
    assert result.returncode == 0, result.stderr
    values = {row["key"]: row["value"] for row in json.loads(result.stdout)}
    assert values["intake.csv_batch_size"] == 777
    assert values["db_url"].endswith("flag.db")
    assert values["intake.token"] == "***"
    assert "s3cret" not in result.stdout
