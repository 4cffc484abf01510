"""What a call result does to its lead: retry delays, max attempts, contacts (DESIGN §3)."""

from datetime import timedelta

import pytest

from leads.attempt import CallResult
from leads.policy.retry import after_result
from tests.conftest import moscow
from tests.policy_helpers import CENTER, lead, policy

CLAIMED = moscow(2026, 11, 23, 12, 0)
ENDED = moscow(2026, 11, 23, 12, 1)


def result_of(result, facts=None, *, dialed=True, **policy_values):
    facts = facts or lead(1, CLAIMED - timedelta(minutes=2))
    return after_result(facts, result, ENDED, claimed_at=CLAIMED, dialed=dialed, policy=policy(**policy_values),
                        center=CENTER)


# Issue 12: no answer, an answering machine and a declined call also wait for the next part of the
# customer's day (12:01 is in the morning part 10:00-13:00 -> not before 13:00); the delay still holds
# when it ends later (answering machine: 12:01 + 120 min = 14:01).
@pytest.mark.parametrize("result, minutes", [
    (CallResult.BUSY, 10), (CallResult.NO_ANSWER, 59), (CallResult.CONGESTION, 5), (CallResult.FAILED, 5),
    (CallResult.ANSWERING_MACHINE, 120), (CallResult.ABANDONED, 1), (CallResult.REJECTED, 59),
    (CallResult.CANCELLED, 1), (CallResult.UNKNOWN, 5),
])
def test_given_result_then_retry_after_its_delay_or_the_next_day_part(result, minutes):
    update = result_of(result)
    assert update.next_attempt_at == ENDED + timedelta(minutes=minutes)
    assert (update.status, update.attempts_count, update.counted) == ("retry", 1, True)
    assert (update.last_result, update.last_attempt_at, update.first_dialed_at) == (result.value, ENDED, CLAIMED)


def test_given_changed_delay_then_the_policy_value_is_used():
    assert result_of(CallResult.BUSY, retry_busy_minutes=3).next_attempt_at == ENDED + timedelta(minutes=3)
    assert result_of(CallResult.NO_ANSWER, retry_no_answer_minutes=90).next_attempt_at == \
        ENDED + timedelta(minutes=90)   # later than the next day part (13:00): the delay decides


def test_given_invalid_number_then_lead_is_closed_and_never_retried():
    update = result_of(CallResult.INVALID_NUMBER)
    assert (update.status, update.close_reason, update.closed_at, update.next_attempt_at) == \
        ("closed", "invalid_number", ENDED, None)


def test_given_claim_given_back_before_dialing_then_not_an_attempt():
    before = lead(1, CLAIMED - timedelta(minutes=2))
    update = result_of(CallResult.CANCELLED, before, dialed=False)
    assert not update.counted
    assert (update.status, update.attempts_count, update.next_attempt_at, update.last_result) == \
        ("new", 0, None, None)


@pytest.mark.parametrize("max_attempts", [7, 3])
def test_given_last_allowed_attempt_fails_then_lead_is_closed_unreachable(max_attempts):
    before = lead(1, CLAIMED - timedelta(days=1), status="retry", attempts_count=max_attempts - 1,
                  next_attempt_at=CLAIMED)
    update = result_of(CallResult.NO_ANSWER, before, max_attempts=max_attempts)
    assert (update.status, update.close_reason, update.attempts_count) == ("closed", "unreachable", max_attempts)
    one_less = result_of(CallResult.NO_ANSWER, before, max_attempts=max_attempts + 1)
    assert one_less.status == "retry"


def test_given_conversation_then_contact_counted_and_next_contact_waits_for_tomorrow():
    update = result_of(CallResult.CONNECTED)
    assert (update.status, update.contacts_count, update.last_contact_at) == ("retry", 1, ENDED)
    assert update.next_attempt_at == moscow(2026, 11, 24, 0, 0)


def test_given_conversation_on_last_attempt_then_the_disposition_decides_not_the_limit():
    before = lead(1, CLAIMED - timedelta(days=1), status="retry", attempts_count=6, next_attempt_at=CLAIMED)
    assert result_of(CallResult.CONNECTED, before).status == "retry"


def test_given_callback_kept_by_this_call_then_it_is_served():
    before = lead(1, CLAIMED - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
                  callback_at=CLAIMED - timedelta(minutes=1), callback_operator_id=5)
    update = result_of(CallResult.CONNECTED, before)
    assert (update.status, update.callback_at, update.callback_operator_id) == ("retry", None, None)


def test_given_disposition_already_agreed_a_new_callback_then_the_result_keeps_it():
    later = moscow(2026, 11, 24, 15, 0)
    before = lead(1, CLAIMED - timedelta(minutes=5), status="callback", callback_at=later, callback_operator_id=5)
    update = result_of(CallResult.CONNECTED, before)
    assert (update.status, update.callback_at, update.callback_operator_id) == ("callback", later, 5)


def test_given_callback_not_answered_then_it_stays_a_callback_with_a_retry_delay():
    before = lead(1, CLAIMED - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
                  callback_at=CLAIMED - timedelta(minutes=1))
    update = result_of(CallResult.NO_ANSWER, before)
    assert (update.status, update.next_attempt_at) == ("callback", ENDED + timedelta(minutes=30))


def test_given_lead_closed_by_a_disposition_meanwhile_then_status_is_kept():
    before = lead(1, CLAIMED - timedelta(minutes=5), status="closed", close_reason="dnc", closed_at=CLAIMED)
    update = result_of(CallResult.NO_ANSWER, before)
    assert (update.status, update.close_reason, update.closed_at, update.attempts_count) == \
        ("closed", "dnc", CLAIMED, 1)
