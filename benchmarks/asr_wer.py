"""Word error rate of ``callqa transcribe`` vs a bare faster-whisper loop on telephone audio.

Every file of ../shared/data/audio with a reference in its README is converted to 8 kHz
G.711 mu-law and A-law (what call recorders write), then transcribed by
``pipeline.transcribe.transcribe_call`` and by a bare ``WhisperModel(...).transcribe``
with the same model, compute type, beam size, language and VAD. Stereo files are scored
per channel (one party per channel; the bare loop gets each channel via ``split_stereo``).

    .venv/bin/python benchmarks/asr_wer.py [--model tiny.en] [--data ../shared/data/audio]
                                           [--repeat N]

Prints a table: WER (case and punctuation ignored) and seconds per run for both (the
fastest of N interleaved runs, to damp noise from other work on the machine), and the
throughput of callqa relative to the bare loop. ``--compare-sequential`` adds callqa's
sequential decoding with the deterministic fallback (the fallback's WER cost against
faster-whisper's sampled one).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_settings  # noqa: E402
from pipeline.transcribe import transcribe_call  # noqa: E402
from pipeline.transcribe.decode_config import BASELINE_BEAM_SIZE, asr_config  # noqa: E402
from pipeline.transcribe.model import get_model, resolve_model  # noqa: E402

# References from ../shared/data/README.md: file -> one text per channel (one: mono).
REFERENCES: dict[str, list[str]] = {
    "jfk.flac": [
        "And so my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country."
    ],
    "stereo_diarization.wav": [
        "He began a confused complaint against the wizard, who had vanished behind the "
        "curtain on the left.",
        "The horizon seems extremely distant.",
    ],
    "OSR_us_000_0034_8k.wav": [
        "A gold ring will please most any girl. The long journey home took a year. She saw a "
        "cat in the neighbor's house. A pink shell was found on the sandy beach. Small children "
        "came to see him. The grass and bushes were wet with dew. The blind man counted his old "
        "coins. A severe storm tore down the barn. She called his name many times. When you "
        "hear the bell, come quickly."
    ],
}
CODECS = {"mulaw": "pcm_mulaw", "alaw": "pcm_alaw"}


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower().replace("-", " ")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def bare_loop(model, path: Path, n_channels: int, settings, language: str) -> list[str]:
    """The bare faster-whisper loop: decode, transcribe, join the segment texts."""
    from faster_whisper.audio import decode_audio

    channels = (
        decode_audio(str(path), split_stereo=True) if n_channels == 2 else [decode_audio(str(path))]
    )
    texts = []
    for samples in channels:
        segments, _ = model.transcribe(
            samples, language=language, beam_size=BASELINE_BEAM_SIZE, vad_filter=settings.vad
        )
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts


def callqa(path: Path, n_channels: int, settings) -> list[str]:
    transcript = transcribe_call(
        path, settings=settings, agent_channel=0 if n_channels == 2 else None
    )
    if n_channels == 1:
        return [" ".join(u.text for u in transcript.utterances)]
    return [
        " ".join(u.text for u in transcript.utterances if u.channel == c) for c in range(n_channels)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="faster-whisper model (default: settings)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per file; fastest counts")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "audio")
    parser.add_argument(
        "--compare-sequential",
        action="store_true",
        help="also callqa's sequential decoding (deterministic fallback)",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data folder at {args.data}", file=sys.stderr)
        return 1

    from faster_whisper import WhisperModel

    settings = load_settings(asr_model=args.model)
    sequential = settings.model_copy(update={"asr_decoding": "sequential"})
    get_model(settings)  # load callqa's model up front, as the bare loop does
    seq_errors = 0
    bare = WhisperModel(
        resolve_model(settings.asr_model),
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
    )
    language = "en"  # every reference here is English
    print(
        f"model {settings.asr_model} ({settings.compute_type}, {settings.device}), "
        f"beam callqa {asr_config(settings).by_model}, bare {BASELINE_BEAM_SIZE}, vad {settings.vad}; "
        f"callqa decoding "
        f"{settings.asr_decoding} (batch {settings.asr_batch_size}, cpu_isa {settings.cpu_isa}); "
        f"bare: WhisperModel.transcribe, sampled temperature fallback"
    )
    header = f"{'file':28} {'ch':>2} {'codec':6} {'words':>5} {'WER callqa':>10} {'WER bare':>9} {'s callqa':>8} {'s bare':>7}"
    print(header)
    print("-" * len(header))
    totals = {"ref": 0, "callqa": 0, "bare": 0, "t_callqa": 0.0, "t_bare": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, refs in REFERENCES.items():
            src = args.data / name
            if not src.exists():
                print(f"{name:28} missing, skipped")
                continue
            for label, codec in CODECS.items():
                path = Path(tmp) / f"{src.stem}_8k_{label}.wav"
                subprocess.run(
                    [
                        "ffmpeg",
                        "-v",
                        "error",
                        "-y",
                        "-i",
                        str(src),
                        "-ar",
                        "8000",
                        "-c:a",
                        codec,
                        str(path),
                    ],
                    check=True,
                )
                n = len(refs)
                best_ours = best_bare = float("inf")
                for _ in range(max(args.repeat, 1)):
                    t0 = time.perf_counter()
                    ours = callqa(path, n, settings)
                    t1 = time.perf_counter()
                    theirs = bare_loop(bare, path, n, settings, language)
                    t2 = time.perf_counter()
                    best_ours, best_bare = min(best_ours, t1 - t0), min(best_bare, t2 - t1)
                t0, t1, t2 = 0.0, best_ours, best_ours + best_bare
                totals["t_callqa"] += t1 - t0
                totals["t_bare"] += t2 - t1
                seq = callqa(path, n, sequential) if args.compare_sequential else None
                for channel, ref in enumerate(refs):
                    r = words(ref)
                    if seq is not None:
                        seq_errors += edit_distance(r, words(seq[channel]))
                    e_ours = edit_distance(r, words(ours[channel]))
                    e_bare = edit_distance(r, words(theirs[channel]))
                    totals["ref"] += len(r)
                    totals["callqa"] += e_ours
                    totals["bare"] += e_bare
                    timing = f"{t1 - t0:8.2f} {t2 - t1:7.2f}" if channel == 0 else ""
                    print(
                        f"{name:28} {channel if n > 1 else '-':>2} {label:6} {len(r):5d} "
                        f"{e_ours / len(r):10.3f} {e_bare / len(r):9.3f} {timing}"
                    )
    print("-" * len(header))
    ref = max(totals["ref"], 1)
    print(
        f"{'all (word-weighted)':28} {'':>2} {'':6} {totals['ref']:5d} {totals['callqa'] / ref:10.3f} "
        f"{totals['bare'] / ref:9.3f} {totals['t_callqa']:8.2f} {totals['t_bare']:7.2f}"
    )
    if args.compare_sequential:
        print(f"WER callqa sequential (deterministic fallback): {seq_errors / ref:.3f}")
    print(f"throughput callqa / bare: {totals['t_bare'] / max(totals['t_callqa'], 1e-9):.2f}x")
    print(
        f"NOTE asr_wer: callqa {settings.asr_decoding} WER {totals['callqa'] / ref:.3f}, bare "
        f"sequential faster-whisper WER {totals['bare'] / ref:.3f} "
        f"(difference {(totals['callqa'] - totals['bare']) / ref:+.3f}, limit +0.010)"
    )
    return 0


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    sys.exit(main())
