"""One plan per call: what is decided about a call before its stages run, worked out once.

:class:`Planner` builds a :class:`CallPlan` from a job: the source file read and hashed once
(a text transcript parsed from it), the language known before transcription, the route and
the rubric, the :class:`~pipeline.schema.ScoringConfig` and its fingerprint, and the work the
call needs:

- ``skip``: the store holds the call scored with this configuration (nothing is hashed);
- ``score``: the transcript is at hand (a text transcript job, or the stored transcript this
  audio got from the same transcript stage): redact (a text file) and score, no decoding;
- ``transcribe``: decode, ASR, roles and redaction, then score.

What cannot be planned (an unreadable transcript file, an unknown rubric, a file that cannot
be hashed) is kept in the plan and raised by the stage that needs it, so a call fails with
the reason, and at the point, it would fail without a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.archive import is_transcript
from pipeline.audio import AudioError
from pipeline.budget import OverBudget
from pipeline.config import Settings, resolve_rubric_path
from pipeline.routing import RoutingError, RoutingTable, load_routing
from pipeline.schema import (
    AsrConfig,
    CallJob,
    ContractError,
    RedactionConfig,
    RubricConfig,
    RubricRoute,
    ScoringConfig,
    Transcript,
)
from pipeline.scoring_config import (
    asr_config,
    build_scoring_config,
    diarizer_config,
    redaction_config,
    risk_config_ref,
    transcript_asr_config,
)
from pipeline.scripts_check import Rubric, RubricError, load_rubric
from pipeline.source import Source, SourceError, open_source

if TYPE_CHECKING:
    from pipeline.store import Store


class PermanentCallError(Exception):
    """This call cannot be processed as it is (bad file, bad metadata): record it, move on."""


# Errors that are the call's (its file, its metadata, its rubric): recorded, never retried.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentCallError,
    ContractError,
    FileNotFoundError,
    AudioError,
    RubricError,
    OverBudget,
    SourceError,
)

Work = Literal["skip", "score", "transcribe"]


@dataclass(frozen=True)
class CallPlan:
    """Everything decided about one call before its stages run (see the module docstring)."""

    job: CallJob
    kind: Literal["audio", "transcript"]
    work: Work
    language: str | None  # known before transcription; None: ASR detects it
    route: RubricRoute | None  # None: the rubric depends on the detected language
    rubric: Rubric | None
    config: ScoringConfig | None  # with the rubric: what the call is scored with
    fingerprint: str  # the config's; else the transcript stage's (what a failure is tried with)
    source_sha256: str | None = None  # None: not hashed (skip) or unreadable (source_error)
    # text transcript job: its file; audio with work "score": the stored transcript to reuse
    transcript: Transcript | None = None
    # the call's file, open (pipeline.source): hashed, read and decoded from it; the call
    # closes it (None: not opened, for a skip or an unreadable file)
    source: Source | None = None
    # kept to be raised by the stage that needs what failed
    source_error: OSError | SourceError | None = None
    transcript_error: ContractError | None = None
    rubric_error: BaseException | None = None


class Planner:
    """Builds call plans; holds what they share (routing table, rubrics, config sections)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._rubrics: dict[Path, Rubric] = {}

    # -- routing and rubrics ----------------------------------------------------------------

    @cached_property
    def routing(self) -> RoutingTable:
        return load_routing(self.settings.routing)

    def route_for(self, job: CallJob, language: str | None) -> RubricRoute | None:
        """The rule that picks the call's rubric; None while it needs the unknown language."""
        try:
            return self.routing.route(job, language, self.settings.rubric)
        except RoutingError as exc:
            raise PermanentCallError(str(exc)) from None

    def load_rubric(self, name: str) -> Rubric:
        try:
            path = resolve_rubric_path(name).resolve()
        except FileNotFoundError as exc:
            raise PermanentCallError(str(exc)) from None
        if path not in self._rubrics:
            self._rubrics[path] = load_rubric(path)
        return self._rubrics[path]

    def rubric_for(self, job: CallJob, language: str | None) -> tuple[Rubric, RubricRoute]:
        """(rubric, route) a call is scored with: setting, manifest column, routing table,
        language default (:mod:`pipeline.routing`)."""
        route = self.route_for(job, language or "en")
        return self.load_rubric(route.rubric), route

    def vocabulary_for(self, job: CallJob, language: str) -> list[str]:
        """The ``vocabulary:`` of the form the routing table picks for ``job`` once its
        language is known to be ``language`` (a call routed by its detected language): what
        its decode is hinted with. Empty when nothing routes it (scoring then says why) or
        the form is in another language."""
        try:
            rubric, _ = self.rubric_for(job, language)
        except PERMANENT_ERRORS:
            return []
        return list(rubric.vocabulary) if rubric.language == language else []

    def expected_language(self, job: CallJob) -> str | None:
        """The call's language when it is known before transcription."""
        if job.language:
            return job.language
        if self.settings.asr_model.endswith(".en"):
            return "en"
        return None if self.settings.language == "auto" else self.settings.language

    # -- the scoring configuration (pipeline.scoring_config) ---------------------------------

    @cached_property
    def audio_sections(self) -> dict[str, Any]:
        """ASR, diarizer and redaction sections of audio calls (hashes files: once)."""
        return {
            "asr": asr_config(self.settings),
            "diarizer": diarizer_config(self.settings.diarizer),
            "redaction": self.redaction_section,
        }

    @cached_property
    def redaction_section(self) -> RedactionConfig:
        return redaction_config()

    @cached_property
    def risk_section(self):
        return risk_config_ref()

    @cached_property
    def llm_section(self):
        """The LLM section (recorded for rubrics with ``llm`` items, or for summaries)."""
        from pipeline.llm.config import llm_config

        return llm_config(self.settings.llm)

    def sections(self, kind: str, transcript: Transcript | None = None) -> dict[str, Any]:
        """The transcript-stage sections of a call of ``kind``; ``transcript``: the file of
        a text-transcript job (its ASR section is the one the file records)."""
        if kind == "transcript":
            asr: AsrConfig | None = (
                transcript_asr_config(transcript) if transcript is not None else None
            )
            return {"asr": asr, "redaction": self.redaction_section}
        return self.audio_sections

    def scoring_config(
        self, kind: str, rubric: Rubric, transcript: Transcript | None = None
    ) -> ScoringConfig:
        return build_scoring_config(
            rubric, risk=self.risk_section, llm=self.llm_section, **self.sections(kind, transcript)
        )

    def stage_sha256(self, kind: str) -> str:
        """The configuration of the transcript stage alone (ASR, diarizer, redaction)."""
        sections = {"redaction": self.redaction_section} if kind == "transcript" else None
        stage = ScoringConfig(
            rubric=RubricConfig(id="-", version=0), **(sections or self.audio_sections)
        )
        return stage.stage_sha256("transcript")

    # -- the plan ---------------------------------------------------------------------------

    def plan(self, job: CallJob, store: Store, *, check_scored: bool = True) -> CallPlan:
        """The call's plan. ``check_scored``: a call the store holds scored with this
        configuration is planned as ``skip`` (its file is not hashed)."""
        kind: Literal["audio", "transcript"] = "transcript" if is_transcript(job) else "audio"
        try:  # opened once, never a FIFO or a device (pipeline.source)
            source = open_source(job.source)
        except SourceError as exc:
            fingerprint = self.stage_sha256(kind)
            return CallPlan(
                job=job, kind=kind, work="score", language=None, route=None, rubric=None,
                config=None, fingerprint=fingerprint, source_error=exc,
            )  # fmt: skip
        try:
            plan = self._plan(job, store, kind, source, check_scored)
        except BaseException:
            source.close()
            raise
        if plan.source is None:
            source.close()
        return plan

    def _plan(
        self,
        job: CallJob,
        store: Store,
        kind: Literal["audio", "transcript"],
        source: Source,
        check_scored: bool,
    ) -> CallPlan:
        transcript = transcript_error = None
        if kind == "transcript":
            try:
                transcript = Transcript.load(job.source, text=source.read_text())
            except UnicodeDecodeError as exc:
                transcript_error = ContractError(job.source, f"cannot read: {exc}")
            except ContractError as exc:
                transcript_error = exc
            language = job.language or (transcript.language if transcript else None)
        else:
            language = self.expected_language(job)

        route = rubric = config = rubric_error = None
        try:
            route = self.route_for(job, language)
            if route is not None:
                rubric = self.load_rubric(route.rubric)
        except PERMANENT_ERRORS as exc:
            route, rubric_error = None, exc
        if rubric is not None and transcript_error is None:
            config = self.scoring_config(kind, rubric, transcript)
        fingerprint = config.fingerprint() if config is not None else self.stage_sha256(kind)
        planned = {
            "job": job, "kind": kind, "language": language, "route": route, "rubric": rubric,
            "config": config, "fingerprint": fingerprint, "transcript": transcript,
            "transcript_error": transcript_error, "rubric_error": rubric_error,
        }  # fmt: skip
        if check_scored and config is not None and store.is_scored(job.call_id, fingerprint):
            return CallPlan(work="skip", **planned)

        source_sha = source_error = None
        try:
            source_sha = source.sha256()
        except OSError as exc:
            source_error = exc
        planned.update(source=source, source_sha256=source_sha, source_error=source_error)
        if kind == "transcript":
            return CallPlan(work="score", **planned)
        stored = None
        if source_sha is not None:
            stored = store.find_transcript(job.call_id, self.stage_sha256(kind), source_sha)
        planned["transcript"] = stored
        return CallPlan(work="score" if stored is not None else "transcribe", **planned)

    def scoring_for(
        self, plan: CallPlan, transcript: Transcript
    ) -> tuple[Rubric, RubricRoute, ScoringConfig]:
        """(rubric, route, config) the call's transcript is scored with: the plan's when the
        transcript's language is the one planned with, else decided now from the language
        the transcript has."""
        language = transcript.language or "en"
        if language == plan.language and (plan.rubric is not None or plan.rubric_error):
            if plan.rubric_error is not None:
                raise plan.rubric_error
            return plan.rubric, plan.route, plan.config
        rubric, route = self.rubric_for(plan.job, language)
        source = transcript if plan.kind == "transcript" else None
        return rubric, route, self.scoring_config(plan.kind, rubric, source)
