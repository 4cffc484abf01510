"""The operator console without a browser: password hashes, session cookies, the screen-pop hub, and the
HTTP side (sign-in, who may see what, pause, the card, the script-gap flag, the team-lead page) over real
HTTP on 127.0.0.1 with the store on SQLite and PostgreSQL. The browser test is test_console_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from kernel.clock import ManualClock
from dialer.console.auth import (COOKIE_NAME, Identity, Principal, Role, SessionSigner, authenticate,
                                 hash_password, set_operator_password, verify_password)
from dialer.console.hub import ConsoleHub, ScreenPop
from dialer.console.routes import Console
from dialer.console.switchboard import FakeSwitchboard
from kernel.db.engine import Database
from kernel.db.models import Disposition, Operator, ScriptGap
from kernel.errors import NotFound, UsageError
from kernel.settings import load_settings
from dialer.web.app import create_app
from dialer.web.dispositions import dispositions_router
from dialer.web.server import ServerThread
from leads.attempt import AttemptState
from leads.intake import Intake
from tests.conftest import moscow
from tests.outcome_rows import add_attempt, add_lead, add_operator

NOW = moscow(2026, 11, 24, 11, 0)
PASSWORD = "Пароль-оператора-1"
TEAMLEAD_PASSWORD = "руководитель-смены"


# ---------------------------------------------------------------- passwords and sessions (pure)

def test_given_a_password_when_hashed_then_it_verifies_and_salts_differ():
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$16384$8$1$") and len(first) <= 200
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first)
    assert not verify_password(PASSWORD, None) and not verify_password(PASSWORD, "plain text")


def test_given_cyrillic_typed_decomposed_when_verified_then_it_is_the_same_password():
    stored = hash_password("йогурт-и-ёжик")   # precomposed й and ё
    assert verify_password("и\u0306огурт-и-е\u0308жик", stored)


@pytest.mark.parametrize("bad", ["", "        ", "short7!"])
def test_given_a_weak_password_when_hashed_then_refused(bad):
    with pytest.raises(UsageError):
        hash_password(bad)


def test_given_a_session_when_tampered_or_expired_then_it_is_not_read():
    signer = SessionSigner(b"k" * 32, timedelta(hours=1))
    principal = Principal(Identity(Role.OPERATOR, "Анна", 7, "PJSIP/op1"), "abc")
    value = signer.issue(principal, NOW)
    claims = signer.read(value, NOW + timedelta(minutes=59))
    assert claims is not None and claims.subject == "op:7" and claims.fingerprint == "abc"
    assert signer.read(value, NOW + timedelta(hours=1)) is None
    payload, signature = value.split(".")
    forged = json.dumps({"sub": "teamlead", "fp": "abc", "exp": 4_000_000_000}).encode()
    import base64
    forged_payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    assert signer.read(f"{forged_payload}.{signature}", NOW) is None
    assert SessionSigner(b"z" * 32, timedelta(hours=1)).read(value, NOW) is None
    assert signer.read("garbage", NOW) is None and signer.read(None, NOW) is None


def test_given_operators_when_authenticating_then_only_the_right_password_of_an_active_operator_signs_in(db):
    anna = add_operator(db, NOW, "Анна")
    nopass = add_operator(db, NOW, "Без пароля")
    set_operator_password(db, str(anna), PASSWORD)
    with db.read() as session:
        interface = session.get(Operator, anna).interface
    signed = authenticate(db, interface, PASSWORD, None)
    assert signed is not None and signed.identity == Identity(Role.OPERATOR, "Анна", anna, interface)
    assert authenticate(db, str(anna), PASSWORD, None) is not None
    assert authenticate(db, interface, "wrong password", None) is None
    assert authenticate(db, str(nopass), PASSWORD, None) is None
    assert authenticate(db, "PJSIP/nobody", PASSWORD, None) is None
    assert authenticate(db, "teamlead", PASSWORD, None) is None              # no team-lead password set
    teamlead = hash_password(TEAMLEAD_PASSWORD)
    assert authenticate(db, "teamlead", TEAMLEAD_PASSWORD, teamlead).identity.role is Role.TEAMLEAD
    with db.write() as session:
        session.get(Operator, anna).active = False
    assert authenticate(db, interface, PASSWORD, None) is None
    with pytest.raises(NotFound):
        set_operator_password(db, "PJSIP/nobody", PASSWORD)


# ---------------------------------------------------------------- the hub (pure)

def _update(attempt_id, state, interface=None, at=NOW):
    return SimpleNamespace(attempt_id=attempt_id, state=AttemptState(state), at=at,
                           fields={"operator_interface": interface} if interface else {})


def test_given_connected_updates_when_published_then_only_that_operators_pages_get_the_pop():
    clock = ManualClock(NOW)
    hub = ConsoleHub(clock, wall=lambda: 1_000.0)

    async def scenario():
        with hub.subscribe("PJSIP/op1") as mine, hub.subscribe("PJSIP/op1") as second_tab, \
                hub.subscribe("PJSIP/op2") as other:
            pops = hub.pops_of([_update(1, "ringing"), _update(1, "connected", "PJSIP/op1"),
                                _update(2, "connected")])   # no interface: nobody to pop it to
            hub.publish(pops)
            return pops, mine.get_nowait(), second_tab.get_nowait(), other.empty()

    pops, mine, second_tab, other_empty = asyncio.run(scenario())
    assert pops == [ScreenPop(1, "PJSIP/op1", NOW, 1_000_000.0)]
    published = ScreenPop(1, "PJSIP/op1", NOW, 1_000_000.0, published_epoch_ms=1_000_000.0)
    assert mine == second_tab == published and other_empty
    assert hub.current("PJSIP/op1") == published and hub.current("PJSIP/op2") is None
    assert hub.pages_open() == 0


def test_given_a_scaled_clock_when_stamping_a_pop_then_the_wall_time_of_the_event_is_computed():
    clock = SimpleNamespace(speed=10.0, now=lambda: NOW + timedelta(seconds=5))   # 5 simulated s = 0.5 wall s
    hub = ConsoleHub(clock, wall=lambda: 2_000.0)
    (pop,) = hub.pops_of([_update(3, "connected", "PJSIP/op1", at=NOW)])
    assert pop.event_epoch_ms == pytest.approx(2_000_000.0 - 500.0)


# ---------------------------------------------------------------- over HTTP

@pytest.fixture
def console_server(db):
    """A console on a real server: operators Анна and Пётр with passwords, a fake switchboard."""
    settings = load_settings(env={}, overrides={"console.teamlead_password": TEAMLEAD_PASSWORD,
                                                "console.secret": "s" * 32, "center_timezone": "Europe/Moscow"})
    clock = ManualClock(NOW)
    anna, petr = add_operator(db, NOW, "Анна"), add_operator(db, NOW, "Пётр")
    for operator in (anna, petr):
        set_operator_password(db, str(operator), PASSWORD)
    with db.read() as session:
        interfaces = {o.id: o.interface for o in session.scalars(select(Operator))}
    switchboard = FakeSwitchboard()
    switchboard.add(interfaces[anna], "Анна")
    hub = ConsoleHub(clock)
    console = Console(db, clock, settings, hub, switchboard)
    app = create_app(settings, db, Intake(db), clock,
                     routers=[console.router, dispositions_router(db, clock, settings,
                                                                  operator_identity=console.operator_identity)])
    with ServerThread(app) as server:
        yield SimpleNamespace(url=server.url, db=db, anna=anna, petr=petr, interfaces=interfaces, hub=hub,
                              switchboard=switchboard, clock=clock)


@contextlib.contextmanager
def console_client(url: str) -> Iterator[httpx.Client]:
    """A client that behaves like the browser on the console: it opened the sign-in page, so it holds
    the CSRF cookie and sends the page's token on each request (safety, issue 17)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/console/login")
        client.headers["X-CSRF-Token"] = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
        yield client


