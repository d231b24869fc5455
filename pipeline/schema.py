"""Typed, JSON-serialisable outputs of every stage (the public contracts of DESIGN.md).

Transcript JSON is the output of ``callqa transcribe`` and the input of ``callqa score``;
Result JSON is the output of ``callqa score`` and what the store keeps per call. Both may
grow new optional fields; existing fields never change meaning. The models are closed
(``extra="forbid"``): every field a stage writes is declared here, and an undeclared one is
an error. docs/contracts.md documents them; ``callqa schema`` prints their JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline import __version__
from pipeline.contracts import ContractError, validation_problems

Role = Literal["agent", "customer", "unknown"]
RiskLevel = Literal["low", "medium", "high"]


class _Model(BaseModel):
    """A public contract: closed (an unknown field is an error, not silently kept)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Input(_Model):
    """A contract read from files others wrote (transcripts): numbers must be finite."""

    model_config = ConfigDict(allow_inf_nan=False)


# A time in a call (seconds): finite, and under a week, so sums and spans stay finite too
# (1e308 is a float; 1e308 + 1e308 is not).
MAX_CALL_SECONDS = 7 * 24 * 3600.0
Seconds = Annotated[float, Field(ge=0, le=MAX_CALL_SECONDS)]
# One utterance's text: a turn is a few hundred characters; 100,000 is ~10 hours of speech.
MAX_UTTERANCE_CHARS = 100_000


# --------------------------------------------------------------------------- hashing


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def canonical_json(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    """The one canonical JSON text of a document: JSON mode, no nulls, sorted keys, compact.

    Nulls are dropped at every depth so a file written with or without ``exclude_none``
    (or read back from the store) hashes the same.
    """
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    data = _drop_nulls(json.loads(json.dumps(data, default=str)))
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_sha256(value: BaseModel | dict[str, Any] | list[Any]) -> str:
    """SHA-256 of :func:`canonical_json`: the transcript hash of Result and store, and the
    configuration fingerprint."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- transcript


class Word(_Input):
    word: str
    start: float = Field(le=MAX_CALL_SECONDS)
    end: float = Field(le=MAX_CALL_SECONDS)
    probability: float | None = None


class UtteranceSentiment(_Input):
    """Per-utterance sentiment (complaint risk fills it in for scored turns; the review app's
    timeline draws it). Probabilities sum to 1; ``model`` names the scorer and its version."""

    negative: float = Field(ge=0, le=1)
    neutral: float = Field(ge=0, le=1)
    positive: float = Field(ge=0, le=1)
    model: str

    @property
    def label(self) -> str:
        trio = {"negative": self.negative, "neutral": self.neutral, "positive": self.positive}
        return max(trio, key=trio.__getitem__)


class Utterance(_Input):
    speaker: Role = "unknown"
    start: Seconds
    end: Seconds
    text: str = Field(max_length=MAX_UTTERANCE_CHARS)
    confidence: float | None = None
    words: list[Word] | None = None
    channel: int | None = None
    speaker_label: str | None = None  # the diarizer's label (mono calls)
    sentiment: UtteranceSentiment | None = None  # customer turns the risk stage scored

    @model_validator(mode="after")
    def _end_after_start(self) -> Utterance:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class RoleDecision(_Input):
    """How agent and customer were told apart, and how sure the decision is."""

    method: Literal["manifest", "option", "content", "default", "diarization", "text", "none"]
    agent_channel: int | None = None
    confidence: float = Field(ge=0, le=1)
    detail: str = ""
    agent_speaker: str | None = None  # the channel or diarizer label chosen as the agent


class DroppedSegment(_Input):
    """An ASR segment the hallucination filter dropped, and why."""

    start: float
    end: float
    text: str
    channel: int | None = None
    rule: str
    reason: str


class LanguageDecision(_Input):
    """The language a call was decoded in, who decided it, and the model that decoded it.

    ``method``: ``detected`` (the multilingual model's language identification over the
    parties' first speech), ``manifest`` (the manifest's ``language`` column), ``option``
    (``--language``), ``setting`` (``QA_LANGUAGE``), ``routing`` (the language of the form a
    routing rule chose before transcription), ``english_only`` (the model knows only English).
    """

    language: str
    probability: float | None = Field(default=None, ge=0, le=1)
    method: Literal["detected", "manifest", "option", "setting", "routing", "english_only"]
    detected: dict[str, float] | None = None  # party (channel or "mono") → seconds listened to
    model: str  # the model that decoded the call
    model_sha256: str | None = None


class Provenance(_Input):
    """What produced a stage's output, so any stored score can be reproduced."""

    pipeline_version: str = __version__
    asr_model: str | None = None
    compute_type: str | None = None
    device: str | None = None
    vad: bool | None = None
    language_setting: str | None = None
    roles: RoleDecision | None = None
    source: str | None = None  # audio file or transcript file the call came from
    source_sha256: str | None = None
    asr_engine: str | None = None  # e.g. "faster-whisper 1.2.0"
    asr: dict[str, Any] | None = None  # the AsrConfig the audio was decoded with
    confidence_measure: str | None = None  # what Utterance.confidence means
    channels: int | None = None
    codec: str | None = None
    source_sample_rate: int | None = None
    dropped: list[DroppedSegment] | None = None  # ASR segments dropped as hallucinations
    language_decision: LanguageDecision | None = None  # which language and model decoded it


class Redaction(_Input):
    """What ``redact`` recorded on the transcript: where a mask is and the audio to beep.

    Never holds the personal data itself.
    """

    utterance: int
    start: float
    end: float
    type: str
    char_start: int  # the mask's offsets in the redacted text
    char_end: int
    mask: str
    recognizer: str | None = None
    score: float | None = None


class RedactionProvenance(_Input):
    engine: str = "pipeline.redact"
    pipeline_version: str
    recognizer_sets: list[str]
    recognizer_sha256: dict[str, str] = Field(default_factory=dict)


class Transcript(_Input):
    call_id: str = ""
    language: str = "zh"
    duration: Seconds | None = None
    utterances: list[Utterance] = Field(default_factory=list)
    produced_by: Provenance | None = None
    redactions: list[Redaction] | None = None  # set by pipeline.redact
    redacted_by: RedactionProvenance | None = None

    @model_validator(mode="after")
    def _derive_defaults(self) -> Transcript:
        if self.duration is None:
            self.duration = max((u.end for u in self.utterances), default=0.0)
        return self

    def role_utterances(self, role: Role | None) -> list[tuple[int, Utterance]]:
        """(index, utterance) pairs of one role, or of every role when role is None."""
        return [(i, u) for i, u in enumerate(self.utterances) if role is None or u.speaker == role]

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, **kwargs)

    @classmethod
    def load(cls, path: str | Path, *, text: str | None = None) -> Transcript:
        """Read Transcript JSON; derive a missing ``call_id`` from the file name. ``text``:
        the file's content, already read (from the call's open file)."""
        return _load_json(cls, path, default_call_id=Path(path).stem, raw=text)


