"""The corrections table.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
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
        "corrections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, comment="UTC"),
        sa.Column("label", sa.String(1), nullable=False,
                  comment="the right class, one of the 47"),
        sa.Column("predicted", sa.String(1), nullable=False, comment="what the model said"),
        sa.Column("charset", sa.String(16), nullable=False,
                  comment="the character set it chose from"),
        sa.Column("ink_kind", sa.String(8), nullable=False, comment="strokes, image or pixels"),
        sa.Column("ink", sa.JSON(), nullable=False,
                  comment="the ink fields exactly as the client sent them"),
        sa.Column("input", sa.LargeBinary(), nullable=False,
                  comment="the 28x28 model input, uint8, upright"),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("corrections")
