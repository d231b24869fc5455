"""benchmarks/script_calls_en.py: the calls it builds (no audio rendered, no ASR)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import script_calls_en as bench  # noqa: E402

from pipeline.archive import discover  # noqa: E402

SPLITS = sorted(p.stem.removeprefix("en_script_lines_") for p in bench.BENCH_SPLITS)


def _used(planned, kind: str, compliant: bool) -> dict[str, Counter]:
    out: dict[str, Counter] = {i: Counter() for i in bench.ITEMS}
    for p in planned:
        if p.kind == kind:
            for item, (line, c) in p.lines.items():
                if c is compliant:
                    out[item][line] += 1
    return out


@pytest.mark.parametrize("split", SPLITS)
def test_every_line_of_a_split_is_spoken(split: str) -> None:
    lines = bench.split_lines(split)
    _, planned = bench.build_calls(split)
    said = _used(planned, "compliant", True)
    missed = _used(planned, "near-miss", False)
    for item in bench.ITEMS:
        assert not any(line.startswith("asr:") for line in said[item] | missed[item])
        # each near miss once; each compliant line at least once (once where the items of
        # the split have as many compliant lines each, as in heldout8)
        assert missed[item] == Counter(lines[item][False])
        assert set(said[item]) == set(lines[item][True])
        if len({len(lines[i][True]) for i in bench.ITEMS}) == 1:
            assert said[item] == Counter(lines[item][True])
    for p in planned:
        agent = [t.text for t in p.call.agent_turns()]
        assert agent[0] == p.lines["greeting"][0] and agent[-1] == p.lines["farewell"][0]
        wrong = [i for i, (_, c) in p.lines.items() if not c]
        assert (not wrong) if p.kind == "compliant" else 1 <= len(wrong) <= 2
        assert p.call.expected.items == {i: c for i, (_, c) in p.lines.items()}


def test_heldout8_is_spoken_exactly_once() -> None:
    _, planned = bench.build_calls("heldout8")
    lines = bench.split_lines("heldout8")
    said = _used(planned, "compliant", True)
    assert all(said[i] == Counter(lines[i][True]) for i in bench.ITEMS)
    assert len(planned) == 12 + 24


def _touch(call, script, out: Path) -> None:
    # discovery only lists the recordings; speaking them is the benchmark run's job
    (out / call.file).write_bytes(b"")


def test_archive_is_read_by_the_archive_reader(tmp_path: Path) -> None:
    archive = tmp_path / "heldout8"
    archive.mkdir()
    (archive / "stale.wav").write_bytes(b"")  # a call of an earlier build: cleared
    planned = bench.build_archive("heldout8", archive, render_call=_touch)
    jobs = discover(archive)
    assert [j.call_id for j in jobs] == [p.call.call_id for p in planned]
    for job, p in zip(jobs, planned, strict=True):
        assert job.manifest_error is None
        assert (job.agent_channel, job.language, job.rubric) == (
            p.call.agent_channel,
            "en",
            "en_telecom",
        )
    assert bench.build_archive("heldout8", archive, render_call=_fail) == planned  # cached


def _fail(call, script, out: Path) -> None:
    raise AssertionError(f"{call.call_id} rendered again")


def test_kokoro_calls_are_spoken_by_kokoro_voices_of_both_sexes_and_accents() -> None:
    script, planned = bench.build_calls("heldout8", tts="kokoro")
    assert {v.engine for v in script.voices.values()} == {"kokoro"}
    agent = {script.voice_for(p.call, "agent").voice for p in planned}
    assert agent == {v for v, _ in bench.KOKORO_AGENT_VOICES.values()}
    assert {v[:2] for v in agent} == {"af", "am", "bf", "bm"}  # US/UK, women/men
    # the same lines and verdicts as the espeak-ng calls: only the voices differ
    _, espeak = bench.build_calls("heldout8")
    assert [p.lines for p in planned] == [p.lines for p in espeak]
    with pytest.raises(ValueError, match="tts 'festival'"):
        bench.build_calls("heldout8", tts="festival")
