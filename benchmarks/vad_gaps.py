"""Speech the voice-activity detector leaves out: loud audio outside every VAD clip.

For each channel of each call in a folder, the seconds of 100 ms frames whose RMS is at least
ten times the channel's noise floor (its 10th percentile, and at least 0.005) that no clip
covers: with Silero at the first threshold alone, and with the pipeline's rescue pass over
the gaps (``VadConfig.rescue_threshold``: whole turns clear of the clips found). Hold music
is loud too: a channel with music shows it as left out at both settings; what the rescue pass
gives back is the difference. Split 18 (zh): 46.1 s -> 44.7 s (b05's lost question, 3.8 -> 2.4
s; 40.8 s is hold music); held-out 18 (en): 18.8 s -> 18.0 s.

    .venv/bin/python benchmarks/vad_gaps.py var/bench/zh-calls/heldout18 [--min 1.0]

Prints the channels with at least ``--min`` seconds left out either way, then the totals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME = 1600  # 100 ms at 16 kHz
AUDIO = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"}


def left_out(samples: np.ndarray, clips: list[dict]) -> float:
    """Seconds of loud frames of ``samples`` that no clip covers."""
    n = len(samples) // FRAME
    if n == 0:
        return 0.0
    rms = np.sqrt((samples[: n * FRAME].reshape(n, FRAME) ** 2).mean(1))
    loud = rms > max(10 * float(np.percentile(rms, 10)), 0.005)
    covered = np.zeros(n, bool)
    for c in clips:
        covered[c["start"] // FRAME : (c["end"] + FRAME - 1) // FRAME] = True
    return float((loud & ~covered).sum()) / 10


def main() -> None:
    from faster_whisper import decode_audio

    from pipeline.config import Settings
    from pipeline.transcribe.batching import _speech_clips
    from pipeline.transcribe.decode_config import asr_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--min", type=float, default=1.0, help="seconds left out to list a channel")
    args = ap.parse_args()
    config = asr_config(Settings())
    if config.vad is None or config.vad.rescue_threshold is None:
        sys.exit("VAD or its rescue pass is off in this configuration: nothing to compare")
    first = config.model_copy(
        update={"vad": config.vad.model_copy(update={"rescue_threshold": None})}
    )
    totals, channels = [0.0, 0.0], 0
    for f in sorted(p for p in args.folder.iterdir() if p.suffix.lower() in AUDIO):
        for ch, samples in enumerate(decode_audio(str(f), sampling_rate=16000, split_stereo=True)):
            channels += 1
            a = left_out(samples, _speech_clips(samples, first))
            b = left_out(samples, _speech_clips(samples, config))
            totals[0] += a
            totals[1] += b
            if max(a, b) >= args.min:
                print(
                    f"{f.name:<60} ch{ch}  left out {a:5.1f} s -> {b:5.1f} s with the rescue pass"
                )
    print(
        f"{channels} channels: loud audio left out {totals[0]:.1f} s at threshold "
        f"{config.vad.threshold}, {totals[1]:.1f} s with the rescue pass at "
        f"{config.vad.rescue_threshold}"
    )


if __name__ == "__main__":
    main()
