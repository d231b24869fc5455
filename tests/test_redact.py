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
from pipeline.redact.audio_mask import beep
from pipeline.redact.digits import normalize
from pipeline.redact.recognizers import RECOGNIZERS_DIR
from pipeline.redact.validators import cn_id_check_digit, luhn_ok, us_ssn
from pipeline.schema import Redaction, Transcript, Utterance, Word

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
    assert f.recognizer == "cn_resident_id" and f.recognizer_set == "zh@1.2"
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
    assert r.type == "PHONE" and (r.start, r.end) == (11.2, 14.2)
    assert u.text[r.char_start : r.char_end] == "[手机号]"
    assert out.redacted_by.recognizer_sets == ["zh@1.2"]
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
            "recognizers[0].patterns[0].regex",
            "invalid regex",
        ),
        (
            ["recognizers", 1, "validator"],
            "crc32",
            "recognizers[1].validator",
            "valid names: cn_landline",
        ),
        (
            ["recognizers", 2, "patterns", 0, "score"],
            1.5,
            "recognizers[2].patterns[0].score",
            "less than or equal to 1",
        ),
        (["recognizers", 3, "kind"], "audio", "recognizers[3].kind", "'number' or 'text'"),
        (
            ["masks"],
            {"PHONE": "[手机号]"},
            "(top level)",
            "no mask for entity types: ACCOUNT, ADDRESS",
        ),
        (
            ["recognizers", 0, "colour"],
            "red",
            "recognizers[0]",
            "unknown key 'colour'",
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
    assert t2.redactions[0].type == "PHONE"
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


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("6, 3, 3, 8, 1, 0, 4, 10", "633810410"),  # Whisper's comma-separated digits
        ("4 0 1 9", "4019"),
        ("seven one eight", "718"),
        ("double five oh two", "5502"),
        ("triple one two", "1112"),
        ("six 3 3 eight", "6338"),
        ("幺三八", "138"),
        ("两两三三", "2233"),
        ("五洞洞三九二", "500392"),
        ("6222 零二零二 幺三四五", "622202021345"),
        # 幺 heard as a sound-alike next to other numerals (split 27: 605药)
        ("189-0723-605药", "18907236051"),
        ("药八九零七两三六零五幺", "18907236051"),
    ],
)
def test_spoken_forms_become_digits(text, digits):
    assert _digits(text) == digits


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("两个问题", True),
        ("漏洞", True),
        ("oh okay", True),
        ("one moment", False),
        ("这个药吃了", True),
        ("我腰疼", True),
    ],
)
def test_words_that_are_not_numerals_alone(text, kept):
    # 两个, 漏洞 and "oh" are not numerals without another numeral next to them
    assert (_digits(text) == "") is kept


def test_unknown_speakers_still_answer_the_request():
    t = _dialogue(
        "en", [["unknown", "Could I have your account number?"], ["unknown", "4 4 0 9 2 7"]]
    )
    assert redact(t).utterances[1].text == "[ACCOUNT]"


def test_answer_window_closes_after_max_seconds():
    turns = [["agent", "What's your PIN please?"], ["customer", "4 0 1 9"]]
    t = _dialogue("en", turns)
    t.utterances[1].start, t.utterances[1].end = 60.0, 62.0  # a minute later: no answer
    assert redact(t).utterances[1].text == "4 0 1 9"


def test_answer_finding_carries_the_request_as_evidence():
    t = _dialogue("zh", [["agent", "请提供一下您的身份证后四位。"], ["customer", "九九八七。"]])
    (f,) = detect(t)
    assert (f.entity_type, f.text, f.utterance) == ("CN_ID", "九九八七", 1)
    assert f.recognizer == "dialogue:cn_id" and "utterance 0" in f.reason
    assert "身份证" in f.reason and "id_number" in f.reason


# --------------------------------------------------------------------------- the project's samples


def test_sample_bank_003_id_digits_are_masked():
    path = Path(__file__).parents[1] / "samples" / "zh_transcripts" / "bank_003_forbidden.json"
    out = redact(Transcript.load(path))
    texts = [u.text for u in out.utterances]
    assert "[身份证]。" in texts and not any("九九八七" in t for t in texts)
    assert (
        texts[0] == "您好，华信银行信用卡中心，工号一零八六，很高兴为您服务。"
    )  # staff number stays


