"""The store: ORM models, engine and sessions, migrations."""
