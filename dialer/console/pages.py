"""The console's HTML: page templates (dialer/web/templates, `$name` placeholders) and the fragments
that change live (the call card, the team-lead tables), rendered here with every value escaped.

The operator's page receives the call card as a ready HTML fragment in the server push, so the
page's JavaScript only puts it in place: one renderer, in Python.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from string import Template
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from dialer.console.auth import Identity
from dialer.console.cards import CallCard, DispositionSummary, PastCall
from dialer.console.switchboard import STATE_WORDS
from dialer.console.teamlead import TeamLeadView
from dialer.safety.csrf import current_token as current_csrf_token, with_tokens as with_csrf_tokens
from leads.attempt import DispositionKind
from scripts_catalog import RenderedScript

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"

KIND_WORDS = {
    DispositionKind.CONFIRMED.value: "Заказ подтверждён",
    DispositionKind.CALLBACK.value: "Перезвонить в согласованное время",
    DispositionKind.NOT_INTERESTED.value: "Не интересно",
    DispositionKind.WRONG_NUMBER.value: "Ошибочный номер",
    DispositionKind.FAKE.value: "Фейк: никто не заказывал",
    DispositionKind.DUPLICATE.value: "Дубль: уже оформлено",
    DispositionKind.DO_NOT_CALL.value: "Не звонить (в стоп-лист)",
    DispositionKind.COMPLAINT.value: "Жалоба",
    DispositionKind.NO_DECISION.value: "Без решения",
    DispositionKind.WRITE_INSTEAD.value: "Не звонить, писать на почту",
}
RESULT_WORDS = {
    "connected": "разговор", "no_answer": "нет ответа", "busy": "занято", "congestion": "перегрузка линии",
    "failed": "сбой", "invalid_number": "неверный номер", "rejected": "сбросил", "answering_machine": "автоответчик",
    "abandoned": "не дождался оператора", "cancelled": "отменён", "unknown": "неизвестно",
    "claimed": "в очереди на набор", "originated": "набор", "ringing": "звонит", "answered": "ответил",
    "ended": "завершён",
}
TIER_WORDS = {"new": "новый, ещё не звонили", "second_attempt": "вторая попытка", "callback": "перезвон в срок",
              "redial": "повторный набор", "follow_up": "следующий контакт"}
SLA_WORDS = {"ok": "в срок", "at_risk": "под угрозой", "breached": "просрочен"}


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


_TEMPLATES = {name: _template(name) for name in ("base.html", "login.html", "operator.html", "teamlead.html",
                                                 "forbidden.html")}


def h(value: Any) -> str:
    """Escaped text; None and empty as a dash."""
    if value is None or value == "":
        return "—"
    return escape(str(value), quote=True)


def when(at: datetime | None, zone: ZoneInfo) -> str:
    return "—" if at is None else at.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return ""
    minutes = int((now - at).total_seconds() // 60)
    if minutes < 1:
        return "только что"
    if minutes < 60:
        return f"{minutes} мин назад"
    hours = minutes // 60
    return f"{hours} ч {minutes % 60} мин назад" if hours < 48 else f"{hours // 24} дн назад"


def money(amount: Decimal | None, currency: str | None) -> str:
    if amount is None:
        return ""
    whole, _, cents = f"{amount:.2f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u00a0")
    return f"{grouped},{cents} {currency or ''}".strip()


def page(title: str, page_class: str, body: str) -> str:
    # safety (issue 17): the request's CSRF token in every POST form and in a meta tag for fetch()
    token = current_csrf_token.get()
    return with_csrf_tokens(_TEMPLATES["base.html"].substitute(title=escape(title), page=page_class, body=body,
                                                               csrf=escape(token, quote=True)), token)


# ---------------------------------------------------------------- pages

def login_page(*, error: str | None = None, login: str = "", next_url: str = "/console") -> str:
    box = f'<p class="error" role="alert" id="login-error">{escape(error)}</p>' if error else ""
    body = _TEMPLATES["login.html"].substitute(error=box, login=escape(login, quote=True),
                                               next=escape(next_url, quote=True))
    return page("Вход — консоль оператора", "login-page", body)


def forbidden_page(message: str, home: str) -> str:
    body = _TEMPLATES["forbidden.html"].substitute(message=escape(message), home=escape(home, quote=True))
    return page("Нет доступа", "login-page", body)


def operator_page(identity: Identity, state: str, config: dict[str, Any]) -> str:
    paused = state == "paused"
    body = _TEMPLATES["operator.html"].substitute(
        name=escape(identity.name), interface=escape(identity.interface or ""), state=escape(state, quote=True),
        state_words=escape(STATE_WORDS.get(state, state)), paused="true" if paused else "false",
        pause_words="Продолжить работу" if paused else "Пауза",
        config=json.dumps(config, ensure_ascii=False).replace("</", "<\\/"))
    return page(f"{identity.name} — консоль оператора", "operator-page", body)


def teamlead_page(identity: Identity, view: TeamLeadView, zone: ZoneInfo) -> str:
    body = _TEMPLATES["teamlead.html"].substitute(name=escape(identity.name), zone=escape(zone.key),
                                                  updated=f"{view.at.astimezone(zone):%H:%M:%S}",
                                                  live=teamlead_live(view, zone))
    return page("Смена — очередь, операторы, SLA", "teamlead-page", body)


# ---------------------------------------------------------------- the call card

def call_card(card: CallCard, zone: ZoneInfo, now: datetime, center_zone_name: str,
              topics: Sequence[str] = ()) -> str:
    return (f'<article class="card" id="card" data-attempt="{card.attempt_id}" data-lead="{card.lead_id}">'
            f'<div class="side">{_lead_section(card, zone, now)}'
            f'{_disposition_section(card, center_zone_name, topics)}</div>'
            f"{_script_section(card)}</article>")


def _zone_text(card: CallCard, now: datetime) -> str:
    """The customer's zone and local time (issue 12), and where the zone comes from."""
    if not card.customer_zones:
        return escape(f"{card.timezone or 'неизвестен'} ({card.zone_source or 'неизвестен'})")
    local = ", ".join(f"{name} — {now.astimezone(ZoneInfo(name)):%H:%M}" for name in card.customer_zones)
    return escape(f"{local} ({card.zone_source})")


