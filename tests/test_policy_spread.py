"""Issue 12 / DESIGN §3 Attempts: 5-10 attempts spread over at least two days and over different hours
of the customer's day, at most max_attempts_per_day a day; per-result delays stay.

The expected schedule is the rule worked by hand for the defaults (day parts 10-13, 13-17, 17-22 of the
lead's zone, 3 a day, no answer 30 min, 7 attempts): day 1 10:01 -> 13:00 -> 17:00, day 2 10:00 ->
13:00 -> 17:00, day 3 10:00, then unreachable. Before issue 12: seven attempts 10:01..13:01 on day 1.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from leads.attempt import CallResult
from leads.policy.claim import claim_next
from leads.policy.results import record_attempt_result
from leads.policy.spread import plan_lines
from leads.policy.store import change_policy, seed_policy
from leads.policy.values import DEFAULTS, PolicyRefused
from leads.policy.why import explain_retry_plan
from tests.conftest import moscow
from tests.policy_helpers import lead, store

ZONE = "Europe/Moscow"
DAY1 = moscow(2026, 11, 23, 10, 0)
NOVOSIBIRSK_MOBILE = "+79139001234"   # Asia/Novosibirsk, Moscow + 4 h


def no_answers_until_closed(db, first_claim, step=timedelta(minutes=1), limit=40):
    """Claim and end every attempt with no answer, the clock moving only forward, until the lead closes."""
    now, attempts = first_claim, []
    for _ in range(limit * 24 * 60 // int(step.total_seconds() // 60 or 1)):
        claimed = claim_next(db, daemon_id="d", now=now, center_zone=ZONE)
        if claimed is not None:
            attempts.append(now)
            with db.write() as session:
                outcome = record_attempt_result(session, claimed.attempt_id, CallResult.NO_ANSWER,
                                                now + timedelta(seconds=30), center_zone=ZONE)
            if outcome.lead_status == "closed":
                return attempts, outcome
        now += step
    raise AssertionError(f"not closed after {len(attempts)} attempts")


def test_given_seven_no_answers_from_1001_then_spread_over_three_days_at_most_three_a_day(db):
    with db.write() as session:
        seed_policy(session, DAY1)
    store(db, lead(1, DAY1, phone="+79161234567"))
    attempts, outcome = no_answers_until_closed(db, DAY1 + timedelta(minutes=1), step=timedelta(minutes=5))
    local = [a.astimezone(DAY1.tzinfo) for a in attempts]
    assert [a.strftime("%d %H:%M") for a in local] == \
        ["23 10:01", "23 13:01", "23 17:01", "24 10:01", "24 13:01", "24 17:01", "25 10:01"]
    assert outcome.close_reason == "unreachable"
    assert local[-1].date() > local[0].date()                       # no earlier than day 2
    assert max(Counter(a.date() for a in local).values()) <= DEFAULTS.max_attempts_per_day
    assert len({a.hour for a in local[:3]}) == 3                      # morning, afternoon, evening


def test_given_a_lead_in_novosibirsk_then_the_day_parts_are_its_own_hours(db):
    """Novosibirsk 13:00 = 09:00 Moscow (quiet in the center), 17:00 local = 13:00 Moscow."""
    with db.write() as session:
        seed_policy(session, DAY1)
    store(db, lead(1, DAY1, phone=NOVOSIBIRSK_MOBILE))
    attempts, _ = no_answers_until_closed(db, DAY1 + timedelta(minutes=1), step=timedelta(minutes=5))
    novosibirsk = [a.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Novosibirsk")) for a in attempts]
    # day 1: 14:01 local (10:01 Moscow, the morning part is over there) -> 17:00 local; then day 2 from
    # 14:00 local (10:00 Moscow, the center's quiet end), 17:00 local; day 3 ...
    assert [a.strftime("%d %H:%M") for a in novosibirsk][:4] == ["23 14:01", "23 17:01", "24 14:01", "24 17:01"]
    assert max(Counter(a.date() for a in novosibirsk).values()) <= 3


def test_given_busy_then_retried_after_its_own_delay_within_the_daily_cap(db):
    with db.write() as session:
        seed_policy(session, DAY1)
    store(db, lead(1, DAY1, phone="+79161234567"))
    now, times = DAY1 + timedelta(minutes=1), []
    while len(times) < 4:
        claimed = claim_next(db, daemon_id="d", now=now, center_zone=ZONE)
        if claimed is not None:
            times.append(now.astimezone(DAY1.tzinfo).strftime("%d %H:%M"))
            with db.write() as session:
                record_attempt_result(session, claimed.attempt_id, CallResult.BUSY, now, center_zone=ZONE)
        now += timedelta(minutes=1)
    assert times == ["23 10:01", "23 10:11", "23 10:21", "24 10:00"]   # busy 10 min; the 4th waits a day


def test_given_policy_show_then_the_plan_reads_attempt_by_attempt():
    lines = plan_lines(DEFAULTS)
    assert lines[1] == "attempt 2: same day 13:00-17:00 local (afternoon)"
    assert lines[3] == "attempt 4: next day 10:00-13:00 local (morning), day 2"
    assert lines[6] == "attempt 7: next day 10:00-13:00 local (morning), day 3"
    assert lines[-1].startswith("then: closed as unreachable")


def test_given_a_plan_that_would_close_a_lead_on_its_first_day_then_refused(db):
    with db.write() as session:
        seed_policy(session, DAY1)
    with pytest.raises(PolicyRefused, match="at least two days"):
        change_policy(db, {"max_attempts": "3"}, by="cli", now=DAY1)
    policy, _ = change_policy(db, {"max_attempts": "10", "max_attempts_per_day": "4",
                                   "retry_day_parts": "10:00-12:00,12:00-15:00,15:00-18:00,18:00-22:00"},
                              by="cli", now=DAY1)
    assert (policy.max_attempts, policy.max_attempts_per_day, len(policy.day_parts)) == (10, 4, 4)
    for bad in ("13:00-10:00", "10:00-13:00,12:00-15:00", "утро", ""):
        with pytest.raises(PolicyRefused, match="day parts"):
            change_policy(db, {"retry_day_parts": bad}, by="cli", now=DAY1)


def test_given_a_lead_waiting_for_its_next_day_part_then_why_names_the_plan():
    facts = lead(1, DAY1, status="retry", attempts_count=3, last_result="no_answer",
                 last_attempt_at=DAY1.replace(hour=17), next_attempt_at=moscow(2026, 11, 24, 10, 0))
    words = explain_retry_plan(facts, DEFAULTS)
    assert "attempt 4 of 7" in words and "at most 3 a day" in words
