"""Calls discovery refused, recorded in the flow's own process, a batch per commit.

A manifest of a quarter of a million rows naming recordings that were never copied gives as
many refused jobs; each as an orchestrated task cost tens of milliseconds of scheduling and
a transaction of its own. Here they are stored :data:`REFUSALS_PER_COMMIT` at a time, with
the store's per-call rules unchanged (:meth:`~pipeline.store.Store.save_refusals`: a refusal
never relabels a scored call), and the run stops, as a task's would, when the store refuses
a commit.
"""

from __future__ import annotations

import time

from pipeline.process import CallOutcome, CallProcessor, StoreDown
from pipeline.process import _save as save_retrying  # the in-place retries of every save
from pipeline.schema import CallJob
from pipeline.store import StoreUnwritable

REFUSALS_PER_COMMIT = 500


def record_refusals(
    processor: CallProcessor, jobs: list[CallJob], run_id: int | None
) -> tuple[dict[int, CallOutcome], str | None]:
    """(index in ``jobs`` → outcome) of every refused job, and why the run must stop (None
    while the store takes the writes). Jobs not refused are not touched."""
    refused = [(i, job) for i, job in enumerate(jobs) if job.manifest_error]
    outcomes: dict[int, CallOutcome] = {}
    stopped: str | None = None
    for start in range(0, len(refused), REFUSALS_PER_COMMIT):
        batch = refused[start : start + REFUSALS_PER_COMMIT]
        began = time.perf_counter()
        if stopped is None:
            try:
                save_retrying(
                    lambda b=batch: processor.store.save_refusals([j for _, j in b], run_id)
                )
            except (StoreDown, StoreUnwritable) as exc:
                stopped = f"the store refused a commit: {exc}"
        seconds = (time.perf_counter() - began) / len(batch)
        for i, job in batch:
            outcomes[i] = (
                CallOutcome(
                    call_id=job.call_id,
                    source=job.source,
                    status="failed",
                    error=job.manifest_error,
                    seconds=seconds,
                )
                if stopped is None
                else CallOutcome(call_id=job.call_id, source=job.source, status="stopped")
            )
    return outcomes, stopped
