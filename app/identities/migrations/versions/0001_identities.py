"""Identities, their faces' descriptors, and the change counter.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO identity_revision (id, value) VALUES (1, 0)")
    op.create_table(
        "identities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_identities_revision", "identities", ["revision"])
    op.create_table(
        "faces",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("identity_id", sa.String(32), sa.ForeignKey("identities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("embedder", sa.String(140), nullable=False),
        sa.Column("descriptor", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_faces_identity_id", "faces", ["identity_id"])
    op.create_index("ix_faces_embedder_revision", "faces", ["embedder", "revision"])


def downgrade() -> None:
    op.drop_table("faces")
    op.drop_table("identities")
    op.drop_table("identity_revision")
