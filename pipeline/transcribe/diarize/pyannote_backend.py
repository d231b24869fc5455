"""The ``pyannote`` backend: a pyannote.audio pipeline from a local directory or a hub id.

pyannote.audio is the optional extra ``callqa[pyannote]`` (it pulls a CUDA torch), never
part of the default install; it is imported only when this backend runs.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from pydantic import Field

from pipeline.transcribe.diarize.base import (
    Diarization,
    Diarizer,
    Hyperparameters,
    Turn,
    check_samples,
)

INSTALL_HINT = (
    "the 'pyannote' diarizer needs pyannote.audio, which is not installed: "
    "install the optional extra with `pip install 'callqa[pyannote]'` "
    "(or use the offline default backend 'embedded')"
)


class PyannoteParams(Hyperparameters):
    pipeline: str = Field(
        "pyannote/speaker-diarization-3.1", description="local directory or hub id"
    )
    token: str | None = Field(None, description="hub token; default: env HF_TOKEN")
    min_speakers: int | None = Field(None, ge=1)
    max_speakers: int | None = Field(None, ge=1)
    device: str = "cpu"


@lru_cache(maxsize=2)
def _load_pipeline(source: str, token: str | None, device: str):
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # telemetry off
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from pyannote.audio import Pipeline
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    import torch

    pipeline = (
        Pipeline.from_pretrained(source, use_auth_token=token)
        if token
        else Pipeline.from_pretrained(source)
    )
    if pipeline is None:
        raise RuntimeError(
            f"pyannote pipeline {source!r} could not be loaded (local path or hub id with token?)"
        )
    return pipeline.to(torch.device(device))


class PyannoteDiarizer(Diarizer):
    name = "pyannote"
    libraries = ("pyannote.audio", "torch")
    Params = PyannoteParams

    def __init__(self, **params):
        super().__init__(**params)
        import importlib.util

        if importlib.util.find_spec("pyannote.audio") is None:
            raise RuntimeError(INSTALL_HINT)

    def __call__(
        self, samples: np.ndarray, sample_rate: int = 16000, num_speakers: int | None = None
    ) -> Diarization:
        import torch

        p = self.params
        wav = check_samples(samples, sample_rate)
        pipeline = _load_pipeline(p.pipeline, p.token or os.environ.get("HF_TOKEN"), p.device)
        kwargs = (
            {"num_speakers": num_speakers}
            if num_speakers
            else {
                k: v
                for k, v in (("min_speakers", p.min_speakers), ("max_speakers", p.max_speakers))
                if v
            }
        )
        result = pipeline(
            {"waveform": torch.from_numpy(wav)[None], "sample_rate": sample_rate}, **kwargs
        )
        annotation = getattr(result, "speaker_diarization", result)
        turns = [
            Turn(start=float(seg.start), end=float(seg.end), speaker=str(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
        ]
        prov = self.provenance({"pipeline": p.pipeline})
        prov.hyperparameters.pop("token", None)  # never record a secret
        return Diarization(turns=turns, duration=len(wav) / sample_rate, produced_by=prov)
