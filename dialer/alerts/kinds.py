"""What each alert kind means, and the text a person reads: what happened, what to do, where to look.

Alert texts are for the call center's team lead and the store owner, so they are in Russian like the
operator console; each item shows the lead's masked phone, never the whole number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

MAX_ITEMS = 10   # a grouped notice lists this many alerts, then says how many more


class AlertKind(StrEnum):
    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"
    COMPLAINT = "complaint"
    LARGE_ORDER = "large_order"
    UNREACHABLE = "unreachable_after_all_attempts"
    ABANDON_RATE = "abandon_rate_above"
    AMI_DOWN = "ami_down"
    CRM_DEAD_LETTERS = "crm_dead_letters"


class Channel(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class KindText:
    meaning: str      # English, for --help and the README
    title: str        # the notice's subject, {n} = how many alerts it carries
    todo: str         # what the reader should do


KINDS: dict[AlertKind, KindText] = {
    AlertKind.SLA_AT_RISK: KindText(
        "a new lead is not dialed yet and its first-call deadline is near",
        "Заявки под угрозой срыва срока первого звонка: {n}",
        "освободите оператора или позвоните клиенту вручную до срока"),
    AlertKind.SLA_BREACHED: KindText(
        "a new lead's first-call deadline passed and it is still not dialed",
        "Срок первого звонка пропущен: {n}",
        "позвоните клиенту сейчас; проверьте, хватает ли операторов на смене"),
    AlertKind.COMPLAINT: KindText(
        "an operator recorded a complaint",
        "Жалоба клиента: {n}",
        "перезвоните клиенту сегодня, разберите разговор по записи"),
    AlertKind.LARGE_ORDER: KindText(
        "an order was confirmed for at least the rule's amount",
        "Крупный заказ подтверждён: {n}",
        "проверьте наличие и доставку, при необходимости свяжитесь с клиентом лично"),
    AlertKind.UNREACHABLE: KindText(
        "a lead was closed as unreachable after its last allowed attempt",
        "Не дозвонились после всех попыток: {n}",
        "напишите клиенту или передайте заявку в магазин; цепочка писем запустится сама, если включена"),
    AlertKind.ABANDON_RATE: KindText(
        "today's abandoned calls (answered, no operator in time) rose above the rule's percent of answered calls",
        "Доля брошенных звонков выше порога",
        "снизьте темп набора или добавьте операторов на линию"),
    AlertKind.AMI_DOWN: KindText(
        "the daemon has had no AMI connection to Asterisk for alerts.ami_down_seconds",
        "Нет связи с АТС",
        "звонки не идут: проверьте Asterisk и сеть, запустите `dialer doctor`"),
    AlertKind.CRM_DEAD_LETTERS: KindText(
        "a call outcome could not be delivered to the CRM and became a dead letter",
        "Результаты звонков не доставлены в CRM: {n}",
        "проверьте CRM и `crm.webhook_url`, затем отправьте снова: `dialer crm dead`, `dialer crm retry`"),
}


def kind_of(value: str) -> AlertKind:
    try:
        return AlertKind(value)
    except ValueError:
        raise ValueError(f"unknown alert kind {value!r}; known: {', '.join(k.value for k in AlertKind)}") from None


def _when(value: Any, zone: ZoneInfo) -> str:
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.astimezone(zone).strftime("%d.%m %H:%M")


def item_line(kind: AlertKind, facts: Mapping[str, Any], zone: ZoneInfo) -> str:
    """One alert in a notice: the lead and the fact that matters for this kind."""
    lead = f"заявка {facts['lead_id']}" if facts.get("lead_id") is not None else ""
    phone = facts.get("phone_masked") or ""
    who = ", ".join(x for x in (lead, phone) if x)
    if facts.get("order_number"):
        who += f", заказ {facts['order_number']}"
    if kind in (AlertKind.SLA_AT_RISK, AlertKind.SLA_BREACHED):
        return f"{who}: срок {_when(facts.get('deadline'), zone)}"
    if kind is AlertKind.COMPLAINT:
        comment = facts.get("comment") or "без комментария"
        operator = f" (оператор {facts['operator']})" if facts.get("operator") else ""
        return f"{who}{operator}: «{comment}»"
    if kind is AlertKind.LARGE_ORDER:
        return f"{who}: {facts.get('amount')} {facts.get('currency') or ''}".rstrip()
    if kind is AlertKind.UNREACHABLE:
        return f"{who}: попыток {facts.get('attempts')}"
    if kind is AlertKind.ABANDON_RATE:
        return (f"{facts.get('day')}: брошено {facts.get('abandoned')} из {facts.get('answered')} отвеченных "
                f"({facts.get('percent')}%, порог {facts.get('threshold')}%)")
    if kind is AlertKind.AMI_DOWN:
        return f"АТС {facts.get('pbx')}: нет связи с {_when(facts.get('since'), zone)}"
    if kind is AlertKind.CRM_DEAD_LETTERS:
        return f"{who or 'результат ' + str(facts.get('outbox_id'))}: {facts.get('error') or ''}".rstrip(": ")
    return who


def notice_text(kind: AlertKind, alerts: Sequence[Mapping[str, Any]], link: str, zone: ZoneInfo,
                test: bool = False) -> tuple[str, str]:
    """(subject, body) of one notice carrying `alerts` of one kind."""
    text = KINDS[kind]
    subject = text.title.format(n=len(alerts))
    if test:
        subject = "Проверка оповещений: " + subject
    lines = [subject, ""]
    lines += [f"• {item_line(kind, facts, zone)}" for facts in alerts[:MAX_ITEMS]]
    if len(alerts) > MAX_ITEMS:
        lines.append(f"… и ещё {len(alerts) - MAX_ITEMS}")
    lines += ["", f"Что сделать: {text.todo}.", f"Пульт: {link}"]
    if test:
        lines += ["", "Это проверочное сообщение (`dialer alerts test`): ничего не случилось."]
    return subject, "\n".join(lines)
