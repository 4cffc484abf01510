"""Scheduled callbacks: due at the agreed time, for the agreeing operator, any operator after 10 minutes."""

from datetime import timedelta

from leads.policy.distribution import OperatorLoad, choose_operator
from leads.policy.why import Rule, evaluate
from tests.conftest import moscow
from tests.policy_helpers import CENTER, lead, policy

AGREED = moscow(2026, 11, 23, 14, 0)
ANNA, IVAN = 5, 6


def callback(**fields):
    return lead(1, moscow(2026, 11, 22, 12, 0), status="callback", attempts_count=1, contacts_count=1,
                last_contact_at=moscow(2026, 11, 22, 12, 5), last_attempt_at=moscow(2026, 11, 22, 12, 5),
                next_attempt_at=moscow(2026, 11, 23, 0, 0), callback_at=AGREED, callback_operator_id=ANNA, **fields)


def rules(verdict):
    return {b.rule for b in verdict.blocks}


def test_given_agreed_time_not_reached_then_not_due():
    verdict = evaluate(callback(), AGREED - timedelta(minutes=1), policy(), CENTER, {ANNA, IVAN})
    assert rules(verdict) == {Rule.CALLBACK_NOT_DUE}
    assert verdict.blocks[0].until == AGREED


def test_given_due_and_agreeing_operator_free_then_dialed_for_her():
    verdict = evaluate(callback(), AGREED, policy(), CENTER, {ANNA, IVAN})
    assert verdict.dialable and verdict.operator_id == ANNA
    operators = [OperatorLoad(ANNA, "Анна", "PJSIP/op5", calls_today=40), OperatorLoad(IVAN, "Иван", "PJSIP/op6")]
    assert choose_operator(operators, "even", preferred_id=verdict.operator_id).interface == "PJSIP/op5"


def test_given_agreeing_operator_busy_then_wait_up_to_10_minutes_then_any_operator():
    waiting = evaluate(callback(), AGREED + timedelta(minutes=9), policy(), CENTER, {IVAN})
    assert rules(waiting) == {Rule.CALLBACK_OPERATOR}
    assert waiting.blocks[0].until == AGREED + timedelta(minutes=10)
    anyone = evaluate(callback(), AGREED + timedelta(minutes=10), policy(), CENTER, {IVAN})
    assert anyone.dialable and anyone.operator_id is None


def test_given_shorter_wait_in_policy_then_fallback_comes_sooner():
    assert evaluate(callback(), AGREED + timedelta(minutes=2), policy(callback_operator_wait_minutes=2), CENTER,
                    {IVAN}).dialable


def test_given_availability_unknown_then_not_blocked_and_agreeing_operator_named():
    verdict = evaluate(callback(), AGREED, policy(), CENTER, None)
    assert verdict.dialable and verdict.operator_id == ANNA


def test_given_callback_attempt_unanswered_then_its_retry_delay_applies():
    retried = lead(1, moscow(2026, 11, 22, 12, 0), status="callback", attempts_count=2, contacts_count=1,
                   callback_at=AGREED, last_attempt_at=AGREED + timedelta(minutes=1),
                   next_attempt_at=AGREED + timedelta(minutes=31), last_result="no_answer")
    assert rules(evaluate(retried, AGREED + timedelta(minutes=5), policy(), CENTER)) == {Rule.RETRY_DELAY}
    assert evaluate(retried, AGREED + timedelta(minutes=31), policy(), CENTER).dialable


def test_given_callback_time_in_the_customers_night_then_quiet_hours_still_win():
    late = lead(1, moscow(2026, 11, 22, 12, 0), status="callback", attempts_count=1, contacts_count=1,
                callback_at=moscow(2026, 11, 23, 16, 0), phone="+74232123456")   # 23:00 in Vladivostok
    assert Rule.QUIET_HOURS_LEAD in rules(evaluate(late, moscow(2026, 11, 23, 16, 0), policy(), CENTER))
