"""Chinese calls heard (issue 27): embedded multilingual model, language decision and its
overrides, the Chinese text stage, custom vocabulary. Real models on real audio; exact
Chinese words are not asserted (they differ between CPUs), only what holds on any."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import yaml

from pipeline.config import Settings
from pipeline.contracts import ContractError
from pipeline.scoring_config import asr_config as scoring_asr_config
from pipeline.transcribe.decode_config import ModelDecode, asr_config, decode_models
from pipeline.transcribe.model import ModelError
from pipeline.transcribe.models import (
    CACHE_ENV,
    embedded_models,
    install_embedded,
    resolve_embedded,
)
from pipeline.transcribe.segments import AsrSegment, AsrWord
from pipeline.transcribe.vocabulary import Lexicon, LexiconError, decode_hints, load_lexicon
from pipeline.transcribe.zh_text import (
    ZhTextError,
    ZhTextOptions,
    attach_fragments,
    load_options,
    normalise_segment,
    normalise_text,
)
from tests.builders import BASE_SHA256, counted_encoder_rows, needs_data

# --------------------------------------------------------------------------- embedded models


def test_base_is_reassembled_once_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = resolve_embedded("base")
    assert first is not None and first.parent == tmp_path
    digest = hashlib.sha256((first / "model.bin").read_bytes()).hexdigest()
    assert digest == BASE_SHA256 and (first / "model.bin").stat().st_size == 145_217_532
    assert {p.name for p in first.iterdir()} == {
        "model.bin", "config.json", "tokenizer.json", "vocabulary.txt"
    }  # fmt: skip
    made = (first / "model.bin").stat().st_mtime_ns
    assert resolve_embedded("base") == first  # the second time: found, not rebuilt
    assert (first / "model.bin").stat().st_mtime_ns == made
    assert resolve_embedded("large-v3") is None  # not embedded: left to faster-whisper
    assert set(install_embedded()) == {"tiny.en", "base"}


def _fake_packages(root: Path, contents: list[bytes]) -> list[str]:
    names = []
    for i, data in enumerate(contents, 1):
        name = f"callqa_fake_part{i}_{root.name}"
        pkg = root / name / "data"
        pkg.mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (pkg / f"model.bin.part{i}").write_bytes(data)
        (pkg / "config.json").write_text("{}")
        names.append(name)
    return names


def _models_file(tmp_path: Path, packages: list[str], sha: str, **extra) -> Path:
    spec = {
        "packages": packages,
        "directory": "data",
        "parts": [f"model.bin.part{i}" for i in range(1, len(packages) + 1)],
        "files": ["config.json"],
        "sha256": sha,
        **extra,
    }
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"fake": spec}}))
    return path


def test_parts_that_do_not_hash_right_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    packages = _fake_packages(tmp_path, [b"half one,", b"half two"])
    good = hashlib.sha256(b"half one,half two").hexdigest()
    ok = resolve_embedded("fake", _models_file(tmp_path, packages, good))
    assert (ok / "model.bin").read_bytes() == b"half one,half two"

    (tmp_path / "other").mkdir()
    bad = _models_file(tmp_path / "other", packages, "0" * 64)
    with pytest.raises(ModelError, match=r"fake: reassembled model.bin has sha256 .* refused"):
        resolve_embedded("fake", bad)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"fake-{good[:12]}"]


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = _models_file(tmp_path, ["callqa_no_such_part1", "callqa_no_such_part2"], "1" * 64)
    with pytest.raises(ModelError, match="needs the package callqa-no-such-part1"):
        resolve_embedded("fake", path)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"parts": ["a"]}, "one part per package and a sha256"),
        ({"sha256": "not-a-hash"}, "sha256"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_broken_models_file_is_refused_with_file_and_reason(tmp_path, spec, reason):
    path = _models_file(tmp_path, ["p1", "p2"], "2" * 64, **spec)
    with pytest.raises(ContractError, match=reason) as err:
        embedded_models(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- language decision


@pytest.fixture(scope="module")
def zh_clip() -> Path:
    return needs_data("zh/zh15_funasr_asr_example.wav")


@pytest.mark.slow
def test_default_settings_hear_chinese_in_chinese_and_english_in_english(zh_clip):
    from pipeline.transcribe import transcribe_call

    zh = transcribe_call(zh_clip, settings=Settings())
    d = zh.produced_by.language_decision
    assert (zh.language, d.language, d.method, d.model) == ("zh", "zh", "detected", "base")
    assert d.probability > 0.9 and d.model_sha256 == BASE_SHA256
    assert 4.0 < d.detected["mono"] <= 5.6  # the clip's speech (5.5 s) listened to
    text = "".join(u.text for u in zh.utterances)
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) >= 12, text  # Chinese, not English
    assert zh.produced_by.asr_model == "base"
    asr = zh.produced_by.asr
    assert asr["models"] == {"base": BASE_SHA256, "tiny.en": asr["models"]["tiny.en"]}
    assert asr["zh_text"]["numbers"]["min_digits"] == 3 and len(asr["zh_text"]["sha256"]) == 64
    assert asr["hotwords"] is None  # the shipped lexicon is off (it made CER worse)
    base = decode_models().models["base"]  # base decodes with its own row of the table
    assert (asr["chunk_length_s"], asr["beam_size"]) == (base.chunk_length_s, base.beam_size)
    # one word entry per character (character-level times), inside the utterance
    for u in zh.utterances:
        assert all(len(w.word.rstrip("，。？,.?!")) == 1 for w in u.words), u.words
        assert all(u.start - 0.01 <= w.start <= w.end <= u.end + 0.01 for w in u.words)

    en = transcribe_call(needs_data("jfk.flac"), settings=Settings())
    d = en.produced_by.language_decision
    assert (en.language, d.method, d.model) == ("en", "detected", "tiny.en")
    assert d.probability > 0.5 and en.produced_by.asr["hotwords"] is None
    assert (en.produced_by.asr["chunk_length_s"], en.produced_by.asr["beam_size"]) == (20, 3)
    assert "country" in " ".join(u.text for u in en.utterances).lower()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "settings", "expected"),
    [
        # the manifest's language column wins over detection: a Chinese clip decoded English
        ({"language": "en"}, {}, ("en", "manifest", "tiny.en")),
        ({"language": "zh-CN", "language_from": "option"}, {}, ("zh", "option", "base")),
        ({}, {"language": "en"}, ("en", "setting", "tiny.en")),
        # no English model set: base decodes English too
        ({"language": "en"}, {"asr_english_model": "none"}, ("en", "manifest", "base")),
        ({}, {"asr_model": "tiny.en"}, ("en", "english_only", "tiny.en")),
    ],
)
def test_a_given_language_overrides_detection(zh_clip, kwargs, settings, expected):
    from pipeline.transcribe import transcribe_call

    t = transcribe_call(zh_clip, settings=Settings(**settings), **kwargs)
    d = t.produced_by.language_decision
    assert (t.language, d.method, d.model) == expected
    assert d.probability == 1.0 and d.detected is None and len(d.model_sha256) == 64
    assert t.produced_by.asr_model == expected[2]


@pytest.mark.slow
def test_a_routing_rule_sets_the_language_before_transcription(zh_clip, tmp_path):
    """A routing row that picks an English form by queue decodes the call in English: the
    form's language overrides detection (recorded as ``routing``)."""
    from pipeline.process import CallProcessor
    from pipeline.schema import CallJob
    from pipeline.timing import StageTimer

    table = tmp_path / "routing.yaml"
    table.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "routes": [{"match": {"queue": "english_desk"}, "rubric": "en_telecom"}],
                "defaults": {"zh": "zh_ecommerce", "en": "en_telecom"},
            }
        )
    )
    settings = Settings(routing=str(table), database_url=f"sqlite:///{tmp_path}/x.db")
    processor = CallProcessor(settings)
    job = CallJob(call_id="c1", source=str(zh_clip), queue="english_desk")
    plan = processor.plan(job, check_scored=False)
    assert plan.route.rule == "table" and plan.rubric.language == "en"
    transcript = processor.transcript_stage(plan, StageTimer()).transcript
    d = transcript.produced_by.language_decision
    assert (d.language, d.method, d.model) == ("en", "routing", "tiny.en")
    # without the queue nothing routes before the language is known: detected
    plan = processor.plan(CallJob(call_id="c2", source=str(zh_clip)), check_scored=False)
    detected = processor.transcript_stage(plan, StageTimer()).transcript
    assert detected.produced_by.language_decision.method == "detected"
    assert detected.language == "zh"