# --------------------------------------------------------------------------- result


class Evidence(_Model):
    """One piece of evidence for an item verdict: where, what was said, what it matched."""

    utterance: int | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    matched: str | None = None
    similarity: float | None = None
    reason: str | None = None
    speaker: str | None = None
    span: str | None = None  # the matched part of ``text``
    span_chars: list[int] | None = None  # [start, end) of ``span`` in ``text``
    differences: str | None = None  # how a fuzzy match differs from the phrase
    method: str | None = None  # "semantic" for embedding matches
    model: str | None = None  # the embedding model of a semantic match
    words: list[str] | None = None  # word segmentation of ``span`` (zh)
    asr_confidence: float | None = None  # set when the verdict rests on low-confidence words
    # measurements of conversation checks
    duration: float | None = None  # silence: seconds
    expected: str | None = None  # silence: the role expected to speak
    hold_announced: bool | None = None
    overlap: float | None = None  # interruption: seconds of overlap
    rate: float | None = None  # speech rate, in ``unit``
    unit: str | None = None
    seconds: float | None = None  # speech seconds the rate is measured over
    units: int | None = None  # characters (zh) or words (en) spoken
    ratio: float | None = None  # talk ratio
    talk_time: dict[str, float] | None = None  # seconds per role


class ItemResult(_Model):
    id: str
    section: str
    title: str | None = None
    passed: bool | None = None
    points: float  # points awarded
    max_points: float | None = None
    critical: bool = False
    needs_review: bool = False
    applicable: bool = True
    reason: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    check_sha256: str | None = None  # of the item's check: a changed check voids overrides
    check: str | None = None  # the check's operator


class RiskEvidence(_Model):
    utterance: int | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    reason: str
    weight: float | None = None


class Risk(_Model):
    score: float = Field(ge=0, le=1)
    level: RiskLevel
    evidence: list[RiskEvidence] = Field(default_factory=list)
    model: str | None = None
    # predicted mean customer satisfaction on the 5-point scale -2 (very dissatisfied) .. 2
    satisfaction: float | None = Field(default=None, ge=-2, le=2)


