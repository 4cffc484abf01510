"""The promised call time in the webhook's answer: computed by the dialing rules over an injected clock,
in the request's language, documented in the OpenAPI schema. Expected values worked out by hand from
quiet hours 22:00-10:00 (center and customer) and the first call within 15 minutes."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from dialer.web.app import create_app
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.settings import IntakeSettings, Settings
from leads.intake import Intake
from leads.policy.promise import language_of
from tests.conftest import moscow

TOKEN = "webhook-token-1234"


@pytest.fixture
def site(db):
    clock = ManualClock(moscow(2026, 12, 7, 12, 0))
    app = create_app(Settings(intake=IntakeSettings(token=TOKEN)), db, Intake(db), clock)
    with ServerThread(app) as server:
        def post(body, **headers):
            answer = httpx.post(f"{server.url}/leads", json=body, headers={"X-Dialer-Token": TOKEN, **headers},
                                timeout=30)
            assert answer.status_code == 202, answer.text
            return answer.json()
        yield clock, post, server


def at(answer) -> datetime | None:
    return datetime.fromisoformat(answer["expected_call_at"]) if answer["expected_call_at"] else None


def test_the_answer_promises_the_call_the_dialer_will_make(site):
    clock, post, server = site
    now = clock.now()
    first = post({"phone": "+7 495 123-45-67", "name": "Анна"})
    assert at(first) == now + timedelta(minutes=15)
    assert first["expected_call"] == "Мы перезвоним вам в течение 15 минут."

    clock.advance(timedelta(minutes=1))    # the same customer again: the earlier lead's call
    again = post({"phone": "84951234567"})
    assert again["status"] == "duplicate" and at(again) == now + timedelta(minutes=15)
    assert again["expected_call"] == "Мы перезвоним вам в течение 14 минут."

    clock.set(moscow(2026, 12, 7, 23, 0))  # quiet hours in Moscow until 10:00
    night = post({"phone": "+7 495 765-43-21"}, **{"Accept-Language": "ru-RU,ru;q=0.9"})
    assert at(night) == moscow(2026, 12, 8, 10, 0)
    assert night["expected_call"] == "Мы перезвоним вам завтра после 10:00 по вашему времени."

    # 21:00 Moscow is 04:00 on Dec 8 in Vladivostok (UTC+10): quiet there until 10:00 (03:00 Moscow), then
    # quiet in the center until 10:00 Moscow, which is 17:00 the same Vladivostok day
    clock.set(moscow(2026, 12, 7, 21, 0))
    east = post({"phone": "+7 423 222-33-44", "timezone": "Asia/Vladivostok"}, **{"Accept-Language": "en-US"})
    assert at(east) == moscow(2026, 12, 8, 10, 0)
    assert east["expected_call"] == "We will call you today after 17:00, your time."
    english = post({"phone": "+7 423 222-33-45", "timezone": "Asia/Vladivostok", "language": "en"})
    assert english["expected_call"] == east["expected_call"]

    clock.set(moscow(2026, 12, 7, 12, 0))
    mail = post({"phone": "+7 495 111-22-33", "email": "a@example.ru", "write_instead": True})
    assert mail["expected_call_at"] is None
    assert mail["expected_call"] == "Мы не будем звонить: напишем вам на электронную почту."
    invalid = post({"phone": "123"})
    assert invalid["status"] == "invalid" and invalid["expected_call_at"] is None and invalid["expected_call"] is None

    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    accepted = schema["components"]["schemas"]["LeadAccepted"]["properties"]
    assert "first-call deadline" in accepted["expected_call_at"]["description"]
    assert "request's language" in accepted["expected_call"]["description"]
    body = schema["paths"]["/leads"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    text = str(body)
    assert "write_instead" in text and "consent_version" in text and "user_agent" in text


def test_language_of_a_header_or_field():
    assert language_of("en-GB,en;q=0.8") == "en"
    assert language_of("de-DE, en;q=0.5") == "en"
    assert language_of("de") == "ru" and language_of(None) == "ru" and language_of("ru") == "ru"
