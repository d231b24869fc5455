"""Review app under abuse: kept form text belongs to the user who typed it
(``form_drafts.user_id``), and webhook events go through an outbox in the store
(``webhook_outbox``): written with the change, delivered at least once by one sender.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # kept text of no known user is never offered again: nothing to carry over
    op.execute("DELETE FROM form_drafts")
    with op.batch_alter_table("form_drafts") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_form_drafts_user_id_users"), "users", ["user_id"], ["id"]
        )  # fmt: skip

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        _ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("delivered_at", nullable=True),
        _ts("refused_at", nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_webhook_outbox_delivery_id")),
    )
    op.create_index("ix_webhook_outbox_subject", "webhook_outbox", ["event", "subject", "id"])
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["delivered_at", "next_attempt_at"])  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_due", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_subject", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
    with op.batch_alter_table("form_drafts") as batch:
        batch.drop_constraint(op.f("fk_form_drafts_user_id_users"), type_="foreignkey")
        batch.drop_column("user_id")
