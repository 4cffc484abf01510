"""A throw-away database for a benchmark: an SQLite file, or a new database on a PostgreSQL server."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(pg_url: str | None, folder: str | Path, prefix: str) -> Iterator[str]:
    """The URL of an empty database: `<folder>/dialer.db`, or `<prefix>_<random>` created on the server
    `pg_url` and dropped afterwards."""
    if not pg_url:
        yield f"sqlite:///{Path(folder) / 'dialer.db'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
