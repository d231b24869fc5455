"""Personal data: encrypted unredacted transcripts (kept only when configured) and the
audit log of who revealed them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unredacted_transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transcript_id"],
            ["transcripts.id"],
            name=op.f("fk_unredacted_transcripts_transcript_id_transcripts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unredacted_transcripts")),
        sa.UniqueConstraint("transcript_id", name=op.f("uq_unredacted_transcripts_transcript_id")),
    )

    op.create_table(
        "pii_reveals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_pii_reveals_call_pk_calls")
        ),
        sa.ForeignKeyConstraint(
            ["transcript_id"],
            ["transcripts.id"],
            name=op.f("fk_pii_reveals_transcript_id_transcripts"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_pii_reveals_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pii_reveals")),
    )
    op.create_index(op.f("ix_pii_reveals_call_pk"), "pii_reveals", ["call_pk"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pii_reveals_call_pk"), table_name="pii_reveals")
    op.drop_table("pii_reveals")
    op.drop_table("unredacted_transcripts")
