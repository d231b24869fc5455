"""Seconds per pipeline stage: a small timer the stages share, summed per call and per run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The stages the run summary reports, in pipeline order.
STAGES = ("decode", "vad", "asr", "diarization", "redaction", "scoring", "risk", "store")


class StageTimer:
    """Accumulates wall seconds per stage name; safe to share between threads of one call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def rounded(self, digits: int = 3) -> dict[str, float]:
        """Seconds per stage, in :data:`STAGES` order, then any other stage by name."""
        known = [s for s in STAGES if s in self.seconds]
        other = sorted(s for s in self.seconds if s not in STAGES)
        return {s: round(self.seconds[s], digits) for s in known + other}


def sum_stage_seconds(per_call: list[dict[str, float] | None]) -> dict[str, float]:
    """Per-stage seconds summed over calls (``None`` entries are skipped)."""
    total = StageTimer()
    for seconds in per_call:
        for name, value in (seconds or {}).items():
            total.add(name, value)
    return total.rounded()
