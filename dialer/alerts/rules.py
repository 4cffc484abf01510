"""The alert rule table: one row = one kind to one recipient by one channel. Policy data, changed from
the CLI (`dialer alerts rules add|remove|enable|disable`), read by the dispatcher on each pass."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.db.models import AlertRule
from kernel.errors import NotFound, UsageError
from dialer.alerts.kinds import AlertKind, Channel

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,}")


@dataclass(frozen=True)
class Rule:
    id: int
    kind: AlertKind
    channel: Channel
    recipient: str
    min_amount: Decimal | None
    above_percent: float | None
    group_seconds: int
    enabled: bool
    last_notice_at: datetime | None

    def takes(self, facts: dict[str, Any]) -> bool:
        """Does this rule want this alert? (same kind; large orders from min_amount; rates above the percent)"""
        if facts.get("alert") != self.kind.value:
            return False
        if self.kind is AlertKind.LARGE_ORDER and self.min_amount is not None:
            try:
                return Decimal(str(facts.get("amount"))) >= self.min_amount
            except (InvalidOperation, ValueError):
                return False
        if self.kind is AlertKind.ABANDON_RATE and self.above_percent is not None:
            try:
                return float(facts.get("percent")) > self.above_percent
            except (TypeError, ValueError):
                return False
        return True


def rule_of(row: AlertRule) -> Rule:
    return Rule(row.id, AlertKind(row.kind), Channel(row.channel), row.recipient, row.min_amount,
                row.above_percent, row.group_seconds, row.enabled, row.last_notice_at)


def check_rule(kind: str, channel: str, recipient: str, min_amount: str | None, above_percent: float | None,
               group_seconds: int) -> tuple[AlertKind, Channel, str, Decimal | None]:
    """Refuse a rule that cannot work, saying why."""
    try:
        alert_kind = AlertKind(kind)
    except ValueError:
        raise UsageError(f"unknown alert kind {kind!r}; known: {', '.join(k.value for k in AlertKind)}") from None
    try:
        how = Channel(channel)
    except ValueError:
        raise UsageError(f"unknown channel {channel!r}; known: {', '.join(c.value for c in Channel)}") from None
    recipient = (recipient or "").strip()
    if how is Channel.EMAIL and not _EMAIL.fullmatch(recipient):
        raise UsageError(f"--to {recipient!r} is not an e-mail address")
    if how is Channel.TELEGRAM and not _CHAT.fullmatch(recipient):
        raise UsageError(f"--to {recipient!r} is not a Telegram chat id (a number such as -1001234567890, "
                         "or @channelname)")
    if how is Channel.WEBHOOK and not re.fullmatch(r"https?://[^\s/]+\S*", recipient):
        raise UsageError(f"--to {recipient!r} is not an http(s) URL")
    amount = None
    if min_amount is not None:
        if alert_kind is not AlertKind.LARGE_ORDER:
            raise UsageError("--min-amount only goes with --kind large_order")
        try:
            amount = Decimal(str(min_amount).replace(",", ".").replace(" ", ""))
        except InvalidOperation:
            raise UsageError(f"--min-amount {min_amount!r} is not a number") from None
        if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 12:
            raise UsageError(f"--min-amount {min_amount!r} must be a sum from 0 up to 999,999,999,999")
    elif alert_kind is AlertKind.LARGE_ORDER:
        raise UsageError("--kind large_order needs --min-amount (e.g. --min-amount 50000)")
    if above_percent is not None:
        if alert_kind is not AlertKind.ABANDON_RATE:
            raise UsageError("--above only goes with --kind abandon_rate_above")
        if not 0 <= above_percent < 100:
            raise UsageError(f"--above {above_percent} must be a percent from 0 up to 100")
    elif alert_kind is AlertKind.ABANDON_RATE:
        raise UsageError("--kind abandon_rate_above needs --above (e.g. --above 3)")
    if not 0 <= group_seconds <= 86400:
        raise UsageError(f"--group-seconds {group_seconds} must be from 0 to 86400")
    return alert_kind, how, recipient, amount


def add_rule(db: Database, kind: str, channel: str, recipient: str, *, min_amount: str | None = None,
             above_percent: float | None = None, group_seconds: int = 300, by: str, now: datetime) -> Rule:
    alert_kind, how, recipient, amount = check_rule(kind, channel, recipient, min_amount, above_percent,
                                                    group_seconds)
    with db.write() as session:
        row = AlertRule(kind=alert_kind.value, channel=how.value, recipient=recipient, min_amount=amount,
                        above_percent=above_percent, group_seconds=group_seconds, enabled=True,
                        created_by=by, created_at=now)
        session.add(row)
        session.flush()
        return rule_of(row)


def list_rules(db: Database, *, enabled_only: bool = False) -> list[Rule]:
    with db.read() as session:
        query = select(AlertRule).order_by(AlertRule.id)
        if enabled_only:
            query = query.where(AlertRule.enabled.is_(True))
        return [rule_of(r) for r in session.scalars(query)]


def set_enabled(db: Database, rule_id: int, enabled: bool) -> Rule:
    with db.write() as session:
        row = session.get(AlertRule, rule_id)
        if row is None:
            raise NotFound(f"no alert rule {rule_id} (see `dialer alerts rules list`)")
        row.enabled = enabled
        return rule_of(row)


def remove_rule(db: Database, rule_id: int) -> None:
    """A rule that already sent notices is disabled, not deleted: the record of who was told stays."""
    from kernel.db.models import AlertDispatch
    with db.write() as session:
        row = session.get(AlertRule, rule_id)
        if row is None:
            raise NotFound(f"no alert rule {rule_id} (see `dialer alerts rules list`)")
        used = session.scalar(select(AlertDispatch.rule_id).where(AlertDispatch.rule_id == rule_id).limit(1))
        if used is None:
            session.delete(row)
        else:
            row.enabled = False
