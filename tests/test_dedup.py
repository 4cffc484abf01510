"""The dedup rules of DESIGN §2 as a pure function: variant A (phone + order number), variant B (phone only).

Written from the design, not from the code: each test names the rule it checks.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from leads.dedup import EarlierLead, dedup
from tests.conftest import utc

DAY = timedelta(hours=24)
T0 = utc(2026, 11, 23, 9, 0)


def lead(id: int, at, order: str | None = None, duplicate_of: int | None = None) -> EarlierLead:
    return EarlierLead(id=id, received_at=at, order_number=order, duplicate_of_id=duplicate_of)


# ---- variant A: the lead has an order number

def test_given_unknown_phone_when_lead_has_an_order_number_then_it_is_new():
    verdict = dedup("A-100", T0, [], DAY)
    assert not verdict.is_duplicate
    assert verdict.duplicate_of is None


def test_given_known_phone_and_same_order_number_when_lead_arrives_then_duplicate_of_the_original():
    verdict = dedup("A-100", T0 + timedelta(minutes=5), [lead(7, T0, "A-100")], DAY)
    assert verdict.is_duplicate
    assert verdict.duplicate_of == 7


def test_given_known_phone_and_new_order_number_when_lead_arrives_then_it_is_new():
    """A returning customer ordering something else must be called."""
    verdict = dedup("A-200", T0 + timedelta(minutes=5), [lead(7, T0, "A-100")], DAY)
    assert not verdict.is_duplicate


def test_given_same_order_number_long_ago_when_lead_arrives_then_still_duplicate():
    """Variant A has no time window: the same order is the same order a month later."""
    verdict = dedup("A-100", T0 + timedelta(days=30), [lead(7, T0, "A-100")], DAY)
    assert verdict.duplicate_of == 7


def test_given_order_number_written_differently_when_compared_then_case_and_spaces_do_not_matter():
    verdict = dedup("  zk-100 ", T0 + timedelta(minutes=1), [lead(7, T0, "ZK-100")], DAY)
    assert verdict.duplicate_of == 7


def test_given_earlier_phone_only_lead_when_lead_with_order_number_arrives_then_it_is_new():
    """Variant A asks for the same order: a phone-only lead an hour before has no order to match."""
    verdict = dedup("A-100", T0 + timedelta(hours=1), [lead(7, T0, None)], DAY)
    assert not verdict.is_duplicate


# ---- variant B: phone only

def test_given_phone_seen_inside_the_window_when_phone_only_lead_arrives_then_duplicate():
    verdict = dedup(None, T0 + timedelta(hours=23, minutes=59), [lead(3, T0)], DAY)
    assert verdict.duplicate_of == 3


def test_given_phone_seen_outside_the_window_when_phone_only_lead_arrives_then_new():
    verdict = dedup(None, T0 + DAY + timedelta(seconds=1), [lead(3, T0)], DAY)
    assert not verdict.is_duplicate


def test_given_phone_seen_exactly_one_window_ago_when_phone_only_lead_arrives_then_still_duplicate():
    """leads/dedup.py: the window is inclusive; exactly 24 h after the earlier lead is inside."""
    assert dedup(None, T0 + DAY, [lead(3, T0)], DAY).duplicate_of == 3
    assert not dedup(None, T0 + DAY + timedelta(microseconds=1), [lead(3, T0)], DAY).is_duplicate


def test_given_a_configured_window_when_phone_only_lead_arrives_then_that_window_applies():
    two_hours = timedelta(hours=2)
    earlier = [lead(3, T0)]
    assert dedup(None, T0 + timedelta(hours=1), earlier, two_hours).duplicate_of == 3
    assert not dedup(None, T0 + timedelta(hours=3), earlier, two_hours).is_duplicate
    assert dedup(None, T0 + timedelta(hours=3), earlier, timedelta(hours=72)).duplicate_of == 3


def test_given_blank_order_number_when_lead_arrives_then_it_is_treated_as_phone_only():
    assert dedup("   ", T0 + timedelta(hours=1), [lead(3, T0, "A-1")], DAY).duplicate_of == 3
    assert dedup("", T0 + timedelta(hours=1), [lead(3, T0, "A-1")], DAY).duplicate_of == 3


def test_given_earlier_lead_with_an_order_number_when_phone_only_lead_arrives_in_window_then_duplicate():
    """Both variants look at every earlier lead with the phone, whatever variant it came in by."""
    verdict = dedup(None, T0 + timedelta(hours=2), [lead(5, T0, "A-100")], DAY)
    assert verdict.duplicate_of == 5


def test_given_only_later_leads_when_deciding_then_they_are_not_earlier():
    verdict = dedup(None, T0, [lead(9, T0 + timedelta(minutes=1))], DAY)
    assert not verdict.is_duplicate


# ---- the link goes to the original

def test_given_a_chain_of_duplicates_when_another_arrives_by_order_number_then_it_links_to_the_root():
    earlier = [lead(1, T0, "A-1"), lead(2, T0 + timedelta(hours=1), "A-1", duplicate_of=1)]
    assert dedup("A-1", T0 + timedelta(hours=2), earlier, DAY).duplicate_of == 1


def test_given_original_out_of_window_but_its_duplicate_inside_when_phone_only_arrives_then_new():
    """Issue 12: the window runs from the last lead accepted as new, a duplicate does not extend it."""
    earlier = [lead(1, T0), lead(2, T0 + timedelta(hours=20), duplicate_of=1)]
    verdict = dedup(None, T0 + timedelta(hours=30), earlier, DAY)
    assert not verdict.is_duplicate


def test_given_leads_at_0h_20h_40h_when_phone_only_with_24h_window_then_new_duplicate_new():
    """DESIGN §2 B as written: 20 h is within 24 h of the 0 h lead; 40 h is 40 h after it (the last new)."""
    first = dedup(None, T0, [], DAY)
    assert not first.is_duplicate
    history = [lead(1, T0)]
    second = dedup(None, T0 + timedelta(hours=20), history, DAY)
    assert second.duplicate_of == 1
    history.append(lead(2, T0 + timedelta(hours=20), duplicate_of=second.duplicate_of))
    third = dedup(None, T0 + timedelta(hours=40), history, DAY)
    assert not third.is_duplicate
    history.append(lead(3, T0 + timedelta(hours=40)))
    # and the window now runs from the 40 h lead: 60 h is its duplicate, 64 h + 1 s is new again
    assert dedup(None, T0 + timedelta(hours=60), history, DAY).duplicate_of == 3
    assert not dedup(None, T0 + timedelta(hours=64, seconds=1), history, DAY).is_duplicate


def test_given_leads_at_0h_20h_40h_with_one_order_number_when_variant_a_then_all_after_the_first_duplicate():
    """Variant A has no window: the same phone and order number is a duplicate of the first, at any age."""
    history = [lead(1, T0, "A-7")]
    assert dedup("A-7", T0 + timedelta(hours=20), history, DAY).duplicate_of == 1
    history.append(lead(2, T0 + timedelta(hours=20), "A-7", duplicate_of=1))
    assert dedup("A-7", T0 + timedelta(hours=40), history, DAY).duplicate_of == 1
    assert not dedup("A-8", T0 + timedelta(hours=40), history, DAY).is_duplicate


def test_given_a_verdict_when_rendered_then_the_rule_names_the_variant():
    assert dedup("A-1", T0, [lead(1, T0, "A-1")], DAY).rule.startswith("A")
    assert dedup(None, T0, [lead(1, T0)], DAY).rule.startswith("B")


@st.composite
def histories(draw):
    """Earlier leads with one phone: each is either an original or a duplicate of an earlier original."""
    count = draw(st.integers(1, 12))
    leads: list[EarlierLead] = []
    for i in range(1, count + 1):
        at = T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 5)))
        order = draw(st.sampled_from([None, "A-1", "A-2", "a-1 "]))
        originals = [e.id for e in leads if e.duplicate_of_id is None]
        parent = draw(st.sampled_from([None, *originals])) if originals else None
        leads.append(lead(i, at, order, parent))
    return leads


@given(histories(), st.sampled_from([None, "A-1", "A-3"]), st.integers(0, 60 * 24 * 6),
       st.sampled_from([timedelta(hours=1), DAY]))
def test_property_a_duplicate_always_links_to_an_original_received_before_it(earlier, order, minute, window):
    now = T0 + timedelta(minutes=minute)
    verdict = dedup(order, now, earlier, window)
    if verdict.is_duplicate:
        by_id = {e.id: e for e in earlier}
        original = by_id[verdict.duplicate_of]
        assert original.duplicate_of_id is None
        assert any(e.received_at <= now and (e.id == original.id or e.duplicate_of_id == original.id)
                   for e in earlier)
    elif order is None:
        assert all(now - e.received_at > window for e in earlier
                   if e.received_at <= now and e.duplicate_of_id is None)
    else:
        assert not any(e.order_number and e.order_number.strip().casefold() == order.casefold()
                       for e in earlier if e.received_at <= now)
