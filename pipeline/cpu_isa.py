"""Reproducibility mode (``QA_CPU_ISA=pinned``): the same CPU kernels on every x86-64 machine.

Machines of one kind come with different CPUs (AMD Zen with AVX-512 VNNI, Intel Xeon with
AMX). Left alone, every numeric library picks the widest kernels the CPU has, and the float
sums come out in another order: a word of a transcript, and so a borderline verdict, can
change from one machine to the next. Pinned, every library that touches the audio or the
model runs its AVX2 kernels:

- CTranslate2: its own kernels forced to AVX2, no MKL (AMX, VNNI), oneDNN capped at AVX2;
- numpy: the AVX-512 dispatch targets disabled, so log-mel features (log10, exp) are the
  X86_V3 (AVX2) ones - measured: on an AVX-512 AMD box c03's first agent turn reads
  "telecom. My name" natively and "telecom, my name" pinned, as on an AVX2-only box;
- OpenBLAS (numpy's BLAS, the mel filter bank): the Haswell kernels;
- torch (speaker embeddings) and MKL: AVX2 code paths.

The libraries read these variables once, when they load, so they must be in the
environment before numpy or ctranslate2 is imported: at process start (``callqa`` applies
them first thing; Dask workers and subprocesses inherit them). This module imports neither.
"""

from __future__ import annotations

import os
import sys

PINNED_CPU_ENV: dict[str, str] = {
    "CT2_USE_MKL": "0",
    "CT2_FORCE_CPU_ISA": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
}

# numpy dispatch targets wider than AVX2; none may be active in pinned mode.
_NUMPY_WIDE_TARGETS = ("X86_V4", "AVX512_SKX", "AVX512_ICL", "AVX512_SPR")


class CpuIsaError(ValueError):
    """Pinned mode asked for after a numeric library already chose its kernels."""


def numpy_is_pinned() -> bool:
    """True when the loaded numpy dispatches no AVX-512 kernels (or numpy is not loaded)."""
    if "numpy" not in sys.modules:
        return True
    from numpy._core._multiarray_umath import __cpu_features__ as features

    return not any(features.get(name) for name in _NUMPY_WIDE_TARGETS)


def apply_cpu_isa(mode: str) -> None:
    """Put the pinned-kernel variables in the environment (``mode == "pinned"``).

    Raises :class:`CpuIsaError` when ctranslate2, or numpy with AVX-512 dispatch, is already
    loaded: their kernels were chosen at load time, so ``QA_CPU_ISA=pinned`` must be in the
    environment of the process (or Dask worker) when it starts.
    """
    if mode != "pinned":
        return
    missing = {k: v for k, v in PINNED_CPU_ENV.items() if os.environ.get(k) != v}
    late = ["ctranslate2"] if missing and "ctranslate2" in sys.modules else []
    if not numpy_is_pinned():
        late.append("numpy (with AVX-512 kernels)")
    if late:
        raise CpuIsaError(
            f"QA_CPU_ISA=pinned: {' and '.join(late)} loaded before the kernels could be "
            "pinned; set QA_CPU_ISA=pinned in the environment of the process (or Dask "
            "worker) before it starts"
        )
    os.environ.update(missing)


def apply_cpu_isa_from_env() -> None:
    """Process entry points: pin the kernels when ``QA_CPU_ISA=pinned`` is in the environment.

    Read straight from the environment (the ``cpu_isa`` setting's variable) because it must
    run before anything imports numpy - building :class:`pipeline.config.Settings` may.
    """
    apply_cpu_isa(os.environ.get("QA_CPU_ISA", "native").strip().lower())


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
