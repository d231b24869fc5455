"""Where the ASR's CPU goes: callqa beside the bare faster-whisper loop, per component.

Transcribes the first ``--calls`` stereo calls of an archive (default: the Chinese archive of
``benchmarks/throughput.py --zh``, real Mandarin recordings at 8 kHz A-law; made by it when
missing) in one process, one decode stream (``CALLQA_CORES=1``) and one intra-op thread on
both sides, so each component's CPU seconds (``time.process_time`` around it) are its own:

  encode     Whisper encoder passes (each a padded 30-s window; calls: batches or windows)
  detect     language identification (one more encoder pass per call when detected)
  decode     the beam search (generate, fallback retries included)
  align      word timestamps (cross-attention alignment pass)
  vad        Silero VAD;  mel: log-mel features

Variants, run in order and repeated ``--repeats`` times (interleaved):

  bare       ``WhisperModel(model).transcribe`` per channel: beam 5, VAD, word timestamps,
             language given (``pipeline.transcribe.decode_config.transcribe_options``)
  callqa     ``transcribe_call`` with the default settings, the language given (as the
             manifest or routing gives it) or ``detected``; more with ``--set``

    .venv/bin/python benchmarks/asr_profile.py [--calls 3] [--language zh] [--repeats 1] \\
        [--variant "c30 asr_chunk_seconds=30"] [--variant "b2 asr_chunk_seconds=30 beam_size=2"]
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import sys
import time
from pathlib import Path

os.environ["CALLQA_CORES"] = "1"  # one stream: components run one at a time
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput  # noqa: E402

from pipeline.config import enforce_offline, load_settings  # noqa: E402
from pipeline.transcribe import transcribe_call  # noqa: E402
from pipeline.transcribe.decode_config import transcribe_options  # noqa: E402
from pipeline.transcribe.language import model_for  # noqa: E402
from pipeline.transcribe.model import get_model, resolve_model  # noqa: E402

CPU: collections.Counter = collections.Counter()  # exclusive CPU seconds per component
CALLS: collections.Counter = collections.Counter()
_STACK: list[str] = []  # the components running now, outermost first (one thread at a time)


def _timed(owner, name: str, label: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        # the encoder pass of language identification is detection's cost
        mine = "detect" if label == "encode" and "detect" in _STACK else label
        _STACK.append(mine)
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.process_time() - started
            _STACK.pop()
            CPU[mine] += spent
            CALLS[mine] += mine == label
            if _STACK:  # exclusive times: the caller's time is its own
                CPU[_STACK[-1]] -= spent

    setattr(owner, name, wrapper)


def instrument() -> None:
    """Wrap faster-whisper's components, each timed exclusive of those it calls."""
    import faster_whisper.feature_extractor as fe
    import faster_whisper.transcribe as fwt
    import faster_whisper.vad as fv

    _timed(fwt.WhisperModel, "encode", "encode")
    _timed(fwt.WhisperModel, "find_alignment", "align")
    _timed(fwt.WhisperModel, "detect_language", "detect")
    _timed(fwt.WhisperModel, "generate_with_fallback", "decode")  # bare: after its encode
    _timed(fwt.BatchedInferencePipeline, "generate_segment_batched", "decode")  # callqa
    _timed(fv, "get_speech_timestamps", "vad")
    fwt.get_speech_timestamps = fv.get_speech_timestamps
    _timed(fe.FeatureExtractor, "__call__", "mel")


def report() -> str:
    order = ["encode", "decode", "align", "detect", "vad", "mel"]
    return "  ".join(f"{k} {CPU[k]:5.1f} s/{CALLS[k]}" for k in order if k in CPU)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=throughput.ZH_ARCHIVE)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--language", default="zh")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variant", action="append", default=[], help='"name key=value ..."')
    args = parser.parse_args()
    if not (args.archive / "manifest.csv").exists():
        throughput.zh_archive(args.archive, 16, 15 * 60)
    with (args.archive / "manifest.csv").open(encoding="utf-8") as fh:
        files = [args.archive / row["file"] for row in csv.DictReader(fh)][: args.calls]

    from faster_whisper import WhisperModel, decode_audio

    base = load_settings(language=args.language)
    bare = WhisperModel(
        resolve_model(model_for(base, args.language)),
        device="cpu",
        compute_type=base.compute_type,
        cpu_threads=1,
    )

    def run_bare(settings) -> None:
        options = transcribe_options(base, args.language)
        for path in files:
            for channel in decode_audio(str(path), sampling_rate=16000, split_stereo=True):
                list(bare.transcribe(channel, **options)[0])

    def run_callqa(settings) -> None:
        for path in files:
            transcribe_call(path, settings=settings, agent_channel=0)

    variants = [
        ("bare", run_bare, base),
        ("callqa", run_callqa, base),
        ("detected", run_callqa, load_settings(language="auto")),
    ]
    for spec in args.variant:
        name, *pairs = spec.split()
        overrides = dict(p.split("=", 1) for p in pairs)
        variants.append((name, run_callqa, load_settings(language=args.language, **overrides)))
    for _name, _run, settings in variants[1:]:
        get_model(settings)  # loading is not measured
        get_model(settings.model_copy(update={"asr_model": model_for(settings, args.language)}))
    instrument()
    run_callqa(base)  # warm-up: first-call costs (VAD session, allocator) measured by neither

    print(f"{len(files)} stereo calls of {args.archive}, language {args.language}, one stream")
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.repeats):
        for name, run, settings in variants:
            CPU.clear()
            CALLS.clear()
            started, wall = time.process_time(), time.perf_counter()
            run(settings)
            cpu = time.process_time() - started
            totals[name].append(cpu)
            print(
                f"{name:10s} CPU {cpu:6.1f} s  wall {time.perf_counter() - wall:6.1f} s | "
                f"{report()}",
                flush=True,
            )
    bare_cpu = min(totals["bare"])
    for name, cpus in totals.items():
        print(
            f"NOTE asr_profile {name}: CPU {min(cpus):.1f} s, bare/{name} {bare_cpu / min(cpus):.2f}x"
        )
    return 0


if __name__ == "__main__":
    enforce_offline()
    raise SystemExit(main())
