"""pipeline.text: script and language of a text, and its normalised forms, as a table."""

from __future__ import annotations

import unicodedata

import pytest

from pipeline.text import (
    cjk_share,
    detect_language,
    has_cjk,
    is_cjk,
    normalise,
    normalise_for_match,
    to_simplified,
)

# text, has Chinese, language, normalise_for_match, normalise(text, language).normalised
TABLE = [
    ("您好，工號 1234 為您服務", True, "zh", "您好工号1234为您服务", "您好工号一二三四为您服务"),
    ("Thank you, for CALLING!", False, "en", "thank you for calling", "thank you for calling"),
    ("I can't find my order", False, "en", "i can t find my order", "i can not find my order"),
    ("嗯，那个，我的订单号是幺三八", True, "zh", "嗯那个我的订单号是幺三八", "我的订单号是一三八"),
    ("我要退款 refund", True, "zh", "我要退款refund", "我要退款refund"),
    ("Please call 400 1234, 谢谢", True, "en", "please call 400 1234谢谢", "please call 400 1234"),
    ("字幕由Amara.org社区提供", True, "zh", "字幕由amara.org社区提供", "字幕由amaraorg社区提供"),
    ("thirty four, um, twenty", False, "en", "thirty four um twenty", "34 20"),
    ("ＶＩＰ客户１２３", True, "zh", "vip客户123", "v i p 客 户 一 二 三"),  # full width
    ("... 123 !!", False, None, "123", "123"),
    ("", False, None, "", ""),
    ("㐀 豈", True, "zh", "㐀岂", "㐀岂"),  # extension A and compatibility ideographs count
    # tiny.en drops apostrophes: the spelling is read as the contraction ...
    ("whats the number youre calling", False, "en", "whats the number youre calling",
     "what is the number you are calling"),
    ("i dont know im sorry", False, "en", "i dont know im sorry", "i do not know i am sorry"),
    # ... unless it is another English word
    ("ill call were its lets well", False, "en", "ill call were its lets well",
     "ill call were its lets well"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "cjk", "language", "plain", "units"), TABLE)
def test_script_language_and_normalised_forms(text, cjk, language, plain, units):
    assert has_cjk(text) is cjk
    assert detect_language(text) == language
    assert normalise_for_match(text) == plain
    assert normalise(text, language or "en").normalised == units


@pytest.mark.parametrize(
    ("text", "share"),
    [("您好", 1.0), ("ok 您好", 0.5), ("hello", 0.0), ("12 !", 0.0), ("ab您", 1 / 3)],
)
def test_cjk_share_counts_letters_only(text, share):
    assert cjk_share(text) == pytest.approx(share)


def test_language_threshold_is_a_third_of_letters():
    assert detect_language("my refund 退款") == "en"  # 2 of 10 letters
    assert detect_language("my 退款") == "zh"  # 2 of 4 letters


@pytest.mark.parametrize(("ch", "cjk"), [("中", True), ("a", False), ("。", False), ("1", False)])
def test_is_cjk(ch, cjk):
    assert is_cjk(ch) is cjk


@pytest.mark.parametrize(
    ("text", "expected"),
    [("請問還有什麼可以幫您", "请问还有什么可以帮您"), ("hello", "hello"), ("頭髮", "头发")],
)
def test_traditional_to_simplified(text, expected):
    assert to_simplified(text) == expected


def test_units_keep_original_spans_and_sound_codes():
    norm = normalise("您好，工號12", "zh")
    assert norm.units == ("您", "好", "工", "号", "一", "二")
    assert norm.original_span(2, 4) == (3, 5)  # 工號 in the original text
    assert normalise("工号", "zh").codes == normalise("公好", "zh").codes  # homophones


def test_segmentation_does_not_depend_on_the_rubrics_loaded_before() -> None:
    """A rubric's phrases segment as one word for that rubric only: another rubric scored
    earlier in the same process (or not) never changes a call's words."""
    from pipeline.text import segment_words

    text = "祝您购物愉快，再见"
    plain = segment_words(text)
    assert "祝您购物愉快" in segment_words(text, ["祝您购物愉快"])
    assert segment_words(text) == plain
    assert "祝您购物愉快" not in plain


@pytest.mark.parametrize(
    "text",
    [
        "好的…您的账单是１２３元，对吧",
        "您好⋯请问有什么可以帮您？",
        "Sorry… may I have your account, please?",
    ],
)
def test_clause_spans_are_the_texts_own_after_marks_nfkc_lengthens(text):
    # NFKC writes … as "...": spans of the folded text pointed past the evidence they cite
    from pipeline.text import clauses

    for words in (False, True):
        for start, end, clause in clauses(text, words=words):
            assert unicodedata.normalize("NFKC", text[start:end]) == clause, (text, clause)
