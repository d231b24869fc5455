"""Coaching packs: a small archive of real stereo recordings scored by the real rubric engine.

``tests.builders.build_archive`` (also used by tests/test_reports.py) writes one WAV per call (agent and
customer on their own channel, a tone per party while they speak), scores the transcripts
with rubrics/en_telecom.yaml and saves everything with ``Store.save_scored``.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.audio import decode_audio
from pipeline.cli import cli
from pipeline.reports import CoachFilter, ReportError, export_coaching_pack
from pipeline.reports.clips import SAMPLE_RATE, mix_down
from pipeline.scripts_check import load_rubric
from tests.builders import COACH_CALLS, ELSE, IDENTITY, Archive, build_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Archive:
    return build_archive(tmp_path_factory.mktemp("archive"))


def _clip_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# --------------------------------------------------------------------------- the pack


@pytest.fixture(scope="module")
def pack(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack")
    manifest = export_coaching_pack(
        archive.store, out, CoachFilter(), rubric_paths=[archive.rubric]
    )
    return out, manifest


def test_archive_has_the_intended_failures(archive):
    """The rubric engine failed exactly the items the scripts break (guards the fixture)."""
    failed = {
        (c, i.id)
        for c in COACH_CALLS
        for i in archive.store.get_result(c).items
        if i.applicable and i.passed is False
    }
    assert failed == {("c2", "greeting"), ("c3", "no_forbidden"), ("c4", "farewell")}


def test_manifest_lists_every_failed_item_with_decodable_clips(pack):
    out, manifest = pack
    entries = json.loads((out / "manifest.json").read_text())
    assert isinstance(entries, list)
    assert {(e["call_id"], e["item"]) for e in entries} == {
        ("c2", "greeting"),
        ("c3", "no_forbidden"),
        ("c4", "farewell"),
    }
    for e in entries:
        assert {"call_id", "item", "start", "end", "clip", "transcript"} <= e.keys()
        clip = out / e["clip"]
        assert not Path(e["clip"]).is_absolute() and clip.is_file()
        decoded = decode_audio(clip, sample_rate=SAMPLE_RATE)
        assert decoded.n_channels == 1
        assert decoded.duration >= e["end"] - e["start"] > 0
        assert e["clip_start"] <= e["start"] and e["clip_end"] >= e["end"]
        assert e["transcript"], "an excerpt goes with every clip"
        assert e["rule"]["summary"] and e["reason"]
        assert e["rule"]["op"] == ("forbidden" if e["item"] == "no_forbidden" else "required")
        assert e["rule"]["phrases"], "the rule's phrases come from the rubric file"


@pytest.mark.parametrize(
    ("call_id", "item", "span_source", "first", "last", "marked"),
    [
        # forbidden hit: the clip is cut around the utterance that said it, phrase marked
        ("c3", "no_forbidden", "evidence", "calm down sir", "calm down sir", "calm down"),
        # greeting never said (nothing close): the window the rule looked at, the agent's
        # first two turns
        ("c2", "greeting", "window", "yeah what do you want", IDENTITY, None),
        # farewell never said: the last two agent turns
        ("c4", "farewell", "window", ELSE, "ok bye", None),
    ],
)
def test_clip_span_and_highlight(pack, archive, call_id, item, span_source, first, last, marked):
    _, manifest = pack
    (e,) = [x for x in manifest.entries if x.call_id == call_id and x.item == item]
    assert e.span_source == span_source
    utts = archive.transcripts[call_id].utterances
    start = next(u.start for u in utts if first in u.text)
    end = next(u.end for u in utts if last in u.text)
    assert (e.start, e.end) == (start, end)
    assert {u.utterance for u in e.transcript if u.focus} == {
        i for i, u in enumerate(utts) if start <= u.start and u.end <= end and u.speaker == "agent"
    }
    if marked:
        marks = [u.text[a:b] for u in e.transcript for a, b, _ in u.highlights if u.focus]
        assert marked in marks


def test_redacted_span_is_beeped_and_the_rest_is_the_call(pack, archive):
    """c3's clip covers the customer's account number: that span is a 1 kHz beep, the
    other audio is both channels of the recording mixed."""
    out, manifest = pack
    (e,) = [x for x in manifest.entries if x.call_id == "c3"]
    assert e.redacted, "the account number lies inside the clip"
    clip = decode_audio(out / e.clip, sample_rate=SAMPLE_RATE).channels[0]
    source = decode_audio(archive.root / "archive" / "c3.wav", sample_rate=SAMPLE_RATE)
    i0 = round(e.clip_start * SAMPLE_RATE)
    original = mix_down(source.channels)[i0 : i0 + len(clip)]
    r0, r1 = (round(x * SAMPLE_RATE) for x in e.redacted[0])
    beeped, before = clip[r0:r1], original[r0:r1]
    assert np.abs(beeped - before).mean() > 0.05
    spectrum = np.abs(np.fft.rfft(beeped))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(beeped) - 1000) < 20
    keep = np.ones(len(clip), bool)
    keep[max(0, r0 - 80) : r1 + 80] = False
    assert np.abs(clip[keep] - original[keep]).max() < 2e-3


def test_contrast_is_a_passed_example_from_another_call(pack):
    _, manifest = pack
    for e in manifest.entries:
        assert e.contrast is not None, e.item
        assert e.contrast.call_id != e.call_id
    greeting = next(e for e in manifest.entries if e.item == "greeting")
    # another agent's call first (A2 greets correctly), with its own clip and marked phrase
    assert greeting.contrast.agent_id == "A2"
    assert greeting.contrast.clip and greeting.contrast.transcript
    assert any(
        "northwind" in u.text[a:b] for u in greeting.contrast.transcript for a, b, _ in u.highlights
    )


def test_index_html_plays_from_disk(pack):
    out, manifest = pack
    html = (out / "index.html").read_text()
    assert html.count("<audio") >= len(manifest.entries)
    for e in manifest.entries:
        assert f'src="{e.clip}"' in html
        if e.contrast and e.contrast.clip:
            contrast = decode_audio(out / e.contrast.clip, sample_rate=SAMPLE_RATE)
            assert contrast.duration >= e.contrast.end - e.contrast.start
    assert "http://" not in html and "https://" not in html
    assert "<mark" in html and "[ACCOUNT]" in html


def test_window_used_when_nothing_was_said(archive, tmp_path):
    """A required item with no evidence at all: the clip is the window the rule looked at."""
    from pipeline.reports.coaching import focus_span

    rubric = load_rubric(archive.rubric)
    greeting = next(i for _, i in rubric.items() if i.id == "greeting")
    t = archive.transcripts["c2"]
    start, end, source, focus = focus_span([{"reason": "not said"}], t, greeting)
    agent_turns = [i for i, u in enumerate(t.utterances) if u.speaker == "agent"][:2]
    assert source == "window" and focus == agent_turns
    assert (start, end) == (t.utterances[agent_turns[0]].start, t.utterances[agent_turns[-1]].end)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"item": "greeting"}, {("c2", "greeting")}),
        ({"agent": "A2"}, {("c3", "no_forbidden"), ("c4", "farewell")}),
        ({"agent": "Ann Lee"}, {("c2", "greeting")}),
        ({"team": "South", "since": "2026-11-02"}, {("c4", "farewell")}),
        ({"until": "2026-11-01"}, {("c3", "no_forbidden")}),
        ({"limit": 1}, None),  # one entry, the most clear-cut
        # an exact forbidden hit, and "not said" where no agent utterance came close
        (
            {"min_confidence": 0.95},
            {("c3", "no_forbidden"), ("c2", "greeting"), ("c4", "farewell")},
        ),
    ],
)
def test_filters_select(archive, tmp_path, filters, expected):
    manifest = export_coaching_pack(
        archive.store, tmp_path, CoachFilter.parse(**filters), rubric_paths=[archive.rubric]
    )
    got = {(e.call_id, e.item) for e in manifest.entries}
    if expected is None:
        assert len(got) == filters["limit"]
        top = max(manifest.entries, key=lambda e: e.confidence)
        assert manifest.entries[0].confidence == top.confidence
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-13-01"], "--since: '2026-13-01' is not a date"),
        (["--until", "yesterday"], "--until: 'yesterday' is not a date (expected YYYY-MM-DD)"),
        (["--since", "2026-11-03", "--until", "2026-11-01"], "--since 2026-11-03 is after --until"),
        (["--item", "greting"], "--item: unknown item id 'greting'; known: anything_else"),
        (["--agent", "A9"], "--agent: unknown agent 'A9'"),
        (["--team", "West"], "--team: unknown team 'West'"),
        (["--min-confidence", "1.5"], "--min-confidence: Input should be less than or equal to 1"),
        (["--limit", "0"], "--limit: Input should be greater than or equal to 1"),
        (["--rubric", "missing.yaml"], "missing.yaml: file not found"),
    ],
)
def test_bad_filters_are_one_line_errors(archive, tmp_path, args, message):
    res = CliRunner().invoke(
        cli, ["coach", "export", "--db", archive.url, *args, "--out", str(tmp_path / "p")]
    )
    assert res.exit_code != 0
    assert message in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_cli_export_and_empty_selection(archive, tmp_path):
    runner = CliRunner()
    out = tmp_path / "pack"
    res = runner.invoke(
        cli,
        [
            "coach",
            "export",
            "--db",
            archive.url,
            "--rubric",
            str(archive.rubric),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "coaching pack: 3/3 examples" in res.output  # progress on stderr
    assert (out / "index.html").is_file() and (out / "manifest.json").is_file()

    empty = tmp_path / "empty"
    res = runner.invoke(
        cli,
        ["coach", "export", "--db", archive.url, "--agent", "A1", "--since", "2026-11-03",
         "--out", str(empty)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "nothing to export (no failed items match the filters)" in res.output
    assert not empty.exists()


def test_reviewer_verdicts_decide_what_is_weak(tmp_path):
    """An item a reviewer overturned to pass leaves the pack; one confirmed failed is
    certain (confidence 1, verdict by reviewer)."""
    review = pytest.importorskip("pipeline.store.review")
    arch = build_archive(tmp_path)
    rs = review.ReviewStore(arch.store)
    viewer = review.Scope(user_id=rs.add_user("rita", "password123", "reviewer").id, all_calls=True)
    final = rs.final_score(viewer, "c2")
    greeting = next(i for i in final.items if i.id == "greeting")
    rs.override(viewer, "c2", greeting.item_result_id, True, comment="greeted in Spanish")
    rs.confirm(viewer, "c4")

    manifest = export_coaching_pack(arch.store, tmp_path / "pack")
    got = {(e.call_id, e.item): e for e in manifest.entries}
    assert set(got) == {("c3", "no_forbidden"), ("c4", "farewell")}
    assert got[("c4", "farewell")].verdict_by == "reviewer"
    assert got[("c4", "farewell")].confidence == 1.0
    assert got[("c3", "no_forbidden")].verdict_by == "machine"


def test_call_without_audio_keeps_its_excerpt(tmp_path):
    arch = build_archive(tmp_path)
    (arch.root / "archive" / "c3.wav").unlink()
    manifest = export_coaching_pack(arch.store, tmp_path / "pack", CoachFilter(item="no_forbidden"))
    (e,) = manifest.entries
    assert e.clip is None and "file not found" in e.audio_error
    assert e.transcript and manifest.without_audio == 1


def test_rule_of_an_unknown_rubric_is_described_from_the_store(archive, tmp_path):
    manifest = export_coaching_pack(archive.store, tmp_path, CoachFilter(item="greeting"))
    (e,) = manifest.entries
    assert e.rule.op is None and "rubric file not available" in e.rule.summary
    # nothing the agent said came close and the rule's window is unknown without the
    # rubric file: the clip is the call's start, where a greeting belongs
    assert e.clip and e.span_source == "call start"


def test_filter_errors_from_the_api(archive, tmp_path):
    with pytest.raises(ReportError, match="unknown item id 'nope'"):
        export_coaching_pack(archive.store, tmp_path, CoachFilter(item="nope"))
