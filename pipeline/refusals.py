"""Calls discovery refused, recorded in the flow's own process: no task run each.

A manifest of a quarter of a million rows naming recordings that were never copied gives as
many refused jobs; each as an orchestrated task cost tens of milliseconds of scheduling
before its one transaction. Here they are stored one after another (the store's per-call
rules unchanged: a refusal never relabels a scored call), and the run stops, as a task's
would, when the store refuses a commit.
"""

from __future__ import annotations

from pipeline.process import CallOutcome, CallProcessor, StoreDown
from pipeline.schema import CallJob
from pipeline.store import StoreUnwritable


def record_refusals(
    processor: CallProcessor, jobs: list[CallJob], run_id: int | None
) -> tuple[dict[int, CallOutcome], str | None]:
    """(index in ``jobs`` → outcome) of every refused job, and why the run must stop (None
    while the store takes the writes). Jobs not refused are not touched."""
    outcomes: dict[int, CallOutcome] = {}
    stopped: str | None = None
    for i, job in enumerate(jobs):
        if not job.manifest_error:
            continue
        if stopped:
            outcomes[i] = CallOutcome(call_id=job.call_id, source=job.source, status="stopped")
            continue
        try:
            outcomes[i] = processor.process(job, run_id)
        except (StoreDown, StoreUnwritable) as exc:
            stopped = f"the store refused a commit: {exc}"
            outcomes[i] = CallOutcome(
                call_id=job.call_id, source=job.source, status="stopped", error=str(exc)
            )
    return outcomes, stopped