def test_the_scoring_config_records_models_languages_and_text_stage():
    section = scoring_asr_config(Settings())
    assert section.model == "base" and section.english_model == "tiny.en"
    assert section.models["base"] == BASE_SHA256 and len(section.models["tiny.en"]) == 64
    assert section.languages == ["zh", "en"] and section.language == "auto"
    assert section.zh_text["sha256"] == load_options().sha256
    assert section.lexicon["use"] == "off" and len(section.lexicon["sha256"]) == 64
    assert "models" not in section.decode and "english_model" not in section.decode
    assert section.decode["by_model"]["tiny.en"] == {
        "chunk_length_s": 20,
        "beam_size": 3,
        "shared_windows": False,
    }
    assert section.decode["by_model"]["base"]["shared_windows"] is True
    changed = scoring_asr_config(Settings(asr_english_model="none"))
    assert changed.english_model is None and list(changed.models) == ["base"]
    assert Settings(asr_languages="ZH, en ,yue").asr_languages == "zh,en,yue"


def test_each_model_decodes_with_its_own_chunk_length_and_beam():
    config = asr_config(Settings())
    table = decode_models()
    assert config.by_model == {"base": table.models["base"], "tiny.en": table.models["tiny.en"]}
    base, tiny = table.models["base"], table.models["tiny.en"]
    assert (config.chunk_length_s, config.beam_size) == (base.chunk_length_s, base.beam_size)
    # a table where the models differ: the call's model picks its row
    config = config.model_copy(update={"by_model": {"base": base, "tiny.en": ModelDecode(
        chunk_length_s=12, beam_size=1)}})  # fmt: skip
    english = config.for_model("tiny.en")
    assert (english.chunk_length_s, english.beam_size) == (12, 1) and english.model == "base"
    assert config.for_model("base").chunk_length_s == base.chunk_length_s
    assert config.for_model("unlisted") == config
    assert (tiny.chunk_length_s, tiny.beam_size) == (20, 3)  # the English golden verdicts'
    given = asr_config(Settings(asr_chunk_seconds=25, beam_size=4))  # set: every model's
    assert {(r.chunk_length_s, r.beam_size) for r in given.by_model.values()} == {(25, 4)}
    assert (given.for_model("tiny.en").chunk_length_s, given.chunk_length_s) == (25, 25)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("version: 1\ndefault: {chunk_length_s: 40, beam_size: 3}\n", "default.chunk_length_s"),
        ("version: 1\ndefault: {chunk_length_s: 20, beam_size: 3}\nmodels: {b: {beam: 2}}\n",
         "models.b"),
        ("version: 1\n", "default"),
    ],
)  # fmt: skip
def test_a_broken_decode_table_is_refused_with_file_and_reason(tmp_path, body, reason):
    path = tmp_path / "decode_models.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ContractError, match=reason) as err:
        decode_models(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- Chinese text stage

TEXT_CASES = [
    # ASR text → what the transcript holds
    ("工号幺三五七", "工号1357。"),
    ("工号一三五七", "工号1357。"),
    ("工号1357", "工号1357。"),
    ("工号１３５７", "工号1357。"),  # full-width digits
    ("我的手机是一三八 一二三四 五六七八", "我的手机是138 1234 5678。"),
    ("卡号是六二二二 零二零一", "卡号是6222 0201。"),
    ("二零二四年", "2024年。"),
    # words, not numbers: stay as said
    ("我一个人", "我一个人。"),
    ("第一次来", "第一次来。"),
    ("十二点半", "十二点半。"),
    ("两个订单", "两个订单。"),
    # simplified characters
    ("臺灣銀行您好", "台湾银行您好。"),
    # punctuation where Whisper left none, and kept where it wrote its own
    ("您好 欢迎致电 请问有什么可以帮您", "您好，欢迎致电，请问有什么可以帮您。"),
    ("请问您是本人吗", "请问您是本人吗？"),
    ("好的，谢谢。", "好的，谢谢。"),
    ("好的,谢谢.", "好的，谢谢。"),  # Whisper's ASCII punctuation after Chinese
    ("利率是3.5%", "利率是3.5%。"),
    ("工号是一三五七 请稍等", "工号是1357，请稍等。"),
    # English words said inside Mandarin stay English words
    ("我是用 iPhone 下单的", "我是用 iPhone 下单的。"),
    ("OK", "OK"),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_chinese_text_table(text, expected):
    assert normalise_text(text) == expected


def test_options_switch_each_stage_off():
    plain = ZhTextOptions(
        simplified=False,
        punctuation={"enabled": False},
        numbers={"enabled": False},
    )
    assert normalise_text("臺灣 工号幺三五七", plain) == "臺灣 工号幺三五七"
    fewer = ZhTextOptions(numbers={"min_digits": 1})
    assert normalise_text("我一个人", fewer) == "我1个人。"


def test_characters_are_timed_within_their_token():
    words = [
        AsrWord("您好", 0.0, 0.4, 0.9),
        AsrWord("工号", 1.2, 1.6, 0.8),  # after a 0.8-s pause: a comma
        AsrWord("幺三五七", 1.6, 2.6, 0.7),
        AsrWord(" iPhone", 2.6, 3.0, 0.6),
    ]
    segment = normalise_segment(AsrSegment(0.0, 3.0, "您好工号幺三五七 iPhone", words=words))
    got = [(w.word, w.start, w.end) for w in segment.words]
    assert got == [
        ("您", 0.0, 0.2), ("好，", 0.2, 0.4), ("工", 1.2, 1.4), ("号", 1.4, 1.6),
        ("1", 1.6, 1.85), ("3", 1.85, 2.1), ("5", 2.1, 2.35), ("7", 2.35, 2.6),
        ("iPhone。", 2.6, 3.0),
    ]  # fmt: skip
    assert segment.text == "您好，工号1357 iPhone。"
    # every word is found in the text in order (what evidence and redaction timing need)
    cursor = 0
    for w in segment.words:
        cursor = segment.text.index(w.word, cursor) + len(w.word)


def test_a_tokens_probability_is_shared_out_over_its_characters():
    # 不好意思 as one Whisper token at 0.13 (split 25 in audio): each character keeps the
    # fourth root, so the four together still hold the token's probability
    words = [AsrWord("真", 0.0, 0.2, 0.97), AsrWord("不好意思", 0.2, 1.0, 0.13)]
    segment = normalise_segment(AsrSegment(0.0, 1.0, "真不好意思", words=words))
    probs = [w.probability for w in segment.words]
    assert probs[0] == 0.97 and probs[1:] == [0.6] * 4
    assert abs(math.prod(probs[1:]) - 0.13) < 0.005


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("numbers: {min_digits: 0}\n", "numbers.min_digits"),
        ("punctuation: {comma_pause: 1}\n", "punctuation: unknown key 'comma_pause'"),
        ("simplified: maybe\n", "simplified"),
        ("[not, a, mapping]\n", "expected a mapping"),
    ],
)
def test_a_broken_text_options_file_is_refused(tmp_path, body, reason):
    path = tmp_path / "zh_text.yaml"
    path.write_text(body)
    with pytest.raises(ZhTextError, match=reason) as err:
        load_options(path)
    assert str(path) in str(err.value)


