"""The policy in the database: seeded once, versioned, audited, validated, picked up without restart."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dialer.bootstrap import initialize
from kernel.db.engine import Database
from kernel.db.models import PolicyChange, PolicyVersion
from kernel.settings import IntakeSettings, Settings
from leads.intake import Intake, LeadIn
from leads.lead import LeadStatus
from leads.policy.store import change_policy, current_policy, policy_history, seed_policy
from leads.policy.values import PolicyRefused
from tests.conftest import moscow

NOW = moscow(2026, 11, 23, 9, 0)


def seeded(db):
    with db.write() as session:
        seed_policy(session, NOW)
    return db


def versions(db):
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(PolicyVersion)), \
            session.scalar(select(func.count()).select_from(PolicyChange))


def test_given_fresh_store_when_seeded_twice_then_one_version_with_the_defaults(db):
    assert current_policy(db).version == 0   # nothing stored yet: the defaults
    seeded(db)
    seeded(db)
    policy = current_policy(db)
    assert (policy.version, policy.max_attempts) == (1, 7)
    assert versions(db) == (1, 0)


def test_given_init_then_policy_seeded_with_the_dedup_window_from_the_settings(db):
    report = initialize(db, Settings(intake=IntakeSettings(dedup_window_hours=12.0)), NOW)
    assert "policy version 1" in report
    assert current_policy(db).dedup_window == timedelta(hours=12)
    assert "seeded" not in initialize(db, Settings(), NOW)


def test_given_change_then_new_version_and_audit_row_with_who_when_old_new(db):
    seeded(db)
    policy, records = change_policy(db, {"max_attempts": "5"}, by="Анна (старший смены)", now=NOW)
    assert (policy.version, policy.max_attempts) == (2, 5)
    [audit] = policy_history(db)
    assert (audit.version, audit.key, audit.old, audit.new, audit.changed_by, audit.changed_at) == \
        (2, "max_attempts", 7, 5, "Анна (старший смены)", NOW)
    with db.read() as session:
        stored = session.get(PolicyVersion, 2)
        assert stored.values["max_attempts"] == 5 and stored.values["quiet_start"] == "22:00"


@pytest.mark.parametrize("changes, words", [
    ({"max_attemps": "5"}, "unknown policy key"),
    ({"max_attempts": "five"}, "whole number"),
    ({"max_attempts": "50"}, "from 1 to 20"),
    ({"quiet_end": "22:00"}, "must differ"),
    ({"retry_busy_minutes": "3", "distribution": "round-robin"}, "even, product, skill"),
])
def test_given_refused_change_then_stored_policy_is_exactly_as_it_was(db, changes, words):
    seeded(db)
    before = current_policy(db)
    with pytest.raises(PolicyRefused, match=words):
        change_policy(db, changes, by="cli", now=NOW)
    assert current_policy(db) == before
    assert versions(db) == (1, 0)


def test_given_same_value_again_then_no_new_version(db):
    seeded(db)
    change_policy(db, {"max_attempts": "5"}, by="cli", now=NOW)
    policy, records = change_policy(db, {"max_attempts": "5"}, by="cli", now=NOW)
    assert records == [] and policy.version == 2
    assert versions(db) == (2, 1)


def test_given_running_daemon_when_policy_changed_elsewhere_then_next_read_sees_it(db_url):
    daemon, cli = Database(db_url), Database(db_url)
    try:
        seeded(cli)
        assert current_policy(daemon).max_attempts == 7
        change_policy(cli, {"max_attempts": "4"}, by="cli", now=NOW)
        assert current_policy(daemon).max_attempts == 4
    finally:
        daemon.dispose()
        cli.dispose()


def test_given_dedup_window_changed_then_intake_uses_it_at_once(db):
    seeded(db)
    intake = Intake(db)
    first = intake.submit([LeadIn("+7 912 345 67 89")], NOW)[0]
    assert intake.submit([LeadIn("8 (912) 345-67-89")], NOW + timedelta(hours=2))[0].status is LeadStatus.DUPLICATE
    change_policy(db, {"dedup_window_hours": "1"}, by="cli", now=NOW)
    again = intake.submit([LeadIn("9123456789")], NOW + timedelta(hours=4))[0]
    assert again.status is LeadStatus.NEW and again.duplicate_of is None and first.status is LeadStatus.NEW


# ---- issue 12: quiet-hours changes that would call people at night are refused

@pytest.mark.parametrize("changes, words", [
    ({"quiet_start": "23:00"}, "allows calls after 22:00"),                 # legal 22:00-10:00, not 23:00
    ({"quiet_end": "09:00"}, "allows calls before 10:00"),
    ({"quiet_start": "00:00"}, "allows calls after 22:00"),                 # 00:00-10:00: 22-24 dialed
    ({"quiet_start": "01:00", "quiet_end": "08:00"}, "overnight"),          # dialing 08:00 -> 01:00
    ({"quiet_start": "09:00", "quiet_end": "21:00"}, "overnight"),          # quiet by day, dialing by night
])
def test_given_quiet_hours_shorter_than_legal_or_overnight_when_changed_then_refused_and_nothing_stored(
        db, changes, words):
    seeded(db)
    before = current_policy(db)
    with pytest.raises(PolicyRefused, match=words):
        change_policy(db, changes, by="cli", now=NOW)
    assert current_policy(db) == before and versions(db) == (1, 0)


def test_given_allow_short_quiet_hours_when_shorter_then_accepted_but_overnight_still_refused(db):
    seeded(db)
    policy, _ = change_policy(db, {"quiet_start": "23:00", "quiet_end": "08:00"}, by="cli", now=NOW,
                              allow_short_quiet_hours=True)
    assert (policy.quiet_start, policy.quiet_end) == ("23:00", "08:00")
    with pytest.raises(PolicyRefused, match="overnight"):
        change_policy(db, {"quiet_start": "02:00"}, by="cli", now=NOW, allow_short_quiet_hours=True)
    # a later change of another key does not re-judge the stored short window
    assert change_policy(db, {"max_attempts": "6"}, by="cli", now=NOW)[0].max_attempts == 6


def test_given_longer_quiet_hours_when_changed_then_accepted_without_the_flag(db):
    seeded(db)
    policy, _ = change_policy(db, {"quiet_start": "21:00", "quiet_end": "11:00"}, by="cli", now=NOW)
    assert (policy.quiet_start, policy.quiet_end) == ("21:00", "11:00")


def test_given_two_keys_whose_order_would_matter_when_changed_together_then_one_version(db):
    """21:00-09:00 -> 23:00-11:00 one key at a time passes through 23:00-09:00 (short) or
    21:00-11:00; together it is one check and one version with two audit rows."""
    seeded(db)
    change_policy(db, {"quiet_start": "23:00", "quiet_end": "09:00"}, by="cli", now=NOW,
                  allow_short_quiet_hours=True)
    policy, records = change_policy(db, {"quiet_start": "21:30", "quiet_end": "10:30"}, by="cli", now=NOW,
                                    comment="winter hours")
    assert (policy.quiet_start, policy.quiet_end) == ("21:30", "10:30")
    assert {r.version for r in records} == {policy.version} and len(records) == 2
    assert [(h.key, h.comment) for h in policy_history(db)][:2] == \
        [("quiet_end", "winter hours"), ("quiet_start", "winter hours")]
