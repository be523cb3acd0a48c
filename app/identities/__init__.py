"""Enrolled identities: the database (SQLAlchemy + Alembic), each replica's in-memory index, and its sync."""
