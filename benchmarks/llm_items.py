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
import re
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


def _yes(rubric, item_id: str, choice: str | None) -> bool | None:
    """Whether the model's raw answer is the item's passing answer (None: no answer)."""
    if choice is None:
        return None
    check = next(i.check for _, i in rubric.items() if i.id == item_id)
    points = {c.answer: c.points for c in check.choices}
    return points[choice] > 0 if choice in points else None


_CHOICE = re.compile(r"→ '([^']*)'")


def record_from(row: dict, result, asked, rubric) -> dict:
    """One call's record: labels, verified verdicts, raw answers, what it cost."""
    items = {i.id: i for i in result.items}
    by_hash = {i.check.question_sha256(): i.id for _, i in rubric.items()}
    raw = {by_hash[h]: a.choice for h, a in asked.answers.items() if h in by_hash}
    return {
        "id": row["id"],
        "language": row["language"],
        "labels": row["labels"],
        "verdicts": {q: items[q].passed for q in QUESTIONS},
        "answers": {q: _yes(rubric, q, raw.get(q)) for q in QUESTIONS},
        "reasons": {q: items[q].reason for q in QUESTIONS},
        "seconds": asked.seconds,
        "prompt_tokens": asked.prompt_tokens,
        "completion_tokens": asked.completion_tokens,
        "requests": asked.requests,
        "error": asked.error,
    }


def read_records(path: Path, rubrics: dict) -> list[dict]:
    """Records saved by ``--out`` (older files kept items with reasons only: the raw answer
    is read from the reason, ``… → 'yes': …``)."""
    labels = {r["id"]: r for r in map(json.loads, LABELS.read_text(encoding="utf-8").splitlines())}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "items" in rec:  # the first format
            row = labels[rec["id"]]
            rubric = rubrics[row["language"]]
            answers = {}
            for q, item in rec["items"].items():
                m = _CHOICE.search(item.get("reason", ""))
                answers[q] = _yes(rubric, q, m.group(1)) if m else None
            rec = {
                "id": rec["id"],
                "language": row["language"],
                "labels": row["labels"],
                "verdicts": {q: rec["items"][q].get("passed") for q in QUESTIONS},
                "answers": answers,
                "error": rec.get("error"),
            }
        out.append(rec)
    return out


def report(records: list[dict]) -> None:
    """Agreement per question and language: of the verified verdict (a review counts as a
    disagreement) and of the model's raw answer, beside always answering the majority."""
    print()
    head = f"{'language':<9}{'question':<27}{'n':>4}{'verdict':>9}{'answer':>8}{'majority':>10}{'review':>8}"  # fmt: skip
    print(head)
    for lang in ("en", "zh", "all"):
        mine = [r for r in records if lang in (r["language"], "all")]
        if not mine:
            continue
        totals = [0, 0, 0, 0, 0]  # n, verdict hits, answer hits, majority hits, reviews
        for q in QUESTIONS:
            lab = [bool(r["labels"][q]) for r in mine]
            ver = [r["verdicts"][q] for r in mine]
            ans = [r["answers"][q] for r in mine]
            n = len(lab)
            v_hit = sum(v is x for v, x in zip(ver, lab, strict=True))
            a_hit = sum(a is x for a, x in zip(ans, lab, strict=True))
            maj = max(lab.count(True), lab.count(False))
            rev = sum(v is None for v in ver)
            for k, x in enumerate((n, v_hit, a_hit, maj, rev)):
                totals[k] += x
            print(f"{lang:<9}{q:<27}{n:>4}{v_hit / n:>9.2f}{a_hit / n:>8.2f}{maj / n:>10.2f}{rev:>8}")  # fmt: skip
        n, v_hit, a_hit, maj, rev = totals
        print(f"{lang:<9}{'(all questions)':<27}{n:>4}{v_hit / n:>9.2f}{a_hit / n:>8.2f}{maj / n:>10.2f}{rev:>8}")  # fmt: skip
    timed = [r for r in records if r.get("requests")]
    if timed:
        seconds = sum(r["seconds"] for r in timed)
        prompt = sum(r["prompt_tokens"] for r in timed)
        made = sum(r["completion_tokens"] for r in timed)
        print()
        print(f"seconds per call: {seconds / len(timed):.1f} (wall, {len(timed)} requests)")
        print(f"tokens per call: {prompt / len(timed):.0f} prompt, {made / len(timed):.0f} generated")  # fmt: skip
        print(f"tokens/s: {(prompt + made) / seconds:.1f} (prompt and generated, over wall time)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="first N calls of each language")
    parser.add_argument("--language", choices=["en", "zh"])
    parser.add_argument("--threads", type=int, default=1, help="embedded: CPU threads")
    parser.add_argument("--out", type=Path, help="write each call's record here (JSON lines)")
    parser.add_argument("--from", dest="saved", type=Path, help="report a saved --out file")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --out: keep the calls already in that file, ask only the others, report all",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="start no call after this many minutes; the figures cover the calls done",
    )
    args = parser.parse_args(argv)
    rubrics = {lang: load_rubric(DATA / f"llm_items_{lang}.yaml") for lang in ("en", "zh")}
    if args.saved:
        records = read_records(args.saved, rubrics)
        print(f"{len(records)} calls from {args.saved}")
        report(records)
        return

    env = dict(os.environ)
    env.setdefault("QA_LLM_BACKEND", "embedded")
    env.setdefault("QA_LLM_THREADS", str(args.threads))
    # quality is measured here, not the nightly limit: a loaded machine may take minutes
    env.setdefault("QA_LLM_CALL_SECONDS", "1800")
    env["QA_LLM_SUMMARY"] = "0"
    settings: LlmSettings = settings_from(env, LlmSettings)
    judge = Judge(settings)
    cases = load_cases(args.language, args.limit)
    records: list[dict] = []
    if args.resume and args.out and args.out.exists():
        records = read_records(args.out, rubrics)
        done = {r["id"] for r in records}
        cases = [(row, t) for row, t in cases if row["id"] not in done]
        print(f"resuming: {len(records)} calls kept from {args.out}")
    print(f"backend {judge.config.backend} {judge.config.model} ({settings.llm_threads} thread(s))")
    print(f"{len(cases)} labelled calls: {dict(Counter(r['language'] for r, _ in cases))}")
    sink = args.out.open("a" if args.resume else "w", encoding="utf-8") if args.out else None
    asked_before = len(records)
    cpu0, begun = time.process_time(), time.perf_counter()
    for row, transcript in cases:
        if args.max_minutes and time.perf_counter() - begun > 60 * args.max_minutes:
            print(f"time budget spent: {len(records) - asked_before} of {len(cases)} calls done")
            break
        rubric = rubrics[row["language"]]
        config = build_scoring_config(rubric, llm=judge.config)
        result = score_transcript(
            transcript, rubric, risk_fn=lambda t: None, config=config, judge=judge
        )
        rec = record_from(row, result, judge.last, rubric)
        records.append(rec)
        marks = []
        for q in QUESTIONS:
            got, label = rec["verdicts"][q], bool(row["labels"][q])
            marks.append(f"{q[:8]}={'?' if got is None else 'YN'[not got]}{'' if got is label else '✗'}")  # fmt: skip
        print(f"  {row['id']:<24} {rec['seconds']:6.1f} s  " + " ".join(marks), flush=True)
        if sink:
            sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
            sink.flush()
    report(records)
    if len(records) > asked_before:
        print(f"CPU seconds per call (this process): {(time.process_time() - cpu0) / (len(records) - asked_before):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
