"""Reports (issue 13): every KPI of a hand-built dataset (tests/report_dataset.py), worked out by hand here,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from dialer.reports import Period, compute_results, compute_summary, parse_by
from dialer.reports.groups import group_history
from dialer.reports.kpi import zone_offsets
from kernel.errors import UsageError
from tests import report_dataset
from tests.conftest import moscow, utc

PERIOD = Period.days(date(2026, 11, 23), date(2026, 11, 24), "Europe/Moscow")


@pytest.fixture
def ids(db):
    return report_dataset.build(db)


def test_summary_every_kpi(db, ids):
    [row] = compute_summary(db.engine, PERIOD)
    # In the period arrived L1 L2 L3 L4 L5 L6 L7 L8 L10 (L9 on the 22nd, L11 on the 25th are outside).
    assert row.leads == 9
    assert row.duplicates == 2 and row.duplicates_pct == round(100 * 2 / 9, 1) == 22.2   # L3, L4 (dup of dup)
    assert row.fakes == 2 and row.fakes_pct == 22.2                                      # L5 invalid, L6 fake
    assert row.actual == 9 - 2 - 2 == 5                                                  # L1 L2 L7 L8 L10
    # Reached: L1 (attempt 2), L2 (1), L7 (3), L10 (1); L6 talked but is a fake, L8 never dialed
    assert row.contacted == 4 and row.contact_rate_pct == 80.0
    assert row.attempts_to_contact == (2 + 1 + 3 + 1) / 4
    # Confirmed: L1 12500, L2 0 (the -1 before it was refused and stored nothing), L10 3000
    assert row.confirmed == 3 and row.confirmed_pct == 75.0
    assert row.order_sum == Decimal("15500.00")
    assert row.average_check == Decimal("5166.67")          # 15500 / 3, the order of 0 counts
    assert row.refused == 1                                 # L7 not interested
    # First dial after arrival: L6 2, L1 5, L10 10, L2 30 (across midnight), L7 40 minutes
    assert row.dialed == 5
    assert row.first_dial_p50_min == 10.0                   # rank ceil(0.5 * 5) = 3
    assert row.first_dial_p90_min == 40.0                   # rank ceil(0.9 * 5) = 5
    assert row.first_dial_max_min == 40.0
    assert row.first_dial_within_15 == 3 and row.first_dial_15min_pct == 60.0
    assert row.sla_alerts == 1
    # Calls started in the period: L1#1 L1#2 L9#1 L6#1 L10#1 (23rd), L2#1 L7#1 L7#2 L7#3 (24th)
    assert row.calls == 9
    assert row.answered == 6 and row.answer_rate_pct == round(100 * 6 / 9, 1)   # L1#2 L6 L10 L2 L7#1 L7#3
    assert row.abandoned == 1 and row.abandoned_pct == round(100 / 6, 1)        # L7#1
    assert row.conversations == 5
    assert row.talk_min == 5 + 2 + 3 + 5 + 10
    assert row.wrapup_min == 1 + 0.5           # L1#2 1 min, L6#1 30 s
    assert row.call_orders == 3 and row.call_order_sum == Decimal("15500.00")


def test_by_day_lead_by_arrival_call_by_start(db, ids):
    day23, day24 = compute_summary(db.engine, PERIOD, by="day")
    assert day23.key == {"day": "2026-11-23"} and day24.key == {"day": "2026-11-24"}
    # L2 arrived on the 23rd 23:50: its lead counts there, its call (00:20) on the 24th
    assert (day23.leads, day23.duplicates, day23.fakes, day23.actual) == (7, 2, 2, 3)
    assert (day23.contacted, day23.confirmed, day23.order_sum) == (3, 3, Decimal("15500.00"))
    assert (day23.dialed, day23.first_dial_within_15) == (4, 3)          # 5, 30, 2, 10 minutes
    assert (day23.first_dial_p50_min, day23.first_dial_p90_min, day23.first_dial_max_min) == (5.0, 30.0, 30.0)
    assert (day23.calls, day23.answered, day23.conversations, day23.talk_min) == (5, 3, 3, 10.0)
    assert (day23.call_orders, day23.call_order_sum) == (2, Decimal("15500.00"))
    assert (day24.leads, day24.actual, day24.contacted, day24.confirmed, day24.refused) == (2, 2, 1, 0, 1)
    assert day24.confirmed_pct == 0.0 and day24.average_check is None
    assert (day24.first_dial_p50_min, day24.first_dial_within_15, day24.sla_alerts) == (40.0, 0, 1)
    assert (day24.calls, day24.answered, day24.abandoned, day24.conversations, day24.talk_min) == (4, 3, 1, 2, 15.0)
    assert (day24.call_orders, day24.call_order_sum) == (1, Decimal("0.00"))   # L2's order of 0


def test_by_group_follows_the_operator_over_time(db, ids):
    history = group_history(db, ids["anna"])
    assert [m.group for m in history] == ["Команда А", "Команда Б"]
    rows = {r.key["group"]: r for r in compute_summary(db.engine, PERIOD, by=["group"])}
    # Анна: L1#2 on the 23rd in А, L2#1 on the 24th in Б; Борис (А): L6, L10, L7#3; no operator: 4 calls
    assert set(rows) == {"Команда А", "Команда Б", "(no group)"}
    a, b, none = rows["Команда А"], rows["Команда Б"], rows["(no group)"]
    assert (a.calls, a.talk_min, a.call_orders, a.call_order_sum) == (4, 5 + 2 + 3 + 10, 2, Decimal("15500.00"))
    assert (b.calls, b.talk_min, b.call_orders, b.call_order_sum) == (1, 5.0, 1, Decimal("0.00"))
    assert (none.calls, none.answered, none.abandoned, none.talk_min) == (4, 1, 1, 0.0)
    assert a.leads is None       # leads are not split by team


def test_by_day_operator(db, ids):
    rows = {(r.key["day"], r.key["operator"]): r for r in compute_summary(db.engine, PERIOD, by="day,operator")}
    assert set(rows) == {("2026-11-23", "Анна"), ("2026-11-23", "Борис"), ("2026-11-23", "(no operator)"),
                         ("2026-11-24", "Анна"), ("2026-11-24", "Борис"), ("2026-11-24", "(no operator)")}
    assert (rows["2026-11-23", "Анна"].talk_min, rows["2026-11-23", "Анна"].wrapup_min) == (5.0, 1.0)
    assert rows["2026-11-23", "Анна"].call_order_sum == Decimal("12500.00")
    assert (rows["2026-11-23", "Борис"].calls, rows["2026-11-23", "Борис"].talk_min) == (2, 5.0)
    assert rows["2026-11-23", "Борис"].wrapup_min == 0.5
    assert (rows["2026-11-24", "Борис"].calls, rows["2026-11-24", "Борис"].talk_min) == (1, 10.0)
    assert (rows["2026-11-23", "(no operator)"].calls, rows["2026-11-24", "(no operator)"].calls) == (2, 2)


def test_by_attempt_weekday_source_product_hour(db, ids):
    by_attempt = {r.key["attempt"]: r for r in compute_summary(db.engine, PERIOD, by="attempt")}
    # attempt 1: L1 L9 L6 L10 L2 L7 (answered L6 L10 L2 L7); 2: L1 L7 (L1); 3: L7 (answered)
    assert {k: (r.calls, r.answered) for k, r in by_attempt.items()} == {1: (6, 4), 2: (2, 1), 3: (1, 1)}
    by_weekday = {r.key["weekday"]: r for r in compute_summary(db.engine, PERIOD, by="weekday")}
    assert {k: (r.leads, r.calls) for k, r in by_weekday.items()} == {1: (7, 5), 2: (2, 4)}   # Mon 23, Tue 24
    by_source = {r.key["source"]: r for r in compute_summary(db.engine, PERIOD, by="source")}
    assert {k: (r.leads, r.fakes, r.calls) for k, r in by_source.items()} == {"site": (8, 1, 8), "promo": (1, 1, 1)}
    by_product = {r.key["product"]: r for r in compute_summary(db.engine, PERIOD, by="product")}
    assert by_product["Роутер"].order_sum == Decimal("3000.00") and by_product["Роутер"].average_check == 3000
    assert by_product["Пылесос"].confirmed == 2 and by_product["Пылесос"].average_check == Decimal("6250.00")
    by_hour = {r.key["hour"]: r for r in compute_summary(db.engine, PERIOD, by="hour")}
    # calls at 10:05 10:30 10:10 (23rd) and 10:00 10:30 (24th); leads at 10:00 on both days
    assert (by_hour[10].calls, by_hour[10].answered, by_hour[10].leads) == (5, 2, 2)
    assert (by_hour[0].calls, by_hour[0].leads) == (1, 0)          # L2's call after midnight
    assert (by_hour[23].leads, by_hour[23].calls) == (1, 0)        # L2 arrived 23:50


def test_results_table(db, ids):
    rows = compute_results(db.engine, PERIOD)
    assert [(r.lead_name, r.kind, r.topic, r.amount) for r in rows] == [
        ("L7", "not_interested", "цена", None), ("L2", "confirmed", None, Decimal("0.00")),
        ("L10", "confirmed", "цена", Decimal("3000.00")), ("L6", "fake", None, None),
        ("L1", "confirmed", "доставка", Decimal("12500.00"))]
    assert rows[0].operator == "Борис" and rows[0].comment == "дорого"
    assert rows[0].script_gaps == ("Есть ли гарантия на мотор?",)
    assert [r.lead_name for r in compute_results(db.engine, PERIOD, kind="confirmed")] == ["L2", "L10", "L1"]


def test_topic_outside_the_list_is_refused():
    from leads.disposition import DispositionInput, DispositionRefused, parse_topics, validate
    topics = parse_topics(" Доставка ,цена,, цена ")
    assert topics == ("доставка", "цена")
    ok = validate(DispositionInput("not_interested", topic="  ЦЕНА "), now=utc(2026, 11, 24),
                  center_zone="Europe/Moscow", topics=topics)
    assert ok.topic == "цена"
    with pytest.raises(DispositionRefused, match="topic 'погода' is not in the list; one of: доставка, цена"):
        validate(DispositionInput("not_interested", topic="погода"), now=utc(2026, 11, 24),
                 center_zone="Europe/Moscow", topics=topics)
    assert validate(DispositionInput("fake"), now=utc(2026, 11, 24), center_zone="Europe/Moscow",
                    topics=topics).topic is None


def test_an_empty_period_reads_as_zeros(db):
    [row] = compute_summary(db.engine, PERIOD)
    assert (row.leads, row.actual, row.calls, row.order_sum) == (0, 0, 0, Decimal("0.00"))
    assert row.contact_rate_pct is None and row.average_check is None and row.first_dial_p50_min is None


def test_day_boundaries_follow_daylight_saving(db):
    """Berlin: 2026-10-25 has 25 hours; a lead at 23:30 local (21:30 UTC, +02 before the change is over)."""
    from kernel.db.models import Lead
    with db.write() as session:
        for at in (utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 22, 30), utc(2026, 10, 25, 23, 30)):
            session.add(Lead(received_at=at, source="s", status="new"))
    period = Period.days(date(2026, 10, 24), date(2026, 10, 26), "Europe/Berlin")
    # 24th 22:30Z = 25th 00:30 CEST; 25th 22:30Z = 25th 23:30 CET; 25th 23:30Z = 26th 00:30 CET
    assert {r.key["day"]: r.leads for r in compute_summary(db.engine, period, by="day")} == {
        "2026-10-25": 2, "2026-10-26": 1}


def test_zone_offsets_finds_the_change_to_the_second():
    offsets = zone_offsets("Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 27))
    assert offsets == [(utc(2026, 10, 25, 1, 0), 7200), (None, 3600)]


def test_bad_breakdown_and_period_refused():
    with pytest.raises(UsageError, match="unknown breakdown weekly"):
        parse_by("day,weekly")
    with pytest.raises(UsageError, match="before --from"):
        Period.days(date(2026, 11, 24), date(2026, 11, 23), "Europe/Moscow")
    with pytest.raises(UsageError, match="not a date"):
        Period.parse("вчера", None, now=utc(2026, 11, 24), zone="Europe/Moscow")
    with pytest.raises(UsageError, match="not a date"):
        Period.parse(None, "9999-12-31", now=utc(2026, 11, 24), zone="Europe/Moscow")


def test_glossary_in_readme_and_help_uses_the_same_words():
    from pathlib import Path
    from typer.testing import CliRunner
    from dialer.reports.cli import app
    from dialer.reports.kpi import GLOSSARY
    readme = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text(encoding="utf-8")
    shown = " ".join(CliRunner().invoke(app, ["--help"], terminal_width=200).output.split())
    for text in GLOSSARY.values():
        assert f"- {text}\n" in readme
        assert " ".join(text.split()) in shown


from hypothesis import given, settings as hsettings, strategies as st   # noqa: E402


@hsettings(max_examples=300, deadline=None)
@given(by=st.text(max_size=40), start=st.one_of(st.none(), st.text(max_size=30)),
       end=st.one_of(st.none(), st.text(max_size=30)))
def test_any_breakdown_or_period_text_is_taken_or_refused_with_a_reason(by, start, end):
    try:
        dims = parse_by(by)
        assert all(d in ("day", "hour", "weekday", "source", "product", "operator", "group", "attempt") for d in dims)
    except UsageError as exc:
        assert "unknown breakdown" in str(exc)
    try:
        period = Period.parse(start, end, now=utc(2026, 11, 24, 12), zone="Europe/Moscow")
        assert period.start < period.end
    except UsageError as exc:
        assert str(exc)