def test_sample_c03_account_number_is_masked():
    calls = yaml.safe_load((Path(__file__).parents[1] / "samples" / "calls.yaml").read_text())
    c03 = next(c for c in calls["calls"] if c["call_id"] == "c03-forbidden")
    turns = [[t["speaker"], t["text"]] for t in c03["turns"]]
    assert turns[3][1] == "Six three three eight, one zero four seven."
    for answer in (turns[3][1], "6, 3, 3, 8, 1, 0, 4, 10"):  # as scripted, as Whisper wrote it
        turns[3][1] = answer
        out = redact(_dialogue("en", turns))
        assert out.utterances[3].text.startswith("[ACCOUNT]")
        assert not _digits(out.utterances[3].text)
        assert out.utterances[4].text == turns[4][1]


# --------------------------------------------------------------------------- test numbers


@pytest.mark.parametrize(
    ("speaker", "text", "masked"),
    [
        ("agent", "The training script uses 212-555-0147 as the example.", False),
        ("agent", "The form shows the sample SSN 123-45-6789.", False),
        ("agent", "In our training script we use 212-555-0147 as the example.", False),
        ("agent", "My number is 212-555-0147.", True),
        ("agent", "I'll call you back on 212-555-0147.", True),
        ("agent", "my social is 123-45-6789", True),
        ("agent", "Call 212-867-5309 for the demo", True),  # not a test number
        ("agent", "The sample card in the guide is 4111 1111 1111 1111.", False),
        ("customer", "the card I use is 4111 1111 1111 1111", True),
        # a caller's (or an unknown speaker's) number is never exempt (issue 28)
        ("customer", "The training script uses 212-555-0147 as the example.", True),
        ("unknown", "The form shows the sample SSN 123-45-6789.", True),
        ("customer", "my social security number is 123-45-6789", True),
        ("customer", "you can reach me on 415 555 0132 after six", True),
        ("customer", "SSN 123456789", True),
        ("customer", "we're at 555 0188 at home", True),
    ],
)
def test_test_numbers_are_kept_only_on_the_agents_side_without_personal_context(
    speaker, text, masked
):
    t = Transcript(
        language="en", utterances=[Utterance(speaker=speaker, start=0, end=3, text=text)]
    )
    assert (redact(t).utterances[0].text != text) is masked


def test_test_numbers_in_a_request_context_are_masked_on_the_agents_side_too():
    t = _dialogue(
        "en",
        [["agent", "What's the best number to reach you?"], ["customer", "212-555-0147"]],
    )
    t.utterances.append(
        Utterance(speaker="agent", start=6, end=8, text="So that's 212-555-0147, right?")
    )
    out = redact(t)
    assert [u.text for u in out.utterances[1:]] == ["[PHONE]", "So that's [PHONE], right?"]


def test_test_number_exemption_can_be_switched_off(tmp_path):
    data = yaml.safe_load((RECOGNIZERS_DIR / "en.yaml").read_text("utf-8"))
    data["test_numbers"]["enabled"] = False
    path = tmp_path / "en.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    text = "The training script uses 212-555-0147 as the example."
    t = Transcript(
        language="en", utterances=[Utterance(speaker="agent", start=0, end=3, text=text)]
    )
    out = redact(t, recognizer_sets=[load_recognizers(path)])
    assert out.utterances[0].text == "The training script uses [PHONE] as the example."


# --------------------------------------------------------------------------- dialogue YAML


