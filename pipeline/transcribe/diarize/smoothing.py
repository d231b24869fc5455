"""Frame labels to turns, and the minimum-duration smoother.

The smoother must not erase short replies ("嗯", "yes", "对"): a short turn that is a
whole speech region of its own (silence on both sides, as a back-channel reply usually
is) was labelled from its own embedding and is kept. Only a short flicker *inside* a
speech region that another speaker holds on both sides is relabelled to that speaker.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.transcribe.diarize.base import Turn


def _covering_region(
    turn: Turn, regions: Sequence[tuple[float, float]]
) -> tuple[float, float] | None:
    mid = (turn.start + turn.end) / 2
    for a, b in regions:
        if a - 1e-6 <= mid <= b + 1e-6:
            return a, b
    return None


def smooth_turns(
    turns: Sequence[Turn],
    speech_regions: Sequence[tuple[float, float]],
    *,
    min_duration_on: float,
    min_duration_off: float,
    island_tolerance: float = 0.1,
) -> list[Turn]:
    """Merge same-speaker turns split by short gaps; absorb short in-region flickers.

    ``speech_regions`` are the voice-activity regions (seconds). A turn shorter than
    ``min_duration_on`` is kept when it spans its speech region (within
    ``island_tolerance`` seconds at each end); otherwise it goes to the neighbouring
    speaker that encloses it.
    """
    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    kept: list[Turn] = []
    for i, turn in enumerate(ordered):
        if turn.duration >= min_duration_on:
            kept.append(turn)
            continue
        region = _covering_region(turn, speech_regions)
        is_island = region is not None and (
            turn.start <= region[0] + island_tolerance and turn.end >= region[1] - island_tolerance
        )
        if is_island or region is None:
            kept.append(turn)
            continue
        prev = next((t for t in reversed(ordered[:i]) if t.speaker != turn.speaker), None)
        nxt = next((t for t in ordered[i + 1 :] if t.speaker != turn.speaker), None)
        neighbour = prev if prev is not None and prev.end >= turn.start - min_duration_off else nxt
        if neighbour is None:
            kept.append(turn)
        else:
            kept.append(Turn(start=turn.start, end=turn.end, speaker=neighbour.speaker))
    return merge_gaps(kept, min_duration_off)


def merge_gaps(turns: Sequence[Turn], min_duration_off: float) -> list[Turn]:
    """Join consecutive turns of one speaker separated by less than ``min_duration_off``
    where no other speaker talks in between."""
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        same = [j for j, t in enumerate(out) if t.speaker == turn.speaker]
        if same:
            j = same[-1]
            last = out[j]
            between = any(
                t.speaker != turn.speaker and t.start >= last.end - 1e-6 and t.start < turn.start
                for t in out[j + 1 :]
            )
            if turn.start - last.end < min_duration_off and not between:
                out[j] = Turn(start=last.start, end=max(last.end, turn.end), speaker=turn.speaker)
                continue
        out.append(turn)
    return out


def frames_to_turns(
    labels: Sequence[Sequence[int]], frame_s: float, names: Sequence[str]
) -> list[Turn]:
    """Per-frame sets of active speaker indices -> turns (one per contiguous run)."""
    turns: list[Turn] = []
    open_at: dict[int, int] = {}
    for f, active in enumerate([*labels, ()]):
        for k in list(open_at):
            if k not in active:
                turns.append(
                    Turn(start=open_at.pop(k) * frame_s, end=f * frame_s, speaker=names[k])
                )
        for k in active:
            open_at.setdefault(k, f)
    return sorted(turns, key=lambda t: (t.start, t.speaker))
