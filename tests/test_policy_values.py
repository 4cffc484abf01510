"""The policy's keys: defaults, text values from the CLI, what is refused and why."""

import pytest

from leads.policy.values import DEFAULTS, KEYS, PolicyRefused, build_policy, check_values, parse_value


def test_defaults_are_the_documented_ones():
    assert (DEFAULTS.max_attempts, DEFAULTS.first_call_minutes, DEFAULTS.sla_warning_minutes) == (7, 15, 5)
    assert (DEFAULTS.quiet_start, DEFAULTS.quiet_end, DEFAULTS.unknown_zone_rule) == ("22:00", "10:00", "center")
    assert DEFAULTS.tier_order == ("new", "second_attempt", "callback", "redial", "follow_up")
    assert [DEFAULTS.retry_busy_minutes, DEFAULTS.retry_no_answer_minutes, DEFAULTS.retry_congestion_minutes,
            DEFAULTS.retry_failed_minutes, DEFAULTS.retry_answering_machine_minutes,
            DEFAULTS.retry_abandoned_minutes] == [10, 30, 5, 5, 120, 1]
    assert DEFAULTS.callback_operator_wait_minutes == 10
    assert check_values(DEFAULTS.values()) == []


def test_every_key_has_a_meaning_and_says_what_it_accepts():
    for info in KEYS.values():
        assert info.meaning
        assert info.check(info.default) is None


@pytest.mark.parametrize("key, text, value", [
    ("max_attempts", " 5 ", 5), ("quiet_start", "21:30", "21:30"), ("unknown_zone_rule", "strict", "strict"),
    ("tier_order", "callback, new,second_attempt,redial,follow_up",
     ["callback", "new", "second_attempt", "redial", "follow_up"]),
    ("tier_order", '["new","callback","second_attempt","redial","follow_up"]',
     ["new", "callback", "second_attempt", "redial", "follow_up"]),
    ("dedup_window_hours", "1.5", 1.5), ("dedup_window_hours", "48", 48), ("tier_variant", "2", 2),
])
def test_given_good_text_then_it_is_read_as_the_keys_type(key, text, value):
    assert parse_value(key, text) == value


@pytest.mark.parametrize("key, text, words", [
    ("max_attempts", "0", "from 1 to 20"), ("max_attempts", "21", "practice recommends 5-10"),
    ("max_attempts", "seven", "whole number"), ("max_attempts", "5.5", "whole number"),
    ("quiet_start", "25:00", "HH:MM"), ("quiet_end", "10", "HH:MM"),
    ("unknown_zone_rule", "lax", "center, strict"), ("distribution", "random", "even, product, skill"),
    ("tier_order", "new,callback", "every tier exactly once"),
    ("tier_order", "new,new,callback,redial,follow_up", "every tier exactly once"),
    ("retry_busy_minutes", "-1", "minutes"), ("tier_variant", "3", "one of: 1, 2"),
])
def test_given_bad_text_then_refused_with_what_is_allowed(key, text, words):
    with pytest.raises(PolicyRefused, match=words):
        parse_value(key, text)


def test_given_unknown_key_then_refused_with_the_known_keys():
    with pytest.raises(PolicyRefused, match="unknown policy key 'max_attempt'.*max_attempts"):
        parse_value("max_attempt", "5")


def test_given_values_that_contradict_each_other_then_refused():
    with pytest.raises(PolicyRefused, match="must differ"):
        build_policy({"quiet_start": "10:00", "quiet_end": "10:00"})
    with pytest.raises(PolicyRefused, match="cadence_min_gap_days"):
        build_policy({"cadence_min_gap_days": 3, "cadence_max_gap_days": 2})


def test_given_stored_values_then_policy_round_trips():
    changed = build_policy({**DEFAULTS.values(), "max_attempts": 5, "tier_order": list(reversed(DEFAULTS.tier_order))},
                           version=4)
    assert changed.version == 4 and changed.max_attempts == 5
    assert build_policy(changed.values(), version=4) == changed
