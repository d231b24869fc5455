"""Production scale for real: a two-worker Dask cluster, PostgreSQL, and the faults of a night.

A small archive (3 good sample calls + 3 broken files) is processed once by the embedded
run into SQLite; then by ``callqa run --workers 2`` (a real local Dask cluster) into a fresh
PostgreSQL database, which must store exactly the same statuses, totals and reasons, also
when a Dask worker process is SIGKILLed mid-call. With the database refusing connections
for a while mid-run the calls are retried with backoff and none is half-written; a run
killed with its whole process group (flow, scheduler, workers) resumes when run again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import PG_ADMIN_DSN, archive_with_broken_files

CALLQA = [sys.executable, "-m", "pipeline.cli"]
GOOD = 3
TIMEOUT = 900


@pytest.mark.parametrize(
    ("cores", "cpu_threads", "plan"),
    [("2", 0, (1, 2)), ("1", 0, (1, 1)), ("16", 0, (1, 16)), ("16", 4, (4, 4)), ("2", 8, (8, 1))],
)
def test_cpu_plan_gives_every_core_a_stream(monkeypatch, cores, cpu_threads, plan):
    """Threads per decode are a decode setting (never clipped to the cores); streams fill the
    cores."""
    from pipeline.config import Settings
    from pipeline.transcribe.model import CORES_ENV, cpu_plan

    monkeypatch.setenv(CORES_ENV, cores)
    assert cpu_plan(Settings(cpu_threads=cpu_threads)) == plan


def test_bad_core_count_is_rejected(monkeypatch):
    from pipeline.config import Settings
    from pipeline.transcribe.model import CORES_ENV, ModelError, cpu_plan

    monkeypatch.setenv(CORES_ENV, "two")
    with pytest.raises(ModelError, match="CALLQA_CORES"):
        cpu_plan(Settings())


@pytest.mark.parametrize(("cores", "workers", "share"), [(2, 2, "1"), (16, 4, "4"), (2, 3, "1")])
def test_local_cluster_shares_the_cores(cores, workers, share):
    from flows.nightly import ASR_RESOURCE, local_cluster_kwargs

    kwargs = local_cluster_kwargs(workers, cores=cores)
    assert kwargs["n_workers"] == workers and kwargs["threads_per_worker"] == 1
    assert kwargs["resources"] == {ASR_RESOURCE: 1}
    assert kwargs["env"]["CALLQA_CORES"] == share
    # Same numeric threads as the embedded run, or transcripts may differ in a few words.
    assert kwargs["env"]["OMP_NUM_THREADS"] == os.environ.get(
        "OMP_NUM_THREADS", str(os.cpu_count())
    )


def test_pinned_mode_refuses_a_ctranslate2_loaded_without_pins(monkeypatch):
    from pipeline.cpu_isa import PINNED_CPU_ENV, CpuIsaError, apply_cpu_isa

    monkeypatch.setitem(sys.modules, "ctranslate2", object())
    for name in PINNED_CPU_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CpuIsaError, match="QA_CPU_ISA=pinned"):
        apply_cpu_isa("pinned")
    apply_cpu_isa("native")  # nothing to pin


def test_address_and_local_workers_are_exclusive():
    from flows.nightly import build_flow

    with pytest.raises(ValueError, match="either"):
        build_flow(dask_address="tcp://127.0.0.1:8786", workers=2)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    return archive_with_broken_files(tmp_path_factory.mktemp("scale"), n_good=GOOD)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect")),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def embedded(archive, tmp_path_factory, env) -> dict[str, tuple]:
    """What the embedded run (threads, SQLite) stores for the archive."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'callqa.db'}"
    run = subprocess.run(
        [*CALLQA, "run", str(archive[0]), "--db", db_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return _stored(db_url)


def _stored(db_url: str) -> dict[str, tuple]:
    """call_id → (status, total, max, auto_fail, risk_level, error) as the store holds it."""
    from pipeline.store import open_store

    store = open_store(db_url)
    rows = {
        r["call_id"]: (
            r["status"],
            r["total"],
            r["max"],
            r["auto_fail"],
            r["risk_level"],
            r["error"],
        )
        for r in store.list_calls()
    }
    for call_id, row in rows.items():  # one result version per scored call, none otherwise
        assert len(store.result_history(call_id)) == (row[0] == "scored"), call_id
    return rows


def _check_matches(embedded: dict, db_url: str, archive) -> None:
    _, good, broken = archive
    got = _stored(db_url)
    assert {c for c, r in embedded.items() if r[0] == "scored"} == set(good)
    assert {c for c, r in embedded.items() if r[0] == "failed"} == set(broken)
    assert got == embedded


def _dask_workers(pid: int) -> list:
    """The Dask worker processes (spawned by the nannies) below process ``pid``."""
    import psutil

    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.mark.slow
@pytest.mark.postgres
def test_two_worker_dask_into_postgres_matches_embedded_sqlite(
    archive, postgres_url, env, embedded
):
    run = subprocess.run(
        [*CALLQA, "run", str(archive[0]), "--db", postgres_url, "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    _check_matches(embedded, postgres_url, archive)
    assert f"{GOOD} scored" in run.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_killed_dask_worker_calls_are_retried_elsewhere(
    archive, postgres_url, env, embedded, tmp_path
):
    from pipeline.store import open_store

    cmd = [*CALLQA, "run", str(archive[0]), "--db", postgres_url, "--workers", "2"]
    # Output to a file, not a pipe: a helper process that outlives the run (Prefect's
    # temporary server) would hold a pipe open and make reading it block.
    log = tmp_path / "run.log"
    with log.open("wb") as out_file:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    store = open_store(postgres_url)
    killed = None
    deadline = time.monotonic() + TIMEOUT
    try:
        # Kill a worker while it transcribes: as soon as the first good call is stored.
        while time.monotonic() < deadline and proc.poll() is None:
            if any(r["status"] == "scored" for r in store.list_calls()):
                busy = max(_dask_workers(proc.pid), key=lambda p: p.cpu_percent(0.3))
                busy.send_signal(signal.SIGKILL)
                killed = busy.pid
                break
            time.sleep(0.2)
        scored_at_kill = {r["call_id"] for r in store.list_calls() if r["status"] == "scored"}
        proc.wait(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the run's group is left
    out = log.read_bytes()
    assert killed is not None, "no worker was killed"
    assert len(scored_at_kill) < GOOD, "the kill should land while calls are in flight"
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    _check_matches(embedded, postgres_url, archive)


def _run_started(database: str) -> bool:
    """True once the flow has recorded its run (so the store is migrated and in use)."""
    import psycopg

    dsn = PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
        except psycopg.errors.UndefinedTable:
            return False


@pytest.mark.slow
@pytest.mark.postgres
def test_database_unreachable_mid_run_is_retried_with_backoff(archive, pg_admin, postgres_url, env):
    """Connections refused and live ones terminated for a few seconds: retries, no half-call."""
    database = postgres_url.rsplit("/", 1)[1]
    _, good, broken = archive
    proc = subprocess.Popen(
        [*CALLQA, "run", str(archive[0]), "--db", postgres_url],
        env={**env, "QA_MAX_CONCURRENCY": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _run_started(database):
                break
            time.sleep(0.2)
        pg_admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        outage_end = time.monotonic() + 6
        while time.monotonic() < outage_end:
            pg_admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            time.sleep(0.2)
        pg_admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        pg_admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        if proc.poll() is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    # before a call's analysis the task is retried; after it, only the save (no ASR redone)
    assert "Retry 1/3" in text or "retrying the save" in text, "the outage should cause a retry"
    rows = _stored(postgres_url)  # also: one result per scored call, nothing half-written
    assert {c for c, r in rows.items() if r[0] == "scored"} == set(good)
    assert {c for c, r in rows.items() if r[0] == "failed"} == set(broken)


@pytest.mark.slow
@pytest.mark.postgres
def test_whole_dask_run_killed_then_rerun_resumes(archive, postgres_url, env, embedded):
    """SIGKILL to the flow, its scheduler and its workers at once; the rerun completes."""
    from pipeline.store import open_store

    cmd = [*CALLQA, "run", str(archive[0]), "--db", postgres_url, "--workers", "2"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    store = open_store(postgres_url)
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(r["status"] == "scored" for r in store.list_calls()):
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    scored_before = {r["call_id"] for r in store.list_calls() if r["status"] == "scored"}
    assert 0 < len(scored_before) < GOOD, "the kill should land mid-run"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "already scored" in rerun.stdout
    _check_matches(embedded, postgres_url, archive)


# --------------------------------------------------------------------------- determinism

LAYOUTS = {
    "embedded x1": ["--concurrency", "1"],
    "embedded x2": ["--concurrency", "2"],
    "dask 2 workers": ["--workers", "2"],
}


# Both languages, both models, every container and channel layout of the samples (a stereo
# WAV, Ogg, M4A with unlabelled channels, MP3 with the agent on the right, a form chosen by
# routing, a redacted number, dead air): layout bugs show on these as on all 21, at a third of
# the time (the whole archive three times took 6 of CI's 37 minutes on an Intel Xeon).
LAYOUT_CALLS = [
    "c01-compliant",
    "c04-angry-customer",
    "c09-unlabelled-channels",
    "z02-bank-other-words",
    "z05-bank-account-first",
    "z09-ecom-personal-digits",
    "z10-ecom-dead-air",
]


@pytest.mark.slow
def test_sample_archive_transcripts_are_byte_identical_across_layouts(tmp_path, env):
    """Sample calls of both languages under three layouts: the same Transcript JSON, byte for
    byte, and the same verdicts and totals (only time fields may differ, and Transcripts have
    none)."""
    from pipeline.store import open_store
    from tests.builders import sample_subset

    archive = tmp_path / "archive"
    sample_subset(archive, LAYOUT_CALLS)
    stored: dict[str, dict[str, tuple[str, str]]] = {}
    for name, args in LAYOUTS.items():
        db_url = f"sqlite:///{tmp_path / (name.replace(' ', '-') + '.db')}"
        run = subprocess.run(
            [*CALLQA, "run", str(archive), "--db", db_url, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=3 * TIMEOUT,  # a loaded 2-core machine: calls on 2 workers
        )
        assert run.returncode == 0, run.stderr[-3000:]
        store = open_store(db_url)
        calls = {}
        for row in store.list_calls():
            if row["status"] != "scored":
                continue
            result = store.get_result(row["call_id"])
            verdicts = json.dumps(
                [(i.id, i.passed, i.points) for i in result.items] + [result.total, result.max]
            )
            calls[row["call_id"]] = (store.get_transcript(row["call_id"]).to_json(), verdicts)
        stored[name] = calls
    reference_name, reference = next(iter(stored.items()))
    assert sorted(reference) == LAYOUT_CALLS  # every call scored, in every layout
    for name, calls in stored.items():
        assert calls.keys() == reference.keys(), name
        for call_id, (transcript, verdicts) in calls.items():
            assert transcript == reference[call_id][0], f"{call_id}: {name} vs {reference_name}"
            assert verdicts == reference[call_id][1], f"{call_id}: {name} vs {reference_name}"


def test_pinned_mode_pins_numpy_in_this_process_and_at_process_start():
    """The suite runs pinned (conftest): numpy dispatches no AVX-512 kernels here, nor in a
    process that pins at start (as ``callqa`` does), whatever CPU this is; a numpy loaded
    before the pins is refused on a CPU where it took AVX-512 kernels."""
    from pipeline.cpu_isa import PINNED_CPU_ENV, numpy_is_pinned

    assert os.environ.get("QA_CPU_ISA") == "pinned"
    assert numpy_is_pinned()
    env = {k: v for k, v in os.environ.items() if k not in PINNED_CPU_ENV}
    at_start = (
        "from pipeline.cpu_isa import apply_cpu_isa_from_env, numpy_is_pinned\n"
        "apply_cpu_isa_from_env()\nimport numpy\nprint(numpy_is_pinned())"
    )
    out = subprocess.run([sys.executable, "-c", at_start], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    late = (
        "import numpy\nfrom pipeline.cpu_isa import apply_cpu_isa, numpy_is_pinned\n"
        "wide, err = not numpy_is_pinned(), None\n"
        "try:\n    apply_cpu_isa('pinned')\nexcept ValueError as exc:\n    err = str(exc)\n"
        "print(wide, err)"
    )
    out = subprocess.run([sys.executable, "-c", late], env=env, capture_output=True, text=True)
    wide, _, err = out.stdout.strip().partition(" ")
    if wide == "True":  # an AVX-512 CPU: numpy chose its kernels before the pins
        assert "numpy" in err and "QA_CPU_ISA=pinned" in err, out.stderr
    else:
        assert (wide, err) == ("False", "None"), out.stderr


# --------------------------------------------------------------------------- embedded run: call order

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "archive"


def test_calls_start_longest_first_and_broken_ones_last():
    from pipeline.archive import discover
    from pipeline.process import _probe, longest_first

    jobs = discover(SAMPLES)
    order = longest_first(jobs)
    assert sorted(order) == list(range(len(jobs)))
    seconds = [_probe(Path(jobs[i].source))[1] or 0.0 for i in order]
    assert seconds == sorted(seconds, reverse=True)
    assert jobs[order[-1]].call_id == "c11-corrupt-upload"  # no readable header: weight 0