class RubricRef(_Model):
    id: str
    version: int | str
    title: str | None = None
    sha256: str | None = None


# --------------------------------------------------------------------------- configuration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AsrConfig(_Section):
    """What turns audio into text: model, numerics, decode and VAD options, library versions."""

    model: str
    compute_type: str | None = None
    device: str | None = None
    language: str | None = None  # the setting (zh, en, auto), not the detected language
    languages: list[str] | None = None  # languages detection chooses among
    english_model: str | None = None  # decodes calls in English; None: ``model`` does
    models: dict[str, str | None] | None = None  # each model → sha256 of its model.bin
    zh_text: dict[str, Any] | None = None  # Chinese text stage options (zh_text.yaml), sha256
    lexicon: dict[str, Any] | None = None  # custom vocabulary file: sha256, use
    decode: dict[str, Any] = Field(default_factory=dict)  # faster-whisper transcribe() options
    vad: dict[str, Any] | None = None  # VAD filter parameters; None: VAD off
    faster_whisper: str | None = None
    ctranslate2: str | None = None
    cpu_isa: str | None = None  # CT2_FORCE_CPU_ISA when pinned (reproducibility mode)


class DiarizerConfig(_Section):
    """The backend that separates speakers of mono calls, with its declared hyper-parameters."""

    backend: str
    params: dict[str, Any] = Field(default_factory=dict)


class RedactionConfig(_Section):
    """The recogniser sets that masked personal data: set label → sha256 of its YAML."""

    recognizers: dict[str, str] = Field(default_factory=dict)


class RubricConfig(_Section):
    """The rubric, and the check engine's settings its verdicts came from: the thresholds,
    word lists and synonym groups of ``pipeline/scripts_check/defaults.yaml`` (their
    sha256) and the paraphrase model with its threshold (None when the fallback is off), so
    a change of either re-scores and a stored verdict can be reproduced."""

    id: str
    version: int | str
    sha256: str | None = None
    engine: str | None = None
    checks_sha256: str | None = None
    semantic: dict[str, Any] | None = None


class RiskConfigRef(_Section):
    """The complaint-risk model: configuration, per-language scorers and signals, calibration."""

    id: str
    version: int | str
    sha256: str  # of the validated risk configuration
    scorers: dict[str, dict[str, Any]] = Field(default_factory=dict)  # language → model
    signals: dict[str, str] = Field(default_factory=dict)  # language → sha256 of the file
    calibration_version: int
    calibration_sha256: str
    # the conversation-level model: path and sha256 of its files (None: not configured)
    dialogue: dict[str, str] | None = None


class LlmConfig(_Section):
    """The language model that answers a rubric's ``llm`` items (and writes summaries): a
    change here re-asks on ``callqa rescore``. ``backend`` "none": none was configured (the
    items went to review). The API key is never recorded."""

    backend: Literal["none", "openai", "embedded"]
    model: str | None = None
    model_sha256: str | None = None  # embedded: of the GGUF file; openai: not knowable
    base_url: str | None = None
    prompt_sha256: str  # of the prompt template file (pipeline/llm/prompt.yaml)
    decode: dict[str, Any] = Field(default_factory=dict)  # temperature, max tokens, context
    summary: bool = False  # a summary and contact reason were asked for too


Stage = Literal["transcript", "score"]
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    # a change here re-transcribes (decode, ASR, roles, redaction)
    "transcript": ("asr", "diarizer", "redaction"),
    # a change here re-scores from the stored transcript
    "score": ("rubric", "risk", "llm", "callqa_version"),
}


class ScoringConfig(_Section):
    """Everything a Result depends on, in one object; its hash is the result's fingerprint.

    Built in one place (:func:`pipeline.scoring_config.build_scoring_config`). ``asr`` and
    ``diarizer`` are None for text transcripts, ``risk`` when risk is not assessed.
    """

    callqa_version: str = __version__
    asr: AsrConfig | None = None
    diarizer: DiarizerConfig | None = None
    redaction: RedactionConfig | None = None
    rubric: RubricConfig
    risk: RiskConfigRef | None = None
    llm: LlmConfig | None = None  # only when the rubric has llm items or a summary is asked

    def fingerprint(self) -> str:
        return canonical_sha256(self)

    def stage_sha256(self, stage: Stage) -> str:
        """Hash of the sections one stage depends on (``transcript`` or ``score``)."""
        data = self.model_dump(mode="json")
        return canonical_sha256({k: data[k] for k in STAGE_SECTIONS[stage]})

    def with_scoring_of(self, other: ScoringConfig) -> ScoringConfig:
        """This transcript stage with ``other``'s scoring stage (a re-score's configuration)."""
        return self.model_copy(update={k: getattr(other, k) for k in STAGE_SECTIONS["score"]})

    def stages_changed(self, other: ScoringConfig | None) -> list[str]:
        """The stages whose sections differ from ``other`` (all of them when it is None)."""
        if other is None:
            return list(STAGE_SECTIONS)
        return [st for st in STAGE_SECTIONS if self.stage_sha256(st) != other.stage_sha256(st)]  # type: ignore[arg-type]