def _lead_section(card: CallCard, zone: ZoneInfo, now: datetime) -> str:
    rows = [("Телефон", f'<span id="lead-phone">{h(card.phone)}</span>'),
            ("Заказ", f'<span id="lead-order">{h(card.order_number)}</span>'),
            ("Товар", f'<span id="lead-product">{h(card.product)}</span>'),
            ("Источник", h(card.source)),
            ("Заявка получена", f"{when(card.received_at, zone)} <span class=\"muted\">"
                                f"({escape(ago(card.received_at, now))})</span>")]
    for label, value in (("Удобное время", card.preferred_time), ("Регион", card.region)):
        if value:
            rows.append((label, h(value)))
    rows.append(("Часовой пояс клиента", f'<span id="lead-zone">{_zone_text(card, now)}</span>'))
    rows += [(escape(str(key)), h(value)) for key, value in card.extra.items() if key != "language"]
    if card.caller_id:
        rows.append(("Наш номер в звонке", f'<span id="lead-caller-id">{h(card.caller_id)}</span>'))
    if card.consent:
        rows.append(("Согласие", f'<span id="lead-consent">{h(card.consent)}</span>'))
    if card.emails:
        rows.append(("Письма", '<span id="lead-emails">' + "<br>".join(h(e) for e in card.emails) + "</span>"))
    if card.comment:
        rows.append(("Комментарий клиента", f'<span class="comment">{h(card.comment)}</span>'))
    details = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return (f'<section class="lead" id="lead-card"><h2 id="lead-name">{h(card.name)}</h2>'
            f'<p class="muted">Заявка №{card.lead_id} · звонок {card.attempt_id} · контакт {card.contact_number}</p>'
            f"<dl>{details}</dl><h3>Ранее</h3>{_history(card.history, zone)}</section>")


def _history(history: Iterable[PastCall], zone: ZoneInfo) -> str:
    lines = [f"<tr><td>{call.attempt_no}</td><td>{when(call.at, zone)}</td>"
             f"<td>{h(RESULT_WORDS.get(call.result, call.result))}</td><td>{h(call.operator)}</td>"
             f"<td>{_disposition_words(call.disposition, zone)}</td></tr>" for call in history]
    if not lines:
        return '<p class="muted" id="history-empty">Раньше не звонили.</p>'
    return ('<table class="history" id="history"><thead><tr><th>№</th><th>Когда</th><th>Итог звонка</th>'
            f"<th>Оператор</th><th>Результат, комментарий</th></tr></thead><tbody>{''.join(lines)}</tbody></table>")


