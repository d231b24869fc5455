"""The nightly batch: every call of an archive through the pipeline into the inspection store.

Wiring only: discovery, per-call processing, storage and the summary live in ``pipeline/``.
Calls run concurrently on the flow's task runner (threads on one machine by default, a Dask
cluster when one is given); transient store errors are retried with backoff; a bad file is
recorded as failed with its reason and the batch goes on. Killing the flow at any moment and
running it again leaves every good call scored exactly once (one transaction per call, and
calls already scored with the same configuration fingerprint are skipped).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from pipeline.config import enforce_offline  # noqa: E402

enforce_offline()  # the deployed flow's and its Dask workers' entry: before any model loads

from prefect import flow, get_run_logger, task, unmapped  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from pipeline.archive import ArchiveError, archive_for_day, discover  # noqa: E402
from pipeline.config import Settings, load_settings  # noqa: E402
from pipeline.process import (  # noqa: E402
    CallOutcome,
    CallProcessor,
    StoreDown,
    allow_new_calls,
    is_transient,
    longest_first,
    processor_for,
    stop_new_calls,
)
from pipeline.refusals import record_refusals  # noqa: E402
from pipeline.schema import CallJob  # noqa: E402
from pipeline.store import StoreUnwritable  # noqa: E402
from pipeline.summary import RunSummary, summarise  # noqa: E402

# Dask worker resource one call holds while it runs. A worker started with
# ``--resources asr=K`` runs at most K calls at once, whatever its thread count; on a
# cluster whose workers declare no such resource, ``--nthreads`` is the limit.
ASR_RESOURCE = "asr"
_NUMERIC_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _processor(settings_json: str) -> CallProcessor:
    """One processor (ASR model, rubrics, store engine) per worker process and settings."""
    return processor_for(settings_json)


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
def discover_calls(archive: str, rubric_roots: list[str] | None = None) -> list[CallJob]:
    return discover(archive, rubric_roots=rubric_roots)


# The flow function travels to Dask workers by value (cloudpickle) inside Prefect's run
# context, with the globals it names: keep process-wide state such as the stop event behind
# functions of importable modules, never named here directly.
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
    allow_new_calls()
    run_id = processor.store.start_run(str(archive), settings.model_dump(mode="json"))
    alive = processor.store.keep_alive(run_id)

    stopped: str | None = None
    try:
        jobs = discover_calls(str(archive), settings.rubric_roots)
    except ArchiveError as exc:  # unreadable since the preflight: a stopped run, exit 1
        jobs, stopped = [], f"the archive cannot be read: {exc}"
        logger.error(stopped)
    logger.info("archive %s: %d calls", archive, len(jobs))
    recorded, stopped = record_refusals(processor, jobs, run_id) if jobs else ({}, stopped)
    if stopped:
        stop_new_calls()
    todo = [] if stopped else [i for i in range(len(jobs)) if i not in recorded]
    # started longest first; reported in discovery order
    order = [todo[k] for k in longest_first([jobs[i] for i in todo])]
    with _call_limit():
        started = process_call.map(
            [jobs[i] for i in order],
            settings_json=unmapped(settings.model_dump_json()),
            run_id=unmapped(run_id),
        )
    futures = dict(zip(order, started, strict=True))

    outcomes: list[CallOutcome] = []
    for i, job in enumerate(jobs):
        if i in recorded or i not in futures:
            outcomes.append(
                recorded.get(i)
                or CallOutcome(call_id=job.call_id, source=job.source, status="stopped")
            )
            continue
        future = futures[i]
        try:
            outcomes.append(future.result())
        except (StoreDown, StoreUnwritable) as exc:  # no call is started after this one
            stop_new_calls()
            stopped = stopped or f"the store refused a commit: {exc}"
            logger.error("call %s not stored, stopping the run: %s", job.call_id, exc)
            outcomes.append(
                CallOutcome(
                    call_id=job.call_id, source=job.source, status="stopped", error=str(exc)
                )
            )
        except Exception as exc:  # retries exhausted: the store stayed away for this call
            # Not the call's own failure and not stored: the run did not do its job (exit 1).
            reason = f"not stored: {type(exc).__name__}: {exc}"
            logger.error("call %s not stored: %s", job.call_id, reason)
            outcomes.append(
                CallOutcome(call_id=job.call_id, source=job.source, status="stopped", error=reason)
            )

    summary = summarise(
        outcomes,
        run_id=run_id,
        archive=str(archive),
        database_url=settings.database_url,
        stopped=stopped,
    )
    try:
        processor.store.finish_run(
            run_id, summary.model_dump(mode="json"), "stopped" if stopped else "finished"
        )
    except Exception as exc:  # noqa: BLE001 - the summary is still printed; next start closes it
        logger.error("run %s not closed in the store: %s", run_id, exc)
    alive.set()
    logger.info(summary.one_line())
    return summary


def _call_limit() -> AbstractContextManager:
    """Calls submitted inside hold one ``asr`` resource each, where Dask workers declare it."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    if type(runner).__name__ != "DaskTaskRunner":
        return nullcontext()
    workers = runner.client.scheduler_info(n_workers=-1).get("workers", {})
    if not any(ASR_RESOURCE in (w.get("resources") or {}) for w in workers.values()):
        return nullcontext()
    import dask

    return dask.annotate(resources={ASR_RESOURCE: 1})


def local_cluster_kwargs(workers: int, cores: int | None = None) -> dict:
    """A LocalCluster of ``workers`` processes that share this machine's cores for ASR.

    One call at a time per worker (one thread, one ``asr`` slot); CTranslate2 in each worker
    uses that worker's share of the cores (``CALLQA_CORES``), so workers don't oversubscribe.
    """
    from pipeline.transcribe.model import CORES_ENV, available_cores

    share = max(1, (cores or available_cores()) // workers)
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "resources": {ASR_RESOURCE: 1},
        # Dask pins OMP/BLAS threads to 1 in workers; the audio front end's float sums then
        # differ from this process's and so, rarely, do transcripts. Same threads as here.
        "env": {
            CORES_ENV: str(share),
            **{var: os.environ.get(var, str(os.cpu_count() or 1)) for var in _NUMERIC_THREADS},
        },
        "dashboard_address": None,  # no fixed port: several runs may share a host
    }


def build_flow(
    *, max_concurrency: int = 2, dask_address: str | None = None, workers: int | None = None
):
    """The nightly flow bound to a task runner: local threads, or a Dask cluster.

    ``dask_address`` (``tcp://HOST:PORT``): an existing Dask scheduler; ``workers``: a local
    Dask cluster of that many worker processes; neither: ``max_concurrency`` threads here.
    Each worker process loads the models once (:func:`_processor`) and keeps them.
    """
    if dask_address and workers:
        raise ValueError("give either a Dask scheduler address or a number of local workers")
    if dask_address or workers:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError(
                "running on Dask needs prefect-dask: pip install 'callqa[dask]'"
            ) from None

        runner = (
            DaskTaskRunner(address=dask_address)
            if dask_address
            else DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))
        )
    else:
        runner = ThreadPoolTaskRunner(max_workers=max_concurrency)
    return nightly.with_options(task_runner=runner)


# What flows/prefect.yaml deploys: on the Dask scheduler named by $CALLQA_DASK_ADDRESS
# (tcp://HOST:PORT) when set, else on QA_MAX_CONCURRENCY threads of the Prefect worker.
nightly_deployed = build_flow(
    max_concurrency=load_settings().max_concurrency,
    dask_address=os.environ.get("CALLQA_DASK_ADDRESS") or None,
)
