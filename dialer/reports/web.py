"""The team-lead page's report view: the same KPIs and charts as `dialer report`, as HTML (Russian labels)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy.engine import Engine

from dialer.reports.kpi import Period
from dialer.reports.queries import compute_summary

LABELS = {
    "leads": "Заявок получено", "duplicates_pct": "Дубли, %", "fakes_pct": "Фейки / некорректные, %",
    "actual": "Актуальных заявок", "contact_rate_pct": "Дозвон (контакт), %",
    "attempts_to_contact": "Попыток до контакта", "confirmed": "Подтверждено заказов",
    "confirmed_pct": "Подтверждено, % от контактов", "refused": "Отказов", "order_sum": "Сумма заказов",
    "average_check": "Средний чек", "first_dial_p50_min": "До первого звонка p50, мин",
    "first_dial_p90_min": "До первого звонка p90, мин", "first_dial_max_min": "До первого звонка max, мин",
    "first_dial_15min_pct": "Первый звонок за 15 мин, %",
    "first_dial_15min_allowed_pct": "Первый звонок за 15 мин от разрешённого времени, %",
    "callbacks": "Перезвонов по договорённости", "callbacks_on_time_pct": "Перезвонили вовремя, %",
    "callbacks_overdue": "Перезвонов просрочено", "callback_late_avg_min": "Опоздание перезвона, мин (среднее)",
    "refused_not_interested": "Отказ: не интересно", "refused_dnc": "Отказ: не звонить",
    "refused_complaint": "Отказ: жалоба", "sla_alerts": "Сигналов SLA",
    "calls": "Звонков", "answer_rate_pct": "Ответили, %", "abandoned_pct": "Брошенных, % от отвеченных",
    "conversations": "Разговоров", "talk_min": "Разговор, мин", "wrapup_min": "Постобработка, мин",
    "worked_hours": "Часов в работе (операторы)", "calls_per_hour": "Звонков в час работы",
    "talk_min_per_hour": "Минут разговора в час работы", "occupancy_pct": "Занятость, %",
}
DAY_COLUMNS = ("leads", "actual", "contact_rate_pct", "confirmed", "confirmed_pct", "order_sum", "calls",
               "answer_rate_pct")


def _cell(value: Any) -> str:
    return "—" if value is None else escape(str(value))


def report_body(engine: Engine, period: Period, *, charts: bool = True, now: datetime | None = None) -> str:
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(period.zone)
    [total] = compute_summary(engine, period, now=now)
    days = compute_summary(engine, period, by=["day"], now=now)
    operators = compute_summary(engine, period, by=["operator"], now=now)
    kpis = "".join(f'<tr data-kpi="{k}"><th>{escape(label)}</th><td>{_cell(getattr(total, k))}</td></tr>'
                   for k, label in LABELS.items())
    head = "".join(f"<th>{escape(LABELS[c])}</th>" for c in DAY_COLUMNS)
    day_rows = "".join(f'<tr data-day="{escape(r.key["day"])}"><td>{escape(r.key["day"])}</td>'
                       + "".join(f"<td>{_cell(getattr(r, c))}</td>" for c in DAY_COLUMNS) + "</tr>" for r in days)
    op_rows = "".join(f'<tr data-operator="{escape(r.key["operator"], quote=True)}"><td>{escape(r.key["operator"])}</td>'
                      f"<td>{r.calls}</td><td>{r.conversations}</td>"
                      f"<td>{r.talk_min}</td><td>{r.call_orders}</td><td>{r.call_order_sum}</td>"
                      f"<td>{_cell(r.worked_hours)}</td><td>{_cell(r.talk_min_per_hour)}</td>"
                      f"<td>{_cell(r.occupancy_pct)}</td></tr>"
                      for r in operators)
    svg = _charts(engine, period, now) if charts else ""
    budget = _budget_line(engine, period, now)
    return (f'<section id="report"><h1>Отчёт</h1>'
            f'<form id="report-period" method="get"><label>С <input type="date" name="from" '
            f'value="{period.start.astimezone(tz):%Y-%m-%d}"></label> <label>по <input type="date" name="to" '
            f'value="{(period.end.astimezone(tz) - timedelta(microseconds=1)):%Y-%m-%d}"></label> <button type="submit">Показать</button> '
            f'<a href="/console/teamlead/report">сегодня</a> · <a href="/console/teamlead">смена</a></form>'
            f'<p class="muted" id="report-span">{period.start.astimezone(tz):%Y-%m-%d %H:%M} — '
            f'{period.end.astimezone(tz):%Y-%m-%d %H:%M} ({escape(period.zone)})</p>'
            f'{budget}<table id="report-kpis">{kpis}</table>'
            f'<h2>По дням</h2><table id="report-days"><tr><th>День</th>{head}</tr>{day_rows}</table>'
            f'<h2>По операторам</h2><table id="report-operators"><tr><th>Оператор</th><th>Звонков</th>'
            f'<th>Разговоров</th><th>Разговор, мин</th><th>Заказов</th><th>Сумма</th><th>Часов в работе</th>'
            f'<th>Минут разговора в час</th><th>Занятость, %</th></tr>{op_rows}</table>'
            f'<div id="report-charts">{svg}</div></section>')


BUDGET_WORDS = {"ok": "в норме", "near": "близко к пределу", "over": "превышен"}


def _budget_line(engine: Engine, period: Period, now: datetime | None) -> str:
    """The abandon budget as of now (not of the chosen period): what the pacing must respect today."""
    from sqlalchemy.orm import Session

    from dialer.reports.budget import read_budget
    from leads.policy.store import current_policy
    if now is None:
        return ""
    with Session(engine) as session:
        policy = current_policy(session)
    b = read_budget(engine, now, period.zone, policy)
    day = "—" if b.day_percent is None else f"{b.day_percent:g}%"
    window = "—" if b.window_percent is None else f"{b.window_percent:g}%"
    return (f'<p id="abandon-budget" data-state="{b.state}">Брошенные звонки: сегодня {day}, за {b.window_days} дн. '
            f'{window} при пределе {b.limit_percent:g}% от отвеченных — {BUDGET_WORDS[b.state]}</p>')


def _charts(engine: Engine, period: Period, now: datetime | None = None) -> str:
    import tempfile
    from pathlib import Path

    from dialer.reports.render import plot
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "charts.svg"
        plot(path, engine, period, now=now)
        text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


def period_from_query(start: str | None, end: str | None, now: datetime, zone: str) -> Period:
    """?from=&to= as the date inputs send them; the `to` date is included. Empty: today so far."""
    return Period.parse(start or None, end or None, now=now, zone=zone)