def config_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Leaf-by-leaf differences of two JSON documents: ``{"path", "old", "new"}``, sorted."""
    out: list[dict[str, Any]] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(f"{path}.{key}" if path else key, a.get(key), b.get(key))
        elif a != b:
            out.append({"path": path, "old": a, "new": b})

    walk("", _drop_nulls(old or {}), _drop_nulls(new or {}))
    return out


class RubricRoute(_Model):
    """Which rule chose a call's form: ``setting`` (--rubric / QA_RUBRIC), ``manifest`` (the
    manifest's ``rubric`` column), ``table`` (a row of the routing table), ``language``."""

    rule: Literal["setting", "manifest", "table", "language", "stored"]
    rubric: str
    row: int | None = None  # index of the routing table row that matched
    match: dict[str, str] | None = None  # that row's conditions
    table_sha256: str | None = None


class ResultProvenance(Provenance):
    transcript_sha256: str | None = None
    # Seconds per stage of this call (decode, vad, asr, diarization, redaction, scoring, risk);
    # processing time, so it differs between runs of identical results.
    stage_seconds: dict[str, float] | None = None
    config: ScoringConfig | None = None
    fingerprint: str | None = None
    rubric_route: RubricRoute | None = None
    scorer: str | None = None  # engine and version that scored
    rubric: RubricRef | None = None


class SectionScore(_Model):
    """Points of one rubric section (applicable items only)."""

    id: str
    title: str | None = None
    points: int | float  # int kept as int: stored results read back byte for byte
    max: int | float


class CallSummary(_Model):
    """A call's summary, contact reason and outcome in the call's language, written by the
    language model of the ScoringConfig's ``llm`` section (:mod:`pipeline.llm.judge`)."""

    summary: str
    contact_reason: str
    outcome: Literal["resolved", "needs_follow_up"]
    language: str | None = None
    model: str | None = None  # backend:model that wrote it
    config_sha256: str | None = None  # of the LlmConfig that wrote it


class Result(_Model):
    call_id: str
    rubric: RubricRef
    total: float
    max: float
    auto_fail: bool = False
    needs_review: bool = False
    items: list[ItemResult] = Field(default_factory=list)
    risk: Risk | None = None
    produced_by: ResultProvenance | None = None
    sections: list[SectionScore] | None = None
    auto_fail_items: list[str] | None = None  # critical items that failed
    language: str | None = None  # of the transcript
    summary: CallSummary | None = None  # with an LLM backend and QA_LLM_SUMMARY

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Result:
        return _load_json(cls, path)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(
    cls: type[_Model],
    path: str | Path,
    default_call_id: str | None = None,
    raw: str | None = None,
):
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8") if raw is None else raw
    except FileNotFoundError:
        raise ContractError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(path, f"cannot read: {exc}") from None
    if not raw.strip():
        raise ContractError(path, "file is empty")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ContractError(path, f"not valid JSON: {exc}") from None
    except ValueError as exc:  # NaN, Infinity: not JSON
        raise ContractError(path, f"not strict JSON: {exc}") from None
    except RecursionError:
        raise ContractError(path, "not a transcript: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ContractError(path, f"expected a JSON object, got {type(data).__name__}")
    if default_call_id and not data.get("call_id"):
        data["call_id"] = default_call_id
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        found = validation_problems(exc)
        raise ContractError(path, *found[0], problems=found) from None
    except RecursionError:
        raise ContractError(path, "nested too deeply") from None


# --------------------------------------------------------------------------- archive


class CallJob(_Model):
    """One recording of an archive to process, with the CTI/CDR metadata of its manifest row."""

    call_id: str
    source: str  # path of the recording (or of a transcript JSON)
    agent_id: str | None = None
    agent_name: str | None = None
    team: str | None = None
    started_at: str | None = None
    direction: str | None = None
    agent_channel: int | None = None
    customer_channel: int | None = None  # with agent_channel: the pair to use of >2 channels
    language: str | None = None
    rubric: str | None = None
    queue: str | None = None
    skill: str | None = None
    agent_group: str | None = None
    manifest_error: str | None = None  # discovery refused this job: recorded as failed, not read
