"""``callqa run ARCHIVE``: the nightly batch flow over an archive."""

from __future__ import annotations

import logging
import os

import click

from pipeline.cli import CallqaError
from pipeline.prefect_api import PrefectApiError, serving, start_early


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

    Exit status 0 when every call was scored, or failed for a reason of its own (stored
    with it); 2, with one line, when the configuration or store is unusable (checked before
    anything starts); 1 when the run stopped early or left calls unprocessed (its summary
    says why)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    # Prefect's API server starts first, in its own process: its start-up then overlaps the
    # model loading and the checks instead of preceding the first call.
    prefect_api = start_early()
    if prefect_api is not None:  # stopped however the command ends
        click.get_current_context().call_on_close(prefect_api.stop)

    from pipeline.config import load_settings
    from pipeline.preflight import PreflightFailed, preflight

    if dask_address and workers:
        raise CallqaError("give either --dask-address or --workers, not both")
    loading = None
    try:
        settings = load_settings(
            database_url=database_url,
            rubric=rubric,
            asr_model=asr_model,
            language=language,
            max_concurrency=concurrency,
            retry_failed=retry_failed,
        )
        if not (dask_address or workers):  # models load while the checks run and Prefect starts
            from pipeline.process import warm_up

            loading = warm_up(settings)
        # fail fast, before Prefect starts and before any audio is decoded
        preflight(archive, settings)
    except (PreflightFailed, ValueError) as exc:
        if loading is not None:
            # an interpreter that exits while CTranslate2 builds the model aborts the process
            # ("terminate called without an active exception") instead of exiting with 2
            loading.join(timeout=120)
        raise PreflightError(" ".join(str(exc).split())) from None

    from flows.nightly import build_flow

    try:
        flow = build_flow(
            max_concurrency=settings.max_concurrency, dask_address=dask_address, workers=workers
        )
    except RuntimeError as exc:  # prefect-dask missing
        raise CallqaError(str(exc)) from None
    try:
        with serving(prefect_api):
            summary = flow(archive=archive, settings=settings)
            click.echo(summary.model_dump_json(indent=2) if as_json else summary.render())
    except PrefectApiError as exc:
        raise CallqaError(str(exc)) from None
    if summary.exit_code:
        raise click.exceptions.Exit(summary.exit_code)


class PreflightError(CallqaError):
    """Unusable configuration or store, found before the run starts: exit status 2."""

    exit_code = 2
