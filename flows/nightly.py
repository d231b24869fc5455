"""The nightly batch: every call of an archive through the pipeline into the inspection store.

Wiring only: discovery, per-call processing, storage and the summary live in ``pipeline/``.
Calls run concurrently on the flow's task runner (threads on one machine by default, a Dask
cluster when one is given); transient store errors are retried with backoff; a bad file is
recorded as failed with its reason and the batch goes on. Killing the flow at any moment and
running it again leaves every good call scored exactly once (one transaction per call, and
calls already scored with the same models and rubric version are skipped).
"""

from __future__ import annotations

import os
from functools import cache

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, get_run_logger, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from pipeline.archive import archive_for_day, discover  # noqa: E402
from pipeline.config import Settings, load_settings  # noqa: E402
from pipeline.process import CallOutcome, CallProcessor, is_transient  # noqa: E402
from pipeline.schema import CallJob  # noqa: E402
from pipeline.summary import RunSummary, summarise  # noqa: E402


@cache
def _processor(settings_json: str) -> CallProcessor:
    """One processor (ASR model, rubrics, store engine) per worker process and settings."""
    return CallProcessor(Settings.model_validate_json(settings_json))


def _retry_if_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we only classify it
        return is_transient(exc)
    return False


@task(
    name="process-call",
    task_run_name="call-{job.call_id}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_jitter_factor=0.3,
    retry_condition_fn=_retry_if_transient,
    cache_policy=NO_CACHE,
)
def process_call(job: CallJob, settings_json: str, run_id: int | None) -> CallOutcome:
    return _processor(settings_json).process(job, run_id)


@task(name="discover-archive", cache_policy=NO_CACHE)
def discover_calls(archive: str) -> list[CallJob]:
    return discover(archive)


@flow(name="callqa-nightly", log_prints=True, validate_parameters=False)
def nightly(
    archive: str,
    database_url: str | None = None,
    rubric: str | None = None,
    settings: Settings | None = None,
    day: str | None = None,
) -> RunSummary:
    """Process every call of ``archive`` into the store and return the run's summary.

    ``archive`` may contain ``{date}``: it becomes ``day`` (YYYY-MM-DD), by default yesterday.
    """
    logger = get_run_logger()
    archive = archive_for_day(archive, day)
    settings = settings or load_settings(database_url=database_url, rubric=rubric)
    processor = _processor(settings.model_dump_json())
    run_id = processor.store.start_run(str(archive), settings.model_dump(mode="json"))

    jobs = discover_calls(str(archive))
    logger.info("archive %s: %d calls", archive, len(jobs))
    futures = process_call.map(
        jobs, settings_json=unmapped(settings.model_dump_json()), run_id=unmapped(run_id)
    )

    outcomes: list[CallOutcome] = []
    for job, future in zip(jobs, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:  # retries exhausted: the store stayed away for this call
            reason = f"{type(exc).__name__}: {exc}"
            logger.error("call %s not stored: %s", job.call_id, reason)
            outcomes.append(
                CallOutcome(call_id=job.call_id, source=job.source, status="failed", error=reason)
            )

    summary = summarise(
        outcomes, run_id=run_id, archive=str(archive), database_url=settings.database_url
    )
    processor.store.finish_run(run_id, summary.model_dump(mode="json"))
    logger.info(summary.one_line())
    return summary


def build_flow(
    *, max_concurrency: int = 2, dask_address: str | None = None, workers: int | None = None
):
    """The nightly flow bound to a task runner: local threads, or a Dask cluster."""
    if dask_address or workers:
        from prefect_dask import DaskTaskRunner  # optional: pip install callqa[dask]

        runner = (
            DaskTaskRunner(address=dask_address)
            if dask_address
            else DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
        )
    else:
        runner = ThreadPoolTaskRunner(max_workers=max_concurrency)
    return nightly.with_options(task_runner=runner)
