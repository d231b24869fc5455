"""The dashboard's materialised figures: ``call_facts`` (what each scored call adds to every
figure), their sums per day and dimension values (``dashboard_days``) and per rubric item
(``dashboard_items``), kept by :mod:`pipeline.store.facts` in the transaction of every save,
re-score and review action; backfilled here from the stored calls.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DIMENSIONS = [
    ("day", 10),
    ("agent_id", 255),
    ("agent_name", 255),
    ("team", 255),
    ("queue", 255),
    ("language", 255),
    ("rubric_id", 255),
    ("rubric_version", 64),
    ("risk_level", 16),
]
FLOATS = {"score_sum", "risk_sum", "final_score_sum"}
MEASURES = [
    "calls", "score_sum", "scored", "auto_fail", "high_risk", "medium_risk", "low_risk",
    "no_risk", "risk_sum", "risk_scored", "needs_review", "error_calls", "reviewed",
    "disputed", "reviewed_items", "overturned_items", "overturned_calls", "final_score_sum",
    "final_scored",
]  # fmt: skip


def _dimensions(items: bool = False) -> list[sa.Column]:
    cols = [sa.Column("group_key", sa.String(length=64), nullable=True)]
    cols += [sa.Column(n, sa.String(length=k), nullable=True) for n, k in DIMENSIONS if not (items and n == "agent_name")]  # fmt: skip
    return cols


def _measures() -> list[sa.Column]:
    return [sa.Column(n, sa.Float() if n in FLOATS else sa.Integer(), nullable=False) for n in MEASURES]  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "call_facts",
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        *_dimensions(),
        *_measures(),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_call_facts_call_pk_calls")
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("call_pk", name=op.f("pk_call_facts")),
    )
    op.create_index("ix_call_facts_group_key", "call_facts", ["group_key"])
    op.create_table(
        "dashboard_days",
        sa.Column("id", sa.Integer(), nullable=False),
        *_dimensions(),
        *_measures(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_days")),
        sa.UniqueConstraint("group_key", name=op.f("uq_dashboard_days_group_key")),
    )
    op.create_table(
        "dashboard_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        *_dimensions(items=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_items")),
        sa.UniqueConstraint(
            "group_key", "item_id", name=op.f("uq_dashboard_items_group_key_item_id")
        ),  # fmt: skip
    )
    for table in ("dashboard_days", "dashboard_items"):
        op.create_index(f"ix_{table}_day", table, ["day"])
        op.create_index(f"ix_{table}_team_day", table, ["team", "day"])
        op.create_index(f"ix_{table}_agent_id_day", table, ["agent_id", "day"])
    _backfill()


def _backfill() -> None:
    """The facts of the calls already stored (the code that keeps them up to date)."""
    from sqlalchemy.orm import Session

    from pipeline.store.facts import rebuild_facts

    rebuild_facts(Session(bind=op.get_bind()))


def downgrade() -> None:
    for table in ("dashboard_items", "dashboard_days"):
        for suffix in ("agent_id_day", "team_day", "day"):
            op.drop_index(f"ix_{table}_{suffix}", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_call_facts_group_key", table_name="call_facts")
    op.drop_table("call_facts")
