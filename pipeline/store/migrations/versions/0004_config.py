"""Scoring configuration: the transcript-stage hash of each transcript (re-score without
ASR), routing metadata of calls (queue, skill, agent group, the manifest's rubric), human
verdicts carried over to a new result version, and one canonical transcript hash.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CALL_COLUMNS = ("queue", "skill", "agent_group")


def upgrade() -> None:
    op.add_column("transcripts", sa.Column("stage_sha256", sa.String(length=64), nullable=True))
    op.create_index(
        op.f("ix_transcripts_call_pk_stage_sha256"), "transcripts", ["call_pk", "stage_sha256"]
    )
    for name in CALL_COLUMNS:
        op.add_column("calls", sa.Column(name, sa.String(length=255), nullable=True))
    op.add_column("calls", sa.Column("manifest_rubric", sa.Text(), nullable=True))
    # no FK constraint: SQLite cannot add one without rebuilding the table (and its CHECKs)
    op.add_column("review_actions", sa.Column("carried_from_id", sa.Integer(), nullable=True))
    _canonical_transcript_hashes()


def _canonical_transcript_hashes() -> None:
    """Re-key stored transcripts by :func:`pipeline.schema.canonical_sha256` (the hash the
    Result records), so a re-run finds them; a row whose new hash another row of the call
    already has keeps its old one."""
    from pipeline.schema import canonical_sha256

    bind = op.get_bind()
    t = sa.table(
        "transcripts",
        sa.column("id", sa.Integer),
        sa.column("call_pk", sa.Integer),
        sa.column("sha256", sa.String),
        sa.column("document", sa.JSON),
    )
    rows = bind.execute(sa.select(t.c.id, t.c.call_pk, t.c.sha256, t.c.document)).all()
    taken = {(r.call_pk, r.sha256) for r in rows}
    for r in rows:
        document = (
            r.document if isinstance(r.document, dict) else __import__("json").loads(r.document)
        )
        new = canonical_sha256(document)
        if new == r.sha256 or (r.call_pk, new) in taken:
            continue
        bind.execute(sa.update(t).where(t.c.id == r.id).values(sha256=new))
        taken.discard((r.call_pk, r.sha256))
        taken.add((r.call_pk, new))


def downgrade() -> None:
    op.drop_column("review_actions", "carried_from_id")
    op.drop_column("calls", "manifest_rubric")
    for name in reversed(CALL_COLUMNS):
        op.drop_column("calls", name)
    op.drop_index(op.f("ix_transcripts_call_pk_stage_sha256"), table_name="transcripts")
    op.drop_column("transcripts", "stage_sha256")
