"""Safety of the console and the webhook: one test per protection, over real HTTP on loopback."""

from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select

from dialer.console.auth import COOKIE_NAME
from dialer.safety.throttle import LockoutRule, SignInThrottle, TokenBuckets
from dialer.web.app import create_app
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.db.models import Lead
from kernel.settings import load_settings
from leads.intake import Intake
from tests.test_console import PASSWORD, console_client, console_server, sign_in  # noqa: F401 (fixture)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- sign-in lockout

def test_lockout_rule_doubles_from_the_limit_up_to_the_longest():
    rule = LockoutRule(5, timedelta(seconds=30), timedelta(seconds=900))
    assert [rule.lock_for(n) for n in (4, 5, 6, 7)] == [None, timedelta(seconds=30), timedelta(seconds=60),
                                                        timedelta(seconds=120)]
    assert rule.lock_for(40) == timedelta(seconds=900)


def test_given_five_wrong_passwords_for_one_login_then_it_is_locked_with_backoff_even_for_the_right_one(
        console_server):
    interface = console_server.interfaces[console_server.anna]
    clock = console_server.clock
    with console_client(console_server.url) as client:
        for _ in range(5):
            assert client.post("/console/login", data={"login": interface, "password": "неверный"}).status_code == 401
        locked = client.post("/console/login", data={"login": interface, "password": PASSWORD})
        assert locked.status_code == 429 and locked.headers["retry-after"] == "30"
        assert "Слишком много неудачных попыток" in locked.text and COOKIE_NAME not in locked.cookies
        clock.advance(timedelta(seconds=31))
        assert client.post("/console/login", data={"login": interface, "password": "неверный"}).status_code == 401
        again = client.post("/console/login", data={"login": interface, "password": PASSWORD})
        assert again.status_code == 429 and again.headers["retry-after"] == "60"   # the sixth failure: doubled
        clock.advance(timedelta(seconds=61))
        assert client.post("/console/login", data={"login": interface, "password": PASSWORD}).status_code == 303
    petr = console_server.interfaces[console_server.petr]
    with sign_in(console_server, petr):   # another account was never locked
        pass


def test_given_many_failures_from_one_address_then_every_login_from_it_is_locked(console_server):
    interface = console_server.interfaces[console_server.anna]
    with console_client(console_server.url) as client:
        for n in range(20):   # security.signin_address_failures: different logins, one address
            assert client.post("/console/login", data={"login": f"guess-{n}", "password": "x" * 8}).status_code == 401
        locked = client.post("/console/login", data={"login": interface, "password": PASSWORD})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        console_server.clock.advance(timedelta(seconds=31))
        assert client.post("/console/login", data={"login": interface, "password": PASSWORD}).status_code == 303


# ---------------------------------------------------------------- CSRF

def test_given_a_signed_in_operator_when_a_request_lacks_or_forges_the_csrf_token_then_403(console_server):
    interface = console_server.interfaces[console_server.anna]
    with sign_in(console_server, interface) as anna:
        good = anna.headers.pop("X-CSRF-Token")
        assert anna.post("/console/api/pause", json={"paused": True}).status_code == 403
        assert anna.post("/console/api/gaps", json={}).status_code == 403
        assert anna.post("/attempts/1/disposition", json={"kind": "fake"}).status_code == 403
        assert anna.post("/console/logout").status_code == 403
        with console_client(console_server.url) as other:   # a token valid for another browser
            foreign = other.headers["X-CSRF-Token"]
        assert foreign != good
        assert anna.post("/console/api/pause", json={"paused": True},
                         headers={"X-CSRF-Token": foreign}).status_code == 403
        assert console_server.switchboard.state_of(interface, console_server.clock.now()) == "available"
        assert anna.post("/console/api/pause", json={"paused": True}, headers={"X-CSRF-Token": good}).status_code == 200
        # the form field works like the header (the logout form has no JavaScript)
        assert anna.post("/console/logout", data={"csrf_token": good}).status_code == 303


def test_given_a_cross_site_login_form_without_the_csrf_cookie_then_403(console_server):
    interface = console_server.interfaces[console_server.anna]
    with httpx.Client(base_url=console_server.url, timeout=30) as attacker_page:
        answer = attacker_page.post("/console/login", data={"login": interface, "password": PASSWORD,
                                                            "csrf_token": "0" * 64})
    assert answer.status_code == 403 and COOKIE_NAME not in answer.cookies


def test_every_post_form_on_the_console_pages_carries_the_token(console_server):
    interface = console_server.interfaces[console_server.anna]
    with sign_in(console_server, interface) as anna:
        token = anna.headers["X-CSRF-Token"]
        page = anna.get("/console").text
    forms = re.findall(r'<form\b[^>]*method="post"[^>]*>(.*?)</form>', page, flags=re.S | re.I)
    assert forms and all(f'name="csrf_token" value="{token}"' in form for form in forms)
    assert f'<meta name="csrf-token" content="{token}">' in page


