"""Audio clips for coaching packs: cut a span of a call, mix both parties, beep personal data.

Clips are 16-bit mono WAV (the ``wave`` module: no extra dependency, plays in every
browser). Redacted spans (the transcript's ``redactions``, in call seconds) are beeped
with :func:`pipeline.redact.audio_mask.beep` over :func:`pipeline.redact.audio_mask.speech_bounds`, so a pack can leave the building.
"""

from __future__ import annotations

import wave
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.audio import DecodedAudio, decode_audio
from pipeline.redact.audio_mask import beep, speech_bounds
from pipeline.redact.audio_mask import redaction_intervals as redaction_spans  # noqa: F401 (re-export)

SAMPLE_RATE = 16000
CONTEXT_S = 3.0  # seconds of context on each side of the evidence
MAX_WINDOW_S = 30.0  # longest clip of a rule's window when there is no evidence span


@dataclass(frozen=True)
class Clip:
    """A written clip: where it is, which span of the call it holds, what was beeped."""

    path: Path
    start: float  # call seconds
    end: float
    redacted: list[tuple[float, float]]  # beeped spans, clip seconds

    @property
    def duration(self) -> float:
        return round(self.end - self.start, 3)


class AudioCache:
    """Decoded recordings, the last few kept (a pack usually takes several items per call)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._cache: OrderedDict[str, DecodedAudio] = OrderedDict()

    def get(self, path: str) -> DecodedAudio:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        audio = decode_audio(path, sample_rate=SAMPLE_RATE)
        self._cache[path] = audio
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return audio


def mix_down(channels: np.ndarray) -> np.ndarray:
    """Both parties on one track: channels summed (each party at its own level), scaled
    down only if the sum would clip."""
    mono = channels.sum(axis=0, dtype=np.float64) if channels.ndim == 2 else channels
    peak = float(np.abs(mono).max(initial=0.0))
    if peak > 1.0:
        mono = mono / peak
    return mono.astype(np.float32)


def clip_bounds(
    start: float, end: float, duration: float, context: float = CONTEXT_S
) -> tuple[float, float]:
    """The span ``[start, end]`` widened by ``context`` seconds, kept inside the call."""
    lo = max(0.0, start - context)
    hi = min(duration, end + context)
    if hi <= lo:  # evidence past the end of the audio: keep what there is
        lo, hi = max(0.0, min(lo, duration - 1.0)), duration
    return round(lo, 3), round(hi, 3)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Float samples in [-1, 1] as 16-bit PCM mono WAV."""
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def cut_clip(
    audio: DecodedAudio,
    start: float,
    end: float,
    redactions: list[tuple[float, float]],
    path: Path,
    context: float = CONTEXT_S,
) -> Clip:
    """Write the mixed, beeped audio of ``[start - context, end + context]`` to ``path``."""
    lo, hi = clip_bounds(start, end, audio.duration, context)
    sr = audio.sample_rate
    i0, i1 = round(lo * sr), min(round(hi * sr), audio.channels.shape[1])
    mono = mix_down(audio.channels[:, i0:i1])
    inside = []
    for r0, r1 in redactions:
        a, b = max(r0, lo) - lo, min(r1, hi) - lo
        if b > a:
            inside.append((round(a, 3), round(b, 3)))
    if inside:  # widened into the speech the word times miss; the clip records what it masked
        length = len(mono) / sr
        inside = [(a, min(b, length)) for a, b in speech_bounds(mono, sr, inside) if a < length]
        mono = beep(mono, sr, inside, mode="beep")
    write_wav(path, mono, sr)
    return Clip(path=path, start=lo, end=round(lo + len(mono) / sr, 3), redacted=inside)
