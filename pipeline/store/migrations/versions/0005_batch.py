"""Batch robustness: who runs a run (host, pid, heartbeat) so a killed run is closed on the
next start; call leases so concurrent runs never process one call at once; failure rows that
remember what failed (file hash, configuration fingerprint) and are updated, not duplicated.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=True))
    with op.batch_alter_table("failures") as batch:
        batch.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("config_fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "call_leases",
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_call_leases_run_id_runs")),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_leases")),
    )


def downgrade() -> None:
    op.drop_table("call_leases")
    with op.batch_alter_table("failures") as batch:
        for column in ("updated_at", "attempts", "config_fingerprint", "source_sha256"):
            batch.drop_column(column)
    with op.batch_alter_table("runs") as batch:
        for column in ("status", "heartbeat_at", "pid", "host"):
            batch.drop_column(column)
