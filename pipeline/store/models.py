"""SQLAlchemy 2 models of the inspection store (tables created by the Alembic migrations).

Machine output is append-only: a call keeps every result it was ever scored with
(``results``, one row per call and fingerprint) and points at its current one; failures are
their own rows. Item results have stable integer keys so later human actions (review,
override, dispute) can be audit rows that reference them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints keep later migrations (and SQLite batch mode) deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """``value`` with its time zone; SQLite hands timestamps back naive (written in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC (None stays None)."""
    return None if value is None else aware(value).isoformat()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType}


class Run(Base):
    """One pipeline run over an archive."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    archive: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scored: Mapped[int | None] = mapped_column(Integer)
    failed: Mapped[int | None] = mapped_column(Integer)
    skipped: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict[str, Any] | None] = mapped_column()
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str | None] = mapped_column(String(16))  # running|finished|stopped|killed


class CallLease(Base):
    """A run's claim on one call while it processes it; expired leases may be taken over."""

    __tablename__ = "call_leases"

    call_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    holder: Mapped[str] = mapped_column(String(255))  # host:pid:thread
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Call(Base):
    """One recorded call: CTI metadata and a pointer to its current machine result."""

    __tablename__ = "calls"
    __table_args__ = (CheckConstraint("status IN ('scored', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), unique=True)
    agent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    agent_name: Mapped[str | None] = mapped_column(String(255))
    team: Mapped[str | None] = mapped_column(String(255), index=True)
    started_at: Mapped[str | None] = mapped_column(String(64))  # as the CTI wrote it (ISO)
    direction: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(16))
    # routing metadata of the manifest (migration 0004): a re-score routes with them again
    queue: Mapped[str | None] = mapped_column(String(255))
    skill: Mapped[str | None] = mapped_column(String(255))
    agent_group: Mapped[str | None] = mapped_column(String(255))
    manifest_rubric: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    duration: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)  # scored | failed
    error: Mapped[str | None] = mapped_column(Text)  # set while status is failed
    current_result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id", use_alter=True))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Transcript(Base):
    """A transcript artefact (full Transcript JSON), shared by the results scored from it."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("call_pk", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))  # schema.canonical_sha256 of the document
    # ScoringConfig.stage_sha256("transcript") of what produced it (ASR, diarizer, redaction)
    stage_sha256: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[float | None] = mapped_column(Float)
    asr_model: Mapped[str | None] = mapped_column(Text)
    compute_type: Mapped[str | None] = mapped_column(String(32))
    pipeline_version: Mapped[str | None] = mapped_column(String(32))
    document: Mapped[dict[str, Any]] = mapped_column()
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Utterance(Base):
    __tablename__ = "utterances"
    __table_args__ = (UniqueConstraint("transcript_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    idx: Mapped[int] = mapped_column(Integer)  # the index evidence refers to
    speaker: Mapped[str] = mapped_column(String(16))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    channel: Mapped[int | None] = mapped_column(Integer)


class Result(Base):
    """One machine result of a call (full Result JSON plus its queryable figures)."""

    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("call_pk", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    rubric_id: Mapped[str] = mapped_column(String(255), index=True)
    rubric_version: Mapped[str] = mapped_column(String(64))
    rubric_sha256: Mapped[str | None] = mapped_column(String(64))
    asr_model: Mapped[str | None] = mapped_column(Text)
    compute_type: Mapped[str | None] = mapped_column(String(32))
    pipeline_version: Mapped[str | None] = mapped_column(String(32))
    total: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    auto_fail: Mapped[bool] = mapped_column(Boolean)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    risk_score: Mapped[float | None] = mapped_column(Float)
    risk_level: Mapped[str | None] = mapped_column(String(16))
    risk_evidence: Mapped[list[Any] | None] = mapped_column()
    risk_model: Mapped[str | None] = mapped_column(Text)
    risk_satisfaction: Mapped[float | None] = mapped_column(Float)  # -2..2, predicted
    document: Mapped[dict[str, Any]] = mapped_column()
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemResult(Base):
    """One rubric item's machine verdict; the stable target of review/override/dispute rows."""

    __tablename__ = "item_results"
    __table_args__ = (UniqueConstraint("result_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"))
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(255), index=True)
    section: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float | None] = mapped_column(Float)
    critical: Mapped[bool] = mapped_column(Boolean)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    applicable: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column()


