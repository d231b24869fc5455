"""Held-out Chinese calls in audio through ``callqa run``: item verdicts against a human
reviewer's, and personal numbers left in the store.

The sample calls (samples/calls_zh.yaml) are what the Chinese path was tuned on; this scores
calls written apart from them (benchmarks/data/zh_calls_SPLIT.yaml, same format, other
wording, agents and voices, with the verdicts a human reviewer gives from the form's item
titles and the ID / card / phone numbers said in each call). It renders the split once with
samples/make_samples.py (Kokoro-82M, stereo 8 kHz telephone band, recorder formats; cached
under var/bench/zh-calls/SPLIT/, needs the samples-zh extra and the kokoro-js voices, see
``make samples``), writes a manifest without a rubric column (queue credit_card /
after_sales: the routing table picks zh_bank_hotline / zh_ecommerce), runs
``callqa run ARCHIVE --db <fresh sqlite> --json`` with the default settings and reads the
store. Prints:

* item-verdict agreement (n/a counts as a verdict: the item must come out not applicable),
  per form item and overall, and auto-fail agreement per call;
* every disagreement: the verdict, the expected one, the engine's evidence and reason, and
  the call's heard transcript (each role's text as stored);
* personal numbers: for each ID / card / phone number said, whether its digits survive in a
  stored transcript or result (every text field a reviewer sees: utterances, words,
  dropped segments, evidence, reasons), read through pipeline.redact.digits (幺 / 一 / 零 /
  两 and digits alike): "whole" when the full number survives in one run of digits,
  "partial" when at least PARTIAL_DIGITS of it in a row do. The store's other documents
  (every table, every row) are searched the same way ("anywhere in the store").

    .venv/bin/python benchmarks/zh_calls.py [--split heldout1] [--rebuild] [--db FILE]
    .venv/bin/python benchmarks/zh_calls.py --text [--split heldout1 ...]

``--text`` scores the written lines instead (perfect ASR, no audio, seconds): each turn
timed at TEXT_CHARS_PER_S, the split's mean gap between turns, ``pause`` and ``music`` as
written (hold music leaves the agent silent), through ``check_items`` with the same forms.

``--db FILE`` keeps the store; an existing FILE is read again without a run.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT))

import make_samples as ms  # noqa: E402
from script_calls_en import render, render_cached, run_or_read, write_manifest  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
BENCH_DIR = ROOT / "var" / "bench" / "zh-calls"
SPLITS = sorted(p.stem.removeprefix("zh_calls_") for p in DATA.glob("zh_calls_*.yaml"))
TARGET = 0.95  # issue 27: item verdicts agree with a human reviewer's on >= 95 % of items
PARTIAL_DIGITS = 6  # this many digits of a personal number in a row, surviving, is a leak

Verdict = bool | str  # True / False / "n/a"


def split_path(split: str) -> Path:
    return DATA / f"zh_calls_{split}.yaml"


def load_split(split: str) -> ms.CallsFile:
    """The split's calls, validated: every call names a shipped form, its expected items are
    exactly that form's items, and its personal numbers are said in it (make_samples)."""
    path = split_path(split)
    script = ms.load_calls(path)
    for call in script.calls:
        form = [i.id for i in ms.load_rubric_items(script.rubric_of(call))]
        got = list(call.expected.items)
        if set(got) != set(form):
            raise ms.SampleError(
                f"{path}: {call.call_id}: expected items {sorted(set(got) ^ set(form))} "
                f"differ from the form {script.rubric_of(call)}"
            )
        if call.language != "zh" or call.expected.status != "scored":
            raise ms.SampleError(f"{path}: {call.call_id}: a scored Chinese call is expected")
    return script


def build_archive(split: str, out: Path, rebuild: bool = False, render_call=render):
    """Render the split into ``out`` (cached) and write its manifest (routing picks forms)."""
    script = load_split(split)
    render_cached(script, out, rebuild, render_call)
    write_manifest(script, out, rubric=None)
    return script


