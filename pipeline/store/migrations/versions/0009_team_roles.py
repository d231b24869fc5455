"""Review app roles for the dashboard: ``team_lead`` (sees the calls of their teams, listed
in ``user_teams``) and ``manager`` (sees every call, reviews nothing); covering indexes for
the dashboard's passes over a period's calls and their item verdicts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD_ROLES = "role IN ('admin', 'reviewer', 'trainer', 'agent')"
NEW_ROLES = "role IN ('admin', 'reviewer', 'trainer', 'agent', 'team_lead', 'manager')"


def _roles(check: str) -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.create_check_constraint(op.f("ck_users_role"), check)


DASHBOARD_CALLS = ["started_at", "current_result_id", "agent_id", "team", "agent_name", "language", "queue"]  # fmt: skip
ITEM_VERDICTS = ["result_id", "item_id", "passed"]


def upgrade() -> None:
    _roles(NEW_ROLES)
    op.create_index("ix_calls_dashboard", "calls", DASHBOARD_CALLS)
    op.create_index("ix_item_results_result_id_item_id_passed", "item_results", ITEM_VERDICTS)
    op.create_table(
        "user_teams",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_teams_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "team", name=op.f("pk_user_teams")),
    )


def downgrade() -> None:
    op.drop_index("ix_item_results_result_id_item_id_passed", table_name="item_results")
    op.drop_index("ix_calls_dashboard", table_name="calls")
    op.drop_table("user_teams")
    # accounts of the new roles become inactive agents without an agent id: they reach nothing
    op.execute("UPDATE users SET role = 'agent', agent_id = NULL, active = false WHERE role IN ('team_lead', 'manager')")  # fmt: skip
    _roles(OLD_ROLES)
