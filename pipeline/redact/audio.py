"""Beep or silence the audio of redacted spans (clips, the review app's stream)."""

from __future__ import annotations

from typing import Literal

import numpy as np

MODES = ("beep", "silence")
BEEP_HZ = 1000.0
BEEP_LEVEL = 0.3  # of full scale


def beep(
    samples: np.ndarray,
    sample_rate: int,
    intervals: list[tuple[float, float]],
    mode: Literal["beep", "silence"] = "beep",
) -> np.ndarray:
    """A copy of ``samples`` (frames first: ``(n,)`` or ``(n, channels)``) with each
    ``(start, end)`` interval in seconds replaced by a 1 kHz tone or by silence.

    Samples outside the intervals are untouched; intervals past the end are clipped.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    out = np.array(samples, copy=True)
    n = out.shape[0]
    if np.issubdtype(out.dtype, np.integer):
        info = np.iinfo(out.dtype)
        full_scale, centre = (info.max - info.min) / 2, (int(info.max) + int(info.min) + 1) // 2
    else:
        full_scale, centre = 1.0, 0.0
    for start, end in intervals:
        if end < start or start < 0:
            raise ValueError(f"bad interval ({start}, {end})")
        i0, i1 = min(round(start * sample_rate), n), min(round(end * sample_rate), n)
        if i1 <= i0:
            continue
        if mode == "silence":
            fill = np.full(i1 - i0, centre, dtype=np.float64)
        else:
            t = np.arange(i0, i1) / sample_rate
            fill = centre + BEEP_LEVEL * full_scale * np.sin(2 * np.pi * BEEP_HZ * t)
        fill = (
            fill.astype(out.dtype)
            if out.ndim == 1
            else np.repeat(fill[:, None], out.shape[1], axis=1).astype(out.dtype)
        )
        out[i0:i1] = fill
    return out
