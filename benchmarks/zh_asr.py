"""Character error rate of ``callqa transcribe`` vs the bare faster-whisper base model on
real Mandarin recordings, at 16 kHz and at 8 kHz A-law (what call recorders write).

Every clip of ../shared/data/audio/zh with a reference in its ``refs.tsv`` is converted with
sox (``-r 8000 -e a-law``), then transcribed by ``pipeline.transcribe.transcribe_call`` with
the default settings (language detected, Chinese text stage, hot words from the deployment
lexicon) and by a bare ``WhisperModel(base).transcribe`` loop with faster-whisper's defaults
(beam 5, language detected) and VAD. CER: characters of the reference and the hypothesis
after NFKC, simplified, lower case, punctuation and spaces dropped; numbers are compared as
written (the one reference with digits, 26年, is read as digits by both).

    .venv/bin/python benchmarks/zh_asr.py [--rates 16000,8000] [--lexicon FILE] [--show]
                                          [--data ../shared/data/audio/zh]

``--lexicon`` decodes callqa with another custom-vocabulary file (QA_ASR_LEXICON), e.g. one
with ``use: hotwords``; ``--show`` prints the reference and both texts per clip.

``--recall`` measures what custom vocabulary (热词) does on the Chinese sample calls of
samples/archive instead: each call through ``transcribe_call`` as ``callqa run`` decodes it
(the manifest's language and agent channel), with hints off, with the deployment lexicon's
terms as hot words (rubrics/lexicon/default.yaml, ``use: hotwords``), and with the call's form's
script phrases as its ``vocabulary`` (hot words). Script-phrase recall: of the form's phrases
the agent's script says (samples/make_samples.py ``phrase_expectations``), how many the
agent channel's transcript holds, exactly (normalised characters) and as the sample checker
counts a phrase heard (partial ratio >= HEARD_MIN).

    .venv/bin/python benchmarks/zh_asr.py --recall [--call z01-bank-compliant]

Prints per clip CER for both, the character-weighted totals per rate, seconds, and the
issue's target (callqa no worse than bare + 0.01).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rapidfuzz.distance import Levenshtein  # noqa: E402

from pipeline.config import load_settings  # noqa: E402
from pipeline.text import normalise_for_match  # noqa: E402
from pipeline.transcribe import transcribe_call  # noqa: E402
from pipeline.transcribe.decode_config import asr_config, transcribe_options  # noqa: E402
from pipeline.transcribe.model import get_model, resolve_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "audio" / "zh"
TARGET = 0.01  # issue 27: callqa's CER no worse than the bare model's + 0.01


def chars(text: str) -> str:
    """The characters CER counts: normalised, without punctuation or spaces."""
    return normalise_for_match(text).replace(" ", "")


def cer_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance, reference length) in characters."""
    r, h = chars(ref), chars(hyp)
    return Levenshtein.distance(r, h), len(r)


def load_refs(data: Path) -> list[tuple[str, str]]:
    with open(data / "refs.tsv", encoding="utf-8", newline="") as fh:
        return [(row["file"], row["reference"]) for row in csv.DictReader(fh, delimiter="\t")]


def to_rate(src: Path, dst: Path, rate: int) -> Path:
    if rate == 16000:
        return src
    subprocess.run(
        ["sox", "-R", str(src), "-r", str(rate), "-e", "a-law", "-b", "8", "-c", "1", str(dst)],
        check=True,
    )
    return dst


def bare_loop(model, path: Path, settings) -> str:
    from faster_whisper.audio import decode_audio

    segments, _ = model.transcribe(decode_audio(str(path)), **transcribe_options(settings, None))
    return "".join(s.text.strip() for s in segments)


def callqa(path: Path, settings) -> tuple[str, str, float | None]:
    t = transcribe_call(path, settings=settings)
    d = t.produced_by.language_decision
    return "".join(u.text for u in t.utterances), d.language, d.probability


def _hint_variants(tmp: Path, items: list) -> list[tuple[str, str, list[str] | None]]:
    """(name, lexicon file, vocabulary) of each recall variant."""
    import yaml

    from pipeline.transcribe.vocabulary import DEFAULT_LEXICON, MAX_TERMS

    shipped = yaml.safe_load(DEFAULT_LEXICON.read_text(encoding="utf-8"))
    variants = []
    for name, use, terms in (
        ("off", "off", shipped["terms"]),
        ("lexicon", "hotwords", shipped["terms"]),
        ("form", "hotwords", {}),
    ):
        path = tmp / f"lexicon-{name}.yaml"
        path.write_text(
            yaml.safe_dump({"version": 1, "use": use, "terms": terms}, allow_unicode=True),
            encoding="utf-8",
        )
        variants.append((name, str(path), None))
    phrases = list(dict.fromkeys(p for item in items for p in item.phrases))[:MAX_TERMS]
    variants[-1] = (variants[-1][0], variants[-1][1], phrases)
    return variants


