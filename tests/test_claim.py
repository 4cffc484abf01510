"""The atomic claim and the results coming back, on a real SQLite file and a real PostgreSQL database."""

import threading
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import CallAttempt, Lead
from leads import dnc
from leads.operators import add_operator
from leads.policy.candidates import read_leads
from leads.policy.claim import claim_next
from leads.policy.queue import dial_queue, explain_lead, leads_at_risk, mark_sla_alerted
from leads.policy.results import record_attempt_result, release_expired_leases, renew_leases
from leads.policy.selector import next_lead
from leads.policy.sla import SlaState
from leads.policy.store import change_policy, current_policy, seed_policy
from leads.policy.why import Rule
from tests.conftest import moscow
from tests.policy_helpers import CENTER, MOBILE, VLADIVOSTOK, lead, store

ZONE = "Europe/Moscow"
NOON = moscow(2026, 11, 23, 12, 0)


def claim(db, at=NOON, daemon="daemon-a", operators=None):
    return claim_next(db, daemon_id=daemon, now=at, center_zone=ZONE, operators=operators)


def result(db, attempt_id, outcome, at):
    with db.write() as session:
        return record_attempt_result(session, attempt_id, outcome, at, center_zone=ZONE)


def lead_row(db, lead_id):
    with db.read() as session:
        return session.get(Lead, lead_id)


def mixed_set():
    return [
        lead(1, NOON - timedelta(days=2), status="retry", attempts_count=1, contacts_count=1,
             last_contact_at=NOON - timedelta(days=1), next_attempt_at=NOON - timedelta(hours=12)),   # follow-up
        lead(2, NOON - timedelta(hours=5), status="retry", attempts_count=3,
             next_attempt_at=NOON - timedelta(hours=1), last_result="busy"),                           # redial
        lead(3, NOON - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
             last_contact_at=NOON - timedelta(days=1), callback_at=NOON - timedelta(minutes=1)),       # callback
        lead(4, NOON - timedelta(hours=2), status="retry", attempts_count=1,
             next_attempt_at=NOON - timedelta(minutes=30), last_result="no_answer"),                   # second
        lead(5, NOON - timedelta(minutes=3)),                                                           # new
        lead(6, NOON - timedelta(minutes=9)),                                                           # new, older
        lead(7, NOON - timedelta(minutes=20), phone=VLADIVOSTOK),                                       # new
        lead(8, NOON - timedelta(days=1), status="closed", close_reason="confirmed", attempts_count=2),
        lead(9, NOON - timedelta(hours=1), status="retry", attempts_count=2,
             next_attempt_at=NOON + timedelta(minutes=5)),                                              # not yet
    ]


def test_given_mixed_set_then_claims_come_in_tier_and_deadline_order_and_match_the_queue(db):
    store(db, *mixed_set())
    queue = [entry.lead_id for entry in dial_queue(db, NOON, center_zone=ZONE)]
    claimed = []
    while (c := claim(db)) is not None:
        claimed.append((c.lead_id, c.tier))
    assert claimed == [(7, "new"), (6, "new"), (5, "new"), (4, "second_attempt"), (3, "callback"),
                       (2, "redial"), (1, "follow_up")]
    assert queue == [lead_id for lead_id, _ in claimed]


def test_given_night_leads_whose_own_zone_delays_them_then_claims_still_follow_the_deadline_order(db):
    # 30 Kaliningrad landline leads that arrived at night are due at 10:15 Kaliningrad = 11:15 Moscow:
    # after the Moscow night leads (10:15) and the morning leads due before 11:15, though they arrived
    # first. More of them wait at the head of the arrival order than a claim looks ahead (16).
    night = moscow(2026, 11, 22, 23, 0)
    kaliningrad = [lead(100 + i, night + timedelta(minutes=i), phone=f"+740121234{i:02d}") for i in range(30)]
    moscow_night = [lead(200 + i, night + timedelta(minutes=30 + i), phone=f"+791612345{i:02d}") for i in range(20)]
    morning = [lead(300 + i, moscow(2026, 11, 23, 10, 20) + timedelta(minutes=i), phone=f"+791712345{i:02d}")
               for i in range(40)]                                            # due 10:35 .. 11:14
    late_morning = [lead(400 + i, moscow(2026, 11, 23, 11, 0) + timedelta(minutes=i), phone=f"+791812345{i:02d}")
                    for i in range(10)]                                       # due 11:15 .. 11:24
    store(db, *kaliningrad, *moscow_night, *morning, *late_morning)
    expected = [f.id for f in (*moscow_night, *morning, *kaliningrad, *late_morning)]
    assert [entry.lead_id for entry in dial_queue(db, NOON, center_zone=ZONE, limit=200)] == expected

    claimed = []
    for n in range(len(expected) + 1):
        c = claim(db, at=NOON + timedelta(seconds=n))
        if c is None:
            break
        claimed.append(c.lead_id)
        if c.lead_id == 300:   # the first morning lead: the Kaliningrad leads were read and set aside
            from leads.policy.claim import _memory_of
            assert _memory_of(db).late.ids(current_policy(db), CENTER) >= {f.id for f in kaliningrad[:20]}
    assert claimed == expected


