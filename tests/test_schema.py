"""The migrations in migrations/ produce exactly the schema of the ORM models."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from kernel.db.migrate import head_revision, is_up_to_date
from kernel.db.models import Base


def test_migrations_produce_exactly_the_models_schema(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_the_head_revision(db):
    assert head_revision(db) is not None
    assert is_up_to_date(db)


def test_naive_datetime_is_refused_by_the_store(db):
    from datetime import datetime
    import pytest
    from kernel.db.models import Cursor
    with pytest.raises(Exception, match="naive datetime"):
        with db.write() as session:
            session.add(Cursor(name="x", value="1", updated_at=datetime(2026, 1, 1, 12, 0)))
            session.flush()
    with db.read() as session:
        assert session.execute(text("SELECT COUNT(*) FROM cursors")).scalar() == 0


def test_aware_datetime_comes_back_as_the_same_instant_in_utc(db):
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo
    from kernel.db.models import Cursor
    vladivostok = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Vladivostok"))
    with db.write() as session:
        session.add(Cursor(name="x", value="1", updated_at=vladivostok))
    with db.read() as session:
        stored = session.get(Cursor, "x").updated_at
    assert stored == vladivostok
    assert stored.tzinfo == timezone.utc