# --------------------------------------------------------------------------- verdicts


@dataclass
class Row:
    call_id: str
    rubric: str
    item: str
    expected: Verdict
    got: Verdict | None  # None: the item is missing from the result
    reason: str
    evidence: str

    @property
    def agrees(self) -> bool:
        return self.got == self.expected


def _verdict(item) -> Verdict:
    return item.passed if item.applicable else "n/a"


def _evidence(item) -> str:
    parts = []
    for e in item.evidence:
        where = f"[{e.speaker or '?'} {e.start:.1f}s] " if e.start is not None else ""
        what = f"{e.text!r}" if e.text else ""
        if e.matched:
            what += f" ~ {e.matched!r} {e.similarity}"
        if e.reason:
            what += f" ({e.reason})"
        parts.append(where + what.strip())
    return "; ".join(parts)


def heard(transcript) -> list[str]:
    """The stored transcript, one line per utterance: time, role, text."""
    return [f"{u.start:6.1f} {u.speaker:8} {u.text}" for u in transcript.utterances]


# --------------------------------------------------------------------------- numbers


def digit_runs(text: str) -> list[str]:
    """The runs of digits in ``text`` (spoken numerals read as digits, short separators
    joined), as the redactor reads them."""
    from pipeline.redact.digits import normalize

    return ["".join(g.digits for g in run) for run in normalize(text).runs]


def longest_common_run(number: str, runs: list[str]) -> int:
    """Length of the longest stretch of ``number`` found in one of ``runs``."""
    best = 0
    for run in runs:
        for i in range(len(number)):
            for j in range(len(number), i + best, -1):
                if number[i:j] in run:
                    best = j - i
                    break
    return best


_HASH = re.compile(r"[0-9a-f]{32,}")


def texts_of(document) -> Iterator[str]:
    """Every string in a JSON-like document; a list of word dicts also as its joined text
    (a number may be split over word entries)."""
    if isinstance(document, str):
        if not _HASH.fullmatch(document):  # a sha256 / group key: hex, no one said it
            yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from texts_of(value)
    elif isinstance(document, list):
        words = [d.get("word") for d in document if isinstance(d, dict)]
        if words and all(isinstance(w, str) for w in words):
            yield "".join(words)
        for value in document:
            yield from texts_of(value)


@dataclass
class Leak:
    call_id: str
    number: str  # digits
    scope: str  # reviewer | store
    found: int  # longest run of its digits that survives
    where: str

    @property
    def kind(self) -> str:
        if self.found >= len(self.number):
            return "whole"
        return "partial" if self.found >= PARTIAL_DIGITS else "none"


def number_leaks(call_id: str, numbers: list[str], documents: dict[str, object]) -> list[Leak]:
    """For each personal number, the longest stretch of it surviving in ``documents``."""
    runs: list[tuple[str, str]] = []  # (where, run)
    for where, document in documents.items():
        for text in texts_of(document):
            runs.extend((where, r) for r in digit_runs(text) if len(r) >= 2)
    out = []
    for number in numbers:
        best, at = 0, ""
        for where, run in runs:
            n = longest_common_run(number, [run])
            if n > best:
                best, at = n, f"{where}: …{run}…"
        out.append(Leak(call_id, number, "", best, at))
    return out


def store_documents(db: Path) -> dict[str, object]:
    """Every text value of every row of the store (JSON parsed), by table: what the store
    keeps, whoever reads it."""
    out: dict[str, object] = {}
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            values = []
            for row in con.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = value.decode("utf-8")
                        except UnicodeDecodeError:
                            continue
                    if isinstance(value, str):
                        try:
                            values.append(json.loads(value))
                        except ValueError:
                            values.append(value)
            out[table] = values
    finally:
        con.close()
    return out


# --------------------------------------------------------------------------- run


