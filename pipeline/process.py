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
from pipeline.config import Settings, resolve_rubric_path
from pipeline.redact import redact
from pipeline.schema import CallJob, ContractError, Result, RubricRoute, ScoringConfig, Transcript
from pipeline.score import score_transcript

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

    @cached_property
    def routing(self):
        from pipeline.routing import load_routing

        return load_routing(self.settings.routing)

    def route_for(self, job: CallJob, language: str | None) -> RubricRoute | None:
        """The rule that picks the call's rubric; None while it needs the unknown language."""
        from pipeline.routing import RoutingError

        try:
            return self.routing.route(job, language, self.settings.rubric)
        except RoutingError as exc:
            raise PermanentCallError(str(exc)) from None

    def rubric_for(self, job: CallJob, language: str | None):
        """(rubric, route) a call is scored with: setting, manifest column, routing table,
        language default (:mod:`pipeline.routing`)."""
        route = self.route_for(job, language or "en")
        return self.load_rubric(route.rubric), route

    def load_rubric(self, name: str):
        from pipeline.scripts_check import load_rubric

        try:
            path = resolve_rubric_path(name).resolve()
        except FileNotFoundError as exc:
            raise PermanentCallError(str(exc)) from None
        if path not in self._rubrics:
            self._rubrics[path] = load_rubric(path)
        return self._rubrics[path]

    # -- the scoring configuration (pipeline.config.build_scoring_config) -----------------

    @cached_property
    def _audio_sections(self) -> dict[str, Any]:
        """ASR, diarizer and redaction sections of audio calls (hashes files: once)."""
        from pipeline.config import asr_config, diarizer_config

        return {
            "asr": asr_config(self.settings),
            "diarizer": diarizer_config(self.settings.diarizer),
            "redaction": self._redaction_section,
        }

    @cached_property
    def _redaction_section(self):
        from pipeline.config import redaction_config

        return redaction_config()

    @cached_property
    def _risk_section(self):
        from pipeline.config import risk_config_ref
        from pipeline.score import default_risk_fn

        return risk_config_ref() if default_risk_fn() is not None else None

    def scoring_config(
        self, job: CallJob, rubric, transcript: Transcript | None = None
    ) -> ScoringConfig:
        """The call's ScoringConfig; ``transcript``: the file of a text-transcript job."""
        from pipeline.config import build_scoring_config, transcript_asr_config

        if is_transcript(job):
            sections = {
                "asr": transcript_asr_config(transcript) if transcript is not None else None,
                "redaction": self._redaction_section,
            }
        else:
            sections = self._audio_sections
        return build_scoring_config(rubric, risk=self._risk_section, **sections)

    # -- one call -------------------------------------------------------------------------

    def expected_language(self, job: CallJob) -> str | None:
        """The call's language when it is known before transcription."""
        if job.language:
            return job.language
        if self.settings.asr_model.endswith(".en"):
            return "en"
        return None if self.settings.language == "auto" else self.settings.language

    def already_scored(self, job: CallJob) -> bool:
        """True when the store holds this call scored with the same configuration."""
        transcript = None
        if is_transcript(job):
            try:
                transcript = Transcript.load(job.source)
            except ContractError:
                return False
            language = job.language or transcript.language
        else:
            language = self.expected_language(job)
        try:
            route = self.route_for(job, language)
            if route is None:
                return False  # the rubric depends on the detected language: cannot tell yet
            rubric = self.load_rubric(route.rubric)
        except (PermanentCallError, *_permanent_errors()):
            return False
        fp = self.scoring_config(job, rubric, transcript).fingerprint()
        return self.store.is_scored(job.call_id, fp)

    def analyse(self, job: CallJob) -> tuple[Transcript, Result]:
        """Transcript (redacted) and Result of one call, without touching the store."""
        transcript, result, _ = self._analyse(job)
        return transcript, result

    def _analyse(self, job: CallJob) -> tuple[Transcript, Result, dict[str, Any]]:
        """Transcript, Result, and the extra keywords ``save_scored`` takes (sealed copy)."""
        manifest_error = getattr(job, "manifest_error", None)
        if manifest_error:
            raise PermanentCallError(manifest_error)
        if not Path(job.source).exists():
            raise PermanentCallError(f"{job.source}: file not found")
        sealed: dict[str, Any] = {}
        transcript = self._stored_transcript(job)
        if transcript is None:  # transcribe (or read the text transcript), then redact
            transcript = self._transcript(job)
            self.hook("transcript", transcript)
            if self._vault is not None:
                sealed = {"unredacted": self._vault.seal(transcript), "key_id": self._vault.key_id}
            transcript = redact(transcript)
        rubric, route = self.rubric_for(job, transcript.language)
        source = transcript if is_transcript(job) else None
        config = self.scoring_config(job, rubric, source)
        result = score_transcript(transcript, rubric, config=config, route=route)
        self.hook("result", result)
        return transcript, result, sealed

    def _stored_transcript(self, job: CallJob) -> Transcript | None:
        """The call's stored (redacted) transcript when the transcript stage is unchanged:
        same audio, same ASR, diarizer and redaction configuration. A rubric or risk change
        then re-scores it without decoding the audio or running ASR."""
        if is_transcript(job):
            return None  # reading the text file is the cheap path already
        from pipeline.audio import file_sha256
        from pipeline.schema import RubricConfig, ScoringConfig

        stage = ScoringConfig(rubric=RubricConfig(id="-", version=0), **self._audio_sections)
        return self.store.find_transcript(
            job.call_id, stage.stage_sha256("transcript"), file_sha256(job.source)
        )

    def process(self, job: CallJob, run_id: int | None = None) -> CallOutcome:
        """Analyse one call and store it in one transaction; bad input is stored as failed.

        Transient store errors propagate so the caller can retry the call.
        """
        started = time.perf_counter()
        if self.already_scored(job):
            return CallOutcome(call_id=job.call_id, source=job.source, status="skipped")
        try:
            transcript, result, sealed = self._analyse(job)
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
            )
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
        )

    # -- stages ---------------------------------------------------------------------------

    def _transcript(self, job: CallJob) -> Transcript:
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
        )


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
