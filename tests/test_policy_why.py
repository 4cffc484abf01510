"""`dialer why`: every rule that blocks a lead, each with a reason and, when it ends by itself, until when."""

from datetime import timedelta

from leads.policy.why import Rule, dialable_from, evaluate
from tests.conftest import moscow
from tests.policy_helpers import CENTER, VLADIVOSTOK, lead, policy

AT = moscow(2026, 11, 23, 16, 0)   # 23:00 in Vladivostok


def rules(facts, at=AT, **policy_values):
    return {b.rule for b in evaluate(facts, at, policy(**policy_values), CENTER).blocks}


def test_given_dialable_lead_then_no_block():
    assert rules(lead(1, AT - timedelta(minutes=1))) == set()


def test_given_everything_wrong_at_once_then_every_rule_is_listed():
    night = moscow(2026, 11, 23, 22, 30)
    facts = lead(1, AT - timedelta(days=1), status="retry", phone=VLADIVOSTOK, attempts_count=7,
                 next_attempt_at=night + timedelta(minutes=20), last_result="busy", on_dnc=True,
                 attempt_in_progress=True, lease_owner="daemon-a", lease_expires_at=night + timedelta(minutes=3))
    assert rules(facts, night) == {
        Rule.DNC, Rule.IN_PROGRESS, Rule.LEASED, Rule.MAX_ATTEMPTS, Rule.RETRY_DELAY, Rule.QUIET_HOURS_CENTER,
        Rule.QUIET_HOURS_LEAD}


def test_given_statuses_that_are_never_dialed_then_the_status_is_the_reason():
    received = AT - timedelta(hours=1)
    assert Rule.CLOSED in rules(lead(1, received, status="closed", close_reason="confirmed"))
    assert Rule.INVALID in rules(lead(1, received, status="invalid", invalid_reason="obvious_fake", phone=None))
    assert Rule.NO_PHONE in rules(lead(1, received, status="invalid", invalid_reason="no_phone", phone=None))
    assert Rule.DUPLICATE in rules(lead(2, received, status="duplicate", duplicate_of_id=1))
    assert Rule.DNC in rules(lead(1, received, status="dnc"))


def test_given_blocks_then_messages_name_the_reason_and_the_time():
    facts = lead(1, AT - timedelta(days=1), status="retry", phone=VLADIVOSTOK, attempts_count=2,
                 next_attempt_at=AT + timedelta(minutes=20), last_result="busy")
    blocks = {b.rule: b for b in evaluate(facts, AT, policy(), CENTER).blocks}
    assert "after busy" in blocks[Rule.RETRY_DELAY].message and "16:20" in blocks[Rule.RETRY_DELAY].message
    assert "Asia/Vladivostok" in blocks[Rule.QUIET_HOURS_LEAD].message
    assert blocks[Rule.QUIET_HOURS_LEAD].until == moscow(2026, 11, 24, 3, 0)   # 10:00 in Vladivostok


def test_given_max_attempts_lowered_then_a_waiting_lead_is_blocked_with_the_numbers():
    facts = lead(1, AT - timedelta(days=1), status="retry", attempts_count=5, next_attempt_at=AT)
    verdict = evaluate(facts, moscow(2026, 11, 23, 12, 0) + timedelta(days=1), policy(max_attempts=5), CENTER)
    assert [b.message for b in verdict.blocks] == ["max attempts reached (5 of 5)"]
    assert dialable_from(facts, AT, policy(max_attempts=5), CENTER) is None


def test_given_lease_expired_then_no_longer_a_block():
    facts = lead(1, AT - timedelta(hours=1), phone="+79123456789", lease_owner="daemon-a",
                 lease_expires_at=AT - timedelta(seconds=1))
    assert rules(facts) == set()


def test_given_retry_never_scheduled_then_it_says_so():
    facts = lead(1, AT - timedelta(hours=1), status="retry", attempts_count=1)
    assert rules(facts) == {Rule.RETRY_DELAY}