def _broken_en(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((RECOGNIZERS_DIR / "en.yaml").read_text("utf-8"))
    mutate(data)
    path = tmp_path / "broken_en.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "where", "reason"),
    [
        (lambda d: _set(d, ["dialogue", "requests", 0, "patterns", 0], "(acct"), "dialogue.requests[0].patterns", "invalid regex"),
        (lambda d: _set(d, ["dialogue", "requests", 0, "entity"], "BOAT_NUMBER"), "(top level)", "no mask for entity types: BOAT_NUMBER"),
        (lambda d: _set(d, ["dialogue", "requests", 0, "scope"], "everything"), "dialogue.requests[0].scope", "'numbers', 'answer' or 'name'"),
        (lambda d: _set(d, ["dialogue", "requests", 1, "name"], "account_number"), "(top level)", "duplicate dialogue request names: account_number"),
        (lambda d: _set(d, ["dialogue", "fillers"], [True]), "dialogue.fillers[0]", "valid string"),
        (lambda d: _set(d, ["dialogue", "keep_after"], "[0-"), "dialogue.keep_after", "invalid regex"),
        (lambda d: _set(d, ["dialogue", "request_cues"], []), "dialogue.request_cues", "at least 1"),
        (lambda d: _set(d, ["test_numbers", "numbers", 0], "(555"), "test_numbers.numbers", "invalid regex"),
        (lambda d: _set(d, ["test_numbers", "enabled"], "sometimes"), "test_numbers.enabled", "valid boolean"),
        (lambda d: _set(d, ["test_numbers", "speakers"], ["caller"]), "test_numbers.speakers[0]", "'agent', 'customer' or 'unknown'"),
        (lambda d: _set(d, ["agent_name"], "hide"), "agent_name", "'keep' or 'mask'"),
        (lambda d: _set(d, ["dialogue", "phrase_min_similarity"], 1.5), "dialogue.phrase_min_similarity", "less than or equal to 1"),
        (lambda d: _set(d, ["dialogue", "requests", 0, "phrases"], "account number"), "dialogue.requests[0].phrases", "valid list"),
        (lambda d: _set(d, ["dialogue", "name_patterns", 0], "(?P<pii>[A-Z"), "dialogue.name_patterns", "invalid regex"),
        (lambda d: _set(d, ["dialogue", "name_answer_max"], -1), "dialogue.name_answer_max", "greater than or equal to 0"),
        (lambda d: _set(d, ["recognizers", 0, "patterns", 0, "self_introduction"], "yes please"), "recognizers[0].patterns[0].self_introduction", "valid boolean"),
        (lambda d: _set(d, ["word_lists", "EN_GIVEN"], "no_such_names.txt"), "word_lists.EN_GIVEN", "word list 'no_such_names.txt' is neither in"),
        (lambda d: _set(d, ["word_lists", "STREET_TYPE"], "en_surnames.txt"), "word_lists.STREET_TYPE", "macro 'STREET_TYPE' is also defined in macros"),
        (lambda d: _set(d, ["word_lists", "EN_GIVEN"], 7), "word_lists.EN_GIVEN", "must be a file name"),
        (lambda d: _set(d, ["dialogue", "requests", 0, "value_patterns"], ["(?:"]), "dialogue.requests[0].value_patterns", "invalid regex"),
        (lambda d: _set(d, ["dialogue", "requests", 0, "value_patterns"], ["{{NO_SUCH}}"]), "(top level)", "unknown macro {{NO_SUCH}}"),
    ],
)  # fmt: skip
def test_broken_dialogue_yaml_is_rejected(tmp_path, mutate, where, reason):
    broken = _broken_en(tmp_path, mutate)
    with pytest.raises(RecognizerError) as exc:
        load_recognizers(broken)
    msg = str(exc.value)
    assert str(broken) in msg and where in msg and reason in msg


def test_empty_word_list_is_rejected_with_file_and_reason(tmp_path):
    (tmp_path / "names.txt").write_text("# nothing but a comment\n\n", "utf-8")
    broken = _broken_en(tmp_path, lambda d: _set(d, ["word_lists", "EN_GIVEN"], "names.txt"))
    with pytest.raises(RecognizerError) as exc:
        load_recognizers(broken)
    msg = str(exc.value)
    assert str(broken) in msg and "word_lists.EN_GIVEN" in msg and "has no entries" in msg


def test_word_list_is_part_of_the_set_and_its_hash(tmp_path):
    """A site's own list next to its YAML replaces the shipped one, and changes the hash."""
    (tmp_path / "en_given_names.txt").write_text("zebulon\n", "utf-8")
    path = _broken_en(tmp_path, lambda d: None)  # same YAML, copied next to the list
    own = load_recognizers(path)
    shipped = load_recognizers(RECOGNIZERS_DIR / "en.yaml")
    assert own.sha256 != shipped.sha256
    t = Transcript(
        language="en",
        utterances=[Utterance(speaker="customer", start=0, end=2, text="hi this is zebulon")],
    )
    assert redact(t, recognizer_sets=[own]).utterances[0].text == "hi this is [NAME]"
    assert redact(t, recognizer_sets=[shipped]).utterances[0].text == "hi this is zebulon"


