"""SQLite WAL checkpoints: in the commits by default, in a background thread for long-running processes."""

import os
import time

import pytest
from sqlalchemy import text

from kernel.db.engine import BACKGROUND_AUTOCHECKPOINT_PAGES, DEFAULT_AUTOCHECKPOINT_PAGES, Database

PAGE = 4096


@pytest.fixture
def sqlite_db(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.write() as session:
        session.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"))
    yield db
    db.dispose()


def write_pages(db: Database, pages: int, per_commit: int = 100) -> None:
    for _ in range(pages // per_commit):
        with db.write() as session:
            session.execute(text("INSERT INTO blobs (body) VALUES (randomblob(:n))"),
                            [{"n": PAGE - 100}] * per_commit)


def autocheckpoint(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def test_by_default_commits_checkpoint_the_wal_at_sqlites_threshold(sqlite_db):
    assert autocheckpoint(sqlite_db) == DEFAULT_AUTOCHECKPOINT_PAGES
    write_pages(sqlite_db, 1500)
    with sqlite_db.engine.connect() as conn:
        _busy, log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert log < 1500   # a commit past 1000 pages checkpointed, and the WAL started over


def test_with_background_checkpoints_no_commit_checkpoints_below_the_safety_net(sqlite_db):
    sqlite_db.checkpoint_in_background(interval_seconds=3600)   # the thread stays idle in this test
    assert autocheckpoint(sqlite_db) == BACKGROUND_AUTOCHECKPOINT_PAGES
    write_pages(sqlite_db, 1500)
    with sqlite_db.engine.connect() as conn:
        _busy, log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert log >= 1500   # every page the commits wrote was still only in the WAL


def test_the_background_thread_copies_the_wal_into_the_database(sqlite_db):
    sqlite_db.checkpoint_in_background(interval_seconds=0.05)
    checkpointer = sqlite_db._checkpointer
    write_pages(sqlite_db, 300)
    deadline = time.monotonic() + 10
    rounds = checkpointer.rounds
    while checkpointer.rounds < rounds + 2 and time.monotonic() < deadline:   # a round after the writes
        time.sleep(0.02)
    assert checkpointer.rounds >= rounds + 2
    # The pages are in the database file itself now: only a checkpoint puts them there.
    assert os.path.getsize(sqlite_db.engine.url.database) >= 300 * PAGE


def test_without_the_thread_the_pages_stay_in_the_wal(sqlite_db):
    sqlite_db.checkpoint_in_background(interval_seconds=3600)
    write_pages(sqlite_db, 300)
    assert os.path.getsize(sqlite_db.engine.url.database) < 300 * PAGE


def test_stopping_background_checkpoints_gives_commits_back_the_default(sqlite_db):
    sqlite_db.checkpoint_in_background(interval_seconds=0.05)
    sqlite_db.stop_background_checkpoints()
    assert autocheckpoint(sqlite_db) == DEFAULT_AUTOCHECKPOINT_PAGES
    assert sqlite_db._checkpointer is None
