"""pipeline.redact: detection tables, masking, times, beeping, CLI, broken recogniser YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.redact import RecognizerError, detect, load_recognizers, redact
from pipeline.redact.audio import beep
from pipeline.redact.normalize import normalize
from pipeline.redact.recognizers import RECOGNIZERS_DIR
from pipeline.redact.validators import cn_id_check_digit, luhn_ok, us_ssn
from pipeline.schema import Transcript, Utterance, Word

CASES = yaml.safe_load((Path(__file__).parent / "data" / "redact_cases.yaml").read_text("utf-8"))


def _transcript(case: dict) -> Transcript:
    utts = []
    if case.get("prev"):
        utts.append(Utterance(speaker="agent", start=0.0, end=1.0, text=case["prev"]))
    utts.append(Utterance(speaker="customer", start=1.0, end=5.0, text=case["text"]))
    return Transcript(call_id="case", language=case["lang"], utterances=utts)


def _digits(text: str) -> str:
    return "".join(g.digits for run in normalize(text).runs for g in run)


def test_tables_are_big_enough():
    assert len(CASES["positives"]) >= 60 and len(CASES["negatives"]) >= 40


@pytest.mark.parametrize("case", CASES["positives"], ids=lambda c: c["text"][:30])
def test_positive(case):
    t = _transcript(case)
    last = len(t.utterances) - 1
    found = sorted(([f.entity_type, f.text] for f in detect(t) if f.utterance == last), key=str)
    assert found == sorted(case["expect"], key=str)

    # nothing of it survives redact, neither as written nor as digits
    clean = redact(t).utterances[last].text
    for _, text in case["expect"]:
        assert text not in clean
        digits = _digits(text)
        if len(digits) >= 7:
            assert digits not in _digits(clean).replace(" ", "")


@pytest.mark.parametrize("case", CASES["negatives"], ids=lambda c: c["text"][:30])
def test_negative(case):
    t = _transcript(case)
    assert detect(t) == []
    assert redact(t).utterances[-1].text == case["text"]


def test_finding_carries_evidence():
    t = Transcript(
        language="zh", utterances=[Utterance(start=0, end=4, text="身份证号11010519491231002X")]
    )
    (f,) = detect(t)
    assert (f.entity_type, f.char_start, f.char_end) == ("CN_ID", 4, 22)
    assert "check digit" in f.reason and "身份证" in f.reason
    assert f.recognizer == "cn_resident_id" and f.recognizer_set == "zh@1.1"
    assert 0.5 <= f.score <= 1 and f.mask == "[身份证]"


@pytest.mark.parametrize(
    ("body", "check"),
    [("11010519491231002", "X"), ("44030619850612213", "X"), ("32010219900101123", "2")],
)
def test_id_check_digit(body, check):
    assert cn_id_check_digit(body) == check


def test_luhn_and_ssn_rules():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert us_ssn("123456789").verdict == "valid"
    for bad in ("000456789", "666456789", "900456789", "123006789", "123450000"):
        assert us_ssn(bad).verdict == "invalid"


def _worded() -> Transcript:
    words = [
        Word(word="我的", start=10.0, end=10.4),
        Word(word="手机", start=10.4, end=10.8),
        Word(word="是", start=10.8, end=11.0),
        Word(word="一三八", start=11.2, end=12.0),
        Word(word="1234", start=12.1, end=13.0),
        Word(word="五六七八", start=13.1, end=14.2),
        Word(word="谢谢", start=14.5, end=15.0),
    ]
    text = "我的手机是一三八1234五六七八谢谢"
    return Transcript(
        call_id="w",
        language="zh",
        utterances=[Utterance(speaker="customer", start=10.0, end=15.0, text=text, words=words)],
    )


def test_times_come_from_word_timestamps():
    (f,) = detect(_worded())
    assert f.text == "一三八1234五六七八"
    assert (f.start, f.end) == (11.2, 14.2)


def test_times_without_words_are_proportional():
    t = Transcript(
        language="zh", utterances=[Utterance(start=2.0, end=12.0, text="我的手机是13812345678")]
    )
    (f,) = detect(t)
    # 16 characters over 10 s; the number is characters 5..16
    assert f.start == pytest.approx(2.0 + 10 * 5 / 16, abs=1e-3)
    assert f.end == pytest.approx(12.0, abs=1e-3)


def test_redact_masks_text_words_and_records_spans():
    t = _worded()
    out = redact(t)
    u = out.utterances[0]
    assert u.text == "我的手机是[手机号]谢谢"
    assert [w.word for w in u.words] == ["我的", "手机", "是", "[手机号]", "谢谢"]
    assert (u.words[3].start, u.words[3].end) == (11.2, 14.2)
    (r,) = out.redactions
    assert r["type"] == "PHONE" and (r["start"], r["end"]) == (11.2, 14.2)
    assert u.text[r["char_start"] : r["char_end"]] == "[手机号]"
    assert out.redacted_by["recognizer_sets"] == ["zh@1.1"]
    assert "13812345678" not in out.to_json() and "一三八" not in out.to_json()
    assert t.utterances[0].text.startswith("我的手机是一三八")  # input untouched
    # redacting again finds nothing new and keeps the record
    again = redact(out)
    assert again.utterances[0].text == u.text and len(again.redactions) == 1


def test_redact_with_given_findings_only_applies_them():
    t = _worded()
    findings = [f for f in detect(t) if f.entity_type == "EMAIL"]
    assert redact(t, findings).utterances[0].text == t.utterances[0].text


@pytest.mark.parametrize("mode", ["beep", "silence"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_beep_changes_exactly_the_interval(mode, dtype):
    sr = 8000
    rng = np.random.default_rng(0)
    x = (rng.uniform(-0.5, 0.5, sr * 2) * (32767 if dtype is np.int16 else 1)).astype(dtype)
    y = beep(x, sr, [(0.5, 0.75)], mode=mode)
    i0, i1 = 4000, 6000
    assert y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal(y[:i0], x[:i0]) and np.array_equal(y[i1:], x[i1:])
    inside = y[i0:i1].astype(np.float64)
    if mode == "silence":
        assert not inside.any()
    else:
        spectrum = np.abs(np.fft.rfft(inside))
        assert np.argmax(spectrum) * sr / len(inside) == pytest.approx(1000, abs=5)
    assert np.array_equal(x, beep(x, sr, [], mode=mode))


def test_beep_stereo_and_bad_mode():
    x = np.ones((1000, 2), dtype=np.float32)
    y = beep(x, 1000, [(0.1, 0.2)], mode="silence")
    assert not y[100:200].any() and y[:100].all() and y[200:].all()
    with pytest.raises(ValueError, match="valid modes: beep, silence"):
        beep(x, 1000, [(0.1, 0.2)], mode="bleep")


# --------------------------------------------------------------------------- recogniser YAML


def _broken(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((RECOGNIZERS_DIR / "zh.yaml").read_text("utf-8"))
    mutate(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


def _set(data, path, value):
    *head, last = path
    for k in head:
        data = data[k]
    data[last] = value


@pytest.mark.parametrize(
    ("path", "value", "where", "reason"),
    [
        (
            ["recognizers", 0, "patterns", 0, "regex"],
            "([0-9",
            "recognizers.0.patterns.0.regex",
            "invalid regex",
        ),
        (
            ["recognizers", 1, "validator"],
            "crc32",
            "recognizers.1.validator",
            "valid names: cn_landline",
        ),
        (
            ["recognizers", 2, "patterns", 0, "score"],
            1.5,
            "recognizers.2.patterns.0.score",
            "less than or equal to 1",
        ),
        (["recognizers", 3, "kind"], "audio", "recognizers.3.kind", "'number' or 'text'"),
        (
            ["masks"],
            {"PHONE": "[手机号]"},
            "(top level)",
            "no mask for entity types: ACCOUNT, ADDRESS",
        ),
        (
            ["recognizers", 0, "colour"],
            "red",
            "recognizers.0.colour",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_broken_recognizer_yaml_is_rejected(tmp_path, path, value, where, reason):
    broken = _broken(tmp_path, lambda d: _set(d, path, value))
    with pytest.raises(RecognizerError) as exc:
        load_recognizers(broken)
    msg = str(exc.value)
    assert str(broken) in msg and where in msg and reason in msg


def test_unknown_macro_and_bad_yaml_are_rejected(tmp_path):
    broken = _broken(
        tmp_path, lambda d: _set(d, ["recognizers", 0, "patterns", 0, "regex"], "{{NOPE}}")
    )
    with pytest.raises(RecognizerError, match=r"unknown macro \{\{NOPE\}\}"):
        load_recognizers(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("recognizers: [", "utf-8")
    with pytest.raises(RecognizerError, match="not valid YAML"):
        load_recognizers(bad)


# --------------------------------------------------------------------------- CLI


def _write(tmp_path: Path, t: Transcript) -> Path:
    p = tmp_path / "t.json"
    p.write_text(t.to_json(), "utf-8")
    return p


def test_cli_round_trip(tmp_path):
    from pipeline.redact.cli import redact as cmd

    src = _write(tmp_path, _worded())
    out = tmp_path / "t2.json"
    res = CliRunner().invoke(cmd, [str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    t2 = Transcript.load(out)
    assert t2.utterances[0].text == "我的手机是[手机号]谢谢"
    assert t2.redactions[0]["type"] == "PHONE"
    # stdout
    res = CliRunner().invoke(cmd, [str(src), "--out", "-"])
    assert json.loads(res.stdout)["utterances"][0]["text"] == "我的手机是[手机号]谢谢"


def test_cli_through_console_entry_point(tmp_path):
    src = _write(tmp_path, _worded())
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "redact", str(src), "--out", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[手机号]" in proc.stdout and "一三八" not in proc.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "file not found"),
        ("", "file is empty"),
        ("{", "not valid JSON"),
        ('{"utterances": [{"start": 0}]}', "utterances.0"),
    ],
)
def test_cli_bad_input(tmp_path, content, reason):
    from pipeline.cli import main

    src = tmp_path / "in.json"
    if content is not None:
        src.write_text(content, "utf-8")
    code = main(["redact", str(src), "--out", str(tmp_path / "o.json")])
    assert code == 1


def test_cli_bad_input_message(tmp_path, capsys):
    from pipeline.cli import main

    src = tmp_path / "in.json"
    src.write_text("{", "utf-8")
    assert main(["redact", str(src), "--out", "-"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("callqa: error:") and str(src) in err and "not valid JSON" in err


def test_cli_custom_recognizers_rejected_when_broken(tmp_path, capsys):
    from pipeline.cli import main

    src = _write(tmp_path, _worded())
    broken = _broken(tmp_path, lambda d: _set(d, ["min_score"], 7))
    assert main(["redact", str(src), "--out", "-", "--recognizers", str(broken)]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "min_score" in err


# --------------------------------------------------------------------------- dialogue context

DIALOGUES = yaml.safe_load(
    (Path(__file__).parent / "data" / "redact_dialogue_cases.yaml").read_text("utf-8")
)["cases"]


def _dialogue(lang: str, turns: list[list[str]]) -> Transcript:
    return Transcript(
        call_id="dialogue",
        language=lang,
        utterances=[
            Utterance(speaker=spk, start=3.0 * i, end=3.0 * i + 2.5, text=text)
            for i, (spk, text) in enumerate(turns)
        ],
    )


@pytest.mark.parametrize("case", DIALOGUES, ids=lambda c: c["id"])
def test_dialogue_context(case):
    out = redact(_dialogue(case["lang"], case["turns"]))
    assert [u.text for u in out.utterances] == case["expect"]
