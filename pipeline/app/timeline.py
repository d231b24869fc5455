"""The call page's timeline: agent and customer lanes from the stored utterance times,
markers (silence, talk-over, rule hits, complaint risk) and waveform peaks.

Peaks are computed on the server once per recording and cached next to the decoded audio
(``var/audio_cache/<key>-peaks.json``); the page draws everything as inline SVG (attributes,
no inline style or script, so the CSP holds) and ``static/call.js`` only moves the playhead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from pipeline.app.audio import _cache_key

SILENCE_GAP = 3.0  # seconds without speech that get a marker
OVERLAP_MIN = 0.3  # seconds both speakers talk at once that get a marker
PEAK_BUCKETS = 400
TEXT_SUFFIXES = frozenset({".json", ".jsonl", ".txt", ".csv", ".tsv", ".srt", ".vtt", ".xml"})
MarkerKind = Literal["silence", "overlap", "rule", "risk"]


class Marker(BaseModel):
    kind: MarkerKind
    start: float
    end: float
    label: str
    x: float = 0.0  # position on the 0..1000 axis
    width: float = 0.0


class Segment(BaseModel):
    lane: Literal["agent", "customer", "other"]
    idx: int
    start: float
    end: float
    x: float
    width: float


class Timeline(BaseModel):
    duration: float
    segments: list[Segment]
    markers: list[Marker]
    peaks_path: str | None  # SVG path "d" of the waveform, or None without audio
    ticks: list[tuple[float, float]]  # (x, seconds)


def is_recording(source: str | None) -> bool:
    """True when ``source`` is an audio file that exists (text transcripts have no player)."""
    if not source:
        return False
    path = Path(source)
    return path.suffix.lower() not in TEXT_SUFFIXES and path.is_file()


def _lane(speaker: str) -> Literal["agent", "customer", "other"]:
    return speaker if speaker in ("agent", "customer") else "other"


def markers(utterances: list[Any], items: list[Any], risk: Any) -> list[Marker]:
    """Silence gaps and talk-over from utterance times; failed or doubtful rubric items and
    risk evidence where their evidence points."""
    out: list[Marker] = []
    spans = sorted((u.start, u.end, u.speaker) for u in utterances)
    talk_end = 0.0
    for start, end, _spk in spans:
        if start - talk_end >= SILENCE_GAP:
            out.append(Marker(kind="silence", start=talk_end, end=start, label=f"{start - talk_end:.0f}s"))  # fmt: skip
        talk_end = max(talk_end, end)
    for i, (_a_start, a_end, a_spk) in enumerate(spans):
        for b_start, b_end, b_spk in spans[i + 1 :]:
            if b_start >= a_end:
                break
            both = min(a_end, b_end) - b_start
            if b_spk != a_spk and both >= OVERLAP_MIN:
                out.append(Marker(kind="overlap", start=b_start, end=b_start + both, label=f"{both:.1f}s"))  # fmt: skip

    def when(ev: dict[str, Any]) -> float | None:
        if ev.get("start") is not None:
            return float(ev["start"])
        idx = ev.get("utterance")
        if idx is not None and 0 <= idx < len(utterances):
            return float(utterances[idx].start)
        return None

    for item in items:
        if item.passed is True and not item.needs_review:
            continue
        for ev in item.evidence:
            at = when(ev)
            if at is not None:
                end = float(ev.get("end") or at)
                out.append(Marker(kind="rule", start=at, end=max(at, end), label=item.title or item.id))  # fmt: skip
    if risk is not None:
        for ev in risk.evidence:
            at = when(ev.model_dump())
            if at is not None:
                out.append(Marker(kind="risk", start=at, end=at, label=ev.reason or "risk"))
    return sorted(out, key=lambda m: (m.start, m.kind))


def peaks(source: str, cache_dir: Path, buckets: int = PEAK_BUCKETS) -> list[float] | None:
    """Normalised peak per bucket of the recording (cached; None if it cannot be decoded)."""
    path = Path(source)
    try:
        key = _cache_key(path, [])
    except OSError:
        return None
    dest = cache_dir / f"{key}-peaks-{buckets}.json"
    if dest.exists():
        try:
            return json.loads(dest.read_text())
        except (OSError, ValueError):
            pass
    from pipeline.audio import AudioError, decode_audio

    try:
        decoded = decode_audio(path, sample_rate=8000, min_duration=0.0)
    except (AudioError, OSError):
        return None
    mono = np.abs(np.asarray(decoded.channels, dtype=np.float32)).max(axis=0)
    if mono.size == 0:
        return None
    edges = np.linspace(0, mono.size, buckets + 1).astype(int)
    values = [float(mono[a:b].max()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=True)]  # fmt: skip
    top = max(values) or 1.0
    values = [round(v / top, 3) for v in values]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values))
    os.replace(tmp, dest)
    return values


def _peaks_path(values: list[float], height: float = 40.0) -> str:
    """A symmetric waveform as one SVG path on a 1000-wide axis."""
    n = len(values)
    step = 1000.0 / n
    mid = height / 2
    parts = []
    for i, v in enumerate(values):
        h = max(0.5, v * mid)
        parts.append(f"M{i * step:.1f} {mid - h:.1f}V{mid + h:.1f}")
    return "".join(parts)


def build(
    utterances: list[Any],
    items: list[Any],
    risk: Any,
    duration: float | None,
    source: str | None,
    cache_dir: Path,
) -> Timeline:
    end = max([u.end for u in utterances] + [duration or 0.0, 1.0])
    scale = 1000.0 / end

    def x(t: float) -> float:
        return round(min(max(t, 0.0), end) * scale, 2)

    segments = [
        Segment(
            lane=_lane(u.speaker),
            idx=i,
            start=u.start,
            end=u.end,
            x=x(u.start),
            width=max(1.0, x(u.end) - x(u.start)),
        )  # fmt: skip
        for i, u in enumerate(utterances)
    ]
    found = markers(utterances, items, risk)
    for mk in found:
        mk.x = x(mk.start)
        mk.width = max(0.0, x(mk.end) - mk.x)
    values = peaks(source, cache_dir) if is_recording(source) else None
    step = next(s for s in (5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if end / s <= 12)
    ticks = [(x(t), float(t)) for t in range(0, int(end) + 1, step)]
    return Timeline(
        duration=end,
        segments=segments,
        markers=found,
        peaks_path=_peaks_path(values) if values else None,
        ticks=ticks,
    )