def test_given_claim_then_attempt_row_and_lease_are_written_in_the_same_transaction(db):
    store(db, lead(1, NOON - timedelta(minutes=2), phone_ext="123", name="Анна Иванова", product="Матрас Сон+"))
    c = claim(db, daemon="daemon-a")
    assert (c.lead_id, c.phone_e164, c.extension, c.attempt_no, c.tier) == (1, MOBILE, "123", 1, "new")
    assert (c.lead_name, c.product, c.ring_timeout_seconds, c.policy_version) == ("Анна Иванова", "Матрас Сон+", 30, 0)
    assert c.deadline == NOON + timedelta(minutes=13) and c.lease_expires_at == NOON + timedelta(minutes=5)
    with db.read() as session:
        attempt = session.get(CallAttempt, c.attempt_id)
        assert (attempt.state, attempt.attempt_no, attempt.tier, attempt.daemon_id, attempt.claimed_at) == \
            ("claimed", 1, "new", "daemon-a", NOON)
    row = lead_row(db, 1)
    assert (row.lease_owner, row.lease_expires_at) == ("daemon-a", NOON + timedelta(minutes=5))
    assert claim(db, daemon="daemon-b") is None


def test_given_quiet_hours_then_nothing_is_claimed(db):
    store(db, lead(1, moscow(2026, 11, 23, 21, 0)), lead(2, moscow(2026, 11, 23, 12, 0), phone=VLADIVOSTOK))
    assert claim(db, moscow(2026, 11, 23, 22, 0)) is None
    assert claim(db, moscow(2026, 11, 23, 16, 0)).lead_id == 1      # Vladivostok is at 23:00
    assert claim(db, moscow(2026, 11, 24, 10, 0)).lead_id == 2


