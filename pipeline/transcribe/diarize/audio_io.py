"""Decoding for the diarize commands until ``pipeline.audio.decode_audio`` exists.

A private helper over PyAV: any container/codec FFmpeg reads, resampled to 16 kHz
float32, channels kept, shape (n_channels, n_samples).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """(n_channels, n_samples) float32 at ``sample_rate``; errors name the file."""
    path = Path(path)
    try:
        from pipeline.audio import decode_audio  # the shared decoder, once it exists
    except ImportError:
        decode_audio = None
    if decode_audio is not None:
        return np.asarray(decode_audio(path, sample_rate=sample_rate).channels, dtype=np.float32)
    return _decode_with_av(path, sample_rate)


def _decode_with_av(path: Path, sample_rate: int) -> np.ndarray:
    import av

    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            n_channels = stream.codec_context.channels or 1
            layout = "mono" if n_channels == 1 else "stereo" if n_channels == 2 else None
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except av.error.FFmpegError as exc:
        raise ValueError(f"{path}: cannot decode audio: {exc}") from None
    if not chunks:
        raise ValueError(f"{path}: no audio samples")
    return np.concatenate(chunks, axis=1).astype(np.float32)


def to_mono(channels: np.ndarray) -> np.ndarray:
    return channels.mean(axis=0) if channels.ndim == 2 else channels
