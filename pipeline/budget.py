"""Per-call time and memory budgets, enforced while the call runs.

A call runs inside :func:`call_budget`: a watchdog thread (one per process) checks every
active call a few times a second and, when one is over its time budget or has grown the
process's memory by more than its memory budget, raises :class:`OverBudget` *in the call's
own thread* (``PyThreadState_SetAsyncExc``). The exception lands at the next Python bytecode
the call runs: between ASR segments, between checks, between utterances; native code that
never returns to Python (one CTranslate2 decode step) finishes that step first. Where it
lands, Python may discard it (a weakref callback or ``__del__`` run by the garbage collector
prints "Exception ignored" and goes on), so the watchdog raises it again, at short irregular
intervals, while the call runs on, and a call that ends after its stop fails all the same.

Memory is the process's resident set: with several calls at once, a call is stopped when the
process grew by more than its budget since it started (the memory a runaway call takes is
what makes that happen); calls that would obviously not fit are refused before decoding by
:func:`estimated_audio_bytes`.
"""

from __future__ import annotations

import ctypes
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

WATCH_INTERVAL_S = 0.2
# Once a stop was discarded, it is raised again at short, irregular intervals: at a fixed
# period it can fall into step with a loop that spends most of its time where Python
# discards it (a garbage-collector callback) and be discarded again and again.
RETRY_INTERVAL_S = (0.005, 0.03)
FLOAT32_BYTES = 4
DECODE_OVERHEAD = 3  # decoded samples plus resampling and feature buffers


class OverBudget(BaseException):
    """The call ran past its time budget or memory budget; it is recorded as failed.

    A ``BaseException``, as ``KeyboardInterrupt`` is: it lands at whatever bytecode the call
    runs next, often inside a library's or our own ``except Exception`` (a number parser that
    treats any error as "not a number"), which would swallow it and let the call run on and
    be stored."""


@dataclass(frozen=True)
class Budget:
    """What one call may use: wall-clock seconds and MiB of memory growth (None: no limit)."""

    seconds: float | None
    memory_mb: float | None

    @classmethod
    def for_call(
        cls,
        audio_seconds: float | None,
        *,
        floor_s: float,
        per_audio_second: float,
        memory_mb: float | None,
    ) -> Budget:
        """``floor_s + per_audio_second × audio length`` seconds (the floor alone when the
        length is unknown, e.g. a text transcript)."""
        seconds = floor_s + per_audio_second * max(audio_seconds or 0.0, 0.0)
        return cls(seconds=seconds if floor_s > 0 else None, memory_mb=memory_mb)

    def describe(self) -> str:
        parts = [f"{self.seconds:.0f} s" if self.seconds else "no time limit"]
        parts.append(f"{self.memory_mb:.0f} MiB" if self.memory_mb else "no memory limit")
        return " and ".join(parts)


def estimated_audio_bytes(
    seconds: float,
    channels: int,
    sample_rate: int = 16_000,
    spool_above_s: float | None = None,
) -> int:
    """Memory that decoding ``seconds`` of ``channels``-channel audio takes, roughly; a
    recording longer than ``spool_above_s`` is decoded into temporary files instead
    (``pipeline.audio``), so it takes what that many seconds take."""
    if spool_above_s is not None and seconds > spool_above_s:
        seconds = spool_above_s
    return int(seconds * channels * sample_rate * FLOAT32_BYTES * DECODE_OVERHEAD)


@dataclass
class _Watch:
    thread_id: int
    budget: Budget
    started: float = field(default_factory=time.monotonic)
    rss_at_start: int = 0
    reason: str | None = None
    done: bool = False


_active: dict[int, _Watch] = {}
_lock = threading.Lock()
_watchdog: threading.Thread | None = None


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # noqa: BLE001 - no psutil, or no /proc: no memory watch
        return 0


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


def _watch_loop() -> None:
    jitter = random.Random()
    retrying = False
    while True:
        time.sleep(jitter.uniform(*RETRY_INTERVAL_S) if retrying else WATCH_INTERVAL_S)
        with _lock:
            watches = [w for w in _active.values() if not w.done]
            stopped = [w for w in watches if w.reason is not None]
            for w in stopped:  # stopped, yet running on: the stop was discarded
                _raise_in(w.thread_id, OverBudget)
            watches = [w for w in watches if w.reason is None]
        retrying = bool(stopped)
        if not watches:
            continue
        rss = _rss() if any(w.budget.memory_mb for w in watches) else 0
        now = time.monotonic()
        for w in watches:
            reason = None
            if w.budget.seconds and now - w.started > w.budget.seconds:
                reason = f"over its time budget of {w.budget.seconds:.0f} s; stopped"
            elif w.budget.memory_mb and rss and w.rss_at_start:
                grown = (rss - w.rss_at_start) / 2**20
                if grown > w.budget.memory_mb:
                    reason = (
                        f"over its memory budget of {w.budget.memory_mb:.0f} MiB "
                        f"(process grew {grown:.0f} MiB); stopped"
                    )
            if reason is None:
                continue
            with _lock:
                if w.done or w.reason is not None:
                    continue
                w.reason = reason
                _raise_in(w.thread_id, OverBudget)
                retrying = True


def _ensure_watchdog() -> None:
    global _watchdog
    with _lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch_loop, name="callqa-budget", daemon=True)
            _watchdog.start()


@contextmanager
def call_budget(budget: Budget) -> Iterator[None]:
    """Run the block under ``budget``; raises :class:`OverBudget` with the reason when the
    block is stopped, or when it ends after the watchdog stopped it (the stop discarded
    on the way, or the block finishing just as it fired: it ran past its budget)."""
    if not budget.seconds and not budget.memory_mb:
        yield
        return
    _ensure_watchdog()
    watch = _Watch(
        thread_id=threading.get_ident(),
        budget=budget,
        rss_at_start=_rss() if budget.memory_mb else 0,
    )
    with _lock:
        _active[watch.thread_id] = watch
    try:
        yield
    except OverBudget:
        raise OverBudget(watch.reason or "over budget") from None
    finally:
        _retire(watch)
    if watch.reason is not None:
        raise OverBudget(watch.reason)


def _retire(watch: _Watch) -> None:
    """Take ``watch`` off the watchdog's list and cancel a stop not yet delivered; a stop
    landing in here (the watchdog re-raises) only makes it try again."""
    while True:
        try:
            with _lock:
                watch.done = True
                _active.pop(watch.thread_id, None)
                _raise_in(watch.thread_id, None)
            return
        except OverBudget:
            continue