@contextlib.contextmanager
def sign_in(server, login, password=PASSWORD) -> Iterator[httpx.Client]:
    with console_client(server.url) as client:
        answer = client.post("/console/login", data={"login": login, "password": password})
        assert answer.status_code == 303, answer.text
        yield client


def test_given_no_sign_in_when_anything_is_asked_then_pages_go_to_sign_in_and_api_answers_401(console_server):
    with console_client(console_server.url) as client:
        for page in ("/console", "/console/teamlead"):
            answer = client.get(page)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")
        for api in ("/console/api/me", "/console/events", "/console/teamlead/live", "/console/api/calls/1"):
            answer = client.get(api)
            assert answer.status_code == 401 and "sign in" in answer.json()["error"]
        assert client.post("/console/api/pause", json={"paused": True}).status_code == 401
        assert client.post("/console/api/gaps", json={}).status_code == 401
        assert client.post("/attempts/1/disposition", json={"kind": "fake"}).status_code == 401
    with httpx.Client(base_url=console_server.url, timeout=30,
                      cookies={COOKIE_NAME: "eyJzdWIiOiJ0ZWFtbGVhZCJ9.forged"}) as forged:
        assert forged.get("/console/api/me").status_code == 401
    with console_client(console_server.url) as client:
        login = client.get("/console/login")
        assert login.status_code == 200 and "Вход в консоль оператора" in login.text
        assert "charset=utf-8" in login.headers["content-type"]


