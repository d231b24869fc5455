"""One call, end to end: decode → transcribe + roles → redact → scripts_check → score → store.

Plain code, no Prefect: the flow in ``flows/`` only wires :class:`CallProcessor` into tasks.
A processor is built once per worker process and holds what is expensive to load (ASR model,
rubrics, the store's engine); every call it processes is independent of the others.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
from pydantic import BaseModel, ConfigDict

from pipeline.archive import is_transcript
from pipeline.audio import AudioError, DecodedAudio, SpooledChannels, header_problem
from pipeline.budget import Budget, OverBudget, call_budget, estimated_audio_bytes
from pipeline.config import Settings
from pipeline.plan import PERMANENT_ERRORS, CallPlan, PermanentCallError, Planner
from pipeline.redact import redact
from pipeline.redact.vault import vault_from_env
from pipeline.schema import CallJob, ContractError, Result, RubricRoute, Transcript
from pipeline.score import default_risk_fn, score_transcript
from pipeline.scripts_check import Rubric
from pipeline.source import Source, SourceError, open_source
from pipeline.timing import StageTimer
from pipeline.transcribe.call import decode_for_asr, transcribe_call
from pipeline.transcribe.decode_config import asr_config
from pipeline.transcribe.diarize import mono_diarizer
from pipeline.transcribe.model import get_model

if TYPE_CHECKING:
    from pipeline.store import Store

log = logging.getLogger(__name__)

Hook = Callable[[str, Any], None]


class StoreDown(Exception):
    """The store refused a commit (unwritable, or unavailable after retries): stop the run.

    The call's analysis is not redone: the save was retried in place, then given up."""


# Set when the run must stop (the store went down): calls not started yet are not started.
STOP = threading.Event()


def stop_new_calls() -> None:
    """No call starts after this in this process (the store refused a commit)."""
    STOP.set()


def allow_new_calls() -> None:
    """A new run starts: calls may start again."""
    STOP.clear()


# Saves of an analysed call retried in place (seconds between tries) while the store is away.
SAVE_RETRY_DELAYS_S = (2.0, 10.0, 30.0)
TRANSCRIPT_BYTES_PER_MB = 2**20 // 40  # a JSON transcript takes ~40× its size in memory