def read(db: Path, script: ms.CallsFile):
    """(rows, auto-fail pairs, leaks, heard text per call, routed forms) from the store."""
    from pipeline.redact.digits import normalize
    from pipeline.store.store import open_store

    store = open_store(f"sqlite:///{db}")
    rows: list[Row] = []
    auto: dict[str, tuple[bool, bool | None]] = {}
    leaks: list[Leak] = []
    heard_text: dict[str, list[str]] = {}
    routed: dict[str, str | None] = {}
    everything = store_documents(db)
    for call in script.calls:
        rubric = script.rubric_of(call)
        result = store.get_result(call.call_id)
        transcript = store.get_transcript(call.call_id)
        by_id = {i.id: i for i in result.items} if result else {}
        routed[call.call_id] = result.rubric.id if result else None
        auto[call.call_id] = (bool(call.expected.auto_fail), result.auto_fail if result else None)
        for item_id, want in call.expected.items.items():
            item = by_id.get(item_id)
            rows.append(
                Row(
                    call.call_id, rubric, item_id, want,
                    _verdict(item) if item else None,
                    (item.reason or "") if item else "(no result)",
                    _evidence(item) if item else "",
                )
            )  # fmt: skip
        heard_text[call.call_id] = heard(transcript) if transcript else ["(no transcript)"]
        numbers = [normalize(n).text for n in call.personal_numbers]
        seen = {
            "transcript": transcript.model_dump(mode="json") if transcript else {},
            "result": result.model_dump(mode="json") if result else {},
        }
        for leak in number_leaks(call.call_id, numbers, seen):
            leak.scope = "reviewer"
            leaks.append(leak)
        for leak in number_leaks(call.call_id, numbers, everything):
            leak.scope = "store"
            leaks.append(leak)
    return rows, auto, leaks, heard_text, routed


# --------------------------------------------------------------------------- text mode

TEXT_CHARS_PER_S = 4.0  # 240 characters a minute: inside the forms' speech-rate band


def text_transcript(call: ms.Call, script: ms.CallsFile):
    """The call's written lines as a transcript (perfect ASR): turns one after another."""
    from pipeline.schema import Transcript, Utterance

    gap = sum(script.gap) / 2
    t, utts = 0.0, []
    for turn in call.turns:
        if turn.music is not None:
            t += gap + turn.music
            continue
        start = max(0.0, t + (gap if turn.pause is None else turn.pause))
        end = start + max(0.5, len(turn.text) / TEXT_CHARS_PER_S)
        utts.append(Utterance(speaker=turn.speaker, start=start, end=end, text=turn.text))
        t = max(t, end)
    return Transcript(call_id=call.call_id, language="zh", utterances=utts)


def score_text(split: str, judge: bool = True) -> tuple[list[Row], dict, dict, ms.CallsFile]:
    """Rows for the split's written lines, scored by ``check_items`` with its forms
    (``judge``: False, the rules alone)."""
    from pipeline.config import RUBRICS_DIR
    from pipeline.scripts_check import check_items, load_rubric

    script = load_split(split)
    rows: list[Row] = []
    heard_text: dict[str, list[str]] = {}
    auto: dict[str, tuple[bool, bool | None]] = {}
    rubrics: dict[str, object] = {}
    for call in script.calls:
        rid = script.rubric_of(call)
        rubric = rubrics.setdefault(rid, load_rubric(RUBRICS_DIR / f"{rid}.yaml"))
        transcript = text_transcript(call, script)
        by_id = {i.id: i for i in check_items(transcript, rubric, judge=judge)}
        critical = {i.id for i in ms.load_rubric_items(rid) if i.critical}
        auto[call.call_id] = (
            bool(call.expected.auto_fail),
            any(by_id[i].passed is False for i in critical),
        )
        for item_id, want in call.expected.items.items():
            item = by_id[item_id]
            rows.append(
                Row(call.call_id, rid, item_id, want, _verdict(item), item.reason or "",
                    _evidence(item))
            )  # fmt: skip
        heard_text[call.call_id] = heard(transcript)
    return rows, auto, heard_text, script


