"""`dialer simulate` (issue 15): a day on a virtual clock through the product's own intake, claim and results.

Expected figures are worked out by hand from the rules (arrival times, ring, talk and wrap-up), never
read from the code under test.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialer.simulate.customers import Behaviour
from dialer.simulate.day import DayPlan, simulate
from dialer.simulate.inputs import Arrival, constant_staffing, parse_shifts
from dialer.simulate.kpis import day_kpis
from dialer.simulate.strategies import Chooser, Strategy, parse_strategy
from kernel.errors import UsageError
from leads.attempt import DispositionKind
from leads.intake import LeadIn
from leads.policy.values import DEFAULTS

MOSCOW = ZoneInfo("Europe/Moscow")
DAY = date(2026, 11, 24)
PHONES = ["+7 916 123-45-01", "8 (916) 123-45-02", "+79161234503", "+7 916 123 45 04"]


def at(clock: str, day: date = DAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), MOSCOW)


def everyone_answers(**overrides) -> Behaviour:
    """Every call answered after 4 s, the operator takes it after 2 s, talks 60 s, wraps up 30 s, and
    records a confirmed order (the lead is closed: no later call)."""
    figures = dict(answer_by_hour={h: 1.0 for h in range(24)}, answer_by_attempt=(1.0,), answer_after=(4, 4),
                   operator_ring=(2, 2), talk=(60, 60), wrapup=(30, 30),
                   dispositions=((DispositionKind.CONFIRMED, 1.0),))
    figures.update(overrides)
    return Behaviour(**figures)


def day_of(arrivals: list[tuple[str, str]], strategy: Strategy, tmp_path: Path, *, operators: int = 1,
           behaviour: Behaviour | None = None, shifts: str | None = None, previous_evening: bool = False):
    leads = tuple(Arrival(at(t, DAY - timedelta(days=1)) if previous_evening and t >= "22:00" else at(t),
                          LeadIn(phone=phone, name="Анна")) for t, phone in arrivals)
    staffing = parse_shifts(shifts) if shifts else constant_staffing(operators, time(10), time(22))
    plan = DayPlan(DAY, "Europe/Moscow", leads, staffing, behaviour or everyone_answers())
    record, = simulate(plan, [strategy], tmp_path)
    return record


def first_dials(record) -> list[datetime]:
    return [lead.first_dialed_at.astimezone(MOSCOW) for lead in record.leads]


PROGRESSIVE = Strategy("progressive", DEFAULTS)
HOPPER = Strategy("fifo-hopper-60s", DEFAULTS, Chooser.HOPPER)


# ---------------------------------------------------------------- a day small enough to check by hand

def test_given_three_leads_one_operator_and_everyone_answering_when_simulated_then_dials_and_talk_are_as_worked_out(
        tmp_path):
    record = day_of([("10:00:00", PHONES[0]), ("10:00:30", PHONES[1]), ("10:01:00", PHONES[2])], PROGRESSIVE,
                    tmp_path)
    # lead 1: dialed on arrival 10:00:00, answered 10:00:04, operator 10:00:06, ends 10:01:06, wrap-up to 10:01:36
    # lead 2 (earlier deadline than lead 3): dialed 10:01:36, operator 10:01:42, ends 10:02:42, free 10:03:12
    # lead 3: dialed 10:03:12, operator 10:03:18, ends 10:04:18
    assert first_dials(record) == [at("10:00:00"), at("10:01:36"), at("10:03:12")]
    connected = [(a.connected_at.astimezone(MOSCOW), a.ended_at.astimezone(MOSCOW)) for a in record.attempts]
    assert connected == [(at("10:00:06"), at("10:01:06")), (at("10:01:42"), at("10:02:42")),
                         (at("10:03:18"), at("10:04:18"))]
    kpis = day_kpis(record)
    assert kpis.talk_min == 3.0                              # three 60 s conversations
    assert kpis.operator_hours == 12.0                       # one operator 10:00-22:00
    assert kpis.talk_min_per_operator_hour == 0.2            # 3 / 12 = 0.25 -> 0.2 (round half to even)
    assert (kpis.first_dial_p50_s, kpis.first_dial_p90_s) == (66.0, 132.0)   # waits 0, 66, 132 s: nearest rank
    assert (kpis.first_call_met_pct, kpis.sla_breaches) == (100.0, 0)
    assert (kpis.contact_rate_pct, kpis.attempts_per_contact, kpis.abandoned_pct) == (100.0, 1.0, 0.0)
    assert kpis.undialed_at_end == 0
    assert kpis.confirmed_pct == 100.0                       # each conversation ended in a confirmed order


def test_given_a_callback_when_the_customer_asks_for_one_then_the_product_calls_back_two_hours_later(tmp_path):
    behaviour = everyone_answers(dispositions=((DispositionKind.CALLBACK, 1.0),))
    record = day_of([("10:00:00", PHONES[0])], PROGRESSIVE, tmp_path, behaviour=behaviour)
    # talk ends 10:01:06, wrap-up to 10:01:36: the callback is agreed for 12:01:36 and dialed then (the
    # callback tier); each later conversation asks for another callback two hours on, until 22:00
    dials = [a.claimed_at.astimezone(MOSCOW) for a in record.attempts]
    assert dials[:2] == [at("10:00:00"), at("12:01:36")]
    assert dials[2] == at("14:03:12")                         # 12:01:36 + 96 s of call and wrap-up + 2 h


def test_given_a_duplicate_and_a_fake_when_simulated_then_the_intake_keeps_them_out_of_the_calls(tmp_path):
    record = day_of([("10:00:00", PHONES[0]), ("10:00:10", "8 916 123 45 01"), ("10:00:20", "12345")],
                    PROGRESSIVE, tmp_path)
    kpis = day_kpis(record)
    assert (kpis.leads, kpis.callable_leads, kpis.calls) == (3, 1, 1)


# ---------------------------------------------------------------- quiet hours

def test_given_a_lead_at_23_00_moscow_when_operators_start_at_8_then_it_is_first_dialed_at_10_00(tmp_path):
    record = day_of([("23:00:00", PHONES[0])], PROGRESSIVE, tmp_path, shifts="08-22:1", previous_evening=True)
    assert record.leads[0].received_at == at("23:00:00", DAY - timedelta(days=1))
    assert first_dials(record) == [at("10:00:00")]
    kpis = day_kpis(record)
    assert (kpis.first_dial_p50_s, kpis.first_call_met_pct) == (0.0, 100.0)   # due from 10:00, dialed then
    assert kpis.first_dial_15min_pct == 0.0                  # the report's figure counts from arrival: 11 h


def test_given_a_lead_at_21_59_and_one_at_22_00_when_simulated_then_the_first_is_dialed_and_the_second_is_not_the_day(
        tmp_path):
    record = day_of([("21:59:00", PHONES[0]), ("22:00:00", PHONES[1])], PROGRESSIVE, tmp_path)
    assert first_dials(record) == [at("21:59:00")]          # its call ends after 22:00: calls in progress finish
    assert len(record.leads) == 1                            # arriving at the close: outside the simulated day


# ---------------------------------------------------------------- the VICIdial-style hopper baseline

def test_given_the_hopper_when_leads_arrive_between_refills_then_they_wait_for_the_next_minute_in_arrival_order(
        tmp_path):
    behaviour = everyone_answers(operator_ring=(0, 0), wrapup=(0, 0))
    arrivals = [("10:00:10", PHONES[0]), ("10:00:20", PHONES[1]), ("10:01:05", PHONES[2])]
    record = day_of(arrivals, HOPPER, tmp_path, operators=3, behaviour=behaviour)
    # refill 10:01:00 holds the first two (arrival order) -> both dialed then; the third arrived at 10:01:05
    # with an operator free, but enters the hopper only at the 10:02:00 refill
    assert first_dials(record) == [at("10:01:00"), at("10:01:00"), at("10:02:00")]
    product = day_of(arrivals, PROGRESSIVE, tmp_path, operators=3, behaviour=behaviour)
    assert first_dials(product) == [at("10:00:10"), at("10:00:20"), at("10:01:05")]   # the claim: on arrival


def test_given_the_hopper_and_one_operator_when_calls_queue_then_they_go_in_arrival_order(tmp_path):
    behaviour = everyone_answers(operator_ring=(0, 0), wrapup=(0, 0))
    arrivals = [("10:00:10", PHONES[0]), ("10:00:20", PHONES[1]), ("10:01:05", PHONES[2])]
    record = day_of(arrivals, HOPPER, tmp_path, operators=1, behaviour=behaviour)
    # A: 10:01:00 -> answered 10:01:04, talks 60 s -> ends 10:02:04; B next (refill 10:02:00 holds B, C),
    # 10:02:04 -> ends 10:03:08; C: 10:03:08
    assert first_dials(record) == [at("10:01:00"), at("10:02:04"), at("10:03:08")]


# ---------------------------------------------------------------- determinism

def test_given_the_same_seed_when_run_twice_then_the_output_is_identical_and_another_seed_differs(run_cli):
    args = ["simulate", "--leads-count", "80", "--operators", "2", "--format", "json",
            "--policy", "progressive", "--policy", "fifo-hopper-60s"]
    first, second = run_cli(*args, "--seed", "3"), run_cli(*args, "--seed", "3")
    other = run_cli(*args, "--seed", "4")
    assert first[0] == second[0] == other[0] == 0, first[2]
    assert first[1] == second[1]
    assert first[1] != other[1]
    report = json.loads(first[1])
    assert [s["strategy"] for s in report["strategies"]] == ["progressive", "fifo-hopper-60s"]
    assert report["leads"] == 80


def test_given_a_csv_of_past_leads_when_simulated_then_its_arrival_times_are_used(run_cli, tmp_path):
    csv_file = tmp_path / "past.csv"
    csv_file.write_text("Телефон;Имя;received_at\n+7 916 123-45-01;Анна;2026-11-24T10:00:00+03:00\n"
                        "8 916 123 45 02;Иван;2026-11-24 10:05:00\n", encoding="utf-8")
    code, out, err = run_cli("simulate", "--leads", str(csv_file), "--operators", "1", "--format", "json",
                             "--policy", "progressive")
    assert code == 0, err
    report = json.loads(out)
    assert report["date"] == "2026-11-24" and report["leads"] == 2
    kpis = report["strategies"][0]
    assert (kpis["callable_leads"], kpis["first_dial_p50_s"]) == (2, 0.0)    # both dialed on arrival


# ---------------------------------------------------------------- bad inputs: one line, exit code 2

@pytest.mark.parametrize("args, message", [
    (["--shifts", "10-16"], "is not START-END:OPERATORS"),
    (["--shifts", "16-10:3"], "ends before it starts"),
    (["--shifts", "10-25:3"], "out of range"),
    (["--operators", "0"], "at least 1 operator"),
    (["--policy", "nonsense"], "unknown policy"),
    (["--policy", "missing.toml"], "no such file"),
    (["--talk", "abc"], "give seconds as LOW-HIGH"),
    (["--answer-rate", "1.5"], "between 0 and 1"),
    (["--date", "24.11.2026"], "YYYY-MM-DD"),
    (["--operators", "3", "--shifts", "10-22:3"], "not both"),
    (["--plot", "day.txt"], "give a .png or .svg"),
    (["--closes", "late"], "give a time of day"),
    (["--closes", "09:00"], "must close after it opens"),
    (["--shifts", ""], "is not START-END:OPERATORS"),
])
def test_given_a_bad_flag_when_simulating_then_one_line_and_exit_code_2(run_cli, args, message):
    code, out, err = run_cli("simulate", "--leads-count", "5", *args)
    assert code == 2 and message in err and "Traceback" not in err, (code, err)
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    (b"\x00\xff\xfe garbage \x89PNG", "not UTF-8"),
    (b"", "is empty"),
    (b"phone,name\n+79161234501,Anna\n", "no arrival-time column"),
    (b"name,received_at\nAnna,2026-11-24T10:00\n", "no phone column"),
    (b"phone,received_at\n+79161234501,yesterday\n", "is not a time"),
    (b"phone,received_at\n+79161234501,2026-11-24T10:00,extra\n", "has 3 fields"),
])
def test_given_a_garbage_csv_when_simulating_then_one_line_and_exit_code_2(run_cli, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    code, out, err = run_cli("simulate", "--leads", str(bad))
    assert code == 2 and message in err and "Traceback" not in err, (code, err)
    assert len(err.strip().splitlines()) == 1


def test_given_a_policy_file_when_parsed_then_its_keys_and_pacing_are_used_and_bad_keys_are_refused(tmp_path):
    good = tmp_path / "proposed.toml"
    good.write_text('first_call_minutes = 10\nretry_no_answer_minutes = "20"\n[simulate]\npacing = "predictive"\n')
    strategy = parse_strategy(str(good), lambda: DEFAULTS)
    assert (strategy.name, strategy.policy.first_call_minutes, strategy.policy.retry_no_answer_minutes,
            strategy.pacing.value) == ("proposed", 10, 20, "predictive")
    for text, message in [("max_attempts = 99\n", "max_attempts"), ("no_such_key = 1\n", "unknown policy key"),
                          ('quiet_start = "23:30"\n', "shorter than the legal"), ("= broken", "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(UsageError, match=message):
            parse_strategy(str(bad), lambda: DEFAULTS)


@pytest.fixture
def run_cli(cli_in_process, monkeypatch, tmp_path):
    """`dialer ...` in this process (cli.main): exit code, stdout, stderr; no store (the defaults)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIALER_DB_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    for name in [n for n in os.environ if n.startswith("DIALER_") and n != "DIALER_DB_URL"]:
        monkeypatch.delenv(name)
    return cli_in_process


