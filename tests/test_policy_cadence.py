"""Contact cadence: first contact the day of arrival, the second the next day, then every 2 days at most."""

from datetime import timedelta

from leads.policy.cadence import contact_window
from leads.policy.why import Rule, dialable_from, evaluate
from tests.conftest import moscow
from tests.policy_helpers import CENTER, lead, policy

FIRST_CONTACT = moscow(2026, 11, 23, 11, 0)


def follow_up(contacts=1, last=FIRST_CONTACT):
    # next_attempt_at at the contact itself: the cadence is computed from the contacts, not from it.
    return lead(1, moscow(2026, 11, 23, 10, 40), status="retry", attempts_count=contacts, contacts_count=contacts,
                last_contact_at=last, last_attempt_at=last, next_attempt_at=last)


def test_given_first_contact_today_then_no_second_contact_the_same_day():
    verdict = evaluate(follow_up(), moscow(2026, 11, 23, 18, 0), policy(), CENTER)
    cadence = [b for b in verdict.blocks if b.rule is Rule.CADENCE]
    assert cadence and cadence[0].until == moscow(2026, 11, 24, 0, 0)
    assert dialable_from(follow_up(), moscow(2026, 11, 23, 18, 0), policy(), CENTER) == moscow(2026, 11, 24, 10, 0)


def test_given_first_contact_yesterday_then_second_contact_today_and_due_by_midnight():
    verdict = evaluate(follow_up(), moscow(2026, 11, 24, 10, 0), policy(), CENTER)
    assert verdict.dialable
    assert verdict.deadline == moscow(2026, 11, 25, 0, 0)


def test_given_two_contacts_then_the_next_is_due_within_two_days():
    window = contact_window(follow_up(contacts=2), policy(), CENTER)
    assert window.earliest == moscow(2026, 11, 24, 0, 0)
    assert window.deadline == moscow(2026, 11, 25, 11, 0)
    assert contact_window(follow_up(contacts=3), policy(cadence_max_gap_days=3), CENTER).deadline == \
        moscow(2026, 11, 26, 11, 0)


def test_given_callback_agreed_for_today_then_cadence_does_not_hold_it_back():
    callback = lead(1, moscow(2026, 11, 23, 10, 40), status="callback", attempts_count=1, contacts_count=1,
                    last_contact_at=FIRST_CONTACT, last_attempt_at=FIRST_CONTACT,
                    callback_at=moscow(2026, 11, 23, 17, 0))
    assert evaluate(callback, moscow(2026, 11, 23, 17, 0), policy(), CENTER).dialable


def test_given_no_minimum_gap_then_a_second_contact_may_happen_the_same_day():
    assert evaluate(follow_up(), moscow(2026, 11, 23, 18, 0), policy(cadence_min_gap_days=0), CENTER).dialable


def test_given_no_contact_yet_then_cadence_does_not_block():
    fresh = lead(1, FIRST_CONTACT - timedelta(minutes=1))
    assert contact_window(fresh, policy(), CENTER).earliest is None
    assert evaluate(fresh, FIRST_CONTACT, policy(), CENTER).dialable
