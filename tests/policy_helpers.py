"""Builders shared by the policy tests: leads as the rules see them, at fixed Moscow times."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

from leads.policy.facts import LeadFacts
from leads.policy.values import DEFAULTS, Policy

CENTER = ZoneInfo("Europe/Moscow")
MOBILE = "+79071234567"           # a mobile in a range the shipped numbering plan does not hold: zone unknown
VLADIVOSTOK = "+74232123456"      # landline, Asia/Vladivostok (UTC+10, Moscow + 7 h)
KALININGRAD = "+74012123456"      # landline, Europe/Kaliningrad (UTC+2, Moscow - 1 h)
MOSCOW_LANDLINE = "+74951234567"


def lead(id: int, received_at: datetime, *, status: str = "new", phone: str | None = MOBILE, **fields) -> LeadFacts:
    return LeadFacts(id=id, status=status, received_at=received_at, phone_e164=phone, **fields)


def policy(**values) -> Policy:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return dataclasses.replace(DEFAULTS, **values)


def store(db, *leads: LeadFacts) -> None:
    """Write the leads as rows (and their DNC entries, and an open attempt where one is in progress)."""
    from sqlalchemy import insert

    from kernel.db.models import CallAttempt, DncEntry, Lead
    from leads.policy.facts import LEAD_COLUMNS
    rows = [{**{name: getattr(f, name) for name in LEAD_COLUMNS}, "source": "test"} for f in leads]
    with db.write() as session:
        session.execute(insert(Lead.__table__), rows)
        phones = {f.phone_e164 for f in leads if f.on_dnc and f.phone_e164}
        for phone in sorted(phones):
            session.add(DncEntry(phone_e164=phone, added_by="test", added_at=leads[0].received_at))
        for f in leads:
            if f.attempt_in_progress:
                session.add(CallAttempt(lead_id=f.id, attempt_no=f.attempts_count + 1, daemon_id="other",
                                        state="originated", claimed_at=f.received_at))
        if db.is_postgres:
            from sqlalchemy import text
            session.execute(text("SELECT setval(pg_get_serial_sequence('leads', 'id'), "
                                 "(SELECT MAX(id) FROM leads))"))
