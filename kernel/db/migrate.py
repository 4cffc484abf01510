"""Run the Alembic migrations in migrations/ from code (`dialer init`, tests, the daemon's start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from kernel.db.engine import Database

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    config.attributes["engine"] = db.engine
    return config


def upgrade(db: Database, revision: str = "heads") -> None:
    command.upgrade(alembic_config(db), revision)


def current_revision(db: Database) -> str | None:
    """The applied revision(s), comma-separated when branches are applied side by side."""
    with db.engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision(db: Database) -> str | None:
    return ",".join(sorted(ScriptDirectory.from_config(alembic_config(db)).get_heads())) or None


def is_up_to_date(db: Database) -> bool:
    return current_revision(db) == head_revision(db)
