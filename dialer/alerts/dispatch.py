"""From pending alerts to notices: each enabled rule takes the alerts it wants into one notice per pass,
at most one notice per rule per `group_seconds` (alerts arriving in between wait and go out together:
"12 leads at risk", not 12 messages). An alert is sent once every rule that wants it took it; an alert
no rule wants is cancelled with that reason. The (alert, rule) pairs are stored, so nothing is taken
twice, whatever the order ids commit in."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.models import AlertDispatch, AlertRule, OutboxMessage
from dialer.alerts.kinds import notice_text
from dialer.alerts.raising import TOPIC as ALERT_TOPIC
from dialer.alerts.rules import rule_of

log = logging.getLogger("dialer.alerts.dispatch")

NOTICE_TOPIC = "alert_notice"   # = dialer.crm.outbox.Topic.ALERT_NOTICE
BATCH = 2000


@dataclass(frozen=True)
class DispatchCounts:
    notices: int = 0      # notices written
    grouped: int = 0      # alerts carried by them
    held: int = 0         # alerts waiting for a rule's rate limit
    unrouted: int = 0     # alerts no rule wants (cancelled)


def dispatch(session: Session, now: datetime, *, link: str, zone: ZoneInfo) -> DispatchCounts:
    require_aware(now)
    alerts = session.scalars(select(OutboxMessage)
                             .where(OutboxMessage.topic == ALERT_TOPIC, OutboxMessage.status == "pending")
                             .order_by(OutboxMessage.id).limit(BATCH)
                             .with_for_update(skip_locked=True, of=OutboxMessage)).all()
    if not alerts:
        return DispatchCounts()
    rows = session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
                           .with_for_update(of=AlertRule)).all()
    rules = [(row, rule_of(row)) for row in rows]
    ids = [a.id for a in alerts]
    taken = set(session.execute(select(AlertDispatch.alert_id, AlertDispatch.rule_id)
                                .where(AlertDispatch.alert_id.in_(ids))).tuples().all())
    notices = grouped = 0
    held: set[int] = set()
    for row, rule in rules:
        wanted = [a for a in alerts if (a.id, rule.id) not in taken and rule.takes(a.payload)]
        if not wanted:
            continue
        if rule.last_notice_at is not None and now < rule.last_notice_at + timedelta(seconds=rule.group_seconds):
            held.update(a.id for a in wanted)
            continue
        test = all(a.payload.get("test") for a in wanted)
        subject, body = notice_text(rule.kind, [a.payload for a in wanted], link, zone, test=test)
        first = wanted[0]
        digest = hashlib.sha1(",".join(str(a.id) for a in wanted).encode()).hexdigest()[:10]
        notice = OutboxMessage(topic=NOTICE_TOPIC, lead_id=None, attempt_id=None,
                               idempotency_key=f"notice-{rule.id}-{first.id}-{digest}",
                               payload={"channel": rule.channel.value, "recipient": rule.recipient,
                                        "kind": rule.kind.value, "rule_id": rule.id, "count": len(wanted),
                                        "subject": subject, "text": body, "test": test,
                                        "alerts": [{"id": a.id, **a.payload} for a in wanted[:100]]},
                               status="pending", failures=0, next_try_at=now, created_at=now)
        session.add(notice)
        session.flush()
        for a in wanted:
            session.add(AlertDispatch(alert_id=a.id, rule_id=rule.id, notice_id=notice.id))
            taken.add((a.id, rule.id))
        row.last_notice_at = now
        notices += 1
        grouped += len(wanted)
        log.info("alert.notice rule=%s kind=%s channel=%s alerts=%d notice_id=%s", rule.id, rule.kind.value,
                 rule.channel.value, len(wanted), notice.id)
    unrouted = 0
    for a in alerts:
        wanting = [rule.id for _, rule in rules if rule.takes(a.payload)]
        if not wanting:
            a.status, a.last_error, a.sent_at = "cancelled", f"no enabled alert rule takes '{a.payload.get('alert')}'", now
            unrouted += 1
        elif all((a.id, r) in taken for r in wanting):
            a.status, a.sent_at = "sent", now
    return DispatchCounts(notices, grouped, len(held), unrouted)

