"""What an operator's disposition means for the lead: validation and the one table of effects.

Pure functions over plain values; the store applies the result (dialer/dispositions.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.clock import require_aware
from kernel.errors import UsageError
from leads.attempt import CallResult, DispositionKind
from leads.lead import CloseReason, LeadStatus
from leads.policy.quiet_hours import first_allowed, in_quiet_hours
from leads.policy.values import DEFAULTS, Policy

MAX_AMOUNT = Decimal("999999999999.99")   # Numeric(14, 2)
MAX_COMMENT = 10_000
MAX_FIELDS = 50
MAX_FIELD_NAME = 64
MAX_FIELD_VALUE = 1000
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class DispositionRefused(UsageError):
    """The disposition cannot be recorded.

    `words`: the same refusal in Russian, for the operator console (the message stays English for the CLI
    and the API's `error`)."""

    def __init__(self, message: str | None = None, words: str | None = None) -> None:
        super().__init__(message)
        self.words = words


class NotYourAttempt(DispositionRefused):
    """This call belongs to another operator."""


class AlreadyDisposed(DispositionRefused):
    """This call already has a disposition."""


@dataclass(frozen=True)
class DispositionRule:
    """What one kind of disposition does to the lead."""

    status: LeadStatus
    close_reason: CloseReason | None = None
    needs_amount: bool = False          # confirmed: order amount and currency
    needs_callback_time: bool = False   # callback: the time agreed with the customer
    adds_to_dnc: bool = False           # the number goes on the do-not-call list
    alert: str | None = None            # raise an alert to the team lead
    switches_to_email: bool = False     # every open lead with the number goes to e-mail only (issue 19)
    meaning: str = ""


# THE table. A kind missing here cannot be recorded (checked by a test over DispositionKind).
RULES: Mapping[DispositionKind, DispositionRule] = {
    DispositionKind.CONFIRMED: DispositionRule(LeadStatus.CLOSED, CloseReason.CONFIRMED, needs_amount=True,
                                               meaning="order confirmed; lead closed"),
    DispositionKind.CALLBACK: DispositionRule(LeadStatus.CALLBACK, needs_callback_time=True,
                                              meaning="customer named a time; the same operator calls back then"),
    DispositionKind.NOT_INTERESTED: DispositionRule(LeadStatus.CLOSED, CloseReason.NOT_INTERESTED,
                                                    meaning="customer declined; lead closed"),
    DispositionKind.WRONG_NUMBER: DispositionRule(LeadStatus.CLOSED, CloseReason.WRONG_NUMBER,
                                                  meaning="not this customer's number; lead closed"),
    DispositionKind.FAKE: DispositionRule(LeadStatus.CLOSED, CloseReason.FAKE,
                                          meaning="nobody ordered anything; lead closed"),
    DispositionKind.DUPLICATE: DispositionRule(LeadStatus.CLOSED, CloseReason.DUPLICATE,
                                               meaning="already handled in another lead; lead closed"),
    DispositionKind.DO_NOT_CALL: DispositionRule(LeadStatus.CLOSED, CloseReason.DNC, adds_to_dnc=True,
                                                 meaning="number put on the do-not-call list; every open "
                                                         "lead with it closed"),
    DispositionKind.COMPLAINT: DispositionRule(LeadStatus.CLOSED, CloseReason.COMPLAINT, alert="complaint",
                                               meaning="customer complained; lead closed and the team lead "
                                                       "alerted"),
    DispositionKind.NO_DECISION: DispositionRule(LeadStatus.RETRY,
                                                 meaning="no outcome yet; lead stays open, the policy picks "
                                                         "the next contact"),
    DispositionKind.WRITE_INSTEAD: DispositionRule(LeadStatus.CLOSED, CloseReason.WRITE_INSTEAD,
                                                   switches_to_email=True,
                                                   meaning="customer asked to be written to, not called: every "
                                                           "open lead with the number closed for calls, the "
                                                           "e-mail chain takes over"),
}


@dataclass(frozen=True)
class DispositionInput:
    """A disposition as an operator (console, CLI) hands it over, before any check."""

    kind: str
    amount: Decimal | str | int | float | None = None
    currency: str | None = None
    callback_at: datetime | str | None = None   # without an offset: the customer's wall clock, if known
    comment: str | None = None
    custom_fields: Mapping[str, Any] | None = None
    topic: str | None = None                    # reports (issue 13): one of settings.reports.topics
    script_id: str | None = None                # the script the operator worked from (console)
    script_version: int | str | None = None


@dataclass(frozen=True)
class ValidDisposition:
    kind: DispositionKind
    amount: Decimal | None
    currency: str | None
    callback_at: datetime | None
    comment: str | None
    custom_fields: dict[str, Any] | None = field(default=None)
    topic: str | None = None
    script_id: str | None = None
    script_version: int | None = None

    @property
    def rule(self) -> DispositionRule:
        return RULES[self.kind]


@dataclass(frozen=True)
class LeadChange:
    """The lead's new dialing state after a disposition."""

    status: LeadStatus
    close_reason: CloseReason | None
    closed_at: datetime | None
    callback_at: datetime | None
    callback_operator_id: int | None


def was_connected(result: str | None, connected_at: datetime | None) -> bool:
    """A call that reached an operator: only such calls get a disposition."""
    return result == CallResult.CONNECTED.value or connected_at is not None


def parse_kind(kind: str) -> DispositionKind:
    try:
        return DispositionKind(str(kind).strip().lower())
    except ValueError:
        raise DispositionRefused(f"unknown disposition {kind!r}; one of: "
                                 + ", ".join(k.value for k in DispositionKind)) from None


def validate(given: DispositionInput, *, now: datetime, center_zone: str, lead_zone: str | None = None,
             policy: Policy = DEFAULTS, topics: Sequence[str] | None = None) -> ValidDisposition:
    """The disposition as it will be stored, or DispositionRefused saying what is wrong.

    A callback time must be in the future and outside the policy's quiet hours in the center's zone
    and in the lead's own zone (Lead.timezone) when known.
    """
    require_aware(now)
    kind = parse_kind(given.kind)
    rule = RULES[kind]
    amount, currency = _amount(kind, rule, given.amount, given.currency)
    callback_at = _callback_time(kind, rule, given.callback_at, now=now, center_zone=center_zone,
                                 lead_zone=lead_zone, policy=policy)
    comment = _comment(given.comment)
    script_id, script_version = _script(given.script_id, given.script_version)
    return ValidDisposition(kind, amount, currency, callback_at, comment, _custom_fields(given.custom_fields),
                            _topic(given.topic, topics), script_id, script_version)


def _script(script_id: str | None, version: int | str | None) -> tuple[str | None, int | None]:
    """The script shown on the call card, as the console sends it back: an id of at most 100 characters
    and a version number (both optional; the catalog itself is not consulted here)."""
    if script_id is None or not str(script_id).strip():
        return None, None
    sid = str(script_id).strip()
    if len(sid) > 100 or any(ch.isspace() for ch in sid):
        raise DispositionRefused("script_id is at most 100 characters with no spaces")
    if version is None or str(version).strip() == "":
        return sid, None
    text = str(version).strip()
    if isinstance(version, bool) or not text.isdigit() or len(text) > 9:
        raise DispositionRefused(f"script_version {version!r} is not a whole number")
    return sid, int(text)


def parse_topics(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'доставка, цена' -> ('доставка', 'цена'): the configured list of conversation topics."""
    parts = (text or "").split(",") if isinstance(text, str) or text is None else list(text)
    return tuple(dict.fromkeys(" ".join(str(p).split()).lower() for p in parts if str(p).strip()))


def _topic(raw: str | None, topics: Sequence[str] | None) -> str | None:
    """A topic from the configured list (case and spacing ignored); topics None: any short text."""
    if raw is None or not str(raw).strip():
        return None
    topic = " ".join(str(raw).split()).lower()
    if topics is not None and topic not in topics:
        allowed = ", ".join(topics) if topics else "none are configured (reports.topics)"
        raise DispositionRefused(f"topic {raw!r} is not in the list; one of: {allowed}")
    if len(topic) > 64:
        raise DispositionRefused("a topic is at most 64 characters")
    return topic


def lead_change(valid: ValidDisposition, *, operator_id: int | None, now: datetime) -> LeadChange:
    rule = valid.rule
    if rule.status is LeadStatus.CALLBACK:
        return LeadChange(LeadStatus.CALLBACK, None, None, valid.callback_at, operator_id)
    closed_at = now if rule.status is LeadStatus.CLOSED else None
    return LeadChange(rule.status, rule.close_reason, closed_at, None, None)


def _amount(kind: DispositionKind, rule: DispositionRule, raw: Any, currency: str | None
            ) -> tuple[Decimal | None, str | None]:
    if not rule.needs_amount:
        if raw is not None and raw != "":
            raise DispositionRefused(f"an amount only goes with 'confirmed', not with '{kind.value}'")
        return None, None
    if raw is None or raw == "":
        raise DispositionRefused("'confirmed' needs the order amount (e.g. --amount 12500)",
                                 "для «подтверждён» укажите сумму заказа")
    if isinstance(raw, bool):
        raise DispositionRefused(f"amount {raw!r} is not a number", "сумма заказа должна быть числом")
    try:
        amount = Decimal(str(raw).strip().replace(",", ".").replace(" ", "").replace("\u00a0", ""))
    except InvalidOperation:
        raise DispositionRefused(f"amount {raw!r} is not a number", "сумма заказа должна быть числом") from None
    if not amount.is_finite():
        raise DispositionRefused(f"amount {raw!r} is not a number", "сумма заказа должна быть числом")
    if amount < 0:
        raise DispositionRefused(f"amount {raw} is negative; an order amount is 0 or more",
                                 "сумма заказа не может быть отрицательной")
    if amount > MAX_AMOUNT:
        raise DispositionRefused(f"amount {raw} is larger than {MAX_AMOUNT}",
                                 f"сумма заказа больше {MAX_AMOUNT}")
    if amount != amount.quantize(Decimal("0.01")):
        raise DispositionRefused(f"amount {raw} has more than 2 decimal places",
                                 "в сумме не больше двух знаков после запятой")
    code = (currency or "RUB").strip().upper()
    if not _CURRENCY.match(code):
        raise DispositionRefused(f"currency {currency!r} is not a 3-letter ISO 4217 code such as RUB, KZT, USD",
                                 "валюта — три латинские буквы, например RUB")
    return amount.quantize(Decimal("0.01")), code


def _callback_time(kind: DispositionKind, rule: DispositionRule, raw: datetime | str | None, *,
                   now: datetime, center_zone: str, lead_zone: str | None, policy: Policy) -> datetime | None:
    if not rule.needs_callback_time:
        if raw is not None and raw != "":
            raise DispositionRefused(f"a callback time only goes with 'callback', not with '{kind.value}'")
        return None
    if raw is None or raw == "":
        raise DispositionRefused("'callback' needs the time agreed with the customer (e.g. --at 2026-11-24T11:00)",
                                 "для «перезвонить» укажите время, согласованное с клиентом")
    customer_zone = known_zone(lead_zone)
    when = resolve_local_time(raw, customer_zone or ZoneInfo(center_zone))
    if when <= now:
        raise DispositionRefused(f"callback time {_show(when, ZoneInfo(center_zone))} is in the past",
                                 f"время перезвона {_show(when, ZoneInfo(center_zone))} уже прошло")
    zones = [("the call center", ZoneInfo(center_zone))]
    if customer_zone is not None:
        zones.append(("the customer", customer_zone))
    for whose, zone in zones:
        if in_quiet_hours(when, zone, policy):
            allowed = first_allowed(when, [z for _, z in zones], policy)
            hint = f"; the next allowed time is {_show(allowed, zone)}" if allowed is not None else ""
            raise DispositionRefused(
                f"callback time {_show(when, zone)} is inside quiet hours for {whose} "
                f"({policy.quiet_start}-{policy.quiet_end}){hint}",
                f"время перезвона {_show(when, zone)} попадает в тихие часы "
                f"{'клиента' if whose == 'the customer' else 'колл-центра'} ({policy.quiet_start}-{policy.quiet_end})"
                + (f"; ближайшее разрешённое время {_show(allowed, zone)}" if allowed is not None else ""))
    return when


def resolve_local_time(raw: datetime | str, zone: ZoneInfo) -> datetime:
    """An ISO time; one written without an offset is read on `zone`'s wall clock."""
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise DispositionRefused(f"{raw!r} is not a time; use ISO 8601 such as 2026-11-24T11:00 "
                                     f"(customer's zone if known, else the center's) or "
                                     f"2026-11-24T11:00+03:00") from None
    elif isinstance(raw, datetime):
        when = raw
    else:
        raise DispositionRefused(f"{raw!r} is not a time")
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=zone)
    return when


def known_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder such as "Europe"
        return None


def _comment(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if len(text) > MAX_COMMENT:
        raise DispositionRefused(f"comment is {len(text)} characters long; at most {MAX_COMMENT}",
                                 f"комментарий длиннее {MAX_COMMENT} символов")
    return text or None


def _custom_fields(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise DispositionRefused("custom fields must be name=value pairs")
    if len(raw) > MAX_FIELDS:
        raise DispositionRefused(f"{len(raw)} custom fields; at most {MAX_FIELDS}")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        key = str(name).strip()
        if not key or len(key) > MAX_FIELD_NAME:
            raise DispositionRefused(f"custom field name {name!r} must be 1 to {MAX_FIELD_NAME} characters")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise DispositionRefused(f"custom field {key!r} must be a plain value (text, number, true/false)")
        if isinstance(value, str) and len(value) > MAX_FIELD_VALUE:
            raise DispositionRefused(f"custom field {key!r} is longer than {MAX_FIELD_VALUE} characters")
        fields[key] = value
    return fields


def _show(when: datetime, zone: ZoneInfo) -> str:
    return f"{when.astimezone(zone):%Y-%m-%d %H:%M} ({zone.key})"
