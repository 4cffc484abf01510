"""Alerts the daemon raises from what it watches rather than from one outcome: first-call deadlines,
today's abandon rate, a lost AMI connection, and the settings' catch-all webhook."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kernel.db.engine import Database
from kernel.db.models import AlertRule, CallAttempt, Lead
from kernel.settings import Settings
from leads.phone import mask_phone
from dialer.alerts.kinds import AlertKind, Channel
from dialer.alerts.raising import raise_alert


def sla_alerts(session: Session, risks: Sequence, now: datetime) -> int:
    """One sla_at_risk per lead when its deadline nears, one sla_breached when it passes undialed."""
    raised = 0
    if not risks:
        return 0
    leads = {row.id: row for row in session.execute(
        select(Lead.id, Lead.phone_e164, Lead.phone_raw, Lead.order_number)
        .where(Lead.id.in_([r.lead_id for r in risks])))}
    for risk in risks:
        kind = AlertKind.SLA_BREACHED if risk.state.value == "breached" else AlertKind.SLA_AT_RISK
        lead = leads.get(risk.lead_id)
        facts = {"lead_id": risk.lead_id, "deadline": risk.deadline.isoformat() if risk.deadline else None,
                 "phone_masked": mask_phone(lead.phone_e164 or lead.phone_raw) if lead else "-",
                 "order_number": lead.order_number if lead else None}
        if raise_alert(session, kind, facts, f"alert-{kind.value}-{risk.lead_id}", now, lead_id=risk.lead_id):
            raised += 1
    return raised


def answered_today(session: Session, now: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """(abandoned, answered) among attempts that ended today in the center's zone; answered = reached an
    operator or abandoned (the customer picked up)."""
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = dict(session.execute(select(CallAttempt.result, func.count())
                                .where(CallAttempt.ended_at >= start, CallAttempt.ended_at < start + timedelta(days=1),
                                       CallAttempt.result.in_(("connected", "abandoned")))
                                .group_by(CallAttempt.result)).tuples().all())
    abandoned = rows.get("abandoned", 0)
    return abandoned, abandoned + rows.get("connected", 0)


def abandon_alert(session: Session, now: datetime, settings: Settings) -> bool:
    """abandon_rate_above, once a day, when today's rate passes the lowest threshold of an enabled rule."""
    floor = session.scalar(select(func.min(AlertRule.above_percent)).where(
        AlertRule.kind == AlertKind.ABANDON_RATE.value, AlertRule.enabled.is_(True)))
    if floor is None:
        return False
    zone = ZoneInfo(settings.center_timezone)
    abandoned, answered = answered_today(session, now, zone)
    if answered < settings.alerts.abandon_min_answered:
        return False
    percent = round(100.0 * abandoned / answered, 1)
    if percent <= floor:
        return False
    day = now.astimezone(zone).date().isoformat()
    return raise_alert(session, AlertKind.ABANDON_RATE,
                       {"day": day, "abandoned": abandoned, "answered": answered, "percent": percent,
                        "threshold": floor}, f"alert-abandon_rate_above-{day}", now) is not None


def ami_down_alert(session: Session, pbx: str, since: datetime, now: datetime) -> bool:
    return raise_alert(session, AlertKind.AMI_DOWN, {"pbx": pbx, "since": since.isoformat()},
                       f"alert-ami_down-{pbx}-{since:%Y%m%d%H%M%S}", now) is not None


def settings_webhook_rules(db: Database, settings: Settings, now: datetime) -> int:
    """alerts.webhook_url: a webhook rule for each kind that lacks one (abandon above 3%; large orders are
    left to rules with their own amount). Returns how many rules it added."""
    url = settings.alerts.webhook_url
    if not url:
        return 0
    added = 0
    with db.write() as session:
        have = set(session.scalars(select(AlertRule.kind).where(AlertRule.channel == Channel.WEBHOOK.value,
                                                                AlertRule.recipient == url)))
        for kind in AlertKind:
            if kind is AlertKind.LARGE_ORDER or kind.value in have:
                continue
            session.add(AlertRule(kind=kind.value, channel=Channel.WEBHOOK.value, recipient=url,
                                  above_percent=3.0 if kind is AlertKind.ABANDON_RATE else None,
                                  group_seconds=300, enabled=True, created_by="settings alerts.webhook_url",
                                  created_at=now))
            added += 1
    return added