def report_text(splits: list[str], verbose: bool = True) -> None:
    """Text-mode agreement per split, rules alone and with the paraphrase judge (and the
    disagreements left), then over all of them."""
    every: list[Row] = []
    for split in splits:
        rules, *_ = score_text(split, judge=False)
        rows, auto, heard_text, script = score_text(split)
        every += rows
        flips = [(a, b) for a, b in zip(rules, rows, strict=True) if a.got != b.got]
        right = sum(b.agrees for _, b in flips)
        print(
            f"== {split} (written lines): rules alone {share(rules)}; with the judge "
            f"{share(rows)} ({len(flips)} verdicts moved: {right} right, {len(flips) - right} wrong)"
        )
        for r in (r for r in rows if not r.agrees and verbose):
            print(f"   {r.call_id} {r.item}: got {r.got}, want {r.expected}")
            print(f"      reason:   {r.reason[:300]}")
            if r.evidence:
                print(f"      evidence: {r.evidence[:300]}")
    if len(splits) > 1:
        print(f"all {len(splits)} splits (written lines), with the judge: {share(every)}")


def judge_grid(splits: list[str]) -> None:
    """The judge's threshold and margin over a grid: on the items the rules failed in the
    written lines, how many it would pass rightly (the reviewer says passed) and wrongly."""
    import numpy as np

    from pipeline.scripts_check.operators import Within, select
    from pipeline.scripts_check.semantic import judge_item, judge_scores, judge_settings

    settings = judge_settings()
    cases: list[tuple[bool, np.ndarray, np.ndarray, str]] = []  # (want pass, best_p, best_n)
    cache: dict = {}
    for split in splits:
        rules, *_ = score_text(split, judge=False)
        script = load_split(split)
        calls = {c.call_id: c for c in script.calls}
        for r in rules:
            ex = judge_item(r.rubric, r.item, "zh")
            if ex is None or r.got is not False:
                continue
            t = text_transcript(calls[r.call_id], script)
            within = Within(**ex.within) if ex.within else None
            cands, sp, sn = judge_scores(ex, select(t, "agent", within), settings.model, cache)
            if cands:
                cases.append((r.expected is True, sp.max(axis=1), sn.max(axis=1), f"{split} {r.call_id} {r.item}"))  # fmt: skip
    want = sum(c[0] for c in cases)
    print(f"items the rules failed that the judge rules on: {len(cases)} ({want} passed by the reviewer)")  # fmt: skip
    print(f"{'min_sim':>7} {'margin':>6} {'right':>5} {'wrong':>5}")
    for thr in (0.86, 0.88, 0.89, 0.9, 0.91, 0.92, 0.93):
        for margin in (0.0, 0.02, 0.03, 0.04, 0.05, 0.06):
            right = wrong = 0
            for ok, bp, bn, _ in cases:
                if ((bp >= thr) & (bp - bn >= margin)).any():
                    right, wrong = right + ok, wrong + (not ok)
            print(f"{thr:7.2f} {margin:6.2f} {right:5d} {wrong:5d}")
    print("per item (reviewer's verdict, best margin among clauses at the configured threshold):")
    for ok, bp, bn, name in cases:
        m = np.where(bp >= settings.min_similarity, bp - bn, -1).max()
        print(f"  {'pass' if ok else 'fail'} {m:+.3f} {name}")


def share(rows: list[Row]) -> str:
    right = sum(r.agrees for r in rows)
    return f"{right}/{len(rows)} = {right / len(rows):.1%}" if rows else "-"


