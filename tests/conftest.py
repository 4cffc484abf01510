"""Shared fixtures. Database tests run on both SQLite (a real file) and PostgreSQL (a real server).

PostgreSQL: DIALER_TEST_PG_URL points at a server and a database we may connect to
(default postgresql+psycopg://postgres@127.0.0.1:5432/test); each pytest run creates its own
database there and drops it at the end, so parallel runs do not disturb each other.
If the server is unreachable the PostgreSQL tests fail: they are never skipped silently.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.db.models import Base

PG_ADMIN_URL = os.environ.get("DIALER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url():
    """URL of a fresh, migrated PostgreSQL database for this pytest run."""
    name = f"dialer_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    upgrade(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(db: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A migrated, empty database URL: a new SQLite file, or the run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dialer.db'}"
        db = Database(url)
        upgrade(db)
        db.dispose()
        return url
    url = request.getfixturevalue("pg_url")
    db = Database(url)
    _truncate_all(db)
    db.dispose()
    return url


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'dialer.db'}")
    upgrade(database)
    yield database
    database.dispose()


def moscow(*args) -> datetime:
    """A Moscow wall-clock time as an aware datetime: moscow(2026, 11, 23, 10, 0)."""
    from zoneinfo import ZoneInfo
    return datetime(*args, tzinfo=ZoneInfo("Europe/Moscow"))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def run_dialer(tmp_path):
    """Run the `dialer` CLI as a subprocess in tmp_path, on a fresh SQLite file (DIALER_DB_URL).

    Other DIALER_* variables of the caller are dropped so the run sees only what the test sets.
    Returns subprocess.CompletedProcess with text stdout/stderr.
    """
    import subprocess
    import sys

    def run(*args: str, env: dict[str, str] | None = None, input: str | bytes | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
        environment.update({"DIALER_DB_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PYTHONIOENCODING": "utf-8",
                            "COLUMNS": "200", "NO_COLOR": "1"})
        environment.update(env or {})
        result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=tmp_path, env=environment,
                                capture_output=True, input=input.encode() if isinstance(input, str) else input,
                                timeout=120)
        result.stdout = result.stdout.decode("utf-8")
        result.stderr = result.stderr.decode("utf-8")
        return result
    return run


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@pytest.fixture
def cli_db(run_dialer, tmp_path, _migrated_sqlite_template):
    """The run_dialer database, already migrated (a copy of one migrated file: no `dialer init` per test).

    Returns a Database on it, for checking what the command stored."""
    import shutil
    shutil.copyfile(_migrated_sqlite_template, tmp_path / "cli.db")
    database = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    yield database
    database.dispose()


@pytest.fixture
def cli_in_process(capsys):
    """`dialer ...` in this process (cli.main): (exit code, stdout, stderr); the root logger restored after."""
    import logging

    import cli

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            cli.main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    root.handlers[:], root.level = handlers, level
