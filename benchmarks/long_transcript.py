"""Redaction and scoring time against transcript length: every step must be linear or n·log n.

Builds synthetic zh/en transcripts of N utterances (alternating speakers, some overlaps,
pauses, backchannels) from the sample sentences and times ``score_transcript`` with each
shipped rubric, and ``redact`` per language. Prints one line per (rubric or redaction, N):
seconds and seconds per 1,000 utterances.

    python benchmarks/long_transcript.py --sizes 2000 10000 50000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.config import resolve_rubric_path
from pipeline.schema import Transcript

ROOT = Path(__file__).resolve().parents[1]


def long_transcript(n: int, language: str = "zh") -> Transcript:
    """N utterances cycled from the sample transcripts, with overlaps and long pauses."""
    if language == "zh":
        base = json.loads(
            (ROOT / "samples/zh_transcripts/bank_001_compliant.json").read_text("utf-8")
        )
        texts = [u["text"] for u in base["utterances"]] + ["嗯", "好的"]
    else:
        texts = [
            "Thank you for calling, my name is Alex, how can I help you today?",
            "I want to cancel my contract, this is ridiculous.",
            "I understand, let me check that for you, please hold.",
            "okay",
            "Is there anything else I can help you with?",
        ]
    utterances, t = [], 0.0
    for i in range(n):
        text = texts[i % len(texts)]
        length = 1.0 + (i % 7) * 0.5
        start = t - 0.8 if i % 5 == 3 else t  # every fifth turn starts over the previous one
        utterances.append(
            {
                "speaker": "agent" if i % 2 == 0 else "customer",
                "start": round(max(start, 0.0), 3),
                "end": round(max(start, 0.0) + length, 3),
                "text": text,
            }
        )
        t = max(start, 0.0) + length + (12.0 if i % 97 == 0 else 0.3)
    return Transcript.model_validate(
        {"call_id": f"long-{n}", "language": language, "utterances": utterances}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument(
        "--rubrics", nargs="+", default=["zh_bank_hotline", "zh_ecommerce", "en_telecom"]
    )
    args = parser.parse_args()
    from pipeline.redact import redact
    from pipeline.score import score_transcript
    from pipeline.scripts_check import load_rubric

    for language in ("zh", "en"):
        redact(long_transcript(50, language))  # recognisers loaded
        for n in args.sizes:
            transcript = long_transcript(n, language)
            started = time.perf_counter()
            redact(transcript)
            seconds = time.perf_counter() - started
            print(
                f"{'redaction ' + language:18s} {n:>7d} utterances: {seconds:7.2f} s "
                f"({1000 * seconds / n:.3f} s per 1,000)"
            )

    for name in args.rubrics:
        rubric = load_rubric(resolve_rubric_path(name))
        score_transcript(long_transcript(50, rubric.language or "zh"), rubric)  # models loaded
        for n in args.sizes:
            transcript = long_transcript(n, rubric.language or "zh")
            started = time.perf_counter()
            result = score_transcript(transcript, rubric)
            seconds = time.perf_counter() - started
            print(
                f"{name:18s} {n:>7d} utterances: {seconds:7.2f} s "
                f"({1000 * seconds / n:.3f} s per 1,000) score {result.total:g}/{result.max:g}"
            )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