def report(rows, auto, leaks, heard_text, routed, script: ms.CallsFile) -> bool:
    print(f"item-verdict agreement: {share(rows)}  (target >= {TARGET:.0%})")
    by_item: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by_item[r.rubric, r.item].append(r)
    print(f"{'form':16} {'item':26} agreement")
    for (rubric, item), sel in by_item.items():
        print(f"{rubric:16} {item:26} {share(sel)}")
    for rubric in sorted({r.rubric for r in rows}):
        print(f"form {rubric}: {share([r for r in rows if r.rubric == rubric])}")
    auto_right = sum(want == got for want, got in auto.values())
    print(f"auto-fail agreement: {auto_right}/{len(auto)}")
    misrouted = {c: f for c, f in routed.items() if f != script.rubric_of(_call(script, c))}
    print(f"calls scored by another form than expected: {misrouted or 'none'}")
    wrong = [r for r in rows if not r.agrees]
    print(f"disagreements: {len(wrong)}")
    for call_id in dict.fromkeys(r.call_id for r in wrong):
        print(f"== {call_id}: {_call(script, call_id).description}")
        for r in (r for r in wrong if r.call_id == call_id):
            print(f"   {r.item}: got {r.got}, want {r.expected}")
            print(f"      reason:   {r.reason}")
            if r.evidence:
                print(f"      evidence: {r.evidence}")
        print("   heard:")
        for line in heard_text[call_id]:
            print(f"      {line}")
    said = [lk for lk in leaks if lk.scope == "reviewer"]
    print(f"personal numbers said: {len(said)}")
    for scope, label in (("reviewer", "in a stored transcript or result"), ("store", "anywhere in the store")):  # fmt: skip
        sel = [lk for lk in leaks if lk.scope == scope]
        whole = [lk for lk in sel if lk.kind == "whole"]
        part = [lk for lk in sel if lk.kind == "partial"]
        print(f"  surviving {label}: {len(whole)} whole, {len(part)} partial (>= {PARTIAL_DIGITS} digits in a row)")  # fmt: skip
        for lk in whole + part:
            print(f"    {lk.kind:7} {lk.call_id} {lk.number}: {lk.found} digits at {lk.where}")
    for lk in said:
        print(f"  {lk.call_id} {lk.number}: longest surviving stretch {lk.found} digits")
    ok = sum(r.agrees for r in rows) >= TARGET * len(rows)
    return ok and not any(lk.kind != "none" for lk in leaks)


def _call(script: ms.CallsFile, call_id: str) -> ms.Call:
    return next(c for c in script.calls if c.call_id == call_id)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="heldout1", choices=SPLITS, nargs="+")
    ap.add_argument("--text", action="store_true", help="score the written lines (no audio)")
    ap.add_argument("--quiet", action="store_true", help="--text: figures only")
    ap.add_argument("--judge-grid", action="store_true", help="--text: the judge's grid")
    ap.add_argument("--archive", type=Path, help="where the calls go (default: var/bench/...)")
    ap.add_argument("--rebuild", action="store_true", help="render the calls again")
    ap.add_argument("--db", type=Path, help="SQLite file: kept; one that exists is read again")
    args = ap.parse_args(argv)
    if args.text and args.judge_grid:
        judge_grid(args.split if isinstance(args.split, list) else [args.split])
        return 0
    if args.text:
        report_text(args.split if isinstance(args.split, list) else [args.split], not args.quiet)
        return 0
    args.split = args.split[0] if isinstance(args.split, list) else args.split
    archive = args.archive or BENCH_DIR / args.split
    t0 = time.perf_counter()
    script = build_archive(args.split, archive, args.rebuild)
    print(
        f"{len(script.calls)} calls of {split_path(args.split).name} in {archive} "
        f"({time.perf_counter() - t0:.1f} s to build)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "store.db"
        run_or_read(archive, db)
        ok = report(*read(db, script), script)
    print(f"targets (agreement >= {TARGET:.0%}, no personal number left): {'met' if ok else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
