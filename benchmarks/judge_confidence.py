"""The paraphrase judge's passes on stored Chinese calls, with how sure the ASR was of the
clause it passed (issue 27): for each verdict the judge moved, the clause's mean word
probability (the confidence rule's own measure) and whether a human reviewer agrees.

    python benchmarks/judge_confidence.py --split heldout6 heldout7 --db var/bench/h6.db var/bench/h7.db

Reads the stores `benchmarks/zh_calls.py --db` kept; scores nothing into them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import zh_calls  # noqa: E402


def judge_moves(split: str, db: Path) -> list[dict]:
    """The verdicts the judge moved in ``split``'s stored calls, with the ASR confidence of
    the clauses it moved them on."""
    from pipeline.scripts_check import check_items, load_rubric
    from pipeline.scripts_check.confidence import span_confidence
    from pipeline.store.store import open_store

    script = zh_calls.load_split(split)
    store = open_store(f"sqlite:///{db}")
    rows = []
    for call in script.calls:
        t = store.get_transcript(call.call_id)
        if t is None:
            continue
        rubric = load_rubric(script.rubric_of(call))
        rules = {i.id: i.passed for i in check_items(t, rubric, judge=False)}
        for item in check_items(t, rubric, judge=True):
            if rules[item.id] is item.passed:
                continue
            for e in (e for e in item.evidence if e.method == "judge"):
                rows.append(
                    {
                        "split": split,
                        "call": call.call_id,
                        "item": item.id,
                        "right": item.passed == call.expected.items[item.id],
                        "judged": item.passed,
                        "clause": e.span,
                        "similarity": e.similarity,
                        "mean_p": span_confidence(t, e),
                    }
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", nargs="+", required=True)
    ap.add_argument("--db", nargs="+", type=Path, required=True)
    args = ap.parse_args()
    rows = [r for s, d in zip(args.split, args.db, strict=True) for r in judge_moves(s, d)]
    print(
        f"{'split':9} {'call':30} {'item':24} {'right':5} {'got':5} {'sim':>6} {'mean_p':>6}  clause"
    )
    for r in sorted(rows, key=lambda r: (r["mean_p"] is None, r["mean_p"] or 0)):
        print(
            f"{r['split']:9} {r['call'][:30]:30} {r['item']:24} {str(r['right']):5} "
            f"{str(r['judged']):5} {r['similarity'] or 0:6.3f} {r['mean_p'] or 0:6.3f}  "
            f"{r['clause']}"
        )


if __name__ == "__main__":
    main()
