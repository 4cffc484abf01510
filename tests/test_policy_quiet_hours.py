"""Quiet hours 22:00-10:00 in the center's zone and in the lead's own zone (DESIGN §3)."""

from datetime import timedelta

import pytest

from leads.policy.quiet_hours import first_allowed, in_quiet_hours
from leads.policy.why import Rule, dialable_from, evaluate
from leads.policy.zones import ZoneSource, lead_zones
from tests.conftest import moscow
from tests.policy_helpers import CENTER, KALININGRAD, MOBILE, MOSCOW_LANDLINE, VLADIVOSTOK, lead, policy

DAY = (2026, 11, 23)
RECEIVED = moscow(2026, 11, 22, 12, 0)    # long before: the lead waits, only the clock matters


def rules_blocking(phone, at, **fields):
    verdict = evaluate(lead(1, RECEIVED, phone=phone, **fields), at, policy(), CENTER)
    return {block.rule for block in verdict.blocks}


@pytest.mark.parametrize("hour, minute, quiet", [(21, 59, False), (22, 0, True), (9, 59, True), (10, 0, False),
                                                 (3, 0, True), (15, 0, False)])
def test_given_center_zone_when_clock_reads_then_quiet_hours_are_22_to_10(hour, minute, quiet):
    at = moscow(*DAY, hour, minute)
    assert in_quiet_hours(at, CENTER, policy()) is quiet
    assert (Rule.QUIET_HOURS_CENTER in rules_blocking(MOBILE, at)) is quiet


@pytest.mark.parametrize("hour, minute, blocked", [
    (10, 30, False),   # 17:30 in Vladivostok
    (14, 59, False),   # 21:59 there
    (15, 0, True),     # 22:00 there
    (16, 0, True),     # 23:00 there
])
def test_given_vladivostok_landline_when_moscow_afternoon_then_its_own_quiet_hours_apply(hour, minute, blocked):
    blocks = rules_blocking(VLADIVOSTOK, moscow(*DAY, hour, minute))
    assert (Rule.QUIET_HOURS_LEAD in blocks) is blocked
    assert Rule.QUIET_HOURS_CENTER not in blocks


@pytest.mark.parametrize("hour, minute, blocked", [
    (21, 30, False),   # 20:30 in Kaliningrad
    (10, 30, True),    # 09:30 there: still night for the customer
    (11, 0, False),    # 10:00 there
])
def test_given_kaliningrad_landline_then_an_hour_behind_moscow(hour, minute, blocked):
    assert (Rule.QUIET_HOURS_LEAD in rules_blocking(KALININGRAD, moscow(*DAY, hour, minute))) is blocked


def test_given_kaliningrad_in_summer_then_no_daylight_saving_hour_is_invented():
    # phonenumbers names Europe/Bucharest for UTC+2, which moves to UTC+3 in summer; Kaliningrad does not.
    at = moscow(2026, 7, 15, 10, 30)   # 09:30 in Kaliningrad all year round (10:30 in Bucharest in July)
    assert Rule.QUIET_HOURS_LEAD in rules_blocking(KALININGRAD, at)


def test_given_explicit_zone_then_it_beats_the_zone_of_the_number():
    at = moscow(*DAY, 16, 0)
    assert Rule.QUIET_HOURS_LEAD in rules_blocking(MOBILE, at, timezone="Asia/Vladivostok")
    assert Rule.QUIET_HOURS_LEAD not in rules_blocking(VLADIVOSTOK, at, timezone="Europe/Moscow")
    assert lead_zones("Asia/Vladivostok", MOBILE, "center").source == ZoneSource.LEAD


def test_given_mobile_number_then_zone_is_unknown_and_the_rule_decides():
    assert lead_zones(None, MOBILE, "center").names == ()
    strict = lead_zones(None, MOBILE, "strict")
    assert strict.source == ZoneSource.STRICT
    assert {"Europe/Kaliningrad", "Asia/Kamchatka"} <= set(strict.names)
    assert lead_zones(None, MOSCOW_LANDLINE, "strict").names == ("Europe/Moscow",)


@pytest.mark.parametrize("hour, minute, blocked", [
    (10, 30, True),    # 09:30 in Kaliningrad
    (11, 0, False),    # 10:00 in Kaliningrad, 20:00 in Kamchatka
    (12, 59, False),
    (13, 0, True),     # 22:00 in Kamchatka
])
def test_given_strict_rule_then_a_mobile_is_dialed_only_when_allowed_in_every_russian_zone(hour, minute, blocked):
    verdict = evaluate(lead(1, RECEIVED, phone=MOBILE), moscow(*DAY, hour, minute),
                       policy(unknown_zone_rule="strict"), CENTER)
    assert (Rule.QUIET_HOURS_LEAD in {b.rule for b in verdict.blocks}) is blocked


def test_given_center_rule_then_a_mobile_follows_only_the_center_clock():
    verdict = evaluate(lead(1, RECEIVED, phone=MOBILE), moscow(*DAY, 10, 30), policy(), CENTER)
    assert verdict.dialable


def test_given_quiet_span_not_crossing_midnight_then_it_is_honoured():
    p = policy(quiet_start="00:00", quiet_end="08:00")
    assert in_quiet_hours(moscow(*DAY, 7, 59), CENTER, p)
    assert not in_quiet_hours(moscow(*DAY, 8, 0), CENTER, p)
    assert not in_quiet_hours(moscow(*DAY, 23, 59), CENTER, p)


def test_given_night_then_first_allowed_moment_is_quiet_end_in_every_zone():
    from zoneinfo import ZoneInfo
    at = moscow(*DAY, 23, 0)
    assert first_allowed(at, (CENTER,), policy()) == moscow(2026, 11, 24, 10, 0)
    kaliningrad = (CENTER, ZoneInfo("Europe/Kaliningrad"))
    assert first_allowed(at, kaliningrad, policy()) == moscow(2026, 11, 24, 11, 0)
    assert first_allowed(moscow(*DAY, 12, 0), kaliningrad, policy()) == moscow(*DAY, 12, 0)


def test_given_zones_that_never_overlap_outside_quiet_hours_then_there_is_no_allowed_time():
    from zoneinfo import ZoneInfo
    p = policy(quiet_start="20:00", quiet_end="10:00")   # 10 allowed hours a day
    assert first_allowed(moscow(*DAY, 12, 0), (CENTER, ZoneInfo("Pacific/Honolulu")), p) is None
    verdict = evaluate(lead(1, RECEIVED, timezone="Pacific/Honolulu"), moscow(*DAY, 12, 0), p, CENTER)
    assert Rule.NO_ALLOWED_TIME in {b.rule for b in verdict.blocks}


def test_given_lead_blocked_by_quiet_hours_then_it_says_from_when_it_is_dialable():
    at = moscow(*DAY, 16, 0)
    assert dialable_from(lead(1, RECEIVED, phone=VLADIVOSTOK), at, policy(), CENTER) == moscow(2026, 11, 24, 10, 0)
    assert dialable_from(lead(1, RECEIVED, phone=MOBILE), at, policy(), CENTER) == at
    late = at + timedelta(hours=6, minutes=30)   # 22:30 Moscow
    assert dialable_from(lead(1, RECEIVED, phone=MOBILE), late, policy(), CENTER) == moscow(2026, 11, 24, 10, 0)
