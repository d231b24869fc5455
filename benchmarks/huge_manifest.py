"""A night's inputs at their largest: discovery time and peak memory on a manifest of many
rows, and how long ``callqa run`` takes to obey SIGTERM while it reads one.

    python -m benchmarks.huge_manifest                  # 100,000 rows: discovery only
    python -m benchmarks.huge_manifest --rows 1000000   # the issue's 74 MB manifest
    python -m benchmarks.huge_manifest --sigterm 5,20   # also: callqa run, SIGTERM after 5 s, 20 s

Every row names a file that does not exist except one in ``--real`` (default 1 in 1000), the
way a CDR export lists calls whose recordings were not copied; each such row is a refused
job. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "zh_transcripts" / "bank_001_compliant.json"


def build(folder: Path, rows: int, real_every: int) -> Path:
    archive = folder / "archive"
    archive.mkdir(parents=True)
    with (archive / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "call_id", "agent_id", "agent_name", "team", "started_at"])
        for i in range(rows):
            name = f"rec/{i // 1000:04d}/call-{i:07d}.json"
            if i % real_every == 0:
                (archive / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(SAMPLE, archive / name)
            writer.writerow(
                [name, f"call-{i:07d}", f"A{i % 500:03d}", f"Agent {i % 500}", f"T{i % 20}",
                 "2026-11-27T10:00:00+08:00"]
            )  # fmt: skip
    return archive


def discovery(archive: Path) -> None:
    """Discover in a fresh process: seconds and peak resident memory."""
    code = (
        "import time, resource, sys\n"
        "from pipeline.archive import ArchiveError, discover\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    jobs = discover(sys.argv[1]); what = f'{len(jobs)} jobs, '\n"
        "    what += f'{sum(1 for j in jobs if j.manifest_error)} refused'\n"
        "except ArchiveError as exc:\n"
        "    what = f'refused: {exc}'\n"
        "s = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(f'discovery: {s:.1f} s, peak RSS {rss:.0f} MiB ({what[:160]})')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(archive)], check=True)


def refusals(archive: Path, folder: Path, limit: int) -> None:
    """The flow's recording of refused jobs (pipeline.refusals), in a fresh process against
    a fresh SQLite store: seconds per refused row."""
    code = (
        "import sys, time\n"
        "from pipeline.archive import discover\n"
        "from pipeline.config import load_settings\n"
        "from pipeline.process import CallProcessor\n"
        "from pipeline.refusals import record_refusals\n"
        "jobs = [j for j in discover(sys.argv[1]) if j.manifest_error][: int(sys.argv[3])]\n"
        "p = CallProcessor(load_settings(database_url=sys.argv[2]))\n"
        "run_id = p.store.start_run('bench', {})\n"
        "t = time.perf_counter()\n"
        "out, stopped = record_refusals(p, jobs, run_id)\n"
        "s = time.perf_counter() - t\n"
        "print(f'refusals: {len(out)} recorded in {s:.1f} s ({1000 * s / max(len(out), 1):.2f} "
        "ms each), stopped={stopped}')\n"
    )
    db = f"sqlite:///{folder / 'refusals.db'}"
    subprocess.run([sys.executable, "-c", code, str(archive), db, str(limit)], check=True)


def sigterm(archive: Path, after_s: float, folder: Path) -> None:
    """``callqa run`` over the archive, SIGTERM after ``after_s``: seconds until it exits."""
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect"), "QA_MAX_CONCURRENCY": "1"}
    db = f"sqlite:///{folder / f'qa-{after_s:g}.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(archive), "--db", db],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    time.sleep(after_s)
    if proc.poll() is not None:
        print(f"sigterm after {after_s:g} s: the run had already exited ({proc.returncode})")
        return
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        proc.wait(timeout=120)
        took = f"{time.monotonic() - sent:.1f} s, exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        took = "not within 120 s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    print(f"sigterm after {after_s:g} s: exited in {took}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=1000, help="one real file every N rows")
    parser.add_argument("--sigterm", default="", help="comma-separated seconds, e.g. 5,20")
    parser.add_argument(
        "--refusals", type=int, default=5000, help="refused rows to record (0: skip)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callqa-huge-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        archive = build(folder, args.rows, args.real)
        size = (archive / "manifest.csv").stat().st_size / 2**20
        print(f"manifest: {args.rows} rows, {size:.1f} MiB (built in "
              f"{time.perf_counter() - started:.1f} s)")  # fmt: skip
        discovery(archive)
        if args.refusals:
            refusals(archive, folder, args.refusals)
        for after in filter(None, args.sigterm.split(",")):
            sigterm(archive, float(after), folder)
    print(
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