def test_a_broken_hallucination_file_is_refused(tmp_path):
    from pipeline.transcribe.hallucination import RulesError, load_rules

    path = tmp_path / "hallucinations.yaml"
    path.write_text("always: ['字幕由Amara.org社区提供', '。。']\n")
    with pytest.raises(RulesError, match="empty after normalisation") as err:
        load_rules(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- vocabulary


def test_decode_hints_table():
    lex = Lexicon(
        version=1, use="hotwords", forms="hotwords", terms={"zh": ["工号", "分期"], "en": ["Acme"]}
    )
    assert decode_hints(lex, "zh", ["分期", "燕之屋"]) == {
        "hotwords": "工号、分期、燕之屋",
        "initial_prompt": None,
    }
    assert decode_hints(lex, "en") == {"hotwords": "Acme", "initial_prompt": None}
    assert decode_hints(lex, "ja") == {"hotwords": None, "initial_prompt": None}
    both = lex.model_copy(update={"use": "both"})
    assert decode_hints(both, "zh") == {"hotwords": "工号、分期", "initial_prompt": "工号、分期"}
    assert Lexicon(version=1, use=False).use == "off"  # YAML's bare off
    # the lexicon's terms off (the shipped default), a form's terms still the prompt
    off = lex.model_copy(update={"use": "off", "forms": "prompt"})
    assert decode_hints(off, "zh", ["燕之屋"]) == {"hotwords": None, "initial_prompt": "燕之屋"}
    assert decode_hints(off, "zh") == {"hotwords": None, "initial_prompt": None}
    hot = off.model_copy(update={"forms": "hotwords"})
    assert decode_hints(hot, "zh", ["燕之屋"]) == {"hotwords": "燕之屋", "initial_prompt": None}
    none = off.model_copy(update={"forms": "off"})
    assert decode_hints(none, "zh", ["燕之屋"]) == {"hotwords": None, "initial_prompt": None}
    assert Lexicon(version=1, forms=False).forms == "off"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("version: 1\nuse: always\n", "use"),
        ("version: 1\nterms: {zh: ['工号', '  ']}\n", "an empty term"),
        ("use: hotwords\n", "version"),
        ("version: 1\nterms: {zh: [" + ", ".join(["词"] * 65) + "]}\n", "at most 64"),
    ],
)
def test_a_broken_lexicon_is_refused_with_file_and_reason(tmp_path, body, reason):
    path = tmp_path / "lexicon.yaml"
    path.write_text(body)
    with pytest.raises(LexiconError, match=reason) as err:
        load_lexicon(path)
    assert str(path) in str(err.value)
    with pytest.raises(LexiconError, match="file not found"):
        load_lexicon(tmp_path / "absent.yaml")


