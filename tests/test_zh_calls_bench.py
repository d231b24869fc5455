"""benchmarks/zh_calls.py: the held-out Chinese call scripts load and validate, their archive
routes every call to its form, and the personal-number check reads numbers as the redactor
does (no audio rendered, no ASR)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import zh_calls as bench  # noqa: E402

from pipeline.archive import discover  # noqa: E402
from pipeline.routing import load_routing  # noqa: E402

ms = bench.ms


def test_splits_exist() -> None:
    assert "heldout1" in bench.SPLITS


@pytest.mark.parametrize("split", bench.SPLITS)
def test_split_loads_and_every_expected_item_is_in_its_form(split: str) -> None:
    script = bench.load_split(split)
    assert len(script.calls) >= 8
    forms = {script.rubric_of(c) for c in script.calls}
    assert forms == {"zh_bank_hotline", "zh_ecommerce"}
    for call in script.calls:
        form = {i.id for i in ms.load_rubric_items(script.rubric_of(call))}
        assert set(call.expected.items) == form, call.call_id
        assert call.expected.auto_fail == any(
            call.expected.items.get(i.id) is False
            for i in ms.load_rubric_items(script.rubric_of(call))
            if i.critical
        ), call.call_id
        # digits are written as words: Kokoro reads 867 as a cardinal
        assert not any(ch.isdigit() for t in call.turns for ch in (t.text or "")), call.call_id
    # other agents than the sample calls'; most agent lines in other words (the form's
    # script lines, said word for word, are what real agents say too)
    samples = ms.load_calls(ms.CALLS_ZH_YAML)
    assert not set(script.agents) & set(samples.agents)
    sample_lines = {t.text for c in samples.calls for t in c.turns}
    agent_lines = [t.text for c in script.calls for t in c.agent_turns()]
    assert sum(t in sample_lines for t in agent_lines) <= len(agent_lines) / 3


def test_heldout1_covers_the_scenarios() -> None:
    script = bench.load_split("heldout1")
    assert len(script.calls) >= 12
    verdicts = [(item, v) for c in script.calls for item, v in c.expected.items.items()]
    for item, v in [
        ("greeting", False),
        ("job_number", False),
        ("no_forbidden", False),
        ("apology_on_complaint", True),
        ("apology_on_complaint", False),
        ("identity_before_account", False),
        ("no_dead_air", False),
        ("no_interruption", False),
        ("retention", True),
    ]:
        assert (item, v) in verdicts, (item, v)
    numbers = [n for c in script.calls for n in c.personal_numbers]
    lengths = sorted({len(n) for n in numbers})
    assert {11, 16, 18} <= set(lengths)  # phone, card, ID
    assert any("幺" in n for n in numbers) and any("一" in n for n in numbers)
    assert all("零" in n for n in numbers if len(n) > 11)


def _touch(call, script, out: Path) -> None:
    (out / call.file).write_bytes(b"")


def _fail(call, script, out: Path) -> None:
    raise AssertionError(f"{call.call_id} rendered again")


@pytest.mark.parametrize("split", bench.SPLITS)
def test_archive_routes_each_call_to_its_form(split: str, tmp_path: Path) -> None:
    archive = tmp_path / split
    script = bench.build_archive(split, archive, render_call=_touch)
    jobs = discover(archive)
    assert [j.call_id for j in jobs] == [c.call_id for c in script.calls]
    table = load_routing()
    for job, call in zip(jobs, script.calls, strict=True):
        assert job.manifest_error is None
        assert (job.agent_channel, job.language, job.rubric) == (call.agent_channel, "zh", None)
        route = table.route(job, None)
        assert route is not None and route.rule == "table"
        assert route.rubric == script.rubric_of(call), call.call_id
    assert bench.build_archive(split, archive, render_call=_fail) == script  # cached


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("我的手机号是幺三九零二七六一五八零。", "whole"),
        ("手机号是139 0276 1580", "whole"),
        ("一三九，零二七六，一五八零", "whole"),
        ("手机号是一三九零二七六一五八", "partial"),  # ASR dropped the last digit
        ("手机号是[手机号]。", "none"),
        ("尾号一五八零的手机", "none"),
        ("订单号是二零二六一一零五三三七二", "none"),
    ],
)
def test_number_leak_reads_numbers_as_the_redactor(text: str, kind: str) -> None:
    (leak,) = bench.number_leaks("c", ["13902761580"], {"transcript": {"utterances": [{"text": text}]}})  # fmt: skip
    assert leak.kind == kind


def test_number_split_over_word_entries_is_found() -> None:
    words = [{"word": w, "start": 0.0, "end": 0.1} for w in "幺三九零二七六一五八零"]
    doc = {"utterances": [{"text": "[手机号]", "words": words}]}
    (leak,) = bench.number_leaks("c", ["13902761580"], {"transcript": doc})
    assert leak.kind == "whole"


def test_text_mode_times_the_written_lines() -> None:
    """--text: music leaves the agent silent for its length, a negative pause overlaps the
    turn before, and every turn is spoken inside the forms' speech-rate band."""
    script = bench.load_split("heldout4")
    calls = {c.call_id: c for c in script.calls}
    held = bench.text_transcript(calls["p02-bank-annual-fee-angry"], script).utterances
    gaps = [b.start - a.end for a, b in zip(held, held[1:], strict=False)]
    assert max(gaps) >= 20.0  # the 20 s of hold music
    cut = bench.text_transcript(calls["p05-bank-installment-after"], script).utterances
    assert cut[2].start < cut[1].end  # the agent cuts in
    rate = 60 * bench.TEXT_CHARS_PER_S
    assert 150 <= rate <= 300
