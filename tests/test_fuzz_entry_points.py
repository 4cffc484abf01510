"""Property-based fuzzing (hypothesis) of every entry point: webhook bodies and headers over real HTTP,
CSV cells, CLI values and settings. For any input: never a 5xx or a traceback, every refusal answered
with a reason, every accepted input stored. Example counts are bounded so the file runs in seconds;
the inputs tried and the statuses seen are printed at the end of the run."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import string
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from dialer.web.app import create_app
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import Lead
from kernel.errors import DialerError, SettingsError
from kernel.settings import IntakeSettings, Settings, describe, load_settings
from leads.intake import Intake
from leads.sources.csv_import import import_csv
from tests.conftest import utc
from tests.log_problems import Problems

TOKEN = "fuzz-token"
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEEN: dict[str, Counter] = {}


@pytest.fixture(scope="module", autouse=True)
def report(request):
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print()
        for entry, counts in SEEN.items():
            print(f"fuzz {entry}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))




@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'dialer.db'}")
    upgrade(db)
    problems = Problems()
    logging.getLogger().addHandler(problems)
    settings_ = Settings(db_url=db.url, intake=IntakeSettings(
        token=TOKEN, query_token=True, max_body_bytes=8192,
        fields={"phone": ["contact.mobile", "tel"], "name": "contact.fio"}))
    try:
        with ServerThread(create_app(settings_, db, Intake(db), ManualClock(utc(2026, 11, 23, 7)))) as running:
            with httpx.Client(base_url=running.url, timeout=30) as client:
                yield client, db, problems
    finally:
        logging.getLogger().removeHandler(problems)
        db.dispose()


# ---------------------------------------------------------------- webhook

NAMES = ["phone", "Phone", "PHONE", "Телефон", "tel", "name", "Name", "Имя", "Ваше имя", "email", "Email",
         "order_number", "external_id", "product", "comment", "timezone", "region", "source", "preferred_time",
         "extra", "formid", "tranid", "test", "lead", "contact", "mobile", "fio", "lead[phone]", "a[b][c]"]
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["+79123456789", "8 (912) 345-67-89", "", " ", "Europe", "Etc", "America/Argentina", "Asia/Vladivostok",
     "Москва", "null", "0", "Я" * 250, "\x00", "+7 912 345 67 89 доб. 12"])
SCALARS = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False) | TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(NAMES) | TEXT, inner, max_size=4), max_leaves=12)
LEADISH = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), JSON_VALUES, max_size=6)
PHONE_NAMES = st.sampled_from(["phone", "Phone", "Телефон", "tel", "lead[phone]"])
PHONES = st.sampled_from(["+79123456789", "8 (912) 345-67-8", "89161234567", "", "12", "+7 495 000-00-00"]) \
    | st.from_regex(r"\+79[0-9]{9}", fullmatch=True) | TEXT
LEADS = st.builds(lambda phone_name, phone, rest: {**rest, phone_name: phone}, PHONE_NAMES, PHONES,
                  st.dictionaries(st.sampled_from(NAMES), TEXT, max_size=4))
FORM = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=8), TEXT, max_size=6)
CHARSETS = ["utf-8", "windows-1251", "koi8-r", "latin-1", "klingon", ""]


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["json", "json-batch", "urlencoded", "multipart", "raw", "lead-json", "lead-form"]))
    charset = draw(st.sampled_from(CHARSETS))
    suffix = f"; charset={charset}" if charset else ""
    if kind == "lead-json":
        body, ctype = json.dumps(draw(LEADS)).encode(), "application/json"
    elif kind == "lead-form":
        body = "&".join(f"{quote(k)}={quote(v)}" for k, v in draw(LEADS).items()).encode()
        ctype = "application/x-www-form-urlencoded"
    elif kind == "json":
        body, ctype = _encode(json.dumps(draw(LEADISH | JSON_VALUES), ensure_ascii=draw(st.booleans())), charset), \
            "application/json" + suffix
    elif kind == "json-batch":
        body, ctype = json.dumps(draw(st.lists(LEADS | LEADISH, max_size=4))).encode(), "application/json"
    elif kind == "urlencoded":
        body = "&".join(f"{quote(_encode(k, charset))}={quote(_encode(v, charset))}"
                        for k, v in draw(FORM).items()).encode()
        ctype = "application/x-www-form-urlencoded" + suffix
    elif kind == "multipart":
        body = b"".join(b'--BND\r\nContent-Disposition: form-data; name="' + _encode(k, charset).replace(b'"', b"")
                        + b'"\r\n\r\n' + _encode(v, charset) + b"\r\n" for k, v in draw(FORM).items()) + b"--BND--\r\n"
        ctype = draw(st.sampled_from([f"multipart/form-data; boundary=BND{suffix}", "multipart/form-data",
                                      "multipart/form-data; boundary=OTHER"]))
    else:
        body = draw(st.binary(max_size=300))
        ctype = draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                      "multipart/form-data; boundary=x", "", "application/vnd.api+json",
                                      "application/json; charset=utf-16"]))
    auth = draw(st.sampled_from(["header", "bearer", "query", "wrong", "none", "header", "header", "bearer"]))
    headers = {"Content-Type": ctype} if ctype else {}
    url = "/leads"
    if auth == "header":
        headers["X-Dialer-Token"] = TOKEN
    elif auth == "bearer":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif auth == "query":
        url += f"?token={TOKEN}"
    elif auth == "wrong":
        headers["X-Dialer-Token"] = draw(st.text(alphabet=string.printable.strip(), max_size=20))
    key = draw(st.none() | st.sampled_from(["k1", "k2", "", "x" * 300]) | st.text(string.ascii_letters, max_size=5))
    if key is not None:
        headers["Idempotency-Key"] = key
    return kind, url, headers, body


def _count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Lead))


@FUZZ
@given(request=requests())
def test_fuzz_webhook_never_5xx_every_refusal_has_a_reason_every_accepted_lead_is_stored(server, request):
    client, db, problems = server
    kind, url, headers, body = request
    before = _count(db)
    answer = client.post(url, content=body, headers=headers)
    SEEN.setdefault("webhook", Counter())["inputs"] += 1
    SEEN["webhook"][f"{answer.status_code}"] += 1
    assert answer.status_code < 500, answer.text
    payload = answer.json()
    after = _count(db)
    if answer.status_code >= 400:
        assert isinstance(payload["error"], str) and payload["error"].strip()
        assert after == before, "a refused request stored something"
    elif answer.status_code == 200:
        assert payload["stored"] is False and payload["reason"] and after == before
    else:
        assert answer.status_code == 202
        answers = payload["leads"] if "leads" in payload else [payload]
        new = [a for a in answers if not a["already_stored"]]
        assert after == before + len(new)
        with db.read() as session:
            for a in answers:
                lead = session.get(Lead, a["lead_id"])
                assert lead is not None and lead.status == a["status"]
    assert not problems.records, [r.getMessage() for r in problems.records]


# ---------------------------------------------------------------- CSV cells

CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=12) | st.sampled_from(
    ["+79123456789", "Europe", "Asia/Vladivostok", '"', ";", "\n", "Я" * 300, "\x00", "", "89161234567",
     "Анна", "Europe/Moscow"]) | st.from_regex(r"\+79[0-9]{9}", fullmatch=True)
HEADERS = st.builds(lambda phone, rest, at: [*rest[:at], phone, *rest[at:]],
                    st.sampled_from(["phone", "Телефон", "tel", "x"]),
                    st.lists(st.sampled_from(["name", "ФИО", "timezone", "comment", "order", "x", ""]), max_size=4),
                    st.integers(0, 4))


@pytest.fixture(scope="module")
def csv_db(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('fuzzcsv') / 'dialer.db'}")
    upgrade(db)
    yield db
    db.dispose()


@FUZZ
@given(header=HEADERS, rows=st.lists(st.lists(CELL, max_size=6), max_size=6),
       delimiter=st.sampled_from([";", ",", "\t"]), encoding=st.sampled_from(["utf-8", "cp1251"]))
def test_fuzz_csv_cells_never_crash_and_every_accepted_row_is_stored(csv_db, header, rows, delimiter, encoding):
    text = "\n".join(delimiter.join(f'"{c}"' if '"' not in c and c.strip() != c else c for c in line)
                     for line in [header, *rows]) + "\n"
    before = _count(csv_db)
    try:
        report = import_csv(io.BytesIO(_encode(text, encoding)), Intake(csv_db), ManualClock(utc(2026, 11, 23, 7)),
                            encoding=encoding)
    except DialerError as refused:  # the whole file refused (no phone column, wrong encoding): nothing stored
        SEEN.setdefault("csv", Counter())["file refused"] += 1
        assert str(refused).strip() and _count(csv_db) == before
        return
    SEEN.setdefault("csv", Counter())["imported"] += 1
    SEEN["csv"]["rows stored"] += report.stored
    SEEN["csv"]["rows refused"] += report.malformed
    assert _count(csv_db) == before + report.stored
    assert all(row.problem.strip() for row in report.malformed_rows)


# ---------------------------------------------------------------- CLI values

ARG = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
              max_size=20) | st.sampled_from(["0001-01-01T00:00", "9999-12-31T23:59", "-1", "0", "10**99",
                                              "+79123456789", "Europe", "nan", "--help", "1", "new", "json",
                                              "2026-11-23T10:30", "2026-11-23T10:30+03:00", "Анна", "5",
                                              "99999999999999999999", "-99999999999999999999"])
COMMANDS = [
    lambda a: ["queue", "--at", a], lambda a: ["why", a], lambda a: ["why", "1", "--at", a],
    lambda a: ["leads", "list", "--status", a], lambda a: ["leads", "list", "--limit", a], lambda a: ["leads", "show", a],
    lambda a: ["dnc", "add", a], lambda a: ["dnc", "remove", a], lambda a: ["policy", "set", "max_attempts", a],
    lambda a: ["policy", "set", a, "1"], lambda a: ["leads", "list", "--format", a], lambda a: ["operators", "add", a],
    lambda a: ["crm", "retry", a], lambda a: ["dispose", a, "confirmed", "--amount", "5"],
    lambda a: ["operators", "set", a, "--level", "2"], lambda a: ["export", "--since", a, "--out", "-"],
    # alerts (issue 14)
    lambda a: ["alerts", "rules", "add", "--kind", a, "--channel", "email", "--to", "a@shop.ru"],
    lambda a: ["alerts", "rules", "add", "--kind", "complaint", "--channel", a, "--to", "a@shop.ru"],
    lambda a: ["alerts", "rules", "add", "--kind", "complaint", "--channel", "telegram", "--to", a],
    lambda a: ["alerts", "rules", "add", "--kind", "large_order", "--min-amount", a, "--channel", "email",
               "--to", "a@shop.ru"],
    lambda a: ["alerts", "rules", "add", "--kind", "abandon_rate_above", "--above", a, "--channel", "webhook",
               "--to", "http://127.0.0.1:9/x"],
    lambda a: ["alerts", "rules", "remove", a], lambda a: ["alerts", "rules", "disable", a],
    lambda a: ["alerts", "test", "--kind", a], lambda a: ["alerts", "list", "--last", a],
    lambda a: ["alerts", "retry", a],
]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    import cli
    path = tmp_path_factory.mktemp("fuzzcli") / "dialer.db"
    saved = {k: v for k, v in os.environ.items() if k.startswith("DIALER_")}
    for k in saved:
        del os.environ[k]
    os.environ["DIALER_DB_URL"] = f"sqlite:///{path}"
    os.environ["DIALER_LOG_LEVEL"] = "ERROR"
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_cli(cli, ["init"])[0] == 0
    yield cli
    for k in [k for k in os.environ if k.startswith("DIALER_")]:
        del os.environ[k]
    os.environ.update(saved)


def run_cli(cli, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


@FUZZ
@given(command=st.sampled_from(COMMANDS), value=ARG)
def test_fuzz_cli_values_give_an_exit_code_and_a_reason_never_a_traceback(cli_env, command, value):
    argv = command(value)
    code, err = run_cli(cli_env, argv)   # an unexpected exception would escape here and fail the test
    SEEN.setdefault("cli", Counter())["inputs"] += 1
    SEEN["cli"][f"exit {code}"] += 1
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code != 0 and "--help" not in argv:
        assert "error" in err.lower(), (argv, err)


# ---------------------------------------------------------------- settings

SECRETS = [info for info in describe() if info.secret]


@FUZZ
@given(values=st.dictionaries(st.sampled_from([info.env for info in describe()]),
                              st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"],
                                                             exclude_characters="\x00"), max_size=12)
                              | st.sampled_from(["Europe", "0", "-1", "1e999", "{}", "[]", "true", "nan"]),
                              max_size=4),
       secret=st.sampled_from(SECRETS), secret_value=st.text(string.ascii_letters, max_size=8).map("sEcReT-".__add__))
def test_fuzz_settings_give_settings_or_a_one_line_error_without_secrets(values, secret, secret_value):
    env = {**values, secret.env: secret_value}
    try:
        load_settings(env=env)
        SEEN.setdefault("settings", Counter())["accepted"] += 1
    except SettingsError as exc:
        SEEN.setdefault("settings", Counter())["refused"] += 1
        message = str(exc)
        assert message.strip() and "\n" not in message
        assert secret_value not in message, message


@FUZZ
@given(toml=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120)
       | st.builds(lambda section, key, value: f"[{section}]\n{key} = {value}\n",
                   st.sampled_from(["intake", "http", "ami", "intake.fields", "console", "feeds", "nope",
                                    "alerts", "[reports.schedule]"]),
                   st.sampled_from(["token", "port", "fields", "phone", "secret", "query_token", "x", "cron",
                                    "recipients", "period", "schedule", "telegram_api_url", "smtp_port"]),
                   st.sampled_from(['"Europe"', "5", "true", "[1]", '["a", 2]', "{}", '"x"', "-1",
                                    '"0 8 * * 1-5"', '"61 * * * *"', '"a@b.ru"'])))
def test_fuzz_settings_files_give_settings_or_a_one_line_error(tmp_path_factory, toml):
    path = tmp_path_factory.mktemp("toml") / "dialer.toml"
    path.write_text(toml, encoding="utf-8")
    try:
        load_settings(path, env={})
        SEEN.setdefault("settings file", Counter())["accepted"] += 1
    except SettingsError as exc:
        SEEN.setdefault("settings file", Counter())["refused"] += 1
        assert str(exc).strip()
