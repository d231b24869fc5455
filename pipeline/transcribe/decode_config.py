"""ASR decode configuration: every setting that decides the words of a transcript, as one
typed :class:`AsrConfig` (recorded in each Transcript), built from :class:`Settings`, and
the fallback rule that decides when a chunk's decode is tried again.

Decoding is deterministic: beam search at temperature 0, one intra-op thread per decode
(parallelism comes from CTranslate2 streams and processes, never from splitting one decode),
and a *deterministic* fallback instead of faster-whisper's sampled temperature fallback.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import Settings
from pipeline.contracts import load_model
from pipeline.cpu_isa import PINNED_CPU_ENV
from pipeline.transcribe.model import model_digest, resolve_model, threads_per_decode

SAMPLE_RATE = 16000  # what Whisper and the Silero VAD take
DECODE_MODELS_FILE = Path(__file__).with_name("decode_models.yaml")


class ModelDecode(BaseModel):
    """The decode settings chosen per model (``decode_models.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_length_s: int = Field(ge=1, le=30)
    beam_size: int = Field(ge=1)
    # the parties' speech packed into shared windows in the order it was spoken
    shared_windows: bool = False


class DecodeModels(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    default: ModelDecode
    models: dict[str, ModelDecode] = Field(default_factory=dict)


@cache
def decode_models(path: Path = DECODE_MODELS_FILE) -> DecodeModels:
    """The per-model decode table; :class:`~pipeline.contracts.ContractError` names a file
    that is missing or does not validate, the place in it and why."""
    return load_model(path, DecodeModels)


def model_decode(settings: Settings, name: str) -> ModelDecode:
    """Model ``name``'s row of the table (else its default), under ``QA_ASR_CHUNK_SECONDS``
    and ``QA_BEAM_SIZE`` where they are set."""
    table = decode_models()
    row = table.models.get(name, table.default)
    given = {"chunk_length_s": settings.asr_chunk_seconds, "beam_size": settings.beam_size}
    return row.model_copy(update={k: v for k, v in given.items() if v is not None})


class VadConfig(BaseModel):
    """Silero VAD options (faster-whisper ``VadOptions``); speech chunks are merged up to
    ``AsrConfig.chunk_length_s`` as faster-whisper's batched pipeline does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = 0.5
    min_speech_duration_ms: int = 0
    # A pause ends a speech clip only from 2 s on (faster-whisper's own default, what its
    # sequential loop uses), not the batched pipeline's 160 ms: clips are glued with 0.4 s of
    # padding each side, so a longer pause inside a sentence shrank to 0.8 s and Whisper
    # joined the words around it ("my fellow Americans, ask not" read "American ask").
    # benchmarks/asr_wer.py on this project's telephone audio: WER 0.009, the bare loop's,
    # against 0.017 at 160 ms; fewer left-out tails decoded again (the throughput archive's 62
    # chunks took 65 decodes in 43 batches, against 71 in 49 at 160 ms).
    # benchmarks/verdict_stability.py, pinned: 80/80 (1000 ms too).
    # Unpinned on an Intel Xeon the synthetic samples have near-misses at any setting (160 ms
    # 79/80, 1000 ms 77/80, 2000 ms 78/80: c05's espeak "Done. So, is there anything else"
    # reads as a negation in most noisy runs).
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400
    # Between the clips found, Silero is asked again at this lower threshold (None: not), and
    # what it finds there is kept when it is a turn of its own (1 s or more, 0.2 s clear of
    # the clips found: batching.RESCUE_*): a whole question Silero scored under 0.5 throughout
    # was lost ("请问还有其他需要我为您办理的吗", split 18's b05: 3.8 s of the agent's loud audio
    # left out, 2.4 s with the pass; benchmarks/vad_gaps.py). A clip's low-scored onset or end
    # is left alone (b05's 感谢您的来电 before 祝您…再见): taking those in too gave back 3.6 of
    # the 3.8 s, but changed what Whisper heard of the clip next to them (the golden sample
    # c01's "May I have your account number please" read "May I have your account, humbly").
    # The batched decode's (the sequential one runs faster-whisper's own VAD, without it).
    rescue_threshold: float | None = 0.35


class FallbackConfig(BaseModel):
    """What happens when a chunk's decode fails Whisper's quality thresholds.

    ``deterministic``: decode the failed chunks again, at temperature 0, with a wider beam,
    a repetition penalty and no repeated n-grams; keep the retry if it passes, else the
    attempt with the better average log-probability (of those under the compression
    threshold). ``none``: keep the first decode. Never sampling: the same audio gives the
    same words.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: Literal["deterministic", "none"] = "deterministic"
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    beam_size: int = Field(default=8, ge=1)
    repetition_penalty: float = Field(default=1.1, ge=1.0)
    no_repeat_ngram_size: int = Field(default=4, ge=0)


class AsrConfig(BaseModel):
    """Everything that decides the words of a transcript; ``model_dump()`` is JSON-ready."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    # Calls in English are decoded by this model (None: by ``model``); ``languages``: what
    # language detection chooses among (pipeline.transcribe.language). ``models``: every
    # model → the sha256 of its model.bin.
    english_model: str | None = None
    languages: list[str] = Field(default_factory=list)
    models: dict[str, str | None] = Field(default_factory=dict)
    model_sha256: str | None = None  # of model.bin, when the model is a local directory
    model_bytes: int | None = None
    device: str = "cpu"
    compute_type: str = "int8"
    decoding: Literal["batched", "sequential"] = "batched"
    # Two chunks per batch: as fast as eight on a 2-core AMD box (interleaved CPU seconds over
    # 20 calls, 91.6 vs 92.1), the same words, and a quarter of the encoder's attention
    # buffers (8 x 6 heads x 1500^2 floats = 432 MB), which set a long call's peak memory.
    # Word times depend on it (faster-whisper's word heuristics restart per batch).
    batch_size: int = Field(default=2, ge=1)
    # Beam and chunk length (speech merged into chunks of at most this many seconds, each
    # decoded in Whisper's 30-s window) come per model from decode_models.yaml, where the
    # measurements behind them are; the clips of a chunk whose decode heard no word in them
    # (its last words lost, a sentence skipped) are decoded again on their own (_uncovered).
    beam_size: int = Field(default=3, ge=1)
    temperature: float = 0.0
    chunk_length_s: int = Field(default=20, ge=1, le=30)
    # A call's parties decoded in shared windows (batching._shared_windows), per model.
    shared_windows: bool = False
    # every model's own chunk length and beam (decode_models.yaml): a call decoded by one of
    # them takes its row (:meth:`for_model`); chunk_length_s and beam_size above are ``model``'s
    by_model: dict[str, ModelDecode] = Field(default_factory=dict)
    word_timestamps: bool = True
    condition_on_previous_text: bool = False
    # custom vocabulary of the call (pipeline.transcribe.vocabulary): faster-whisper's hot
    # words and Whisper's initial prompt
    hotwords: str | None = None
    initial_prompt: str | None = None
    fallback: FallbackConfig = FallbackConfig()
    vad: VadConfig | None = VadConfig()
    threads_per_decode: int = Field(default=1, ge=1)
    cpu_isa: Literal["native", "pinned"] = "native"
    cpu_env: dict[str, str] = Field(default_factory=dict)  # the pins in force when pinned
    faster_whisper: str = ""
    ctranslate2: str = ""

    def for_model(self, name: str) -> AsrConfig:
        """This configuration as model ``name`` decodes with it (its chunk length and beam)."""
        row = self.by_model.get(name)
        return self if row is None else self.model_copy(update=row.model_dump())


def _versions() -> tuple[str, str]:
    out = []
    for name in ("faster-whisper", "ctranslate2"):
        try:
            out.append(version(name))
        except PackageNotFoundError:
            out.append("")
    return out[0], out[1]


def asr_config(settings: Settings) -> AsrConfig:
    """The :class:`AsrConfig` these settings decode with (model files hashed once per process)."""
    sha, size = model_digest(resolve_model(settings.asr_model))
    english = settings.asr_english_model or None
    if english == settings.asr_model:
        english = None
    models = {settings.asr_model: sha}
    if english:
        models[english] = model_digest(resolve_model(english))[0]
    fw, ct2 = _versions()
    by_model = {name: model_decode(settings, name) for name in models}
    main = by_model[settings.asr_model]
    return AsrConfig(
        model=settings.asr_model,
        english_model=english,
        languages=settings.asr_languages.split(",") if settings.asr_languages else [],
        models=models,
        model_sha256=sha,
        model_bytes=size,
        device=settings.device,
        compute_type=settings.compute_type,
        decoding=settings.asr_decoding,
        batch_size=settings.asr_batch_size,
        chunk_length_s=main.chunk_length_s,
        beam_size=main.beam_size,
        shared_windows=main.shared_windows,
        by_model=by_model,
        vad=VadConfig() if settings.vad else None,
        threads_per_decode=threads_per_decode(settings),
        cpu_isa=settings.cpu_isa,
        cpu_env=dict(PINNED_CPU_ENV) if settings.cpu_isa == "pinned" else {},
        faster_whisper=fw,
        ctranslate2=ct2,
    )


# The bare loop callqa is measured against decodes with faster-whisper's default beam.
BASELINE_BEAM_SIZE = 5


def transcribe_options(settings: Settings, language: str | None) -> dict:
    """faster-whisper ``transcribe`` arguments of the bare sequential loop callqa is compared
    with (the benchmarks' baseline): faster-whisper's defaults (beam 5) plus callqa's choices."""
    return {
        "language": language,
        "beam_size": BASELINE_BEAM_SIZE,
        "vad_filter": settings.vad,
        "word_timestamps": True,
        # A hallucinated line must not seed the next window: Whisper's repetition loops on
        # long calls with hold music come from conditioning on previous text.
        "condition_on_previous_text": False,
    }


def passes(avg_logprob: float, no_speech_prob: float, ratio: float, fb: FallbackConfig) -> bool:
    """Whisper's acceptance rule: not too repetitive, confident enough, or plainly silence."""
    if ratio > fb.compression_ratio_threshold:
        return False
    if avg_logprob < fb.log_prob_threshold:
        return no_speech_prob > fb.no_speech_threshold
    return True


def better(first, retry, fb: FallbackConfig):
    """The attempt to keep, each ``(avg_logprob, no_speech_prob, ratio, payload)``."""
    if passes(*retry[:3], fb):
        return retry
    candidates = [a for a in (first, retry) if a[2] <= fb.compression_ratio_threshold]
    return max(candidates or [first, retry], key=lambda a: a[0])
