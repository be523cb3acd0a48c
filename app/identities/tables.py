"""The identity database's tables (SQLAlchemy 2.0 typed ORM); Alembic migrations in ``migrations/`` create them.

Every write takes the next value of the one-row ``identity_revision`` counter inside its transaction and stamps
the rows it touches with it. Taking it is an ``UPDATE``, so it locks that row until commit: writers commit in
revision order, and a replica that has seen revision ``r`` has seen every write up to ``r`` (see ``repository``).
A deleted identity stays as a tombstone (no name, no faces) so replicas learn of the deletion incrementally.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME_MAX = 100
EMBEDDER_MAX = 140


class Base(DeclarativeBase):
    pass


class Revision(Base):
    """The database's change counter: one row, ``id = 1``."""

    __tablename__ = "identity_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class IdentityRow(Base):
    __tablename__ = "identities"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revision: Mapped[int] = mapped_column(BigInteger, index=True)


class FaceRow(Base):
    """One enrolled face: its descriptor (float32 bytes, L2-normalised) and the embedder that made it."""

    __tablename__ = "faces"
    __table_args__ = (Index("ix_faces_embedder_revision", "embedder", "revision"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    identity_id: Mapped[str] = mapped_column(String(32), ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    embedder: Mapped[str] = mapped_column(String(EMBEDDER_MAX))
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(BigInteger)
