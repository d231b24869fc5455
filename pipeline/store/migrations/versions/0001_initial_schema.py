"""Initial schema: runs, calls, transcripts, utterances, results, item_results, failures.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("archive", sa.Text(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scored", sa.Integer(), nullable=True),
        sa.Column("failed", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
        sa.Column("summary", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    # calls.current_result_id -> results.id is added once results exists (a cycle).
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=True),
        sa.Column("agent_name", sa.String(length=255), nullable=True),
        sa.Column("team", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("current_result_id", sa.Integer(), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('scored', 'failed')", name=op.f("ck_calls_status")),
        sa.ForeignKeyConstraint(
            ["last_run_id"], ["runs.id"], name=op.f("fk_calls_last_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_calls_call_id")),
    )
    op.create_index(op.f("ix_calls_agent_id"), "calls", ["agent_id"])
    op.create_index(op.f("ix_calls_team"), "calls", ["team"])
    op.create_index(op.f("ix_calls_status"), "calls", ["status"])

    op.create_table(
        "failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["call_pk"], ["calls.id"], name=op.f("fk_failures_call_pk_calls")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_failures_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failures")),
    )
    op.create_index(op.f("ix_failures_call_pk"), "failures", ["call_pk"])

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("asr_model", sa.Text(), nullable=True),
        sa.Column("compute_type", sa.String(length=32), nullable=True),
        sa.Column("pipeline_version", sa.String(length=32), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["call_pk"], ["calls.id"], name=op.f("fk_transcripts_call_pk_calls")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_transcripts_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcripts")),
        sa.UniqueConstraint("call_pk", "sha256", name=op.f("uq_transcripts_call_pk_sha256")),
    )
    op.create_index(op.f("ix_transcripts_call_pk"), "transcripts", ["call_pk"])

    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_pk", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rubric_id", sa.String(length=255), nullable=False),
        sa.Column("rubric_version", sa.String(length=64), nullable=False),
        sa.Column("rubric_sha256", sa.String(length=64), nullable=True),
        sa.Column("asr_model", sa.Text(), nullable=True),
        sa.Column("compute_type", sa.String(length=32), nullable=True),
        sa.Column("pipeline_version", sa.String(length=32), nullable=True),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("auto_fail", sa.Boolean(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=True),
        sa.Column("risk_level", sa.String(length=16), nullable=True),
        sa.Column("risk_evidence", JSON, nullable=True),
        sa.Column("risk_model", sa.Text(), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["call_pk"], ["calls.id"], name=op.f("fk_results_call_pk_calls")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_results_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["transcript_id"],
            ["transcripts.id"],
            name=op.f("fk_results_transcript_id_transcripts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint("call_pk", "fingerprint", name=op.f("uq_results_call_pk_fingerprint")),
    )
    op.create_index(op.f("ix_results_call_pk"), "results", ["call_pk"])
    op.create_index(op.f("ix_results_rubric_id"), "results", ["rubric_id"])

    with op.batch_alter_table("calls") as batch_op:
        batch_op.create_foreign_key(
            op.f("fk_calls_current_result_id_results"), "results", ["current_result_id"], ["id"]
        )

    op.create_table(
        "utterances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["transcript_id"],
            ["transcripts.id"],
            name=op.f("fk_utterances_transcript_id_transcripts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_utterances")),
        sa.UniqueConstraint("transcript_id", "idx", name=op.f("uq_utterances_transcript_id_idx")),
    )

    op.create_table(
        "item_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=255), nullable=False),
        sa.Column("section", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("max_points", sa.Float(), nullable=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("applicable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("evidence", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_item_results_result_id_results")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_results")),
        sa.UniqueConstraint("result_id", "item_id", name=op.f("uq_item_results_result_id_item_id")),
    )
    op.create_index(op.f("ix_item_results_item_id"), "item_results", ["item_id"])


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_constraint(op.f("fk_calls_current_result_id_results"), type_="foreignkey")
    for table in ("item_results", "utterances", "results", "transcripts", "failures", "calls"):
        op.drop_table(table)
    op.drop_table("runs")
