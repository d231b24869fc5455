"""One call, end to end: decode → transcribe + roles → redact → scripts_check → score → store.

Plain code, no Prefect: the flow in ``flows/`` only wires :class:`CallProcessor` into tasks.
A processor is built once per worker process and holds what is expensive to load (ASR model,
rubrics, the store's engine); every call it processes is independent of the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.archive import is_transcript
from pipeline.config import DEFAULT_RUBRIC_BY_LANGUAGE, Settings, resolve_rubric_path
from pipeline.redact import redact
from pipeline.schema import CallJob, ContractError, Result, Transcript
from pipeline.score import score_transcript
from pipeline.timing import StageTimer

log = logging.getLogger(__name__)

Hook = Callable[[str, Any], None]


class PermanentCallError(Exception):
    """This call cannot be processed as it is (bad file, bad metadata): record it, move on."""


class CallOutcome(BaseModel):
    """What happened to one call in a run; JSON-serialisable for the flow's summary."""

    call_id: str
    source: str
    status: Literal["scored", "failed", "skipped"]
    error: str | None = None
    total: float | None = None
    max: float | None = None
    auto_fail: bool | None = None
    needs_review: bool | None = None
    risk_level: str | None = None
    audio_seconds: float | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = {}


class CallProcessor:
    """Processes calls of an archive into the store; build one per worker process."""

    def __init__(self, settings: Settings, *, hook: Hook | None = None):
        self.settings = settings
        self.hook = hook or (lambda step, artefact: None)
        self._rubrics: dict[Path, Any] = {}
        self._diarizer = None
        from pipeline.redact.vault import vault_from_env

        # QA_KEEP_UNREDACTED=1 + QA_PII_KEY: keep the unredacted transcript, encrypted; without
        # a key this refuses (VaultError) before any call is processed.
        self._vault = vault_from_env()

    # -- shared, expensive things, loaded on first use ------------------------------------

    @cached_property
    def store(self):
        from pipeline.store import open_store

        return open_store(self.settings.database_url)

    def rubric_for(self, job: CallJob, language: str | None):
        """The rubric a call is scored with: manifest column, then setting, then by language."""
        from pipeline.scripts_check import load_rubric

        name = job.rubric or self.settings.rubric
        if not name:
            lang = (language or "en").split("-")[0]
            if lang not in DEFAULT_RUBRIC_BY_LANGUAGE:
                raise PermanentCallError(
                    f"no rubric for language {lang!r}: set --rubric or the manifest's 'rubric'"
                )
            name = DEFAULT_RUBRIC_BY_LANGUAGE[lang]
        try:
            path = resolve_rubric_path(name).resolve()
        except FileNotFoundError as exc:
            raise PermanentCallError(str(exc)) from None
        if path not in self._rubrics:
            self._rubrics[path] = load_rubric(path)
        return self._rubrics[path]

    # -- one call -------------------------------------------------------------------------

    def expected_language(self, job: CallJob) -> str | None:
        """The call's language when it is known before transcription."""
        if job.language:
            return job.language
        if self.settings.asr_model.endswith(".en"):
            return "en"
        return None if self.settings.language == "auto" else self.settings.language

    def already_scored(self, job: CallJob) -> bool:
        """True when the store holds this call scored with the same models and rubric."""
        if is_transcript(job):
            try:
                transcript = Transcript.load(job.source)
            except ContractError:
                return False
            language = job.language or transcript.language
            made = transcript.produced_by
            asr_model = made.asr_model if made else None
            compute_type = made.compute_type if made else None
        else:
            language = self.expected_language(job)
            asr_model, compute_type = self.settings.asr_model, self.settings.compute_type
        if language is None and not (job.rubric or self.settings.rubric):
            return False  # rubric depends on the detected language: cannot tell before ASR
        try:
            rubric = self.rubric_for(job, language)
        except PermanentCallError:
            return False
        from pipeline.store import fingerprint

        fp = fingerprint(
            asr_model=asr_model,
            compute_type=compute_type,
            rubric_id=rubric.id,
            rubric_version=rubric.version,
            rubric_sha256=rubric.sha256,
        )
        return self.store.is_scored(job.call_id, fp)

    def analyse(self, job: CallJob) -> tuple[Transcript, Result]:
        """Transcript (redacted) and Result of one call, without touching the store."""
        transcript, result, _ = self._analyse(job)
        return transcript, result

    def _analyse(
        self, job: CallJob, timer: StageTimer | None = None
    ) -> tuple[Transcript, Result, dict[str, Any]]:
        """Transcript, Result, and the extra keywords ``save_scored`` takes (sealed copy).

        ``timer`` collects the seconds of each stage; they go in the Result's provenance
        (``stage_seconds``)."""
        timer = timer or StageTimer()
        manifest_error = getattr(job, "manifest_error", None)
        if manifest_error:
            raise PermanentCallError(manifest_error)
        if not Path(job.source).exists():
            raise PermanentCallError(f"{job.source}: file not found")
        transcript = self._transcript(job, timer)
        self.hook("transcript", transcript)
        sealed = (
            {"unredacted": self._vault.seal(transcript), "key_id": self._vault.key_id}
            if self._vault is not None
            else {}
        )
        with timer.stage("redaction"):
            transcript = redact(transcript)
        rubric = self.rubric_for(job, transcript.language)
        result = timed_score(transcript, rubric, timer)
        if result.produced_by is not None:
            result.produced_by.stage_seconds = timer.rounded()
        self.hook("result", result)
        return transcript, result, sealed

    def process(self, job: CallJob, run_id: int | None = None) -> CallOutcome:
        """Analyse one call and store it in one transaction; bad input is stored as failed.

        Transient store errors propagate so the caller can retry the call.
        """
        started = time.perf_counter()
        if self.already_scored(job):
            return CallOutcome(call_id=job.call_id, source=job.source, status="skipped")
        timer = StageTimer()
        try:
            transcript, result, sealed = self._analyse(job, timer)
        except Exception as exc:
            if is_transient(exc):
                raise
            reason = _one_line(exc, job.source)
            if not isinstance(exc, _permanent_errors()):
                # A defect or an unexpected decoder state: still one call's problem, not the batch's.
                log.exception("call %s: unexpected error", job.call_id)
                reason = f"{reason} (unexpected {type(exc).__name__})"
            log.warning("call %s failed: %s", job.call_id, reason)
            self.store.save_failed(job, reason, run_id)
            return CallOutcome(
                call_id=job.call_id,
                source=job.source,
                status="failed",
                error=reason,
                seconds=time.perf_counter() - started,
                stage_seconds=timer.rounded(),
            )
        with timer.stage("store"):
            self.store.save_scored(job, transcript, result, run_id, **sealed)
        return CallOutcome(
            call_id=job.call_id,
            source=job.source,
            status="scored",
            total=result.total,
            max=result.max,
            auto_fail=result.auto_fail,
            needs_review=result.needs_review,
            risk_level=result.risk.level if result.risk else None,
            audio_seconds=transcript.duration,
            seconds=time.perf_counter() - started,
            stage_seconds=timer.rounded(),
        )

    # -- stages ---------------------------------------------------------------------------

    def _transcript(self, job: CallJob, timer: StageTimer) -> Transcript:
        if is_transcript(job):
            transcript = Transcript.load(job.source)
            if job.call_id:
                transcript.call_id = job.call_id
            if job.language:
                transcript.language = job.language
            return transcript
        from pipeline.transcribe import transcribe_call

        if self._diarizer is None:
            from pipeline.transcribe.diarize import mono_diarizer

            self._diarizer = mono_diarizer(self.settings.diarizer)
        return transcribe_call(
            job.source,
            call_id=job.call_id,
            settings=self.settings,
            agent_channel=job.agent_channel,
            language=job.language,
            diarizer=self._diarizer,
            agent_id=job.agent_id,
            hook=self.hook,
            timer=timer,
        )


