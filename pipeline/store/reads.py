"""Reading calls: whether a call is scored with a fingerprint, its current result and
transcript, its versions and failures, the calls to re-score, and the listing of calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline import schema
from pipeline.store import models as m
from pipeline.store.db import StoreError
from pipeline.store.fingerprint import result_config
from pipeline.store.session import StoreBase

CALL_COLUMNS = (
    "call_id",
    "status",
    "total",
    "max",
    "auto_fail",
    "needs_review",
    "risk",
    "risk_level",
    "agent_id",
    "agent_name",
    "team",
    "started_at",
    "direction",
    "language",
    "duration",
    "error",
    "rubric_id",
    "rubric_version",
    "result_versions",
    "scored_at",
)


def _version(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


class Reads(StoreBase):
    """Reads of calls, results, transcripts and failures."""

    def is_scored(self, call_id: str, fingerprint: str) -> bool:
        """True when the call's current result was produced with ``fingerprint``."""
        with self.session(f"cannot read call {call_id!r}") as s:
            found = s.scalar(
                select(m.Result.id)
                .join(m.Call, m.Call.current_result_id == m.Result.id)
                .where(m.Call.call_id == call_id, m.Result.fingerprint == fingerprint)
            )
            return found is not None

    def list_calls(
        self, status: str | None = None, call_id: str | None = None
    ) -> list[dict[str, Any]]:
        """One dict per call (keys: :data:`CALL_COLUMNS`) with its current result, by call_id
        (``call_id``: only that call)."""
        if status not in (None, "scored", "failed"):
            raise StoreError(f"unknown status {status!r}; valid: scored, failed")
        versions = (
            select(m.Result.call_pk, func.count().label("n")).group_by(m.Result.call_pk).subquery()
        )
        query = (
            select(m.Call, m.Result, versions.c.n)
            .outerjoin(m.Result, m.Call.current_result_id == m.Result.id)
            .outerjoin(versions, versions.c.call_pk == m.Call.id)
            .order_by(m.Call.call_id)
        )
        if status is not None:
            query = query.where(m.Call.status == status)
        if call_id is not None:
            query = query.where(m.Call.call_id == call_id)
        with self.session("cannot list calls") as s:
            return [self._row(call, res, n or 0) for call, res, n in s.execute(query)]

    @staticmethod
    def _row(call: m.Call, res: m.Result | None, versions: int = 0) -> dict[str, Any]:
        return {
            "call_id": call.call_id,
            "status": call.status,
            "total": res.total if res else None,
            "max": res.max if res else None,
            "auto_fail": res.auto_fail if res else None,
            "needs_review": res.needs_review if res else None,
            "risk": res.risk_score if res else None,
            "risk_level": res.risk_level if res else None,
            "agent_id": call.agent_id,
            "agent_name": call.agent_name,
            "team": call.team,
            "started_at": call.started_at,
            "direction": call.direction,
            "language": call.language,
            "duration": call.duration,
            "error": call.error,
            "rubric_id": res.rubric_id if res else None,
            "rubric_version": _version(res.rubric_version) if res else None,
            "result_versions": versions,
            "scored_at": m.iso(res.created_at) if res else None,
        }

    def _current(self, s: Session, call_id: str) -> m.Result | None:
        return s.scalar(
            select(m.Result)
            .join(m.Call, m.Call.current_result_id == m.Result.id)
            .where(m.Call.call_id == call_id)
        )

    def get_result(self, call_id: str) -> schema.Result | None:
        """The call's current machine result, or None when it was never scored."""
        with self.session(f"cannot read call {call_id!r}") as s:
            res = self._current(s, call_id)
            return schema.Result.model_validate(res.document) if res else None

    def get_transcript(self, call_id: str) -> schema.Transcript | None:
        """The transcript the call's current result was scored from, or None."""
        with self.session(f"cannot read call {call_id!r}") as s:
            res = self._current(s, call_id)
            if res is None:
                return None
            document = s.scalar(
                select(m.Transcript.document).where(m.Transcript.id == res.transcript_id)
            )
            return schema.Transcript.model_validate(document)

    def rescore_targets(
        self,
        *,
        call_ids: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        team: str | None = None,
    ) -> list[str]:
        """Ids of calls with a current result, by call id; ``since``/``until`` bound the
        ISO ``started_at`` (``since`` ≤ it < ``until``), ``team`` matches exactly."""
        query = select(m.Call.call_id).where(m.Call.current_result_id.is_not(None))
        if call_ids is not None:
            query = query.where(m.Call.call_id.in_(call_ids))
        if since is not None:
            query = query.where(m.Call.started_at >= since)
        if until is not None:
            query = query.where(m.Call.started_at < until)
        if team is not None:
            query = query.where(m.Call.team == team)
        with self.session("cannot select calls to re-score") as s:
            return list(s.scalars(query.order_by(m.Call.call_id)))

    def iter_rescore_inputs(
        self, call_ids: list[str], chunk: int = 200
    ) -> Iterator[dict[str, Any]]:
        """Per call: ``job`` (its stored metadata as a CallJob), the ``transcript`` and
        ``result`` documents of its current result; read ``chunk`` calls per query."""
        for i in range(0, len(call_ids), chunk):
            part = call_ids[i : i + chunk]
            query = (
                select(m.Call, m.Result.document, m.Transcript.document)
                .join(m.Result, m.Result.id == m.Call.current_result_id)
                .join(m.Transcript, m.Transcript.id == m.Result.transcript_id)
                .where(m.Call.call_id.in_(part))
                .order_by(m.Call.call_id)
            )
            with self.session("cannot read calls to re-score") as s:
                rows = s.execute(query).all()
            for call, result, transcript in rows:
                yield {
                    "job": schema.CallJob(
                        call_id=call.call_id,
                        source=call.source or "",
                        agent_id=call.agent_id,
                        agent_name=call.agent_name,
                        team=call.team,
                        started_at=call.started_at,
                        direction=call.direction,
                        language=call.language,
                        queue=call.queue,
                        skill=call.skill,
                        agent_group=call.agent_group,
                        rubric=call.manifest_rubric,
                    ),
                    "result": result,
                    "transcript": transcript,
                }

    def find_transcript(
        self, call_id: str, stage_sha256: str, source_sha256: str | None = None
    ) -> schema.Transcript | None:
        """The newest stored transcript of the call made by this transcript stage (ASR,
        diarizer, redaction: ``ScoringConfig.stage_sha256("transcript")``) from this audio
        (``source_sha256``, when given); None when there is none."""
        with self.session(f"cannot read call {call_id!r}") as s:
            rows = s.scalars(
                select(m.Transcript.document)
                .join(m.Call, m.Call.id == m.Transcript.call_pk)
                .where(m.Call.call_id == call_id, m.Transcript.stage_sha256 == stage_sha256)
                .order_by(m.Transcript.id.desc())
            )
            for document in rows:
                made = (document or {}).get("produced_by") or {}
                if source_sha256 is None or made.get("source_sha256") == source_sha256:
                    return schema.Transcript.model_validate(document)
        return None

    def result_history(self, call_id: str) -> list[dict[str, Any]]:
        """Every machine result of the call, oldest first, with which one is current, the
        configuration it records and how it differs from the previous version."""
        with self.session(f"cannot read call {call_id!r}") as s:
            call = s.scalar(select(m.Call).where(m.Call.call_id == call_id))
            if call is None:
                return []
            rows = s.scalars(
                select(m.Result).where(m.Result.call_pk == call.id).order_by(m.Result.id)
            )
            out, previous = [], None
            for r in rows:
                made = (r.document or {}).get("produced_by") or {}
                config = result_config(schema.Result.model_validate(r.document)).model_dump(
                    mode="json"
                )
                out.append(
                    {
                        "result_id": r.id,
                        "fingerprint": r.fingerprint,
                        "rubric_id": r.rubric_id,
                        "rubric_version": _version(r.rubric_version),
                        "asr_model": r.asr_model,
                        "total": r.total,
                        "max": r.max,
                        "auto_fail": r.auto_fail,
                        "needs_review": r.needs_review,
                        "risk_level": r.risk_level,
                        "current": r.id == call.current_result_id,
                        "run_id": r.run_id,
                        "transcript_id": r.transcript_id,
                        "created_at": m.iso(r.created_at),
                        "rubric_route": made.get("rubric_route"),
                        "stage_seconds": made.get("stage_seconds"),
                        "config": config,
                        "changes": schema.config_diff(previous, config) if previous else [],
                    }
                )
                previous = config
            return out

    def failures(self, call_id: str) -> list[dict[str, Any]]:
        """Every recorded failure of the call, oldest first."""
        with self.session(f"cannot read call {call_id!r}") as s:
            rows = s.scalars(
                select(m.Failure)
                .join(m.Call, m.Call.id == m.Failure.call_pk)
                .where(m.Call.call_id == call_id)
                .order_by(m.Failure.id)
            )
            return [
                {
                    "error": f.error,
                    "attempts": f.attempts,
                    "run_id": f.run_id,
                    "source": f.source,
                    "created_at": m.iso(f.created_at),
                }
                for f in rows
            ]

    def unchanged_failure(
        self, call_id: str, source_sha256: str | None, config_fingerprint: str | None
    ) -> str | None:
        """The error of the call's last failure when the call is failed and neither its file
        nor the configuration changed since; None when it is worth trying again."""
        if source_sha256 is None or config_fingerprint is None:
            return None
        with self.session(f"cannot read call {call_id!r}") as s:
            row = s.execute(
                select(
                    m.Call.status,
                    m.Failure.source_sha256,
                    m.Failure.config_fingerprint,
                    m.Failure.error,
                )
                .join(m.Failure, m.Failure.call_pk == m.Call.id)
                .where(m.Call.call_id == call_id)
                .order_by(m.Failure.id.desc())
                .limit(1)
            ).one_or_none()
        if row is None or row[0] != "failed":
            return None
        return row[3] if (row[1], row[2]) == (source_sha256, config_fingerprint) else None
