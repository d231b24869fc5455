"""Test-wide settings: offline models, no telemetry, a private Prefect home."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="callqa-prefect-"))

# Golden tests assert ASR-dependent verdicts: run them with CTranslate2's kernels pinned, so
# they hold on both CPUs of this kind of machine (AMD AVX-512 VNNI, Intel AMX) alike. Set here,
# before anything imports ctranslate2; subprocesses (callqa run, Dask workers) inherit it.
os.environ.setdefault("QA_CPU_ISA", "pinned")
if os.environ["QA_CPU_ISA"] == "pinned":
    from pipeline.transcribe.asr import PINNED_CPU_ENV

    for _name, _value in PINNED_CPU_ENV.items():
        os.environ.setdefault(_name, _value)