def timed_score(transcript: Transcript, rubric, timer: StageTimer) -> Result:
    """``score_transcript`` with its seconds split into ``risk`` and ``scoring``."""
    from pipeline.score import default_risk_fn

    risk_fn = default_risk_fn()
    timed_risk = None
    if risk_fn is not None:
        import inspect

        try:
            takes_metrics = "metrics" in inspect.signature(risk_fn).parameters
        except (TypeError, ValueError):
            takes_metrics = False

        def timed_risk(transcript, metrics=None):
            with timer.stage("risk"):
                return risk_fn(transcript, metrics) if takes_metrics else risk_fn(transcript)

    before = timer.seconds.get("risk", 0.0)
    started = time.perf_counter()
    result = score_transcript(transcript, rubric, risk_fn=timed_risk)
    risk = timer.seconds.get("risk", 0.0) - before
    timer.add("scoring", time.perf_counter() - started - risk)
    return result


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying the call for: the store went away, not the input is bad."""
    from pipeline.store import StoreUnavailable

    return isinstance(exc, StoreUnavailable)


def _permanent_errors() -> tuple[type[BaseException], ...]:
    from pipeline.audio import AudioError
    from pipeline.scripts_check import RubricError

    return (PermanentCallError, ContractError, FileNotFoundError, AudioError, RubricError)


def _one_line(exc: BaseException, source: str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if source in text or Path(source).name in text else f"{source}: {text}"