# ---------------------------------------------------------------- predictive pacing and its abandon budget

from dialer.simulate.pacing import PredictivePacer, at_least  # noqa: E402

NOON = at("12:00:00")


def test_given_coin_flips_when_asking_for_at_least_k_then_the_poisson_binomial_is_exact():
    assert at_least([0.5, 0.5], 1) == 0.75            # 1 - 0.5 * 0.5
    assert at_least([0.5, 0.5], 2) == 0.25
    assert at_least([0.5, 0.5, 0.5], 2) == 0.5         # (3 + 1) / 8
    assert at_least([], 1) == 0.0 and at_least([0.3], 0) == 1.0


def test_given_room_in_the_budget_when_two_operators_are_free_then_two_calls_and_no_third():
    pacer = PredictivePacer(answered_today=100)          # headroom 2.4 abandons; answer rate prior 5/10 = 0.5
    # first call: P(>= 2 answers among none) = 0; second: among [0.5] = 0; third: among [0.5, 0.5] = 0.25 > 2%
    assert pacer.calls_to_place(NOON, free=2, soon=[], ringing=[]) == 2


def test_given_a_call_ringing_longer_than_every_measured_answer_when_pacing_then_its_operator_gets_another_call():
    pacer = PredictivePacer(answered_today=100)
    for _ in range(20):
        pacer.dialed(5.0)                                # 20 calls, all answered after 5 s: rate 25/30
    assert pacer.calls_to_place(NOON, free=1, soon=[], ringing=[6.0]) == 1   # rung 6 s: no longer answered
    assert pacer.calls_to_place(NOON, free=1, soon=[], ringing=[4.0]) == 0   # may still answer: P = 25/30


