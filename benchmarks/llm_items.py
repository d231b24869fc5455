"""LLM-judged rubric items: seconds per call, tokens/s, and agreement with hand labels.

The hand labels (``benchmarks/data/llm_items_labels.jsonl``, labelled by us): English
customer-helpdesk dialogues of the STC-3 train/dev splits (``../shared/data/text/
stc3_helpdesk_en.jsonl``; never its test split), the Chinese sample transcripts and Chinese
calls written for this benchmark; five yes/no questions each: apologised, offered a solution,
promised a follow-up, showed empathy, customer confirmed the problem solved. The questions
are the rubrics ``benchmarks/data/llm_items_{en,zh}.yaml``.

Each call is redacted, then scored through the pipeline's own path (:func:`pipeline.score.
score_transcript` with a :class:`pipeline.llm.judge.Judge`, one request per call), as the
nightly run does. Printed per question: agreement of the item's verdict with the label
(a review, i.e. no verified verdict, counts as disagreement and is also counted apart),
beside always answering the majority class; then seconds per call and tokens/s.

    .venv/bin/python benchmarks/llm_items.py [--limit N] [--language en|zh] [--threads 1]

The backend is the embedded model unless ``QA_LLM_BACKEND`` and its settings say otherwise
(e.g. an OpenAI-compatible endpoint). About a minute per call on one thread: ``--limit``
benchmarks the first N calls of each language.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import LlmSettings, settings_from  # noqa: E402
from pipeline.llm.judge import Judge  # noqa: E402
from pipeline.redact import detect, redact  # noqa: E402
from pipeline.schema import Transcript, Utterance  # noqa: E402
from pipeline.score import score_transcript  # noqa: E402
from pipeline.scoring_config import build_scoring_config  # noqa: E402
from pipeline.scripts_check import load_rubric  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
LABELS = DATA / "llm_items_labels.jsonl"
STC3 = ROOT.parent / "shared" / "data" / "text" / "stc3_helpdesk_en.jsonl"
QUESTIONS = [
    "apologised",
    "offered_solution",
    "promised_follow_up",
    "showed_empathy",
    "customer_confirmed_solved",
]


def _timed(call_id: str, language: str, turns: list[tuple[str, str]]) -> Transcript:
    return Transcript(
        call_id=call_id,
        language=language,
        utterances=[
            Utterance(speaker=s, start=3.0 * i, end=3.0 * i + 2.5, text=t)
            for i, (s, t) in enumerate(turns)
        ],
    )


def load_cases(language: str | None, limit: int | None) -> list[tuple[dict, Transcript]]:
    """(label row, redacted transcript) of every labelled call, English and Chinese in turn."""
    stc3: dict[str, dict] = {}
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    if any("stc3" in r["source"] for r in rows):
        for line in STC3.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            if d["split"] in ("train", "dev"):  # the test split is held out
                stc3[d["id"]] = d
    out: list[tuple[dict, Transcript]] = []
    taken: Counter[str] = Counter()
    for row in rows:
        lang = row["language"]
        if language and lang != language or (limit and taken[lang] >= limit):
            continue
        src = row["source"]
        if "stc3" in src:
            d = stc3[src["stc3"]]
            turns = [("agent" if t["sender"] == "helpdesk" else "customer", t["text"]) for t in d["turns"]]  # fmt: skip
            t = _timed(row["id"], lang, turns)
        elif "transcript" in src:
            t = Transcript.model_validate_json((ROOT / src["transcript"]).read_text("utf-8"))
        else:
            t = _timed(row["id"], lang, [next(iter(turn.items())) for turn in src["turns"]])
        taken[lang] += 1
        out.append((row, redact(t, detect(t, lang), language=lang)))
    # alternate the languages, so a run cut short by --max-minutes still covers both
    by_lang = [[c for c in out if c[0]["language"] == lg] for lg in ("en", "zh")]
    mixed = [c for pair in zip_longest(*by_lang) for c in pair if c is not None]
    return mixed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="first N calls of each language")
    parser.add_argument("--language", choices=["en", "zh"])
    parser.add_argument("--threads", type=int, default=1, help="embedded: CPU threads")
    parser.add_argument("--out", type=Path, help="write every answer here (JSON lines)")
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="start no call after this many minutes; the figures cover the calls done",
    )
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("QA_LLM_BACKEND", "embedded")
    env.setdefault("QA_LLM_THREADS", str(args.threads))
    # quality is measured here, not the nightly limit: a loaded machine may take minutes
    env.setdefault("QA_LLM_CALL_SECONDS", "1800")
    env["QA_LLM_SUMMARY"] = "0"
    settings: LlmSettings = settings_from(env, LlmSettings)
    judge = Judge(settings)
    rubrics = {lang: load_rubric(DATA / f"llm_items_{lang}.yaml") for lang in ("en", "zh")}
    cases = load_cases(args.language, args.limit)
    print(f"backend {judge.config.backend} {judge.config.model} ({settings.llm_threads} thread(s))")
    print(f"{len(cases)} labelled calls: {dict(Counter(r['language'] for r, _ in cases))}")

    hits: dict[tuple[str, str], list[int]] = {}
    reviews: Counter[tuple[str, str]] = Counter()
    labels: dict[tuple[str, str], list[bool]] = {}
    seconds, prompt_tokens, completion_tokens, requests = 0.0, 0, 0, 0
    cpu0 = time.process_time()
    sink = args.out.open("w", encoding="utf-8") if args.out else None
    begun = time.perf_counter()
    done = 0
    for row, transcript in cases:
        if args.max_minutes and time.perf_counter() - begun > 60 * args.max_minutes:
            print(f"time budget spent: {done} of {len(cases)} calls done")
            break
        done += 1
        lang = row["language"]
        rubric = rubrics[lang]
        config = build_scoring_config(rubric, llm=judge.config)
        result = score_transcript(
            transcript, rubric, risk_fn=lambda t: None, config=config, judge=judge
        )
        asked = judge.last
        seconds += asked.seconds
        prompt_tokens += asked.prompt_tokens
        completion_tokens += asked.completion_tokens
        requests += asked.requests
        items = {i.id: i for i in result.items}
        line = []
        for q in QUESTIONS:
            label = bool(row["labels"][q])
            got = items[q].passed
            labels.setdefault((lang, q), []).append(label)
            hits.setdefault((lang, q), []).append(int(got is label))
            reviews[(lang, q)] += got is None
            line.append(
                f"{q[:8]}={'?' if got is None else 'YN'[not got]}{'' if got is label else '✗'}"
            )
        print(f"  {row['id']:<24} {asked.seconds:6.1f} s  " + " ".join(line), flush=True)
        if sink:
            sink.write(json.dumps({"id": row["id"], "error": asked.error, "items": {q: items[q].model_dump(mode="json", exclude_none=True) for q in QUESTIONS}}, ensure_ascii=False) + "\n")  # fmt: skip
    cpu = time.process_time() - cpu0

    print()
    print(f"{'language':<9}{'question':<27}{'n':>4}{'agree':>8}{'majority':>10}{'review':>8}")
    for lang in ("en", "zh", "all"):
        for q in QUESTIONS:
            keys = [(lg, q) for lg in ("en", "zh") if lang in (lg, "all")]
            h = [x for k in keys for x in hits.get(k, [])]
            lab = [x for k in keys for x in labels.get(k, [])]
            if not h:
                continue
            majority = max(lab.count(True), lab.count(False)) / len(lab)
            rev = sum(reviews[k] for k in keys)
            print(f"{lang:<9}{q:<27}{len(h):>4}{sum(h) / len(h):>8.2f}{majority:>10.2f}{rev:>8}")
        all_h = [x for (lg, _), v in hits.items() if lang in (lg, "all") for x in v]
        all_l = [x for (lg, _), v in labels.items() if lang in (lg, "all") for x in v]
        if all_h:
            maj = sum(
                max(v.count(True), v.count(False))
                for (lg, _), v in labels.items()
                if lang in (lg, "all")
            ) / len(all_l)
            print(f"{lang:<9}{'(all questions)':<27}{len(all_h):>4}{sum(all_h) / len(all_h):>8.2f}{maj:>10.2f}")  # fmt: skip
    print()
    n = done
    if requests:
        print(f"seconds per call: {seconds / requests:.1f} (wall, {requests} requests)")
        print(f"CPU seconds per call (this process): {cpu / requests:.1f}")
        print(f"tokens per call: {prompt_tokens / requests:.0f} prompt, {completion_tokens / requests:.0f} generated")  # fmt: skip
        print(f"tokens/s overall: {(prompt_tokens + completion_tokens) / seconds:.1f}")
    else:
        print(f"{n} calls, no request answered")


if __name__ == "__main__":
    main()