class CallOutcome(BaseModel):
    """What happened to one call in a run; JSON-serialisable for the flow's summary."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    source: str
    status: Literal["scored", "failed", "skipped", "busy", "stopped"]
    error: str | None = None
    retried: bool | None = None  # failed before; None: not known / first attempt
    total: float | None = None
    max: float | None = None
    auto_fail: bool | None = None
    needs_review: bool | None = None
    risk_level: str | None = None
    audio_seconds: float | None = None
    seconds: float = 0.0
    stage_seconds: dict[str, float] = {}


def warm_up(settings: Settings) -> threading.Thread | None:
    """Load the ASR and VAD models (and hash the model file) in a thread, now.

    Started before the orchestrator (Prefect's API server takes seconds to come up, and the
    flow's imports more), so the first calls begin decoding at once. Models are process-wide
    (:func:`pipeline.transcribe.model.get_model`): the calls find them loaded. Never raises:
    the first call reports whatever went wrong."""
    if settings.device != "cpu":
        return None

    def load() -> None:
        try:
            # faster_whisper (and ctranslate2) load in this thread, not with this module
            from faster_whisper.vad import get_vad_model

            get_model(settings)
            get_vad_model()
            asr_config(settings)
        except Exception:  # noqa: BLE001 - the first call reports the same error
            log.debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=load, name="callqa-warm-up", daemon=True)
    thread.start()
    return thread


def longest_first(jobs: list[CallJob]) -> list[int]:
    """Indices of ``jobs`` in the order to start them: longest audio first (header
    durations; a text transcript or unreadable header by file size), so the run does not end
    on one long call while the other cores idle. Ties keep discovery order."""

    def weight(job: CallJob) -> float:
        if job.manifest_error or is_transcript(job):
            return 0.0
        try:  # never a FIFO or a device swapped in (the call then says why)
            with open_source(job.source) as source:
                seconds = _probe(source)[1]
                return seconds if seconds is not None else source.size / 16000
        except SourceError:
            return 0.0

    weights = [weight(job) for job in jobs]
    return sorted(range(len(jobs)), key=lambda i: -weights[i])


@cache
def processor_for(settings_json: str) -> CallProcessor:
    """One processor (ASR model, rubrics, store engine) per process and settings."""
    return CallProcessor(Settings.model_validate_json(settings_json))


class CallProcessor:
    """Processes calls of an archive into the store; build one per worker process.

    A call is planned once (:class:`pipeline.plan.CallPlan`), then goes through its stages:
    admission (budget), transcript (read, reuse or transcribe; redact), score, save. Each
    stage takes the plan and its input and returns its typed output.
    """

    def __init__(self, settings: Settings, *, hook: Hook | None = None):
        self.settings = settings
        self.hook = hook or (lambda step, artefact: None)
        self.planner = Planner(settings)
        self._diarizer = None
        # QA_KEEP_UNREDACTED=1 + QA_PII_KEY: keep the unredacted transcript, encrypted; without
        # a key this refuses (VaultError) before any call is processed.
        self._vault = vault_from_env()

    @cached_property
    def store(self) -> Store:
        # imported here: SQLAlchemy and Alembic load with the first call, not with this module
        # (warm_up starts the models' loading before them)
        from pipeline.store import open_store

        return open_store(self.settings.database_url)

    @property
    def judge(self):
        """This process's LLM judge (:mod:`pipeline.llm.judge`), caching in the store."""
        from pipeline.llm.judge import process_judge

        return process_judge(self.settings.llm, self.store)

    def plan(self, job: CallJob, *, check_scored: bool = True) -> CallPlan:
        """The call's plan (:meth:`pipeline.plan.Planner.plan`) against this store."""
        return self.planner.plan(job, self.store, check_scored=check_scored)

    def rubric_for(self, job: CallJob, language: str | None) -> tuple[Rubric, RubricRoute]:
        return self.planner.rubric_for(job, language)

    def load_rubric(self, name: str) -> Rubric:
        return self.planner.load_rubric(name)

    # -- one call -------------------------------------------------------------------------

    def process(self, job: CallJob, run_id: int | None = None) -> CallOutcome:
        """Analyse one call under its budget and store it in one transaction; bad input is
        stored as failed. A call that failed before is retried only when its file or the
        configuration changed, or with ``retry_failed``; a call another run holds is left to it.

        Transient store errors before the analysis propagate (retry the call); a store that
        refuses the commit afterwards raises :class:`StoreDown` (stop the run).
        """
        started = time.perf_counter()
        if job.manifest_error:  # refused at discovery: recorded, never opened
            return self._failed(job, job.manifest_error, run_id, started, None, None)
        if STOP.is_set():
            return CallOutcome(call_id=job.call_id, source=job.source, status="stopped")
        try:  # planning opens and reads the file: inside a budget, and any error is the call's
            with call_budget(self._budget(None)):
                plan = self.plan(job)
        except (Exception, OverBudget) as exc:
            if is_transient(exc):
                raise
            return self._failed(job, _failure_reason(exc, job), run_id, started, None, None)
        try:
            return self._process_planned(plan, run_id, started)
        finally:
            if plan.source is not None:
                plan.source.close()

    def _process_planned(self, plan: CallPlan, run_id: int | None, started: float) -> CallOutcome:
        job = plan.job
        if plan.work == "skip":
            return CallOutcome(call_id=job.call_id, source=job.source, status="skipped")
        if not self.settings.retry_failed:
            earlier = self.store.unchanged_failure(
                job.call_id, plan.source_sha256, plan.fingerprint
            )
            if earlier is not None:
                return CallOutcome(
                    call_id=job.call_id,
                    source=job.source,
                    status="failed",
                    error=f"{earlier} [unchanged since it failed: not retried; --retry-failed]",
                    retried=False,
                )
        if not self.store.claim(job.call_id, run_id, self._lease_s(None)):
            return CallOutcome(
                call_id=job.call_id,
                source=job.source,
                status="busy",
                error="being processed by another run",
            )
        try:
            # another run finished it while we were checking
            if plan.config is not None and self.store.is_scored(job.call_id, plan.fingerprint):
                return CallOutcome(call_id=job.call_id, source=job.source, status="skipped")
            return self._process_claimed(plan, run_id, started)
        finally:
            try:
                self.store.release(job.call_id, run_id)
            except Exception:  # noqa: BLE001 - the lease expires on its own
                log.warning("call %s: lease not released", job.call_id)

    def _process_claimed(self, plan: CallPlan, run_id: int | None, started: float) -> CallOutcome:
        """The stages of a claimed call: admit, transcript, score, save."""
        job, timer = plan.job, StageTimer()
        try:
            budget = self.admit(plan)
            self.store.claim(job.call_id, run_id, self._lease_s(budget))
            with call_budget(budget):
                stage = self.transcript_stage(plan, timer)
                result = self.score_stage(plan, stage.transcript, timer)
                if plan.source is not None:  # what was read is what the file still is
                    plan.source.check_unchanged()
        except (Exception, OverBudget) as exc:
            if is_transient(exc):
                raise
            reason = _failure_reason(exc, job)
            outcome = self._failed(
                job, reason, run_id, started, plan.source_sha256, plan.fingerprint
            )
            outcome.stage_seconds = timer.rounded()
            return outcome
        with timer.stage("store"):
            _save(
                lambda: self.store.save_scored(
                    job, stage.transcript, result, run_id, **stage.sealed
                )
            )
        return CallOutcome(
            call_id=job.call_id,
            source=job.source,
            status="scored",
            total=result.total,
            max=result.max,
            auto_fail=result.auto_fail,
            needs_review=result.needs_review,
            risk_level=result.risk.level if result.risk else None,
            audio_seconds=stage.transcript.duration,
            seconds=time.perf_counter() - started,
            stage_seconds=timer.rounded(),
        )

    def analyse(self, job: CallJob) -> tuple[Transcript, Result]:
        """Transcript (redacted) and Result of one call, without writing to the store (a
        stored transcript of the same stage is reused)."""
        if job.manifest_error:
            raise PermanentCallError(job.manifest_error)
        plan = self.plan(job, check_scored=False)
        timer = StageTimer()
        try:
            stage = self.transcript_stage(plan, timer)
            return stage.transcript, self.score_stage(plan, stage.transcript, timer)
        finally:
            if plan.source is not None:
                plan.source.close()

    def _failed(
        self,
        job: CallJob,
        reason: str,
        run_id: int | None,
        started: float,
        source_sha: str | None,
        config_fp: str | None,
    ) -> CallOutcome:
        _save(
            lambda: self.store.save_failed(
                job, reason, run_id, source_sha256=source_sha, config_fingerprint=config_fp
            )
        )
        return CallOutcome(
            call_id=job.call_id,
            source=job.source,
            status="failed",
            error=reason,
            seconds=time.perf_counter() - started,
        )

    # -- stage 1, admission: what is checked before any decoding -----------------------------

    def admit(self, plan: CallPlan) -> Budget:
        """Check a call before decoding it (file, rubric, channels, size) and return its
        budget; raises PermanentCallError with the reason."""
        job = plan.job
        if plan.source_error is not None:  # a FIFO, a device, a swapped or unreadable file
            raise plan.source_error
        if plan.source is None:
            raise PermanentCallError(f"{job.source}: file not found")
        if job.rubric and plan.rubric_error is not None:
            # an unknown manifest rubric fails now, not after transcription
            raise plan.rubric_error
        memory_mb = self.settings.call_memory_mb
        if plan.kind == "transcript":
            size = plan.source.size
            if memory_mb and size / TRANSCRIPT_BYTES_PER_MB > memory_mb:
                raise PermanentCallError(
                    f"{job.source}: transcript of {size / 2**20:.0f} MiB would need more than "
                    f"the memory budget of {memory_mb:.0f} MiB"
                )
            return self._budget(None)
        channels, declared, problem = _probe(plan.source)
        if problem:  # an absurd header: refused before it sizes the budget
            raise AudioError(job.source, problem)
        if channels is not None and channels not in (1, 2):
            pair = (job.agent_channel, job.customer_channel)
            if None in pair or pair[0] == pair[1] or max(pair) >= channels:
                raise PermanentCallError(
                    f"{job.source}: {channels} audio channels; a call has 1 or 2. Name the "
                    f"parties' channels (0-{channels - 1}) in the manifest columns "
                    "agent_channel and customer_channel"
                )
        if declared and memory_mb and channels:
            spool_above_s = self.settings.spool_audio_minutes * 60
            need = estimated_audio_bytes(declared, channels, spool_above_s=spool_above_s) / 2**20
            if need > memory_mb:
                raise PermanentCallError(
                    f"{job.source}: {declared / 60:.0f} min of {channels}-channel audio would "
                    f"need ~{need:.0f} MiB to decode, over the memory budget of {memory_mb:.0f} MiB"
                )
        return self._budget(declared)

    def _budget(self, audio_seconds: float | None) -> Budget:
        budget = Budget.for_call(
            audio_seconds,
            floor_s=self.settings.call_time_floor_s,
            per_audio_second=self.settings.call_time_per_audio_s,
            memory_mb=self.settings.call_memory_mb,
        )
        llm = self.settings.llm
        if budget.seconds and llm.llm_backend is not None:
            # the language model has its own limit per call (QA_LLM_CALL_SECONDS); a call
            # over it goes to review, so it must not also fail the call's own budget
            budget = dataclasses.replace(budget, seconds=budget.seconds + llm.llm_call_seconds)
        return budget

    def _lease_s(self, budget: Budget | None) -> float:
        """How long a claim holds: the call's time budget and a margin for storing it."""
        budget = budget or self._budget(None)
        return (budget.seconds or 3600.0) + 120.0

    # -- stage 2, transcript: read, reuse or transcribe; then redact ---------------------------

    def transcript_stage(self, plan: CallPlan, timer: StageTimer) -> TranscriptStage:
        """The call's (redacted) transcript: the stored one when the plan reuses it, else the
        text transcript file or the audio transcribed, redacted (the unredacted one sealed
        when the vault is on)."""
        job = plan.job
        if job.manifest_error:
            raise PermanentCallError(job.manifest_error)
        if plan.source_error is not None:
            raise plan.source_error
        if plan.source is None and plan.transcript is None:
            raise PermanentCallError(f"{job.source}: file not found")
        if plan.kind == "audio" and plan.work == "score" and plan.transcript is not None:
            return TranscriptStage(transcript=plan.transcript)
        transcript = (
            self._read(plan) if plan.kind == "transcript" else self._transcribe(plan, timer)
        )
        self.hook("transcript", transcript)
        sealed: dict[str, Any] = {}
        if self._vault is not None:
            sealed = {"unredacted": self._vault.seal(transcript), "key_id": self._vault.key_id}
        with timer.stage("redaction"):
            transcript = redact(transcript)
        return TranscriptStage(transcript=transcript, sealed=sealed)

    def _read(self, plan: CallPlan) -> Transcript:
        """A text transcript job's file, as planned (read once), with the manifest's call id
        and language."""
        if plan.transcript is None:
            raise plan.transcript_error or ContractError(plan.job.source, "not read")
        transcript = plan.transcript.model_copy()
        if plan.job.call_id:
            transcript.call_id = plan.job.call_id
        if plan.job.language:
            transcript.language = plan.job.language
        return transcript

    def _transcribe(self, plan: CallPlan, timer: StageTimer) -> Transcript:
        job = plan.job
        if self._diarizer is None:
            self._diarizer = mono_diarizer(self.settings.diarizer)
        with timer.stage("decode"):  # one decode path, with the same limits for every call
            audio = decode_for_asr(
                job.source,
                self.settings,
                sha256=plan.source_sha256,
                read_from=plan.source.fd_path if plan.source is not None else None,
            )
        source, agent_channel = _mapped_parties(job, audio)
        # The manifest's language, else the language of the form a rule routed the call to
        # before transcription, overrides language detection (pipeline.transcribe.language).
        language, language_from = job.language, "manifest"
        vocabulary: list[str] | Callable[[str], list[str]] | None = None
        if plan.rubric is not None and plan.route is not None:
            vocabulary = plan.rubric.vocabulary
            if not language and plan.route.rule != "language":
                language, language_from = plan.rubric.language, "routing"
        elif plan.rubric_error is None:
            # the form waits on the detected language: its terms once that is known
            vocabulary = partial(self.planner.vocabulary_for, job)
        return transcribe_call(
            source,
            call_id=job.call_id,
            settings=self.settings,
            agent_channel=agent_channel,
            language=language,
            language_from=language_from,
            vocabulary=vocabulary,
            diarizer=self._diarizer,
            agent_id=job.agent_id,
            hook=self.hook,
            timer=timer,
            source_sha256=plan.source_sha256,
        )

    # -- stage 3, score -------------------------------------------------------------------

    def score_stage(self, plan: CallPlan, transcript: Transcript, timer: StageTimer) -> Result:
        """The call's Result: its rubric's checks and the risk score, with the plan's
        configuration (decided again only when the transcript's language was not known)."""
        self.require_speech(transcript)
        rubric, route, config = self.planner.scoring_for(plan, transcript)
        result = timed_score(
            transcript, rubric, timer, config=config, route=route, judge=self.judge
        )
        if result.produced_by is not None:
            result.produced_by.stage_seconds = timer.rounded()
        self.hook("result", result)
        return result

    def require_speech(self, transcript: Transcript) -> None:
        """No utterances, or less speech than ``min_speech_s``: not a call to score."""
        utts = transcript.utterances
        timed = any(u.end > 0 for u in utts)
        speech = sum(max(0.0, u.end - u.start) for u in utts)
        if not utts or (timed and speech < self.settings.min_speech_s):
            raise PermanentCallError(
                f"no speech: {len(utts)} utterance(s), {speech:.1f} s of speech "
                f"(minimum {self.settings.min_speech_s:g} s) in {transcript.duration or 0:.1f} s"
            )


@dataclass
class TranscriptStage:
    """The transcript stage's output: the redacted transcript, and the keywords
    ``save_scored`` takes to keep the unredacted one (sealed), when the vault is on."""

    transcript: Transcript
    sealed: dict[str, Any] = field(default_factory=dict)


def timed_score(transcript: Transcript, rubric, timer: StageTimer, **kwargs: Any) -> Result:
    """``score_transcript`` with its seconds split into ``risk`` and ``scoring``."""
    risk_fn = default_risk_fn()

    def timed_risk(transcript, metrics=None):
        with timer.stage("risk"):
            return risk_fn(transcript, metrics)

    before = timer.seconds.get("risk", 0.0)
    started = time.perf_counter()
    result = score_transcript(transcript, rubric, risk_fn=timed_risk, **kwargs)
    risk = timer.seconds.get("risk", 0.0) - before
    timer.add("scoring", time.perf_counter() - started - risk)
    return result


def _mapped_parties(job: CallJob, audio: DecodedAudio) -> tuple[DecodedAudio, int | None]:
    """The decoded recording (and agent channel) to transcribe: with more than two channels,
    the two the manifest names (agent_channel, customer_channel) as a stereo pair, agent
    left."""
    if job.customer_channel is None or job.agent_channel is None or audio.n_channels <= 2:
        return audio, job.agent_channel
    for channel in (job.agent_channel, job.customer_channel):
        if not 0 <= channel < audio.n_channels:
            raise AudioError(
                job.source,
                f"channel {channel} does not exist (the file has {audio.n_channels} channels, "
                "numbered from 0)",
            )
    if isinstance(audio.channels, SpooledChannels):  # a long call stays on disk
        pair = SpooledChannels(
            [audio.channels[job.agent_channel], audio.channels[job.customer_channel]]
        )
    else:
        pair = audio.channels[[job.agent_channel, job.customer_channel]]
    return dataclasses.replace(audio, channels=pair), 0


def _probe(source: Source | None) -> tuple[int | None, float | None, str | None]:
    """(channels, declared seconds, what is absurd about the header) from the container
    header of the call's open file, without decoding; Nones when the header cannot be read
    (decoding then says why)."""
    if source is None:
        return None, None, None
    try:
        with av.open(source.fd_path) as container:
            if not container.streams.audio:
                return None, None, None
            stream = container.streams.audio[0]
            declared = None
            if stream.duration is not None and stream.time_base is not None:
                declared = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                declared = container.duration / av.time_base
            channels = int(stream.channels or 0) or None
            problem = header_problem(
                int(stream.rate or 0), channels or 0,
                stream.format.name if stream.format else None, declared, source.size,
            )  # fmt: skip
            return channels, declared, problem
    except Exception:  # noqa: BLE001 - any unreadable header: the decoder reports it
        return None, None, None


def _save(commit: Callable[[], Any]) -> Any:
    """Commit an analysed call, retrying in place while the store is away (the analysis is
    not redone); a store that refuses writes, or stays away, stops the run."""
    from pipeline.store import StoreUnavailable, StoreUnwritable  # loaded with the store

    for delay in (*SAVE_RETRY_DELAYS_S, None):
        try:
            return commit()
        except StoreUnwritable as exc:
            raise StoreDown(str(exc)) from exc
        except StoreUnavailable as exc:
            if delay is None:
                raise StoreDown(f"{exc} (after {len(SAVE_RETRY_DELAYS_S)} retries)") from exc
            log.warning("store unavailable, retrying the save in %.0f s: %s", delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying the call for: the store went away, the disk filled up or the
    temporary folder became unwritable; not the input is bad. A transient error is never
    stored as the call's failure: the next run tries the call again."""
    from pipeline.store import StoreUnavailable  # loaded with the store

    return isinstance(exc, StoreUnavailable) or machine_fault(exc)


_FULL = {errno.ENOSPC, errno.EDQUOT}
_UNWRITABLE_TMP = {errno.EACCES, errno.EPERM, errno.EROFS}


def machine_fault(exc: BaseException) -> bool:
    """The machine's fault, not the call's: a disk full anywhere, or the temporary folder
    unwritable (looked for under the exception's causes too)."""
    seen: BaseException | None = exc
    for _ in range(8):  # an AudioError raised from an OSError, and so on
        if seen is None:
            return False
        if isinstance(seen, OSError):
            if seen.errno in _FULL:
                return True
            if "No usable temporary directory" in str(seen):
                return True
            name = seen.filename if isinstance(seen.filename, str) else ""
            ours = os.path.join(tempfile.gettempdir(), "callqa-")  # the spooled audio's files
            if seen.errno in _UNWRITABLE_TMP and name.startswith(ours):
                return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


def _failure_reason(exc: BaseException, job: CallJob) -> str:
    """The one line a call's failure is stored with."""
    reason = _one_line(exc, job.source)
    if isinstance(exc, OverBudget):
        reason = f"{job.source}: {exc}"
    elif isinstance(exc, RecursionError):
        reason = f"{job.source}: nested too deeply to process (RecursionError)"
    elif not isinstance(exc, PERMANENT_ERRORS):
        # A defect or an unexpected decoder state: still one call's problem, not the batch's.
        log.exception("call %s: unexpected error", job.call_id)
        reason = f"{reason} (unexpected {type(exc).__name__})"
    log.warning("call %s failed: %s", job.call_id, reason)
    return reason


def _one_line(exc: BaseException, source: str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if source in text or Path(source).name in text else f"{source}: {text}"
