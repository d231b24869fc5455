"""Operators (keywords, regex, repeated, order, response, silence, interruption, speech rate,
talk ratio, duration, all_of / any_of / not, when), confidence-aware verdicts, conversation
metrics, numerals, golden cases of every shipped rubric, and noise robustness."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.config import RUBRICS_DIR
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import RubricError, check_items, conversation_metrics, parse_rubric
from pipeline.scripts_check.cases import CaseFile, load_cases, run_cases
from pipeline.scripts_check.conversation import silences, speech_rate
from pipeline.scripts_check.match import align
from pipeline.text import normalise, segment_words

ROOT = Path(__file__).resolve().parents[1]
CASES = RUBRICS_DIR / "cases"


def rubric_of(check: dict, when: dict | None = None, language: str = "zh", **top):
    item = {"id": "x", "title": "x", "points": 10, "check": check}
    if when is not None:
        item["when"] = when
    return parse_rubric(
        {
            "id": "t",
            "version": 1,
            "language": language,
            "title": "t",
            **top,
            "sections": [{"id": "s", "title": "s", "items": [item]}],
        }
    )


def call(*turns, step: float = 5.0, language: str = "zh") -> Transcript:
    """Turns: (speaker, text) every ``step`` s lasting 4 s, or (speaker, text, start, end)."""
    utts = []
    for k, t in enumerate(turns):
        start, end = (t[2], t[3]) if len(t) == 4 else (k * step, k * step + 4)
        utts.append(Utterance(speaker=t[0], start=start, end=end, text=t[1]))
    return Transcript(call_id="c", language=language, utterances=utts)


def verdict(check: dict, transcript: Transcript, when: dict | None = None, **top):
    (item,) = check_items(transcript, rubric_of(check, when, transcript.language, **top))
    return item


SHOP = call(
    ("agent", "您好，很高兴为您服务，工号1086"),
    ("customer", "我要投诉，你们的快递太慢了"),
    ("agent", "请问您是持卡人本人吗"),
    ("customer", "是的"),
    ("agent", "您的账单是三百元，这期可以分十二期"),
    ("customer", "好的，帮我办理吧"),
    ("agent", "非常抱歉给您带来不便，分期手续费一经收取不予退还"),
    ("agent", "请您再确认一下金额，请您再确认一下金额"),
    ("agent", "请问还有其他可以帮您的吗"),
)

TABLE = [
    # keywords
    ({"keywords": {"words": ["工号", "您好"]}}, True),
    ({"keywords": {"words": ["工号", "再见"], "match": "all"}}, False),
    ({"keywords": {"words": ["工号", "您好", "账单"], "at_least": 3}}, True),
    ({"keywords": {"words": ["工号", "再见", "抱歉"], "at_least": 3}}, False),
    ({"keywords": {"words": ["不知道", "这是规定"], "match": "none"}}, True),
    ({"keywords": {"role": "customer", "words": ["投诉"], "match": "none"}}, False),
    ({"keywords": {"words": ["投诉"]}}, False),  # said by the customer only
    # regex with exclusions
    ({"regex": {"pattern": "工号\\s*[0-9]{4}"}}, True),
    ({"regex": {"pattern": "工号\\s*[0-9]{4}", "within": {"last_turns": 2}}}, False),
    ({"regex": {"pattern": "分[一二三四五六七八九十]+期", "present": False}}, False),
    ({"regex": {"pattern": "账单", "exclude": ["您的账单"], "present": False}}, True),
    # repetition
    ({"repeated": {"phrases": ["请您再确认一下金额"], "min_count": 1}}, True),
    ({"repeated": {"phrases": ["非常抱歉"], "min_count": 2}}, False),
    ({"not": {"repeated": {"phrases": ["请您稍等"], "min_count": 2}}}, True),
    # order: identity before account details; disclosure before consent
    ({"order": {"first": {"phrases": ["持卡人本人"]}, "then": {"phrases": ["您的账单"]}}}, True),
    ({"order": {"first": {"phrases": ["您的账单"]}, "then": {"phrases": ["持卡人本人"]}}}, False),
    (
        {
            "order": {
                "first": {"phrases": ["持卡人本人"]},
                "then": {"phrases": ["您的账单"]},
                "max_turns": 1,
            }
        },
        False,
    ),
    (
        {
            "order": {
                "first": {"phrases": ["分期手续费一经收取不予退还"]},
                "then": {"role": "customer", "phrases": ["帮我办理吧"]},
            }
        },
        False,
    ),
    (
        {
            "order": {
                "first": {"phrases": ["持卡人本人"]},
                "then": {"phrases": ["注销成功"]},
                "if_absent": "fail",
            }
        },
        False,
    ),
    # response: apologise within N turns after a complaint
    (
        {
            "response": {
                "trigger": {"role": "customer", "phrases": ["投诉"]},
                "then": {"phrases": ["非常抱歉"]},
            }
        },
        True,
    ),
    (
        {
            "response": {
                "trigger": {"role": "customer", "phrases": ["投诉"]},
                "then": {"phrases": ["非常抱歉"]},
                "max_turns": 2,
            }
        },
        False,
    ),
    (
        {
            "response": {
                "trigger": {"role": "customer", "phrases": ["投诉"]},
                "then": {"phrases": ["非常抱歉"]},
                "max_seconds": 30,
            }
        },
        True,
    ),
    # composition
    (
        {
            "all_of": [
                {"keywords": {"words": ["工号"]}},
                {"required": {"phrases": ["您好很高兴为您服务"]}},
            ]
        },
        True,
    ),
    ({"all_of": [{"keywords": {"words": ["工号"]}}, {"required": {"phrases": ["再见"]}}]}, False),
    (
        {
            "any_of": [
                {"keywords": {"words": ["再见"]}},
                {"required": {"phrases": ["请问还有其他可以帮您的吗"]}},
            ]
        },
        True,
    ),
    ({"not": {"forbidden": {"phrases": ["非常抱歉"]}}}, True),
    # conversation
    ({"duration": {"min": 30, "max": 60}}, True),
    ({"duration": {"max": 20}}, False),
    ({"talk_ratio": {"role": "agent", "max": 0.6}}, False),
    ({"talk_ratio": {"role": "customer", "min": 0.2, "max": 0.5}}, True),
]


@pytest.mark.parametrize(("check", "passed"), TABLE)
def test_operator_table(check: dict, passed: bool) -> None:
    item = verdict(check, SHOP)
    assert item.passed is passed, item.reason
    assert item.evidence and item.reason


def test_order_failure_names_both_events() -> None:
    check = {"order": {"first": {"phrases": ["您的账单"]}, "then": {"phrases": ["持卡人本人"]}}}
    item = verdict(check, SHOP)
    assert "came before" in item.reason and [e.utterance for e in item.evidence] == [2, 4]


def test_order_absent_is_not_applicable_and_leaves_max() -> None:
    from pipeline.score import score_transcript

    check = {"order": {"first": {"phrases": ["持卡人本人"]}, "then": {"phrases": ["注销成功"]}}}
    result = score_transcript(SHOP, rubric_of(check), risk_fn=lambda t: None)
    (item,) = result.items
    assert (item.passed, item.applicable, item.needs_review) == (None, False, False)
    assert (result.total, result.max, result.needs_review) == (0, 0, False)


@pytest.mark.parametrize(
    ("when_text", "applicable", "passed"),
    [("我要投诉你们", True, False), ("我想查一下快递", False, None)],
)
def test_when_condition(when_text: str, applicable: bool, passed: bool | None) -> None:
    t = call(("agent", "您好"), ("customer", when_text), ("agent", "好的"))
    item = verdict(
        {"required": {"phrases": ["非常抱歉给您带来不便"]}},
        t,
        when={"keywords": {"role": "customer", "words": ["投诉"]}},
    )
    assert (item.applicable, item.passed) == (applicable, passed)
    assert item.needs_review is False


# --------------------------------------------------------------------------- conversation

GAPPY = call(
    ("agent", "您好，很高兴为您服务", 0, 3),
    ("customer", "我的额度是多少", 4, 6),
    ("agent", "您的额度是五万元", 20, 23),  # 14 s: agent expected, no hold
    ("agent", "请您稍等，我帮您查询一下", 24, 27),
    ("agent", "感谢您的耐心等待，已经查到了", 57, 60),  # 30 s announced hold
    ("customer", "你说慢一点我没听清楚你说的是什么", 61, 66),
    ("agent", "我说的是您的额度已经调整好了", 63, 67),  # cuts in: 3 s overlap
    ("customer", "好的", 66.5, 67.2),  # backchannel overlap: ignored
)


@pytest.mark.parametrize(
    ("check", "passed"),
    [
        ({"silence": {"max_seconds": 10}}, False),
        ({"silence": {"max_seconds": 15}}, True),  # the 30 s gap was announced
        ({"silence": {"max_seconds": 15, "max_hold_seconds": 20}}, False),
        ({"silence": {"max_seconds": 10, "role": "customer"}}, True),
        ({"silence": {"max_seconds": 10, "max_count": 1}}, True),
        ({"interruption": {"role": "agent"}}, False),
        ({"interruption": {"role": "agent", "min_overlap": 3.5}}, True),
        ({"interruption": {"role": "customer"}}, True),
        ({"speech_rate": {"min": 230, "max": 300}}, False),
        ({"speech_rate": {"min": 180, "max": 200}}, False),
        ({"speech_rate": {"min": 180, "max": 250}}, True),
        ({"speech_rate": {"min": 100, "max": 250}}, True),
        # 206.2 chars/min: within 5 % of 200 passes as within the measuring tolerance, not 2 %
        ({"speech_rate": {"min": 180, "max": 200, "tolerance": 0.05}}, True),
        ({"speech_rate": {"min": 180, "max": 200, "tolerance": 0.02}}, False),
        ({"speech_rate": {"min": 215, "max": 300, "tolerance": 0.05}}, True),
        ({"speech_rate": {"min": 230, "max": 300, "tolerance": 0.05}}, False),
        (
            {"speech_rate": {"role": "customer", "min": 100, "max": 250, "min_speech_seconds": 30}},
            None,
        ),
    ],
)
def test_conversation_operators(check: dict, passed: bool | None) -> None:
    item = verdict(check, GAPPY)
    assert item.passed is passed, item.reason
    assert item.evidence


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("您好，很高兴为您服务", 9),  # punctuation is no speech
        ("您的额度是五万元", 8),  # 五万: two characters said, not 50000
        ("固定额度是两万，临时调到三万五，三十天有效", 19),
        ("工号56203", 7),  # ASR's digits: one a digit
        ("还款8300元", 7),  # near miss: ASR's 8300 is said 八千三百, four
        ("一二三四", 4),  # digits said one by one
    ],
)
def test_zh_speech_rate_counts_characters_as_spoken(text: str, units: int) -> None:
    t = call(("agent", text, 0, 60))
    assert speech_rate(t, "agent")["units"] == units


@pytest.mark.parametrize(
    ("agent_turn", "announced"),
    [
        ("我帮您核实一下，请您稍等，不要挂机。", True),
        ("好的，我这边核对一下，稍等哈。", True),
        # a hold phrase, then the customer asked for something: the floor is theirs, and the
        # silence after their answer was announced by nothing (split 12, j06)
        ("可以的，先核实一下您的身份，请您报一下身份证号码。", False),
        ("可以对先核实一下您的身份，请您抱一下身份证号码。", False),  # 报 heard 抱
        ("请您报一下身份证号码，我帮您核实一下。", True),  # the wait announced last
        ("您先别撂电话，我去仓库那边查一下。", True),  # split 13
        # split 18 in audio: the ask garbled (说一下 heard 输依下), what to give still named
        ("我先核实依下您的身份，请输依下您的姓名和办卡是留在手机号码。", False),
        ("请稍等我核实一下您的身份证信息。", True),  # a wait, not an ask
        ("烦请保持线路，片刻即回。", True),  # hold the line (split 18)
        ("请您暂勿挂线，容我片刻。", True),  # a formal hold (split 19)
        ("恳请您暂勿挂线，本人去去即回。", True),  # (split 20)
        ("恳请持线少待，勿挂断。", True),  # (split 24)
        ("肯请迟线少代误挂短。", True),  # ... as heard (split 24 in audio)
        ("这个情况我也说不好，您看呢。", False),
    ],
)
def test_a_hold_phrase_before_a_request_to_the_customer_announces_no_wait(
    agent_turn: str, announced: bool
) -> None:
    t = call(
        ("agent", agent_turn, 0, 4),
        ("customer", "好的，是幺幺零一零五一九八六零三二七零四两八。", 5, 9),
        ("agent", "好了，是您本人。", 27, 29),
    )
    (gap,) = [s for s in silences(t) if s["duration"] >= 15]
    assert gap["hold_announced"] is announced


@pytest.mark.parametrize(
    ("agent_turn", "announced"),
    [
        ("Please hold while I check that.", True),
        ("Let me check that for you. Can you confirm your date of birth?", False),
    ],
)
def test_an_english_hold_phrase_before_a_request_announces_no_wait(
    agent_turn: str, announced: bool
) -> None:
    t = call(
        ("agent", agent_turn, 0, 4),
        ("customer", "Sure, it's the third of May, nineteen eighty.", 5, 9),
        ("agent", "Thanks, that's all verified.", 27, 29),
        language="en",
    )
    (gap,) = [s for s in silences(t) if s["duration"] >= 15]
    assert gap["hold_announced"] is announced


def test_conversation_metrics_for_risk_engine() -> None:
    m = conversation_metrics(GAPPY)
    assert [
        (s["after_utterance"], s["expected"], s["hold_announced"]) for s in m["long_silences"]
    ] == [
        (1, "agent", False),
        (3, "agent", True),
    ]
    assert [(i["utterance"], i["by"], i["interrupted"]) for i in m["agent_interruptions"]] == [
        (6, "agent", 5)
    ]
    assert m["interruptions"] == m["agent_interruptions"]  # the 好的 backchannel is not one
    agent = m["speech_rate"]["agent"]
    assert (
        agent["unit"] == "chars/min" and agent["rate"] == 206.2
    )  # 55 characters as spoken in 16 s (五万: 2, not the matcher's 50000)
    assert abs(sum(m["talk_ratio"].values()) - 1) < 1e-6
    assert m["max_silence"] == 30


def test_english_speech_rate_in_words() -> None:
    t = call(
        ("agent", "thank you for calling northwind telecom how can I help you today", 0, 4),
        language="en",
    )
    assert conversation_metrics(t)["speech_rate"]["agent"]["rate"] == 180.0  # 12 words in 4 s


# --------------------------------------------------------------------------- confidence


def _with_conf(text: str, prob: float | None, conf: float | None) -> Transcript:
    words = (
        None
        if prob is None
        else [
            {"word": text[k : k + 2], "start": k * 0.2, "end": k * 0.2 + 0.2, "probability": prob}
            for k in range(0, len(text), 2)
        ]
    )
    return Transcript(
        utterances=[
            Utterance(speaker="agent", start=0, end=3, text=text, words=words, confidence=conf)
        ]
    )


@pytest.mark.parametrize(
    ("check", "critical", "prob", "conf", "passed"),
    [
        ({"required": {"phrases": ["您好很高兴为您服务"]}}, False, 0.95, None, True),
        ({"required": {"phrases": ["您好很高兴为您服务"]}}, False, 0.3, None, None),  # weak pass
        ({"required": {"phrases": ["您好很高兴为您服务"]}}, False, None, 0.3, None),
        ({"required": {"phrases": ["您好很高兴为您服务"]}}, False, None, None, True),  # text
        ({"forbidden": {"phrases": ["不归我管"]}}, True, 0.3, None, None),  # weak red line
        ({"forbidden": {"phrases": ["不归我管"]}}, True, 0.9, None, False),
        ({"forbidden": {"phrases": ["不归我管"]}}, False, 0.3, None, False),  # not critical
    ],
)
def test_low_confidence_verdicts_need_review(check, critical, prob, conf, passed) -> None:
    text = "您好很高兴为您服务" if "required" in check else "这个不归我管"
    r = rubric_of(check)
    r.sections[0].items[0].critical = critical
    (item,) = check_items(_with_conf(text, prob, conf), r)
    assert item.passed is passed, item.reason
    assert item.needs_review is (passed is None)
    if passed is None:
        assert "low-confidence" in item.reason


# the utterance's first word is left out of a span that holds more: Whisper scores the onset
# low whatever was said ("Morning," 0.15 before "Northwind Telecom broadband", held-out 18)
@pytest.mark.parametrize(
    ("probs", "passed"),
    [
        ([0.15, 0.75, 0.61, 0.44], True),  # the onset alone low: decided
        ([0.9, 0.3, 0.3, 0.3], None),  # the rest low: review
        ([0.15, 0.3, 0.4, 0.44], None),  # low throughout: review
    ],
)
def test_a_low_onset_word_alone_sends_nothing_to_review(probs, passed) -> None:
    text = "Morning Northwind Telecom broadband"
    words = [
        {"word": w, "start": k * 0.5, "end": k * 0.5 + 0.4, "probability": p}
        for k, (w, p) in enumerate(zip(text.split(), probs, strict=True))
    ]
    t = Transcript(
        language="en",
        utterances=[Utterance(speaker="agent", start=0, end=2, text=text, words=words)],
    )
    (item,) = check_items(t, rubric_of({"required": {"phrases": ["morning northwind telecom"]}}))
    assert item.passed is passed, item.reason


# a regex pass rests on the characters the pattern does not take in other forms: ASR's doubt
# between 工 and 公, or between digits, is no doubt about "a job number was said" (split 18:
# 工 heard at 0.02-0.12 in every 工号); a literal the pattern needs still sends it to review
@pytest.mark.parametrize(
    ("text", "low", "pattern", "passed"),
    [
        ("您好，工号2416，请讲", "工号2416", "[工公宫][号好][0-9]{3,}", True),
        ("您好，工号2416，请讲", "工", "[工公宫][号好][0-9]{3,}", True),
        ("您好，工号2416，请讲", "工号2416", "工号[0-9]{3,}", None),  # 工号 literal
        ("您好，工号2416，请讲", "2416", "工号[0-9]{3,}", True),  # the digits only
        ("您好，工号24-038，请讲", "-", "[工公宫][号好][0-9]{2}[-－]?[0-9]{3}", True),  # a dash
        (
            "您好，工号2416，请讲",
            "好，工号",
            "您好[，,]?[工公宫][号好][0-9]{3,}",
            None,
        ),  # 您好 needed
    ],
)
def test_a_regex_pass_rests_on_what_the_pattern_needs(text, low, pattern, passed) -> None:
    a = text.index(low)
    words = [
        {"word": ch, "start": k * 0.2, "end": k * 0.2 + 0.2,
         "probability": 0.05 if a <= k < a + len(low) else 0.95}
        for k, ch in enumerate(text)
    ]  # fmt: skip
    t = Transcript(
        language="zh",
        utterances=[Utterance(speaker="agent", start=0, end=3, text=text, words=words)],
    )
    check = {"regex": {"role": "agent", "pattern": pattern, "sounds_like": False}}
    (item,) = check_items(t, rubric_of(check))
    assert item.passed is passed, item.reason


def test_rubric_confidence_threshold_overrides_default() -> None:
    r = rubric_of(
        {"required": {"phrases": ["您好很高兴为您服务"]}}, confidence={"min_word_probability": 0.2}
    )
    (item,) = check_items(_with_conf("您好很高兴为您服务", 0.3, None), r)
    assert item.passed is True


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("phrase", "text", "low", "high"),
    [
        ("分十二期", "分12期", 1.0, 1.0),
        ("一百二十三元", "123元", 1.0, 1.0),
        ("十分抱歉", "十分抱歉", 1.0, 1.0),  # 十分 is not a number
        ("千万不要透露验证码", "千万不要透露验证码", 1.0, 1.0),
        ("亲，在的", "在的亲，有什么问题您说", 0.6, 0.7),  # alignment alone: reordered
    ],
)
def test_numerals_and_alignment(phrase: str, text: str, low: float, high: float) -> None:
    assert low <= align(normalise(phrase, "zh"), normalise(text, "zh"), "zh").similarity <= high


def test_reordered_clauses_still_required() -> None:
    item = verdict(
        {"required": {"phrases": ["亲，在的"]}}, call(("agent", "在的亲，有什么问题您说"))
    )
    assert item.passed is True and "another order" in item.evidence[0].differences


def test_jieba_user_dictionary_keeps_script_phrases_whole() -> None:
    words = segment_words("您好，工号一零八六，很高兴为您服务", ["很高兴为您服务"])
    assert "很高兴为您服务" in words and "工号" in words


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("这个我也不知道，您去问物流吧", True),  # the comma: not the polite form
        ("不知道您现在方便吗", False),
        ("不知道宁现在方便吗", False),  # homophone ASR error in the polite form
        ("我不是说不可能，只是需要时间", False),  # negated
        ("退全款是不可能的", True),
    ],
)
def test_forbidden_context_rules(text: str, hit: bool) -> None:
    item = verdict({"forbidden": {"phrases": ["不知道", "不可能"]}}, call(("agent", text)))
    assert item.passed is (not hit), item.reason


def test_forbidden_literal_when_context_rules_off() -> None:
    check = {"forbidden": {"phrases": ["不知道"], "context_exclusions": False}}
    assert verdict(check, call(("agent", "不知道您现在方便吗"))).passed is False


# --------------------------------------------------------------------------- broken rubrics


@pytest.mark.parametrize(
    ("check", "where"),
    [
        ({"keywords": {"words": ["a"], "at_least": 2}}, "check.keywords: at_least 2 > 1 words"),
        (
            {"keywords": {"words": ["a", "b"], "match": "all", "at_least": 1}},
            "check.keywords: at_least goes",
        ),
        ({"regex": {"pattern": "工号(["}}, "check.regex.pattern: invalid regular expression"),
        ({"order": {"first": {"phrases": ["a"]}}}, "check.order: missing key 'then'"),
        (
            {
                "order": {
                    "first": {"phrases": ["a"]},
                    "then": {"phrases": ["b"]},
                    "if_absent": "skip",
                }
            },
            "check.order.if_absent: ",
        ),
        (
            {"all_of": [{"required": {"phrases": ["a"]}}, {"required": {"phrase": ["b"]}}]},
            "check.all_of[1].required: missing key 'phrases'",
        ),
        ({"not": {"silense": {}}}, "check.not: unknown operator 'silense'"),
        ({"speech_rate": {"min": 300, "max": 200}}, "check.speech_rate: min 300 > max 200"),
        ({"speech_rate": {}}, "check.speech_rate: needs min, max or both"),
        ({"silence": {"max_seconds": -1}}, "check.silence.max_seconds: "),
        ({"any_of": []}, "check.any_of: "),
        (
            {"all_of": [{"required": {"phrases": ["，"]}}]},
            "check.all_of[0].required.phrases[0]: phrase",
        ),
    ],
)
def test_broken_operator_rejected(tmp_path: Path, check: dict, where: str) -> None:
    from pipeline.scripts_check import load_rubric

    data = {
        "id": "t",
        "version": 1,
        "language": "zh",
        "title": "t",
        "sections": [
            {
                "id": "s",
                "title": "s",
                "items": [{"id": "x", "title": "x", "points": 1, "check": check}],
            }
        ],
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert str(info.value).startswith(f"{path}: sections[0].items[0].{where}"), str(info.value)


# --------------------------------------------------------------------------- golden cases


@pytest.mark.parametrize("path", sorted(RUBRICS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_rubric_has_passing_golden_cases(path: Path) -> None:
    from pipeline.scripts_check import load_rubric

    cases_path = CASES / path.name
    assert cases_path.exists(), f"no golden cases for {path.name} in {CASES}"
    cases = load_cases(cases_path)
    rubric = load_rubric(path)
    n, failures = run_cases(rubric, cases, cases_path)
    assert n >= 10 and not failures, "\n".join(f.line() for f in failures)


def test_cli_rubric_test_reports_failures(tmp_path: Path) -> None:
    from pipeline.scripts_check.cli import rubric

    bad = tmp_path / "cases.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"cases": [{"id": "wrong", "turns": [{"agent": "喂"}], "expect": {"greeting": True}}]},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    res = CliRunner().invoke(rubric, ["test", "zh_bank_hotline", str(bad)])
    assert res.exit_code == 1
    assert "FAIL wrong: greeting: expected true, got false" in res.output
    ok = CliRunner().invoke(rubric, ["test", "en_telecom", str(CASES / "en_telecom.yaml")])
    assert ok.exit_code == 0 and "0 failed" in ok.output


def test_cases_file_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="turn 0"):
        CaseFile.model_validate(
            {"cases": [{"id": "a", "turns": [{"boss": "x"}], "expect": {"g": True}}]}
        )
    path = tmp_path / "c.yaml"
    path.write_text(
        "cases:\n  - id: a\n    turns: [{agent: 您好}]\n    expect: {nope: true}\n", "utf-8"
    )
    from pipeline.scripts_check import load_rubric

    with pytest.raises(RubricError, match="unknown item"):
        run_cases(load_rubric("zh_ecommerce"), load_cases(path), path)


# --------------------------------------------------------------------------- noise


def test_noise_robustness_small_fixed_seed_set() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import script_adherence as sa

    rubric = parse_rubric(yaml.safe_load(sa.RUBRIC_YAML))
    clean = sa.build_set(120, seed=3)
    f1 = {}
    for rate in (0.0, 0.2):
        rng = random.Random(5)
        verdicts = [
            {i.id: i.passed for i in check_items(Transcript.model_validate(noisy), rubric)}
            for noisy in (sa.noisy(t, rate, rng) for t, _ in clean)
        ]
        pairs = sa.pairs_by_item(clean, verdicts)
        f1[rate] = {k: sa.prf(v)[2] for k, v in pairs.items()}
    assert min(f1[0.0].values()) >= 0.97, f1
    assert min(f1[0.2].values()) >= 0.9, f1
