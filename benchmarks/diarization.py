"""Diarization accuracy and speed: prints DER (pyannote.metrics, no collar, overlap scored),
role accuracy and seconds of compute per audio minute.

    .venv/bin/python benchmarks/diarization.py [--asr] [--archive samples/archive]

Sets: ``sample`` (../shared/data/diarization/sample.wav vs its RTTM), ``synthetic``
(espeak-ng two-voice calls made here, reference from the timeline, roles from the
script texts) and ``archive`` (mono mix-downs of the stereo sample calls; reference from
the ``channel`` backend on the stereo file, agent = manifest agent_channel; roles need
texts, so with ``--asr`` faster-whisper tiny.en transcribes the mix).
Needs ``pip install pyannote.metrics``.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.audio import decode_audio  # noqa: E402
from pipeline.transcribe.diarize import Turn, get_diarizer, identify_roles, load_rttm  # noqa: E402

DATA = ROOT.parent / "shared" / "data"

SYNTHETIC = [  # (speaker, text); agent voice / customer voice
    [
        ("agent", "Thank you for calling Northwind, my name is Anna, how can I help you today?"),
        ("customer", "Hi, my internet has been down since this morning."),
        ("agent", "I am sorry to hear that. Can I have your account number please?"),
        ("customer", "Yes."),
        ("agent", "Thank you. Let me check that for you."),
        ("customer", "It is four five six seven eight."),
        (
            "agent",
            "I found the problem and reset your line. Is there anything else I can help you with?",
        ),
        ("customer", "No, that is all, thanks."),
        ("agent", "Have a nice day, goodbye."),
    ],
    [
        ("customer", "Hello?"),
        (
            "agent",
            "Hello, this is David from Northwind billing, thank you for calling, how may I help you?",
        ),
        ("customer", "I was charged twice for my phone bill this month and I want it fixed."),
        ("agent", "For security, can you confirm your date of birth please?"),
        ("customer", "Mm."),
        ("customer", "The first of May, nineteen eighty."),
        ("agent", "Thank you for your patience. I have refunded the second charge."),
        ("customer", "Okay, good."),
        ("agent", "Is there anything else I can help you with today?"),
        ("customer", "No."),
    ],
]
VOICES = {
    "agent": ["-v", "en-us+f3", "-s", "150", "-p", "62"],
    "customer": ["-v", "en-gb+m3", "-s", "160", "-p", "38"],
}


def espeak_call(
    script, gap=0.6, seed=0
) -> tuple[np.ndarray, list[Turn], list[tuple[float, float, str]]]:
    """Mono 16 kHz mix of alternating espeak voices, its reference turns and timed texts."""
    rng = np.random.default_rng(seed)
    pieces, turns, texts, t = [], [], [], 0.3
    with tempfile.TemporaryDirectory() as tmp:
        for i, (who, text) in enumerate(script):
            out = Path(tmp) / f"{i}.wav"
            subprocess.run(
                ["espeak-ng", *VOICES[who], "-w", str(Path(tmp) / "raw.wav"), text], check=True
            )
            subprocess.run(
                ["sox", str(Path(tmp) / "raw.wav"), "-r", "16000", "-c", "1", str(out)], check=True
            )
            wav = decode_audio(out).channels[0]
            nz = np.flatnonzero(np.abs(wav) > 1e-3)
            wav = wav[nz[0] : nz[-1] + 1] * 0.5
            pieces.append((int(t * 16000), wav))
            turns.append(Turn(start=t, end=t + len(wav) / 16000, speaker=who))
            texts.append((t, t + len(wav) / 16000, text))
            t += len(wav) / 16000 + gap + float(rng.uniform(0, 0.4))
    mix = np.zeros(int((t + 0.5) * 16000), dtype=np.float32)
    for start, wav in pieces:
        mix[start : start + len(wav)] += wav
    mix += rng.normal(0, 0.002, len(mix)).astype(np.float32)
    return mix, turns, texts


def der(reference: list[Turn], hypothesis: list[Turn]) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def ann(turns):
        a = Annotation()
        for i, t in enumerate(turns):
            a[Segment(t.start, t.end), i] = t.speaker
        return a

    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    return float(metric(ann(reference), ann(hypothesis), uem=None))


def role_correct(assign, hyp, reference: list[Turn]) -> bool:
    """True when the label given 'agent' overlaps the reference agent most."""
    if assign.agent_speaker is None:
        return False
    best: dict[str, float] = {}
    for h in hyp.turns:
        for r in reference:
            if r.speaker == "agent":
                best[h.speaker] = best.get(h.speaker, 0.0) + max(
                    0.0, min(h.end, r.end) - max(h.start, r.start)
                )
    return max(best, key=best.get) == assign.agent_speaker if best else False


def asr_texts(mix: np.ndarray) -> list[tuple[float, float, str]]:
    from faster_whisper import WhisperModel

    from pipeline.transcribe.model import resolve_model

    model = _asr_model(WhisperModel, resolve_model("tiny.en"))
    segments, _ = model.transcribe(mix, language="en", beam_size=1, vad_filter=True)
    return [(s.start, s.end, s.text) for s in segments]


_MODEL = {}


def _asr_model(cls, path):
    if path not in _MODEL:
        _MODEL[path] = cls(path, device="cpu", compute_type="int8", cpu_threads=1)
    return _MODEL[path]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", default=str(ROOT / "samples" / "archive"))
    ap.add_argument("--asr", action="store_true", help="transcribe archive mixes for role accuracy")
    args = ap.parse_args()
    diarizer = get_diarizer("embedded")
    rows = []  # (set, item, speakers ref/hyp, DER, role ok, compute s/audio min)

    def run(set_name, item, mix, reference, texts, agent_label="agent", n_ref=None):
        t0 = time.perf_counter()
        hyp = diarizer(mix)
        rtf = (time.perf_counter() - t0) / (len(mix) / 16000 / 60)
        role = ""
        if texts is not None:
            ref = [
                t.model_copy(update={"speaker": "agent" if t.speaker == agent_label else "other"})
                for t in reference
            ]
            assign = identify_roles(hyp, texts)
            role = "ok" if role_correct(assign, hyp, ref) else f"WRONG({assign.confidence:.2f})"
        n_ref = n_ref or len({t.speaker for t in reference})
        rows.append(
            (set_name, item, f"{n_ref}/{len(hyp.speakers)}", der(reference, hyp.turns), role, rtf)
        )

    sample = DATA / "diarization" / "sample.wav"
    if sample.exists():
        run(
            "sample",
            "sample.wav",
            decode_audio(sample).channels[0],
            load_rttm(sample.with_suffix(".rttm")),
            None,
        )
    for i, script in enumerate(SYNTHETIC):
        mix, ref, texts = espeak_call(script, seed=i)
        run("synthetic", f"espeak-{i}", mix, ref, texts)

    archive = Path(args.archive)
    manifest = archive / "manifest.csv"
    if manifest.exists():
        channel = get_diarizer("channel")
        for row in csv.DictReader(manifest.open()):
            path = archive / row["file"]
            try:
                stereo = decode_audio(path).channels
            except (ValueError, OSError):
                continue  # the deliberately broken uploads
            if stereo.shape[0] != 2 or not row.get("agent_channel"):
                continue
            reference = channel(stereo).turns
            mix = stereo.mean(axis=0)
            texts = asr_texts(mix) if args.asr else None
            run(
                "archive",
                row["file"],
                mix,
                reference,
                texts,
                agent_label=f"CH{row['agent_channel']}",
            )

    print(
        f"{'set':<10} {'item':<28} {'spk ref/hyp':>11} {'DER':>7} {'role':>12} {'s/audio-min':>12}"
    )
    for r in rows:
        print(f"{r[0]:<10} {r[1]:<28} {r[2]:>11} {r[3]:>7.3f} {r[4]:>12} {r[5]:>12.1f}")
    for set_name in dict.fromkeys(r[0] for r in rows):
        sub = [r for r in rows if r[0] == set_name]
        roles = [r[4] for r in sub if r[4]]
        acc = f"{sum(x == 'ok' for x in roles)}/{len(roles)}" if roles else "-"
        print(
            f"{set_name:<10} mean DER {np.mean([r[3] for r in sub]):.3f}  role accuracy {acc}  "
            f"mean {np.mean([r[5] for r in sub]):.1f} s per audio minute"
        )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
