"""Throughput of the nightly flow against a bare faster-whisper loop, side by side.

Synthesises (once, cached under var/bench/) an archive of stereo 8 kHz calls with
samples/make_samples.py: every scripted sample call rendered again with other seeds until
there are at least 16 calls and 15 minutes of audio. Then, alternating A-B-B-A per repeat:

  pipeline  ``callqa run ARCHIVE --db <fresh sqlite> --json``: the whole nightly flow in a
            subprocess (Prefect, decode, ASR, roles, redaction, scoring, store), with its
            configured decode settings (batched; beam and chunk length per model: pipeline/transcribe/decode_models.yaml)
  bare      a faster-whisper loop in a subprocess over the same channels: ``decode_audio``
            (split_stereo) then ``WhisperModel.transcribe`` per channel, one after another,
            with faster-whisper's default threads and the pipeline's ASR options
            (tiny.en int8 CPU, language en, beam 5, VAD on, word timestamps,
            condition_on_previous_text off: ``pipeline.transcribe.decode_config.transcribe_options``)
  batched   the same loop through faster-whisper's ``BatchedInferencePipeline`` (batch 8),
            the stronger peer

Both are timed wall clock from process start to exit (imports and model loading included).
The pipeline runs on the allocator of its settings (``QA_MALLOC``: tcmalloc where installed,
pipeline/allocator.py), the bare loops on glibc's, as a faster-whisper user runs them;
``--bare-malloc tcmalloc`` preloads tcmalloc for them too.
Audio-seconds are call durations (a stereo call counts once). Peak RSS is polled (psutil)
for every process of each run: the flow's process, Prefect's API server, Dask workers.

    .venv/bin/python benchmarks/throughput.py [--repeats 2] [--workers N] [--min-minutes 15]
    .venv/bin/python benchmarks/throughput.py --long   # memory: 1 vs 60 min, 4 h refused

``--zh`` measures a Chinese archive instead: stereo 8 kHz A-law calls put together from the
real Mandarin recordings of ../shared/data/audio/zh (the parties alternate, one recording a
turn; cached under var/bench/throughput-zh-archive), the bare loop decoding with the
multilingual base model and language zh, the pipeline with its default settings (language
detected per call, Chinese text stage).

``--long`` renders a 1-minute and a 60-minute stereo 8 kHz call (sample calls looped) and a
4-hour one, and prints the peak RSS of ``callqa transcribe`` on each (and its message).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "var" / "bench"
ARCHIVE = BENCH_DIR / "throughput-archive"
ZH_ARCHIVE = BENCH_DIR / "throughput-zh-archive"
ZH_DATA = ROOT.parent / "shared" / "data" / "audio" / "zh"
PYTHON = sys.executable


# --------------------------------------------------------------------------- archive


def synthesise(out: Path, min_calls: int, min_seconds: float) -> tuple[int, float]:
    """Render sample-call variants (new seeds) into ``out`` until both minimums are met."""
    sys.path.insert(0, str(ROOT / "samples"))
    import make_samples as ms

    script = ms.load_calls()
    out.mkdir(parents=True, exist_ok=True)
    calls, seconds, variant = [], 0.0, 0
    while len(calls) < min_calls or seconds < min_seconds:
        variant += 1
        for call in script.calls:
            stem, suffix = call.file.rsplit(".", 1)
            copy = call.model_copy(
                update={
                    "call_id": f"{call.call_id}-v{variant}",
                    "file": f"{stem}-v{variant}.{suffix}",
                    "seed": call.seed + 1000 * variant,
                }
            )
            pcm = ms.render_call(copy, script)
            ms.encode(pcm, copy.format, out / copy.file)
            calls.append(copy)
            seconds += len(pcm) / ms.SAMPLE_RATE
            print(f"  synthesised {copy.file} ({len(pcm) / ms.SAMPLE_RATE:.1f} s)", flush=True)
    rows = ms.manifest_rows(script.model_copy(update={"calls": calls, "broken": []}))
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=ms.MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(calls), seconds


def zh_archive(out: Path, min_calls: int, min_seconds: float, data: Path = ZH_DATA) -> None:
    """Stereo 8 kHz A-law calls from the real Mandarin recordings: each call takes four of
    them in turn (left, right, left, right, 0.6 s apart), the next call starts one later."""
    import numpy as np
    from faster_whisper.audio import decode_audio

    clips = sorted(p for p in data.glob("*.wav") if not p.name.startswith("zhD"))
    if not clips:
        raise SystemExit(f"no Mandarin recordings in {data}")
    audio = [decode_audio(str(p), sampling_rate=8000) for p in clips]
    gap = np.zeros(int(0.6 * 8000), dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    rows, seconds, n = [], 0.0, 0
    while len(rows) < min_calls or seconds < min_seconds:
        left, right = [], []
        for turn in range(4):
            speech = audio[(n + turn) % len(audio)]
            silent = np.zeros_like(speech)
            left += [speech if turn % 2 == 0 else silent, gap]
            right += [silent if turn % 2 == 0 else speech, gap]
        stereo = np.stack([np.concatenate(left), np.concatenate(right)])
        raw = out / f"zh{n:03d}.f32"
        stereo.T.astype("<f4").tofile(raw)
        name = f"zh{n:03d}.wav"
        subprocess.run(
            ["sox", "-t", "f32", "-r", "8000", "-c", "2", str(raw), "-e", "a-law", "-b", "8",
             str(out / name)],
            check=True,
        )  # fmt: skip
        raw.unlink()
        rows.append({"file": name, "call_id": f"zh{n:03d}", "agent_channel": "0"})
        seconds += stereo.shape[1] / 8000
        n += 1
    with (out / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "call_id", "agent_channel"])
        writer.writeheader()
        writer.writerows(rows)


def archive_files(archive: Path) -> list[Path]:
    with (archive / "manifest.csv").open(encoding="utf-8") as fh:
        return [archive / row["file"] for row in csv.DictReader(fh)]


def audio_seconds(files: list[Path]) -> float:
    import av

    total = 0.0
    for f in files:
        with av.open(str(f)) as c:
            total += c.duration / av.time_base
    return total


# --------------------------------------------------------------------------- runs


def bare_loop(archive: Path, batched: bool = False, language: str = "en") -> None:
    """The baseline, run in its own process: print its own timings as JSON. It decodes with
    the model the pipeline uses for ``language`` (tiny.en for English, base for Chinese)."""
    started = time.perf_counter()
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    from pipeline.config import load_settings
    from pipeline.transcribe.decode_config import transcribe_options
    from pipeline.transcribe.language import model_for
    from pipeline.transcribe.model import resolve_model

    settings = load_settings(language=language)
    model = WhisperModel(
        resolve_model(model_for(settings, language)),
        device="cpu",
        compute_type=settings.compute_type,
    )
    loaded = time.perf_counter()
    options = transcribe_options(settings, language)
    if batched:
        options["batch_size"] = 8
    runner = BatchedInferencePipeline(model) if batched else model
    words = 0
    for path in archive_files(archive):
        for channel in decode_audio(str(path), sampling_rate=16000, split_stereo=True):
            segments, _ = runner.transcribe(channel, **options)
            words += sum(len(s.words or []) for s in segments)
    done = time.perf_counter()
    print(json.dumps({"load_s": loaded - started, "asr_s": done - loaded, "words": words}))


class PeakRss:
    """Polls the RSS of a process and all its descendants; keeps each one's peak."""

    def __init__(self, pid: int, every: float = 0.1):
        import psutil

        self._root = psutil.Process(pid)
        self._every = every
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    label = self.peaks.get(p.pid, (None, 0))[0] or _label(p.cmdline())
                except psutil.Error:
                    continue
                if rss > self.peaks.get(p.pid, ("", 0))[1]:
                    self.peaks[p.pid] = (label, rss)
            self._stop.wait(self._every)

    def stop(self) -> dict[str, float]:
        """Peak MiB by role (the largest of its processes): flow, prefect-server, worker."""
        self._stop.set()
        self._thread.join()
        by_role: dict[str, float] = {}
        for label, rss in self.peaks.values():
            if label != "other":
                by_role[label] = max(by_role.get(label, 0.0), rss / 2**20)
        return by_role


