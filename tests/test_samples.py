"""The bundled sample archive (samples/): scripts, manifest, expected verdicts and audio agree,
and the real embedded ASR model hears the scripted phrases on the intended channel."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import av
import pytest
import yaml

from tests.builders import make_samples_module

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


ms = make_samples_module()
SCRIPT = ms.load_calls()
ITEMS = ms.load_rubric_items(SCRIPT.rubric)
CALL_IDS = [c.call_id for c in SCRIPT.calls]


def _call(call_id: str):
    return next(c for c in SCRIPT.calls if c.call_id == call_id)


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict[str, str]]:
    with (ms.ARCHIVE_DIR / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == list(ms.MANIFEST_COLUMNS)
    return {r["call_id"]: r for r in rows}


@pytest.fixture(scope="module")
def expected() -> dict:
    return yaml.safe_load(ms.EXPECTED_YAML.read_text(encoding="utf-8"))


def _audio_info(path: Path) -> tuple[str, int, int, float]:
    """(codec, recorded sample rate, channels, seconds). Opus always decodes at 48 kHz, so
    its recorded rate is the input rate stored in the OpusHead header."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        rate = ctx.sample_rate
        if ctx.name == "opus":
            rate = struct.unpack_from("<I", bytes(ctx.extradata), 12)[0]
        frames = 0
        for frame in container.decode(stream):
            frames += frame.samples
        seconds = frames / ctx.sample_rate
        return ctx.name, rate, ctx.channels, seconds


# --------------------------------------------------------------------------- data


def test_archive_entries_match_scripts(manifest, expected):
    ids = [e.call_id for e in SCRIPT.entries()]
    assert set(manifest) == set(ids)
    assert set(expected["calls"]) == set(ids)
    assert len(SCRIPT.calls) >= 9 and len(SCRIPT.broken) >= 1
    for e in SCRIPT.entries():
        assert (ms.ARCHIVE_DIR / e.file).is_file(), e.file
        assert manifest[e.call_id]["file"] == e.file
        assert expected["calls"][e.call_id]["status"] == e.expected.status
    files = {p.name for p in ms.ARCHIVE_DIR.iterdir()} - {"manifest.csv"}
    assert files == {e.file for e in SCRIPT.entries()}, "stray or missing files in the archive"


def test_manifest_metadata(manifest):
    agents = {r["agent_id"] for r in manifest.values()}
    teams = {r["team"] for r in manifest.values()}
    assert 2 <= len(agents) <= 3 and len(teams) == 2
    assert {r["started_at"][:10] for r in manifest.values()} == {SCRIPT.day}
    assert manifest["c08-agent-right"]["agent_channel"] == "1"
    assert manifest["c09-unlabelled-channels"]["agent_channel"] == ""
    assert _call("c09-unlabelled-channels").agent_channel == 0


def test_expected_covers_every_rubric_item_and_auto_fail_follows_critical():
    ids = {i.id for i in ITEMS}
    critical = {i.id for i in ITEMS if i.critical}
    for call in SCRIPT.calls:
        exp = call.expected
        assert set(exp.items) == ids, call.call_id
        assert exp.auto_fail == any(not exp.items[i] for i in critical), call.call_id
    for broken in SCRIPT.broken:
        assert broken.expected.status == "failed" and broken.expected.reason


def test_archive_is_varied_on_purpose():
    verdicts = [c.expected.items for c in SCRIPT.calls]
    for item in ("greeting", "identity_check", "no_forbidden", "no_dead_air", "anything_else"):
        assert any(v[item] is False for v in verdicts), f"no call fails {item}"
    assert any(c.expected.items and all(c.expected.items.values()) for c in SCRIPT.calls)
    assert any(c.expected.risk_at_least == "high" for c in SCRIPT.calls)
    assert any(t.music for c in SCRIPT.calls for t in c.turns)
    assert any((t.pause or 0) < 0 for c in SCRIPT.calls for t in c.turns), "no overlap"
    assert any((t.pause or 0) >= 15 for c in SCRIPT.calls for t in c.turns), "no dead air"


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_script_text_bears_out_expected_phrase_items(call_id):
    """The scripts quote the rubric verbatim exactly where an item is meant to pass."""
    call = _call(call_id)
    for item_id, verdict in ms.script_findings(call, ITEMS).items():
        assert verdict == call.expected.items[item_id], f"{call_id}: {item_id}"
    # where a required item is meant to fail, nothing close to its phrases is said in window
    for item in ITEMS:
        if item.kind == "required" and call.expected.items[item.id] is False:
            for text in ms.windowed_agent_texts(call, item):
                for phrase in item.phrases:
                    assert ms.similarity(phrase, text) < ms.ABSENT_MAX, (call_id, phrase, text)


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("call_id", CALL_IDS)
def test_audio_decodes_as_8k_stereo_call(call_id):
    call = _call(call_id)
    codec, rate, channels, seconds = _audio_info(ms.ARCHIVE_DIR / call.file)
    assert (rate, channels) == (8000, 2)
    assert 25.0 <= seconds <= 62.0
    assert codec.startswith(
        {
            "wav_pcm16": "pcm_s16le",
            "wav_mulaw": "pcm_mulaw",
            "wav_alaw": "pcm_alaw",
            "flac": "flac",
            "mp3": "mp3",
            "ogg_opus": "opus",
            "m4a": "aac",
        }[call.format]
    )


def test_recorder_formats_vary_and_archive_is_small():
    assert len({c.format for c in SCRIPT.calls}) >= 7
    total = sum(p.stat().st_size for p in ms.ARCHIVE_DIR.iterdir())
    # Clear, non-borderline audio for the golden verdicts (MP3 64k, Opus 48k) still fits 6 MiB.
    assert total < 6 * 1024 * 1024


@pytest.mark.parametrize("broken", SCRIPT.broken, ids=lambda b: b.call_id)
def test_broken_upload_is_not_audio(broken):
    path = ms.ARCHIVE_DIR / broken.file
    assert path.read_text(encoding="utf-8") == broken.content
    with pytest.raises(av.error.FFmpegError):
        _audio_info(path)


# --------------------------------------------------------------------------- bad scripts


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["calls"][0].update(format="aiff"), "calls.0: Value error, unknown format"),
        (lambda d: d["calls"][0]["turns"][0].update(music=3.0), "calls.0.turns.0"),
        (lambda d: d["calls"][0]["expected"].pop("items"), "calls.0.expected"),
        (lambda d: d["calls"][1].update(call_id=d["calls"][0]["call_id"]), "duplicate call_id"),
        (lambda d: d["calls"][0].update(agent_id="A999"), "unknown agent_id"),
        (lambda d: d["calls"][0].update(file="c01.mp3"), "does not end with .wav"),
        (lambda d: d["broken"][0]["expected"].pop("reason"), "broken.0.expected"),
    ],
)
def test_broken_scripts_are_rejected_with_place_and_reason(tmp_path, mutate, message):
    data = yaml.safe_load(ms.CALLS_YAML.read_text(encoding="utf-8"))
    mutate(data)
    bad = tmp_path / "calls.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ms.SampleError) as err:
        ms.load_calls(bad)
    assert str(bad) in str(err.value) and message in str(err.value)


# --------------------------------------------------------------------------- real model


# What the real model makes of these calls is asserted end to end by tests/test_flow.py
# (every item verdict of samples/expected.yaml through `callqa run`).
