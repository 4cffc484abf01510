"""Lead intake (DESIGN §2) through Intake.submit, on a real SQLite file and a real PostgreSQL database.

Every lead is stored, bad ones included; dedup variants A and B; DNC; the reasons a lead is invalid;
and identical leads arriving at the same moment from many threads.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from kernel.db.models import DncEntry, Lead
from leads.intake import Intake, LeadIn
from leads.lead import InvalidReason, LeadStatus
from tests.conftest import moscow, utc

T0 = moscow(2026, 11, 23, 12, 0)
DAY = timedelta(hours=24)


@pytest.fixture
def intake(db):
    return Intake(db, default_region="RU", dedup_window=DAY)


def stored(db, lead_id: int) -> Lead:
    with db.read() as session:
        return session.get(Lead, lead_id)


def count_leads(db) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Lead))


def submit_one(intake: Intake, at: datetime, phone: str | None, order: str | None = None, **fields):
    [outcome] = intake.submit([LeadIn(phone=phone, order_number=order, **fields)], at)
    return outcome


# ---- variant A

def test_given_same_phone_and_order_when_submitted_again_then_duplicate_linked_to_the_original(db, intake):
    first = submit_one(intake, T0, "+7 912 345-67-89", "ZK-1")
    second = submit_one(intake, T0 + timedelta(minutes=3), "8 (912) 345-67-89", "ZK-1")
    assert first.status is LeadStatus.NEW
    assert second.status is LeadStatus.DUPLICATE
    assert second.duplicate_of == first.lead_id
    row = stored(db, second.lead_id)
    assert (row.status, row.duplicate_of_id, row.order_number) == ("duplicate", first.lead_id, "ZK-1")


def test_given_same_phone_and_new_order_when_submitted_then_new_lead(db, intake):
    submit_one(intake, T0, "+79123456789", "ZK-1")
    second = submit_one(intake, T0 + timedelta(minutes=3), "+79123456789", "ZK-2")
    assert second.status is LeadStatus.NEW
    assert stored(db, second.lead_id).duplicate_of_id is None


def test_given_known_order_number_with_another_phone_when_submitted_then_new_lead(intake):
    submit_one(intake, T0, "+79123456789", "ZK-1")
    other = submit_one(intake, T0 + timedelta(minutes=3), "+79161234567", "ZK-1")
    assert other.status is LeadStatus.NEW


def test_given_same_order_a_month_later_when_submitted_then_still_duplicate(intake):
    first = submit_one(intake, T0, "+79123456789", "ZK-1")
    later = submit_one(intake, T0 + timedelta(days=31), "+79123456789", "ZK-1")
    assert (later.status, later.duplicate_of) == (LeadStatus.DUPLICATE, first.lead_id)


# ---- variant B

def test_given_phone_only_inside_the_window_when_submitted_then_duplicate(intake):
    first = submit_one(intake, T0, "9123456789")
    second = submit_one(intake, T0 + timedelta(hours=23), "9123456789")
    assert (second.status, second.duplicate_of) == (LeadStatus.DUPLICATE, first.lead_id)


def test_given_phone_only_outside_the_window_when_submitted_then_new(intake):
    submit_one(intake, T0, "9123456789")
    later = submit_one(intake, T0 + DAY + timedelta(seconds=1), "9123456789")
    assert later.status is LeadStatus.NEW


def test_given_phone_only_exactly_at_the_window_boundary_when_submitted_then_duplicate(db, intake):
    """The window is inclusive (leads/dedup.py): 24 h to the microsecond is still inside."""
    first = submit_one(intake, T0, "9123456789")
    at_boundary = submit_one(intake, T0 + DAY, "9123456789")
    assert (at_boundary.status, at_boundary.duplicate_of) == (LeadStatus.DUPLICATE, first.lead_id)
    assert stored(db, first.lead_id).received_at == T0   # the stored instant is exact, so is the boundary


def test_given_a_two_hour_window_when_phone_only_leads_arrive_then_that_window_applies(db):
    intake = Intake(db, dedup_window=timedelta(hours=2))
    submit_one(intake, T0, "9123456789")
    assert submit_one(intake, T0 + timedelta(hours=1), "9123456789").status is LeadStatus.DUPLICATE
    assert submit_one(intake, T0 + timedelta(hours=4), "9123456789").status is LeadStatus.NEW


def test_given_no_window_configured_when_phone_only_leads_arrive_then_the_default_is_24_hours(db):
    intake = Intake(db)
    submit_one(intake, T0, "9123456789")
    assert submit_one(intake, T0 + timedelta(hours=23), "9123456789").status is LeadStatus.DUPLICATE
    assert submit_one(intake, T0 + timedelta(hours=50), "9123456789").status is LeadStatus.NEW


def test_given_an_order_lead_when_phone_only_lead_arrives_in_window_then_duplicate_of_it(intake):
    """A and B look at every earlier lead with the phone, whatever its variant."""
    first = submit_one(intake, T0, "9123456789", "ZK-1")
    phone_only = submit_one(intake, T0 + timedelta(hours=1), "9123456789")
    assert (phone_only.status, phone_only.duplicate_of) == (LeadStatus.DUPLICATE, first.lead_id)


def test_given_a_phone_only_lead_when_an_order_lead_arrives_then_new(intake):
    submit_one(intake, T0, "9123456789")
    with_order = submit_one(intake, T0 + timedelta(hours=1), "9123456789", "ZK-1")
    assert with_order.status is LeadStatus.NEW


# ---- phone spellings

def test_given_three_spellings_of_one_number_when_submitted_then_one_customer(db, intake):
    outcomes = intake.submit([LeadIn("8 (912) 345-67-89"), LeadIn("+7 912 345 67 89"), LeadIn("9123456789")], T0)
    assert [o.status for o in outcomes] == [LeadStatus.NEW, LeadStatus.DUPLICATE, LeadStatus.DUPLICATE]
    assert {stored(db, o.lead_id).phone_e164 for o in outcomes} == {"+79123456789"}
    assert [stored(db, o.lead_id).phone_raw for o in outcomes] == ["8 (912) 345-67-89", "+7 912 345 67 89",
                                                                    "9123456789"]


def test_given_an_extension_when_submitted_then_it_is_kept_apart_from_the_number(db, intake):
    outcome = submit_one(intake, T0, "8 (495) 123-45-67 доб. 123")
    row = stored(db, outcome.lead_id)
    assert (row.phone_e164, row.phone_ext, row.status) == ("+74951234567", "123", "new")


# ---- DNC and invalid

def test_given_number_on_dnc_when_lead_arrives_then_stored_as_dnc(db, intake):
    with db.write() as session:
        session.add(DncEntry(phone_e164="+79123456789", reason="просил писать на почту", added_by="test",
                             added_at=T0))
    outcome = submit_one(intake, T0 + timedelta(minutes=1), "8 912 345 67 89", name="Анна")
    assert outcome.status is LeadStatus.DNC
    row = stored(db, outcome.lead_id)
    assert (row.status, row.name, row.phone_e164) == ("dnc", "Анна", "+79123456789")


def test_given_number_on_dnc_when_lead_would_be_a_duplicate_then_dnc_wins(db, intake):
    submit_one(intake, T0, "+79123456789")
    with db.write() as session:
        session.add(DncEntry(phone_e164="+79123456789", reason=None, added_by="test", added_at=T0))
    assert submit_one(intake, T0 + timedelta(minutes=1), "+79123456789").status is LeadStatus.DNC


@pytest.mark.parametrize("phone, reason", [
    (None, InvalidReason.NO_PHONE),
    ("", InvalidReason.NO_PHONE),
    ("   ", InvalidReason.NO_PHONE),
    ("позвоните мне", InvalidReason.UNPARSABLE),
    ("+7 000", InvalidReason.NOT_VALID),
    ("8 800 555-35-35", InvalidReason.NOT_CALLABLE_TYPE),
    ("9999999999", InvalidReason.FAKE),
    ("+7 (912) 345-67-8", InvalidReason.NOT_VALID),
])
def test_given_a_phone_that_cannot_be_called_when_submitted_then_stored_as_invalid_with_reason(
        db, intake, phone, reason):
    outcome = submit_one(intake, T0, phone, name="Тест")
    assert (outcome.status, outcome.reason) == (LeadStatus.INVALID, reason)
    row = stored(db, outcome.lead_id)
    assert (row.status, row.invalid_reason, row.phone_raw, row.name) == ("invalid", reason.value, phone, "Тест")


def test_given_invalid_leads_with_the_same_text_when_submitted_then_none_is_a_duplicate(intake):
    outcomes = intake.submit([LeadIn("9999999999"), LeadIn("9999999999")], T0)
    assert [o.status for o in outcomes] == [LeadStatus.INVALID, LeadStatus.INVALID]


# ---- batches

def test_given_a_batch_when_submitted_then_every_lead_is_stored_in_order_with_its_fields(db, intake):
    leads = [LeadIn("+79123456789", name="Иван Петров", order_number="ZK-1", product="Диван",
                    comment="после 18:00", preferred_time="вечером", timezone="Asia/Vladivostok",
                    region="Приморский край", extra={"utm_source": "яндекс"}, source="site-form"),
             LeadIn(None, name="без телефона"),
             LeadIn("+79123456789", order_number="ZK-1")]
    outcomes = intake.submit(leads, T0)
    assert [o.status for o in outcomes] == [LeadStatus.NEW, LeadStatus.INVALID, LeadStatus.DUPLICATE]
    assert count_leads(db) == 3
    assert len({o.lead_id for o in outcomes}) == 3
    row = stored(db, outcomes[0].lead_id)
    assert (row.name, row.product, row.comment, row.preferred_time, row.timezone, row.region, row.extra,
            row.source, row.received_at) == ("Иван Петров", "Диван", "после 18:00", "вечером", "Asia/Vladivostok",
                                             "Приморский край", {"utm_source": "яндекс"}, "site-form", T0)


def test_given_duplicates_inside_one_batch_when_submitted_then_they_link_to_the_first(intake):
    outcomes = intake.submit([LeadIn("+79123456789", order_number="ZK-1"), LeadIn("89123456789"),
                              LeadIn("9123456789", order_number="zk-1")], T0)
    first = outcomes[0]
    assert first.status is LeadStatus.NEW
    assert [(o.status, o.duplicate_of) for o in outcomes[1:]] == [(LeadStatus.DUPLICATE, first.lead_id)] * 2


def test_given_leads_at_0h_20h_40h_when_phone_only_then_the_window_runs_from_the_last_new_lead(intake):
    """Issue 12 / DESIGN §2 B: the 20 h lead is a duplicate of the 0 h one; the 40 h lead is 40 h after
    the last lead accepted as new, so it is new (a duplicate does not extend the window)."""
    original = submit_one(intake, T0, "9123456789")
    second = submit_one(intake, T0 + timedelta(hours=20), "9123456789")
    third = submit_one(intake, T0 + timedelta(hours=40), "9123456789")
    fourth = submit_one(intake, T0 + timedelta(hours=41), "9123456789")
    assert (second.status, second.duplicate_of) == (LeadStatus.DUPLICATE, original.lead_id)
    assert (third.status, third.duplicate_of) == (LeadStatus.NEW, None)
    assert (fourth.status, fourth.duplicate_of) == (LeadStatus.DUPLICATE, third.lead_id)


def test_given_a_naive_time_when_submitted_then_refused_and_nothing_stored(db, intake):
    with pytest.raises(ValueError, match="naive"):
        intake.submit([LeadIn("+79123456789")], datetime(2026, 11, 23, 12, 0))
    assert count_leads(db) == 0


def test_given_an_over_long_field_in_a_batch_when_submitted_then_the_whole_batch_is_refused(db, intake):
    with pytest.raises(ValueError, match="name is longer than 200"):
        intake.submit([LeadIn("+79123456789"), LeadIn("+79161234567", name="я" * 201)], T0)
    assert count_leads(db) == 0


def test_given_an_unknown_time_zone_when_submitted_then_refused_naming_it(db, intake):
    with pytest.raises(ValueError, match="Mars/Olympus"):
        intake.submit([LeadIn("+79123456789", timezone="Mars/Olympus")], T0)
    assert count_leads(db) == 0


def test_given_new_leads_when_submitted_then_the_listener_hears_only_the_new_ones(db):
    heard: list[list[int]] = []
    intake = Intake(db, dedup_window=DAY, on_new_leads=heard.append)
    outcomes = intake.submit([LeadIn("+79123456789"), LeadIn("+79123456789"), LeadIn("abc")], T0)
    assert heard == [[outcomes[0].lead_id]]


# ---- the same lead at the same moment

def test_given_identical_leads_at_the_same_moment_from_many_threads_then_exactly_one_is_new(db):
    threads_count = 10
    intake = Intake(db, dedup_window=DAY)
    barrier = threading.Barrier(threads_count)
    outcomes, errors = [], []
    lock = threading.Lock()

    def send(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            [outcome] = intake.submit([LeadIn("8 (912) 345-67-89", order_number="ZK-1", name=f"поток {i}")],
                                      utc(2026, 11, 23, 9, 0))
            with lock:
                outcomes.append(outcome)
        except Exception as exc:  # reported below: a thread's failure must fail the test
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sorted(o.status.value for o in outcomes) == ["duplicate"] * (threads_count - 1) + ["new"]
    [new] = [o for o in outcomes if o.status is LeadStatus.NEW]
    assert {o.duplicate_of for o in outcomes if o.status is LeadStatus.DUPLICATE} == {new.lead_id}
    assert count_leads(db) == threads_count