def _label(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "uvicorn" in text or "prefect" in text and "server" in text:
        return "prefect-server"
    if "multiprocessing" in text or "spawn_main" in text or "forkserver" in text:
        return "dask-worker"
    if "pipeline.cli" in text or "callqa" in text or "--bare" in text:
        return "main"
    return "other"


CPU_SECONDS: list[float] = []  # CPU seconds (user + system) of each timed run, in order


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = PeakRss(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.append(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    )  # the process and every child it waited for (Prefect's server, Dask workers)
    peaks = rss.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peaks, out


def run_pipeline(archive: Path, workers: int | None, env: dict[str, str], n: int):
    db = BENCH_DIR / f"throughput-{n}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    cmd = [PYTHON, "-m", "pipeline.cli", "run", str(archive), "--db", f"sqlite:///{db}", "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    wall, peaks, out = timed(cmd, env)
    summary = json.loads(out[out.index("{") :])
    if summary["failed"] or summary["scored"] != len(archive_files(archive)):
        raise SystemExit(f"pipeline run did not score every call: {summary}")
    return wall, peaks


def bare_env(env: dict[str, str], malloc: str) -> dict[str, str]:
    """The bare loop's environment: glibc's allocator (``system``) or ``tcmalloc`` preloaded."""
    from pipeline.allocator import library

    env = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    if malloc != "system":
        lib = library(malloc)
        if lib is None:
            raise SystemExit(f"--bare-malloc {malloc}: its library is not installed")
        env["LD_PRELOAD"] = lib
    return env


def run_bare(archive: Path, env: dict[str, str], batched: bool = False, language: str = "en"):
    cmd = [PYTHON, __file__, "--bare-batched" if batched else "--bare", str(archive)]
    cmd += ["--bare-language", language]
    wall, peaks, out = timed(cmd, env)
    return wall, peaks, json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- long calls


def long_calls(env: dict[str, str]) -> None:
    """Peak RSS of ``callqa transcribe`` on 1- and 60-minute stereo calls; a 4-hour refusal."""
    import subprocess as sp

    out = BENCH_DIR / "long"
    out.mkdir(parents=True, exist_ok=True)
    seed = ROOT / "samples" / "archive" / "c01-compliant.wav"
    loops = {"1min": 60, "60min": 3600, "4h": 4 * 3600}
    for name, seconds in loops.items():
        target = out / f"{name}.wav"
        if not target.exists():
            sp.run(
                ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(seed), "-t",
                 str(seconds), "-ar", "8000", "-ac", "2", "-c:a", "pcm_mulaw", str(target)],
                check=True,
            )  # fmt: skip
    figures = {}
    for name in loops:
        cmd = [PYTHON, "-m", "pipeline.cli", "transcribe", str(out / f"{name}.wav"),
               "--agent-channel", "0", "--out", str(out / f"{name}.json")]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        rss = PeakRss(proc.pid, every=0.05)
        _, err = proc.communicate()
        wall = time.perf_counter() - started
        peak = max(rss.stop().values(), default=0.0)
        figures[name] = peak
        message = err.strip().splitlines()[-1] if proc.returncode else "transcribed"
        print(
            f"  {name:6s} exit {proc.returncode}  {wall:7.1f} s  peak RSS {peak:7.0f} MiB  {message}"
        )
    print(
        f"NOTE long: peak RSS 60 min / 1 min = {figures['60min'] / figures['1min']:.2f} "
        f"(target <= 1.5); 1 min {figures['1min']:.0f} MiB, 60 min {figures['60min']:.0f} MiB, "
        f"4 h {figures['4h']:.0f} MiB; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="A-B-B-A pairs (default 2)")
    parser.add_argument("--workers", type=int, help="run the pipeline on a local Dask cluster")
    parser.add_argument("--min-calls", type=int, default=16)
    parser.add_argument("--min-minutes", type=float, default=15.0)
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--warmup", action="store_true", help="a warm-up run even if not needed")
    parser.add_argument("--long", action="store_true", help="memory on 1 min, 60 min, 4 h calls")
    parser.add_argument("--no-batched", action="store_true", help="skip the batched peer")
    parser.add_argument("--zh", action="store_true", help="a Chinese archive (real Mandarin)")
    parser.add_argument(
        "--bare-malloc",
        choices=["system", "tcmalloc"],
        default="system",
        help="the bare loops' allocator (default: glibc's, as faster-whisper runs)",
    )
    parser.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare-language", default="en", help=argparse.SUPPRESS)
    parser.add_argument("--bare-batched", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare or args.bare_batched:
        bare_loop(
            args.bare or args.bare_batched,
            batched=bool(args.bare_batched),
            language=args.bare_language,
        )
        return

    archive = ZH_ARCHIVE if args.zh and args.archive == ARCHIVE else args.archive
    language = "zh" if args.zh else "en"
    if not (archive / "manifest.csv").exists():
        print(f"synthesising {archive} ...", flush=True)
        shutil.rmtree(archive, ignore_errors=True)
        make = zh_archive if args.zh else synthesise
        make(archive, args.min_calls, args.min_minutes * 60)
    files = archive_files(archive)
    seconds = audio_seconds(files)
    if len(files) < args.min_calls or seconds < args.min_minutes * 60:
        raise SystemExit(f"{archive}: {len(files)} calls, {seconds / 60:.1f} min; delete it")

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PREFECT_HOME": str(BENCH_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PYTHONPATH": str(ROOT),
    }
    if args.long:
        long_calls(env)
        return
    if args.warmup or not (BENCH_DIR / "prefect" / "prefect.db").exists():
        # Prefect's database migrations and the OS page cache, measured by neither side.
        print("warm-up run of the pipeline (not measured) ...", flush=True)
        run_pipeline(archive, args.workers, env, 0)

    bare_run_env = bare_env(env, args.bare_malloc)
    pipeline_malloc = env.get("QA_MALLOC", "tcmalloc")
    load_before = os.getloadavg()
    pipe_walls, bare_walls, bare_asr, batched_walls, peaks = [], [], [], [], {}
    cpu: dict[str, list[float]] = {"pipeline": [], "bare": [], "batched": []}
    order = []
    for i in range(args.repeats):
        pair = ["bare", "pipeline"] if i % 2 == 0 else ["pipeline", "bare"]
        order += pair + ([] if args.no_batched else ["batched"])
    for n, which in enumerate(order, 1):
        if which == "pipeline":
            wall, p = run_pipeline(archive, args.workers, env, n)
            pipe_walls.append(wall)
        elif which == "batched":
            wall, p, _ = run_bare(archive, bare_run_env, batched=True, language=language)
            batched_walls.append(wall)
        else:
            wall, p, inner = run_bare(archive, bare_run_env, language=language)
            bare_walls.append(wall)
            bare_asr.append(inner["asr_s"])
        cpu[which].append(CPU_SECONDS[-1])
        for role, mib in p.items():
            key = f"{which}/{role}"
            peaks[key] = max(peaks.get(key, 0.0), mib)
        print(
            f"  {which:8s} {wall:7.1f} s  {seconds / wall:6.1f} audio-s/s  "
            f"CPU {CPU_SECONDS[-1]:6.1f} s ({CPU_SECONDS[-1] / wall:.2f} cores)",
            flush=True,
        )
    load_after = os.getloadavg()

    # Best of the repeats: the machine is shared, and noise only ever adds time.
    pipe, bare = min(pipe_walls), min(bare_walls)
    batched = min(batched_walls) if batched_walls else None
    mode = f"local Dask x{args.workers}" if args.workers else "threads"
    ratio = (seconds / pipe) / (seconds / bare)
    print()
    print(f"archive: {len(files)} stereo 8 kHz calls, {seconds / 60:.1f} min ({archive})")
    print(
        f"cores: {os.cpu_count()}  load avg before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print(f"pipeline ({mode}): best {pipe:.1f} s -> {seconds / pipe:.1f} audio-s/s")
    print(
        f"bare faster-whisper: best {bare:.1f} s -> {seconds / bare:.1f} audio-s/s "
        f"(ASR loop alone {statistics.median(bare_asr):.1f} s)"
    )
    print(f"ratio pipeline/bare sequential: {ratio:.2f}x (target >= 2.0)")
    # Each pair ran back to back (A-B, then B-A): the ratio within a pair sees the same load,
    # and CPU seconds do not count the time other work on the machine took.
    wall_pairs = [b / p for b, p in zip(bare_walls, pipe_walls, strict=True)]
    cpu_pairs = [b / p for b, p in zip(cpu["bare"], cpu["pipeline"], strict=True)]
    cpu_ratio = statistics.median(cpu_pairs)
    print(
        f"per pair, bare/pipeline: wall {', '.join(f'{r:.2f}' for r in wall_pairs)} (median "
        f"{statistics.median(wall_pairs):.2f}x); CPU seconds "
        f"{', '.join(f'{r:.2f}' for r in cpu_pairs)} (median {cpu_ratio:.2f}x); CPU seconds "
        f"pipeline {statistics.median(cpu['pipeline']):.1f} s, bare "
        f"{statistics.median(cpu['bare']):.1f} s (medians)"
    )
    if batched:
        print(
            f"bare BatchedInferencePipeline (batch 8): best {batched:.1f} s -> "
            f"{seconds / batched:.1f} audio-s/s; ratio pipeline/batched: {batched / pipe:.2f}x"
        )
    for key, mib in sorted(peaks.items()):
        print(f"peak RSS {key}: {mib:.0f} MiB")
    print()
    print(
        f"NOTE throughput{' zh' if args.zh else ''}: pipeline {seconds / pipe:.1f} audio-s/s "
        f"({mode}), bare faster-whisper {seconds / bare:.1f} audio-s/s, ratio {ratio:.2f}x wall "
        f"(best of each), {cpu_ratio:.2f}x CPU seconds (median of pairs)"
        + (f", vs bare batched {batched / pipe:.2f}x" if batched else "")
        + f"; {len(files)} calls "
        f"{seconds / 60:.1f} min, {'base' if args.zh else 'tiny.en'} int8 VAD word timestamps "
        f"(bare beam 5), allocator pipeline {pipeline_malloc} bare {args.bare_malloc}, "
        f"{args.repeats} "
        f"alternating pairs, load {load_before[0]:.1f}->{load_after[0]:.1f} on {os.cpu_count()} "
        f"cores; peak RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sorted(peaks.items()))
    )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
