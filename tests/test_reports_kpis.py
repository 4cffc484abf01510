"""Reports (issue 13), the KPIs that need facts recorded as they happen: the 15-minute share from the moment
dialing was allowed, callbacks kept on time, operators' hours worked (occupancy, per-hour figures), refusals
by reason, the `script` breakdown. A hand-built day, 2026-11-25 in Moscow; every expected figure is worked
out by hand in the comments, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from dialer.reports import Period, compute_summary
from dialer.reports.groups import set_group
from dialer.reports.queries import compute_refusals
from kernel.db.models import CallAttempt, Disposition, Lead, Operator, OperatorPresence
from tests.conftest import moscow

DAY = Period.days(date(2026, 11, 25), date(2026, 11, 25), "Europe/Moscow")
M = timedelta(minutes=1)


def at(h, m=0, day=25):
    return moscow(2026, 11, day, h, m)


@pytest.fixture
def day(db):
    with db.write() as s:
        anna = Operator(name="Анна", interface="PJSIP/op1", skills=[], created_at=at(9, day=1))
        boris = Operator(name="Борис", interface="PJSIP/op2", skills=[], created_at=at(9, day=1))
        s.add_all([anna, boris])
        s.flush()

        def lead(name, received, **kw):
            row = Lead(received_at=received, source="site", name=name, status=kw.pop("status", "retry"),
                       phone_e164=f"+7999{sum(ord(c) for c in name) * 31 % 10**7:07d}", **kw)
            s.add(row)
            s.flush()
            return row

        def call(lead_row, no, claimed, *, tier="new", allowed=None, operator=None, talk=None, wrapup=None):
            connected = claimed + timedelta(seconds=10) if talk is not None else None
            ended = connected + talk if talk is not None else claimed + timedelta(seconds=30)
            row = CallAttempt(lead_id=lead_row.id, attempt_no=no, tier=tier, daemon_id="t", state="ended",
                              result="connected" if talk is not None else "no_answer", claimed_at=claimed,
                              originated_at=claimed, connected_at=connected, answered_at=connected, ended_at=ended,
                              operator_id=operator, dial_allowed_at=allowed,
                              wrapup_until=ended + wrapup if wrapup is not None else None)
            s.add(row)
            # what the results writer keeps on the lead (leads/policy/results.py)
            if lead_row.first_dialed_at == claimed:
                lead_row.first_dial_allowed_at = allowed
            if talk is not None and lead_row.first_contact_attempt_no is None:
                lead_row.first_contact_attempt_no = no
            s.flush()
            return row

        # First dials of the day's leads (arrival -> first dial; dial-allowed -> first dial):
        n1 = lead("N1", at(3), first_dialed_at=at(10, 10))     # night lead: 7 h 10 min; 10 min after 10:00
        call(n1, 1, at(10, 10), allowed=at(10))
        n2 = lead("N2", at(11), first_dialed_at=at(11, 20))    # 20 min; 20 min
        call(n2, 1, at(11, 20), allowed=at(11))
        n3 = lead("N3", at(12), first_dialed_at=at(12, 5))     # dialed before the moment was recorded: from arrival, 5
        call(n3, 1, at(12, 5), allowed=None)
        n4 = lead("N4", at(6), first_dialed_at=at(10, 30))     # 4 h 30 min; 30 min after 10:00
        call(n4, 1, at(10, 30), allowed=at(10))
        # -> dialed 4, within 15 of arrival: N3 (1, 25.0 %); of dial-allowed: N1, N3 (2, 50.0 %)

        # Refused leads of the day, by close reason (never dialed: they count as leads, not as dialed)
        for name, reason in (("R1", "not_interested"), ("R2", "dnc"), ("R3", "complaint"), ("R4", "not_interested")):
            lead(name, at(9), status="closed", close_reason=reason, closed_at=at(15))
        # -> refused 4: not interested 2, do not call 1, complaint 1

        # Callbacks promised for the 25th (leads from the 24th):
        c1 = lead("C1", at(9, day=24), status="callback", callback_at=at(11), first_dialed_at=at(9, day=24))
        call(c1, 2, at(11, 3), tier="callback", allowed=at(11))     # first dial of the promise: 3 min late
        call(c1, 3, at(11, 33), tier="callback", allowed=at(11))    # re-dial of the same promise: not counted
        c2 = lead("C2", at(9, day=24), status="callback", callback_at=at(12), first_dialed_at=at(9, day=24))
        call(c2, 2, at(12, 20), tier="callback", allowed=at(12))    # 20 min late
        lead("C3", at(9, day=24), status="callback", callback_at=at(13), first_dialed_at=at(9, day=24))  # no dial
        lead("C4", at(9, day=24), status="callback", callback_at=at(10, day=26), first_dialed_at=at(9, day=24))
        # -> callbacks 2, on time 1 (C1); overdue 1 (C3, once 13:00 has passed); late avg (3+20)/2 = 11.5, max 20

        # Conversations (an old lead, so they add nothing to the day's lead figures)
        old = lead("OLD", at(9, day=20), first_dialed_at=at(9, day=20))
        a1 = call(old, 5, at(10, 30), operator=anna.id, talk=10 * M, wrapup=2 * M)
        a2 = call(old, 6, at(13), operator=anna.id, talk=5 * M, wrapup=1 * M)
        b1 = call(old, 7, at(11), operator=boris.id, talk=20 * M)
        late = call(old, 4, at(23, 50, day=24), operator=boris.id, talk=1 * M)   # the 24th: its result the 25th
        # -> calls on the 25th: 7 without an operator + Анна 2 + Борис 1 = 10; talk 15 + 20 = 35 min, wrap-up 3

        def dispose(attempt, kind, created, topic=None, script=None, version=None):
            s.add(Disposition(attempt_id=attempt.id, lead_id=old.id, operator_id=attempt.operator_id, kind=kind,
                              topic=topic, script_id=script, script_version=version, recorded_by="t",
                              created_at=created))

        dispose(a1, "not_interested", at(10, 41), "цена", "vacuum", 2)
        dispose(a2, "not_interested", at(13, 6), "цена", "vacuum", 3)
        dispose(b1, "complaint", at(11, 21), "доставка")
        dispose(late, "do_not_call", at(0, 5))
        # -> refusals 4: not_interested/цена 2 (50.0), complaint/доставка 1 (25.0), do_not_call/- 1 (25.0)
        # -> by script: vacuum 2 calls, 15 talk min; (no script) 8 calls, 20 talk min

        # Presence (a state lasts until the operator's next row):
        for interface, state, when in (
                ("PJSIP/op1", "working", at(23, day=24)), ("PJSIP/op1", "offline", at(1)),   # 00:00-01:00 counts
                ("PJSIP/op1", "working", at(10)), ("PJSIP/op1", "paused", at(12)),
                ("PJSIP/op1", "working", at(12, 30)), ("PJSIP/op1", "offline", at(18)),
                ("PJSIP/op2", "working", at(20, day=24)), ("PJSIP/op2", "offline", at(21, day=24)),
                ("PJSIP/op2", "working", at(10)),                                            # until the end
                ("PJSIP/op9", "working", at(10)), ("PJSIP/op9", "offline", at(11))):         # not registered
            s.add(OperatorPresence(interface=interface, pbx="pbx1", state=state, at=when))
        # Анна: 1 + 2 + 5.5 = 8.5 h (to 14:00: 1 + 2 + 1.5 = 4.5 h); Борис: 10:00-24:00 14 h (to 14:00: 4 h);
        # PJSIP/op9: 1 h. In all 23.5 h (to 14:00: 9.5 h)
    set_group(db, "PJSIP/op1", "Команда А", now=at(9, day=1))
    return {"anna": anna.id, "boris": boris.id}


def test_first_dial_within_15_minutes_from_arrival_and_from_dial_allowed(db, day):
    [row] = compute_summary(db.engine, DAY)
    assert row.dialed == 4
    assert (row.first_dial_within_15, row.first_dial_15min_pct) == (1, 25.0)
    assert (row.first_dial_within_15_allowed, row.first_dial_15min_allowed_pct) == (2, 50.0)


def test_refusals_by_close_reason_and_by_topic(db, day):
    [row] = compute_summary(db.engine, DAY)
    assert (row.refused, row.refused_not_interested, row.refused_dnc, row.refused_complaint) == (4, 2, 1, 1)
    got = [(r.kind, r.topic, r.refusals, r.share_pct) for r in compute_refusals(db.engine, DAY)]
    assert got == [("not_interested", "цена", 2, 50.0), ("complaint", "доставка", 1, 25.0),
                   ("do_not_call", None, 1, 25.0)]


def test_callbacks_kept_on_time_and_their_lateness(db, day):
    [row] = compute_summary(db.engine, DAY, now=at(14))
    assert (row.callbacks, row.callbacks_on_time, row.callbacks_overdue) == (2, 1, 1)
    assert row.callbacks_on_time_pct == round(100 * 1 / 3, 1)
    assert (row.callback_late_avg_min, row.callback_late_max_min) == (11.5, 20.0)
    [early] = compute_summary(db.engine, DAY, now=at(12, 30))   # C3's 13:00 has not come yet
    assert early.callbacks_overdue == 0
    by_hour = {r.key["hour"]: r for r in compute_summary(db.engine, DAY, by="hour", now=at(14))}
    assert (by_hour[11].callbacks, by_hour[11].callbacks_on_time) == (1, 1)
    assert (by_hour[12].callbacks, by_hour[12].callbacks_on_time) == (1, 0)
    assert by_hour[13].callbacks_overdue == 1


def test_hours_worked_occupancy_and_per_hour_figures(db, day):
    [total] = compute_summary(db.engine, DAY)
    assert total.worked_hours == 23.5
    assert total.calls == 10
    assert (total.talk_min, total.wrapup_min) == (35.0, 3.0)
    assert total.calls_per_hour == round(10 / 23.5, 2)
    assert total.talk_min_per_hour == round(35 / 23.5, 2)
    assert total.occupancy_pct == round(100 * 38 / (23.5 * 60), 1)
    ops = {r.key["operator"]: r for r in compute_summary(db.engine, DAY, by="operator")}
    assert (ops["Анна"].worked_hours, ops["Анна"].calls, ops["Анна"].talk_min) == (8.5, 2, 15.0)
    assert ops["Анна"].talk_min_per_hour == round(15 / 8.5, 2)
    assert ops["Анна"].occupancy_pct == round(100 * 18 / 510, 1)
    assert ops["Анна"].call_orders == 0
    assert (ops["Борис"].worked_hours, ops["Борис"].talk_min_per_hour) == (14.0, round(20 / 14, 2))
    assert (ops["PJSIP/op9"].worked_hours, ops["PJSIP/op9"].calls) == (1.0, 0)
    assert ops["(no operator)"].worked_hours == 0.0 and ops["(no operator)"].talk_min_per_hour is None


def test_hours_worked_stop_at_now(db, day):
    ops = {r.key["operator"]: r for r in compute_summary(db.engine, DAY, by="operator", now=at(14))}
    assert (ops["Анна"].worked_hours, ops["Борис"].worked_hours) == (4.5, 4.0)


def test_hours_worked_by_group(db, day):
    groups = {r.key["group"]: r for r in compute_summary(db.engine, DAY, by="group")}
    assert (groups["Команда А"].worked_hours, groups["Команда А"].calls) == (8.5, 2)
    assert (groups["(no group)"].worked_hours, groups["(no group)"].calls) == (15.0, 8)


def test_breakdowns_that_cannot_split_hours_leave_them_empty(db, day):
    for row in compute_summary(db.engine, DAY, by="day"):
        assert row.worked_hours is None and row.occupancy_pct is None


def test_by_script(db, day):
    scripts = {r.key["script"]: r for r in compute_summary(db.engine, DAY, by="script")}
    assert (scripts["vacuum"].calls, scripts["vacuum"].talk_min) == (2, 15.0)
    assert (scripts["(no script)"].calls, scripts["(no script)"].talk_min) == (8, 20.0)
    assert scripts["vacuum"].leads is None   # a lead has no script: lead KPIs stay empty


# ---------------------------------------------------------------- recorded by the daemon as it happens

def test_the_daemon_records_operators_presence_and_the_first_calls_dial_allowed_moment(sqlite_db):
    """Against the simulated PBX over AMI: the presence rows come from what Asterisk says of its queue
    members, and a lead that arrived at night has its first call measured from 10:00, not from arrival."""
    import asyncio
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from dialer.pbx_sim.operators import OperatorSpec
    from kernel.clock import ManualClock
    from tests.daemon_harness import (all_ended, attempts, daemon_settings, make_pbx, post_leads, running_daemon,
                                      wait_until)
    db = sqlite_db
    moscow = ZoneInfo("Europe/Moscow")
    clock = ManualClock(datetime(2026, 11, 24, 23, 30, tzinfo=moscow))

    def presence():
        with db.read() as s:
            return [(r.interface, r.state, r.at) for r in s.scalars(
                select(OperatorPresence).order_by(OperatorPresence.id))]

    async def scenario():
        pbx = make_pbx([{"pattern": r".*", "outcome": "busy"}],
                       [OperatorSpec("PJSIP/op1", "Анна", talk=1, wrapup=0.1, ring=0.1),
                        OperatorSpec("PJSIP/op2", "Иван", talk=1, wrapup=0.1, ring=0.1, paused=True)])
        port = await pbx.start()
        settings = daemon_settings(str(db.engine.url), port)
        try:
            async with running_daemon(settings, db, clock) as daemon:
                await wait_until(lambda: len(presence()) >= 2, 30, what="the presence at connect")
                await post_leads(daemon.http_url, [{"phone": "+79124000001", "name": "Ночной"}])
                clock.set(datetime(2026, 11, 25, 10, 3, tzinfo=moscow))
                pbx.set_paused("PJSIP/op2", False)
                daemon.wake()
                await wait_until(lambda: all_ended(db, 1), 30, what="the morning call")
                await wait_until(lambda: len(presence()) >= 3, 30, what="op2 back at work")
        finally:
            await pbx.stop()

    asyncio.run(scenario())
    rows = presence()
    night = datetime(2026, 11, 24, 23, 30, tzinfo=moscow)
    assert sorted(rows[:2]) == [("PJSIP/op1", "working", night), ("PJSIP/op2", "paused", night)]
    assert rows[2:] == [("PJSIP/op2", "working", datetime(2026, 11, 25, 10, 3, tzinfo=moscow))]
    (attempt,) = attempts(db)
    assert attempt.claimed_at == datetime(2026, 11, 25, 10, 3, tzinfo=moscow)
    assert attempt.dial_allowed_at == datetime(2026, 11, 25, 10, 0, tzinfo=moscow)   # quiet hours ended at 10:00
    with db.read() as s:   # the results writer copied it onto the lead (the lead KPIs read it there)
        assert s.get(Lead, attempt.lead_id).first_dial_allowed_at == datetime(2026, 11, 25, 10, 0, tzinfo=moscow)


def test_the_results_writer_keeps_the_first_dial_and_the_first_conversation_on_the_lead(db):
    """Claim and results through the product's own path: a lead that arrived at 23:00 is first dialed at
    10:05 (allowed from 10:00); attempt 1 no answer, attempt 2 (at 16:00) a conversation, attempt 3 (three
    days later, past the cadence's wait) another one."""
    from leads.policy.claim import claim_next
    from leads.policy.results import record_attempt_result
    from tests.policy_helpers import lead, store
    store(db, lead(1, at(23, day=24)))
    facts = []
    for when, outcome in ((at(10, 5), "no_answer"), (at(16), "connected"), (at(16, day=28), "connected")):
        claimed = claim_next(db, daemon_id="d", now=when, center_zone="Europe/Moscow", operators=None)
        assert claimed is not None and claimed.lead_id == 1
        with db.write() as s:
            record_attempt_result(s, claimed.attempt_id, outcome, when + timedelta(minutes=1),
                                  center_zone="Europe/Moscow")
        with db.read() as s:
            row = s.get(Lead, 1)
            facts.append((row.first_dialed_at, row.first_dial_allowed_at, row.first_contact_attempt_no))
    assert facts == [(at(10, 5), at(10), None), (at(10, 5), at(10), 2), (at(10, 5), at(10), 2)]


# ---------------------------------------------------------------- the abandon budget (issue 15)

def test_the_abandon_budget_state_follows_the_limit_and_its_80_percent_margin():
    from dialer.reports.budget import AbandonBudget
    def state(day, window):   # (answered, abandoned) each; limit 3 %
        return AbandonBudget(3.0, 30, day[0], day[1], window[0], window[1]).state
    assert state((0, 0), (0, 0)) == "ok"                  # nothing answered yet
    assert state((100, 2), (1000, 20)) == "ok"            # 2.0 % < 2.4 %
    assert state((100, 2), (1000, 24)) == "near"          # 2.4 % = 80 % of 3 %
    assert state((100, 3), (1000, 10)) == "near"          # 3.0 % is within the limit
    assert state((100, 4), (1000, 10)) == "over"          # today 4 % > 3 %
    assert state((10, 0), (1000, 31)) == "over"           # the 30 days 3.1 % > 3 %


def test_the_abandon_budget_counts_today_and_the_rolling_window(db):
    from dialer.reports.budget import read_budget
    from leads.policy.values import DEFAULTS
    with db.write() as s:
        lead = Lead(received_at=at(9, day=1), source="site", status="retry", phone_e164="+79990000001")
        s.add(lead)
        s.flush()
        rows = [   # (day of November, result): answered = connected + abandoned
            (25, "connected"), (25, "connected"), (25, "abandoned"), (25, "no_answer"),   # today: 1 of 3
            (10, "connected"), (10, "connected"), (10, "connected"),                      # in the 30 days
            (10, "abandoned"),
            (1, "abandoned"), (1, "abandoned")]                                           # 24 days + 1: in
        for no, (day_, result) in enumerate(rows, start=1):
            claimed = at(11, day=day_)
            s.add(CallAttempt(lead_id=lead.id, attempt_no=no, daemon_id="t", state="ended", result=result,
                              claimed_at=claimed, ended_at=claimed + M,
                              answered_at=claimed if result in ("connected", "abandoned") else None,
                              connected_at=claimed if result == "connected" else None))
        s.add(CallAttempt(lead_id=lead.id, attempt_no=99, daemon_id="t", state="ended", result="abandoned",
                          claimed_at=at(11, day=24) - timedelta(days=31), ended_at=at(11, day=24) - timedelta(days=31),
                          answered_at=at(11, day=24) - timedelta(days=31)))                  # 31 days back: out
    budget = read_budget(db.engine, at(15), "Europe/Moscow", DEFAULTS)
    assert (budget.day_answered, budget.day_abandoned, budget.day_percent) == (3, 1, round(100 / 3, 2))
    # the 30 days before 2026-11-25 15:00: the 25th, the 10th and the 1st (from 2026-10-26 15:00 on)
    assert (budget.window_answered, budget.window_abandoned) == (3 + 4 + 2, 1 + 1 + 2)
    assert budget.state == "over"