def test_given_a_wrong_password_when_signing_in_then_401_with_the_form_and_no_cookie(console_server):
    interface = console_server.interfaces[console_server.anna]
    with console_client(console_server.url) as client:
        answer = client.post("/console/login", data={"login": interface, "password": "не тот пароль"})
        assert answer.status_code == 401 and "Неверный логин или пароль" in answer.text
        assert COOKIE_NAME not in answer.cookies


def test_given_an_operator_signed_in_then_the_page_shows_who_and_state_and_the_cookie_is_strict(console_server):
    interface = console_server.interfaces[console_server.anna]
    with console_client(console_server.url) as client:
        answer = client.post("/console/login", data={"login": interface, "password": PASSWORD, "next": "/console"})
        assert answer.status_code == 303 and answer.headers["location"] == "/console"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/console")
        assert page.status_code == 200 and "Анна" in page.text and "Свободен" in page.text
        me = client.get("/console/api/me").json()
        assert me == {"role": "operator", "name": "Анна", "operator_id": console_server.anna,
                      "interface": interface, "state": "available"}
        assert client.get("/console/teamlead").status_code == 403
        assert client.get("/console/teamlead/live").status_code == 403
        client.post("/console/logout")
        assert client.get("/console/api/me").status_code == 401


def test_given_a_new_password_when_set_then_the_old_session_ends(console_server):
    with sign_in(console_server, str(console_server.anna)) as client:
        assert client.get("/console/api/me").status_code == 200
        set_operator_password(console_server.db, str(console_server.anna), "совсем-новый-пароль")
        assert client.get("/console/api/me").status_code == 401


def test_given_an_operator_when_pausing_and_resuming_then_the_queue_is_asked_and_state_follows(console_server):
    interface = console_server.interfaces[console_server.anna]
    with sign_in(console_server, interface) as client:
        answer = client.post("/console/api/pause", json={"paused": True, "reason": "Обед"})
        assert answer.status_code == 200 and answer.json()["state"] == "paused"
        assert client.post("/console/api/pause", json={"paused": False}).json()["state"] == "available"
        assert console_server.switchboard.pauses == [(interface, True, "Обед"), (interface, False, "")]
        assert client.post("/console/api/pause", json={"paused": "yes"}).status_code == 422
        assert client.post("/console/api/pause", content=b"not json").status_code == 400
    with sign_in(console_server, str(console_server.petr)) as client:   # not a member of the queue
        refused = client.post("/console/api/pause", json={"paused": True})
        assert refused.status_code == 409 and "Interface not found" in refused.json()["error"]
        console_server.switchboard.connected = False
        assert client.post("/console/api/pause", json={"paused": True}).status_code == 503


def test_given_anothers_call_when_disposing_or_reading_or_flagging_then_403_and_nothing_stored(console_server):
    db = console_server.db
    lead_id = add_lead(db, NOW, name="Мария Иванова")
    annas_call = add_attempt(db, lead_id, NOW, operator_id=console_server.anna)
    with sign_in(console_server, str(console_server.petr)) as petr:
        refused = petr.post(f"/attempts/{annas_call}/disposition", json={"kind": "confirmed", "amount": "10"})
        assert refused.status_code == 403 and "another operator" in refused.json()["error"]
        assert petr.get(f"/console/api/calls/{annas_call}").status_code == 403
        gap = {"attempt_id": annas_call, "script_id": "ru-order-first-contact", "version": 2, "question": "Где?"}
        assert petr.post("/console/api/gaps", json=gap).status_code == 403
        headers = {"X-Operator-Id": str(console_server.anna)}   # the header is no identity any more
        assert petr.post(f"/attempts/{annas_call}/disposition", json={"kind": "fake"},
                         headers=headers).status_code == 403
    with db.read() as session:
        assert session.scalars(select(Disposition)).all() == [] and session.scalars(select(ScriptGap)).all() == []
    with console_client(console_server.url) as anonymous:
        assert anonymous.post(f"/attempts/{annas_call}/disposition", json={"kind": "fake"},
                              headers={"X-Operator-Id": str(console_server.anna)}).status_code == 401
    with sign_in(console_server, str(console_server.anna)) as anna:
        card = anna.get(f"/console/api/calls/{annas_call}")
        assert card.status_code == 200 and "Мария Иванова" in card.json()["html"]
        bad = anna.post(f"/attempts/{annas_call}/disposition", json={"kind": "confirmed", "amount": "-5"})
        assert bad.status_code == 422 and "negative" in bad.json()["error"]
        good = anna.post(f"/attempts/{annas_call}/disposition", json={"kind": "confirmed", "amount": "4990",
                                                                      "comment": "Доставка в субботу"})
        assert good.status_code == 201 and good.json()["operator_id"] == console_server.anna
        assert anna.post("/console/api/gaps", json={**gap, "question": "  "}).status_code == 422
        flagged = anna.post("/console/api/gaps", json={**gap, "question": "Можно ли оплатить долями?"})
        assert flagged.status_code == 201
    with db.read() as session:
        (stored,) = session.scalars(select(ScriptGap)).all()
        assert (stored.attempt_id, stored.operator_id, stored.lead_id) == (annas_call, console_server.anna, lead_id)
        assert stored.question == "Можно ли оплатить долями?" and stored.script_version == 2


