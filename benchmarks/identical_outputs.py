"""Dump what a store holds of each call (transcripts, results, items, failures) as canonical
JSON, so the stores of two runs can be diffed byte for byte.

Left out is only what differs between two runs of the same code: row ids, run ids,
timestamps, and the seconds each stage took (``produced_by.stage_seconds``). Everything the
pipeline decided is kept: the documents as stored, their sha256, fingerprints, verdicts,
evidence, failure reasons.

    python benchmarks/identical_outputs.py sqlite:////tmp/a.db > /tmp/a.json
    python benchmarks/identical_outputs.py sqlite:////tmp/a.db --against sqlite:////tmp/b.db

The pair form prints ``identical`` (exit 0) or a unified diff of the two dumps (exit 1).
Used for the refactor's "byte-identical outputs" check: run ``callqa run samples/archive``
in pinned mode (``QA_CPU_ISA=pinned``) before and after, then compare the two stores.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import models as m  # noqa: E402

# Keys whose values change from run to run of the same code (clock readings).
VOLATILE_KEYS = frozenset({"stage_seconds", "created_at", "updated_at"})


def _stable(value: Any) -> Any:
    """``value`` without the volatile keys, at any depth."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _columns(row: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for col in row.__table__.columns:
        if col.name in skip or col.name.endswith("_at") or col.name == "id":
            continue
        out[col.name] = _stable(getattr(row, col.name))
    return out


IDS = ("call_pk", "transcript_id", "result_id", "run_id", "last_run_id", "current_result_id")


def dump(url: str) -> str:
    """Canonical JSON of every call in the store at ``url`` (sorted by call id)."""
    engine = create_engine(url)
    calls: dict[str, Any] = {}
    with Session(engine) as s:
        for call in s.scalars(select(m.Call).order_by(m.Call.call_id)):
            transcripts = s.scalars(
                select(m.Transcript)
                .where(m.Transcript.call_pk == call.id)
                .order_by(m.Transcript.id)
            ).all()
            results = s.scalars(
                select(m.Result).where(m.Result.call_pk == call.id).order_by(m.Result.id)
            ).all()
            failures = s.scalars(
                select(m.Failure).where(m.Failure.call_pk == call.id).order_by(m.Failure.id)
            ).all()
            calls[call.call_id] = {
                "call": _columns(call, IDS),
                "transcripts": [
                    {
                        **_columns(t, IDS),
                        "utterances": [
                            _columns(u, IDS)
                            for u in s.scalars(
                                select(m.Utterance)
                                .where(m.Utterance.transcript_id == t.id)
                                .order_by(m.Utterance.idx)
                            )
                        ],
                    }
                    for t in transcripts
                ],
                "results": [
                    {
                        **_columns(r, IDS),
                        "current": r.id == call.current_result_id,
                        "items": [
                            _columns(i, IDS)
                            for i in s.scalars(
                                select(m.ItemResult)
                                .where(m.ItemResult.result_id == r.id)
                                .order_by(m.ItemResult.position)
                            )
                        ],
                    }
                    for r in results
                ],
                "failures": [_columns(f, IDS) for f in failures],
            }
    engine.dispose()
    return json.dumps(calls, sort_keys=True, ensure_ascii=False, indent=1, default=str) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="store URL (sqlite:////path.db)")
    parser.add_argument("--against", help="a second store: print the diff of the two dumps")
    args = parser.parse_args()
    first = dump(args.url)
    if not args.against:
        sys.stdout.write(first)
        return 0
    second = dump(args.against)
    if first == second:
        print(f"identical: {first.count(chr(10))} lines, {len(json.loads(first))} calls")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            first.splitlines(keepends=True),
            second.splitlines(keepends=True),
            args.url,
            args.against,
        )
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
