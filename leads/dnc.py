"""The do-not-call list: a number on it is never dialed (checked at intake and again at selection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from kernel.db.engine import Database
from kernel.db.models import DncEntry
from kernel.errors import InvalidPhone, UsageError
from leads.phone import mask_phone, normalize_phone

log = logging.getLogger("leads.dnc")


@dataclass(frozen=True)
class DncRecord:
    phone: str
    reason: str | None
    added_by: str
    added_at: datetime


def _e164(raw: str, region: str, action: str = "put on") -> str:
    try:
        return normalize_phone(raw, region).e164
    except InvalidPhone as exc:
        raise UsageError(f"{raw!r} is not a phone number that can be {action} the DNC list ({exc.reason})") from None


def add_to_dnc(session: Session, phone_e164: str, *, reason: str | None, added_by: str,
               now: datetime) -> bool:
    """Put a normalized number on the list inside the caller's transaction. False if it was there."""
    if session.get(DncEntry, phone_e164) is not None:
        return False
    session.add(DncEntry(phone_e164=phone_e164, reason=reason, added_by=added_by, added_at=now))
    log.info("dnc.added phone=%s by=%s", mask_phone(phone_e164), added_by)
    return True


def add(db: Database, raw_phone: str, *, region: str, reason: str | None, added_by: str,
        now: datetime) -> tuple[str, bool]:
    phone = _e164(raw_phone, region)
    with db.write() as session:
        return phone, add_to_dnc(session, phone, reason=reason, added_by=added_by, now=now)


def remove(db: Database, raw_phone: str, *, region: str, removed_by: str) -> tuple[str, bool]:
    phone = _e164(raw_phone, region, "removed from")
    with db.write() as session:
        entry = session.get(DncEntry, phone)
        if entry is None:
            return phone, False
        session.delete(entry)
    log.info("dnc.removed phone=%s by=%s", mask_phone(phone), removed_by)
    return phone, True


def list_entries(db: Database) -> list[DncRecord]:
    with db.read() as session:
        rows = session.scalars(select(DncEntry).order_by(DncEntry.added_at, DncEntry.phone_e164))
        return [DncRecord(r.phone_e164, r.reason, r.added_by, r.added_at) for r in rows]


_ON_DNC = select(DncEntry.__table__.c.phone_e164).where(
    DncEntry.__table__.c.phone_e164.in_(bindparam("phones", expanding=True)))   # built once: compiled once


def numbers_on_dnc(session: Session, phones: list[str]) -> set[str]:
    if not phones:
        return set()
    return set(session.connection().execute(_ON_DNC, {"phones": phones}).scalars())
