"""Saving a call: a scored call (transcript, result and items) or a failed attempt, each in
one transaction. A result is versioned by its fingerprint, never changed or deleted; human
verdicts on the previous result carry over where the check did not change."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline import schema
from pipeline.store import models as m
from pipeline.store.db import StoreError
from pipeline.store.facts import refresh_facts
from pipeline.store.fingerprint import result_config, result_fingerprint
from pipeline.store.reviews import refresh_review
from pipeline.store.session import StoreBase, is_value


class Saves(StoreBase):
    """Writes of calls: scored, failed."""

    def _lock_call(self, s: Session, job: schema.CallJob, new_status: str) -> m.Call:
        """The call's row, created if missing, locked until the transaction ends."""
        dialect = s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        now = m.utcnow()
        s.execute(
            insert(m.Call)
            .values(call_id=job.call_id, status=new_status, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["call_id"])
        )
        # FOR UPDATE serialises writers of one call on PostgreSQL; SQLite's BEGIN IMMEDIATE
        # already serialises every writer.
        return s.scalars(
            select(m.Call).where(m.Call.call_id == job.call_id).with_for_update()
        ).one()

    @staticmethod
    def _update_metadata(call: m.Call, job: schema.CallJob, run_id: int | None) -> None:
        for field in (
            "agent_id", "agent_name", "team", "started_at", "direction", "language",
            "queue", "skill", "agent_group",
        ):  # fmt: skip
            value = getattr(job, field)
            if value is not None:
                setattr(call, field, value)
        if job.rubric is not None:
            call.manifest_rubric = job.rubric
        call.source = job.source
        if run_id is not None:
            call.last_run_id = run_id
        call.updated_at = m.utcnow()

    def save_scored(
        self,
        job: schema.CallJob,
        transcript: schema.Transcript,
        result: schema.Result,
        run_id: int | None = None,
        *,
        unredacted: bytes | None = None,
        key_id: str | None = None,
    ) -> int:
        """Store a scored call in one transaction; returns the id of its current result.

        Saving a call again with the same fingerprint stores nothing new (it only makes
        that result current again); a new fingerprint adds a result version and keeps the
        old ones. ``unredacted``: the transcript as transcribed, already encrypted
        (:meth:`pipeline.redact.vault.Vault.seal`; ``key_id`` names its key), kept in the
        same transaction next to the (redacted) ``transcript``.
        """
        if result.call_id != job.call_id:
            raise StoreError(f"result is for call {result.call_id!r}, job is {job.call_id!r}")
        if transcript.call_id and transcript.call_id != job.call_id:
            raise StoreError(
                f"transcript is for call {transcript.call_id!r}, job is {job.call_id!r}"
            )
        if not transcript.call_id:
            transcript = transcript.model_copy(update={"call_id": job.call_id})
        fp = result_fingerprint(result)
        with self.transaction(f"cannot save call {job.call_id!r}") as s:
            call = self._lock_call(s, job, "scored")
            self._update_metadata(call, job, run_id)
            call.language = transcript.language or call.language
            call.duration = transcript.duration
            made = transcript.produced_by or result.produced_by
            if made is not None and made.source_sha256:
                call.source_sha256 = made.source_sha256

            existing = s.scalar(
                select(m.Result.id).where(m.Result.call_pk == call.id, m.Result.fingerprint == fp)
            )
            new, carry = existing is None, []
            # every human action refreshes the call's review row: none, no verdicts to carry
            reviewed = s.get(m.CallReview, call.id) is not None
            if new:
                stage = result_config(result).stage_sha256("transcript")
                transcript_id = self._add_transcript(s, call, transcript, run_id, stage)
                previous = call.current_result_id if reviewed else None
                result, carry = self._carry_plan(s, previous, result)
                existing = self._add_result(s, call, transcript_id, result, fp, run_id)
                self._carry_over(s, call, existing, carry)
            if unredacted is not None:
                self._keep_unredacted(s, existing, unredacted, key_id)
            moved = call.current_result_id != existing
            call.status = "scored"
            call.error = None
            call.current_result_id = existing
            if moved and reviewed:
                refresh_review(s, call)  # and the dashboard's facts
            else:  # the dashboard's facts (new result or metadata), in this transaction
                refresh_facts(s, call)
            return existing

    # ------------------------------------------------------------------ human verdicts

    @staticmethod
    def _carry_plan(
        s: Session, previous: int | None, result: schema.Result
    ) -> tuple[schema.Result, list[tuple[m.ReviewAction, str]]]:
        """Which human verdicts on the previous result carry over to ``result``.

        A verdict carries over when the item id still exists and its check is unchanged
        (same ``check_sha256``). Where the check changed, the new item is flagged for review
        instead (``needs_review``, with why), and so is the result. Returns the result
        (flagged as needed) and (action, item id) pairs to repeat on the new result.
        """
        if previous is None:
            return result, []
        A, IR = m.ReviewAction, m.ItemResult  # noqa: N806
        rows = s.execute(
            select(A, IR.item_id)
            .join(IR, IR.id == A.item_result_id)
            .where(A.result_id == previous, A.kind.in_(("override", "ruling", "confirm")))
            .order_by(A.id)
        ).all()
        if not rows:
            return result, []
        latest = {item_id: action for action, item_id in rows}  # the last verdict per item
        old_doc = s.scalar(select(m.Result.document).where(m.Result.id == previous)) or {}
        old_checks = {i.get("id"): i.get("check_sha256") for i in old_doc.get("items", [])}
        new_items = {i.id: i for i in result.items}
        carry, flagged = [], {}
        for item_id, action in latest.items():
            item = new_items.get(item_id)
            if item is None:
                continue  # the item left the form: its verdict stays with the old result
            old, new = old_checks.get(item_id), item.check_sha256
            if old is not None and old == new:
                carry.append((action, item_id))
            else:
                flagged[item_id] = (
                    f"a reviewer's {action.kind} of this item (action {action.id}) was made "
                    "under a different check; review it again"
                )
        if flagged:
            items = [
                i.model_copy(
                    update={
                        "needs_review": True,
                        "reason": "; ".join(x for x in (i.reason, flagged[i.id]) if x),
                    }
                )
                if i.id in flagged
                else i
                for i in result.items
            ]
            result = result.model_copy(update={"items": items, "needs_review": True})
        return result, carry

    @staticmethod
    def _carry_over(
        s: Session, call: m.Call, result_id: int, carry: list[tuple[m.ReviewAction, str]]
    ) -> None:
        if not carry:
            return
        ids = dict(
            s.execute(
                select(m.ItemResult.item_id, m.ItemResult.id).where(
                    m.ItemResult.result_id == result_id
                )
            ).all()
        )
        passed = dict(
            s.execute(
                select(m.ItemResult.id, m.ItemResult.passed).where(
                    m.ItemResult.result_id == result_id
                )
            ).all()
        )
        for action, item_id in carry:
            target = ids[item_id]
            s.add(
                m.ReviewAction(
                    call_pk=call.id,
                    result_id=result_id,
                    item_result_id=target,
                    user_id=action.user_id,
                    kind=action.kind,
                    before=passed[target],
                    after=action.after,
                    comment=action.comment,
                    carried_from_id=action.id,
                )
            )
        s.flush()

    @staticmethod
    def _keep_unredacted(s: Session, result_id: int, token: bytes, key_id: str | None) -> None:
        transcript_id = s.scalar(select(m.Result.transcript_id).where(m.Result.id == result_id))
        row = s.scalar(
            select(m.UnredactedTranscript).where(
                m.UnredactedTranscript.transcript_id == transcript_id
            )
        )
        if row is None:
            s.add(m.UnredactedTranscript(transcript_id=transcript_id, ciphertext=bytes(token), key_id=key_id or "unknown"))  # fmt: skip
        else:  # the same transcript again (maybe under a new key): the newest copy wins
            row.ciphertext, row.key_id, row.created_at = bytes(token), key_id or "unknown", m.utcnow()  # fmt: skip
        s.flush()

    @staticmethod
    def _add_transcript(
        s: Session,
        call: m.Call,
        transcript: schema.Transcript,
        run_id: int | None,
        stage_sha256: str | None = None,
    ) -> int:
        document = transcript.model_dump(mode="json")
        sha = schema.canonical_sha256(document)
        found = s.scalar(
            select(m.Transcript).where(m.Transcript.call_pk == call.id, m.Transcript.sha256 == sha)
        )
        if found is not None:
            if found.stage_sha256 is None:
                found.stage_sha256 = stage_sha256
            return found.id
        made = transcript.produced_by
        row = m.Transcript(
            call_pk=call.id,
            sha256=sha,
            language=transcript.language,
            duration=transcript.duration,
            asr_model=made.asr_model if made else None,
            compute_type=made.compute_type if made else None,
            pipeline_version=made.pipeline_version if made else None,
            document=document,
            stage_sha256=stage_sha256,
            run_id=run_id,
        )
        s.add(row)
        s.flush()
        if transcript.utterances:
            s.execute(
                insert(m.Utterance),
                [
                    {
                        "transcript_id": row.id,
                        "idx": i,
                        "speaker": u.speaker,
                        "start": u.start,
                        "end": u.end,
                        "text": u.text,
                        "confidence": u.confidence,
                        "channel": u.channel,
                    }
                    for i, u in enumerate(transcript.utterances)
                ],
            )
        return row.id

    @staticmethod
    def _add_result(
        s: Session,
        call: m.Call,
        transcript_id: int,
        result: schema.Result,
        fp: str,
        run_id: int | None,
    ) -> int:
        made = result.produced_by
        risk = result.risk
        row = m.Result(
            call_pk=call.id,
            transcript_id=transcript_id,
            fingerprint=fp,
            rubric_id=result.rubric.id,
            rubric_version=str(result.rubric.version),
            rubric_sha256=result.rubric.sha256,
            asr_model=made.asr_model if made else None,
            compute_type=made.compute_type if made else None,
            pipeline_version=made.pipeline_version if made else None,
            total=result.total,
            max=result.max,
            auto_fail=result.auto_fail,
            needs_review=result.needs_review,
            risk_score=risk.score if risk else None,
            risk_level=risk.level if risk else None,
            risk_evidence=[e.model_dump(mode="json") for e in risk.evidence] if risk else None,
            risk_model=risk.model if risk else None,
            risk_satisfaction=risk.satisfaction if risk else None,
            document=result.model_dump(mode="json"),
            run_id=run_id,
        )
        s.add(row)
        s.flush()
        if result.items:  # one executemany, not one ORM insert per item
            s.execute(
                insert(m.ItemResult),
                [
                    {
                        "result_id": row.id,
                        "position": i,
                        "item_id": item.id,
                        "section": item.section,
                        "title": item.title,
                        "passed": item.passed,
                        "points": item.points,
                        "max_points": item.max_points,
                        "critical": item.critical,
                        "needs_review": item.needs_review,
                        "applicable": item.applicable,
                        "reason": item.reason,
                        "evidence": [
                            e.model_dump(mode="json", exclude_none=True) for e in item.evidence
                        ],
                    }
                    for i, item in enumerate(result.items)
                ],
            )
        return row.id

    def save_failed(
        self,
        job: schema.CallJob,
        error: str,
        run_id: int | None = None,
        *,
        source_sha256: str | None = None,
        config_fingerprint: str | None = None,
    ) -> None:
        """Record a failed attempt in one transaction. A call scored earlier stays scored.

        The same failure again (same file content and configuration, or the same refusal of
        a job with no readable file) updates its row: ``attempts`` + 1, newest error.
        """
        with self.transaction(f"cannot record the failure of call {job.call_id!r}") as s:
            self._record_failure(s, job, error, run_id, source_sha256, config_fingerprint)

    def save_refusals(self, jobs: list[schema.CallJob], run_id: int | None = None) -> None:
        """Record jobs discovery refused (``manifest_error``), as :meth:`save_failed` would
        one by one, in one transaction: a night's thousands of refused manifest rows cost
        one commit each batch, not one each."""
        if not jobs:
            return
        with self.transaction(f"cannot record {len(jobs)} refused calls") as s:
            for job in jobs:
                self._record_failure(s, job, job.manifest_error or "refused", run_id, None, None)

    def _record_failure(
        self,
        s: Session,
        job: schema.CallJob,
        error: str,
        run_id: int | None,
        source_sha256: str | None,
        config_fingerprint: str | None,
    ) -> None:
        """One failed attempt, in the transaction ``s`` (see :meth:`save_failed`)."""
        error = str(error).strip() or "unknown error"
        call = self._lock_call(s, job, "failed")
        if call.status == "failed":  # a scored call keeps the metadata it was scored with
            self._update_metadata(call, job, run_id)
            call.error = error
        same = s.scalar(
            select(m.Failure)
            .where(
                m.Failure.call_pk == call.id,
                m.Failure.source == job.source,
                is_value(m.Failure.source_sha256, source_sha256),
                is_value(m.Failure.config_fingerprint, config_fingerprint),
                # nothing hashed (a refused job): the same refusal, word for word
                m.Failure.error == error if source_sha256 is None else True,
            )
            .order_by(m.Failure.id.desc())
            .limit(1)
        )
        if same is not None:
            same.error, same.run_id, same.updated_at = error, run_id, m.utcnow()
            same.attempts = (same.attempts or 1) + 1
            return
        s.add(
            m.Failure(
                call_pk=call.id,
                run_id=run_id,
                error=error,
                source=job.source,
                source_sha256=source_sha256,
                config_fingerprint=config_fingerprint,
                attempts=1,
                updated_at=m.utcnow(),
            )
        )
