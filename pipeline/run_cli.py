"""``callqa run ARCHIVE``: the nightly batch flow over an archive."""

from __future__ import annotations

import logging
import os
import threading

import click

from pipeline.cli import CallqaError


@click.command("run")
@click.argument("archive", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--db", "database_url", envvar="QA_DATABASE_URL", help="Store URL (SQLite or PostgreSQL)."
)
@click.option(
    "--rubric", help="Rubric id or YAML path for every call (default: by the routing table)."
)
@click.option("--model", "asr_model", help="faster-whisper model name or directory.")
@click.option("--language", type=click.Choice(["zh", "en", "auto"]), help="Spoken language.")
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Calls processed at once on this machine."
)
@click.option(
    "--dask-address", help="Run the per-call work on this Dask scheduler (tcp://HOST:PORT)."
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Start a local Dask cluster with N workers."
)
@click.option(
    "--retry-failed",
    is_flag=True,
    default=None,
    help="Try failed calls again even when neither their file nor the configuration changed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def run(
    archive,
    database_url,
    rubric,
    asr_model,
    language,
    concurrency,
    dask_address,
    workers,
    retry_failed,
    as_json,
):
    """Transcribe, check and score every call of ARCHIVE into the inspection store.

    Exit status 2, with one line, when the configuration or store is unusable (checked
    before anything starts); 1 when the run stopped early (its summary says why)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    prefect_api = start_prefect_api()

    from pipeline.config import load_settings
    from pipeline.preflight import PreflightFailed, preflight

    if dask_address and workers:
        raise CallqaError("give either --dask-address or --workers, not both")
    try:
        settings = load_settings(
            database_url=database_url,
            rubric=rubric,
            asr_model=asr_model,
            language=language,
            max_concurrency=concurrency,
            retry_failed=retry_failed,
        )
        if not (dask_address or workers):  # models load while the checks and Prefect start
            from pipeline.process import warm_up

            warm_up(settings)
        # fail fast, before Prefect starts and before any audio is decoded
        preflight(archive, settings)
    except (PreflightFailed, ValueError) as exc:
        raise PreflightError(" ".join(str(exc).split())) from None

    from flows.nightly import build_flow

    try:
        flow = build_flow(
            max_concurrency=settings.max_concurrency, dask_address=dask_address, workers=workers
        )
    except RuntimeError as exc:  # prefect-dask missing
        raise CallqaError(str(exc)) from None
    prefect_api.join()
    summary = flow(archive=archive, settings=settings)
    click.echo(summary.model_dump_json(indent=2) if as_json else summary.render())
    if summary.stopped:
        raise click.exceptions.Exit(1)


def start_prefect_api() -> threading.Thread:
    """Start Prefect's temporary API server now, in the background, when no
    ``PREFECT_API_URL`` is set: its seconds of start-up (a Python process importing the
    server and checking its database) then overlap the model loading and the checks instead
    of preceding the first call. The flow finds the server running (one per process and
    port); if starting it failed here, the flow tries again and reports why."""

    def start() -> None:
        try:
            from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

            if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
                return
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001 - the flow starts it again and reports the error
            logging.getLogger(__name__).debug("early Prefect server start failed", exc_info=True)

    thread = threading.Thread(target=start, name="callqa-prefect-api", daemon=True)
    thread.start()
    return thread


class PreflightError(CallqaError):
    """Unusable configuration or store, found before the run starts: exit status 2."""

    exit_code = 2
