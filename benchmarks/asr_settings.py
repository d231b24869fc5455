"""CPU seconds and WER of ASR decode settings, compared call by call in one process.

Decode settings (chunk length, beam, batch size...) are chosen by measured cost and
accuracy, not by habit. This decodes the party channels of every call of an archive of
synthetic sample calls (default: the throughput benchmark's) with each variant of
:class:`pipeline.transcribe.decode_config.AsrConfig`, the variants taking turns call by call in the
same process so that a noisy machine slows them alike; one CTranslate2 stream with one
thread, CPU seconds by ``time.process_time``. WER is against the scripted turn texts of
``samples/calls.yaml`` (espeak voices: every setting scores 0.3 or so, so only differences
between variants mean anything; the real-speech check is ``benchmarks/asr_wer.py``).

    .venv/bin/python benchmarks/asr_settings.py base chunk_length_s=30 beam_size=2 \\
        "chunk_length_s=30 batch_size=4" [--archive DIR] [--limit N]

Each positional argument is one variant: space-separated ``field=value`` overrides of the
default configuration (``base``: none).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CALLQA_CORES", "1")  # one stream: CPU seconds, not parallelism

from benchmarks.asr_wer import edit_distance, words  # noqa: E402
from pipeline.audio import decode_audio  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.transcribe.asr import transcribe_parties  # noqa: E402
from pipeline.transcribe.call import _party_channels  # noqa: E402
from pipeline.transcribe.decode_config import SAMPLE_RATE, AsrConfig, asr_config  # noqa: E402
from pipeline.transcribe.model import get_model  # noqa: E402

DEFAULT_ARCHIVE = ROOT / "var" / "bench" / "throughput-archive"


def parse_variant(text: str, base: AsrConfig) -> AsrConfig:
    updates = {}
    for part in text.split():
        if part == "base":
            continue
        field, _, value = part.partition("=")
        kind = type(getattr(base, field))
        updates[field] = kind(value)
    return AsrConfig.model_validate({**base.model_dump(), **updates})


@cache
def _sample_calls() -> dict:
    sys.path.insert(0, str(ROOT / "samples"))
    import make_samples as ms

    return {c.call_id: c for c in ms.load_calls().calls}


def references(call_id: str) -> tuple[int, dict[str, str]]:
    """(agent channel, speaker -> scripted text) of the sample call this archive call renders."""
    call = _sample_calls()[call_id.rsplit("-v", 1)[0]]
    out: dict[str, list[str]] = {}
    for turn in call.turns:
        if turn.text:
            out.setdefault(turn.speaker, []).append(turn.text)
    return call.agent_channel, {speaker: " ".join(texts) for speaker, texts in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--limit", type=int, help="only the first N calls")
    args = parser.parse_args()

    settings = load_settings(language="en")
    model = get_model(settings)
    base = asr_config(settings)
    variants = {v: parse_variant(v, base) for v in args.variants}
    with (args.archive / "manifest.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[: args.limit]

    warm = decode_audio(args.archive / rows[0]["file"], SAMPLE_RATE)
    transcribe_parties(model, _party_channels(warm), base, "en")  # VAD and CTranslate2 warm
    cpu = dict.fromkeys(variants, 0.0)
    errors = dict.fromkeys(variants, 0)
    ref_words = 0
    for row in rows:
        audio = decode_audio(args.archive / row["file"], SAMPLE_RATE)
        parties = _party_channels(audio)
        agent, refs = references(row["call_id"])
        for channel, _ in parties:
            speaker = "agent" if channel == agent else "customer"
            ref_words += len(words(refs.get(speaker, "")))
        for name, config in variants.items():
            started = time.process_time()
            results = transcribe_parties(model, parties, config, "en")
            cpu[name] += time.process_time() - started
            for (channel, _), result in zip(parties, results, strict=True):
                speaker = "agent" if channel == agent else "customer"
                hyp = " ".join(s.text for s in result.segments)
                errors[name] += edit_distance(words(refs.get(speaker, "")), words(hyp))
        print(f"  {row['call_id']}", flush=True)

    print(f"\n{len(rows)} calls, {ref_words} reference words, 1 stream x 1 thread")
    print(f"{'variant':40s} {'CPU s':>8s} {'vs base':>8s} {'errors':>7s} {'WER':>7s}")
    first = next(iter(variants))
    for name in variants:
        print(
            f"{name:40s} {cpu[name]:8.1f} {cpu[name] / cpu[first]:8.2f} "
            f"{errors[name]:7d} {errors[name] / max(ref_words, 1):7.3f}"
        )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()
    main()
