"""The inspection store: one transaction per call, versioned machine results, never a delete.

The flow calls :func:`open_store` once per process, then per call :meth:`Store.is_scored`,
:meth:`Store.save_scored` or :meth:`Store.save_failed`. Database errors that may go away
(disconnect, lock timeout, serialisation failure) raise :class:`StoreUnavailable`; retry them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from pipeline import schema
from pipeline.config import load_settings
from pipeline.store import models as m
from pipeline.store.db import (
    WRITE_OPTION,
    StoreError,
    StoreUnavailable,
    StoreUnwritable,
    get_engine,
    upgrade,
)
from pipeline.store.fingerprint import result_config, result_fingerprint

_HOST = socket.gethostname()[:200]
# A run whose heartbeat is older than this (and not provably alive on this host) was killed.
RUN_STALE_AFTER_S = 15 * 60

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


def open_store(url: str | None = None) -> Store:
    """Open (and migrate to the latest schema) the store at ``url``.

    ``None`` uses ``load_settings().database_url`` (``QA_DATABASE_URL``; default
    ``sqlite:///var/callqa.db`` relative to the current directory).
    """
    url = url or load_settings().database_url
    engine = get_engine(url)
    with _translate(f"cannot open the store at {_safe(engine)}"):
        upgrade(engine)
    return Store(engine)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """Database exceptions as StoreUnavailable (worth a retry) or StoreError (not)."""
    try:
        yield
    except (OperationalError, PoolTimeout) as exc:
        if _unwritable(exc):
            raise StoreUnwritable(f"{what}: {_reason(exc)}") from exc
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
        raise StoreError(f"{what}: {_reason(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {exc}") from exc


# Errors that no retry cures: the store is read-only, full or not ours to write.
_UNWRITABLE = (
    "readonly database",
    "read-only",
    "permission denied",
    "disk is full",
    "no space left",
    "disk full",
    "unable to open database",
)


def _unwritable(exc: SQLAlchemyError) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(marker in text for marker in _UNWRITABLE)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def _safe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _jsonable(value: Any) -> Any:
    """Plain JSON (paths, datetimes, ... as strings) for the settings/summary columns."""
    return json.loads(json.dumps(value, default=str))


def _is(column, value):
    """``column = value`` that also matches NULL to None."""
    return column.is_(None) if value is None else column == value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _version(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


class Store:
    """Reads and writes the inspection database behind one engine (see :func:`open_store`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})

    def __repr__(self) -> str:
        return f"Store({_safe(self.engine)!r})"

    @contextmanager
    def transaction(self, what: str = "cannot write to the store") -> Iterator[Session]:
        """A unit of work: a session committed when the block ends (rolled back on error).
        Database errors become :class:`StoreError` subclasses whose message starts with
        ``what``."""
        with _translate(what), Session(self._write_engine, expire_on_commit=False) as s, s.begin():
            yield s

    @contextmanager
    def session(self, what: str = "cannot read the store") -> Iterator[Session]:
        """A session for reading (nothing is committed); errors as in :meth:`transaction`."""
        with _translate(what), Session(self.engine) as s:
            yield s

    # ------------------------------------------------------------------ runs

    def start_run(self, archive: str, settings: dict[str, Any]) -> int:
        """Record the start of a pipeline run; returns its id (pass it to the saves)."""
        self.close_abandoned_runs()
        with self.transaction("cannot start a run") as s:
            now = m.utcnow()
            run = m.Run(
                archive=str(archive),
                settings=_jsonable(settings),
                host=_HOST,
                pid=os.getpid(),
                heartbeat_at=now,
                status="running",
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, summary: dict[str, Any], status: str = "finished") -> None:
        """Close a run. Counts come from ``summary`` (``scored``/``failed``/``skipped``) or,
        when absent, from the rows the run wrote. Its call leases are released."""
        with self.transaction(f"cannot finish run {run_id}") as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise StoreError(f"no run with id {run_id}")
            self._close(s, run, status, summary)

    def _close(self, s: Session, run: m.Run, status: str, summary: dict[str, Any]) -> None:
        run_id = run.id
        run.finished_at = m.utcnow()
        run.status = status
        run.summary = _jsonable(summary)
        s.execute(delete(m.CallLease).where(m.CallLease.run_id == run_id))
        counted = {
            "scored": select(func.count()).where(m.Result.run_id == run_id),
            "failed": select(func.count()).where(m.Failure.run_id == run_id),
        }
        for key in ("scored", "failed", "skipped"):
            value = summary.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(run, key, value)
            elif key in counted:
                setattr(run, key, s.scalar(counted[key]))

    # ------------------------------------------------------------------ writes

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
                from pipeline.store.reviews import refresh_review

                refresh_review(s, call)
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
        error = str(error).strip() or "unknown error"
        with self.transaction(f"cannot record the failure of call {job.call_id!r}") as s:
            call = self._lock_call(s, job, "failed")
            self._update_metadata(call, job, run_id)
            if call.status == "failed":
                call.error = error
            same = s.scalar(
                select(m.Failure)
                .where(
                    m.Failure.call_pk == call.id,
                    m.Failure.source == job.source,
                    _is(m.Failure.source_sha256, source_sha256),
                    _is(m.Failure.config_fingerprint, config_fingerprint),
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

    # ------------------------------------------------------------------ concurrent runs

    def claim(self, call_id: str, run_id: int | None, ttl_s: float) -> bool:
        """Claim a call for this run for ``ttl_s`` seconds; False while another run holds an
        unexpired lease on it. Also the run's heartbeat."""
        now = m.utcnow()
        holder = f"{_HOST}:{os.getpid()}"
        expires = now + timedelta(seconds=ttl_s)
        with self.transaction(f"cannot claim call {call_id!r}") as s:
            dialect = s.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            s.execute(
                insert(m.CallLease)
                .values(
                    call_id=call_id,
                    run_id=run_id,
                    holder=holder,
                    expires_at=now - timedelta(seconds=1),
                )
                .on_conflict_do_nothing(index_elements=["call_id"])
            )
            lease = s.scalars(
                select(m.CallLease).where(m.CallLease.call_id == call_id).with_for_update()
            ).one()
            # Within one run a call is attempted again only after the previous attempt is
            # gone (a task retry, or Dask re-running a killed worker's task elsewhere), so
            # the run's own lease is taken over whichever of its processes held it.
            mine = lease.run_id == run_id and (run_id is not None or lease.holder == holder)
            if not mine and m.aware(lease.expires_at) > now:
                return False
            lease.run_id, lease.holder, lease.expires_at = run_id, holder, expires
            if run_id is not None:
                s.execute(update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=now))
            return True

    def release(self, call_id: str, run_id: int | None) -> None:
        """Give up this run's lease on a call (done with it, or stopping)."""
        with self.transaction(f"cannot release call {call_id!r}") as s:
            s.execute(
                delete(m.CallLease).where(
                    m.CallLease.call_id == call_id, _is(m.CallLease.run_id, run_id)
                )
            )

    def keep_alive(self, run_id: int, every_s: float = 60.0) -> threading.Event:
        """Beat the run's heartbeat every ``every_s`` from a daemon thread until the returned
        event is set, so other hosts never take a long-running run for a killed one."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                try:
                    with self.transaction(f"cannot beat run {run_id}") as s:
                        s.execute(
                            update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
                        )
                except StoreError:
                    pass  # the calls' own saves report a store that went away

        threading.Thread(target=beat, name=f"callqa-run-{run_id}", daemon=True).start()
        return stop

    def close_abandoned_runs(self, stale_after_s: float = RUN_STALE_AFTER_S) -> list[int]:
        """Close runs that were killed: open runs of this host whose process is gone, and
        open runs of any host silent for ``stale_after_s``. Returns their ids."""
        now = m.utcnow()
        closed = []
        with self.transaction("cannot close abandoned runs") as s:
            for run in s.scalars(select(m.Run).where(m.Run.finished_at.is_(None))):
                beat = m.aware(run.heartbeat_at or run.started_at)
                here = run.host == _HOST and run.pid is not None
                dead = (here and not _alive(run.pid)) or (
                    not here and (now - beat).total_seconds() > stale_after_s
                )
                if dead:
                    counts = {
                        "scored": s.scalar(select(func.count()).where(m.Result.run_id == run.id)),
                        "failed": s.scalar(select(func.count()).where(m.Failure.run_id == run.id)),
                        "note": "closed on a later start: the run was killed",
                    }
                    self._close(s, run, "killed", counts)
                    closed.append(run.id)
        return closed

    def check_writable(self) -> None:
        """Raise StoreUnwritable (or StoreUnavailable) unless a write can be committed."""
        with self.transaction("the store is not writable") as s:
            probe = m.CallLease(
                call_id=f"__probe__{_HOST}:{os.getpid()}",
                holder="probe",
                expires_at=m.utcnow(),
            )
            s.add(probe)
            s.flush()
            s.delete(probe)

    # ------------------------------------------------------------------ reads

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

    # ------------------------------------------------------------------ personal data

    def _current_unredacted(
        self, s: Session, call_id: str
    ) -> tuple[m.Call, m.Result, m.UnredactedTranscript] | None:
        row = s.execute(
            select(m.Call, m.Result, m.UnredactedTranscript)
            .join(m.Result, m.Call.current_result_id == m.Result.id)
            .join(
                m.UnredactedTranscript,
                m.UnredactedTranscript.transcript_id == m.Result.transcript_id,
            )
            .where(m.Call.call_id == call_id)
        ).one_or_none()
        return tuple(row) if row is not None else None

    def has_unredacted(self, call_id: str) -> bool:
        """True when an encrypted unredacted transcript is kept for the call's current result."""
        with self.session(f"cannot read call {call_id!r}") as s:
            return self._current_unredacted(s, call_id) is not None

    def get_unredacted(self, call_id: str, key: Any) -> schema.Transcript | None:
        """The unredacted transcript behind the call's current result, decrypted with ``key``
        (a Fernet key or a :class:`~pipeline.redact.vault.Vault`); None when none was kept.

        Raises :class:`~pipeline.redact.vault.VaultError` for a wrong key. Callers that show
        it to a person record that with :meth:`record_reveal`.
        """
        from pipeline.redact.vault import Vault, VaultError

        vault = key if isinstance(key, Vault) else Vault(key)
        with self.session(f"cannot read call {call_id!r}") as s:
            found = self._current_unredacted(s, call_id)
            if found is None:
                return None
            kept = found[2]
            token, stored_key = bytes(kept.ciphertext), kept.key_id
        if stored_key not in ("unknown", vault.key_id):
            raise VaultError(
                f"the unredacted transcript of call {call_id!r} was encrypted with key id "
                f"{stored_key}, not with this QA_PII_KEY (key id {vault.key_id})"
            )
        return vault.open(token)

    def record_reveal(self, call_id: str, user_id: int) -> None:
        """Audit one reveal of the call's unredacted transcript: who, when, which call."""
        with self.transaction(f"cannot record a reveal of call {call_id!r}") as s:
            found = self._current_unredacted(s, call_id)
            if found is None:
                raise StoreError(f"no unredacted transcript is kept for call {call_id!r}")
            call, res, _ = found
            s.add(m.PiiReveal(call_pk=call.id, transcript_id=res.transcript_id, user_id=user_id))

    def reveals(self, call_id: str) -> list[dict[str, Any]]:
        """Every reveal of the call's personal data, oldest first (username, role, when)."""
        with self.session(f"cannot read call {call_id!r}") as s:
            rows = s.execute(
                select(m.PiiReveal, m.User)
                .join(m.Call, m.Call.id == m.PiiReveal.call_pk)
                .join(m.User, m.User.id == m.PiiReveal.user_id)
                .where(m.Call.call_id == call_id)
                .order_by(m.PiiReveal.id)
            )
            return [
                {
                    "user": u.username,
                    "role": u.role,
                    "transcript_id": r.transcript_id,
                    "created_at": m.iso(r.created_at),
                }
                for r, u in rows
            ]


__all__ = [
    "CALL_COLUMNS",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnwritable",
    "open_store",
]