def _disposition_words(d: DispositionSummary | None, zone: ZoneInfo) -> str:
    if d is None:
        return "—"
    parts = [h(KIND_WORDS.get(d.kind, d.kind))]
    if d.amount is not None:
        parts.append(escape(money(d.amount, d.currency)))
    if d.callback_at is not None:
        parts.append(f"на {when(d.callback_at, zone)}")
    text = ", ".join(parts)
    if d.comment:
        text += f' — <span class="comment">{h(d.comment)}</span>'
    return text


def _script_section(card: CallCard) -> str:
    choice = card.script
    script: RenderedScript | None = choice.script
    if script is None:
        return (f'<section class="script" id="script"><h2>Сценарий</h2>'
                f'<p class="error">Сценария нет: {h(choice.words or choice.problem)}</p></section>')
    stages = []
    for stage in script.stages:
        first, *others = stage.variants or ()
        more = "".join(f"<li>{_variant(v.label, v.text)}</li>" for v in others)
        alternatives = (f"<details><summary>Ещё варианты ({len(others)})</summary><ul>{more}</ul></details>"
                        if others else "")
        stages.append(f'<section class="stage" data-stage="{escape(stage.name, quote=True)}"><h3>{h(stage.title)}</h3>'
                      f"{_variant(first.label, first.text) if first else ''}{alternatives}</section>")
    faq = "".join(f'<details class="faq"><summary>{h(f.question)}</summary><p>{_lines(f.answer)}</p></details>'
                  for f in script.faq)
    missing = (f'<p class="warning">Нет данных для: {escape(", ".join(script.markers))}</p>' if script.markers else "")
    return (f'<section class="script" id="script" data-script="{escape(script.script_id, quote=True)}" '
            f'data-version="{script.version}"><h2 id="script-title">{h(script.title)}</h2>'
            f'<p class="muted">Сценарий {h(script.script_id)}, версия {script.version}. {h(choice.words or choice.reason)}</p>'
            f'<p class="goal">{_lines(script.goal)}</p>{missing}{"".join(stages)}'
            f'<h3>Вопросы и возражения</h3>{faq or "<p class=muted>—</p>"}'
            f'<form id="gap-form" class="gap"><label>Вопрос клиента, на который в сценарии нет ответа'
            f'<textarea name="question" id="gap-question" rows="2" maxlength="2000"></textarea></label>'
            f'<button type="submit" id="gap-button">Сценарий не покрывает этот вопрос</button>'
            f'<span id="gap-result" role="status"></span></form></section>')


def _variant(label: str | None, text: str) -> str:
    head = f'<span class="label">{h(label)}</span> ' if label else ""
    return f'<p class="variant">{head}{_lines(text)}</p>'


def _lines(text: str) -> str:
    return "<br>".join(escape(line) for line in text.strip().splitlines())


def _disposition_section(card: CallCard, center_zone_name: str, topics: Sequence[str] = ()) -> str:
    if card.disposition is not None:
        return (f'<section class="disposition done" id="disposition-done"><h2>Итог записан</h2>'
                f"<p>{_disposition_words(card.disposition, ZoneInfo(center_zone_name))}</p></section>")
    options = "".join(f'<option value="{kind}">{escape(words)}</option>' for kind, words in KIND_WORDS.items())
    topic_options = "".join(f'<option value="{escape(t, quote=True)}">{escape(t)}</option>' for t in topics)
    topic_field = (f'<label>Тема разговора <select name="topic" id="topic"><option value="">— без темы —</option>'
                   f'{topic_options}</select></label>' if topics else "")
    whose_time = (f"время клиента ({escape(card.timezone)})" if card.timezone
                  else f"время центра ({escape(center_zone_name)})")
    return f"""<section class="disposition" id="disposition"><h2>Итог разговора</h2>
<form id="disposition-form" data-attempt="{card.attempt_id}" novalidate>
<label>Результат <select name="kind" id="kind" required><option value="">— выберите —</option>{options}</select></label>
<div class="for-confirmed">
<label>Сумма заказа <input name="amount" id="amount" inputmode="decimal" autocomplete="off"></label>
<label>Валюта <input name="currency" id="currency" value="RUB" maxlength="3" size="4"></label></div>
<div class="for-callback"><label>Перезвонить (<span>{whose_time}</span>)
<input name="callback_at" id="callback-at" type="datetime-local"></label></div>
{topic_field}<label>Комментарий <textarea name="comment" id="comment" rows="2" maxlength="10000"></textarea></label>
<button type="submit" id="disposition-submit">Записать итог</button>
<p class="error" id="disposition-error" role="alert" hidden></p>
</form></section>"""