# ---------------------------------------------------------------- headers

def test_console_and_api_answers_carry_the_security_headers(console_server):
    with httpx.Client(base_url=console_server.url, timeout=30) as client:
        login, health = client.get("/console/login"), client.get("/health")
    csp = login.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    for answer in (login, health):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert health.headers["content-security-policy"].startswith("default-src 'none'")


# ---------------------------------------------------------------- webhook rate limit

@pytest.fixture
def limited_webhook(sqlite_db):
    clock = ManualClock(T0)
    settings = load_settings(env={}, overrides={"intake.token": "site-token-1", "security.webhook_rate_per_second": 1.0,
                                                "security.webhook_burst": 3})
    with ServerThread(create_app(settings, sqlite_db, Intake(sqlite_db), clock)) as server:
        yield server, clock, sqlite_db


def test_given_a_token_over_its_rate_then_429_with_retry_after_and_nothing_stored(limited_webhook):
    server, clock, db = limited_webhook
    with httpx.Client(base_url=server.url, timeout=30) as client:
        def post(n, token="site-token-1"):
            return client.post("/leads", json={"phone": f"+7912300{n:04d}"}, headers={"X-Dialer-Token": token})
        assert [post(n).status_code for n in range(3)] == [202, 202, 202]
        refused = post(3)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"].startswith("too many requests")
        assert post(4, token="another-token").status_code == 401   # its own bucket: refused for the token only
        clock.advance(timedelta(seconds=1))
        assert post(5).status_code == 202
    with db.read() as session:
        stored = set(session.scalars(select(Lead.phone_e164)))
    assert stored == {"+79123000000", "+79123000001", "+79123000002", "+79123000005"}


def test_token_bucket_refills_at_its_rate():
    buckets = TokenBuckets(rate=2.0, burst=2)
    assert buckets.take("a", T0) is None and buckets.take("a", T0) is None
    assert buckets.take("a", T0) == pytest.approx(0.5)
    assert buckets.take("a", T0 + timedelta(seconds=0.5)) is None
    assert buckets.take("b", T0) is None


# ---------------------------------------------------------------- constant time, never logged

def test_tokens_passwords_and_csrf_are_compared_in_constant_time(console_server, monkeypatch):
    compared = []
    real = hmac.compare_digest

    def recording(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    interface = console_server.interfaces[console_server.anna]
    with sign_in(console_server, interface) as anna:
        token = anna.headers["X-CSRF-Token"]
        anna.post("/console/api/pause", json={"paused": True})
    assert any(a == token.encode() for a, _ in compared), "CSRF token"
    assert len(compared) >= 3, "password hash, session signature and CSRF all go through compare_digest"
    compared.clear()
    settings = load_settings(env={}, overrides={"intake.token": "секрет-сайта"})
    with ServerThread(create_app(settings, console_server.db, Intake(console_server.db), ManualClock(T0))) as server:
        httpx.post(f"{server.url}/leads", json={"phone": "+79123000001"}, headers={"X-Dialer-Token": "guess"})
    assert (b"guess", "секрет-сайта".encode()) in compared


def test_given_wrong_and_right_secrets_then_none_of_them_reaches_a_log_line(console_server, caplog):
    caplog.set_level(logging.DEBUG)
    secret_token, wrong_token, wrong_password = "site-secret-Z9", "guess-token-Q7", "неверный-пароль-42"
    settings = load_settings(env={}, overrides={"intake.token": secret_token, "security.webhook_burst": 1,
                                                "security.webhook_rate_per_second": 0.01})
    with ServerThread(create_app(settings, console_server.db, Intake(console_server.db), ManualClock(T0))) as server:
        for token in (secret_token, wrong_token, secret_token):   # accepted, refused, rate limited
            httpx.post(f"{server.url}/leads", json={"phone": "+79123000009"}, headers={"X-Dialer-Token": token})
            httpx.post(f"{server.url}/leads", json={"phone": "+79123000009"},
                       headers={"Authorization": f"Bearer {token}"})
    interface = console_server.interfaces[console_server.anna]
    with console_client(console_server.url) as client:
        client.post("/console/login", data={"login": interface, "password": wrong_password})
        client.post("/console/login", data={"login": interface, "password": PASSWORD})
    text = caplog.text
    assert "webhook.rate_limited" in text and "console.sign_in_refused" in text   # the events were logged...
    for secret in (secret_token, wrong_token, wrong_password, PASSWORD, "s" * 32):
        assert secret not in text                                                  # ...without any secret
    with console_server.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) >= 1
