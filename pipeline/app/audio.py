"""The recording as the browser gets it: the source file when a browser plays it as is,
otherwise (A-law/mu-law WAV, AMR, ...) a PCM WAV decoded once and cached under var/; with
the call's redacted spans beeped for every role (also cached)."""

from __future__ import annotations

import hashlib
import os
import wave
from pathlib import Path

import numpy as np

# Formats Chromium/Firefox play natively, by suffix.
BROWSER_TYPES = {
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
}
DECODE_RATE = 16000  # rate of decoded copies: plenty for telephone speech


class AudioUnavailable(RuntimeError):
    """The call's recording is missing or cannot be decoded."""


def _pcm_wav(path: Path) -> bool:
    """True for integer PCM WAV (what every browser plays); A-law, mu-law, float: False."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getsampwidth() in (1, 2) and w.getnframes() > 0
    except (wave.Error, EOFError, OSError):
        return False


def _cache_key(path: Path, intervals: list[tuple[float, float]]) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sorted(intervals)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _write_wav(dest: Path, channels: np.ndarray, rate: int) -> None:
    pcm = (np.clip(channels.T, -1.0, 1.0) * 32767.0).astype("<i2")
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(channels.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, dest)  # atomic: a concurrent request sees the old state or the whole file


def _mask(frames: np.ndarray, rate: int, intervals: list[tuple[float, float]]) -> np.ndarray:
    from pipeline.redact.audio_mask import mask_speech

    return mask_speech(frames, rate, intervals)


def playable(
    source: str | Path, cache_dir: Path, redact: list[tuple[float, float]] | None = None
) -> tuple[Path, str]:
    """(file, media type) to serve for ``source``; ``redact``: spans (s) to beep out."""
    path = Path(source)
    if not path.is_file():
        raise AudioUnavailable(f"recording not found: {path.name}")
    intervals = [(float(a), float(b)) for a, b in (redact or []) if b > a]
    if not intervals:
        if path.suffix.lower() == ".wav" and _pcm_wav(path):
            return path, "audio/wav"
        if path.suffix.lower() in BROWSER_TYPES:
            return path, BROWSER_TYPES[path.suffix.lower()]
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / f"{_cache_key(path, intervals)}{'-redacted' if intervals else ''}.wav"
    if dest.exists():
        return dest, "audio/wav"
    from pipeline.audio import AudioError, decode_audio

    try:
        decoded = decode_audio(path, sample_rate=DECODE_RATE, min_duration=0.0)
    except AudioError as exc:
        raise AudioUnavailable(f"cannot decode the recording: {exc.reason}") from None
    channels = decoded.channels
    if intervals:
        channels = np.ascontiguousarray(_mask(channels.T, DECODE_RATE, intervals).T)
    _write_wav(dest, channels, DECODE_RATE)
    return dest, "audio/wav"
