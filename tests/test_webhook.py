"""POST /leads over real HTTP (uvicorn on 127.0.0.1, httpx), against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import Lead
from kernel.settings import IntakeSettings, Settings
from dialer.web.app import create_app
from dialer.web.server import ServerThread
from leads import dnc
from leads.intake import Intake, IntakeOutcome, LeadIn
from leads.lead import LeadStatus
from leads.sources.webhook import Refusal, SharedTransactions
from tests.conftest import utc

TOKEN = "s3cret-token"
START = utc(2026, 11, 23, 7, 30)
REPO = Path(__file__).resolve().parent.parent


class Webhook:
    def __init__(self, url: str, db: Database, clock: ManualClock) -> None:
        self.url, self.db, self.clock = url, db, clock
        self.client = httpx.Client(base_url=url, headers={"X-Dialer-Token": TOKEN}, timeout=30)

    def post(self, body=None, **kwargs) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return self.client.post("/leads", **kwargs)


@contextmanager
def running_webhook(db: Database, token: str = TOKEN, max_body_bytes: int = 65536):
    clock = ManualClock(START)
    settings = Settings(db_url=db.url, intake=IntakeSettings(token=token, max_body_bytes=max_body_bytes))
    app = create_app(settings, db, Intake(db), clock)
    with ServerThread(app) as server:
        hook = Webhook(server.url, db, clock)
        try:
            yield hook
        finally:
            hook.client.close()


@pytest.fixture
def webhook(db):
    with running_webhook(db) as hook:
        yield hook


@contextmanager
def module_sqlite(tmp_path_factory, token: str):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('webhook') / 'dialer.db'}")
    upgrade(db)
    try:
        with running_webhook(db, token=token) as hook:
            yield hook
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def sqlite_hook(tmp_path_factory):
    """One server on one SQLite file for the many refusal cases (each case compares before/after)."""
    with module_sqlite(tmp_path_factory, TOKEN) as hook:
        yield hook


@pytest.fixture(scope="module")
def closed_hook(tmp_path_factory):
    """A server whose intake.token is empty."""
    with module_sqlite(tmp_path_factory, "") as hook:
        yield hook


def stored(db: Database, lead_id: int) -> Lead:
    with db.read() as session:
        return session.get(Lead, lead_id)


def all_rows(db: Database) -> list[tuple]:
    with db.read() as session:
        return [tuple(row) for row in session.execute(select(Lead.__table__).order_by(Lead.id))]


# ---------------------------------------------------------------- accepted leads

def test_given_a_new_phone_when_posted_then_202_new_and_every_field_stored_exactly(webhook):
    body = {"phone": "8 (912) 345-67-89", "name": "Анна Петрова-Ёлкина", "order_number": "A-1001",
            "product": "кофемашина", "source": "форма на сайте", "comment": "Перезвоните после обеда, «срочно»",
            "preferred_time": "после 14:00", "timezone": "Asia/Vladivostok", "region": "Приморский край"}
    answer = webhook.post(body)

    assert answer.status_code == 202
    data = answer.json()
    assert data["status"] == "new" and data["duplicate_of"] is None
    lead = stored(webhook.db, data["lead_id"])
    assert lead.phone_e164 == "+79123456789" and lead.phone_raw == "8 (912) 345-67-89"
    assert (lead.name, lead.comment, lead.product, lead.source) == (
        body["name"], body["comment"], body["product"], body["source"])
    assert (lead.order_number, lead.preferred_time, lead.timezone, lead.region) == (
        "A-1001", "после 14:00", "Asia/Vladivostok", "Приморский край")
    assert lead.status == "new" and lead.received_at == START
    assert lead.extra is None


def test_received_at_comes_from_the_injected_clock(webhook):
    webhook.clock.advance(timedelta(hours=5, minutes=3))
    lead_id = webhook.post({"phone": "+7 912 345 67 80"}).json()["lead_id"]
    assert stored(webhook.db, lead_id).received_at == START + timedelta(hours=5, minutes=3)


def test_given_same_phone_and_order_when_posted_twice_then_second_is_duplicate_of_first(webhook):
    first = webhook.post({"phone": "+79123456789", "order_number": "A-1"}).json()
    second = webhook.post({"phone": "8 912 345-67-89", "external_id": "A-1"}).json()
    other_order = webhook.post({"phone": "9123456789", "order_number": "A-2"}).json()

    assert first["status"] == "new"
    assert second["status"] == "duplicate" and second["duplicate_of"] == first["lead_id"]
    assert other_order["status"] == "new"
    assert stored(webhook.db, second["lead_id"]).duplicate_of_id == first["lead_id"]
    assert len(all_rows(webhook.db)) == 3


def test_given_number_on_dnc_when_posted_then_stored_as_dnc(webhook):
    dnc.add(webhook.db, "+79123456789", region="RU", reason="просил писать на почту", added_by="test", now=START)
    data = webhook.post({"phone": "8 (912) 345-67-89", "name": "Иван"}).json()
    assert data["status"] == "dnc" and "do-not-call" in data["reason"]
    assert stored(webhook.db, data["lead_id"]).status == "dnc"


@pytest.mark.parametrize("phone, reason", [
    ("", "no_phone"), (None, "no_phone"), ("позвоните мне", "unparsable_phone"),
    ("+7 000 000 00 00", "not_a_valid_number"), ("8 (999) 999-99-99", "obvious_fake"),
])
def test_given_uncallable_phone_when_posted_then_202_and_stored_invalid_with_reason(webhook, phone, reason):
    data = webhook.post({"phone": phone, "name": "Тест"}).json()
    assert data["status"] == "invalid" and data["reason"] == reason
    lead = stored(webhook.db, data["lead_id"])
    assert (lead.status, lead.invalid_reason, lead.phone_raw, lead.phone_e164) == ("invalid", reason, phone, None)


def test_unknown_fields_are_kept_in_extra_and_aliases_are_read(webhook):
    body = {"phone": 79123456789, "tag": "пылесос", "external_id": 555, "utm_source": "яндекс",
            "cart": {"items": [1, 2], "sum": 1990.5}, "extra": {"landing": "/promo"}}
    data = webhook.post(body).json()
    lead = stored(webhook.db, data["lead_id"])
    assert (lead.phone_e164, lead.product, lead.order_number) == ("+79123456789", "пылесос", "555")
    assert lead.extra == {"utm_source": "яндекс", "cart": {"items": [1, 2], "sum": 1990.5}, "landing": "/promo"}


def test_a_list_of_leads_is_stored_in_order_as_one_batch(webhook):
    answer = webhook.post([{"phone": "+79123456789"}, {"phone": "+79123456789"}, {"phone": "нет"}])
    assert answer.status_code == 202
    statuses = [lead["status"] for lead in answer.json()["leads"]]
    assert statuses == ["new", "duplicate", "invalid"]
    assert len(all_rows(webhook.db)) == 3


def test_a_retry_with_the_same_idempotency_key_answers_the_first_outcome_and_stores_nothing(webhook):
    headers = {"Idempotency-Key": "form-42"}
    first = webhook.post({"phone": "+79123456789"}, headers=headers).json()
    retry = webhook.post({"phone": "+79123456789"}, headers=headers).json()
    assert retry["lead_id"] == first["lead_id"] and retry["status"] == "new" and retry["already_stored"]
    assert len(all_rows(webhook.db)) == 1


def test_bearer_header_is_accepted_as_well_as_x_dialer_token(webhook):
    answer = httpx.post(webhook.url + "/leads", json={"phone": "+79123456789"},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 202


def test_each_accepted_lead_is_logged_with_masked_phone(webhook, caplog):
    with caplog.at_level(logging.INFO, logger="leads.webhook"):
        lead_id = webhook.post({"phone": "+79123456789"}).json()["lead_id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "leads.webhook"]
    assert any(f"lead_id={lead_id}" in line and "status=new" in line and "+7912***6789" in line for line in lines)
    assert not any("+79123456789" in line for line in lines)


# ---------------------------------------------------------------- refused input: nothing stored, nothing changed

BAD_BODIES = [
    pytest.param(b'{"phone": "+79123456789"', "application/json", 400, "not valid JSON", id="truncated-json"),
    pytest.param(b"phone=+79123456789", "application/json", 400, "not valid JSON", id="form-encoded-as-json"),
    pytest.param(b"\xff\xfe{}", "application/json", 400, "not UTF-8", id="not-utf8"),
    pytest.param(b'{"phone": NaN}', "application/json", 400, "NaN", id="nan"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "application/json", 400, "nested too deeply", id="deep-nesting"),
    pytest.param(b'"+79123456789"', "application/json", 422, "JSON object", id="a-string"),
    pytest.param(b"[]", "application/json", 422, "empty", id="empty-list"),
    pytest.param(b'[{"phone": "+79123456789"}, 5]', "application/json", 422, "lead [1]", id="batch-with-a-number"),
    pytest.param(b'{"name": "Anna"}', "application/json", 422, "phone is required", id="no-phone-key"),
    pytest.param(b'{"phone": ["+79123456789"]}', "application/json", 422, "phone must be", id="phone-as-list"),
    pytest.param(b'{"phone": true}', "application/json", 422, "phone must be", id="phone-as-bool"),
    pytest.param(b'{"phone": "+79123456789", "name": 5}', "application/json", 422, "name must be a string",
                 id="name-as-number"),
    pytest.param(b'{"phone": "+79123456789", "extra": [1]}', "application/json", 422, "extra must be",
                 id="extra-as-list"),
    pytest.param(json.dumps({"phone": "+79123456789", "name": "Я" * 201}).encode(), "application/json", 422,
                 "name is longer than 200", id="over-long-name"),
    pytest.param(b'{"phone": "+79123456789", "timezone": "Moscow/Narnia"}', "application/json", 422,
                 "not an IANA time zone", id="unknown-timezone"),
    pytest.param(b'{"phone": "+79123456789", "name": "A\\u0000B"}', "application/json", 422, "NUL",
                 id="nul-character"),
    pytest.param(b'{"phone": "+79123456789", "note": "\\ud800"}', "application/json", 422, "surrogate",
                 id="lone-surrogate"),
    pytest.param(b'{"phone": "1", "order_number": "A", "external_id": "B"}', "application/json", 422,
                 "both given", id="order-number-twice"),
    pytest.param(b'{"phone": "+79123456789"}', "text/plain", 415, "Content-Type: application/json",
                 id="text-plain"),
    pytest.param(b'{"phone": "+79123456789"}', "application/json; charset=klingon-8", 415, "unknown charset",
                 id="unknown-charset"),
    pytest.param(b"\xc0\xed\xed\xe0", "application/x-www-form-urlencoded", 400, "not utf-8 text",
                 id="cp1251-form-declared-utf8"),
    pytest.param(json.dumps({"phone": "+79123456789", "comment": "x" * 1_000_000}).encode(), "application/json",
                 413, "at most 65536", id="1mb-body"),
]


@pytest.mark.parametrize("body, content_type, status, reason", BAD_BODIES)
def test_given_malformed_request_then_4xx_with_reason_and_stored_data_unchanged(sqlite_hook, body, content_type,
                                                                                  status, reason):
    check_refused(sqlite_hook, body, content_type, status, reason)


def check_refused(webhook: Webhook, body: bytes, content_type: str, status: int, reason: str) -> None:
    webhook.post({"phone": "+79123456789", "name": "Было до"})
    before = all_rows(webhook.db)

    answer = webhook.post(content=body, headers={"Content-Type": content_type})

    assert answer.status_code == status, answer.text
    assert reason in answer.json()["error"] + " ".join(answer.json().get("problems", []))
    assert all_rows(webhook.db) == before


@pytest.mark.parametrize("case", ["nul-character", "over-long-name", "batch-with-a-number"])
def test_on_both_databases_a_refused_request_changes_nothing(webhook, case):
    body, content_type, status, reason = next(p.values for p in BAD_BODIES if p.id == case)
    check_refused(webhook, body, content_type, status, reason)


def test_a_1mb_body_without_content_length_is_refused_while_streaming(webhook):
    def body():
        yield b'{"phone": "+79123456789", "comment": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    answer = webhook.post(content=body(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "larger than 65536" in answer.json()["error"]
    assert all_rows(webhook.db) == []


@pytest.mark.parametrize("headers, status, reason", [
    ({}, 401, "no token"),
    ({"X-Dialer-Token": "wrong"}, 401, "wrong token"),
    ({"X-Dialer-Token": ""}, 401, "wrong token"),
    ({"Authorization": "Bearer wrong"}, 401, "wrong token"),
    ({"Authorization": f"Basic {TOKEN}"}, 401, "no token"),
])
def test_given_missing_or_wrong_token_then_401_and_nothing_stored(sqlite_hook, headers, status, reason):
    before = all_rows(sqlite_hook.db)
    answer = httpx.post(sqlite_hook.url + "/leads", json={"phone": "+79123456789"}, headers=headers)
    assert answer.status_code == status and reason in answer.json()["error"]
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert all_rows(sqlite_hook.db) == before


@pytest.mark.parametrize("headers", [{}, {"X-Dialer-Token": ""}, {"Authorization": "Bearer"},
                                     {"X-Dialer-Token": "anything"}])
def test_given_empty_configured_token_then_every_call_is_refused(closed_hook, headers):
    answer = httpx.post(closed_hook.url + "/leads", json={"phone": "+79123456789"}, headers=headers)
    assert answer.status_code == 403 and "intake.token" in answer.json()["error"]
    assert all_rows(closed_hook.db) == []


def test_given_the_store_fails_then_503_and_the_caller_is_told_to_retry(sqlite_db):
    with running_webhook(sqlite_db) as hook:
        with sqlite_db.write() as session:
            session.execute(text("ALTER TABLE leads RENAME TO leads_gone"))
        answer = hook.post({"phone": "+79123456789"})
    assert answer.status_code == 503 and "retry later" in answer.json()["error"]


# ---------------------------------------------------------------- concurrency

def test_given_10_identical_posts_at_once_then_exactly_one_is_new(webhook):
    barrier = threading.Barrier(10)
    answers: list[dict] = []

    def post() -> None:
        with httpx.Client(base_url=webhook.url, headers={"X-Dialer-Token": TOKEN}, timeout=60) as client:
            barrier.wait(timeout=10)
            answers.append(client.post("/leads", json={"phone": "+79123456789", "order_number": "Z-9",
                                                       "name": "Одновременно"}).json())

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(answer["status"] for answer in answers)
    assert statuses == ["duplicate"] * 9 + ["new"]
    new_id = next(a["lead_id"] for a in answers if a["status"] == "new")
    assert {a["duplicate_of"] for a in answers if a["status"] == "duplicate"} == {new_id}
    assert len(all_rows(webhook.db)) == 10


class PoisonIntake:
    """Fails (as a database would) for any transaction holding a lead named "poison"; records transactions."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []

    def submit(self, leads, received_at):
        names = [lead.name for lead in leads]
        self.transactions.append(names)
        if "poison" in names:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return [IntakeOutcome(i, LeadStatus.NEW, "test", None, None) for i, _ in enumerate(leads)]


