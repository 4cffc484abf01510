"""Property-based fuzzing of `POST /attempts/{id}/disposition` over real HTTP (the console's result form):
any body, including the topic and the script fields the reports read. Never a 5xx; every refusal has a
reason in Russian and stores nothing; every accepted result is stored with the topic and script it was given.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from dialer.web.app import create_app
from dialer.web.dispositions import dispositions_router
from dialer.web.server import ServerThread
from kernel.clock import ManualClock
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import CallAttempt, Disposition, Lead, Operator
from kernel.settings import Settings
from leads.intake import Intake
from tests.conftest import utc
from tests.log_problems import Problems

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NOW = utc(2026, 11, 23, 9)   # 12:00 in Moscow: callbacks later today are allowed
SEEN: dict[int, int] = {}
TOPICS = ["доставка", "цена", "качество", "оплата", "гарантия", "другое"]




@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('fuzzdisp') / 'dialer.db'}")
    upgrade(db)
    with db.write() as s:
        operator = Operator(name="Анна", interface="PJSIP/op1", skills=[], created_at=NOW)
        s.add(operator)
        s.flush()
        operator_id = operator.id
    problems = Problems()
    logging.getLogger().addHandler(problems)
    clock = ManualClock(NOW)
    settings_ = Settings(db_url=db.url)
    app = create_app(settings_, db, Intake(db), clock, routers=[dispositions_router(db, clock, settings_)])
    try:
        with ServerThread(app) as running, httpx.Client(base_url=running.url, timeout=30) as client:
            yield client, db, operator_id, problems
    finally:
        logging.getLogger().removeHandler(problems)
        db.dispose()


def _connected_call(db: Database, operator_id: int) -> int:
    with db.write() as s:
        lead = Lead(received_at=NOW - timedelta(minutes=5), source="site", status="retry", phone_e164="+79123456789")
        s.add(lead)
        s.flush()
        attempt = CallAttempt(lead_id=lead.id, attempt_no=1, daemon_id="t", state="ended", result="connected",
                              claimed_at=NOW - timedelta(minutes=4), connected_at=NOW - timedelta(minutes=3),
                              ended_at=NOW - timedelta(minutes=1), operator_id=operator_id,
                              operator_interface="PJSIP/op1")
        s.add(attempt)
        s.flush()
        return attempt.id


TEXT = st.text(max_size=20) | st.sampled_from(["", " ", "Я" * 120, "\x00", "a b", "x" * 101])
VALUE = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False) | TEXT \
    | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
# Kinds that need no amount or time, so that the topic and script fields decide whether a body is taken.
PLAIN = st.fixed_dictionaries({"kind": st.sampled_from(["not_interested", "complaint", "fake", "no_decision"])},
                              optional={"topic": st.sampled_from(TOPICS + ["Цена", " доставка ", "погода"]) | VALUE,
                                        "script_id": st.sampled_from(["ru-order-first-contact", "x" * 100, "a b"])
                                        | VALUE,
                                        "script_version": st.sampled_from([1, "2", "0", -1, "v1", True, None]) | VALUE,
                                        "comment": VALUE})
BODIES = PLAIN | PLAIN | (st.fixed_dictionaries({"kind": st.sampled_from(["confirmed", "not_interested", "complaint", "callback",
                                                         "fake", "CONFIRMED", "нет", ""]) | VALUE},
                               optional={"amount": st.sampled_from(["4990", "0", "-1", "1e400", "12,50"]) | VALUE,
                                         "currency": st.sampled_from(["RUB", "rub", "XXXX"]) | VALUE,
                                         "topic": st.sampled_from(TOPICS + ["Цена", " доставка ", "погода"]) | VALUE,
                                         "script_id": st.sampled_from(["ru-order-first-contact", "x" * 100]) | VALUE,
                                         "script_version": st.sampled_from([1, "2", "0", -1, "v1", True]) | VALUE,
                                         "comment": VALUE,
                                         "callback_at": st.sampled_from(["2026-11-23T15:00", "2026-11-23T23:00",
                                                                         "вчера"]) | VALUE})
    | st.dictionaries(st.text(max_size=6), VALUE, max_size=4) | VALUE)


@FUZZ
@given(body=BODIES)
def test_fuzz_disposition_bodies_never_5xx_refusals_have_a_reason_accepted_ones_are_stored(server, body):
    client, db, operator_id, problems = server
    attempt_id = _connected_call(db, operator_id)
    with db.read() as s:
        before = s.scalar(select(func.count()).select_from(Disposition))
    answer = client.post(f"/attempts/{attempt_id}/disposition", json=body, headers={"X-Operator-Id": str(operator_id)})
    assert answer.status_code < 500, answer.text
    SEEN[answer.status_code] = SEEN.get(answer.status_code, 0) + 1
    with db.read() as s:
        after = s.scalar(select(func.count()).select_from(Disposition))
        stored = s.scalar(select(Disposition).where(Disposition.attempt_id == attempt_id))
    if answer.status_code == 201:
        assert after == before + 1 and stored is not None
        topic = body.get("topic")
        if isinstance(topic, str) and topic.strip():
            assert stored.topic == " ".join(topic.split()).lower() and stored.topic in TOPICS
        else:
            assert stored.topic is None
        sid = body.get("script_id")
        assert stored.script_id == (sid.strip() if isinstance(sid, str) and sid.strip() else None)
    else:
        assert answer.status_code in (401, 403, 404, 409, 422), answer.text
        assert after == before and stored is None
        payload = answer.json()
        reason = payload.get("message") or payload.get("detail") or payload.get("error")
        assert reason, payload
    assert not problems.records, [r.getMessage() for r in problems.records]


def test_the_fuzzing_reached_both_stored_and_refused_results():
    """Runs after the fuzz test above: it must have seen results stored as well as refused, or it proved little."""
    assert SEEN.get(201, 0) >= 5 and SEEN.get(422, 0) >= 5, SEEN
