"""Review workflow: users, disputes, the audit log of human actions, call review state,
and the indexes the review queue needs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("api_token_sha256", sa.String(length=64), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "role IN ('admin', 'reviewer', 'trainer', 'agent')", name=op.f("ck_users_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.UniqueConstraint("api_token_sha256", name=op.f("uq_users_api_token_sha256")),
    )

    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("item_result_id", sa.Integer(), nullable=False),
        sa.Column("raised_by", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ruled_by", sa.Integer(), nullable=True),
        sa.Column("ruling_comment", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("ruled_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'upheld', 'rejected')", name=op.f("ck_disputes_status")
        ),
        sa.ForeignKeyConstraint(["call_pk"], ["calls.id"], name=op.f("fk_disputes_call_pk_calls")),
        sa.ForeignKeyConstraint(
            ["item_result_id"],
            ["item_results.id"],
            name=op.f("fk_disputes_item_result_id_item_results"),
        ),
        sa.ForeignKeyConstraint(
            ["raised_by"], ["users.id"], name=op.f("fk_disputes_raised_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["ruled_by"], ["users.id"], name=op.f("fk_disputes_ruled_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
    )
    op.create_index(op.f("ix_disputes_call_pk"), "disputes", ["call_pk"])
    op.create_index(op.f("ix_disputes_item_result_id"), "disputes", ["item_result_id"])
    op.create_index(op.f("ix_disputes_status"), "disputes", ["status"])

    op.create_table(
        "review_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("item_result_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("before", sa.Boolean(), nullable=True),
        sa.Column("after", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("dispute_id", sa.Integer(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "kind IN ('override', 'dispute', 'ruling', 'confirm')",
            name=op.f("ck_review_actions_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_review_actions_call_pk_calls")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_review_actions_result_id_results")
        ),
        sa.ForeignKeyConstraint(
            ["item_result_id"],
            ["item_results.id"],
            name=op.f("fk_review_actions_item_result_id_item_results"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_review_actions_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"], ["disputes.id"], name=op.f("fk_review_actions_dispute_id_disputes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_actions")),
    )
    op.create_index(op.f("ix_review_actions_call_pk"), "review_actions", ["call_pk"])
    op.create_index(op.f("ix_review_actions_item_result_id"), "review_actions", ["item_result_id"])

    op.create_table(
        "call_reviews",
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("final_total", sa.Float(), nullable=False),
        sa.Column("final_max", sa.Float(), nullable=False),
        sa.Column("final_auto_fail", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.CheckConstraint(
            "status IN ('auto', 'reviewed', 'disputed')", name=op.f("ck_call_reviews_status")
        ),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_call_reviews_call_pk_calls")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_call_reviews_result_id_results")
        ),
        sa.PrimaryKeyConstraint("call_pk", name=op.f("pk_call_reviews")),
    )
    op.create_index(op.f("ix_call_reviews_status"), "call_reviews", ["status"])

    op.create_index("ix_calls_current_result_id", "calls", ["current_result_id"])
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index(
        "ix_results_queue", "results", ["needs_review", "auto_fail", "risk_score", "id"]
    )
    op.create_index(
        "ix_item_results_item_id_passed", "item_results", ["item_id", "passed", "result_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_item_results_item_id_passed", table_name="item_results")
    op.drop_index("ix_results_queue", table_name="results")
    op.drop_index("ix_calls_started_at", table_name="calls")
    op.drop_index("ix_calls_current_result_id", table_name="calls")
    for table in ("call_reviews", "review_actions", "disputes", "users"):
        op.drop_table(table)