def test_given_the_days_abandons_at_80_percent_of_3_percent_when_pacing_then_it_falls_back_to_progressive():
    pacer = PredictivePacer(answered_today=100, abandoned_today=3)   # 3 > 0.024 * 100
    assert pacer.headroom() < 0
    assert pacer.calls_to_place(NOON, free=3, soon=[1.0], ringing=[20.0]) == 2   # free 3 - 1 ringing
    assert pacer.fallbacks == 1


def test_given_the_rolling_30_days_over_the_margin_when_today_is_clean_then_it_still_falls_back():
    pacer = PredictivePacer(past_answered=1000, past_abandoned=29, answered_today=10)
    # today: 0.024 * 10 - 0 = 0.24 left; 30 days: 0.024 * 1010 - 29 = -4.76
    assert pacer.headroom() < 0
    assert pacer.calls_to_place(NOON, free=1, soon=[], ringing=[]) == 1


def test_given_a_thin_staffed_day_when_paced_predictively_then_abandoned_stays_within_3_percent(tmp_path):
    from dialer.simulate.inputs import synthetic_arrivals
    arrivals = tuple(synthetic_arrivals(300, DAY, MOSCOW, seed=5))
    plan = DayPlan(DAY, "Europe/Moscow", arrivals, constant_staffing(2, time(10), time(22)), seed=5)
    predictive, progressive = (day_kpis(r) for r in simulate(plan, [
        Strategy("predictive", DEFAULTS, pacing=parse_strategy("predictive", lambda: DEFAULTS).pacing),
        PROGRESSIVE], tmp_path))
    assert predictive.answered > 100
    assert predictive.abandoned_pct <= 3.0
    assert progressive.abandoned == 0                     # progressive holds the operator: never an abandon


