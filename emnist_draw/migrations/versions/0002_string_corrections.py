"""The string_corrections table: strings read wrong, with the strokes of each character, and
which later correction of the same ink replaced each one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The fix store.check_schema gives for a dropped `corrections` table (drop alembic_version,
    # upgrade again) runs every migration again: this table is then there already, with its rows.
    if sa.inspect(op.get_bind()).has_table("string_corrections"):
        return
    op.create_table(
        "string_corrections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, comment="UTC"),
        sa.Column("read", sa.String(256), nullable=False, comment="what the app read"),
        sa.Column("text", sa.String(256), nullable=False, comment="what it really is, as sent"),
        sa.Column("labels", sa.String(256), nullable=False,
                  comment="the class of each non-space character of text, in order"),
        sa.Column("segments", sa.JSON(), nullable=True,
                  comment="the stroke indices of each character of labels; null: not given"),
        sa.Column("characters", sa.Integer(), nullable=False,
                  comment="the per-character examples it yields: len(segments), else 0"),
        sa.Column("charset", sa.String(16), nullable=False,
                  comment="the character set it chose from"),
        sa.Column("ink", sa.JSON(), nullable=False, comment="strokes (and canvas) exactly as sent"),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("replaced_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("string_corrections.id"), nullable=True,
                  comment="the later string correction of the same ink that supersedes this "
                          "one; null: none, it counts"),
    )


def downgrade() -> None:
    op.drop_table("string_corrections")