@pytest.mark.parametrize(
    ("agent_name", "expect"),
    [
        ("keep", "您好，我是王芳，工号一零八六，很高兴为您服务。"),
        ("mask", "您好，我是[姓名]，工号一零八六，很高兴为您服务。"),
    ],
)
def test_agents_own_name_is_the_sets_decision(tmp_path, agent_name, expect):
    data = yaml.safe_load((RECOGNIZERS_DIR / "zh.yaml").read_text("utf-8"))
    data["agent_name"] = agent_name
    path = tmp_path / "zh.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    greeting = "您好，我是王芳，工号一零八六，很高兴为您服务。"
    turns = [["agent", greeting], ["customer", "你好，我是陈志强。"]]
    out = redact(_dialogue("zh", turns), recognizer_sets=[load_recognizers(path)])
    # the customer's own name is masked either way
    assert [u.text for u in out.utterances] == [expect, "你好，我是[姓名]。"]


def test_garbled_request_finding_says_what_was_heard():
    t = _dialogue(
        "en",
        [["agent", "Could you confirm your date on birth, please?"], ["customer", "June 2nd 1990"]],
    )
    (f,) = detect(t)
    assert (f.entity_type, f.text) == ("DATE_OF_BIRTH", "June 2nd 1990")
    assert "date on birth ~ date of birth" in f.reason and "date_of_birth" in f.reason


@pytest.mark.parametrize(
    ("text", "sets"),
    [
        ("May I have your account number please?", ["en@1.1"]),
        ("请问您的手机号码是多少？", ["zh@1.2"]),
        ("OK, 请提供一下卡号。", ["zh@1.2"]),  # one Latin word in Chinese: Chinese
        ("my name is David Chen, 我想查一下账单", ["en@1.1", "zh@1.2"]),
        ("4, 0, 9, 5, 4, 6, 1, 1.", ["zh@1.2"]),  # digits only: the call's language (zh)
    ],
)
def test_each_utterance_is_read_by_the_sets_of_its_own_script(text, sets):
    from pipeline.redact.language import call_sets, shipped_sets, utterance_sets

    available = shipped_sets()
    chosen = utterance_sets(text, available, call_sets(available, "zh"))
    assert sorted(s.label for s in chosen) == sets


def test_recognizer_sha256_follows_the_yaml(tmp_path):
    from pipeline.redact import recognizer_sha256

    shipped = recognizer_sha256()
    assert len(shipped) == 64 and shipped == recognizer_sha256()
    en, zh = (
        load_recognizers(RECOGNIZERS_DIR / "en.yaml"),
        load_recognizers(RECOGNIZERS_DIR / "zh.yaml"),
    )
    assert recognizer_sha256([zh, en]) == shipped
    changed = _broken_en(tmp_path, lambda d: _set(d, ["dialogue", "max_answers"], 2))
    assert recognizer_sha256([zh, load_recognizers(changed)]) != shipped


# --------------------------------------------------------------------------- audio


def test_redaction_intervals_sorted_and_merged():
    from pipeline.redact.audio_mask import redaction_intervals

    t = Transcript(language="en", utterances=[])
    assert redaction_intervals(t) == [] and redaction_intervals(None) == []
    t.redactions = [
        Redaction(utterance=0, start=a, end=b, type="ID", char_start=0, char_end=4, mask="[ID]")
        for a, b in [(5.0, 6.0), (1.0, 2.0), (1.5, 3.0), (7.0, 7.0)]  # last: empty, nothing to mask
    ]
    assert redaction_intervals(t) == [(1.0, 3.0), (5.0, 6.0)]


def test_mask_speech_widens_into_the_speech_the_word_times_miss():
    from pipeline.redact.audio_mask import PAD_S, mask_speech, speech_bounds

    sr = 8000
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.002, sr * 4)  # line noise
    for a, b in [(1.0, 1.3), (1.4, 2.0), (3.2, 3.6)]:  # two words of speech, then another
        x[round(a * sr) : round(b * sr)] += rng.normal(0, 0.1, round(b * sr) - round(a * sr))
    # the word times say 1.5-2.0: the speech started at 1.0 (a 0.1 s pause between words)
    ((lo, hi),) = speech_bounds(x, sr, [(1.5, 2.0)])
    assert lo == pytest.approx(1.0 - PAD_S, abs=0.03) and hi == pytest.approx(2.0 + PAD_S, abs=0.03)
    y = mask_speech(x, sr, [(1.5, 2.0)], mode="silence")
    assert not y[int(0.95 * sr) : int(2.05 * sr)].any()
    assert np.array_equal(y[int(3 * sr) :], x[int(3 * sr) :])  # the later speech stays


