"""Leads as real sites send them, over real HTTP (uvicorn on 127.0.0.1, httpx): plain HTML forms, site
builders' form webhooks (urlencoded, multipart, windows-1251, token in the URL), JSON CRM webhooks with
their own field names, the `[intake.fields]` mapping, builders' checks, and reused Idempotency-Keys."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from dialer.web.app import create_app
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.models import Lead
from kernel.errors import SettingsError
from kernel.settings import IntakeSettings, Settings, load_settings
from leads.intake import Intake
from tests.conftest import utc

TOKEN = "form-s3cret"
START = utc(2026, 11, 23, 7, 30)


@contextmanager
def hook(db: Database, **intake):
    settings = Settings(db_url=db.url, intake=IntakeSettings(token=TOKEN, **intake))
    with ServerThread(create_app(settings, db, Intake(db), ManualClock(START))) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client


def leads(db: Database) -> list[Lead]:
    with db.read() as session:
        return list(session.scalars(select(Lead).order_by(Lead.id)))


AUTH = {"X-Dialer-Token": TOKEN}


# ---------------------------------------------------------------- recipe 1: a plain HTML form

def test_plain_html_form_with_russian_field_names_is_stored(db):
    """<form method=post action=".../leads?token=..."> with inputs named Имя, Телефон, Комментарий."""
    with hook(db, query_token=True) as client:
        answer = client.post(f"/leads?token={TOKEN}", data={"Имя": "Анна Петрова", "Телефон": "8 (912) 345-67-89",
                                                            "Комментарий": "после обеда", "utm_source": "yandex"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "new"
    [lead] = leads(db)
    assert (lead.name, lead.phone_e164, lead.comment) == ("Анна Петрова", "+79123456789", "после обеда")
    assert lead.extra == {"utm_source": "yandex"} and lead.source == "webhook"


def test_an_html_form_in_windows_1251_is_read_in_its_charset(db):
    body = "&".join(f"{quote(k.encode('cp1251'))}={quote(v.encode('cp1251'))}"
                    for k, v in {"Имя": "Ёлкина Юлия", "Телефон": "+7 912 345-67-89", "Товар": "чайник"}.items())
    with hook(db) as client:
        answer = client.post("/leads", content=body.encode("ascii"), headers={
            **AUTH, "Content-Type": "application/x-www-form-urlencoded; charset=windows-1251"})
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.product, lead.phone_e164) == ("Ёлкина Юлия", "чайник", "+79123456789")


def test_the_html_charset_field_names_the_encoding_of_the_form(db):
    body = b"_charset_=windows-1251&name=" + quote("Пётр".encode("cp1251")).encode() + b"&phone=89123456789"
    with hook(db) as client:
        answer = client.post("/leads", content=body,
                             headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 202, answer.text
    assert leads(db)[0].name == "Пётр" and leads(db)[0].extra is None


# ---------------------------------------------------------------- recipe 2: a site builder's form webhook

def test_site_builder_webhook_with_capitalised_fields_and_token_in_the_url(db):
    """The way Tilda-like builders post: urlencoded Name/Phone/Email, form and transaction ids, URL token."""
    fields = {"Name": "Ольга", "Phone": "+7 (912) 345-67-89", "Email": "olga@example.ru",
              "formid": "form123456", "tranid": "1234567:890"}
    with hook(db, query_token=True) as client:
        answer = client.post(f"/leads?token={TOKEN}", data=fields)
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.phone_raw, lead.phone_e164) == ("Ольга", "+7 (912) 345-67-89", "+79123456789")
    assert lead.extra == {"Email": "olga@example.ru", "formid": "form123456", "tranid": "1234567:890"}


def test_multipart_form_with_a_file_keeps_the_fields_and_only_the_files_name(db):
    with hook(db) as client:
        answer = client.post("/leads", headers=AUTH, data={"name": "Иван", "phone": "+79123456780"},
                             files={"photo": ("кот.jpg", b"\xff\xd8" * 100, "image/jpeg")})
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.phone_e164) == ("Иван", "+79123456780")
    assert lead.extra == {"photo": "кот.jpg (200 bytes)"}


def test_multipart_form_in_windows_1251_field_names_and_values(db):
    parts = [("Телефон", "8 912 345 67 81"), ("Ваше имя", "Наталья"), ("Вопрос", "Доставка в Тверь?")]
    body = b"".join(b"--XyZ\r\nContent-Disposition: form-data; name=\"" + name.encode("cp1251") + b"\"\r\n\r\n"
                    + value.encode("cp1251") + b"\r\n" for name, value in parts) + b"--XyZ--\r\n"
    with hook(db) as client:
        answer = client.post("/leads", content=body, headers={
            **AUTH, "Content-Type": "multipart/form-data; boundary=XyZ; charset=windows-1251"})
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.comment, lead.phone_e164) == ("Наталья", "Доставка в Тверь?", "+79123456781")


@pytest.mark.parametrize("send", [
    pytest.param(lambda c, url: c.post(url, data={"test": "test"}), id="tilda-style-test-field"),
    pytest.param(lambda c, url: c.post(url, content=b"", headers={"Content-Type": "application/json"}),
                 id="empty-json-post"),
    pytest.param(lambda c, url: c.post(url, json={"formid": "form1", "test": True}), id="json-without-a-lead"),
    pytest.param(lambda c, url: c.get(url), id="get"),
])
def test_a_builders_check_of_a_new_webhook_gets_200_and_nothing_is_stored(sqlite_db, send):
    with hook(sqlite_db, query_token=True) as client:
        answer = send(client, f"/leads?token={TOKEN}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] is False
    assert leads(sqlite_db) == []


def test_a_query_token_is_refused_unless_turned_on_and_never_logged(sqlite_db, caplog):
    caplog.set_level(logging.DEBUG)
    with hook(sqlite_db) as client:
        refused = client.post(f"/leads?token={TOKEN}", data={"phone": "+79123456789"})
    with hook(sqlite_db, query_token=True) as client:
        wrong = client.post("/leads?token=nope", data={"phone": "+79123456789"})
        accepted = client.post(f"/leads?token={TOKEN}", data={"phone": "+79123456789"})
    assert refused.status_code == 401 and "intake.query_token" in refused.json()["error"]
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong token"
    assert accepted.status_code == 202 and len(leads(sqlite_db)) == 1
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not our client's
    assert server_side and not any(TOKEN in record.getMessage() for record in server_side)


# ---------------------------------------------------------------- recipe 3: a JSON CRM webhook

def test_json_crm_webhook_with_a_nested_lead_and_bearer_token(db):
    body = {"event": "lead.created", "lead": {"Phone": 79123456789, "Name": "Сергей", "Email": "s@x.ru",
                                              "external_id": "CRM-77"}, "account": {"id": 5}}
    with hook(db) as client:
        answer = client.post("/leads", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.phone_e164, lead.order_number) == ("Сергей", "+79123456789", "CRM-77")
    assert lead.extra == {"event": "lead.created", "lead": {"Email": "s@x.ru"}, "account": {"id": 5}}


def test_intake_fields_mapping_from_the_toml_file_reads_their_names(db, tmp_path):
    config = tmp_path / "dialer.toml"
    config.write_text('[intake]\ntoken = "form-s3cret"\n[intake.fields]\n'
                      'phone = ["contact.mobile", "contact.work_phone"]\nname = "contact.FIO"\n'
                      'order_number = "deal_id"\n', encoding="utf-8")
    settings = load_settings(config, env={})
    assert settings.intake.fields["phone"] == ["contact.mobile", "contact.work_phone"]
    body = {"deal_id": "D-9", "contact": {"fio": "Мария", "work_phone": "+79123456782", "phone": "не звонить"}}
    with ServerThread(create_app(settings, db, Intake(db), ManualClock(START))) as server:
        answer = httpx.post(server.url + "/leads", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    [lead] = leads(db)
    assert (lead.name, lead.phone_e164, lead.order_number) == ("Мария", "+79123456782", "D-9")
    assert lead.extra == {"contact": {"phone": "не звонить"}}


@pytest.mark.parametrize("fields", [{"telephone": "x"}, {"phone": 5}, {"phone": []}])
def test_a_bad_intake_fields_mapping_is_a_settings_error_naming_the_key(fields):
    with pytest.raises(SettingsError, match="intake.fields"):
        load_settings(env={}, overrides={"intake.fields": fields})


# ---------------------------------------------------------------- idempotency and bad values

def test_an_idempotency_key_reused_with_another_lead_is_409_and_stores_nothing(db):
    with hook(db) as client:
        first = client.post("/leads", json={"phone": "+79123456789", "name": "Анна"},
                            headers={**AUTH, "Idempotency-Key": "k-1"})
        retry = client.post("/leads", json={"phone": "+79123456789", "name": "Анна"},
                            headers={**AUTH, "Idempotency-Key": "k-1"})
        other = client.post("/leads", json={"phone": "+79123456700", "name": "Борис"},
                            headers={**AUTH, "Idempotency-Key": "k-1"})
    assert first.status_code == 202 and retry.status_code == 202 and retry.json()["already_stored"] is True
    assert other.status_code == 409, other.text
    assert "used before with a different lead" in other.json()["error"] and "phone" in other.json()["error"]
    assert [(lead.name, lead.source_item_id) for lead in leads(db)] == [("Анна", "k-1")]


@pytest.mark.parametrize("zone", ["Europe", "Etc", "America/Argentina"])
def test_a_zone_folder_as_timezone_is_refused_with_422_not_500(sqlite_db, zone):
    with hook(sqlite_db) as client:
        answer = client.post("/leads", json={"phone": "+79123456789", "timezone": zone}, headers=AUTH)
        form = client.post("/leads", data={"Телефон": "+79123456789", "Часовой пояс": zone}, headers=AUTH)
    assert answer.status_code == 422 and "not an IANA time zone" in " ".join(answer.json()["problems"])
    assert form.status_code == 422
    assert leads(sqlite_db) == []


def test_a_client_that_half_closes_mid_body_leaves_no_traceback(sqlite_db, caplog):
    caplog.set_level(logging.INFO)
    with hook(sqlite_db) as client:
        host, port = client.base_url.host, client.base_url.port
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(f"POST /leads HTTP/1.1\r\nHost: {host}\r\nX-Dialer-Token: {TOKEN}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"phone\": ".encode())
            raw.shutdown(socket.SHUT_WR)
            raw.recv(1000)   # the server answers or closes: either way it has seen the half-close
        deadline = time.monotonic() + 10
        while not any("client_gone" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
        healthy = client.get("/health")
    assert healthy.status_code == 200
    assert any("client_gone" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records)
    assert leads(sqlite_db) == []


def test_deeply_nested_bodies_are_stored_or_refused_never_a_500(sqlite_db):
    nested_json = '{"Phone": "+79123456789", "deep": ' + '{"a": ' * 900 + '1' + '}' * 900 + '}'
    nested_form = "phone=%2B79123456780&" + "x" + "[a]" * 2000 + "=1"
    with hook(sqlite_db) as client:
        deep_json = client.post("/leads", content=nested_json.encode(),
                                headers={**AUTH, "Content-Type": "application/json"})
        deep_form = client.post("/leads", content=nested_form.encode(),
                                headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert deep_json.status_code == 202 and deep_form.status_code == 202, (deep_json.text, deep_form.text)
    assert [lead.phone_e164 for lead in leads(sqlite_db)] == ["+79123456789", "+79123456780"]
    assert list(leads(sqlite_db)[1].extra) == ["x" + "[a]" * 2000]
