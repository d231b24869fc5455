"""Transcription: faster-whisper ASR, hallucination filter, agent/customer roles → Transcript.

``transcribe_call`` is imported lazily so that sub-packages (``diarize``) stay light to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.transcribe.call import transcribe_call

__all__ = ["transcribe_call"]


def __getattr__(name: str) -> Any:
    if name == "transcribe_call":
        from pipeline.transcribe.call import transcribe_call

        return transcribe_call
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
