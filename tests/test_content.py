"""Key words and content words of English ``required`` phrases (scripts_check/content.py):
tables of agent line -> verdict with the shipped en_telecom rubric (its [bracketed] key
words), and the pieces one by one. The paraphrase model is off here (``semantic: false``)
so that each verdict is the lexical + content-word route's own."""

from __future__ import annotations

import pytest

from pipeline.config import resolve_rubric_path
from pipeline.contracts import read_yaml
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import check_items, parse_rubric
from pipeline.scripts_check.content import (
    adds_negation,
    content_match,
    content_settings,
    key_terms,
    keys_heard,
    plain,
    word_heard,
)
from pipeline.text import normalise


@pytest.fixture(scope="module")
def telecom():
    data = read_yaml(resolve_rubric_path("en_telecom"))[0]
    return parse_rubric({**data, "semantic": False}, path="rubrics/en_telecom.yaml")


def verdict(rubric, item: str, line: str) -> tuple[bool | None, str]:
    t = Transcript(
        call_id="c",
        language="en",
        utterances=[
            Utterance(speaker="agent", start=0, end=3, text=line),
            Utterance(speaker="customer", start=4, end=5, text="okay"),
        ],
    )
    (r,) = [r for r in check_items(t, rubric) if r.id == item]
    return r.passed, r.reason


@pytest.mark.parametrize(
    ("item", "line", "passed"),
    [
        # the false fails: ASR slips, word order, politeness, contractions
        ("identity_check", "Could you confirm your date on birth, please?", True),
        ("identity_check", "May I have your date of birth?", True),  # acts of other phrases
        ("identity_check", "What's your account number?", True),
        ("anything_else", "Is there anything else I can help you with today?", True),
        ("anything_else", "Can I help you with anything else?", True),
        ("farewell", "thank for calling Northwind goodbye", True),
        ("farewell", "Thanks so much for calling, take care, bye.", True),
        ("greeting", "thank for calling north wind telecom", True),  # split name
        ("greeting", "Northwind Telecom, thank you for calling, this is Maria.", True),
        # the false passes: another company, the topic without the act, negations
        ("greeting", "Thank you for calling at me, telecom", False),
        ("greeting", "Welcome to Southwind Telecom, how can I help?", False),
        ("greeting", "Did you call Northwind Telecom before?", False),
        ("identity_check", "Your date of birth is on file.", False),
        ("identity_check", "I can see your date of birth here already.", False),
        ("identity_check", "We don't need your date of birth.", False),
        ("anything_else", "There isn't anything else I can do for you.", False),
        ("anything_else", "Anything else will have to wait until Monday.", False),
        ("farewell", "Thanks for holding.", False),
        ("farewell", "Have a great day.", False),
    ],
)
def test_en_telecom_lines(telecom, item: str, line: str, passed: bool) -> None:
    got, reason = verdict(telecom, item, line)
    assert got is passed, reason


@pytest.mark.parametrize(
    ("phrase", "plain_text", "keys"),
    [
        ("thank you for calling [northwind] telecom", "thank you for calling northwind telecom",
         (("northwind",),)),
        ("can you confirm your [date of birth]", "can you confirm your date of birth",
         (("date", "birth"),)),  # "of" is not required: ASR swaps it
        ("is there anything else", "is there anything else", ()),
    ],
)  # fmt: skip
def test_key_terms(phrase: str, plain_text: str, keys) -> None:
    assert plain(phrase) == plain_text
    assert key_terms(phrase, "en") == keys


@pytest.mark.parametrize(
    ("word", "spoken", "heard"),
    [
        ("northwind", "northwin", True),
        ("northwind", "southwind", False),  # another company: ratio 78 < 80
        ("birth", "bath", True),  # same consonant skeleton (tiny.en)
        ("calling", "colin", True),
        ("read", "already", False),  # a slip keeps the length
        ("date", "dato", True),
        ("a", "i", False),
    ],
)
def test_word_heard(word: str, spoken: str, heard: bool) -> None:
    cfg = content_settings("en")
    assert word_heard(word, spoken, cfg.key_min_ratio, cfg) is heard


def test_keys_negations_and_no_route_for_chinese() -> None:
    utt = normalise("thanks for calling north wind", "en")
    assert keys_heard((("northwind",),), utt, "en")
    assert not keys_heard((("acme",),), utt, "en")
    assert adds_negation("is there anything else", normalise("there isn't anything", "en"), "en")
    assert not adds_negation("i can not", normalise("i can't", "en"), "en")
    assert content_match(["请问还有别的需要吗"], normalise("还有别的需要吗", "zh"), "zh") is None
    # zh: bracketed key words must be said as written
    assert keys_heard((("华信",),), normalise("欢迎致电华信银行", "zh"), "zh")
    assert not keys_heard((("华信",),), normalise("欢迎致电招商银行", "zh"), "zh")


def test_the_default_paraphrase_policy_is_part_of_an_items_check_hash(telecom) -> None:
    """An English rubric runs with the default paraphrase policy: it decides verdicts, so
    it is hashed with each item (a changed default voids carried overrides); ``semantic:
    false`` and Chinese rubrics without a block hash as before (None)."""
    from pipeline.score.form import _semantic_part, item_check_sha256
    from pipeline.scripts_check import load_rubric

    default = load_rubric("en_telecom")
    assert _semantic_part(default) == {"default": {"model": "fast-use", "min_similarity": 0.8}}
    assert _semantic_part(telecom) is None  # semantic: false
    assert _semantic_part(load_rubric("zh_ecommerce")) is None
    item = next(i for _, i in default.items() if i.id == "greeting")
    assert item_check_sha256(default, item) != item_check_sha256(telecom, item)


def test_an_aligned_phrase_may_lose_half_of_a_multi_word_key_never_a_name(telecom) -> None:
    """tiny.en dropped "number" from the sample call c04 ("May I have your account,
    please."): the whole phrase aligns at 0.86 and one word of [account number] is heard.
    A one-word key (the company's name) may never be lost."""
    assert verdict(telecom, "identity_check", "May I have your account, please.")[0] is True
    assert verdict(telecom, "greeting", "Thank you for calling telecom.")[0] is False
    utt = normalise("may i have your account please", "en")
    assert keys_heard((("account", "number"),), utt, "en", aligned=True)
    assert not keys_heard((("account", "number"),), utt, "en")