def test_given_a_night_backlog_of_40_leads_when_one_operator_works_it_then_hour_10_is_queued_and_its_talk_is_as_worked_out(
        tmp_path):
    arrivals = [(f"09:{n:02d}:00", f"+7916123{n:04d}") for n in range(40)]
    record = day_of(arrivals, PROGRESSIVE, tmp_path)
    # each lead holds the operator 4 s ring + 2 s + 60 s talk + 30 s wrap-up = 96 s: lead k dialed at
    # 10:00 + 96 (k - 1) s; the 40th at 11:02:24, so in the middle of every 5 minutes of hour 10 (10:02:30
    # ... 10:57:30) a lead has waited since 10:00 (over 2 minutes), and none at 11:02:30. Talk inside 10:00-11:00: 37 whole conversations + the 38th from 10:59:18 = 42 s.
    assert first_dials(record)[-1] == at("11:02:24")
    kpis = day_kpis(record)
    assert kpis.queued_hours == 1
    assert kpis.talk_min_per_queued_operator_hour == round((37 * 60 + 42) / 60, 1)   # 37.7


# ---------------------------------------------------------------- --calibrate

def test_given_a_store_whose_calls_all_answered_after_4_s_when_calibrating_then_the_figures_come_back(tmp_path):
    from dialer.simulate.calibrate import calls_of_store, fit_behaviour
    from kernel.db.engine import Database
    arrivals = [(f"09:{n:02d}:00", f"+7916123{n:04d}") for n in range(40)]
    day_of(arrivals, PROGRESSIVE, tmp_path)                 # leaves its store in tmp_path/progressive.db
    db = Database(f"sqlite:///{tmp_path / 'progressive.db'}")
    calls = calls_of_store(db)
    db.dispose()
    assert len(calls) == 40
    fitted = fit_behaviour(calls, MOSCOW)
    # 40 first attempts, all answered 4 s after the Originate, 60 s talks, 30 s wrap-ups (everyone_answers)
    assert (fitted.answer_after, fitted.talk, fitted.wrapup) == ((4.0, 4.0), (60.0, 60.0), (30.0, 30.0))
    assert fitted.answer_probability(10, 1) == 1.0 and fitted.answer_probability(15, 1) == 1.0   # all-day figure
    assert fitted.answer_by_attempt[1:] == Behaviour().answer_by_attempt[1:]   # no second attempts: defaults