def test_a_rubric_vocabulary_is_read():
    from pipeline.scripts_check import load_rubric

    rubric = load_rubric(Path(__file__).resolve().parents[1] / "rubrics" / "zh_bank_hotline.yaml")
    assert "华信银行" in rubric.vocabulary and "工号" in rubric.vocabulary
    # the shipped lexicon keeps its own terms off and gives a form's terms as hot words
    hints = decode_hints(load_lexicon(), "zh", rubric.vocabulary)
    assert hints["hotwords"] is None and hints["initial_prompt"].startswith("华信银行、信用卡")


@pytest.mark.slow
def test_hot_words_reach_faster_whisper(zh_clip, tmp_path, monkeypatch):
    """The form's vocabulary and the lexicon's terms are the options faster-whisper decodes
    with (hot words and prompt both here), and the transcript records them."""
    from faster_whisper.transcribe import BatchedInferencePipeline

    from pipeline.transcribe import transcribe_call

    lexicon = tmp_path / "lexicon.yaml"
    lexicon.write_text("version: 1\nuse: both\nforms: both\nterms: {zh: [达摩院]}\n")
    seen = []
    forward = BatchedInferencePipeline.forward

    def recording(self, features, tokenizer, metas, options):
        seen.append((options.hotwords, options.initial_prompt))
        return forward(self, features, tokenizer, metas, options)

    monkeypatch.setattr(BatchedInferencePipeline, "forward", recording)
    t = transcribe_call(
        zh_clip, settings=Settings(asr_lexicon=str(lexicon)), vocabulary=["语音识别模型"]
    )
    assert seen and set(seen) == {("达摩院、语音识别模型", "达摩院、语音识别模型")}
    assert t.produced_by.asr["hotwords"] == "达摩院、语音识别模型"
    assert t.produced_by.asr["initial_prompt"] == "达摩院、语音识别模型"


