"""Predicted customer satisfaction (risk.satisfaction, -2..2) beside the complaint risk, so the
review queue can sort by it. Results stored before it have none (NULL, sorted last).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("risk_satisfaction", sa.Float(), nullable=True))
    op.create_index("ix_results_risk_satisfaction", "results", ["risk_satisfaction", "id"])


def downgrade() -> None:
    op.drop_index("ix_results_risk_satisfaction", table_name="results")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("risk_satisfaction")
