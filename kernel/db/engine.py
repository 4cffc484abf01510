"""One engine per process, and the two kinds of transaction the product needs."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("dialer.db")

# A commit that crosses SQLite's auto-checkpoint threshold copies the WAL into the database file and
# fsyncs it, inside that commit: a claim or a result recorded then took ~10 ms instead of ~1 ms.
# Long-running processes (the daemon, the webhook server) and the CSV import therefore checkpoint
# from a background thread (sqlite3 releases the GIL while it works) and raise the threshold to a
# safety net that only a checkpointer that cannot keep up ever reaches.
DEFAULT_AUTOCHECKPOINT_PAGES = 1000
BACKGROUND_AUTOCHECKPOINT_PAGES = 20000

# SQLite's page cache is private to each connection and fills up to its limit with the pages a
# connection has touched, so with a pool of connections it grew with the store: a 64 MiB cache per
# connection took the daemon to 336-439 MB at 1M leads and the webhook server gained ~0.4 KB per lead
# stored (issue 18). The operating system keeps the file's pages cached anyway (shared, not in our
# RSS); a connection only needs the index pages of its current query. 8 MiB per connection, and few
# connections kept open, bound the memory whatever the size of the store.
SQLITE_CACHE_KIB = 8192
SQLITE_POOL_SIZE = 4


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver we ship), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=SQLITE_POOL_SIZE, max_overflow=36, **kwargs)
        _make_sqlite_transactions_explicit(engine)
        return engine
    # connect_timeout: a server that went away fails a statement in seconds (the daemon then pauses and
    # retries) instead of hanging a worker thread on TCP's own timeout
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True, **kwargs)


def _make_sqlite_transactions_explicit(engine: Engine) -> None:
    # pysqlite opens transactions lazily and never as IMMEDIATE; we emit BEGIN ourselves so that
    # write transactions take SQLite's write lock up front (BEGIN IMMEDIATE): read-decide-write
    # sequences such as dedup and claims cannot interleave.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "busy_timeout=30000",
                       f"cache_size=-{SQLITE_CACHE_KIB}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The store's entry: `read()` for queries, `write()` for read-decide-write transactions."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)
        self._checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            self._autocheckpoint_pages = DEFAULT_AUTOCHECKPOINT_PAGES
            event.listen(self.engine, "checkout", self._set_autocheckpoint)

    def _set_autocheckpoint(self, dbapi_connection, record, _proxy) -> None:
        if record.info.get("wal_autocheckpoint") != self._autocheckpoint_pages:
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={self._autocheckpoint_pages}")
            record.info["wal_autocheckpoint"] = self._autocheckpoint_pages

    def checkpoint_in_background(self, interval_seconds: float = 1.0) -> None:
        """SQLite: move WAL checkpoints out of commits into a thread (until dispose). Else nothing."""
        if not self.is_sqlite or self._checkpointer is not None:
            return
        self._autocheckpoint_pages = BACKGROUND_AUTOCHECKPOINT_PAGES
        self._checkpointer = WalCheckpointer(self.engine, interval_seconds)
        self._checkpointer.start()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on error.

        On SQLite it holds the database write lock from its first statement.
        """
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def checkpoints_in_background(self) -> Iterator[None]:
        """checkpoint_in_background() for the length of a block (a command), stopped after it."""
        self.checkpoint_in_background()
        try:
            yield
        finally:
            self.stop_background_checkpoints()

    def stop_background_checkpoints(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
            self._autocheckpoint_pages = DEFAULT_AUTOCHECKPOINT_PAGES

    def dispose(self) -> None:
        self.stop_background_checkpoints()
        self.engine.dispose()


class WalCheckpointer:
    """A thread that runs `PRAGMA wal_checkpoint(PASSIVE)` every interval on its own connection.

    PASSIVE never waits for readers or writers: it copies what it can and leaves the rest for the
    next round, so it cannot stall a claim. The engine's connections keep a high auto-checkpoint
    threshold as a safety net should this thread fall behind.
    """

    def __init__(self, engine: Engine, interval_seconds: float) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-wal-checkpoint", daemon=True)
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        raw = self._engine.raw_connection()
        try:
            while not self._stopped.wait(self._interval):
                self.checkpoint(raw)
            self.checkpoint(raw)
        finally:
            raw.close()

    def checkpoint(self, raw) -> None:
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
            cursor.close()
            self.rounds += 1
        except Exception as exc:   # a locked or vanished file: log it, try again next round
            log.warning("db.wal_checkpoint failed: %s: %s", type(exc).__name__, exc)
