"""Personal data out of the audio: the redacted spans of a call replaced by a tone or silence.

The review app's audio route and API, and coaching clips, serve the recording through
:func:`mask_speech` with :func:`redaction_intervals` of the stored (redacted) transcript,
for every role: the unmasked recording is never served. (The unredacted *transcript* is
kept only under the vault rule, :mod:`pipeline.redact.vault`.)

Word timestamps are where the words were recognised, not where the speech starts and
ends: Whisper's often start a few hundred milliseconds late. :func:`mask_speech` therefore
widens every span into the speech it touches (across gaps of up to ``MAX_GAP_S``, at most
``MAX_WIDEN_S`` each way) plus ``PAD_S``, before :func:`beep` replaces it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from pipeline.schema import Transcript

MODES = ("beep", "silence")
BEEP_HZ = 1000.0
BEEP_LEVEL = 0.3  # of full scale
PAD_S = 0.1  # around every masked span
MAX_WIDEN_S = 0.8  # furthest a span grows into the speech next to it, each way
MAX_GAP_S = 0.2  # pauses between words shorter than this don't stop the widening
FRAME_S = 0.02
SPEECH_OVER_FLOOR = 4.0  # a frame is speech at this multiple of the channel's noise floor


def redaction_intervals(transcript: Transcript | None) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every redaction the redact stage recorded on
    ``transcript`` (``None``: none), sorted and merged where they overlap."""
    records = (transcript.redactions or []) if transcript is not None else []
    spans = [(r.start, r.end) for r in records if r.end > r.start]
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def speech_bounds(
    samples: np.ndarray, sample_rate: int, intervals: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Each interval widened into the speech it touches (see module doc), plus ``PAD_S``."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    hop = max(1, round(FRAME_S * sample_rate))
    n_frames = x.shape[0] // hop
    if n_frames == 0:
        return [(max(0.0, a - PAD_S), b + PAD_S) for a, b in intervals]
    rms = np.sqrt(np.mean(x[: n_frames * hop].reshape(n_frames, hop, -1) ** 2, axis=1))
    floor = np.maximum(np.percentile(rms, 10, axis=0), 1e-4)
    speech = np.any(rms > SPEECH_OVER_FLOOR * floor, axis=1)
    reach, gap = round(MAX_WIDEN_S / FRAME_S), round(MAX_GAP_S / FRAME_S)

    def widen(frame: int, step: int) -> int:
        edge, quiet, k = frame, 0, frame
        for _ in range(reach):
            k += step
            if not 0 <= k < n_frames:
                break
            if speech[k]:
                edge, quiet = k, 0
            else:
                quiet += 1
                if quiet > gap:
                    break
        return edge

    out = []
    for start, end in intervals:
        f0 = min(max(int(start / FRAME_S), 0), n_frames - 1)
        f1 = min(max(int(end / FRAME_S), 0), n_frames - 1)
        lo, hi = widen(f0, -1) * FRAME_S, (widen(f1, 1) + 1) * FRAME_S
        out.append((round(max(0.0, min(lo, start) - PAD_S), 3), round(max(hi, end) + PAD_S, 3)))
    return out


def mask_speech(
    samples: np.ndarray,
    sample_rate: int,
    intervals: list[tuple[float, float]],
    mode: Literal["beep", "silence"] = "beep",
) -> np.ndarray:
    """A copy of ``samples`` (frames first) with the speech of every interval (widened by
    :func:`speech_bounds`) replaced by a tone or silence: what the app serves."""
    if not intervals:
        return np.array(samples, copy=True)
    return beep(samples, sample_rate, speech_bounds(samples, sample_rate, intervals), mode)


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