@pytest.mark.parametrize(
    ("job", "language", "first_term"),
    [
        ({"queue": "credit_card"}, "zh", "华信银行"),
        ({"queue": "after_sales"}, "zh", "客服"),
        ({}, "zh", "客服"),  # the language's default form
        ({"queue": "credit_card"}, "en", None),  # en_telecom: no vocabulary
        ({"queue": "credit_card"}, "ja", None),  # nothing routes it: scoring says why
        ({"rubric": "zh_bank_hotline"}, "en", None),  # a Chinese form's terms, not for English
    ],
)
def test_a_form_chosen_by_the_detected_language_gives_its_vocabulary(job, language, first_term):
    from pipeline.plan import Planner
    from pipeline.schema import CallJob

    terms = Planner(Settings()).vocabulary_for(
        CallJob(call_id="c", source="x.wav", **job), language
    )
    assert (terms[0] if terms else None) == first_term


@pytest.mark.slow
def test_a_call_routed_by_its_detected_language_is_decoded_with_its_forms_vocabulary(
    zh_clip, tmp_path
):
    """The manifest gives the queue but not the language: the routing row needs the
    language, so the call is planned without a form; once detection says zh, the bank
    form's vocabulary is the decode's prompt, as for a call whose language was given."""
    from pipeline.process import CallProcessor
    from pipeline.schema import CallJob
    from pipeline.timing import StageTimer

    processor = CallProcessor(Settings(database_url=f"sqlite:///{tmp_path}/x.db"))
    plan = processor.plan(
        CallJob(call_id="c1", source=str(zh_clip), queue="credit_card"), check_scored=False
    )
    assert plan.route is None
    transcript = processor.transcript_stage(plan, StageTimer()).transcript
    assert transcript.produced_by.language_decision.method == "detected"
    assert transcript.produced_by.asr["initial_prompt"].startswith("华信银行、信用卡")


