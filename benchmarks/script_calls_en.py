"""English script checks end to end: agent lines in their own words, spoken, through tiny.en
and ``callqa run``.

Builds (once, fixed seed, cached under var/bench/script-calls-en/SPLIT/) an archive of stereo
8 kHz English calls with samples/make_samples.py (espeak-ng voices, telephone band, recorder
formats; ``--tts kokoro``: Kokoro-82M's natural US and UK voices, women's and men's, cached
under var/bench/script-calls-en-kokoro/SPLIT/, needs the samples-en extra and the kokoro-js
voices, see ``make samples``) from the lines of one split of benchmarks/data/en_script_lines_*.yaml (default
``heldout8``; lines written as mis-heard, "asr: ...", are skipped: the audio makes its own ASR
errors). Every call has the agent say one line for each required item of rubrics/en_telecom
(greeting first, identity check, anything-else question, farewell last) with customer turns
between:

  compliant   every item said with a ``said`` line; each ``said`` line of the split once
  near-miss   one or two items said with a ``not_said`` line of that item (the rest with
              ``said`` lines); each ``not_said`` line of the split once

Then runs ``callqa run ARCHIVE --db <fresh sqlite> --json`` (tiny.en, default settings) and
reads each call's item verdicts from the store. Prints, per required item and overall, the
share of compliant verdicts that pass and of near-miss verdicts that fail (targets: 98 %),
by call kind and agent voice, the calls, and the seconds. ``--show`` prints every wrong
verdict with the line as written, the agent text tiny.en heard for it, the evidence, and a
first triage of its cause: the turn not heard; the engine wrong on the written line too
(matcher); the key ([bracketed]) words not heard (asr); otherwise "read it": whether a
reviewer reading the heard text would agree with the verdict is a person's call.

    .venv/bin/python benchmarks/script_calls_en.py [--split heldout8] [--tts kokoro] [--show]
        [--rebuild] [--db FILE]   # keep the store; an existing FILE is read again without the run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "samples"))

import make_samples as ms  # noqa: E402
from script_adherence import LINES, line_verdicts, load_lines  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench" / "script-calls-en"
RUBRIC = LINES["en"][0]
BENCH_SPLITS = sorted(Path(str(LINES["en"][1])).parent.glob("en_script_lines_*.yaml"))
ITEMS = ("greeting", "identity_check", "anything_else", "farewell")
MIN_SHARE = 0.98
SEED = 29

# Agent voices (espeak-ng); the first is the sample calls' agent voice.
AGENT_VOICES = {
    "A101": ("en-gb-x-rp+f2", 140, 50),
    "A301": ("en-us+m3", 150, 40),
    "A302": ("en-gb+f4", 145, 55),
}
# Agent voices of --tts kokoro (kokoro-js names: a US, b UK English; f woman, m man) and their
# speed factors; the customer's voice.
KOKORO_AGENT_VOICES = {
    "A401": ("af_heart", 1.0),
    "A402": ("am_michael", 1.0),
    "A403": ("bf_emma", 1.0),
    "A404": ("bm_george", 1.0),
    "A405": ("af_bella", 1.05),
    "A406": ("am_fenrir", 0.95),
}
KOKORO_CUSTOMER = ("af_sarah", 1.0)
TTS = ("espeak-ng", "kokoro")
# Customer turns (own text, none of them a rubric phrase).
REASONS = [
    "Hi, my bill this month is much higher than normal.",
    "Hello, my broadband keeps dropping out in the evenings.",
    "Hi, I want to add my daughter to my mobile plan.",
    "Hello there, I'm moving house next month and need to move my line.",
    "Hi, my phone says no service since this morning.",
    "Yes hello, I was charged twice for my top up.",
    "Hi, I'd like to know when my contract ends.",
    "Hello, the router lights are all flashing orange.",
    "Hi, I never got the new SIM card you posted.",
    "Hello, I'd like to cancel the sports add on.",
]
ANSWERS = [
    "Sure, it's the fourth of March, nineteen eighty two.",
    "Yes, it's four four seven two, nine one eight three.",
    "Okay, one second, I have it here.",
    "Right, it's the twelfth of June, nineteen ninety.",
    "Yes, it's six one zero five, two two eight.",
    "Okay.",
    "Fine, go ahead.",
]
FIXES = [
    "I've added a credit to your next bill, so it will be back to normal.",
    "I've reset the line from our side, it should be stable within the hour.",
    "Your new SIM is on its way and should arrive in two working days.",
    "That's done, the change shows on your plan from tomorrow.",
    "I've booked an engineer for Thursday morning between eight and twelve.",
    "The refund is on its way and takes three to five days.",
    "Your contract runs until the end of August next year.",
    "I've removed the add on, you won't be charged for it again.",
]
REACTIONS = [
    "Oh great, that's really helpful.",
    "Okay, brilliant.",
    "Perfect, thank you.",
    "Right, that makes sense.",
    "Lovely, that's a relief.",
]
CLOSERS = [
    "No, that's everything, thanks.",
    "No, that's all for today.",
    "Nope, you've sorted it.",
    "No thanks, that's it.",
]


@dataclass
class Planned:
    """One call of the benchmark: its script entry and, per required item, the agent's line
    and whether the item must pass."""

    call: ms.Call
    kind: str  # compliant | near-miss
    lines: dict[str, tuple[str, bool]] = field(default_factory=dict)


def split_lines(split: str) -> dict[str, dict[bool, list[str]]]:
    """item -> {compliant: [lines written as spoken]}; "asr:" lines left out."""
    out: dict[str, dict[bool, list[str]]] = {i: {True: [], False: []} for i in ITEMS}
    for item, line, compliant, asr in load_lines("en", split):
        if not asr and item in out:
            out[item][compliant].append(line)
    return out


def near_miss_plan(counts: dict[str, int]) -> list[list[str]]:
    """Items said as near misses, per call: pairs of items in turn until each item's
    near-miss lines are used up, then single items for what is left."""
    left = dict(counts)
    pairs = [(a, b) for k, a in enumerate(ITEMS) for b in ITEMS[k + 1 :]]
    plan: list[list[str]] = []
    while any(left.values()):
        progressed = False
        for a, b in pairs:
            if left[a] and left[b]:
                plan.append([a, b])
                left[a] -= 1
                left[b] -= 1
                progressed = True
        if not progressed:
            for item in ITEMS:
                while left[item]:
                    plan.append([item])
                    left[item] -= 1
    return plan


def agent_voices(tts: str) -> dict[str, str]:
    """agent id -> the voice that speaks their lines, with ``tts``."""
    table = KOKORO_AGENT_VOICES if tts == "kokoro" else AGENT_VOICES
    return {agent_id: spec[0] for agent_id, spec in table.items()}


def build_calls(
    split: str, seed: int = SEED, tts: str = "espeak-ng"
) -> tuple[ms.CallsFile, list[Planned]]:
    """The benchmark's calls, as a samples script (voices, lexicon, agents of the sample
    calls plus two agent voices; with ``tts="kokoro"`` six Kokoro agent voices and a Kokoro
    customer) and the plan of each call."""
    base = ms.load_calls()
    if tts == "kokoro":
        customer, speed = KOKORO_CUSTOMER
        voices = {"customer": ms.Voice(engine="kokoro", voice=customer, speed=speed)}
        agents = {}
        for agent_id, (voice, speed) in KOKORO_AGENT_VOICES.items():
            name = f"agent_{agent_id}"
            voices[name] = ms.Voice(engine="kokoro", voice=voice, speed=speed)
            agents[agent_id] = ms.Agent(name=f"Agent {agent_id}", team="Care", voice=name)
        voices["agent"] = voices[f"agent_{next(iter(KOKORO_AGENT_VOICES))}"]
    elif tts == "espeak-ng":
        voices = dict(base.voices)
        agents = dict(base.agents)
        for agent_id, (voice, speed, pitch) in AGENT_VOICES.items():
            name = f"agent_{agent_id}"
            voices[name] = ms.Voice(voice=voice, speed=speed, pitch=pitch)
            agents[agent_id] = ms.Agent(name=f"Agent {agent_id}", team="Care", voice=name)
    else:
        raise ValueError(f"tts {tts!r}: one of {', '.join(TTS)}")
    lines = split_lines(split)
    rng = random.Random(seed)
    n_said = max(len(lines[i][True]) for i in ITEMS)
    plans: list[tuple[str, dict[str, tuple[str, bool]]]] = []
    for k in range(n_said):  # compliant: the k-th said line of every item
        said = lines_for(lines, k)
        plans.append(("compliant", {i: (said[i], True) for i in ITEMS}))
    used = {i: 0 for i in ITEMS}
    counts = {i: len(lines[i][False]) for i in ITEMS}
    for k, missed in enumerate(near_miss_plan(counts)):
        said = lines_for(lines, k + 5)  # other said lines than the compliant call k's
        chosen = {i: (said[i], True) for i in ITEMS}
        for item in missed:
            chosen[item] = (lines[item][False][used[item]], False)
            used[item] += 1
        plans.append(("near-miss", chosen))
    formats = list(ms.FORMATS)
    agent_ids = list(agent_voices(tts))
    calls, planned = [], []
    for n, (kind, chosen) in enumerate(plans):
        fmt = formats[n % len(formats)]
        call_id = f"{'c' if kind == 'compliant' else 'n'}{n:03d}-{split}"
        turns = [
            ("agent", chosen["greeting"][0]),
            ("customer", rng.choice(REASONS)),
            ("agent", chosen["identity_check"][0]),
            ("customer", rng.choice(ANSWERS)),
            ("agent", rng.choice(FIXES)),
            ("customer", rng.choice(REACTIONS)),
            ("agent", chosen["anything_else"][0]),
            ("customer", rng.choice(CLOSERS)),
            ("agent", chosen["farewell"][0]),
        ]
        call = ms.Call(
            call_id=call_id,
            file=f"{call_id}{ms.FORMATS[fmt][0]}",
            format=fmt,
            agent_id=agent_ids[n % len(agent_ids)],
            started_at=f"{base.day}T{9 + n // 60:02d}:{n % 60:02d}:00+00:00",
            agent_channel=n % 2,
            seed=seed * 1000 + n,
            description=f"{kind} script call",
            expected=ms.Expected(
                status="scored", auto_fail=False, items={i: c for i, (_, c) in chosen.items()}
            ),
            turns=[ms.Turn(speaker=s, text=t) for s, t in turns],
        )
        calls.append(call)
        planned.append(Planned(call, kind, chosen))
    script = base.model_copy(
        update={"voices": voices, "agents": agents, "calls": calls, "broken": []}
    )
    return script, planned


def lines_for(lines: dict[str, dict[bool, list[str]]], k: int) -> dict[str, str]:
    return {i: lines[i][True][k % len(lines[i][True])] for i in ITEMS}


def write_manifest(script: ms.CallsFile, out: Path, rubric: str | None = RUBRIC) -> None:
    """manifest.csv with the archive reader's columns; every call scored with ``rubric``
    (None: no rubric column, the routing table picks each call's form)."""
    from pipeline.archive import MANIFEST_COLUMNS

    rows = [{**row, "rubric": rubric or ""} for row in ms.manifest_rows(script)]
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n", restval="", extrasaction="raise"
        )
        writer.writeheader()
        writer.writerows(rows)


