"""Test-wide settings: offline models, no telemetry, a private Prefect home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="callqa-prefect-"))

# Golden tests assert ASR-dependent verdicts: run them with the numeric kernels pinned
# (pipeline.cpu_isa), so they hold on both CPUs of this kind of machine (AMD AVX-512 VNNI,
# Intel AMX) alike. Set here, before anything imports numpy or ctranslate2 (pipeline.cpu_isa
# imports neither); subprocesses (callqa run, Dask workers) inherit it.
os.environ.setdefault("QA_CPU_ISA", "pinned")
from pipeline.cpu_isa import apply_cpu_isa_from_env  # noqa: E402

apply_cpu_isa_from_env()