@pytest.mark.slow
def test_english_said_inside_a_chinese_call_stays_english(tmp_path):
    """A Mandarin call with an English passage: decoded as Chinese, the English is written
    in English (transcribed, never translated)."""
    import shutil
    import subprocess

    if not shutil.which("sox"):
        pytest.skip("needs sox")
    from pipeline.transcribe import transcribe_call

    parts = [needs_data("zh/zh12_spark_ad_read.wav"), needs_data("zh/zh15_funasr_asr_example.wav")]
    jfk = tmp_path / "jfk16k.wav"
    subprocess.run(
        ["sox", str(needs_data("jfk.flac")), "-r", "16000", "-c", "1", str(jfk)], check=True
    )
    mixed = tmp_path / "mixed.wav"
    subprocess.run(["sox", *map(str, parts), str(jfk), str(mixed)], check=True)
    t = transcribe_call(mixed, settings=Settings())
    assert t.language == "zh" and t.produced_by.language_decision.method == "detected"
    text = " ".join(u.text for u in t.utterances)
    assert "country" in text.lower(), text
    assert sum("\u4e00" <= c <= "\u9fff" for c in text) >= 30, text


@pytest.mark.slow
def test_cli_language_option_is_recorded_as_option(zh_clip):
    from click.testing import CliRunner

    from pipeline.transcribe.cli import transcribe as transcribe_cmd

    out = CliRunner().invoke(
        transcribe_cmd, [str(zh_clip), "--language", "en", "--diarizer", "none"]
    )
    assert out.exit_code == 0, out.output
    made = json.loads(out.output)["produced_by"]
    assert made["language_setting"] == "en"
    decision = made["language_decision"]
    assert (decision["language"], decision["method"], decision["model"]) == (
        "en",
        "option",
        "tiny.en",
    )