def test_given_the_team_lead_when_signed_in_then_the_page_shows_queue_operators_and_risks(console_server):
    db = console_server.db
    add_lead(db, NOW - timedelta(minutes=14), phone="+79125550001", status="new", name="Срочный Клиент",
             attempts=0)
    talking = add_lead(db, NOW, phone="+79125550009", name="Говорящий Клиент")
    add_attempt(db, talking, NOW, operator_id=console_server.anna, state=AttemptState.CONNECTED.value)
    with console_client(console_server.url) as client:
        answer = client.post("/console/login", data={"login": "teamlead", "password": TEAMLEAD_PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/teamlead"
        assert client.get("/console").headers["location"] == "/console/teamlead"
        page = client.get("/console/teamlead")
        assert page.status_code == 200
        live = client.get("/console/teamlead/live").text
        queue = re.search(r'<table id="queue">.*?</table>', live, re.S).group(0)
        assert "Срочный Клиент" in queue and "новый" in queue
        risks = re.search(r'<table id="risks">.*?</table>', live, re.S).group(0)
        assert "Срочный Клиент" in risks
        calls = re.search(r'<table id="calls">.*?</table>', live, re.S).group(0)
        assert "Говорящий Клиент" in calls and "Анна" in calls
        assert "+7912***0009" in calls and "79125550009" not in calls   # phone masked on the team-lead page
        operators = re.search(r'<table id="operators">.*?</table>', live, re.S).group(0)
        assert "Анна" in operators and "Свободен" in operators and "Пётр" in operators and "Не в очереди" in operators
        assert client.post("/attempts/1/disposition", json={"kind": "fake"}).status_code == 401   # not an operator
        assert client.post("/console/api/pause", json={"paused": True}).status_code == 403


def read_events(lines, count):
    """The next `count` SSE events as (name, data) pairs."""
    events, name = [], None
    for line in lines:
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name:
            events.append((name, json.loads(line[5:])))
            name = None
            if len(events) == count:
                return events
    raise AssertionError(f"the stream ended after {events}")


def test_given_an_open_page_when_a_call_is_published_then_the_stream_sends_the_card(console_server):
    db = console_server.db
    lead_id = add_lead(db, NOW, name="Ольга Смирнова", order_number="Z-777")
    call = add_attempt(db, lead_id, NOW, operator_id=console_server.anna, state=AttemptState.CONNECTED.value)
    interface = console_server.interfaces[console_server.anna]
    with sign_in(console_server, interface) as client, client.stream("GET", "/console/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        (state, (kind, opened)) = read_events(lines, 2)
        assert state == ("state", {"state": "available"}) and kind == "call"
        assert opened["attempt_id"] == call and "Ольга Смирнова" in opened["html"] and "Z-777" in opened["html"]
        assert opened["event_ms"] is None   # found in the store on connect, not pushed by an AMI event

        lead_2 = add_lead(db, NOW, phone="+79125550002", name="Второй Клиент")
        call_2 = add_attempt(db, lead_2, NOW, operator_id=console_server.anna, state=AttemptState.CONNECTED.value)
        console_server.hub.publish_from_thread([ScreenPop(call_2, interface, NOW, 123.0)])
        ((kind, pushed),) = read_events(lines, 1)
        assert kind == "call" and pushed["attempt_id"] == call_2 and pushed["event_ms"] == 123.0
        assert "Второй Клиент" in pushed["html"]

        petrs_lead = add_lead(db, NOW, phone="+79125550003", name="Чужой Клиент")
        petrs_call = add_attempt(db, petrs_lead, NOW, operator_id=console_server.petr)
        console_server.hub.publish_from_thread([ScreenPop(petrs_call, interface, NOW, 1.0),   # not hers: dropped
                                                ScreenPop(call, interface, NOW, 2.0)])
        ((kind, again),) = read_events(lines, 1)
        assert again["attempt_id"] == call


def test_given_a_catalog_when_the_card_is_built_then_the_first_contact_russian_script_has_the_name(db):
    from dialer.console.cards import ScriptBook, load_call_card
    from scripts_catalog import PACKAGED_CATALOG
    operator = add_operator(db, NOW, "Анна")
    lead_id = add_lead(db, NOW, name="Иван Петров", order_number="A-1001")
    earlier = add_attempt(db, lead_id, NOW - timedelta(hours=1), result="busy", attempt_no=1)
    call = add_attempt(db, lead_id, NOW, operator_id=operator, attempt_no=2)
    card = load_call_card(db, call, ScriptBook(PACKAGED_CATALOG, "ru"), "Анна")
    assert card.contact_number == 1 and [c.attempt_id for c in card.history] == [earlier]
    script = card.script.script
    assert script.script_id == "ru-order-first-contact" and script.language == "ru"
    greeting = script.stages[0].variants[0].text
    assert "Иван Петров" in greeting and "Анна" in greeting and "A-1001" in greeting
    with db.write() as session:   # a later call after a conversation: the second-contact script
        session.add(Disposition(attempt_id=call, lead_id=lead_id, operator_id=operator, kind="callback",
                                recorded_by="Анна", created_at=NOW))
    third = add_attempt(db, lead_id, NOW + timedelta(days=1), operator_id=operator, attempt_no=3)
    later = load_call_card(db, third, ScriptBook(PACKAGED_CATALOG, "ru"), "Анна")
    assert later.contact_number == 2 and later.script.script.script_id != "ru-order-first-contact"
    assert later.history[-1].disposition.kind == "callback"


def test_given_a_broken_catalog_when_the_card_is_built_then_the_lead_shows_and_the_problem_is_named(tmp_path, db):
    import shutil
    from dialer.console.cards import ScriptBook, load_call_card
    from scripts_catalog import PACKAGED_CATALOG
    shutil.copytree(PACKAGED_CATALOG, tmp_path / "catalog")
    book = ScriptBook(tmp_path / "catalog", "ru")
    operator = add_operator(db, NOW, "Анна")
    call = add_attempt(db, add_lead(db, NOW, name="Иван Петров"), NOW, operator_id=operator)
    assert load_call_card(db, call, book, "Анна").script.script is not None
    broken = tmp_path / "catalog" / "ru" / "order-first-contact.v2.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("version: 2", "version: два"), encoding="utf-8")
    card = load_call_card(db, call, book, "Анна")   # the change is picked up without a restart
    assert card.name == "Иван Петров" and card.script.script is None
    assert "order-first-contact.v2.yaml" in card.script.problem


def test_given_the_cli_when_setting_a_password_then_the_operator_can_sign_in_and_bad_ones_are_refused(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    from kernel.db.migrate import upgrade
    path = tmp_path / "dialer.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    operator = add_operator(db, NOW, "Анна")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DIALER_")},
           "DIALER_DB_URL": f"sqlite:///{path}", "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}

    def dialer(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "cli", "operators", "passwd", *args], input=stdin,
                              cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                              encoding="utf-8", timeout=120)

    done = dialer(str(operator), "--password", PASSWORD)
    assert done.returncode == 0 and f"password set for operator {operator} Анна" in done.stdout, done.stderr
    assert authenticate(db, str(operator), PASSWORD, None) is not None
    prompted = dialer(str(operator), stdin="другой-пароль\nдругой-пароль\n")   # asked twice, as typed
    assert prompted.returncode == 0, prompted.stderr
    assert authenticate(db, str(operator), "другой-пароль", None) is not None
    assert authenticate(db, str(operator), PASSWORD, None) is None
    short = dialer(str(operator), "--password", "1234")
    assert short.returncode == 2 and "at least 8" in short.stderr
    unknown = dialer("PJSIP/nobody", "--password", PASSWORD)
    assert unknown.returncode == 1 and "no operator" in unknown.stderr
    with db.read() as session:
        assert "другой-пароль" not in session.get(Operator, operator).password_hash
    db.dispose()
