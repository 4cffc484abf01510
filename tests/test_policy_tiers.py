"""Priority tiers, deadlines inside a tier, night arrivals and the SLA state (DESIGN §3)."""

from datetime import timedelta

from leads.policy.selector import order_dialable
from leads.policy.sla import SlaState
from leads.policy.tiers import Tier
from leads.policy.why import evaluate
from tests.conftest import moscow
from tests.policy_helpers import CENTER, VLADIVOSTOK, lead, policy

NOON = moscow(2026, 11, 23, 12, 0)


def mixed_set():
    """One lead of each kind, all dialable at noon; ids chosen so that id order is not the answer."""
    return [
        lead(5, NOON - timedelta(minutes=3)),                                             # new
        lead(4, NOON - timedelta(hours=2), status="retry", attempts_count=1,
             next_attempt_at=NOON - timedelta(minutes=30), last_result="no_answer"),     # second attempt
        lead(3, NOON - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
             last_contact_at=NOON - timedelta(days=1), last_attempt_at=NOON - timedelta(days=1),
             callback_at=NOON - timedelta(minutes=1)),                                    # callback due
        lead(2, NOON - timedelta(hours=5), status="retry", attempts_count=3,
             next_attempt_at=NOON - timedelta(hours=1), last_result="busy"),             # redial
        lead(1, NOON - timedelta(days=2), status="retry", attempts_count=1, contacts_count=1,
             last_contact_at=NOON - timedelta(days=1), next_attempt_at=NOON - timedelta(hours=12)),  # follow-up
    ]


def ids(verdicts):
    return [v.lead.id for v in verdicts]


def test_given_mixed_set_when_variant_1_then_new_second_attempt_callback_redial_follow_up():
    ordered = order_dialable(mixed_set(), NOON, policy(), CENTER)
    assert [v.tier for v in ordered] == [Tier.NEW, Tier.SECOND_ATTEMPT, Tier.CALLBACK, Tier.REDIAL, Tier.FOLLOW_UP]
    assert ids(ordered) == [5, 4, 3, 2, 1]


def test_given_team_lead_reordered_tiers_then_that_order_is_used():
    order = ["callback", "follow_up", "new", "redial", "second_attempt"]
    assert ids(order_dialable(mixed_set(), NOON, policy(tier_order=order), CENTER)) == [3, 1, 5, 2, 4]


def test_given_variant_2_then_new_first_then_fewest_attempts():
    leads = mixed_set() + [lead(6, NOON - timedelta(hours=3), status="retry", attempts_count=2,
                                next_attempt_at=NOON - timedelta(minutes=5))]
    ordered = order_dialable(leads, NOON, policy(tier_variant=2), CENTER)
    assert [v.lead.attempts_count for v in ordered] == [0, 1, 1, 1, 2, 3]
    assert ordered[0].lead.id == 5 and ordered[-1].lead.id == 2


def test_given_new_leads_then_earliest_first_call_deadline_first():
    leads = [lead(1, NOON - timedelta(minutes=2)), lead(2, NOON - timedelta(minutes=9)),
             lead(3, NOON - timedelta(minutes=5))]
    ordered = order_dialable(leads, NOON, policy(), CENTER)
    assert ids(ordered) == [2, 3, 1]
    assert [v.deadline for v in ordered] == [NOON + timedelta(minutes=6), NOON + timedelta(minutes=10),
                                             NOON + timedelta(minutes=13)]


def test_given_callbacks_then_earliest_agreed_time_first():
    def callback(id_, minutes_ago):
        return lead(id_, NOON - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
                    callback_at=NOON - timedelta(minutes=minutes_ago))
    ordered = order_dialable([callback(1, 5), callback(2, 40), callback(3, 20)], NOON, policy(), CENTER)
    assert ids(ordered) == [2, 3, 1]
    assert ordered[0].deadline == NOON - timedelta(minutes=40)


def test_given_redials_then_the_one_due_first_goes_first():
    def redial(id_, due_minutes_ago):
        return lead(id_, NOON - timedelta(hours=6), status="retry", attempts_count=2,
                    next_attempt_at=NOON - timedelta(minutes=due_minutes_ago))
    assert ids(order_dialable([redial(1, 1), redial(2, 50), redial(3, 7)], NOON, policy(), CENTER)) == [2, 3, 1]


def test_given_night_arrivals_then_nothing_before_10_and_tier_order_from_10():
    evening = moscow(2026, 11, 22, 23, 10)
    leads = [
        lead(1, moscow(2026, 11, 23, 7, 30)),
        lead(2, evening),
        lead(3, moscow(2026, 11, 23, 2, 0)),
        lead(4, moscow(2026, 11, 22, 18, 0), status="retry", attempts_count=1,
             next_attempt_at=moscow(2026, 11, 22, 21, 0)),
    ]
    assert order_dialable(leads, moscow(2026, 11, 23, 9, 59), policy(), CENTER) == []
    ordered = order_dialable(leads, moscow(2026, 11, 23, 10, 0), policy(), CENTER)
    assert ids(ordered) == [2, 3, 1, 4]   # new leads (same deadline 10:15, by arrival), then the retry
    assert {v.deadline for v in ordered[:3]} == {moscow(2026, 11, 23, 10, 15)}


def test_given_first_call_deadline_then_15_minutes_from_receipt_or_from_quiet_hours_end():
    def deadline(received, **fields):
        return evaluate(lead(1, received, **fields), received, policy(), CENTER).deadline
    assert deadline(NOON) == NOON + timedelta(minutes=15)
    assert deadline(moscow(2026, 11, 23, 23, 0)) == moscow(2026, 11, 24, 10, 15)
    assert deadline(moscow(2026, 11, 23, 16, 0), phone=VLADIVOSTOK) == moscow(2026, 11, 24, 10, 15)
    assert evaluate(lead(1, NOON), NOON, policy(first_call_minutes=5), CENTER).deadline == NOON + timedelta(minutes=5)


def test_given_new_lead_then_sla_ok_then_at_risk_5_minutes_before_then_breached():
    new = lead(1, NOON)   # deadline 12:15
    def sla(at):
        return evaluate(new, at, policy(), CENTER).sla
    assert sla(moscow(2026, 11, 23, 12, 9, 59)) is SlaState.OK
    assert sla(moscow(2026, 11, 23, 12, 10)) is SlaState.AT_RISK
    assert sla(moscow(2026, 11, 23, 12, 15)) is SlaState.AT_RISK
    assert sla(moscow(2026, 11, 23, 12, 15, 1)) is SlaState.BREACHED
    assert evaluate(new, moscow(2026, 11, 23, 12, 3), policy(sla_warning_minutes=12), CENTER).sla is SlaState.AT_RISK


def test_given_redial_then_no_sla_state():
    redial = lead(1, NOON - timedelta(hours=3), status="retry", attempts_count=2,
                  next_attempt_at=NOON - timedelta(hours=1))
    assert evaluate(redial, NOON, policy(), CENTER).sla is None
