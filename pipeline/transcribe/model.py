"""ASR model resolution and verification: which faster-whisper model a setting names, the
digest of its weights, one loaded model per process, and the cores its decoding streams use.

The model is a setting (``Settings.asr_model``): an embedded name (``base``, ``tiny.en``:
:mod:`pipeline.transcribe.models`) resolves to its directory (``base`` reassembled from its
two packages and verified once); a directory is used as is; any other name is handed to faster-whisper with ``local_files_only=True`` (nothing is
fetched from a hub at run time), so it works only when it is already in the local cache.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.cpu_isa import CpuIsaError, apply_cpu_isa, pin_blas_threads
from pipeline.transcribe.heap import keep_heap_memory
from pipeline.transcribe.models import ModelError, model_file_sha256, resolve_embedded

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


def resolve_model(name: str) -> str:
    """An embedded name (``tiny.en``, ``base``) → its directory; a directory → itself; else
    the name."""
    embedded = resolve_embedded(name)
    if embedded is not None:
        return str(embedded)
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


def model_digest(resolved: str) -> tuple[str | None, int | None]:
    """(sha256, bytes) of a resolved model directory's ``model.bin`` (hashed once per process
    and file version); Nones when the model is a name in faster-whisper's cache."""
    model_bin = Path(resolved) / "model.bin"
    if not model_bin.is_file():
        return None, None
    return model_file_sha256(model_bin), model_bin.stat().st_size


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


def is_english_only(model: WhisperModel) -> bool:
    return not model.model.is_multilingual
