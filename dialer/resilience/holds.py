"""Operator capacity shared through the database: several daemons, one Asterisk.

Every daemon sees every queue member of the Asterisk it is connected to; on its own each would
count them all as its free operators, so N daemons would have up to N customers waiting per
operator. With `ami.shared_with_other_daemons` a daemon holds, in operator_holds, the operator a
call it places is counted against (from the claim to the customer's connection or the call's end)
and never counts an operator another daemon holds. A hold expires with the daemon's leases if it
dies; a renewed lease renews its holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from kernel.db.engine import Database
from kernel.db.models import OperatorHold


def held_elsewhere(db: Database, pbx: str, daemon_id: str, now: datetime) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(OperatorHold.interface).where(
            OperatorHold.pbx == pbx, OperatorHold.daemon_id != daemon_id, OperatorHold.expires_at > now)))


def take(db: Database, pbx: str, interface: str, *, daemon_id: str, attempt_id: int, until: datetime,
         now: datetime) -> bool:
    """Hold `interface` for this attempt; False if another daemon holds it (or took it just now)."""
    try:
        with db.write() as session:
            current = session.get(OperatorHold, (pbx, interface), with_for_update=True)
            if current is not None and current.daemon_id != daemon_id and current.expires_at > now:
                return False
            if current is not None:
                session.delete(current)
                session.flush()
            session.add(OperatorHold(pbx=pbx, interface=interface, daemon_id=daemon_id, attempt_id=attempt_id,
                                     expires_at=until))
        return True
    except IntegrityError:   # another daemon inserted it between our read and our insert
        return False


def mine(db: Database, pbx: str, daemon_id: str) -> dict[int, str]:
    """attempt -> operator, for the holds of this daemon (another may have moved one: `connected`)."""
    with db.read() as session:
        return {row.attempt_id: row.interface for row in session.execute(
            select(OperatorHold.attempt_id, OperatorHold.interface).where(OperatorHold.pbx == pbx,
                                                                          OperatorHold.daemon_id == daemon_id))}


def connected(db: Database, pbx: str, attempt_id: int, interface: str | None) -> None:
    """The call's customer talks to `interface` now; its hold ends. If another call (of any daemon)
    held that operator, it takes over the operator this call held, who is free for it."""
    with db.write() as session:
        own = session.scalars(select(OperatorHold).where(OperatorHold.attempt_id == attempt_id)).first()
        if own is None:
            return
        freed = own.interface
        session.delete(own)
        session.flush()
        if not interface or interface == freed:
            return
        other = session.get(OperatorHold, (pbx, interface), with_for_update=True)
        if other is not None:
            session.execute(update(OperatorHold).where(OperatorHold.pbx == pbx, OperatorHold.interface == interface)
                            .values(interface=freed))


def release(db: Database, attempt_ids: Iterable[int]) -> None:
    ids = list(attempt_ids)
    if ids:
        with db.write() as session:
            session.execute(delete(OperatorHold).where(OperatorHold.attempt_id.in_(ids)))


def renew(db: Database, pbx: str, daemon_id: str, until: datetime) -> None:
    with db.write() as session:
        session.execute(update(OperatorHold).where(OperatorHold.pbx == pbx, OperatorHold.daemon_id == daemon_id)
                        .values(expires_at=until))