class Failure(Base):
    """A failed attempt at a call, with its reason; never touches earlier results."""

    __tablename__ = "failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    error: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # what failed: the same file under the same configuration updates this row (attempts + 1)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    config_fingerprint: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --------------------------------------------------------------------------- review workflow
# Human actions never touch the machine rows above: they are append-only audit rows that
# reference item_results by id; ``call_reviews`` only caches the derived state for the queue.

ROLES = ("admin", "reviewer", "trainer", "agent", "team_lead", "manager")
REVIEW_STATUSES = ("auto", "reviewed", "disputed")
DISPUTE_STATUSES = ("open", "upheld", "rejected")
AUDIT_KINDS = ("override", "dispute", "ruling", "confirm")


class User(Base):
    """An account of the review app; ``agent_id`` ties an agent to the calls they may see."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'reviewer', 'trainer', 'agent', 'team_lead', 'manager')", name="role"),)  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    api_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserTeam(Base):
    """A team (the calls' ``team``) whose calls a team lead sees (migration 0009)."""

    __tablename__ = "user_teams"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    team: Mapped[str] = mapped_column(String(255), primary_key=True)


class Dispute(Base):
    """An agent's appeal (申诉) against one item verdict, and the reviewer's ruling on it."""

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint("status IN ('open', 'upheld', 'rejected')", name="status"),)  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    item_result_id: Mapped[int] = mapped_column(ForeignKey("item_results.id"), index=True)
    raised_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    ruled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ruling_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ruled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewAction(Base):
    """One human action on an item (override, dispute, ruling): who, when, before, after, why."""

    __tablename__ = "review_actions"
    __table_args__ = (CheckConstraint("kind IN ('override', 'dispute', 'ruling', 'confirm')", name="kind"),)  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"))
    item_result_id: Mapped[int] = mapped_column(ForeignKey("item_results.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    before: Mapped[bool | None] = mapped_column(Boolean)  # item verdict before the action
    after: Mapped[bool | None] = mapped_column(Boolean)  # ... and after it
    comment: Mapped[str | None] = mapped_column(Text)
    dispute_id: Mapped[int | None] = mapped_column(ForeignKey("disputes.id"))
    # set on a verdict carried over to a new result version: the action it repeats
    carried_from_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CallReview(Base):
    """Derived review state of a call (recomputed from the audit rows after each action)."""

    __tablename__ = "call_reviews"
    __table_args__ = (CheckConstraint("status IN ('auto', 'reviewed', 'disputed')", name="status"),)  # fmt: skip

    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    final_total: Mapped[float] = mapped_column(Float)
    final_max: Mapped[float] = mapped_column(Float)
    final_auto_fail: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


# Queue indexes on the machine tables (declared here so the models match migration 0002):
# the default order walks results by priority and joins each to the call that points at it.
Index("ix_calls_current_result_id", Call.current_result_id)
Index("ix_transcripts_call_pk_stage_sha256", Transcript.call_pk, Transcript.stage_sha256)
Index("ix_calls_started_at", Call.started_at)
Index(
    "ix_results_queue",
    Result.needs_review,
    Result.auto_fail,
    Result.risk_score,
    Result.id,
)
Index("ix_results_risk_satisfaction", Result.risk_satisfaction, Result.id)
Index("ix_item_results_item_id_passed", ItemResult.item_id, ItemResult.passed, ItemResult.result_id)
# The dashboard's passes (migration 0009): a period's calls read from the index alone (no call
# rows), and the verdicts of a result's items likewise.
Index(
    "ix_calls_dashboard",
    Call.started_at,
    Call.current_result_id,
    Call.agent_id,
    Call.team,
    Call.agent_name,
    Call.language,
    Call.queue,
)
Index("ix_item_results_result_id_item_id_passed", ItemResult.result_id, ItemResult.item_id, ItemResult.passed)  # fmt: skip


# --------------------------------------------------------------------------- dashboard facts
# Materialised for the dashboard and ``callqa report`` (migration 0010, pipeline.store.facts):
# one row per scored call with what its figures are made of, and the sums of those rows per
# day and dimension (agent, team, queue, language, rubric and version, risk level), overall
# and per rubric item. Written in the transaction that saves, re-scores or reviews the call.

FACT_DIMENSIONS = ("day", "agent_id", "agent_name", "team", "queue", "language", "rubric_id", "rubric_version", "risk_level")  # fmt: skip
# additive figures of a call (0/1 flags, sums and their counts); the aggregates sum them
FACT_MEASURES = (
    "calls",
    "score_sum",  # 100 * total / max, summed over the calls with max > 0 ...
    "scored",  # ... and their number
    "auto_fail",
    "high_risk",
    "medium_risk",
    "low_risk",
    "no_risk",  # no risk level
    "risk_sum",  # risk score, summed over the calls that have one ...
    "risk_scored",  # ... and their number
    "needs_review",
    "error_calls",  # calls with a failed applicable item
    "reviewed",  # review status reviewed
    "disputed",  # review status disputed (an open dispute)
    "reviewed_items",  # items of reviewed calls
    "overturned_items",  # ... whose final verdict differs from the machine's
    "overturned_calls",  # reviewed calls with such an item (the queue's ``overturned``)
    "final_score_sum",  # 100 * final total / final max (reviewers' verdicts applied) ...
    "final_scored",  # ... and their number
)
_FLOAT_MEASURES = {"score_sum", "risk_sum", "final_score_sum"}


def _fact_columns(indexed: bool = False, items: bool = False) -> dict[str, Any]:
    cols: dict[str, Any] = {"group_key": mapped_column(String(64), index=indexed)}
    for name in FACT_DIMENSIONS:
        if items and name == "agent_name":
            continue
        size = 10 if name == "day" else 64 if name == "rubric_version" else 16 if name == "risk_level" else 255  # fmt: skip
        cols[name] = mapped_column(String(size), nullable=True)
    return cols


def _measure_columns() -> dict[str, Any]:
    return {
        name: mapped_column(
            Float if name in _FLOAT_MEASURES else Integer, nullable=False, default=0
        )  # fmt: skip
        for name in FACT_MEASURES
    }


class CallFact(Base):
    """What one scored call adds to the dashboard's figures (its current result, its review
    state): the dimensions it is filtered and grouped by, and its additive figures."""

    __tablename__ = "call_facts"
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    result_id: Mapped[int] = mapped_column(Integer)
    locals().update(_fact_columns(indexed=True))
    locals().update(_measure_columns())


class DashboardDay(Base):
    """The sums of the call facts of one day and dimension values (``group_key``)."""

    __tablename__ = "dashboard_days"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    locals().update(_fact_columns())
    locals().update(_measure_columns())
    __table_args__ = (UniqueConstraint("group_key"),)


class DashboardItem(Base):
    """Machine verdicts of one rubric item in the calls of one ``group_key``."""

    __tablename__ = "dashboard_items"
    __table_args__ = (UniqueConstraint("group_key", "item_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(255))
    passed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    locals().update(_fact_columns(items=True))


# the dashboard's reads: a period, a team's or an agent's days
for _table in (DashboardDay, DashboardItem):
    Index(f"ix_{_table.__tablename__}_day", _table.day)
    Index(f"ix_{_table.__tablename__}_team_day", _table.team, _table.day)
    Index(f"ix_{_table.__tablename__}_agent_id_day", _table.agent_id, _table.day)


# --------------------------------------------------------------------------- personal data
# Kept only when QA_KEEP_UNREDACTED is on (pipeline.redact.vault): the transcript as
# transcribed, Fernet-encrypted, next to the redacted one it was redacted into. Every time
# someone reveals it in the review app, an audit row says who, when and which call.


class UnredactedTranscript(Base):
    """The encrypted unredacted original of one (redacted) transcript row."""

    __tablename__ = "unredacted_transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"), unique=True)
    key_id: Mapped[str] = mapped_column(String(64))  # fingerprint of the key, not the key
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PiiReveal(Base):
    """One reveal of a call's unredacted transcript: who, when, which call."""

    __tablename__ = "pii_reveals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --------------------------------------------------------------------------- review app
# Server-side sessions (the cookie carries only a random token; its SHA-256 is stored, so a
# revoked or expired row ends the session wherever the cookie was copied), login attempts for
# throttling, per-user preferences and saved queue filters, and the cross-call search index.


class WebSession(Base):
    """One signed-in browser session; revoked on logout, password change, deactivation."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(String(64))


class LoginAttempt(Base):
    """One login attempt (name as typed, source address, outcome) for throttling."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_login_attempts_username_created_at", LoginAttempt.username, LoginAttempt.created_at)
Index("ix_login_attempts_ip_created_at", LoginAttempt.ip, LoginAttempt.created_at)


class UserPref(Base):
    """A user's saved interface choices (language, queue page size)."""

    __tablename__ = "user_prefs"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    per_page: Mapped[int | None] = mapped_column(Integer)


class SavedFilter(Base):
    """A named queue filter (the query string) of one user."""

    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FormDraft(Base):
    """Text typed into a form whose session had ended, kept until the user signs in again
    (the browser holds only a random token for it)."""

    __tablename__ = "form_drafts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # who typed it: only they get it back (migration 0007; older rows have none)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookOutbox(Base):
    """A webhook event waiting for (or past) delivery (migration 0007): written in the
    transaction of the change that caused it, delivered at least once by the app's sender,
    retried with backoff while the receiver is down. ``delivery_id`` is the idempotency
    key."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(32), unique=True)
    event: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(255))  # the call id
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the payload
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a final 4xx
    last_error: Mapped[str | None] = mapped_column(String(500))


Index("ix_webhook_outbox_subject", WebhookOutbox.event, WebhookOutbox.subject, WebhookOutbox.id)
Index("ix_webhook_outbox_due", WebhookOutbox.delivered_at, WebhookOutbox.next_attempt_at)


class SearchDoc(Base):
    """What a call's current transcript says, for search: the text (utterances joined by
    newlines) and its terms (CJK bigrams and lower-cased words, space-separated)."""

    __tablename__ = "search_docs"

    call_pk: Mapped[int] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    result_id: Mapped[int] = mapped_column(Integer, index=True)
    text: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)


CallModel = TypeVar("CallModel", bound=BaseModel)


def copy_call(call: Call, model: type[CallModel], **extra: Any) -> CallModel:
    """A ``model`` (CallJob, CallInfo, SearchHit...) holding ``call``'s columns of the same
    names, plus ``extra`` for the fields a call row does not have."""
    columns = CALL_COLUMN_NAMES.intersection(model.model_fields).difference(extra)
    return model(**{name: getattr(call, name) for name in columns}, **extra)


CALL_COLUMN_NAMES: frozenset[str] = frozenset(Call.__table__.columns.keys())


class LlmAnswer(Base):
    """A language model's answer to one rubric question on one transcript (migration 0011):
    the cache that keeps a re-score with the same configuration from asking again. ``model``
    is the hash of the whole LLM section of the ScoringConfig (backend, model and its
    sha256, prompt template, decode settings), so any change there misses."""

    __tablename__ = "llm_answers"

    transcript_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    question_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
