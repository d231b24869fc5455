"""Speaker diarization (who spoke when) for mono calls; agent identification is
:mod:`pipeline.transcribe.agent_identification`.

Backends are picked by name: ``channel`` (stereo, one speaker per channel), ``embedded``
(the offline default for mono: Silero VAD + GE2E embeddings + clustering) and
``pyannote`` (optional extra ``callqa[pyannote]``).
"""

from __future__ import annotations

from typing import Any

from pipeline.transcribe.diarize.base import (
    Diarization,
    DiarizationProvenance,
    Diarizer,
    Turn,
    load_rttm,
)

BACKENDS: dict[str, str] = {
    "channel": "pipeline.transcribe.diarize.channel:ChannelDiarizer",
    "embedded": "pipeline.transcribe.diarize.embedded:EmbeddedDiarizer",
    "pyannote": "pipeline.transcribe.diarize.pyannote_backend:PyannoteDiarizer",
}
DEFAULT_MONO_BACKEND = "embedded"


def get_diarizer(name: str, **params: Any) -> Diarizer:
    """A diarizer by backend name with its hyper-parameters; ValueError names the valid ones."""
    import importlib

    target = BACKENDS.get(name)
    if target is None:
        raise ValueError(
            f"unknown diarizer backend {name!r}; valid backends: {', '.join(sorted(BACKENDS))}"
        )
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)(**params)


_SHARED: dict[str, Diarizer] = {}
_SHARED_LOCK = __import__("threading").Lock()


def mono_diarizer(name: str = DEFAULT_MONO_BACKEND):
    """The ``(samples_16k_mono) -> Diarization`` callable the ASR stage takes.

    The backend (and its models) is built on the first mono call only, once per process, so a
    stereo-only batch never loads the speaker encoder.
    """
    if name not in BACKENDS:
        get_diarizer(name)  # raises with the list of valid names

    def diarize(samples) -> Diarization:
        with _SHARED_LOCK:
            if name not in _SHARED:
                _SHARED[name] = get_diarizer(name)
        return _SHARED[name](samples, 16000)

    return diarize


def __getattr__(name: str):  # lazy: agent identification pulls the phrase matcher
    if name in ("identify_roles", "RoleAssignment", "SignalContribution", "load_agent_phrases"):
        from pipeline.transcribe import agent_identification

        return getattr(agent_identification, name)
    raise AttributeError(name)


__all__ = [
    "BACKENDS",
    "DEFAULT_MONO_BACKEND",
    "Diarization",
    "DiarizationProvenance",
    "Diarizer",
    "RoleAssignment",
    "SignalContribution",
    "Turn",
    "get_diarizer",
    "mono_diarizer",
    "identify_roles",
    "load_agent_phrases",
    "load_rttm",
]