def test_given_number_put_on_dnc_after_arrival_then_not_dialed_until_removed(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    dnc.add(db, "8 907 123-45-67", region="RU", reason="просил писать на почту", added_by="cli", now=NOON)
    assert claim(db) is None
    assert Rule.DNC in {b.rule for b in explain_lead(db, 1, NOON, center_zone=ZONE).verdict.blocks}
    dnc.remove(db, "+79071234567", region="RU", removed_by="cli")
    assert claim(db).lead_id == 1


def test_given_attempt_in_progress_then_lead_is_never_claimed_again_even_without_a_lease(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    first = claim(db)
    with db.write() as session:   # a lease lost by mistake must not let a second call start
        session.execute(update(Lead).where(Lead.id == 1).values(lease_owner=None, lease_expires_at=None))
    assert claim(db, NOON + timedelta(seconds=1)) is None
    explained = explain_lead(db, 1, NOON, center_zone=ZONE).verdict
    assert Rule.IN_PROGRESS in {b.rule for b in explained.blocks}
    result(db, first.attempt_id, "busy", NOON + timedelta(seconds=40))
    assert claim(db, NOON + timedelta(minutes=11)).attempt_no == 2


def test_given_result_then_lead_updated_lease_released_and_a_second_report_changes_nothing(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    c = claim(db)
    recorded = result(db, c.attempt_id, "busy", NOON + timedelta(seconds=30))
    assert (recorded.lead_status, recorded.counted, recorded.next_attempt_at) == \
        ("retry", True, NOON + timedelta(minutes=10, seconds=30))
    row = lead_row(db, 1)
    assert (row.attempts_count, row.last_result, row.lease_owner, row.first_dialed_at) == (1, "busy", None, NOON)
    again = result(db, c.attempt_id, "no_answer", NOON + timedelta(minutes=1))
    assert again.already_recorded and again.result == "busy"
    assert lead_row(db, 1).next_attempt_at == NOON + timedelta(minutes=10, seconds=30)
    with db.read() as session:
        assert session.get(CallAttempt, c.attempt_id).result == "busy"


def test_given_max_attempts_then_lead_closed_unreachable(db):
    seed(db)
    # issue 12: two attempts need a cap of one a day (spread over two days); the second is the next morning
    change_policy(db, {"max_attempts": "2", "max_attempts_per_day": "1"}, by="test", now=NOON)
    store(db, lead(1, NOON - timedelta(minutes=2)))
    first = claim(db)
    result(db, first.attempt_id, "no_answer", NOON)
    assert claim(db, NOON + timedelta(hours=3)) is None
    second = claim(db, moscow(2026, 11, 24, 10, 0))
    closed = result(db, second.attempt_id, "no_answer", moscow(2026, 11, 24, 10, 1))
    assert (closed.lead_status, closed.close_reason) == ("closed", "unreachable")
    assert claim(db, moscow(2026, 11, 25, 12, 0)) is None


def test_given_connected_then_contact_counted_and_next_contact_tomorrow(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    c = claim(db)
    result(db, c.attempt_id, "connected", NOON + timedelta(minutes=2))
    row = lead_row(db, 1)
    assert (row.status, row.contacts_count, row.last_contact_at) == ("retry", 1, NOON + timedelta(minutes=2))
    assert claim(db, NOON + timedelta(hours=5)) is None
    assert claim(db, moscow(2026, 11, 24, 10, 0)).tier == "follow_up"


def test_given_daemon_crashed_before_dialing_then_claim_comes_back_uncounted(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    lost = claim(db, daemon="crashed")
    assert claim(db, NOON + timedelta(minutes=4), daemon="daemon-b") is None
    back = claim(db, NOON + timedelta(minutes=5), daemon="daemon-b")
    assert (back.lead_id, back.attempt_no) == (1, 1)
    with db.read() as session:
        assert session.get(CallAttempt, lost.attempt_id).result == "cancelled"


def test_given_daemon_crashed_during_a_call_then_the_attempt_ends_unknown_and_counts(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    lost = claim(db, daemon="crashed")
    with db.write() as session:
        session.execute(update(CallAttempt).where(CallAttempt.id == lost.attempt_id)
                        .values(state="ringing", originated_at=NOON))
        released = release_expired_leases(session, NOON + timedelta(minutes=6), center_zone=ZONE)
    assert released == [1]
    row = lead_row(db, 1)
    assert (row.attempts_count, row.last_result, row.lease_owner) == (1, "unknown", None)
    assert row.next_attempt_at == NOON + timedelta(minutes=11)


def test_given_daemon_renews_its_leases_then_its_calls_stay_its_own(db):
    store(db, lead(1, NOON - timedelta(minutes=2)), lead(2, NOON - timedelta(minutes=1)))
    mine = claim(db, daemon="daemon-a")
    with db.write() as session:
        assert renew_leases(session, "daemon-a", NOON + timedelta(minutes=4)) == 1
    other = claim(db, NOON + timedelta(minutes=6), daemon="daemon-b")
    assert other.lead_id != mine.lead_id
    assert claim(db, NOON + timedelta(minutes=7), daemon="daemon-b") is None


def seed(db):
    with db.write() as session:
        seed_policy(session, NOON)


def test_given_free_operators_then_claim_names_one_by_the_distribution(db):
    anna = add_operator(db, name="Анна", interface="PJSIP/op1", now=NOON, skills=["Матрас Сон+"], level=1)
    ivan = add_operator(db, name="Иван", interface="PJSIP/op2", now=NOON, level=3)
    store(db, lead(1, NOON - timedelta(minutes=3), product="Матрас Сон+"), lead(2, NOON - timedelta(minutes=2)),
          lead(3, NOON - timedelta(minutes=1)))
    assert claim(db, operators=[]) is None
    first = claim(db, operators=["PJSIP/op1", "PJSIP/op2", "SIP/unknown"])
    assert (first.operator_interface, first.operator_id) == ("PJSIP/op1", anna.id)   # tie: lowest id
    second = claim(db, operators=["PJSIP/op1", "PJSIP/op2"])
    assert second.operator_interface == "PJSIP/op2"                                  # fewer calls today
    seed(db)
    change_policy(db, {"distribution": "skill"}, by="test", now=NOON)
    third = claim(db, operators=["PJSIP/op1", "PJSIP/op2"])
    assert third.operator_id == ivan.id and "highest level" in third.operator_reason
    assert claim(db, operators=None) is None


def test_given_callback_then_its_operator_first_and_anyone_after_10_minutes(db):
    anna = add_operator(db, name="Анна", interface="PJSIP/op1", now=NOON)
    add_operator(db, name="Иван", interface="PJSIP/op2", now=NOON)
    agreed = moscow(2026, 11, 23, 14, 0)
    store(db, lead(1, NOON - timedelta(days=1), status="callback", attempts_count=1, contacts_count=1,
                   last_contact_at=NOON - timedelta(days=1), callback_at=agreed, callback_operator_id=anna.id))
    assert claim(db, agreed - timedelta(minutes=1), operators=["PJSIP/op1"]) is None
    assert claim(db, agreed + timedelta(minutes=5), operators=["PJSIP/op2"]) is None
    later = claim(db, agreed + timedelta(minutes=10), operators=["PJSIP/op2"])
    assert (later.tier, later.operator_interface) == ("callback", "PJSIP/op2")
    result(db, later.attempt_id, "no_answer", agreed + timedelta(minutes=11))
    again = claim(db, agreed + timedelta(minutes=41), operators=["PJSIP/op1", "PJSIP/op2"])
    assert (again.tier, again.operator_id) == ("callback", anna.id)


def test_given_parallel_claimers_then_no_lead_is_claimed_twice(db_url):
    setup = Database(db_url)
    store(setup, *[lead(i, NOON - timedelta(minutes=10, seconds=i)) for i in range(1, 121)])
    setup.dispose()
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(6)   # all claimers begin together, so they really compete

    def claimer(n: int) -> None:
        own = Database(db_url)   # each claimer its own engine and sessions, like separate daemons
        try:
            own.engine.connect().close()   # connected before the race starts
            start.wait(timeout=60)
            while (c := claim_next(own, daemon_id=f"d{n}", now=NOON, center_zone=ZONE)) is not None:
                with lock:
                    claimed.append(c.lead_id)
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(claimed) == len(set(claimed)) == 120
    check = Database(db_url)
    with check.read() as session:
        assert session.scalar(select(func.count()).select_from(CallAttempt)) == 120
        if check.is_postgres:
            # row locks let claimers work side by side; on SQLite the busy handler may let the writer that
            # just committed win the lock again and again, which is correct, so only PostgreSQL asserts it
            assert session.scalar(select(func.count(func.distinct(Lead.lease_owner)))) > 1
    check.dispose()


def test_given_leads_waiting_then_at_risk_query_reports_near_and_past_deadlines(db):
    store(db,
          lead(1, moscow(2026, 11, 23, 11, 44)),                     # deadline 11:59: breached at 12:00
          lead(2, moscow(2026, 11, 23, 11, 50)),                     # deadline 12:05: at risk
          lead(3, moscow(2026, 11, 23, 11, 55)),                     # deadline 12:10: ok
          lead(4, moscow(2026, 11, 23, 11, 40), phone="+79161234567", on_dnc=True),   # never dialed anyway
          lead(5, moscow(2026, 11, 23, 11, 41), lease_owner="d", lease_expires_at=NOON + timedelta(minutes=1)),
          lead(6, moscow(2026, 11, 22, 23, 30)))                     # night lead: deadline 10:15, breached
    with db.read() as session:
        risks = leads_at_risk(session, NOON, center_zone=ZONE)
    assert [(r.lead_id, r.state) for r in risks] == [(6, SlaState.BREACHED), (1, SlaState.BREACHED),
                                                     (2, SlaState.AT_RISK)]
    with db.write() as session:
        assert mark_sla_alerted(session, [6, 1], NOON) == 2
    with db.read() as session:
        assert [r.lead_id for r in leads_at_risk(session, NOON, center_zone=ZONE, include_alerted=False)] == [2]


def test_given_variant_2_then_claims_new_first_then_fewest_attempts(db):
    seed(db)
    change_policy(db, {"tier_variant": "2"}, by="test", now=NOON)
    store(db, *mixed_set())
    order = []
    while (c := claim(db)) is not None:
        order.append(c.lead_id)
    assert order == [7, 6, 5, 4, 3, 1, 2]   # new by deadline; 1 attempt: 4 (11:30), 3 (11:59), 1 (24:00); 3 attempts


# --- the SQL prefilter never disagrees with the rules ----------------------------------------------

STATUSES = ["new", "new", "retry", "retry", "callback", "closed", "duplicate"]
PHONES = [MOBILE, VLADIVOSTOK, "+74012123456", "+79161234567", "+79031112233"]


@st.composite
def random_leads(draw):
    count = draw(st.integers(1, 8))
    minutes = st.integers(-36 * 60, 36 * 60)
    result = []
    for lead_id in range(1, count + 1):
        status = draw(st.sampled_from(STATUSES))
        received = NOON + timedelta(minutes=draw(minutes))
        attempts = 0 if status == "new" else draw(st.integers(1, 8))
        contacts = draw(st.integers(0, 2)) if status != "new" else 0
        result.append(lead(
            lead_id, received, status=status, phone=draw(st.sampled_from(PHONES)), attempts_count=attempts,
            contacts_count=contacts, last_contact_at=received + timedelta(hours=1) if contacts else None,
            next_attempt_at=NOON + timedelta(minutes=draw(minutes)) if status == "retry" else None,
            callback_at=NOON + timedelta(minutes=draw(minutes)) if status == "callback" else None,
            on_dnc=draw(st.booleans()) and draw(st.booleans()),
            attempt_in_progress=draw(st.integers(0, 5)) == 0))
    return result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_leads(), st.integers(-24 * 60, 24 * 60), st.sampled_from([1, 2]))
def test_claim_takes_exactly_the_lead_the_pure_selector_puts_first(tmp_path, leads, offset, variant):
    db = Database(f"sqlite:///{tmp_path / 'property.db'}")
    try:
        upgrade(db)
        with db.engine.begin() as conn:
            for table in ("call_attempts", "dnc", "leads", "policy_changes", "policy_versions"):
                conn.execute(text(f"DELETE FROM {table}"))
        seed(db)
        change_policy(db, {"tier_variant": str(variant)}, by="test", now=NOON)
        store(db, *leads)
        at = NOON + timedelta(minutes=offset)
        with db.read() as session:
            everything = read_leads(session, [Lead.id > 0])
        expected = next_lead(everything, at, current_policy(db), CENTER)
        got = claim(db, at)
        assert (got.lead_id if got else None) == (expected.lead.id if expected else None)
    finally:
        db.dispose()


def test_given_lead_left_out_in_its_night_when_quiet_hours_change_then_it_is_claimable_at_once(db):
    seed(db)
    store(db, lead(1, NOON, phone=VLADIVOSTOK), lead(2, NOON + timedelta(minutes=1)))
    at = moscow(2026, 11, 23, 16, 0)                   # 23:00 in Vladivostok
    assert claim(db, at).lead_id == 2                  # lead 1 read, found asleep, remembered
    assert claim(db, at + timedelta(seconds=1)) is None
    change_policy(db, {"quiet_start": "23:30"}, by="test", now=at, allow_short_quiet_hours=True)
    assert claim(db, at + timedelta(seconds=2)).lead_id == 1


def test_given_caller_holds_the_lead_as_an_orm_object_then_it_sees_the_recorded_result(db):
    store(db, lead(1, NOON - timedelta(minutes=2)))
    c = claim(db)
    with db.write() as session:
        loaded = session.get(Lead, 1)
        assert loaded.lease_owner == "daemon-a"
        record_attempt_result(session, c.attempt_id, "busy", NOON + timedelta(seconds=30), center_zone=ZONE)
        assert (loaded.status, loaded.attempts_count, loaded.lease_owner) == ("retry", 1, None)