def test_calls_arriving_together_share_one_transaction_and_a_failing_one_refuses_only_itself():
    intake = PoisonIntake()
    shared = SharedTransactions(intake, ManualClock(START))

    async def three_calls():
        return await asyncio.gather(*(shared.submit([LeadIn(phone="+79123456789", name=name)])
                                      for name in ("a", "poison", "b")), return_exceptions=True)

    a, poison, b = asyncio.run(three_calls())

    assert intake.transactions == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    assert a[0].status is LeadStatus.NEW and b[0].status is LeadStatus.NEW
    assert isinstance(poison, Refusal) and poison.status == 503


# ---------------------------------------------------------------- health, OpenAPI

def test_health_answers_ok_with_schema_state_without_token(webhook):
    answer = httpx.get(webhook.url + "/health")
    assert answer.status_code == 200
    data = answer.json()
    assert data["status"] == "ok" and data["schema"]["up_to_date"] is True
    assert data["schema"]["current"] == data["schema"]["head"]


def test_health_is_503_on_a_database_that_was_never_initialized(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with running_webhook(db) as hook:
            answer = httpx.get(hook.url + "/health")
    finally:
        db.dispose()
    assert answer.status_code == 503
    assert answer.json()["schema"]["current"] is None and "dialer init" in answer.json()["error"]


def test_openapi_schema_documents_the_webhook(webhook):
    schema = httpx.get(webhook.url + "/openapi.json").json()
    post = schema["paths"]["/leads"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert body_schema["required"] == ["phone"] and "external_id" in body_schema["properties"]
    assert {"202", "401", "413", "422"} <= set(post["responses"])
    assert "/health" in schema["paths"]


# ---------------------------------------------------------------- `dialer serve`

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cli", *args]
    full_env = {**os.environ, **env}
    if kwargs.pop("background", False):
        return subprocess.Popen(command, cwd=kwargs.pop("cwd"), env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=kwargs.pop("cwd"), env=full_env, capture_output=True, text=True,
                          timeout=60)


def cli_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {"DIALER_DB_URL": db_url, "DIALER_INTAKE_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}


def test_serve_refuses_a_database_that_was_never_initialized(tmp_path):
    env = cli_env(tmp_path, f"sqlite:///{tmp_path / 'never.db'}")
    result = run_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "dialer init" in result.stderr


def test_serve_takes_leads_on_the_port_given_by_flag_and_stops_on_sigint(tmp_path):
    env = cli_env(tmp_path, f"sqlite:///{tmp_path / 'dialer.db'}")
    assert run_cli("init", env=env, cwd=tmp_path).returncode == 0
    port = free_port()
    server = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), env=env, cwd=tmp_path, background=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "dialer serve did not start"
            time.sleep(0.1)
        answer = httpx.post(url + "/leads", json={"phone": "+79123456789", "name": "Ольга"},
                            headers={"X-Dialer-Token": TOKEN})
        assert answer.status_code == 202 and answer.json()["status"] == "new"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    assert "+7912***6789" in output and "+79123456789" not in output
