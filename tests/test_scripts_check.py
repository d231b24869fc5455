"""Matching and checks: text → verdict / similarity band tables (zh and en), windows, roles,
forbidden hits and exclusions, near-miss evidence, and the zh sample calls' verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import check_items, load_rubric, parse_rubric
from pipeline.scripts_check.match import align
from pipeline.text import normalise

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "zh_transcripts"


def sim(phrase: str, text: str, lang: str) -> float:
    return align(normalise(phrase, lang), normalise(text, lang), lang).similarity


ZH = [
    # (phrase, utterance, low, high)
    ("您好，很高兴为您服务", "您好，很高兴为您服务。", 1.0, 1.0),  # exact
    ("您好，很高兴为您服务", "嗯，您好！很高興為您服務", 1.0, 1.0),  # traditional, filler
    ("您好很高兴为您服务", "您好很高星为您服务", 0.9, 0.99),  # homophone 星/兴
    ("请问您是持卡人本人吗", "请问您是吃卡人本人吗", 0.9, 0.99),  # near-homophone ch/c
    ("不要向任何人透露验证码", "不要向任何人透露验正码", 0.9, 0.99),  # zh/z + eng/en
    ("工号", "您好公号一二三四", 0.9, 0.95),  # homophone on a 2-char phrase
    ("您好很高兴为您服务", "您好高兴为您服务", 0.8, 0.9),  # dropped character
    ("您好很高兴为您服务", "您好，工号1234，很高兴为您服务", 0.8, 0.9),  # inserted clause
    ("请问还有其他可以帮您的吗", "请问还有什么其他可以帮您的吗", 0.9, 0.99),  # paraphrase
    ("工号一二三四", "工号1234", 1.0, 1.0),  # digits
    ("您好很高兴为您服务", "我想查一下我的快递到哪里了", 0.0, 0.3),  # unrelated
    ("您好很高兴为您服务", "您好，我想问一下为什么我的服务费这么高", 0.0, 0.6),  # shares words
    ("请问还有其他可以帮您的吗", "可以帮您", 0.0, 0.5),  # only part of the phrase
]

EN = [
    (
        "thank you for calling northwind telecom",
        "Thank you for calling Northwind Telecom!",
        1.0,
        1.0,
    ),
    ("thank you for calling northwind telecom", "thanks for calling north wind telecom", 0.95, 1.0),
    ("thank you for calling northwind telecom", "uh thank you for calling northwind", 0.8, 0.9),
    (
        "is there anything else i can help you with",
        "Is there anything else I could help you with?",
        0.85,
        0.95,
    ),
    ("i don't know", "well I do not know sir", 1.0, 1.0),  # contraction
    ("can you confirm your date of birth", "can you confirm your date of berth please", 0.85, 0.99),
    (
        "for security can you confirm your account number",
        "my internet has been down since monday",
        0.0,
        0.3,
    ),
    ("calm down", "you need to come down the stairs", 0.0, 0.6),
    ("twenty four hours", "within 24 hours", 1.0, 1.0),
]


@pytest.mark.parametrize(("phrase", "text", "low", "high"), ZH)
def test_zh_similarity(phrase: str, text: str, low: float, high: float) -> None:
    assert low <= sim(phrase, text, "zh") <= high


@pytest.mark.parametrize(("phrase", "text", "low", "high"), EN)
def test_en_similarity(phrase: str, text: str, low: float, high: float) -> None:
    assert low <= sim(phrase, text, "en") <= high


def test_zh_a_lost_particle_costs_less_than_a_lost_content_character() -> None:
    """defaults.yaml match.zh.light_units: ASR drops 的 / 吗 / 请 most; losing one costs
    light_missing_cost (0.75), losing 还 (what the item asks) the full 1.0, and the
    bound that skips hopeless pairs stays above the similarity."""
    from pipeline.scripts_check.match import upper_bound

    phrase = "请问还有别的需要吗"  # 9 characters
    assert sim(phrase, "请问还有别的需要", "zh") == pytest.approx(1 - 0.75 / 9, abs=1e-3)
    assert sim(phrase, "请问有别的需要吗", "zh") == pytest.approx(1 - 1 / 9, abs=1e-3)
    # two particles and 还 lost: the greeting "请问有什么可以帮您" stays below 0.8
    assert sim("请问还有什么可以帮您的吗", "请问有什么可以帮您", "zh") < 0.8
    for text in ["请问还有别的需要", "问还有别需要吗", "还有别的"]:
        p, u = normalise(phrase, "zh"), normalise(text, "zh")
        assert upper_bound(p, u, "zh") >= align(p, u, "zh").similarity - 1e-4  # rounded


def test_evidence_span_quotes_original_text() -> None:
    text = "嗯，您好！工号一二三四，很高兴为您服务。"
    n = normalise(text, "zh")
    m = align(normalise("很高兴为您服务", "zh"), n, "zh")
    a, b = n.original_span(m.start, m.end)
    assert text[a:b] == "很高兴为您服务"


def _rubric(check: dict, language: str = "zh") -> object:
    return parse_rubric(
        {
            "id": "t",
            "version": 1,
            "language": language,
            "title": "t",
            "sections": [
                {
                    "id": "s",
                    "title": "s",
                    "items": [{"id": "x", "title": "x", "points": 10, "check": check}],
                }
            ],
        }
    )


def _call(*turns: tuple[str, str], step: float = 5.0) -> Transcript:
    return Transcript(
        call_id="c",
        utterances=[
            Utterance(speaker=spk, start=k * step, end=k * step + 4, text=text)
            for k, (spk, text) in enumerate(turns)
        ],
    )


def _item_of_agent_line(form: str, item: str, line: str):
    """``item`` of ``form`` on a short call whose agent says ``line`` between a greeting and
    a goodbye."""
    lines = [
        ("agent", "您好。"),
        ("customer", "我想问一下。"),
        ("agent", line),
        ("customer", "没有了。"),
        ("agent", "再见。"),
    ]
    (got,) = [i for i in check_items(_call(*lines), load_rubric(form)) if i.id == item]
    return got


CALL = _call(
    ("agent", "喂，你好。"),
    ("customer", "您好，很高兴为您服务"),  # the customer says it: role filter
    ("agent", "请问您的订单号是多少"),  # agent turn 2: three utterances in a row
    ("agent", "好的，我帮您查一下"),
    ("agent", "您好很高兴为您服务"),  # agent utterance 4 (turn 2), at 20 s
    ("customer", "我不知道怎么弄"),
    ("agent", "这个我也不知到"),  # forbidden, with a homophone (agent turn 3)
    ("agent", "不知道您现在方便吗"),  # polite form: excluded
)

GREETING = ["您好很高兴为您服务"]


@pytest.mark.parametrize(
    ("check", "passed"),
    [
        ({"required": {"role": "agent", "phrases": GREETING}}, True),
        ({"required": {"role": "agent", "phrases": GREETING, "within": {"first_turns": 1}}}, False),
        ({"required": {"role": "agent", "phrases": GREETING, "within": {"first_turns": 2}}}, True),
        (
            {"required": {"role": "agent", "phrases": GREETING, "within": {"first_seconds": 15}}},
            False,
        ),
        (
            {"required": {"role": "agent", "phrases": GREETING, "within": {"first_seconds": 21}}},
            True,
        ),
        ({"required": {"role": "agent", "phrases": GREETING, "within": {"last_turns": 2}}}, True),
        ({"required": {"role": "agent", "phrases": GREETING, "within": {"last_turns": 1}}}, False),
        (
            {"required": {"role": "agent", "phrases": GREETING, "within": {"last_seconds": 20}}},
            True,
        ),
        (
            {"required": {"role": "agent", "phrases": GREETING, "within": {"last_seconds": 10}}},
            False,
        ),
        (
            {"required": {"role": "customer", "phrases": GREETING, "within": {"first_turns": 1}}},
            True,
        ),
        ({"required": {"role": "agent", "phrases": ["感谢您的来电祝您生活愉快"]}}, False),
        ({"forbidden": {"role": "agent", "phrases": ["不知道"]}}, False),
        (
            {"forbidden": {"role": "agent", "phrases": ["不知道"], "within": {"first_turns": 2}}},
            True,
        ),
        ({"forbidden": {"role": "agent", "phrases": ["这不归我管"]}}, True),
        ({"forbidden": {"role": "customer", "phrases": ["投诉"]}}, True),
    ],
)
def test_check_verdicts(check: dict, passed: bool) -> None:
    (item,) = check_items(CALL, _rubric(check))
    assert item.passed is passed
    assert item.evidence, "every item carries evidence"


# One agent turn cut by ASR into several utterances at its pauses is still one turn: the
# farewell "Thanks for calling. | Have a good afternoon. | Bye." (Kokoro voice through tiny.en,
# script_calls_en.py --tts kokoro, dev3) is the agent's last turn, and the offer before it
# their last turn but one. (utterances, check, verdict; "was False": utterances counted)
SPLIT_CLOSE = [
    ("agent", "Thank you for calling Northwind Telecom."),
    ("agent", "This is Dana."),
    ("customer", "Hi, my bill is higher than normal."),
    ("agent", "I've removed the add-on."),
    ("agent", "You won't be charged for it again."),
    ("customer", "Okay, brilliant."),
    ("agent", "Was there something else I could help you with?"),
    ("customer", "No, that's all for today."),
    ("agent", "Thanks for calling."),
    ("agent", "Have a good afternoon."),
    ("agent", "Bye."),
]
ELSE = ["is there anything [else] i can help you with"]
BYE = ["[thanks] for [calling] goodbye"]


@pytest.mark.parametrize(
    ("turns", "check", "passed"),
    [
        (SPLIT_CLOSE, {"phrases": BYE, "within": {"last_turns": 2}}, True),  # was False
        (SPLIT_CLOSE, {"phrases": BYE, "within": {"last_turns": 1}}, True),  # was False
        (SPLIT_CLOSE, {"phrases": ELSE, "within": {"last_turns": 3}}, True),  # was False
        (SPLIT_CLOSE, {"phrases": ELSE, "within": {"last_turns": 2}}, True),  # was False
        (SPLIT_CLOSE, {"phrases": ELSE, "within": {"last_turns": 1}}, False),
        # the greeting's turn holds two utterances; the second turn starts after the customer
        (SPLIT_CLOSE, {"phrases": BYE, "within": {"first_turns": 2}}, False),
        (
            SPLIT_CLOSE,
            {"phrases": ["thank you for calling [northwind]"], "within": {"first_turns": 1}},
            True,
        ),
        # no customer turn until the offer: one agent turn
        (
            SPLIT_CLOSE[:2] + SPLIT_CLOSE[3:5] + SPLIT_CLOSE[6:],
            {"phrases": ELSE, "within": {"first_turns": 1}},
            True,
        ),
        # the customer's utterance in between ends the agent's turn
        (
            SPLIT_CLOSE[:9] + [("customer", "Bye.")],
            {"phrases": BYE, "within": {"last_turns": 1}},
            True,
        ),
        (
            SPLIT_CLOSE[:8]
            + [("agent", "Thanks for calling."), ("customer", "Cheers."), ("agent", "Bye now.")],
            {"phrases": BYE, "within": {"last_turns": 1}},
            False,
        ),
    ],
)
def test_turn_windows_count_turns_not_utterances(turns, check, passed) -> None:
    (item,) = check_items(_call(*turns), _rubric({"required": {"role": "agent", **check}}, "en"))
    assert item.passed is passed, item.reason


FAREWELL = ["[thank] you for [calling] have a great day", "[thanks] for [calling] goodbye"]
GREET = ["[thank] you for [calling] [northwind]", "[welcome] to [northwind]"]
CUT = [("customer", "No, that's everything."), ("agent", "Thank you very much for calling.")]


# A phrase that ASR cut over the utterances of one turn is heard in the turn's text; the
# evidence points at each utterance's own part. (utterances, phrases, verdict)
@pytest.mark.parametrize(
    ("turns", "phrases", "passed"),
    [
        (CUT + [("agent", "Have a great day.")], FAREWELL, True),  # was False
        (CUT + [("agent", "Have a great day, Mrs Ahmed.")], FAREWELL, True),  # was False
        ([("agent", "Welcome through"), ("agent", "to Northwind, Bethany speaking.")], GREET, True),
        # the customer between: two turns, no phrase
        (CUT + [("customer", "You too."), ("agent", "Have a great day.")], FAREWELL, False),
        # the turn read as one text keeps the rules: another company, a question, no act
        ([("agent", "Thank you for calling"), ("agent", "Northgate Telecom.")], GREET, False),
        ([("agent", "Thanks for waiting."), ("agent", "Northwind is slow today.")], GREET, False),
        ([("agent", "Did you get the welcome pack"), ("agent", "from Northwind?")], GREET, False),
        ([("agent", "Have a great day."), ("agent", "I'll call you back.")], FAREWELL, False),
        # the act word of a phrase said in one utterance is looked for in its whole turn:
        # "Thanks for calling." alone closes, not when the turn goes on about something else
        # (dev2, Kokoro through tiny.en)
        ([("agent", "Thanks for calling."), ("agent", "Bye now.")], FAREWELL, True),
        ([("agent", "Thanks for calling."), ("agent", "The outage is fixed by noon.")], BYE, False),
        ([("agent", "Thanks for calling."), ("agent", "What's the account number?")], BYE, False),
    ],
)
def test_a_phrase_cut_over_one_turn_is_heard(turns, phrases, passed) -> None:
    check = {"required": {"role": "agent", "phrases": phrases, "within": {"last_turns": 1}}}
    (item,) = check_items(_call(*turns), _rubric(check, "en"))
    assert item.passed is passed, item.reason


# tiny.en drops a turn's first word after silence (Kokoro voices, dev2 / dev3): a phrase's
# leading act word (thank) may be lost there when the turn starts with the phrase's next
# words; never a name, never in the middle of a turn. (agent line, item phrases, verdict)
@pytest.mark.parametrize(
    ("line", "phrases", "passed"),
    [
        ("For your call, bye bye.", FAREWELL, True),  # was False
        ("You for calling, all the best, goodbye.", FAREWELL, True),  # was False
        ("for calling in have a nice evening", FAREWELL, True),  # was False
        ("For calling Northwind, Dave here.", GREET, True),  # was False
        ("For calling us, the fix is done.", FAREWELL, False),
        ("For your patience, goodbye.", FAREWELL, False),
        ("You for calling Northgate Telecom.", GREET, False),  # another company
        ("To reset the router, Northwind asks you to wait.", GREET, False),
        ("So for your call, bye bye.", FAREWELL, False),  # not the turn's start
        ("  For your call, bye bye.", FAREWELL, True),  # spans in the text as stored
    ],
)
def test_a_leading_act_word_lost_at_a_turns_start(line, phrases, passed) -> None:
    call = _call(("customer", "No, that's everything."), ("agent", line))
    check = {"required": {"role": "agent", "phrases": phrases, "within": {"last_turns": 1}}}
    (item,) = check_items(call, _rubric(check, "en"))
    assert item.passed is passed, item.reason
    if passed:
        assert "taken as lost at the turn's start" in item.reason
        (ev,) = item.evidence
        assert ev.text == line and ev.span == line[ev.span_chars[0] : ev.span_chars[1]]


def test_a_cut_phrase_cites_each_utterance_of_the_turn() -> None:
    call = _call(*CUT, ("agent", "Have a great day."))
    check = {"required": {"role": "agent", "phrases": FAREWELL, "within": {"last_turns": 1}}}
    (item,) = check_items(call, _rubric(check, "en"))
    assert item.passed is True
    assert "over utterances 1-2 (one turn)" in item.reason
    assert [e.utterance for e in item.evidence] == [1, 2]
    for e in item.evidence:
        text = call.utterances[e.utterance].text
        assert e.text == text and e.span == text[e.span_chars[0] : e.span_chars[1]]
        assert (e.start, e.end) == (
            call.utterances[e.utterance].start,
            call.utterances[e.utterance].end,
        )
    assert item.evidence[0].span.startswith("Thank you") and item.evidence[1].span.startswith(
        "Have"
    )
    # Chinese too: 您好 | 很高兴为您服务 is one greeting
    zh = _call(("agent", "您好，"), ("agent", "很高兴为您服务"), ("customer", "你好"))
    (item,) = check_items(zh, _rubric({"required": {"role": "agent", "phrases": GREETING}}))
    assert item.passed is True and [e.utterance for e in item.evidence] == [0, 1]


def test_required_failure_explains_near_miss_and_window() -> None:
    check = {"required": {"role": "agent", "phrases": GREETING, "within": {"first_turns": 1}}}
    (item,) = check_items(CALL, _rubric(check))
    assert item.passed is False
    assert "outside first_turns=1" in item.reason
    # the best in-window try (喂，你好 ~0.2) is below the near-miss floor: not cited
    assert "no agent utterance came close" in item.reason
    assert not any((e.reason or "").startswith("near miss") for e in item.evidence)
    assert any(e.utterance == 4 and e.similarity == 1.0 for e in item.evidence)


def test_required_said_by_wrong_role_is_explained() -> None:
    check = {
        "required": {
            "role": "agent",
            "phrases": ["您好，很高兴为您服务"],
            "within": {"first_turns": 1},
        }
    }
    call = _call(("customer", "您好，很高兴为您服务"), ("agent", "嗯"))
    (item,) = check_items(call, _rubric(check))
    assert item.passed is False and "said by customer" in item.reason


def test_forbidden_evidence_has_span_and_exclusion() -> None:
    check = {"forbidden": {"role": "agent", "phrases": ["不知道"], "exclude": ["不知道您"]}}
    (item,) = check_items(CALL, _rubric(check))
    assert item.passed is False
    hit = item.evidence[0]
    assert (hit.utterance, hit.span, hit.matched) == (6, "不知到", "不知道")
    assert 0.9 <= hit.similarity < 1.0
    assert any(e.utterance == 7 and "not counted" in e.reason for e in item.evidence)
    assert not any(e.utterance == 5 for e in item.evidence)  # customer speech ignored


def test_undecidable_roles_need_review() -> None:
    call = Transcript(
        utterances=[Utterance(speaker="unknown", start=0, end=2, text="您好很高兴为您服务")]
    )
    (item,) = check_items(call, _rubric({"required": {"phrases": GREETING}}))
    assert item.passed is None and item.needs_review


def test_text_transcript_scores_like_audio_derived() -> None:
    """Confident ASR words change nothing: a transcript with word probabilities and utterance
    confidence scores exactly like the same text without them."""
    rubric = load_rubric("zh_bank_hotline")
    audio = Transcript.load(SAMPLES / "bank_003_forbidden.json")
    for u in audio.utterances:
        u.confidence = 0.93
        u.words = [{"word": u.text[:2], "start": u.start, "end": u.start + 0.3, "probability": 0.9}]
    text = Transcript.load(SAMPLES / "bank_003_forbidden.json")
    dump = lambda t: [i.model_dump() for i in check_items(t, rubric)]  # noqa: E731
    assert dump(audio) == dump(text)


EXPECTED = yaml.safe_load((SAMPLES / "expected.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("call_id", sorted(EXPECTED))
def test_zh_samples_give_expected_verdicts(call_id: str) -> None:
    from pipeline.score import score_transcript

    want = dict(EXPECTED[call_id])
    rubric = load_rubric(want.pop("rubric"))
    transcript = Transcript.load(SAMPLES / f"{call_id}.json")
    result = score_transcript(transcript, rubric, risk_fn=lambda t: None)
    assert result.auto_fail is want.pop("auto_fail")
    got = {i.id: ("n/a" if not i.applicable else i.passed) for i in result.items}
    assert got == want
    assert all(i.evidence for i in result.items)


# --------------------------------------------------------------------------- ASR-robust matcher

# (phrase, utterance, language, matches at the language's default forbidden threshold?)
FORBIDDEN_MATCH = [
    ("你自己看着办", "你自己那个看着办吧", "zh", True),  # filler inside the phrase
    ("这不归我管", "这这不归，呃，我管", "zh", True),  # stutter and hesitation
    ("我也没有办法", "也没有办发", "zh", True),  # deletion + homophone: 0.81
    ("没有办法", "我也没有搬法", "zh", True),  # homophone 搬/办
    ("不清楚", "这个我部清醋", "zh", True),  # every character a (near-)homophone
    # negation guard: a negation gained or lost is the opposite, never a match
    ("这归我管", "这不归我管", "zh", False),
    ("我有办法", "我也没有办法", "zh", False),
    ("有办法", "没有办法", "zh", False),
    ("不知道", "我们知道您着急", "zh", False),
    ("这是规定", "这并不是规定", "zh", False),
    ("这是规定", "这部是规定", "zh", False),  # 部 sounds like 不
    ("不可能", "这是不可能的", "zh", True),
    ("i can help you", "i can not help you", "en", False),
    ("i know", "i don't know", "en", False),
    ("i don't know", "i know", "en", False),
    ("calm down", "um calm, you know, down", "en", True),
]


@pytest.mark.parametrize(("phrase", "text", "lang", "hit"), FORBIDDEN_MATCH)
def test_forbidden_matcher(phrase: str, text: str, lang: str, hit: bool) -> None:
    from pipeline.match_config import match_settings
    from pipeline.scripts_check.match import phrase_match

    threshold = match_settings(lang).forbidden
    assert (phrase_match(phrase, text, lang, threshold) is not None) is hit


def test_negation_flip_is_explained() -> None:
    m = align(normalise("这归我管", "zh"), normalise("这不归我管", "zh"), "zh")
    assert m.similarity <= 0.5
    assert "negation differs: 不" in m.explain()


def test_best_phrase_match_on_plain_strings() -> None:
    from pipeline.scripts_check.match import best_phrase_match

    phrase, m = best_phrase_match(["请稍等", "您好，很高兴为您服务"], "嗯您好很高星为您服务", "zh")
    assert phrase == "您好，很高兴为您服务" and 0.9 < m.similarity < 1
    assert best_phrase_match(["请稍等"], "我想查一下快递", "zh") is None


def test_forbidden_context_survives_noise() -> None:
    """Polite forms / negated mentions still excuse a hit with a deleted character or a
    filler inside the context (如果有不清楚的地…, 我不说不可能)."""
    check = {"forbidden": {"role": "agent", "phrases": ["不清楚", "不可能"]}}
    for line in [
        "如果有不清楚的地，您可以随时联系我们",
        "如果有不清楚就是的地方可以问我",
        "我不说不可能，只是需要时间",
    ]:
        (item,) = check_items(_call(("agent", line)), _rubric(check))
        assert item.passed is True, line


def test_not_said_cites_a_near_miss_only_above_the_floor() -> None:
    check = {"required": {"role": "agent", "phrases": ["会在二十四小时内给您回复"]}}
    far = _call(("agent", "您好，很高兴为您服务"), ("agent", "好的再见"))
    (item,) = check_items(far, _rubric(check))
    assert item.passed is False
    assert "no agent utterance came close" in item.reason
    assert all(e.utterance is None for e in item.evidence)  # the review app tags nothing
    near = _call(("agent", "您好"), ("agent", "两小时内给您回电"))  # 0.64
    (item,) = check_items(near, _rubric(check))
    assert item.passed is False
    (ev,) = [e for e in item.evidence if e.utterance is not None]
    assert ev.utterance == 1 and ev.reason.startswith("near miss") and ev.similarity >= 0.5


@pytest.mark.parametrize(
    ("text", "counted"),
    [
        ("i'm not saying that's our policy, let me check.", False),
        ("i'm not sying that's our policy, let me check.", False),  # ASR slip in the cue
        ("i don't know whther you have your order number handy?", False),
        ("i don't you know have any other information.", False),  # a filler's "know"
        ("look, that's, you know, our policy.", True),
        ("sorry but that's our policy.", True),
        ("i don't know, you'll have to ask the courier.", True),
    ],
)
def test_english_forbidden_context_survives_asr_slips_and_fillers(text: str, counted: bool) -> None:
    rubric = parse_rubric(
        {
            "id": "en_ctx",
            "title": "context",
            "version": 1,
            "language": "en",
            "sections": [
                {
                    "id": "s",
                    "title": "s",
                    "items": [
                        {
                            "id": "no_forbidden",
                            "title": "no forbidden phrase",
                            "points": 10,
                            "check": {
                                "forbidden": {
                                    "role": "agent",
                                    "phrases": ["that's our policy", "i don't know"],
                                }
                            },
                        }
                    ],
                }
            ],
        },
        path="en_ctx",
    )
    call = Transcript.model_validate(
        {
            "call_id": "c",
            "language": "en",
            "utterances": [{"speaker": "agent", "start": 0, "end": 2, "text": text}],
        }
    )
    (item,) = check_items(call, rubric)
    assert item.passed is (not counted), item.evidence


def _worded(text: str, low: str, start: float = 0.0) -> Utterance:
    """An agent utterance, one word per character; the characters of ``low`` heard with
    probability 0.2, the rest 0.9."""
    a = text.index(low)
    words = [
        {"word": ch, "start": start + k * 0.2, "end": start + (k + 1) * 0.2,
         "probability": 0.2 if a <= k < a + len(low) else 0.9}
        for k, ch in enumerate(text)
    ]  # fmt: skip
    return Utterance(speaker="agent", start=start, end=start + 0.2 * len(text), text=text, words=words)  # fmt: skip


# (agent text, its low-confidence part, phrases) -> verdict: a pass is undecided only when
# every phrase said rests on low-confidence words
CONFIDENT_ALTERNATIVE = [
    (
        "已经为您修改好了，不好意思给您贴麻烦了。",
        "不好意思",
        ["不好意思给您添麻烦了", "不好意思"],
        True,
    ),
    (
        "已经为您修改好了，不好意思给您贴麻烦了。",
        "不好意思给您贴麻烦了",
        ["不好意思给您添麻烦了", "不好意思"],
        None,
    ),
    (
        "不好意思，商品洗过以后就不支持退货了。",
        "不好意思",
        ["不好意思给您添麻烦了", "不好意思"],
        None,
    ),
]


@pytest.mark.parametrize(("text", "low", "phrases", "verdict"), CONFIDENT_ALTERNATIVE)
def test_a_pass_rests_on_any_confident_phrase(text, low, phrases, verdict) -> None:
    call = Transcript(language="zh", utterances=[_worded(text, low)])
    (item,) = check_items(call, _rubric({"required": {"role": "agent", "phrases": phrases}}))
    assert item.passed is verdict


# --------------------------------------------------------------------------- facts stated
# zh_bank_hotline's identity_before_account: account facts in the agent's own words (an
# order event's `facts`: a term and a value in one clause, not a question), besides the
# listed phrases. Split 2 of benchmarks/zh_calls.py gave account news no list named (年费免收,
# 卡片已经制好, 状态正常): the item came out not applicable. (agent lines around the identity
# check, verdict)
ASK_ID = ("agent", "请问您是持卡人本人吗？")


@pytest.mark.parametrize(
    ("before", "after", "verdict"),
    [
        ([], ["您这张卡现在还能用八千三百元。"], True),
        ([], ["上个月的还款我们已经收到了，没有逾期。"], True),
        ([], ["您本月的账单金额是2,160元，还款日是18号。"], True),
        ([], ["您这张卡目前状态正常。"], True),
        ([], ["您这张卡今年刷满了六次，明年的年费免收。"], True),
        ([], ["您的卡片三天前已经制好，还没有交给快递。"], True),
        ([], ["我查到您的账户从去年三月开通了短信提醒服务。"], True),
        ([], ["您的积分是上个月到期自动清零了。"], True),
        (["您的盗刷争议已经受理了。"], [], False),
        # ASR's comma between the topic and what is said of it; a listed phrase heard with a
        # variant character (入帐) whose own words give the value
        ([], ["感谢您的耐心等待您的积分，是上个月到期自动清零了。"], True),
        ([], ["谢谢您，我查到您的账户，从去年三月开通了短信提醒。"], True),
        ([], ["您的海款已经入帐了。"], True),
        (["好的，您的账单，我帮您查一下。"], [], "checked"),
        (["您的额度，是多少？"], [], "checked"),
        (["您这张卡上个月有一笔两千三百元的消费还没还。"], [], False),
        (["好的，明年的年费免收。"], ["谢谢。"], False),
        (["你现在的固定额度是两万。"], ["好的。"], False),
        # asked, not told: questions and offers to look are no account fact
        (["您是要查账单吗？"], [], "checked"),
        (["您的额度是多少"], [], "checked"),
        (["我帮您查一下您的账单。"], [], "checked"),
        (["您这张卡的年费是不是已经扣了"], [], "checked"),
        (["为了保障您的账户安全，需要核实一下。"], [], "checked"),
        # a term without a value, a value without a term
        (["关于账单的问题我帮您看看。"], [], "checked"),
        (["好的，已经记下了，您别着急。"], [], "checked"),
    ],
)
def test_account_facts_in_the_agents_own_words(before, after, verdict) -> None:
    rubric = load_rubric("zh_bank_hotline")
    lines = [("agent", t) for t in before] + [ASK_ID, ("customer", "是的。")]
    lines += [("agent", t) for t in after]
    (item,) = [i for i in check_items(_call(*lines), rubric) if i.id == "identity_before_account"]
    if verdict == "checked":  # no account fact at all: the identity check alone passes (v10)
        assert item.passed is True and "never happened" in item.reason, item.reason
        return
    got = item.passed if item.applicable else "n/a"
    assert got == verdict, item.reason
    facts = [e for e in item.evidence if " + " in (e.matched or "")]  # term + value
    assert not before or facts, "an account fact cites its clause"
    assert all(e.span and e.span in e.text for e in facts)


def test_a_fact_evidence_quotes_its_clause() -> None:
    from pipeline.scripts_check.order import Facts

    facts = Facts(terms=["账单", "年费"], values=["免收"])
    text = "核对无误。您本月的账单金额是两千一百六十元，明年的年费免收。"
    got = facts.stated(text, "zh")
    assert [(text[a:b], what) for a, b, what in got] == [
        ("您本月的账单金额是两千一百六十元", "账单 + 两千一百六十"),
        ("明年的年费免收", "年费 + 免收"),
    ]
    # the value in the next clause (ASR's comma between a topic and its comment); a question
    # after a fact leaves the fact; a topic whose comment asks tells nothing
    text = "感谢您的耐心等待您的年费，是上个月免收的。"
    assert [(text[a:b], w) for a, b, w in facts.stated(text, "zh")] == [
        ("感谢您的耐心等待您的年费，是上个月免收的", "年费 + 免收")
    ]
    assert len(facts.stated("您这张卡的年费免收。请问还有什么问题吗？", "zh")) == 1
    assert facts.stated("您的账单，是多少？", "zh") == []
    assert facts.stated("我帮您查一下账单", "zh") == []  # 一 of 查一下 is no number


# The "anything else?" question and the apology in the agent's own words (zh forms v4): the
# question by its shape (还有 + 其他 / 别的 / 什么 + help / need / question + a question
# particle, in the last three agent turns), the apology by its words in any frame, the
# evaluation invited by naming it at the close, the order checked by naming its number.
# (form, item, closing agent line, verdict)
@pytest.mark.parametrize(
    ("form", "item", "line", "verdict"),
    [
        ("zh_bank_hotline", "anything_else", "还有其他我可以帮到您的地方吗？", True),
        ("zh_bank_hotline", "anything_else", "请问您还有其他需要办理的吗？", True),
        ("zh_ecommerce", "anything_else", "您看还有别的问题需要我帮忙吗？", True),
        ("zh_ecommerce", "anything_else", "请问还有其他需要帮您处理的吗", True),
        ("zh_ecommerce", "anything_else", "还有什么事吗？", True),
        # a statement, another topic, no question: not the question (还有其他问题可以随时来电
        # passes on the listed 还有其他问题吗 at 0.89, 吗 being light: not the regex)
        ("zh_ecommerce", "anything_else", "如果还有别的情况可以随时来电。", False),
        ("zh_ecommerce", "anything_else", "我们还有其他款式吗？", False),
        ("zh_bank_hotline", "anything_else", "还有别的颜色的卡面可以选。", False),
        ("zh_ecommerce", "apology", "太抱歉了，让您收到这样的商品。", True),
        ("zh_ecommerce", "apology", "真对不起，是我们发错了。", True),
        ("zh_ecommerce", "apology", "再次向您表示歉意。", True),
        ("zh_ecommerce", "apology", "这个报价已经是最低了。", False),
        ("zh_ecommerce", "apology", "运费险会帮您赔付。", False),
        ("zh_bank_hotline", "courtesy", "真是对不起，给您造成困扰了。", True),
        ("zh_bank_hotline", "courtesy", "太抱歉了。", True),
        ("zh_bank_hotline", "courtesy", "您这个保险已经生效了。", False),
        # the evaluation named in the closing; the order number named by the agent
        ("zh_ecommerce", "satisfaction_invite", "稍后会有满意度回访，请您给我们打个分。", True),
        ("zh_ecommerce", "satisfaction_invite", "服务进行评价，祝您购物愉快再见。", True),
        ("zh_ecommerce", "satisfaction_invite", "这款的平价款已经卖完了。", False),
        ("zh_ecommerce", "order_check", "您把订单号告诉我。", True),
        ("zh_ecommerce", "order_check", "您的订单好多少？", True),  # 好 for 号 (ASR)
        ("zh_ecommerce", "order_check", "我帮您查一下物流。", False),
    ],
)
def test_closing_question_and_apology_in_own_words(form, item, line, verdict) -> None:
    got = _item_of_agent_line(form, item, line)
    assert got.passed is verdict, got.reason


# zh forms v5 (split 3's errors, development data since) and v6 (below): the job number after 是 / 为 / 叫,
# a time promise as a range without 内, forbidden variants, the fee warning and the "the bank
# never asks for the code" reminder in other words, 吗 heard as 马 / 嘛 at the question's end,
# 让您久等了 alone. (form, item, agent line after the greeting, verdict)
@pytest.mark.parametrize(
    ("form", "item", "line", "verdict"),
    [
        ("zh_bank_hotline", "job_number", "我的工号是五六二零三，请问您需要办理什么业务？", True),
        ("zh_bank_hotline", "job_number", "我的公号是56203请问您需要办理什么业务。", True),
        ("zh_bank_hotline", "job_number", "员工编号为四零八六九。", True),
        ("zh_bank_hotline", "job_number", "公好72650，请问有什么可以帮您。", True),  # 好 for 号
        ("zh_bank_hotline", "job_number", "我的工号是多少您可以在短信里看到。", False),
        ("zh_bank_hotline", "job_number", "您好，这里是信用卡中心，请问有什么可以帮您？", False),
        ("zh_bank_hotline", "job_number", "您的工号是指什么？", False),
        ("zh_ecommerce", "solution_time", "退款三到五个工作日原路退回。", True),
        ("zh_ecommerce", "solution_time", "一般3-5天能到。", True),
        ("zh_ecommerce", "solution_time", "三个工作日内发出。", True),  # as before
        ("zh_ecommerce", "solution_time", "退款要几个工作日我不确定。", False),
        ("zh_ecommerce", "solution_time", "周末不算工作日。", False),
        ("zh_ecommerce", "solution_time", "您买的是三到五人份的蛋糕。", False),
        (
            "zh_ecommerce",
            "no_forbidden",
            "配送是蛋糕店自己安排的，这个我也管不了，您自己想办法吧。",
            False,
        ),
        ("zh_bank_hotline", "no_forbidden", "这个不归我们部门管，你自己去网点问吧。", False),
        ("zh_ecommerce", "no_forbidden", "这个不归我们管。", False),
        ("zh_ecommerce", "no_forbidden", "这个归我们部门管，我马上帮您处理。", True),
        ("zh_bank_hotline", "no_forbidden", "这个我来帮您管理一下额度。", True),
        ("zh_bank_hotline", "risk_disclosure", "需要先提醒您，手续费一旦收取就不能退了。", True),
        (
            "zh_bank_hotline",
            "risk_disclosure",
            "温馨提示，银行工作人员不会找您要短信验证码。",
            True,
        ),
        ("zh_bank_hotline", "risk_disclosure", "手续费一旦收取我们会短信通知您。", False),
        ("zh_bank_hotline", "risk_disclosure", "您不会收到验证码，请重新发送一次。", False),
        ("zh_bank_hotline", "anything_else", "请问您还有其他需要办理的马。", True),
        ("zh_ecommerce", "anything_else", "还有别的问题需要帮忙嘛？", True),
        ("zh_bank_hotline", "anything_else", "还有其他业务员马上联系您。", False),  # 马上
        ("zh_bank_hotline", "courtesy", "让您久等了，这是一笔境外网站的订阅扣费。", True),
        ("zh_bank_hotline", "courtesy", "这笔款项已经到账了。", False),
        # v6 (after split 5 was measured once): the agent's number said without 工号, and
        # the five stars as the invitation to rate
        (
            "zh_bank_hotline",
            "job_number",
            "喂您好，华信银行信用卡客服，三七五零九号为您服务。",
            True,
        ),
        ("zh_bank_hotline", "job_number", "您好，我是三幺七号客服，请问有什么能帮到您？", True),
        ("zh_bank_hotline", "job_number", "8675号很高兴为您服务。", True),
        ("zh_bank_hotline", "job_number", "您尾号三四五六的卡片已经激活了。", False),
        # v8 (after split 7 was measured once): 幺 heard 要 right after 工号
        ("zh_bank_hotline", "job_number", "华信银行信用卡中心，工号要4270，请问办什么业务？", True),
        ("zh_bank_hotline", "job_number", "您的工号要记好，别告诉别人。", False),
        ("zh_bank_hotline", "job_number", "这笔我要300块的额度。", False),
        ("zh_bank_hotline", "job_number", "请您拨打九五五八八号码咨询。", False),
        ("zh_bank_hotline", "job_number", "您好，很高兴为您服务。", False),
        # v9 / engine 8: the role word before the number, its digits heard as sounds (split 7)
        (
            "zh_bank_hotline",
            "job_number",
            "您好华信银行信用卡中心，我是客服专员邀领4起号，您请讲。",
            True,
        ),
        ("zh_bank_hotline", "job_number", "您好，我是客服专员幺零四七号。", True),
        ("zh_bank_hotline", "job_number", "我是客服专员，给您寄的卡是三号到的。", False),
        ("zh_bank_hotline", "job_number", "我们客服一起帮您看看。", False),
        ("zh_ecommerce", "satisfaction_invite", "到时候收到了麻烦您给个五星，不打扰您了。", True),
        ("zh_ecommerce", "satisfaction_invite", "方便的话给我们打个五星吧。", True),
        ("zh_ecommerce", "satisfaction_invite", "这款台灯是五金店同款。", False),
        # v10 (after split 10 was measured once): the red line said as a dare to complain or
        # as the rule's wall, not the complaint channel a bank must tell; courtesy in "you're
        # welcome"; anything else as 还有哪方面 / 啥 … 要处理
        ("zh_ecommerce", "no_forbidden", "规定就是这样，你要不服自己去平台投诉呗。", False),
        ("zh_ecommerce", "no_forbidden", "你要不服自己去平台投诉呗。", False),
        ("zh_bank_hotline", "no_forbidden", "有本事就去告啊。", False),
        ("zh_bank_hotline", "no_forbidden", "如果您对处理结果不服，可以向监管部门投诉。", True),
        ("zh_bank_hotline", "no_forbidden", "您有任何不满意的地方，可以拨打我们的投诉热线。", True),
        ("zh_bank_hotline", "no_forbidden", "你自己没按时还，怪谁呢。", False),
        ("zh_ecommerce", "no_forbidden", "谁让你不看清楚就下单。", False),
        ("zh_ecommerce", "no_forbidden", "你闻着不一样那是你鼻子的问题。", False),
        ("zh_bank_hotline", "no_forbidden", "你真觉得不对，自己找人民银行征信中心去。", False),
        ("zh_ecommerce", "no_forbidden", "包装又不影响围巾本身，你爱要不要。", False),
        ("zh_ecommerce", "no_forbidden", "这是您那边网络的问题，您可以重启一下路由器。", True),
        ("zh_bank_hotline", "no_forbidden", "这事不怪您，是我们的问题。", True),
        ("zh_bank_hotline", "no_forbidden", "您可以自己去找最近的网点办理。", True),
        ("zh_ecommerce", "no_forbidden", "谁让你放地板上的。", False),
        ("zh_ecommerce", "no_forbidden", "你自己不看怪谁。", False),
        ("zh_bank_hotline", "no_forbidden", "系统没问题，肯定是你自己没点对。", False),
        ("zh_bank_hotline", "no_forbidden", "嫌麻烦你就别刷卡。", False),
        ("zh_bank_hotline", "no_forbidden", "手续费账单上都有，自己看。", False),
        ("zh_bank_hotline", "no_forbidden", "我哪有功夫一条一条给你念。", False),
        ("zh_bank_hotline", "no_forbidden", "这个不怪您，您可以自己看一下短信。", True),
        ("zh_ecommerce", "solution_time", "明天上午快递上门取件，您不用自己寄。", True),
        ("zh_ecommerce", "solution_time", "明天您有空吗？", False),
        ("zh_ecommerce", "anything_else", "您直接回这个电话就成，别的还有啥？", True),
        (
            "zh_bank_hotline",
            "risk_disclosure",
            "激活码只发到您本人手机上，谁打电话来要都别给。",
            True,
        ),
        (
            "zh_bank_hotline",
            "risk_disclosure",
            "要是收到短信让您点链接填卡号的，都不是我们发的，千万别点。",
            True,
        ),
        ("zh_bank_hotline", "risk_disclosure", "验证码已经发到您手机上了，您给我念一下。", False),
        ("zh_bank_hotline", "courtesy", "不客气，感谢您的来电。", True),
        ("zh_bank_hotline", "anything_else", "除了这笔借款，今天还有哪方面要我处理的嘛。", True),
        ("zh_ecommerce", "anything_else", "还有啥要处理的吗？", True),
        ("zh_bank_hotline", "anything_else", "还有哪方面的费用我也跟您说一下。", False),
        ("zh_bank_hotline", "greeting", "你好，很高兴为您服务，工号六零七四二。", False),
        # v11 (after split 12 was measured once): 员工编号 (ASR 员工店号摇8206); 多谢您;
        # 还有没有想问的; a warning to ignore who asks for the code; red lines: a dismissal of
        # the customer's wish, "we don't need your one card", shaming
        ("zh_bank_hotline", "job_number", "员工编号幺八二零六为您服务。", True),
        ("zh_bank_hotline", "job_number", "下午好，紧成银行、员工店号摇8206为您服务。", True),
        ("zh_bank_hotline", "job_number", "我们员工都很辛苦。", False),
        ("zh_bank_hotline", "courtesy", "多谢您打进来，再会。", True),
        ("zh_bank_hotline", "anything_else", "这通电话里，您还有没有想顺便问问的？", True),
        ("zh_bank_hotline", "anything_else", "您还有没有要办的？", True),
        ("zh_bank_hotline", "anything_else", "那我刚才有没有问过您地址来着？", False),
        (
            "zh_bank_hotline",
            "risk_disclosure",
            "如果有人打电话说能帮您恢复里程、让您报验证码，不要理会。",
            True,
        ),
        ("zh_bank_hotline", "no_forbidden", "说实话，您要销就销，我们也不差您这一张卡。", False),
        ("zh_bank_hotline", "no_forbidden", "您要销就销吧。", False),
        ("zh_bank_hotline", "no_forbidden", "我们也不拆您这一张卡。", False),
        ("zh_ecommerce", "no_forbidden", "您用得这么狠，还好意思怪我们质量。", False),
        ("zh_ecommerce", "no_forbidden", "您要退货的话，我马上给您办。", True),
        ("zh_ecommerce", "no_forbidden", "真不好意思，是我们的问题。", True),
        ("zh_bank_hotline", "no_forbidden", "差一点就到期了，您尽快还款。", True),
        # v11 after split 13: belittling and blame for the purchase; a risk tip that names
        # the safety it buys; the anything-else question whose 还 ASR dropped; the greeting as
        # a salutation then the shop or the agent's name; 给您添堵了
        ("zh_bank_hotline", "no_forbidden", "您这岁数搞不明白这些，就别折腾了。", False),
        ("zh_bank_hotline", "no_forbidden", "您这罪述搞不明白这些，就别折腾了。", False),
        ("zh_bank_hotline", "no_forbidden", "您要是没听明白，我再给您讲一遍。", True),
        (
            "zh_ecommerce",
            "no_forbidden",
            "自己没想清楚就下单，现在回过头来找我们，这算谁的？",
            False,
        ),
        ("zh_ecommerce", "no_forbidden", "您想清楚了再下单也不迟。", True),
        ("zh_bank_hotline", "risk_disclosure", "免密支付最好只留常用的几家，资金更安全。", True),
        ("zh_ecommerce", "anything_else", "有别的问题吗？", True),
        ("zh_ecommerce", "greeting", "晚上好，麦穗商城客户关怀组，我是葛云帆。", True),
        ("zh_ecommerce", "apology", "给您添堵了，是我们发货前没把好关。", True),
        # v12 after split 14: 坐席编号 as ASR heard it; cutting the card on cancellation (剪断
        # heard 简端); mocking and blame for the use; not the agent's offer to explain again
        ("zh_bank_hotline", "job_number", "上午好，安兰银行，坐席费好69103，您请说。", True),
        ("zh_bank_hotline", "job_number", "我们坐席都很忙，您稍等。", False),
        ("zh_bank_hotline", "risk_disclosure", "收到短信以后，把卡片简端就行。", True),
        ("zh_bank_hotline", "risk_disclosure", "您的卡片已经寄出了。", False),
        ("zh_bank_hotline", "no_forbidden", "两回都能忘？这么大个人了，这点事都办不明白。", False),
        ("zh_ecommerce", "no_forbidden", "自己没保养好，回头又来找商家。", False),
        ("zh_ecommerce", "no_forbidden", "这个我再给您讲一遍，保证您弄明白。", True),
        ("zh_ecommerce", "no_forbidden", "您保养得很好，这是质量问题。", True),
        # split 15: 对不住 apologises; belittling the customer as fussy
        ("zh_ecommerce", "apology", "才两个礼拜就成这样，真是对不住。", True),
        ("zh_ecommerce", "no_forbidden", "正常人谁会盯着那几个点看，你也太较真了。", False),
        ("zh_ecommerce", "no_forbidden", "这是正常的人体工学设计，您放心用。", True),
        # v13 after split 16: a salutation then the bank's name greets; 号服务专员; blame
        # with 您, shaming as "so simple", exasperation
        ("zh_bank_hotline", "greeting", "上午好，这里是明川银行信用卡专线。", True),
        ("zh_bank_hotline", "greeting", "喂，您说。", False),
        ("zh_bank_hotline", "job_number", "我是七零三九五号服务专员，今天由我来接待您。", True),
        ("zh_ecommerce", "no_forbidden", "别人都装得上，肯定是您自己装反了吧。", False),
        ("zh_ecommerce", "no_forbidden", "这么简单都装不上，我也是服了。", False),
        ("zh_bank_hotline", "no_forbidden", "操作这么简单，您在手机银行上点两下就好。", True),
        ("zh_ecommerce", "no_forbidden", "这个是您自己选的颜色吗？", True),
        # v14 / engine 14 after split 17: the number before 业务代表; a card kept from being
        # copied; red lines said with the polite 您, a dare to complain, no time for 您
        ("zh_bank_hotline", "job_number", "我是本中心幺三五零七号业务代表严可凡。", True),
        ("zh_bank_hotline", "job_number", "我帮您转给业务代表处理。", False),
        ("zh_bank_hotline", "risk_disclosure", "别把卡交给店员拿走去刷，防止卡被复制盗刷。", True),
        ("zh_bank_hotline", "risk_disclosure", "上个月被盗刷的那笔已经退回到您的卡上了。", False),
        ("zh_bank_hotline", "no_forbidden", "账单上写得明明白白的，您自己不会看吗？", False),
        ("zh_bank_hotline", "no_forbidden", "随便您吧，反正我说了。", False),
        ("zh_ecommerce", "no_forbidden", "颜色随便您挑，都有现货。", True),
        ("zh_ecommerce", "no_forbidden", "那您投诉去吧，爱投哪儿投哪儿。", False),
        ("zh_bank_hotline", "no_forbidden", "我哪有工夫一条一条给您算。", False),
        ("zh_bank_hotline", "no_forbidden", "如果对处理结果不满意，您可以拨打投诉电话。", True),
        (
            "zh_bank_hotline",
            "risk_disclosure",
            "要是有人让您报验证码，或者点什么链接，千万别礼，我们不会这么要的。",
            True,
        ),
        ("zh_bank_hotline", "risk_disclosure", "验证码发过去了，您别理它过期了再重发。", False),
        ("zh_bank_hotline", "farewell", "多谢您制典银远银行，祝您新局顺废再见！", True),
        ("zh_bank_hotline", "farewell", "感谢您的耐心，稍后给您回电。", False),
        # v15 after split 18: more help offered as 另有 / 尚有 + 何事 / 其他事项, 还有啥要问的
        ("zh_ecommerce", "anything_else", "已为您安排重新配送。另有何事需我代劳吗？", True),
        (
            "zh_ecommerce",
            "anything_else",
            "连盒子带线一块儿交给快递就行。您看还有啥要问的不？",
            True,
        ),
        ("zh_bank_hotline", "anything_else", "请问尚有其他事项需要效劳否？", True),
        ("zh_ecommerce", "anything_else", "另有一件事跟您说，快递明天上午到。", False),
        ("zh_ecommerce", "anything_else", "还有什么不明白的，以后可以再来问。", False),
        ("zh_bank_hotline", "anything_else", "尚有两期没有还清。", False),
        # v16 after split 19: the literary 另有他事…否, a dare to complain, belittling, the
        # name with an ID number asked for
        ("zh_ecommerce", "anything_else", "换新已登记妥当，另有他事需我一并料理否", True),
        ("zh_ecommerce", "anything_else", "我另有他事要忙，稍后回电给您。", False),
        ("zh_bank_hotline", "no_forbidden", "你要投诉随便投诉，投诉了也是这个结果。", False),
        ("zh_ecommerce", "no_forbidden", "您这水平还是买速溶吧。", False),
        ("zh_bank_hotline", "no_forbidden", "投诉也是您的权利，我给您登记上。", True),
        ("zh_ecommerce", "no_forbidden", "这个水平的做工确实不应该，给您换新。", True),
        (
            "zh_bank_hotline",
            "verify_identity",
            "好的先生，销卡是吧？您报一下姓名和身份证号码。",
            True,
        ),
    ],
)
def test_zh_forms_v5_v6_wordings(form, item, line, verdict) -> None:
    got = _item_of_agent_line(form, item, line)
    assert got.passed is verdict, got.reason


# e-commerce farewell (v6): the goodbye at a clause's end, whatever came before it (the ASR
# writes no comma in 做个评价再见); the agent's last line of a call is ``line``
@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        ("稍后请对我的服务做个评价再见", True),
        ("好的，那先这样，拜拜。", True),
        ("您收到货以后就不会再见到这个问题了。", False),
        ("就这样吧。", False),
    ],
)
def test_zh_ecommerce_goodbye_at_the_end(line, verdict) -> None:
    call = _call(
        ("agent", "您好。"),
        ("customer", "我的耳机坏了。"),
        ("agent", "好的，已经给您办理退货了。"),
        ("customer", "好的。"),
        ("agent", line),
    )
    (got,) = [i for i in check_items(call, load_rubric("zh_ecommerce")) if i.id == "farewell"]
    assert got.passed is verdict, got.reason


def test_zh_bank_fee_warning_in_other_words_before_consent() -> None:
    lines = [
        ("agent", "您好。"),
        ("customer", "我想把这笔消费分期。"),
        ("agent", "需要先提醒您，手续费一旦收取就不能退了。您确定要办理吗？"),
        ("customer", "我同意。"),
        ("agent", "好的，已经为您分成十二期了。"),
    ]
    items = {i.id: i for i in check_items(_call(*lines), load_rubric("zh_bank_hotline"))}
    assert items["disclosure_before_consent"].passed is True, items[
        "disclosure_before_consent"
    ].reason
    late = [lines[0], lines[1], ("agent", "好的，已经为您分成十二期了。"), lines[2], lines[3]]
    items = {i.id: i for i in check_items(_call(*late), load_rubric("zh_bank_hotline"))}
    assert items["disclosure_before_consent"].passed is False  # near miss: put through first


def test_the_anything_else_question_said_by_the_customer_or_early_does_not_count() -> None:
    early = [("agent", "还有其他我可以帮到您的地方吗？")] + [
        (spk, t) for _ in range(3) for spk, t in (("customer", "嗯。"), ("agent", "好的。"))
    ]
    customer = [("agent", "好的。"), ("customer", "还有其他需要帮忙的吗？"), ("agent", "再见。")]
    for lines in (early, customer):
        (got,) = [
            i
            for i in check_items(_call(*lines), load_rubric("zh_ecommerce"))
            if i.id == "anything_else"
        ]
        assert got.passed is False, got.reason


# zh_bank_hotline v4: the safety reminder by its shape (regex, besides the listed lines) and
# the identity check's 身份证后四位. (agent line after the greeting, item, verdict)
@pytest.mark.parametrize(
    ("line", "item", "verdict"),
    [
        ("近期诈骗电话比较多，任何自称银行工作人员让您转账的都不要相信。", "risk_disclosure", True),
        ("收到卡片后请尽快修改密码，保护好资金安全。", "risk_disclosure", True),
        ("请千万不要把验证码告诉别人。", "risk_disclosure", True),
        ("验证码我已经发到您手机上了。", "risk_disclosure", False),
        ("切勿向陌生人透露您的短信验证码。", "risk_disclosure", True),
        ("一定要提防骗子。", "risk_disclosure", True),
        # the identity check's reason, or the agent reassuring: no reminder
        ("为了保障您的账户安全，需要核实一下身份。", "risk_disclosure", False),
        ("您的资金是安全的，请放心。", "risk_disclosure", False),
        ("我们是官方客服，不是诈骗电话。", "risk_disclosure", False),
        ("好的，请说一下您身份证的后四位。", "verify_identity", True),
        ("好的，请说一下您的手机尾号。", "verify_identity", False),
    ],
)
def test_bank_safety_reminder_and_identity_check_in_own_words(line, item, verdict) -> None:
    lines = [("agent", "您好。"), ("customer", "你好。"), ("agent", line), ("customer", "好的。")]
    rubric = load_rubric("zh_bank_hotline")
    (got,) = [i for i in check_items(_call(*lines), rubric) if i.id == item]
    assert got.passed is verdict, got.reason


# disclosure_before_consent: the fee disclosure before the customer's yes and before the
# agent puts the installment through (split 2: the yes was a request, 那就帮我分六期吧, and
# the agent processed it before telling the fee). (agent / customer lines, verdict)
DISCLOSE = ("agent", "提醒您，分期手续费一经收取不予退还。")


@pytest.mark.parametrize(
    ("lines", "verdict"),
    [
        (
            [("customer", "那就帮我分六期吧。"), ("agent", "好的，已经为您办理成功。"), DISCLOSE],
            False,
        ),
        (
            [DISCLOSE, ("customer", "那就帮我分六期吧。"), ("agent", "好的，已经为您办理成功。")],
            True,
        ),
        ([DISCLOSE, ("customer", "行，帮我办理吧。"), ("agent", "已经为您分成十二期了。")], True),
        ([("customer", "帮我办理吧。"), DISCLOSE], False),
        # 办理成功以后… tells what follows the processing: a disclosure, nothing put through
        (
            [
                ("agent", "办理成功以后如果提前还款，已经收取的手续费是不退的。"),
                ("customer", "知道了，确认办理。"),
                ("agent", "好的，已经为您办好了。"),
            ],
            True,
        ),
        # the fee told and nothing put through heard after it (v12, if_first_only): the fee
        # came first (split 14: the yes and the booking garbled by ASR, 同意担担, 翻脱了)
        ([("agent", "可以分六期或者十二期。"), DISCLOSE, ("customer", "好。")], True),
        ([DISCLOSE, ("customer", "同意担担。"), ("agent", "翻脱了，下个月开始还。")], True),
        # put through in words of its own before the fee is told (split 14)
        (
            [
                ("customer", "六期吧。"),
                ("agent", "好的，已经给您把这笔分成六期了。"),
                ("customer", "手续费多少？"),
                DISCLOSE,
            ],
            False,
        ),
        # neither the fee nor a booking heard: nothing to judge
        ([("agent", "可以分六期或者十二期。"), ("customer", "我再想想。")], "n/a"),
        # v15 (split 18): the fee's no-refund rule in formal words, before and after the yes
        (
            [
                ("agent", "另需言明，日后即便提前结清，已收取的手续费也概不退还。您意下如何？"),
                ("customer", "明白了，可以，帮我办吧。"),
                ("agent", "十二期分期已为您办理完毕。"),
            ],
            True,
        ),
        (
            [
                ("customer", "可以，帮我办吧。"),
                ("agent", "十二期分期已为您办理完毕。"),
                ("agent", "另需言明，日后即便提前结清，已收取的手续费也概不退还。"),
            ],
            False,
        ),
    ],
)
def test_fee_disclosure_before_the_installment_is_put_through(lines, verdict) -> None:
    call = _call(("agent", "您好。"), ("customer", "我想办个分期。"), *lines)
    rubric = load_rubric("zh_bank_hotline")
    (got,) = [i for i in check_items(call, rubric) if i.id == "disclosure_before_consent"]
    assert (got.passed if got.applicable else "n/a") == verdict, got.reason


# 礼貌用语与致歉 fails with an unapologised complaint (fails_with: apology_on_complaint, v15):
# the apology item's verdict, judge included, decides; without a complaint the courtesy's own
# phrases do
@pytest.mark.parametrize(
    ("customer", "agent", "courtesy", "apology"),
    [
        ("你们什么态度，卡号换了也不通知，我要投诉！", "姓名，身份证号。", False, False),
        ("你们什么态度，卡号换了也不通知，我要投诉！", "非常抱歉，请您报一下姓名。", True, True),
        ("你们什么态度，卡号换了也不通知，我要投诉！", "实在对不住，是我们没通知到。", True, True),
        ("我想查一下这个月的账单。", "好的，请您报一下姓名。", True, "n/a"),
    ],
)
def test_courtesy_fails_with_an_unapologised_complaint(customer, agent, courtesy, apology) -> None:
    call = _call(
        ("agent", "您好，信用卡中心。"),
        ("customer", customer),
        ("agent", agent),
        ("customer", "张伟。"),
        ("agent", "好的，已经处理好了。"),
        ("customer", "嗯。"),
        ("agent", "感谢您的来电，再见。"),
    )
    items = {i.id: i for i in check_items(call, load_rubric("zh_bank_hotline"))}
    got, owed = items["courtesy"], items["apology_on_complaint"]
    assert (owed.passed if owed.applicable else "n/a") == apology, owed.reason
    assert got.passed is courtesy, got.reason
    if courtesy is False:  # the apology item's reason and evidence are the courtesy's
        assert got.reason.startswith("fails with apology_on_complaint"), got.reason
        assert any(e.speaker == "customer" and "投诉" in (e.text or "") for e in got.evidence)
        assert got.points == 0


def test_an_installment_asked_in_other_words_makes_the_fee_rule_apply() -> None:
    """分成几期 (not 分期) opens disclosure_before_consent too: put through before the fee."""
    call = _call(
        ("customer", "想把这笔消费分成几期还。"),
        ("agent", "好的，已经为您办理了。"),
        DISCLOSE,
    )
    rubric = load_rubric("zh_bank_hotline")
    (got,) = [i for i in check_items(call, rubric) if i.id == "disclosure_before_consent"]
    assert got.applicable and got.passed is False, got.reason


# A regex check's Chinese words match as the ASR hears them (defaults.yaml ->
# match.zh.regex_sounds_like): a run of two or more literal characters takes the common
# characters of the same tone-less reading; single characters, escapes and [...] classes
# stay as written, except a class of spoken digits. (pattern, text, matches)
@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("号(?:客服|坐席)", "三七五号克服为您服务", True),  # 客服 heard 克服 (split 6)
        ("号(?:客服|坐席)", "三七五号作息", True),  # 坐席 heard 作息 (split 6)
        ("工号", "我的功耗是八六七", True),  # 工号 heard 功耗
        ("评个分", "麻烦您屏各分", True),  # 评个分 heard 屏各分 (split 5)
        ("号(?:客服|坐席)", "三七五号课题", False),  # 课 sounds ke, 题 is no fu
        ("工号", "我的公司", False),
        ("再见", "再也不见", False),  # a character between: no
        ("还有其他", "还有奇特的", False),  # 特 is te, not ta
        ("吗", "好马", False),  # one character: as written
        ("[工宫]号", "功号", False),  # a class: the author's list
        ("\\p{Han}号码", "电话好马", True),  # escapes copied; 号码 heard 好马
        ("(?:请|麻烦)您?评价", "麻烦您平价", True),
        # a class of spoken digits takes its numerals' homophones (engine 8; split 7:
        # 工号幺零四七 heard 工号邀领4起, 幺 heard 要)
        ("工号[0-9零一二三四五六七八九幺两]{3,}", "工号邀领4起号", True),
        ("工号[0-9零一二三四五六七八九幺两]{3,}", "工号要4270", True),
        ("工号[0-9零一二三四五六七八九幺两]{3,}", "工号是以后再说", False),  # 是: no digit
        ("工号[0-9零一二三四五六七八九幺两]{3,}", "工号等下告诉您", False),
        ("[^零一二三]号", "要号", True),  # a negated class: as written
        ("[一二]号", "以号", False),  # two numerals: the author's list
    ],
)
def test_regex_sounds_like(pattern, text, hit) -> None:
    from pipeline.scripts_check.operators import _compile, sound_alike

    assert bool(_compile(sound_alike(pattern)).search(text)) is hit, sound_alike(pattern)


def test_regex_sounds_like_is_the_languages_default_and_a_check_can_say_no() -> None:
    call = _call(("agent", "您好，三七五号克服为您服务。"))
    check = {"regex": {"role": "agent", "pattern": "号客服"}}
    (got,) = check_items(call, _rubric(check))
    assert got.passed is True, got.reason
    assert "homophones" in got.reason
    assert got.evidence[0].matched == "号克服"
    (strict,) = check_items(call, _rubric({"regex": {**check["regex"], "sounds_like": False}}))
    assert strict.passed is False, strict.reason
    # English rubrics: no Chinese homophones unless asked for
    (en,) = check_items(call, _rubric(check, language="en"))
    assert en.passed is False, en.reason
    (asked,) = check_items(
        call, _rubric({"regex": {**check["regex"], "sounds_like": True}}, language="en")
    )
    assert asked.passed is True, asked.reason


# bank v11 (split 12): a complaint in words the trigger list now holds; the apology after it
# passes, its absence fails, and a calm call leaves the item n/a. v13 (split 16): a request to
# cancel said as 把…卡销了; keeping the card (卡留着) is the retention, cancelling straight away
# is none, and no request leaves the item n/a
@pytest.mark.parametrize(
    ("item", "said", "reply", "verdict"),
    [
        (
            "apology_on_complaint",
            "啊？早知道先问清楚了，算了。",
            "不好意思，刚才应该先跟您讲清楚的。",
            True,
        ),
        ("apology_on_complaint", "啊？早知道先问清楚了，算了。", "手续费每期六十一块六。", False),
        ("apology_on_complaint", "你们到底有没有人在管？", "真是非常抱歉，我马上帮您查。", True),
        ("apology_on_complaint", "我真不想再折腾了。", "好的，我帮您登记。", False),
        ("apology_on_complaint", "好的，那就这样。", "好的，我帮您登记。", None),
        ("apology_on_complaint", "停了一个多月了你们都不管？", "物流显示十一月二号发的货。", False),
        ("apology_on_complaint", "你们上回也是这么说的！", "实在抱歉，这次我亲自跟进。", True),
        (
            "retention",
            "我想把一张不太用的卡销了。",
            "我可以先帮您把额度调到一万，卡留着，年费刷满六次就免。",
            True,
        ),
        ("retention", "我想把卡销了。", "这张卡目前没有欠款，可以直接销。", False),
        ("retention", "我想查一下账单。", "好的，我帮您查。", None),
    ],
)
def test_zh_bank_customer_turn_in_other_words(item: str, said: str, reply: str, verdict) -> None:
    t = _call(
        ("agent", "您好。"),
        ("customer", said),
        ("agent", reply),
        ("customer", "没有了。"),
        ("agent", "再见。"),
    )
    (got,) = [i for i in check_items(t, load_rubric("zh_bank_hotline")) if i.id == item]
    assert got.passed is verdict, got.reason


# e-commerce greeting after split 13: a salutation then the shop, its service or the agent's
# name greets; a bare "喂？售后，讲。" does not (rules, and the judge: 售后 alone is no greeting)
@pytest.mark.parametrize(
    ("first", "verdict"),
    [
        ("晚上好，麦穗商城客户关怀组，我是葛云帆，您今天碰上什么事儿了？", True),
        ("您好，这边是售后，我是小陆。", True),
        ("喂？售后，讲。", False),
    ],
)
def test_zh_ecommerce_greeting_needs_a_salutation(first: str, verdict: bool) -> None:
    t = _call(
        ("agent", first),
        ("customer", "我买的四件套颜色不对。"),
        ("agent", "订单号多少？"),
        ("customer", "二零二六幺二幺二零六四一。"),
        ("agent", "看到了，十二月十二号的单。"),
    )
    (got,) = [i for i in check_items(t, load_rubric("zh_ecommerce")) if i.id == "greeting"]
    assert got.passed is verdict, got.reason
