"""The policy in the database: versions with a full snapshot, and an audit row per changed key.

- `seed_policy` writes version 1 (the defaults) once; `dialer init` calls it.
- `current_policy` is what the daemon calls before each decision: one indexed read of the newest
  version (id and snapshot text), the Policy built only when that version is new to this process.
  A change from the CLI is therefore picked up by a running daemon at its next claim.
- `change_policy` validates every value first, then writes the new version and the audit rows in one
  transaction: a refused change leaves the stored policy exactly as it was.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import Text, cast, select, text
from sqlalchemy.orm import Session

from kernel.clock import require_aware
from kernel.db.engine import Database
from kernel.db.models import PolicyChange, PolicyVersion
from leads.policy.values import (DEFAULTS, KEYS, Policy, PolicyRefused, allowed_words, build_policy,
                                 night_problems, parse_value, spread_problems)

log = logging.getLogger("leads.policy")

_CACHE_SIZE = 32
_cache: dict[tuple[int, str], Policy] = {}
_cache_lock = threading.Lock()
_ADVISORY_KEY = 0x706F6C6963790001   # "policy" + 1: serializes policy changes on PostgreSQL
_NEWEST = (select(PolicyVersion.id, cast(PolicyVersion.values, Text).label("snapshot"))
           .order_by(PolicyVersion.id.desc()).limit(1))   # built once: compiled once


@dataclass(frozen=True)
class PolicyChangeRecord:
    version: int
    key: str
    old: Any
    new: Any
    changed_by: str
    changed_at: datetime
    comment: str | None = None   # the --comment of the change (kept with the version)


@dataclass(frozen=True)
class KeyState:
    key: str
    value: Any
    default: Any
    meaning: str
    allowed: str


def current_policy(source: Session | Database) -> Policy:
    """The newest stored policy (the defaults, version 0, before `dialer init` seeded one)."""
    if isinstance(source, Database):
        with source.read() as session:
            return current_policy(session)
    row = source.connection().execute(_NEWEST).first()
    if row is None:
        return DEFAULTS
    cache_key = (row.id, row.snapshot)
    with _cache_lock:
        policy = _cache.get(cache_key)
    if policy is None:
        policy = build_policy(_known_keys(json.loads(row.snapshot), row.id), version=row.id)
        with _cache_lock:
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[cache_key] = policy
    return policy


def _known_keys(values: Mapping[str, Any], version: int) -> dict[str, Any]:
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        log.warning("policy.version %s has keys this code no longer knows, ignored: %s", version, unknown)
    return {k: v for k, v in values.items() if k in KEYS}


def seed_policy(session: Session, now: datetime, *, by: str = "dialer init",
                values: Mapping[str, Any] | None = None) -> int | None:
    """Store version 1 (the defaults, with `values` over them) unless a version exists. Its id, or None."""
    require_aware(now)
    if session.scalar(select(PolicyVersion.id).limit(1)) is not None:
        return None
    policy = build_policy(dict(values or {}))
    version = PolicyVersion(created_at=now, created_by=by, values=policy.values(),
                            comment="defaults" + (f" with {', '.join(sorted(values))} from the settings"
                                                  if values else ""))
    session.add(version)
    session.flush()
    log.info("policy.seeded version=%s by=%s", version.id, by)
    return version.id


def change_policy(db: Database, changes: Mapping[str, str], *, by: str, now: datetime,
                  comment: str | None = None,
                  allow_short_quiet_hours: bool = False) -> tuple[Policy, list[PolicyChangeRecord]]:
    """Set keys from their text values as one new version; PolicyRefused (nothing stored) if any is bad.

    All keys are checked together, against each other, as one change: no order of changes is needed.
    A change of quiet hours that would call people at night is refused (values.night_problems).
    Returns the policy now in force and the audit rows written (none when nothing actually changed).
    """
    require_aware(now)
    parsed = {name: parse_value(name, raw) for name, raw in changes.items()}
    with db.write() as session:
        if db.is_postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
        before = current_policy(session)
        old = before.values()
        new = {**old, **{name: list(v) if isinstance(v, tuple) else v for name, v in parsed.items()}}
        build_policy(new)   # the checks across keys; raises before anything is written
        changed = [name for name in parsed if old[name] != new[name]]
        if not changed:
            return before, []
        problems = []
        if {"quiet_start", "quiet_end"} & set(changed):
            problems += night_problems(new, allow_short=allow_short_quiet_hours)
        if {"max_attempts", "max_attempts_per_day"} & set(changed):
            problems += spread_problems(new)
        if problems:
            raise PolicyRefused("; ".join(problems))
        version = PolicyVersion(created_at=now, created_by=by, values=new, comment=comment)
        session.add(version)
        session.flush()
        records = [PolicyChangeRecord(version.id, name, old[name], new[name], by, now, comment)
                   for name in changed]
        session.add_all(PolicyChange(version_id=r.version, key=r.key, old_value=r.old, new_value=r.new,
                                     changed_by=by, changed_at=now) for r in records)
        for r in records:
            log.info("policy.changed version=%s key=%s old=%r new=%r by=%s", r.version, r.key, r.old, r.new, by)
    return build_policy(new, version=version.id), records


def policy_history(db: Database, limit: int | None = 100) -> list[PolicyChangeRecord]:
    """Audit rows, newest first, each with the comment of its version."""
    query = (select(PolicyChange, PolicyVersion.comment).join(PolicyVersion, PolicyVersion.id == PolicyChange.version_id)
             .order_by(PolicyChange.id.desc()))
    if limit:
        query = query.limit(limit)
    with db.read() as session:
        return [PolicyChangeRecord(c.version_id, c.key, c.old_value, c.new_value, c.changed_by, c.changed_at,
                                   comment) for c, comment in session.execute(query)]


def describe_policy(policy: Policy) -> list[KeyState]:
    values = policy.values()
    return [KeyState(name, values[name], info.default, info.meaning, allowed_words(name))
            for name, info in KEYS.items()]