def render(call: ms.Call, script: ms.CallsFile, out: Path) -> None:
    """One call spoken, on the telephone band, in its recorder format."""
    pcm = ms.render_call(call, script)
    ms.encode(pcm, call.format, out / call.file)
    print(f"  rendered {call.file} ({len(pcm) / ms.SAMPLE_RATE:.1f} s)", flush=True)


def build_archive(
    split: str,
    out: Path,
    rebuild: bool = False,
    render_call: Callable[[ms.Call, ms.CallsFile, Path], None] = render,
    tts: str = "espeak-ng",
) -> list[Planned]:
    """Render the calls into ``out`` (skipped when the cached spec matches) and the manifest;
    a folder rendered again is emptied first, so it holds only this split's calls."""
    script, planned = build_calls(split, tts=tts)
    render_cached(script, out, rebuild, render_call)
    write_manifest(script, out)
    return planned


def render_cached(
    script: ms.CallsFile,
    out: Path,
    rebuild: bool = False,
    render_call: Callable[[ms.Call, ms.CallsFile, Path], None] = render,
) -> None:
    """Render every call of ``script`` into ``out``, unless the spec cached beside the folder
    (the calls, voices, lexicon and gaps) matches and every file is there; a folder rendered
    again is emptied first."""
    spec = json.dumps(
        [c.model_dump(mode="json") for c in script.calls]
        + [script.model_dump(mode="json", include={"voices", "lexicon", "gap"})],
        sort_keys=True,
    )
    spec_file = out.with_name(f"{out.name}.calls.json")  # beside: a .json in it is a call
    cached = (
        not rebuild
        and spec_file.is_file()
        and spec_file.read_text(encoding="utf-8") == spec
        and all((out / c.file).is_file() for c in script.calls)
    )
    if not cached:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for call in script.calls:
            render_call(call, script, out)
        spec_file.write_text(spec, encoding="utf-8")