@pytest.mark.slow
def test_a_stereo_call_is_detected_once_and_decoded_in_one_shared_window(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("sox"):
        pytest.skip("needs sox")
    from pipeline.transcribe import transcribe_call

    left, right = (
        needs_data("zh/zh15_funasr_asr_example.wav"),
        needs_data("zh/zh06_podcast_firered_S2.wav"),
    )
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    # agent first, then the customer after the agent's turn: one party per channel
    subprocess.run(["sox", str(left), str(a), "pad", "0", "6.5"], check=True)
    subprocess.run(["sox", str(right), str(b), "pad", "6", "0"], check=True)
    call = tmp_path / "call.wav"
    subprocess.run(
        ["sox", "-M", str(a), str(b), "-r", "8000", "-e", "a-law", str(call)], check=True
    )
    t = transcribe_call(call, settings=Settings())
    d = t.produced_by.language_decision
    assert (t.language, d.method, d.model) == ("zh", "detected", "base")
    # both parties' first speech shares the first window: listened to together
    assert set(d.detected) == {"0", "1"} and 8 < sum(d.detected.values()) <= 20.01
    assert {u.channel for u in t.utterances} == {0, 1}
    # words of the shared window land on their own channel: the agent speaks 0-5.5 s, the
    # customer from 6 s on
    for u in t.utterances:
        assert (u.end <= 6.2) if u.channel == 0 else (u.start >= 5.8), u
        assert all(u.start - 0.01 <= w.start <= w.end <= u.end + 0.01 for w in u.words)

    # the window's encoder pass is decoded too: one encoder row, as with the language given
    with counted_encoder_rows() as rows:
        detected = transcribe_call(call, settings=Settings())
        n_detected = sum(rows)
        rows.clear()
        given = transcribe_call(call, settings=Settings(), language="zh")
    assert n_detected == sum(rows) == 1  # one window for both parties, not one each
    assert [u.text for u in detected.utterances] == [u.text for u in given.utterances]


def test_a_number_split_by_the_other_partys_turn_keeps_its_times():
    # z08 at beam 5: "5" said before the agent's turn, "6788990" after it, one Whisper
    # segment; joined into one number first, its digits were timed evenly over the agent's
    # turn and the customer was found interrupting
    from pipeline.transcribe.call import text_pieces
    from pipeline.transcribe.segments import AsrSegment, AsrWord

    words = [
        ("五", 7.97, 8.43),
        ("六", 12.5, 12.64),
        ("七", 12.64, 12.86),
        ("八", 12.86, 13.1),
        ("八", 13.1, 13.24),
        ("九", 13.24, 13.44),
        ("九", 13.44, 13.6),
        ("零", 13.6, 13.78),
        ("零", 13.78, 13.96),
    ]  # fmt: skip  (Whisper base's words for z08, beam 5)
    segment = AsrSegment(
        start=7.97, end=13.96, text="五六七八八九九零零", channel=1,
        words=[AsrWord(w, a, b, 0.9) for w, a, b in words],
    )  # fmt: skip
    pieces = text_pieces([segment], "zh")
    times = [(w.start, w.end) for piece in pieces for w in piece.words]
    assert not any(a < 12.5 and b > 8.43 for a, b in times), times  # nothing in the gap
    assert [round(p.start, 2) for p in pieces] == [7.97, 12.5]


def _piece(text: str, start: float, end: float, channel: int = 0) -> AsrSegment:
    n = max(len(text), 1)
    step = (end - start) / n
    words = [
        AsrWord(ch, start + i * step, start + (i + 1) * step, 0.9) for i, ch in enumerate(text)
    ]
    return AsrSegment(start=start, end=end, text=text, words=words, channel=channel)


# (one party's pieces as (text, start, end), the texts after the fragment rule)
FRAGMENTS = [
    # the first character of a turn timed right after the party's previous turn
    (
        [
            ("您好，华信银行信用卡中心。", 1.2, 5.0),
            ("请。", 5.3, 5.5),
            ("问您是持卡人本人吗？", 14.5, 16.8),
        ],
        ["您好，华信银行信用卡中心。", "请问您是持卡人本人吗？"],
    ),
    (
        [("其他业务需要办理吗？", 47.5, 48.5), ("谢。", 48.9, 49.1), ("莱电再见。", 52.0, 53.5)],
        ["其他业务需要办理吗？", "谢莱电再见。"],
    ),
    (
        [
            ("请不要向他人透露您的卡号和验证。", 52.5, 55.0),
            ("感谢。", 55.5, 55.9),
            ("您的理解，请问还有其他可以帮您的吗？", 57.9, 61.0),
        ],
        ["请不要向他人透露您的卡号和验证。", "感谢您的理解，请问还有其他可以帮您的吗？"],
    ),
    # a reply that stands alone stays a turn
    (
        [("我想查账单。", 1.0, 2.5), ("好的。", 3.0, 3.4), ("是我本人。", 9.0, 10.0)],
        ["我想查账单。", "好的。", "是我本人。"],
    ),
    # long after the previous turn: a short turn of its own
    (
        [("请问您是持卡人本人吗？", 1.0, 3.0), ("算。", 8.0, 8.3), ("是我本人。", 12.0, 13.0)],
        ["请问您是持卡人本人吗？", "算。", "是我本人。"],
    ),
    # the last piece has no turn to join
    ([("没有了。", 61.1, 62.0), ("感。", 62.3, 62.5)], ["没有了。", "感。"]),
]


@pytest.mark.parametrize(("pieces", "texts"), FRAGMENTS)
def test_turn_start_fragments_join_the_next_turn(pieces, texts) -> None:
    options = load_options()
    assert options.fragments.enabled
    out = attach_fragments([_piece(*p) for p in pieces], options)
    assert [p.text for p in out] == texts
    for p in out:  # words rebuild the text and never start before the piece
        assert "".join(w.word for w in p.words) == p.text
        assert all(w.start >= p.start - 1e-9 for w in p.words)
    # speech seconds kept (the speech rate does not change)
    before = sum(e - s for _, s, e in pieces)
    assert sum(p.end - p.start for p in out) == pytest.approx(before)
