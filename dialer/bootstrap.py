"""Bringing a store to life: migrations, then the first rows a working dialer needs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kernel.db.engine import Database
from kernel.db.migrate import current_revision, head_revision, upgrade
from kernel.settings import Settings
from leads.policy.store import seed_policy


def initialize(db: Database, settings: Settings, now: datetime) -> str:
    """Run the migrations up to head; idempotent. Returns a one-line report."""
    before = current_revision(db)
    upgrade(db)
    after = current_revision(db)
    report = (f"schema at revision {after} (already up to date)" if before == after
              else f"schema migrated {before or 'empty'} -> {after}")
    with db.write() as session:
        seeded = seed_policy(session, now, values={"dedup_window_hours": settings.intake.dedup_window_hours})
    return report + (f"; call policy version {seeded} seeded with the defaults" if seeded else "")


def ensure_ready(db: Database) -> None:
    """Refuse to run against a database whose schema is not at the head revision."""
    from kernel.errors import DialerError
    path = db.engine.url.database if db.is_sqlite else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        # Connecting would create an empty file that later reads as "schema at none".
        raise DialerError(f"there is no database at {path}: run `dialer init` first")
    current, head = current_revision(db), head_revision(db)
    if current != head:
        raise DialerError(f"the database schema is at revision {current or 'none'}, the code needs {head}: "
                          f"run `dialer init`")
