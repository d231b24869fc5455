"""Re-score throughput: calls per second of ``callqa rescore`` without complaint risk.

Fills a fresh store with N calls (the Chinese sample transcripts under new call ids, scored
as ``callqa run`` would store them), writes a new version of each form with one item's
points changed, and times the re-score of every call from its stored transcript. Prints
the set-up time, the re-score time and calls/s (target: ≥ 50 calls/s on 2 cores).

    python benchmarks/rescore.py [--calls 500] [--db URL] [--risk]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_settings  # noqa: E402
from pipeline.redact import redact  # noqa: E402
from pipeline.rescore import Rescorer  # noqa: E402
from pipeline.routing import load_routing  # noqa: E402
from pipeline.schema import CallJob, Transcript  # noqa: E402
from pipeline.score import score_transcript  # noqa: E402
from pipeline.scoring_config import build_scoring_config, redaction_config  # noqa: E402
from pipeline.scripts_check import load_rubric  # noqa: E402
from pipeline.store import open_store  # noqa: E402

SAMPLES = sorted((ROOT / "samples" / "zh_transcripts").glob("*.json"))


def bump(rubric_id: str, out: Path) -> Path:
    """A copy of a shipped form, version + 1 and its first item worth 5 more points."""
    data = yaml.safe_load((ROOT / "rubrics" / f"{rubric_id}.yaml").read_text("utf-8"))
    data["version"] = int(data["version"]) + 1
    data["sections"][0]["items"][0]["points"] += 5
    path = out / f"{rubric_id}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--risk", action="store_true", help="assess complaint risk too")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="callqa-rescore-"))
    url = args.db or f"sqlite:///{work / 'bench.db'}"
    store = open_store(url)
    routing = load_routing()
    redaction = redaction_config()

    started = time.perf_counter()
    sources = [Transcript.load(p) for p in SAMPLES]
    for n in range(args.calls):
        base = sources[n % len(sources)]
        call_id = f"{base.call_id}-{n:05d}"
        job = CallJob(call_id=call_id, source=str(SAMPLES[n % len(SAMPLES)]), team="T1")
        route = routing.route(job, base.language)
        rubric = load_rubric(route.rubric)
        transcript = redact(base.model_copy(update={"call_id": call_id}))
        config = build_scoring_config(rubric, redaction=redaction)
        result = score_transcript(
            transcript, rubric, risk_fn=lambda t: None, config=config, route=route
        )
        store.save_scored(job, transcript, result)
    setup = time.perf_counter() - started

    # the forms change: version + 1, one item's points; re-score each form's calls
    new_forms = [bump(r, work) for r in ("zh_bank_hotline", "zh_ecommerce")]
    total_seconds, total_calls, load_seconds = 0.0, 0, 0.0
    cpu_started = time.process_time()
    children_started = resource.getrusage(resource.RUSAGE_CHILDREN)
    for form in new_forms:
        t0 = time.perf_counter()
        rescorer = Rescorer(store, rubric=str(form), risk=args.risk, settings=load_settings())
        load_seconds += time.perf_counter() - t0
        summary = rescorer.rescore(workers=args.workers)
        total_seconds += summary.seconds
        total_calls += summary.rescored
        assert summary.failed == 0, summary.errors
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (children.ru_utime + children.ru_stime) - (
        children_started.ru_utime + children_started.ru_stime
    )
    cpu = time.process_time() - cpu_started - load_seconds + child_cpu
    rows = store.list_calls()
    assert all(r["result_versions"] == 2 for r in rows), "every call has a new version"
    print(
        f"store: {url.split('://')[0]}  calls: {args.calls}  risk: {args.risk}  "
        f"workers: {args.workers}  cores: {len(os.sched_getaffinity(0))}"
    )
    print(f"set-up (score + store {args.calls} calls): {setup:.1f} s")
    print(f"re-score set-up (load forms, risk): {load_seconds:.2f} s")
    print(f"re-scored: {total_calls} calls in {total_seconds:.2f} s")
    print(f"throughput: {total_calls / total_seconds:.1f} calls/s (wall clock)")
    cores = min(args.workers, len(os.sched_getaffinity(0)))
    print(
        f"CPU time (all processes): {cpu:.2f} s = {total_calls / cpu:.1f} calls per CPU-second; "
        f"{cores} busy core(s) would give ~{cores * total_calls / cpu:.0f} calls/s"
    )
    print(f"load average now {os.getloadavg()[0]:.1f} (on a shared machine wall clock lags)")


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