def _speech_call(turns: list[tuple[str, float, float, list[tuple[str, float, float]]]]):
    """A worded transcript and a one-channel signal with noise-speech under every word."""
    sr = 8000
    rng = np.random.default_rng(28)
    end = max(t[2] for t in turns) + 1.0
    x = rng.normal(0, 0.002, int(end * sr))
    utts = []
    for speaker, start, stop, words in turns:
        for _, a, b in words:
            x[round(a * sr) : round(b * sr)] += rng.normal(0, 0.1, round(b * sr) - round(a * sr))
        text = "".join(w for w, _, _ in words)
        utts.append(
            Utterance(
                speaker=speaker,
                start=start,
                end=stop,
                text=text,
                words=[Word(word=w, start=a, end=b) for w, a, b in words],
            )
        )
    return Transcript(call_id="issue28", language="zh", utterances=utts), x, sr


def test_every_new_span_kind_is_toned_in_the_audio():
    """Names, dates of birth and an English answer in a Chinese call: every span masked in
    the text is a redaction with the words' times, and the served audio holds the tone there
    and nowhere in the speech that stays."""
    from pipeline.redact.audio_mask import mask_speech, redaction_intervals

    turns = [
        ("agent", 0.0, 1.6, [("请问", 0.1, 0.5), ("怎么称呼", 0.6, 1.5), ("？", 1.5, 1.6)]),
        ("customer", 2.0, 3.6, [("我叫", 2.1, 2.4), ("王小明", 2.8, 3.5), ("。", 3.5, 3.6)]),
        ("agent", 4.0, 5.6, [("请问您的", 4.1, 4.6), ("出身日期", 4.7, 5.4), ("？", 5.4, 5.6)]),
        ("customer", 6.0, 8.0, [("八五年", 6.2, 6.9), ("三月十二", 7.1, 7.9)]),
        ("agent", 8.6, 10.4, [(" May I have your", 8.7, 9.4), (" account number?", 9.5, 10.3)]),
        ("customer", 10.8, 12.4, [(" 4, 0, 9, 5,", 11.0, 11.6), (" 4, 6, 1, 1.", 11.7, 12.3)]),
        ("customer", 13.0, 14.4, [("好的", 13.1, 13.5), ("谢谢", 13.7, 14.3)]),
    ]
    t, x, sr = _speech_call(turns)
    clean = redact(t)
    assert [u.text for u in clean.utterances[1::2]] == ["我叫[姓名]。", "[出生日期]", " [ACCOUNT]."]
    kinds = {(r.utterance, r.type, r.start, r.end) for r in clean.redactions}
    assert kinds == {
        (1, "PERSON", 2.8, 3.5),
        (3, "DATE_OF_BIRTH", 6.2, 7.9),
        (5, "ACCOUNT", 11.0, 12.3),
    }
    y = mask_speech(x, sr, redaction_intervals(clean))
    for a, b in [(2.8, 3.5), (6.2, 6.9), (7.1, 7.9), (11.0, 11.6), (11.7, 12.3)]:
        span = y[round(a * sr) : round(b * sr)]
        assert _tone_fraction(span, sr) > 0.95, (a, b)
    for a, b in [(0.1, 0.5), (2.1, 2.4), (4.1, 4.6), (8.7, 9.4), (13.1, 13.5), (13.7, 14.3)]:
        assert np.array_equal(y[round(a * sr) : round(b * sr)], x[round(a * sr) : round(b * sr)])


