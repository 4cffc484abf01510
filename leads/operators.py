"""The operator registry: who takes the dialed calls, their phone interface, skills and level.

Operators are registered by a team lead (`dialer operators add|list|set`). Their live state comes from
Asterisk (dialer/pacing.py); the policy uses these records to choose the operator for a claim.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import CallAttempt, Operator
from kernel.errors import NotFound, UsageError
from leads.policy.distribution import OperatorLoad

log = logging.getLogger("leads.operators")

MAX_LEVEL = 10
MAX_SKILLS = 50
# An Asterisk device / queue member: TECH/resource, e.g. PJSIP/op1, SIP/101, Local/101@operators.
_INTERFACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,;|]+$")
_EXTENSION = re.compile(r"^[0-9*#+A-Za-z_-]{1,32}$")


@dataclass(frozen=True)
class OperatorRecord:
    id: int
    name: str
    interface: str
    extension: str | None
    skills: tuple[str, ...]
    level: int
    active: bool
    state: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _record(row: Operator) -> OperatorRecord:
    return OperatorRecord(row.id, row.name, row.interface, row.extension, tuple(row.skills or ()), row.level,
                          row.active, row.state, row.created_at)


def parse_skills(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'Пылесос Vortex X2, Роутер' -> ('Пылесос Vortex X2', 'Роутер'): trimmed, no empties, no repeats."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    skills = tuple(dict.fromkeys(" ".join(str(p).split()) for p in parts if str(p).strip()))
    if len(skills) > MAX_SKILLS:
        raise UsageError(f"{len(skills)} skills; at most {MAX_SKILLS}")
    for skill in skills:
        if len(skill) > 200:
            raise UsageError(f"skill {skill[:40]!r}... is longer than 200 characters")
    return skills


def _check(name: str | None, interface: str | None, extension: str | None, level: int | None) -> None:
    if name is not None and not (1 <= len(name.strip()) <= 200):
        raise UsageError("an operator's name must be 1 to 200 characters")
    if interface is not None and (len(interface) > 100 or not _INTERFACE.match(interface)):
        raise UsageError(f"interface {interface!r} is not an Asterisk device such as PJSIP/op1 or SIP/101")
    if extension is not None and extension != "" and not _EXTENSION.match(extension):
        raise UsageError(f"extension {extension!r} is not a dialplan extension such as 101")
    if level is not None and not (1 <= level <= MAX_LEVEL):
        raise UsageError(f"level {level} is not allowed; expected a whole number from 1 to {MAX_LEVEL}")


def add_operator(db: Database, *, name: str, interface: str, now: datetime, extension: str | None = None,
                 skills: Sequence[str] = (), level: int = 1) -> OperatorRecord:
    require_aware(now)
    _check(name, interface, extension, level)
    with db.write() as session:
        _refuse_taken_interface(session, interface, None)
        row = Operator(name=name.strip(), interface=interface, extension=extension or None,
                       skills=list(parse_skills(skills)), level=level, active=True, created_at=now)
        session.add(row)
        session.flush()
        log.info("operator.added id=%s interface=%s", row.id, interface)
        return _record(row)


def update_operator(db: Database, ref: str, *, name: str | None = None, interface: str | None = None,
                    extension: str | None = None, skills: Sequence[str] | None = None,
                    level: int | None = None, active: bool | None = None) -> OperatorRecord:
    """Change the given fields of the operator with this id or interface (None: keep; extension "": clear)."""
    _check(name, interface, extension, level)
    with db.write() as session:
        row = _find(session, ref)
        if interface is not None and interface != row.interface:
            _refuse_taken_interface(session, interface, row.id)
            row.interface = interface
        if name is not None:
            row.name = name.strip()
        if extension is not None:
            row.extension = extension or None
        if skills is not None:
            row.skills = list(parse_skills(skills))
        if level is not None:
            row.level = level
        if active is not None:
            row.active = active
        session.flush()
        log.info("operator.updated id=%s interface=%s", row.id, row.interface)
        return _record(row)


def list_operators(db: Database, include_inactive: bool = True) -> list[OperatorRecord]:
    query = select(Operator).order_by(Operator.id)
    if not include_inactive:
        query = query.where(Operator.active.is_(True))
    with db.read() as session:
        return [_record(row) for row in session.scalars(query)]


def get_operator(db: Database, ref: str) -> OperatorRecord:
    with db.read() as session:
        return _record(_find(session, ref))


def operator_loads(session: Session, interfaces: Sequence[str], since: datetime) -> list[OperatorLoad]:
    """The active registered operators among `interfaces`, with their calls claimed since `since`."""
    if not interfaces:
        return []
    rows = session.execute(select(Operator.id, Operator.name, Operator.interface, Operator.skills, Operator.level)
                           .where(Operator.interface.in_(list(interfaces)), Operator.active.is_(True))).all()
    if not rows:
        return []
    counts = dict(session.execute(
        select(CallAttempt.operator_id, func.count())
        .where(CallAttempt.operator_id.in_([r.id for r in rows]), CallAttempt.claimed_at >= since)
        .group_by(CallAttempt.operator_id)).all())
    return [OperatorLoad(r.id, r.name, r.interface, tuple(r.skills or ()), r.level, counts.get(r.id, 0))
            for r in rows]


def _find(session: Session, ref: str) -> Operator:
    ref = str(ref).strip()
    row = session.get(Operator, int(ref)) if ref.isdigit() else session.scalar(
        select(Operator).where(Operator.interface == ref))
    if row is None:
        raise NotFound(f"no operator with id or interface {ref!r}")
    return row


def _refuse_taken_interface(session: Session, interface: str, own_id: int | None) -> None:
    other = session.scalar(select(Operator).where(Operator.interface == interface))
    if other is not None and other.id != own_id:
        raise UsageError(f"interface {interface} already belongs to operator {other.id} ({other.name})")
