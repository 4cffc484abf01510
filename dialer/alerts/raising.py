"""Writing an alert: into the outbox (topic `alert`), inside the transaction of the fact that raised it,
once per idempotency key. Delivery (dispatch.py, worker.py) happens afterwards."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.models import AlertRule, CallAttempt, Disposition, Lead, OutboxMessage
from leads.disposition import RULES, DispositionKind
from leads.phone import mask_phone
from dialer.alerts.kinds import AlertKind

log = logging.getLogger("dialer.alerts")

TOPIC = "alert"   # = dialer.crm.outbox.Topic.ALERT


def raise_alert(session: Session, kind: AlertKind, facts: Mapping[str, Any], key: str, now: datetime, *,
                lead_id: int | None = None, attempt_id: int | None = None) -> OutboxMessage | None:
    """Write the alert unless one with this key exists already (then None): one alert per event."""
    require_aware(now)
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)) is not None:
        return None
    message = OutboxMessage(topic=TOPIC, lead_id=lead_id, attempt_id=attempt_id, idempotency_key=key[:100],
                            payload={"alert": kind.value, **facts}, status="pending", failures=0,
                            next_try_at=now, created_at=now)
    session.add(message)
    session.flush()
    log.warning("alert.raised kind=%s key=%s lead_id=%s", kind.value, key, lead_id)
    return message


def lead_facts(lead: Lead) -> dict[str, Any]:
    return {"lead_id": lead.id, "phone_masked": mask_phone(lead.phone_e164 or lead.phone_raw),
            "order_number": lead.order_number}


def large_order_floor(session: Session):
    """The smallest amount any enabled large-order rule waits for (None: no such rule)."""
    return session.scalar(select(func.min(func.coalesce(AlertRule.min_amount, 0)))
                          .where(AlertRule.kind == AlertKind.LARGE_ORDER.value, AlertRule.enabled.is_(True)))


def alerts_for_outcome(session: Session, attempt: CallAttempt, lead: Lead, disposition: Disposition | None,
                       operator_name: str | None, now: datetime) -> list[OutboxMessage]:
    """The alerts an attempt's outcome raises: a complaint, a large confirmed order, a lead given up as
    unreachable. Called with the outcome, in its transaction."""
    raised = []
    facts = lead_facts(lead) | {"attempt_id": attempt.id, "operator_id": attempt.operator_id,
                                "operator": operator_name}
    rule = RULES.get(DispositionKind(disposition.kind)) if disposition is not None else None
    if rule is not None and rule.alert:   # the disposition rules say which kinds alert (a complaint)
        raised.append(raise_alert(session, AlertKind(rule.alert), facts | {"comment": disposition.comment},
                                  f"alert-{rule.alert}-{attempt.id}", now, lead_id=lead.id, attempt_id=attempt.id))
    if disposition is not None and disposition.kind == "confirmed" and disposition.amount is not None:
        floor = large_order_floor(session)
        if floor is not None and disposition.amount >= floor:
            raised.append(raise_alert(session, AlertKind.LARGE_ORDER,
                                      facts | {"amount": str(disposition.amount), "currency": disposition.currency},
                                      f"alert-large_order-{attempt.id}", now, lead_id=lead.id,
                                      attempt_id=attempt.id))
    if disposition is None and lead.status == "closed" and lead.close_reason == "unreachable":
        raised.append(raise_alert(session, AlertKind.UNREACHABLE,
                                  facts | {"attempts": max(lead.attempts_count or 0, attempt.attempt_no or 0)},
                                  f"alert-unreachable-{lead.id}", now, lead_id=lead.id, attempt_id=attempt.id))
    return [r for r in raised if r is not None]


def crm_dead_letter_alert(session: Session, outbox_id: int, lead_id: int | None, payload: Mapping[str, Any],
                          error: str, now: datetime) -> OutboxMessage | None:
    """An outcome the CRM did not take after crm.max_failures: raised where it becomes a dead letter."""
    phone = payload.get("phone")
    facts = {"outbox_id": outbox_id, "lead_id": lead_id, "phone_masked": mask_phone(phone) if phone else None,
             "order_number": payload.get("order_number"), "error": error[:300]}
    return raise_alert(session, AlertKind.CRM_DEAD_LETTERS, facts, f"alert-crm_dead-{outbox_id}", now,
                       lead_id=lead_id)