def test_given_no_store_when_calibrating_then_one_line_and_exit_code_2(run_cli):
    code, out, err = run_cli("simulate", "--leads-count", "5", "--calibrate")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- several days on one store

def test_given_two_days_when_a_lead_arrives_after_the_close_and_another_is_not_answered_then_both_are_dialed_next_morning(
        tmp_path):
    from dialer.pbx_sim.scenarios import Outcome
    nobody = Behaviour(answer_by_hour={h: 0.0 for h in range(24)}, not_answered=((Outcome.NO_ANSWER, 1.0),))
    arrivals = (Arrival(at("21:00:00"), LeadIn(phone=PHONES[0])), Arrival(at("22:30:00"), LeadIn(phone=PHONES[1])))
    plan = DayPlan(DAY, "Europe/Moscow", arrivals, constant_staffing(1, time(10), time(22)), nobody, days=2)
    record, = simulate(plan, [PROGRESSIVE], tmp_path)
    tomorrow = DAY + timedelta(days=1)
    # B (21:00) rings 30 s unanswered; after no answer the next attempt waits for the next part of the
    # day: after 17:00-22:00 that is tomorrow's 10:00-13:00. A (22:30, after the close) waits for 10:00
    # too; at 10:00 the new lead goes first (tier new before second_attempt), B after A's 30 s of ringing.
    dials = sorted((a.claimed_at.astimezone(MOSCOW), a.lead_id, a.attempt_no) for a in record.attempts)
    assert [(t, n) for t, _, n in dials][:3] == [(at("21:00:00"), 1), (at("10:00:00", tomorrow), 1),
                                                 (at("10:00:30", tomorrow), 2)]
    assert all(t.date() == tomorrow and t.time() >= time(13) for t, _, _ in dials[3:])   # the next parts
    assert day_kpis(record).operator_hours == 24.0


