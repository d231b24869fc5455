"""The zh paraphrase judge (semantic.judge_best, exemplars rubrics/judge/zh.yaml): agents'
own wordings a rule does not list pass, with the clause, the exemplar and the similarity as
evidence; near misses still fail; broken exemplar files are rejected."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from pipeline.config import PROJECT_ROOT
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import check_items, load_rubric
from pipeline.scripts_check.semantic import JudgeExemplars, JudgeSettings, judge_settings

EXEMPLARS = PROJECT_ROOT / "rubrics" / "judge" / "zh.yaml"


def _call(*turns: tuple[str, str], pauses: dict[int, float] | None = None) -> Transcript:
    """Utterances 4 s long, 1 s apart; ``pauses``: seconds of quiet before utterance k."""
    t, utts = 0.0, []
    for k, (spk, text) in enumerate(turns):
        t += (pauses or {}).get(k, 1.0)
        utts.append(Utterance(speaker=spk, start=t, end=t + 4, text=text))
        t += 4
    return Transcript(call_id="c", language="zh", utterances=utts)


def _item(form: str, item: str, transcript: Transcript, judge: bool = True):
    (got,) = [i for i in check_items(transcript, load_rubric(form), judge=judge) if i.id == item]
    return got


def _agent_line(form: str, item: str, line: str, judge: bool = True):
    """``item`` on a short call whose agent says ``line`` second, between 您好 and 好的."""
    t = _call(
        ("agent", "您好。"),
        ("customer", "我想问一下。"),
        ("agent", line),
        ("customer", "没有了。"),
        ("agent", "好的。"),
    )
    return _item(form, item, t, judge)


# (form, item, the agent's line, verdict): lines no rule lists, and near misses that do not
# do what the item asks
@pytest.mark.parametrize(
    ("form", "item", "line", "verdict"),
    [
        ("zh_bank_hotline", "courtesy", "好的，有劳您了。", True),
        ("zh_bank_hotline", "courtesy", "你快点说。", False),
        ("zh_bank_hotline", "verify_identity", "办理之前得先确认下是不是您本人。", True),
        ("zh_bank_hotline", "verify_identity", "您的卡已经可以正常使用了。", False),
        ("zh_bank_hotline", "risk_disclosure", "陌生人打电话让您转账，一分钱都别转。", True),
        ("zh_bank_hotline", "risk_disclosure", "验证码已经发到您手机上了。", False),
        ("zh_bank_hotline", "risk_disclosure", "我们是官方客服，不是诈骗电话。", False),
        ("zh_ecommerce", "apology", "这次是我们没做好，给您造成困扰了。", True),
        ("zh_ecommerce", "apology", "这个不是我们的问题，是快递弄的。", False),
        ("zh_ecommerce", "solution_time", "后天中午以前给您送过去。", True),
        ("zh_ecommerce", "solution_time", "这个要等，有结果会通知你。", False),
        ("zh_ecommerce", "anything_else", "我们还有其他款式吗？", False),
        ("zh_ecommerce", "order_check", "我帮您查一下物流。", False),
    ],
)
def test_own_wording_and_near_miss(form: str, item: str, line: str, verdict: bool) -> None:
    got = _agent_line(form, item, line)
    assert got.passed is verdict, got.reason
    if verdict:
        (e,) = got.evidence
        assert e.method == "judge" and e.model == judge_settings().model
        assert e.span and e.span in line and e.matched and e.similarity >= 0.9
        assert "paraphrase judge" in got.reason and "closest near miss" in got.reason


def test_rules_alone_fail_what_the_judge_passes() -> None:
    line = "好的，有劳您了。"  # (多谢您: a rule's since v11)
    assert _agent_line("zh_bank_hotline", "courtesy", line, judge=False).passed is False
    assert _agent_line("zh_bank_hotline", "courtesy", line).passed is True


@pytest.mark.parametrize(
    ("last", "verdict"),
    [
        ("好的，谢谢您打来电话，再见。", True),  # thanks and goodbye (bank: 感谢来电并道别)
        ("再见。", False),  # bank: a goodbye without the thanks
        ("行了，就这样。", False),
    ],
)
def test_bank_farewell_needs_thanks_and_goodbye(last: str, verdict: bool) -> None:
    t = _call(("agent", "您好。"), ("customer", "没有了。"), ("agent", last))
    got = _item("zh_bank_hotline", "farewell", t)
    assert got.passed is verdict, got.reason


def test_ecommerce_farewell_plain_goodbye() -> None:
    t = _call(("agent", "您好。"), ("customer", "没有了。"), ("agent", "好嘞，再见。"))
    assert _item("zh_ecommerce", "farewell", t).passed is True
    t = _call(("agent", "您好。"), ("customer", "没有了。"), ("agent", "嗯，挂了。"))
    assert _item("zh_ecommerce", "farewell", t).passed is False


@pytest.mark.parametrize(
    ("before", "verdict"),
    [
        ("您先别挂，我去后台帮您问一下。", True),  # a wait announced in other words
        ("好的，您说。", False),  # no wait announced
    ],
)
def test_wait_announced_in_other_words(before: str, verdict: bool) -> None:
    t = _call(
        ("agent", "您好，请问有什么可以帮您？"),
        ("customer", "我的退款还没到。"),
        ("agent", before),
        ("agent", "让您久等了，退款明天到账。"),
        pauses={3: 25.0},
    )
    got = _item("zh_ecommerce", "no_dead_air", t)
    assert got.passed is verdict, got.reason
    if verdict:
        assert "paraphrase judge" in got.evidence[0].reason


def test_answered_request_before_the_gap_announces_no_wait() -> None:
    t = _call(
        ("agent", "您好，请问有什么可以帮您？"),
        ("customer", "发票开错了。"),
        ("agent", "麻烦您提供一下订单号。"),
        ("customer", "订单号是三五七二九八零四。"),
        ("agent", "好的，重新给您开。"),
        pauses={4: 20.0},
    )
    assert _item("zh_ecommerce", "no_dead_air", t).passed is False


@pytest.mark.parametrize(
    ("second", "verdict"),
    [
        ("办理之前得先确认下是不是您本人，您说一下身份证号码。", True),  # identity first
        ("您这期账单是三千二百元，还款日是十五号。", False),  # account news first
    ],
)
def test_identity_before_account_in_other_words(second: str, verdict: bool) -> None:
    t = _call(
        ("agent", "您好，华信银行信用卡中心，工号三二七零一。"),
        ("customer", "我想查一下账单。"),
        ("agent", second),
        ("customer", "好的。"),
        ("agent", "您这期账单是三千二百元，还款日是十五号。"),
    )
    got = _item("zh_bank_hotline", "identity_before_account", t)
    assert got.passed is verdict, got.reason


@pytest.mark.parametrize(
    ("customer", "agent", "verdict"),
    [
        ("你们这不是坑人吗，凭什么乱扣我的钱！", "实在过意不去，我马上帮您查。", True),
        ("你们这不是坑人吗，凭什么乱扣我的钱！", "您把卡号报一下。", False),
        ("我的卡被冻结了，怎么回事？", "您把卡号报一下。", "n/a"),  # a question, no complaint
    ],
)
def test_complaint_without_the_listed_words(customer: str, agent: str, verdict) -> None:
    t = _call(
        ("agent", "您好，华信银行信用卡中心。"),
        ("customer", customer),
        ("agent", agent),
        ("customer", "好。"),
        ("agent", "感谢来电，再见。"),
    )
    got = _item("zh_bank_hotline", "apology_on_complaint", t)
    assert (got.passed if got.applicable else "n/a") == verdict, got.reason


def test_retention_offer_in_other_words() -> None:
    t = _call(
        ("agent", "您好，华信银行信用卡中心。"),
        ("customer", "这张卡我不用了，帮我销掉。"),
        ("agent", "先别急着销，这张卡我可以帮您把年费免了。"),
        ("customer", "不用了。"),
        ("agent", "好的，已经给您注销了。"),
    )
    got = _item("zh_bank_hotline", "retention", t)
    assert got.passed is True, got.reason
    t.utterances[2] = t.utterances[2].model_copy(update={"text": "好的，请报一下卡号。"})
    assert _item("zh_bank_hotline", "retention", t).passed is False


# --------------------------------------------------------------------------- data


def _exemplars() -> dict:
    return yaml.safe_load(EXEMPLARS.read_text(encoding="utf-8"))


def test_shipped_exemplars_load_and_expand_acts() -> None:
    data = JudgeExemplars.model_validate(_exemplars())
    courtesy = data.forms["zh_bank_hotline"]["courtesy"]
    assert not any(n.startswith("@") for n in courtesy.negatives)
    assert "感谢来电，再见" in courtesy.negatives  # from @close
    assert not set(courtesy.positives) & set(courtesy.negatives)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["forms"]["zh_ecommerce"]["greeting"]["positives"].append("  "),
        lambda d: d["forms"]["zh_ecommerce"]["greeting"]["negatives"].append("@no_such_act"),
        lambda d: d["forms"]["zh_ecommerce"]["greeting"].update(
            within={"first_turns": 2, "last_turns": 2}
        ),
        lambda d: d["forms"]["zh_ecommerce"]["greeting"].update(negatives=[]),
        lambda d: d["orders"].update(zh_ecommerce={"x": "no_such_item"}),
        lambda d: d["forms"]["zh_ecommerce"]["greeting"].update(colour="red"),
    ],
)
def test_broken_exemplars_are_rejected(breakage) -> None:
    data = _exemplars()
    breakage(data)
    with pytest.raises(ValidationError):
        JudgeExemplars.model_validate(data)


@pytest.mark.parametrize(
    "bad",
    [
        {"model": "no-such-model"},
        {"min_similarity": 1.5},
        {"margin": -0.1},
    ],
)
def test_broken_judge_settings_are_rejected(bad: dict) -> None:
    raw = judge_settings().model_dump() | bad
    with pytest.raises((ValidationError, ValueError)):
        JudgeSettings.model_validate(raw)


def test_scoring_config_records_the_judge_for_zh_only() -> None:
    from pipeline.scoring_config import rubric_config

    zh = rubric_config(load_rubric("zh_bank_hotline")).semantic["judge"]
    s = judge_settings()
    assert (zh["model"], zh["min_similarity"], zh["margin"]) == (
        s.model,
        s.min_similarity,
        s.margin,
    )
    assert len(zh["exemplars_sha256"]) == 64
    assert "judge" not in rubric_config(load_rubric("en_telecom")).semantic


def test_a_sentence_that_crosses_a_red_line_does_no_service_act() -> None:
    """Split 8 as the ASR heard it: the judge read the agent's rude last sentence as a
    farewell (0.901); a sentence holding a red-line phrase passes no item in other words."""
    rude = "一见不了当时谁跟你说的你去找谁，跟我说没用，反正这钱就得交不乐意你可以不用这张卡。"
    t = _call(
        ("agent", "您好，这里是长风银行信用卡中心。"),
        ("customer", "那当时也没人跟我说啊，就不能给我减了嘛。"),
        ("agent", rude),
        ("customer", "你这什么态度啊？"),
        ("agent", rude),
    )
    rubric = load_rubric("zh_bank_hotline")
    by_id = {i.id: i for i in check_items(t, rubric)}
    assert by_id["no_forbidden"].passed is False, by_id["no_forbidden"].reason
    assert by_id["farewell"].passed is False, by_id["farewell"].reason
    # the same sentence without its red-line words is judged as before
    polite = "好的，那就不打扰您了，感谢您的来电，再见。"
    t2 = _call(("agent", "您好。"), ("customer", "没有了。"), ("agent", polite))
    assert _item("zh_bank_hotline", "farewell", t2).passed is True


# engine 10 / judge exemplars v2: a clause is judged only in an utterance that says one of
# the act's own marker words (``must_say``); the near misses are the judge's wrong passes on
# splits 7-9's written lines
@pytest.mark.parametrize(
    ("form", "item", "first", "verdict"),
    [
        ("zh_ecommerce", "greeting", "您好，这边是售后，我是小孟，您请说。", True),
        ("zh_ecommerce", "greeting", "喂，请讲。", False),  # 0.913 from a greeting exemplar
        ("zh_ecommerce", "greeting", "好，查到了，订单尾号四四零六，是这一单吧？", False),
        ("zh_bank_hotline", "greeting", "您好，这里是华信银行，请问有什么需要？", True),
    ],
)
def test_greeting_judged_only_with_a_salutation(form, item, first, verdict) -> None:
    t = _call(("agent", first), ("customer", "我想问一下。"), ("agent", "好的。"))
    got = _item(form, item, t)
    assert got.passed is verdict, got.reason


@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        ("这次是我们没做好，给您造成困扰了。", True),
        ("最近单子多，仓库忙不过来，慢慢等吧。", False),  # 0.913 from "是我们工作没做好"
    ],
)
def test_apology_judged_only_with_an_apology_word(line: str, verdict: bool) -> None:
    assert _agent_line("zh_ecommerce", "apology", line).passed is verdict


def test_must_say_blank_word_is_rejected() -> None:
    data = _exemplars()
    data["forms"]["zh_ecommerce"]["greeting"]["must_say"] = ["您好", " "]
    with pytest.raises(ValidationError, match="blank"):
        JudgeExemplars.model_validate(data)


# zh_bank_hotline v10: identity checked and no account news heard after it passes
# (``if_first_only``), by the rules or in other words; with neither, n/a
@pytest.mark.parametrize(
    ("second", "verdict"),
    [
        ("好的，请问您是持卡人本人吗？请说一下身份证后四位。", True),  # the rules' first event
        ("办理之前得先确认下是不是您本人，您说一下证件号码。", True),  # in other words
        ("好的，您说一下卡号吧。", None),  # no identity check, no account news: n/a
    ],
)
def test_identity_checked_and_no_account_news(second: str, verdict) -> None:
    t = _call(
        ("agent", "您好，华信银行信用卡中心，工号三二七零一。"),
        ("customer", "我想换一张卡。"),
        ("agent", second),
        ("customer", "好的。"),
        ("agent", "好的，新卡会在七个工作日内寄到。"),
    )
    got = _item("zh_bank_hotline", "identity_before_account", t)
    if verdict is None:
        assert not got.applicable, got.reason
    else:
        assert got.applicable and got.passed is verdict, got.reason


# judge exemplars v6 (split 17): an offer of more help says what is more (还 / 其他 / 别的 ...)
@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        ("需要我再帮您看看别的吗？", True),  # no rule: the judge, with 再 and 别的
        # 0.906 from "您这边还有其他事吗" before v6
        ("退货可以，明天安排快递上门取件。赔偿的话，我们这边没有这个政策。", False),
    ],
)
def test_anything_else_judged_only_when_it_says_what_is_more(line: str, verdict: bool) -> None:
    assert _agent_line("zh_ecommerce", "anything_else", line).passed is verdict