def run_or_read(archive: Path, db: Path) -> None:
    """Score ``archive`` into the store ``db`` with ``callqa run``, unless ``db`` exists (a
    kept store is read again); print which, and the run's seconds and summary."""
    if db.exists():
        print(f"verdicts read from {db} (not run again)")
        return
    summary, wall, cpu = run_pipeline(archive, db)
    counts = {k: v for k, v in summary.items() if isinstance(v, int | float | str)}
    print(f"callqa run: {wall:.1f} s wall, {cpu:.1f} s CPU; summary {counts}")


def run_pipeline(archive: Path, db: Path) -> tuple[dict, float, float]:
    """``callqa run`` in a subprocess: (its JSON summary, wall seconds, CPU seconds)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cmd = [str(Path(sys.executable).parent / "callqa"), "run", str(archive)]
    cmd += ["--db", f"sqlite:///{db}", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"callqa run exited {proc.returncode}")
    return json.loads(proc.stdout), wall, cpu


NOT_HEARD = "(no agent utterance close to it: the turn was not heard)"
HEARD_MIN_RATIO = 50.0  # below: the closest utterance is another turn


def heard_for(line: str, agent_texts: list[str]) -> str:
    """The agent text (one utterance or two in a row) closest to the written line, or
    NOT_HEARD when none comes near."""
    from rapidfuzz import fuzz

    spans = agent_texts + [f"{a} {b}" for a, b in pairwise(agent_texts)]
    scored = [(fuzz.ratio(ms.normalise(line), ms.normalise(s)), s) for s in spans]
    ratio, best = max(scored, default=(0.0, ""))
    return best if ratio >= HEARD_MIN_RATIO else NOT_HEARD


@dataclass
class Verdict:
    call_id: str
    kind: str
    item: str
    voice: str
    line: str
    expected: bool
    passed: bool | None
    heard: str
    agent_heard: str  # every agent utterance of the call
    evidence: str

    @property
    def right(self) -> bool:
        return self.passed is self.expected


def read_verdicts(db: Path, planned: list[Planned], tts: str = "espeak-ng") -> list[Verdict]:
    from pipeline.store.store import open_store

    voices = agent_voices(tts)
    store = open_store(f"sqlite:///{db}")
    out = []
    for p in planned:
        result = store.get_result(p.call.call_id)
        transcript = store.get_transcript(p.call.call_id)
        if result is None or transcript is None:
            raise SystemExit(f"{p.call.call_id}: no result in the store")
        agent = [u.text for _, u in transcript.role_utterances("agent")]
        voice = voices[p.call.agent_id]
        by_id = {r.id: r for r in result.items}
        for item in ITEMS:
            line, expected = p.lines[item]
            r = by_id[item]
            ev = "; ".join(
                f"{e.text!r} ~ {e.matched!r} {e.similarity}" if e.matched else (e.reason or "")
                for e in r.evidence
            )
            out.append(
                Verdict(
                    p.call.call_id, p.kind, item, voice, line, expected, r.passed,
                    heard_for(line, agent), " | ".join(agent),
                    ev or (r.reason or ""),
                )
            )  # fmt: skip
    return out


def share(sel: list[Verdict]) -> str:
    right = sum(v.right for v in sel)
    return f"{right / len(sel):7.1%} ({right}/{len(sel)})" if sel else "      -"


def report(verdicts: list[Verdict], show: bool) -> None:
    print(f"{'item':<16} {'compliant pass':>20} {'near miss fail':>20}")
    for item in (*ITEMS, "all"):
        sel = [v for v in verdicts if item in ("all", v.item)]
        pos = [v for v in sel if v.expected]
        neg = [v for v in sel if not v.expected]
        print(f"{item:<16} {share(pos):>20} {share(neg):>20}")
    for kind in ("compliant", "near-miss"):
        pos = [v for v in verdicts if v.expected and v.kind == kind]
        print(f"compliant items of {kind} calls: {share(pos).strip()} pass")
    for voice in sorted({v.voice for v in verdicts}):
        pos = [v for v in verdicts if v.expected and v.voice == voice]
        neg = [v for v in verdicts if not v.expected and v.voice == voice]
        print(f"agent voice {voice:<14} {share(pos):>20} {share(neg):>20}")
    wrong = [v for v in verdicts if not v.right]
    causes = causes_of(wrong)
    print(f"wrong verdicts: {len(wrong)}")
    for cause in sorted(set(causes)):
        print(f"  {causes.count(cause):3d}  {cause}")
    if show:
        for v, cause in zip(wrong, causes, strict=True):
            what = "FALSE FAIL" if v.expected else "FALSE PASS"
            print(f"{what} {v.call_id} {v.item}: {cause}")
            print(f"    written:  {v.line}")
            print(f"    heard:    {v.heard}")
            print(f"    evidence: {v.evidence}")
            print(f"    agent:    {v.agent_heard}")


def key_terms() -> dict[str, list[list[str]]]:
    """item -> the [bracketed] words of each of its phrases (the words that carry it)."""
    return {
        item.id: [re.findall(r"\[([^\]]+)\]", p) for p in item.phrases]
        for item in ms.load_rubric_items(RUBRIC)
        if item.id in ITEMS
    }


def causes_of(wrong: list[Verdict]) -> list[str]:
    """Why each wrong verdict went wrong, told apart by the engine's verdict on the line as
    written and on the heard text alone, and whether the heard text holds the key words."""
    from pipeline.scripts_check import load_rubric

    rubric = load_rubric(RUBRIC)
    written = line_verdicts([(v.item, v.line, v.expected, "") for v in wrong], rubric)
    heard = line_verdicts([(v.item, v.heard, v.expected, "") for v in wrong], rubric)
    terms = key_terms()
    out = []
    for v, w, h in zip(wrong, written, heard, strict=True):
        text = ms.normalise(v.heard)
        has_keys = any(
            all(re.search(rf"\b{re.escape(t)}", text) for t in phrase) for phrase in terms[v.item]
        )
        if v.heard == NOT_HEARD:
            out.append("asr: the turn was not heard (dropped)")
        elif w is not v.expected:
            out.append("matcher: judges the written line wrong too")
        elif h is v.expected:
            out.append("call: the heard line alone is judged right (window or turn split)")
        elif not v.expected:
            out.append("read it: a near miss heard otherwise, judged a pass")
        elif has_keys:
            out.append("read it: the bracketed words heard, the heard text judged wrong")
        else:
            out.append("asr: tiny.en mis-heard the key words")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="heldout8", help="lines of en_script_lines_SPLIT.yaml")
    ap.add_argument("--archive", type=Path, help="where the calls go (default: var/bench/...)")
    ap.add_argument("--rebuild", action="store_true", help="render the calls again")
    ap.add_argument(
        "--tts",
        choices=TTS,
        default="espeak-ng",
        help="who speaks the calls: espeak-ng, or Kokoro-82M's US and UK voices (samples-en)",
    )
    ap.add_argument("--show", action="store_true", help="print every wrong verdict")
    ap.add_argument(
        "--db", type=Path, help="SQLite file: kept; one that exists is read, not run again"
    )
    args = ap.parse_args(argv)
    bench_dir = (
        BENCH_DIR if args.tts == "espeak-ng" else BENCH_DIR.with_name(f"{BENCH_DIR.name}-kokoro")
    )
    archive = args.archive or bench_dir / args.split
    t0 = time.perf_counter()
    try:
        planned = build_archive(args.split, archive, args.rebuild, tts=args.tts)
    except ms.SampleError as exc:
        raise SystemExit(f"script_calls_en: {exc}") from None
    built = time.perf_counter() - t0
    kinds = [p.kind for p in planned]
    print(
        f"{len(planned)} calls ({kinds.count('compliant')} compliant, "
        f"{kinds.count('near-miss')} near-miss) from en_script_lines_{args.split}.yaml, "
        f"spoken by {args.tts}, in {archive} ({built:.1f} s to build)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "store.db"
        run_or_read(archive, db)
        verdicts = read_verdicts(db, planned, args.tts)
    report(verdicts, args.show)
    pos = [v for v in verdicts if v.expected]
    neg = [v for v in verdicts if not v.expected]
    ok = sum(v.right for v in pos) >= MIN_SHARE * len(pos)
    ok &= sum(v.right for v in neg) >= MIN_SHARE * len(neg)
    print(f"targets (>= {MIN_SHARE:.0%} each): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