# ---------------------------------------------------------------- team-lead tables

def teamlead_live(view: TeamLeadView, zone: ZoneInfo) -> str:
    now = view.at
    queue = "".join(
        f"<tr><td>{e.position}</td><td>{e.lead_id}</td><td>{h(e.name)}</td><td>{h(e.product)}</td>"
        f"<td>{h(e.phone)}</td><td>{h(TIER_WORDS.get(e.tier, e.tier))} <span class=muted>({h(e.rank)})</span></td>"
        f"<td>{e.attempts}</td><td>{when(e.deadline, zone)}</td>"
        f'<td class="sla-{escape(e.sla or "none")}">{h(SLA_WORDS.get(e.sla or "", e.sla))}</td>'
        f"<td>{h(e.zone)}</td></tr>"
        for e in view.queue)
    operators = "".join(
        f'<tr data-interface="{escape(o.interface, quote=True)}"><td>{h(o.name)}</td><td>{h(o.interface)}</td>'
        f'<td><span class="state state-{escape(o.state)}">{h(STATE_WORDS.get(o.state, o.state))}</span></td>'
        f'<td>{"" if o.operator_id is not None else "не зарегистрирован в дайлере"}'
        f'{"" if o.active else "неактивен"}</td></tr>'
        for o in view.operators)
    calls = "".join(
        f"<tr><td>{c.attempt_id}</td><td>{c.lead_id}</td><td>{h(c.lead_name)}</td><td>{h(c.phone)}</td>"
        f"<td>{h(RESULT_WORDS.get(c.state, c.state))}</td><td>{h(c.operator)}</td>"
        f"<td>{when(c.claimed_at, zone)} <span class=muted>{escape(ago(c.claimed_at, now))}</span></td>"
        f"<td>{h(c.pbx)}</td></tr>"
        for c in view.calls)
    risks = "".join(
        f'<tr class="sla-{escape(r.risk.state.value)}"><td>{r.risk.lead_id}</td><td>{h(r.name)}</td>'
        f"<td>{h(r.product)}</td><td>{when(r.risk.received_at, zone)}</td><td>{when(r.risk.deadline, zone)}</td>"
        f"<td>{_left(r.risk.deadline, now)}</td><td>{h(SLA_WORDS.get(r.risk.state.value))}</td></tr>"
        for r in view.risks)
    return (f'<span id="live-at" hidden>{now.astimezone(zone):%H:%M:%S}</span>'
            + _table("queue", f"Очередь набора: следующие {len(view.queue)}",
                   ["#", "Заявка", "Имя", "Товар", "Телефон", "Почему (уровень)", "Попыток", "Срок", "SLA",
                    "Пояс"], queue, "Набирать некого: очередь пуста или сейчас тихие часы.")
            + _table("operators", "Операторы", ["Имя", "Телефон", "Состояние", ""], operators,
                     "Операторов нет: зарегистрируйте (dialer operators add) и добавьте в очередь Asterisk.")
            + _table("calls", f"Звонки сейчас: {len(view.calls)}", ["Звонок", "Заявка", "Имя", "Телефон",
                                                                     "Состояние", "Оператор", "Начат", "АТС"],
                     calls, "Сейчас звонков нет.")
            + _table("risks", f"Под угрозой SLA первого звонка: {len(view.risks)}",
                     ["Заявка", "Имя", "Товар", "Получена", "Срок", "Осталось", "Статус"], risks,
                     "Все новые заявки в срок."))


def _left(deadline: datetime, now: datetime) -> str:
    seconds = int((deadline - now).total_seconds())
    sign = "" if seconds >= 0 else "−"
    seconds = abs(seconds)
    return f"{sign}{seconds // 60}:{seconds % 60:02d}"


def _table(table_id: str, title: str, headers: list[str], rows: str, empty: str) -> str:
    head = "".join(f"<th>{escape(x)}</th>" for x in headers)
    body = rows or f'<tr class="empty"><td colspan="{len(headers)}">{escape(empty)}</td></tr>'
    return (f'<section class="panel"><h2>{escape(title)}</h2><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></section>")