def script_recall(only: list[str]) -> int:
    """Script-phrase recall on the Chinese sample calls, hints off / lexicon / form."""
    sys.path.insert(0, str(ROOT / "samples"))
    import make_samples as ms

    script = ms.load_calls(ms.CALLS_ZH_YAML)
    calls = [c for c in script.calls if not only or c.call_id in only]
    totals: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for call in calls:
            items = ms.load_rubric_items(script.rubric_of(call))
            said = [p for role, p, want in ms.phrase_expectations(call, items)
                    if role == "agent" and want == "heard" and any(p in i.phrases for i in items)]  # fmt: skip
            line = f"{call.call_id:28} {len(said):3d} said"
            for name, lexicon, vocabulary in _hint_variants(Path(tmp), items):
                settings = load_settings(asr_lexicon=lexicon)
                t = transcribe_call(
                    ROOT / "samples" / "archive" / call.file,
                    settings=settings,
                    agent_channel=call.agent_channel,
                    language=call.language,
                    vocabulary=vocabulary,
                )
                text = "".join(u.text for u in t.utterances if u.speaker == "agent")
                exact = sum(chars(p) in chars(text) for p in said)
                fuzzy = sum(ms.similarity(p, text) >= ms.HEARD_MIN for p in said)
                tot = totals.setdefault(name, [0, 0, 0])
                tot[0] += exact
                tot[1] += fuzzy
                tot[2] += len(said)
                line += f"  {name} {exact}/{fuzzy}"
            print(line + "  (exact/heard)", flush=True)
    for name, (exact, fuzzy, n) in totals.items():
        print(
            f"NOTE zh_asr recall {name}: script phrases exact {exact}/{n} = {exact / max(n, 1):.2f}, "
            f"heard (partial ratio >= {ms.HEARD_MIN:.0f}) {fuzzy}/{n} = {fuzzy / max(n, 1):.2f}; "
            f"{len(calls)} Chinese sample calls"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rates", default="16000,8000", help="sample rates (8000: A-law)")
    parser.add_argument("--lexicon", default=None, help="QA_ASR_LEXICON for callqa")
    parser.add_argument("--show", action="store_true", help="print the texts")
    parser.add_argument("--recall", action="store_true", help="hot words on the sample calls")
    parser.add_argument("--call", action="append", default=[], help="--recall: only these")
    args = parser.parse_args()
    if args.recall:
        return script_recall(args.call)
    if not (args.data / "refs.tsv").is_file():
        print(f"no refs.tsv in {args.data}: nothing to measure", file=sys.stderr)
        return 1
    from faster_whisper import WhisperModel

    overrides = {"asr_lexicon": args.lexicon} if args.lexicon else {}
    settings = load_settings(**overrides)
    get_model(settings)
    bare = WhisperModel(
        resolve_model(settings.asr_model), device="cpu", compute_type=settings.compute_type
    )
    refs = load_refs(args.data)
    rates = [int(r) for r in args.rates.split(",")]
    print(
        f"callqa: model {settings.asr_model} (English: {settings.asr_english_model}), "
        f"chunk/beam per model {asr_config(settings).by_model}, {settings.asr_decoding}; bare: WhisperModel(base) "
        f"beam 5, VAD, language detected; {len(refs)} clips"
    )
    header = f"{'file':34} {'rate':>5} {'chars':>5} {'lang':>4} {'CER callqa':>10} {'CER bare':>9} {'s callqa':>8} {'s bare':>7}"
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            print(header)
            print("-" * len(header))
            tot = {"n": 0, "ours": 0, "bare": 0, "t_ours": 0.0, "t_bare": 0.0}
            for name, ref in refs:
                src = args.data / name
                if not src.exists():
                    print(f"{name:34} missing, skipped")
                    continue
                path = to_rate(src, Path(tmp) / f"{src.stem}_{rate}.wav", rate)
                t0 = time.perf_counter()
                ours, lang, _prob = callqa(path, settings)
                t1 = time.perf_counter()
                theirs = bare_loop(bare, path, settings)
                t2 = time.perf_counter()
                e_ours, n = cer_errors(ref, ours)
                e_bare, _ = cer_errors(ref, theirs)
                tot["n"] += n
                tot["ours"] += e_ours
                tot["bare"] += e_bare
                tot["t_ours"] += t1 - t0
                tot["t_bare"] += t2 - t1
                print(
                    f"{name:34} {rate:5d} {n:5d} {lang:>4} {e_ours / n:10.3f} {e_bare / n:9.3f} "
                    f"{t1 - t0:8.2f} {t2 - t1:7.2f}"
                )
                if args.show:
                    print(f"    ref    {ref}\n    callqa {ours}\n    bare   {theirs}")
            n = max(tot["n"], 1)
            ours_cer, bare_cer = tot["ours"] / n, tot["bare"] / n
            print("-" * len(header))
            print(
                f"{'all (char-weighted)':34} {rate:5d} {tot['n']:5d} {'':>4} {ours_cer:10.3f} "
                f"{bare_cer:9.3f} {tot['t_ours']:8.2f} {tot['t_bare']:7.2f}\n"
            )
            summary.append((rate, ours_cer, bare_cer))
    for rate, ours_cer, bare_cer in summary:
        verdict = "met" if ours_cer <= bare_cer + TARGET else "NOT met"
        kind = "8 kHz A-law" if rate == 8000 else f"{rate // 1000} kHz"
        print(
            f"NOTE zh_asr {kind}: callqa CER {ours_cer:.3f}, bare base {bare_cer:.3f} "
            f"(difference {ours_cer - bare_cer:+.3f}, target <= +{TARGET}: {verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
