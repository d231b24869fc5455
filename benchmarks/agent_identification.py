"""Agent identification by content: accuracy on labelled dialogues, false hits on customer text.

    .venv/bin/python benchmarks/agent_identification.py [--reviews 3000]

Dialogues: every rubric golden case (rubrics/cases/*.yaml) and sample transcript
(samples/zh_transcripts/*.json) with both agent and customer turns. Stereo: the agent put on
channel 0, then on channel 1 (content / default / wrong). Mono: turns laid out one after
another (4 characters or 2.5 words a second, 0.5 s apart), speakers labelled by first speech
(agent found / unknown / wrong). False hits: the share of real customer-written Chinese
reviews (../shared/data/text, when present) in which any agent phrase is found.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.text import has_cjk  # noqa: E402
from pipeline.transcribe.agent_identification import (  # noqa: E402
    decide_agent_channel,
    identify_roles,
    load_agent_phrases,
    phrase_similarity,
)
from pipeline.transcribe.diarize import Turn  # noqa: E402

REVIEWS = ROOT.parent / "shared" / "data" / "text"


def dialogues() -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for path in sorted((ROOT / "rubrics" / "cases").glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            turns = []
            for t in case["turns"]:
                turns += [(r, str(t[r])) for r in ("agent", "customer", "unknown") if r in t]
                if "text" in t:
                    turns.append((t.get("speaker", "unknown"), str(t["text"])))
            out.append((f"{path.stem}:{case['id']}", turns))
    for path in sorted((ROOT / "samples" / "zh_transcripts").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.stem, [(u["speaker"], u["text"]) for u in data["utterances"]]))
    return [(name, turns) for name, turns in out if {r for r, _ in turns} == {"agent", "customer"}]


def stereo(turns: list[tuple[str, str]], agent_channel: int) -> tuple[str, float]:
    by_channel: dict[int, list[str]] = {0: [], 1: []}
    for role, text in turns:
        by_channel[agent_channel if role == "agent" else 1 - agent_channel].append(text)
    d = decide_agent_channel(by_channel)
    if d.method == "default":
        return "default", d.confidence
    return ("content" if d.agent_channel == agent_channel else "wrong"), d.confidence


def mono(turns: list[tuple[str, str]]) -> tuple[str, float]:
    start, timed, texts, labels = 0.0, [], [], {}
    for role, text in turns:
        seconds = max(0.8, len(text) / 4 if has_cjk(text) else len(text.split()) / 2.5)
        label = labels.setdefault(role, f"S{len(labels) + 1}")
        timed.append(Turn(start=start, end=start + seconds, speaker=label))
        texts.append((start, start + seconds, text))
        start += seconds + 0.5
    a = identify_roles(timed, texts)
    if a.agent_speaker is None:
        return "unknown", a.confidence
    return ("found" if a.agent_speaker == labels["agent"] else "wrong"), a.confidence


def false_hits(n: int) -> tuple[int, int, Counter]:
    rows: list[str] = []
    for name in ("waimai_10k.csv", "online_shopping_10_cats.csv", "ChnSentiCorp_htl_all.csv"):
        path = REVIEWS / name
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                rows += [r["review"] for r in csv.DictReader(fh) if r.get("review")]
    random.Random(5).shuffle(rows)
    rows = rows[:n]
    config = load_agent_phrases()
    phrases = [
        (lang, p.text, p.min_similarity or config.min_similarity)
        for lang, p in config.all_phrases()
    ]
    hits: Counter = Counter()
    with_hit = 0
    for text in rows:
        found = [p for lang, p, th in phrases if phrase_similarity(p, text, lang, th) > 0]
        with_hit += bool(found)
        hits.update(found)
    return with_hit, len(rows), hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reviews", type=int, default=3000, help="customer reviews to search")
    args = ap.parse_args()
    items = dialogues()
    stereo_counts: Counter = Counter()
    mono_counts: Counter = Counter()
    print(f"{'dialogue':58} {'stereo agent=0':>16} {'stereo agent=1':>16} {'mono':>14}")
    for name, turns in items:
        s0, s1, m = stereo(turns, 0), stereo(turns, 1), mono(turns)
        stereo_counts.update([s0[0], s1[0]])
        mono_counts[m[0]] += 1
        print(f"{name[:58]:58} {s0[0]:>9} {s0[1]:.3f} {s1[0]:>9} {s1[1]:.3f} {m[0]:>7} {m[1]:.3f}")
    n = len(items)
    print(
        f"stereo ({2 * n} decisions): content {stereo_counts['content']}, "
        f"default {stereo_counts['default']}, wrong {stereo_counts['wrong']}"
    )
    print(
        f"mono ({n} dialogues): agent found {mono_counts['found']}, "
        f"unknown {mono_counts['unknown']}, wrong {mono_counts['wrong']}"
    )
    with_hit, total, hits = false_hits(args.reviews)
    if total:
        print(
            f"customer reviews with an agent-phrase hit: {with_hit}/{total} "
            f"({with_hit / total:.2%}); {dict(hits.most_common(8))}"
        )
    else:
        print(f"customer reviews: none under {REVIEWS}")


if __name__ == "__main__":
    main()