def test_given_two_processes_with_different_hash_seeds_when_simulating_then_the_json_is_byte_identical(tmp_path):
    import subprocess
    import sys
    args = [sys.executable, "-m", "cli", "simulate", "--leads-count", "60", "--operators", "2", "--format", "json",
            "--seed", "9", "--policy", "progressive", "--policy", "predictive"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env["DIALER_DB_URL"] = f"sqlite:///{tmp_path / 'absent.db'}"
    root = str(Path(__file__).resolve().parent.parent)
    outputs = [subprocess.run(args, cwd=root, env={**env, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                              timeout=120) for seed in ("1", "2")]
    assert [o.returncode for o in outputs] == [0, 0], outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout and '"strategy": "predictive"' in outputs[0].stdout


# ---------------------------------------------------------------- --from-db: the store's own leads

def test_given_a_store_with_leads_when_simulating_from_db_then_the_periods_leads_arrive_again(run_cli, tmp_path,
                                                                                             monkeypatch):
    from kernel.db.engine import Database
    from kernel.db.migrate import upgrade
    from leads.intake import Intake
    store = tmp_path / "store.db"
    db = Database(f"sqlite:///{store}")
    upgrade(db)
    intake = Intake(db)
    for when, phone in [(at("21:00:00", DAY - timedelta(days=1)), PHONES[0]),   # before the window: not read
                        (at("23:00:00", DAY - timedelta(days=1)), PHONES[1]),   # the night before: read
                        (at("10:00:00"), PHONES[2]), (at("10:00:30"), "8 916 123 45 03")]:   # a duplicate
        intake.submit([LeadIn(phone=phone, name="Анна")], when)
    db.dispose()
    monkeypatch.setenv("DIALER_DB_URL", f"sqlite:///{store}")
    code, out, err = run_cli("simulate", "--from-db", "--to", "2026-11-24", "--operators", "1", "--format", "json",
                             "--policy", "progressive")
    assert code == 0, err
    report = json.loads(out)
    kpis = report["strategies"][0]
    assert (report["leads"], kpis["callable_leads"], report["days"]) == (3, 2, 1)   # the duplicate found again
    code, out, err = run_cli("simulate", "--from-db", "--from", "2026-11-25", "--to", "2026-11-25")
    assert code == 2 and "no lead received" in err


def test_given_from_db_without_to_or_with_a_csv_when_simulating_then_one_line_and_exit_code_2(run_cli, tmp_path):
    for args, message in [(["--from-db"], "needs --to"), (["--to", "2026-11-24"], "go with --from-db"),
                          (["--from-db", "--to", "2026-11-24"], "does not exist"),
                          (["--from-db", "--to", "2026-11-24", "--leads", "x.csv"], "not both")]:
        code, out, err = run_cli("simulate", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
