"""Operator groups (teams) over time: a membership starts at valid_from and lasts until the next one.

A call counts for the team its operator belonged to when the call started, so moving an operator to
another team does not rewrite last month's report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import Operator, OperatorGroupMember
from kernel.errors import NotFound, UsageError

NO_GROUP = ""   # set_group(..., "") takes the operator out of any team from then on


@dataclass(frozen=True)
class Membership:
    operator_id: int
    group: str | None
    valid_from: datetime


def check_group(name: str) -> str:
    group = " ".join(str(name).split())
    if len(group) > 100:
        raise UsageError("a group name is at most 100 characters")
    return group


def set_group(db: Database, operator_ref: str | int, group: str, *, now: datetime,
              valid_from: datetime | None = None, set_by: str = "cli") -> Membership:
    """From `valid_from` (default now) the operator belongs to `group` ('' : to none)."""
    require_aware(now)
    start = valid_from or now
    require_aware(start)
    name = check_group(group)
    with db.write() as session:
        ref = str(operator_ref).strip()
        operator = session.get(Operator, int(ref)) if ref.isdigit() else session.scalar(
            select(Operator).where(Operator.interface == ref))
        if operator is None:
            raise NotFound(f"no operator with id or interface {ref!r}")
        session.add(OperatorGroupMember(operator_id=operator.id, group_name=name, valid_from=start, set_by=set_by))
        session.flush()
        return Membership(operator.id, name or None, start)


def group_history(db: Database, operator_id: int) -> list[Membership]:
    with db.read() as session:
        rows = session.scalars(select(OperatorGroupMember).where(OperatorGroupMember.operator_id == operator_id)
                               .order_by(OperatorGroupMember.valid_from, OperatorGroupMember.id)).all()
        return [Membership(r.operator_id, r.group_name or None, r.valid_from) for r in rows]


def current_groups(db: Database, at: datetime) -> dict[int, str]:
    """operator id -> team at `at` (operators without one left out)."""
    with db.read() as session:
        rows = session.execute(select(OperatorGroupMember.operator_id, OperatorGroupMember.group_name)
                               .where(OperatorGroupMember.valid_from <= at)
                               .order_by(OperatorGroupMember.valid_from, OperatorGroupMember.id)).all()
    out: dict[int, str] = {}
    for operator_id, name in rows:
        out[operator_id] = name
    return {k: v for k, v in out.items() if v}


def parse_group_from(text: str | None, zone: str) -> datetime | None:
    """--group-from: an ISO date or time; without an offset, on the center's wall clock."""
    if text is None or not text.strip():
        return None
    from zoneinfo import ZoneInfo
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--group-from {text!r} is not a time; use 2026-11-24 or 2026-11-24T09:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(zone))
