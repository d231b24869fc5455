"""Rerun speed: an archive of N already-scored calls goes through the nightly flow again.

Builds an archive of N text transcripts (copies of the zh samples under their own call ids),
stores each once as scored (analysing each distinct sample once, then saving its result under
every copy's id), then times what a rerun does per call: discovery, the skip check, the
failed-call check and the summary, through the same ``process_call`` the flow maps, on the
flow's thread pool. Prints the figures. The target (issue 14 part 4): 1,000 calls under 30 s.

    python benchmarks/rerun.py --calls 1000 [--flow]

``--flow`` also times ``callqa run`` over the archive in a fresh process, start to exit
(Prefect's temporary server and the flow included): what a rerun costs a user.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "samples" / "zh_transcripts"


def build(tmp: Path, n: int, settings) -> list:
    from pipeline.archive import discover
    from pipeline.process import CallProcessor

    archive = tmp / "archive"
    archive.mkdir()
    samples = sorted(ZH.glob("*.json"))
    for i in range(n):
        shutil.copy(samples[i % len(samples)], archive / f"call-{i:05d}.json")
    jobs = discover(archive)
    processor = CallProcessor(settings)
    analysed: dict[str, tuple] = {}
    started = time.perf_counter()
    for i, job in enumerate(jobs):
        sample = samples[i % len(samples)].name
        if sample not in analysed:
            analysed[sample] = processor.analyse(job)
        transcript, result = analysed[sample]
        processor.store.save_scored(
            job,
            transcript.model_copy(update={"call_id": job.call_id}),
            result.model_copy(update={"call_id": job.call_id}),
        )
    print(f"stored {n} scored calls in {time.perf_counter() - started:.1f} s")
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flow", action="store_true")
    args = parser.parse_args()

    from pipeline.archive import discover
    from pipeline.config import load_settings
    from pipeline.process import CallProcessor
    from pipeline.summary import summarise

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
        build(tmp_path, args.calls, settings)
        archive = tmp_path / "archive"

        started = time.perf_counter()
        jobs = discover(archive)
        found = time.perf_counter()
        processor = CallProcessor(settings)  # a fresh worker: nothing cached
        with ThreadPoolExecutor(args.threads) as pool:
            outcomes = list(pool.map(processor.process, jobs))
        summary = summarise(outcomes, run_id=None, archive=str(archive), database_url="")
        total = time.perf_counter() - started
        print(f"rerun over {len(jobs)} scored calls ({args.threads} threads): {total:.2f} s")
        print(f"  discovery {found - started:.2f} s; skip checks {total - (found - started):.2f} s")
        print(f"  {1000 * total / len(jobs):.1f} ms per call; {summary.one_line()}")
        assert summary.skipped == len(jobs), summary.one_line()

        if args.flow:
            # What a night's rerun costs a user: ``callqa run`` in a fresh process, from its
            # start (imports, Prefect's temporary server, the store's checks) to its exit.
            cmd = [sys.executable, "-m", "pipeline.cli", "run", str(archive),
                   "--db", settings.database_url, "--concurrency", str(args.threads),
                   "--json"]  # fmt: skip
            # Prefect's home persists between nights: its database is migrated once, on the
            # first run ever (10 calls: 12.6 s with a new home, 5.8 s after), not per rerun.
            env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_HOME": str(ROOT / "var" / "bench" / "prefect"),
                   "PYTHONPATH": str(ROOT)}  # fmt: skip
            started = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(f"callqa run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            run = json.loads(proc.stdout[proc.stdout.index("{") :])
            print(
                f"callqa run over {len(jobs)} scored calls (process start to exit, Prefect's "
                f"server start included): {wall:.1f} s; {run['skipped']} already scored, "
                f"{run['scored']} scored, {run['failed']} failed"
            )
            assert run["skipped"] == len(jobs), run


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