def _tone_fraction(x: np.ndarray, sr: int) -> float:
    """Share of the energy of ``x`` within 25 Hz of the 1 kHz tone."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[np.abs(freqs - 1000) <= 25].sum() / max(spec.sum(), 1e-20))


@pytest.mark.slow
def test_served_audio_has_the_tone_where_the_account_number_was_said(tmp_path):
    """c03: the real ASR model, redact, the store, the app's audio route and the API; the
    served recording is decoded and each masked span must hold the tone, not speech."""
    import wave

    from fastapi.testclient import TestClient

    from pipeline.app import create_app
    from pipeline.audio import decode_audio
    from pipeline.schema import CallJob
    from pipeline.store import dispose_engines, open_store
    from pipeline.store.review import ReviewStore
    from pipeline.transcribe.call import transcribe_call
    from tests.builders import FAST_HASHER, PASSWORD, make_result

    src = Path(__file__).parents[1] / "samples" / "archive" / "c03-forbidden.wav"
    transcript = transcribe_call(src, call_id="c03-forbidden", agent_channel=0, language="en")
    clean = redact(transcript)
    answers = [r for r in clean.redactions if r.type == "ACCOUNT"]
    assert answers, [u.text for u in transcript.utterances]
    for r in answers:
        assert not _digits(clean.utterances[r.utterance].text)

    url = f"sqlite:///{tmp_path / 'qa.db'}"
    store = open_store(url)
    job = CallJob(call_id="c03-forbidden", source=str(src), agent_id="A102", team="T1")
    store.save_scored(job, clean, make_result("c03-forbidden", False, True, "low"))
    reviews = ReviewStore(store, FAST_HASHER)
    reviews.add_user("rev", PASSWORD, "reviewer", None)
    reviews.add_user("liam", PASSWORD, "agent", "A102")
    app = create_app(url, var_dir=tmp_path / "var")
    try:
        client = TestClient(app)
        web = client.post(
            "/login",
            data={"username": "rev", "password": PASSWORD, "csrf_token": _csrf(client)},
            follow_redirects=False,
        )
        assert web.status_code == 303
        served = client.get("/calls/c03-forbidden/audio")
        assert served.status_code == 200
        token = {"Authorization": f"Bearer {reviews.issue_token('liam')}"}
        api = TestClient(app).get("/api/calls/c03-forbidden/audio", headers=token)
        assert api.status_code == 200 and api.content == served.content
    finally:
        dispose_engines()

    path = tmp_path / "served.wav"
    path.write_bytes(served.content)
    with wave.open(str(path)) as w:
        sr, n_ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, n_ch) / 32768.0
    original = decode_audio(src, sr).channels.T
    customer = 1  # agent_channel=0
    floor = np.percentile(
        [np.sqrt(np.mean(original[i : i + 160, customer] ** 2)) for i in range(0, len(original) - 160, 160)],
        10,
    )  # fmt: skip
    for r in answers:
        a, b = int(r.start * sr), int(r.end * sr)
        said = original[a:b, customer]
        assert np.sqrt(np.mean(said**2)) > 10 * floor and _tone_fraction(said, sr) < 0.2  # speech
        for ch in range(n_ch):
            span = x[a:b, ch]
            assert _tone_fraction(span, sr) > 0.95  # only the tone is left
            assert np.sqrt(np.mean(span**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)
        # nothing of the answer is left around the span either (word times run late)
        utt = clean.utterances[r.utterance]
        lo, hi = int(max(utt.start - 0.8, 0) * sr), int((utt.end + 0.8) * sr)
        hop = sr // 100
        frames = [x[i : i + hop, customer] for i in range(lo, hi - hop, hop)]
        toned = [_tone_fraction(f, sr) > 0.3 or np.abs(f).max() > 0.25 for f in frames]
        for k, f in enumerate(frames):
            if toned[k] or (k and toned[k - 1]) or (k + 1 < len(frames) and toned[k + 1]):
                continue
            assert np.sqrt(np.mean(f**2)) < 4 * floor, f"speech left at {(lo + k * hop) / sr:.2f}s"
    # speech elsewhere is untouched: the agent's request is still there
    req = next(u for u in clean.utterances if "account number" in u.text)
    a, b = int(req.start * sr), int(req.end * sr)
    assert np.corrcoef(x[a:b, 0], original[a:b, 0])[0, 1] > 0.99


def _csrf(client) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def test_work_per_utterance_does_not_grow_with_the_call(monkeypatch):
    # a 20,000-utterance call took 54 s to redact: every utterance normalised the text of
    # every personal number found before it; counted, not timed: twice the call, twice the work
    from benchmarks.long_transcript import long_transcript
    from pipeline.redact import digits, engine

    def normalisations(n: int) -> int:
        calls = 0

        def counted(text: str):
            nonlocal calls
            calls += 1
            return digits.normalize(text)

        monkeypatch.setattr(engine, "normalize", counted)
        findings = detect(long_transcript(n))
        monkeypatch.undo()
        assert findings, "the long call says personal numbers: nothing to compare with"
        return calls

    small, large = normalisations(300), normalisations(1200)
    assert large <= 4 * small * 1.05, (small, large)
