"""Recall and precision of pipeline.redact per entity type, on the test tables and on a
held-out set written in another style (dialogue turns, ASR-like text without punctuation,
fillers, context in the agent's question), so the tables are not the only yardstick.

    .venv/bin/python benchmarks/redaction.py

A prediction is a true positive when it has the expected type and overlaps the expected
span; "leaks" counts expected items whose text or digits survive `redact`.

Dialogue context (issue 17): a set this script generates (zh and en requests for an
account, card, ID, phone, PIN, code, date of birth or address answered in every spoken
form, plus numbers after similar questions that ask for nothing personal: amounts, counts,
dates, times, order numbers) and a fresh held-out set written independently before the
dialogue rules existed (benchmarks/data/redaction_dialogue_heldout.yaml). Recall: personal
items of which nothing survives `redact`; precision: findings that overlap a personal
item; kept: non-personal phrases that survive unchanged. Goals: recall >= 0.99, kept >= 0.98.

Issue 28: one held-out set per criterion (benchmarks/data/issue28/: names, requests garbled
by ASR and spoken dates of birth, two languages in one call, context beats checksums, test
numbers in personal context; 24-31 dialogues each), written and committed before the rules,
and a generated set of every request as ASR garbled it and asked in a call of the other
language. First runs, before the rules: recall 0.333 / 0.478 / 0.316 / 1.000 / 0.900, kept
0.909 / 1.000 / 1.000 / 1.000 / 0.800; generated 0.261. A second set written after the rules
(data/issue28/fresh.yaml, 28 dialogues), first untuned run: recall 0.952 (20/21: a surname
spelt again, 刘德华的刘), kept 0.857 (6/7: an agent's documentation card number); both
then fixed (a name found in an answer is masked wherever it is said again in it; the card
networks' documentation numbers are test numbers on the agent's side).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.redact import detect, redact
from pipeline.redact.digits import normalize
from pipeline.schema import Transcript, Utterance

CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "redact_cases.yaml"
DIALOGUE_HELD_OUT = Path(__file__).resolve().parent / "data" / "redaction_dialogue_heldout.yaml"
# written after the rules; its one untuned run gave recall 0.941 (16/17), kept 0.900 (9/10);
# "the code from the text message" was then added to the en requests (see the report)
DIALOGUE_HELD_OUT_2 = DIALOGUE_HELD_OUT.with_name("redaction_dialogue_heldout2.yaml")
# issue 28: one held-out set per criterion, written before its rules and never tuned on
ISSUE28 = Path(__file__).resolve().parent / "data" / "issue28"
ISSUE28_SETS = [
    ("1 names", "names.yaml"),
    ("2 requests garbled by ASR, spoken dates of birth", "requests_garbled.yaml"),
    ("3 two languages in one call", "codeswitch.yaml"),
    ("4 context beats checksums", "context_numbers.yaml"),
    ("5 no test-number exemption in personal context", "test_numbers.yaml"),
]

# (language, previous utterance or "", utterance, [(type, text), ...]); [] = negative.
HELD_OUT: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "zh",
        "麻烦留一个您的联系电话",
        "嗯 那个 幺五幺 二六六八 九九零七",
        [("PHONE", "幺五幺 二六六八 九九零七")],
    ),
    ("zh", "", "你打我老婆手机吧一八九零零一二三四五六", [("PHONE", "一八九零零一二三四五六")]),
    (
        "zh",
        "请问哪个号码能联系到您",
        "就这个号 一三七 七七七八 八八八",
        [("PHONE", "一三七 七七七八 八八八")],
    ),
    ("zh", "", "呃我的电话是一三五幺二幺二三四三四对", [("PHONE", "一三五幺二幺二三四三四")]),
    ("zh", "", "留个座机吧 零幺零 八二三四 五六七八", [("PHONE", "零幺零 八二三四 五六七八")]),
    ("zh", "", "微信就是手机号 15012345678 直接加", [("PHONE", "15012345678")]),
    (
        "zh",
        "核对一下您的身份信息 身份证号码是多少",
        "三幺零幺零幺 一九八二零三一五 零零二二",
        [("CN_ID", "三幺零幺零幺 一九八二零三一五 零零二二")],
    ),
    (
        "zh",
        "",
        "身份证 四二零一零六一九九五一一二三四四二七",
        [("CN_ID", "四二零一零六一九九五一一二三四四二七")],
    ),
    ("zh", "", "我身份证最后是X的 11010819880808123X", [("CN_ID", "11010819880808123X")]),
    (
        "zh",
        "",
        "证件号码三七零二零二 一九七零 零一零一 幺幺幺幺",
        [("CN_ID", "三七零二零二 一九七零 零一零一 幺幺幺幺")],
    ),
    (
        "zh",
        "请提供一下退款的银行卡号",
        "六二幺七 零零零零 幺二三四 五六七八 九零",
        [("BANK_CARD", "六二幺七 零零零零 幺二三四 五六七八 九零")],
    ),
    (
        "zh",
        "",
        "退到我工行卡上 卡号6212 2640 0001 2345 678",
        [("BANK_CARD", "6212 2640 0001 2345 678")],
    ),
    (
        "zh",
        "",
        "信用卡是五二零一 三三四四 五五六六 七七八八",
        [("BANK_CARD", "五二零一 三三四四 五五六六 七七八八")],
    ),
    ("zh", "", "发票发我邮箱wangxiaoer2020@126.com谢谢", [("EMAIL", "wangxiaoer2020@126.com")]),
    (
        "zh",
        "",
        "邮箱是 chen dot li at outlook dot com",
        [("EMAIL", "chen dot li at outlook dot com")],
    ),
    ("zh", "", "寄到天津市和平区南京路二百号", [("ADDRESS", "天津市和平区南京路二百号")]),
    (
        "zh",
        "",
        "地址 重庆市渝中区解放碑步行街十八号三楼",
        [("ADDRESS", "重庆市渝中区解放碑步行街十八号三楼")],
    ),
    ("zh", "", "我家是翠湖花园十二栋三单元一零二", [("ADDRESS", "翠湖花园十二栋三单元一零二")]),
    ("zh", "", "你好我叫刘德明 上周买的洗衣机", [("PERSON", "刘德明")]),
    ("zh", "", "联系人写我爱人 叫做吴晓燕", [("PERSON", "吴晓燕")]),
    ("zh", "", "好的谢谢马女士", [("PERSON", "马")]),
    ("zh", "", "我是宋佳 订单一直没到", [("PERSON", "宋佳")]),
    (
        "en",
        "Can I get a callback number?",
        "yeah it's eight one eight, five five five, two nine three oh",
        [("PHONE", "eight one eight, five five five, two nine three oh")],
    ),
    ("en", "", "um my phone number is 3 1 0 5 5 5 4 4 2 1", [("PHONE", "3 1 0 5 5 5 4 4 2 1")]),
    ("en", "", "text me at 206.555.0144 when it ships", [("PHONE", "206.555.0144")]),
    (
        "en",
        "",
        "you can call my husband on seven seven three double five five triple one two",
        [("PHONE", "seven seven three double five five triple one two")],
    ),
    (
        "en",
        "And the last four... actually I need the full social",
        "sure five two one, three four, nine eight seven six",
        [("US_SSN", "five two one, three four, nine eight seven six")],
    ),
    ("en", "", "SSN is 401-23-7788", [("US_SSN", "401-23-7788")]),
    (
        "en",
        "What card would you like to use today?",
        "the discover, six zero one one, one one one one, one one one one, one one one seven",
        [("CREDIT_CARD", "six zero one one, one one one one, one one one one, one one one seven")],
    ),
    (
        "en",
        "",
        "put it on my mastercard 5105 1051 0510 5100",
        [("CREDIT_CARD", "5105 1051 0510 5100")],
    ),
    (
        "en",
        "",
        "the card ends... no the whole number is 4000056655665556",
        [("CREDIT_CARD", "4000056655665556")],
    ),
    ("en", "", "email is mike_r99@yahoo.com all lowercase", [("EMAIL", "mike_r99@yahoo.com")]),
    (
        "en",
        "",
        "it's rob underscore king at hotmail dot com",
        [("EMAIL", "rob underscore king at hotmail dot com")],
    ),
    ("en", "", "ship to 55 Oak Street apartment 3", [("ADDRESS", "55 Oak Street")]),
    (
        "en",
        "",
        "hi my name's David Miller I'm calling about an outage",
        [("PERSON", "David Miller")],
    ),
    ("en", "", "Thanks so much Ms. Rodriguez", [("PERSON", "Rodriguez")]),
    # negatives
    ("zh", "", "那个 三百九十九的套餐 每个月十五号扣费", []),
    ("zh", "", "我等了四十五分钟了 打了三次电话", []),
    ("zh", "", "工号五五二八 坐席为您服务", []),
    ("zh", "", "您的工单号是 2024 0611 0003 已经登记了", []),
    ("zh", "", "订单编号 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6", []),
    ("zh", "", "退回来一千二百八十块钱 三到五个工作日", []),
    ("zh", "", "二零二四年六月十一号下午两点半", []),
    ("zh", "", "我是你们的老用户了用了八年", []),
    ("zh", "", "我是真的很生气", []),
    ("zh", "", "那个快递员说放在三号柜子了", []),
    ("zh", "", "验证码是四八二九一七", []),
    ("zh", "", "这个型号是KFR-35GW 一级能效", []),
    ("zh", "", "流量包十块钱一个G 一共买了两个", []),
    ("en", "", "the bill went from forty nine ninety nine to eighty nine dollars", []),
    ("en", "", "I've called like five times since June 3rd", []),
    ("en", "", "my agent number is 30417", []),
    ("en", "", "ticket number 8005551234 was closed", []),
    ("en", "", "order 4111 2222 3333 4444 never arrived", []),
    ("en", "", "it was about 200 megabytes over the 5 gig limit", []),
    ("en", "", "I'm really frustrated with this", []),
    ("en", "", "This is Verizon customer support how can I help", []),
    ("en", "", "we moved in 2019 and the router is model 7550", []),
    ("en", "", "press one for billing or two for support", []),
    ("en", "", "that's double what I paid last year", []),
]


# Written after the fixes the first held-out run prompted, and run once without tuning:
# long turns with the personal data in the middle, ASR-like run-on text.
HELD_OUT_FRESH: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "zh",
        "",
        "上个月我用一三六五五六六七七八八这个号码办的宽带到现在都没装好",
        [("PHONE", "一三六五五六六七七八八")],
    ),
    (
        "zh",
        "",
        "我上周在你们那个APP下单了两台空调收货人填的是我爸叫何建国电话一五八零零零零幺二幺二",
        [("PERSON", "何建国"), ("PHONE", "一五八零零零零幺二幺二")],
    ),
    (
        "zh",
        "您需要提供一下开户人的身份证",
        "好的 五幺零一零四 一九九零零五二零 三三七六",
        [("CN_ID", "五幺零一零四 一九九零零五二零 三三七六")],
    ),
    (
        "zh",
        "",
        "扣款的那张卡是六二二八 四八零零 一二三四 五六七八 九零三 你查一下",
        [("BANK_CARD", "六二二八 四八零零 一二三四 五六七八 九零三")],
    ),
    (
        "zh",
        "",
        "你们寄到我公司去吧 武汉市洪山区珞喻路一零三七号",
        [("ADDRESS", "武汉市洪山区珞喻路一零三七号")],
    ),
    (
        "zh",
        "",
        "邮件抄送给 hr_service@company-abc.cn 就可以",
        [("EMAIL", "hr_service@company-abc.cn")],
    ),
    (
        "zh",
        "",
        "我老公的手机是一八八 一一一一 二二二二 你们打过去他会接",
        [("PHONE", "一八八 一一一一 二二二二")],
    ),
    ("zh", "", "充了一百块话费 结果只到账了五十块 一共打了你们三次电话了", []),
    ("zh", "", "这个单子二零二三年十二月三十一号就下了 你们拖了快半年", []),
    ("zh", "", "我工号七七八一 刚才那个客户说要投诉", []),
    ("zh", "", "麻烦帮我查一下物流单号 7 7 0 8 8 1 2 3 4 5 6 7 8", []),
    ("zh", "", "你们那个套餐一百二十八一个月 包含三十个G流量", []),
    (
        "en",
        "",
        "so I gave the last rep my number which is two one two five five five oh one nine eight and nobody called",
        [("PHONE", "two one two five five five oh one nine eight")],
    ),
    (
        "en",
        "",
        "the charge was on my visa ending in four two four two, the full number is 4242 4242 4242 4242",
        [("CREDIT_CARD", "4242 4242 4242 4242")],
    ),
    (
        "en",
        "Can you verify your social security number",
        "it's six one two, seven eight, three four five six",
        [("US_SSN", "six one two, seven eight, three four five six")],
    ),
    (
        "en",
        "",
        "please send the refund confirmation to linda.park@example.org",
        [("EMAIL", "linda.park@example.org")],
    ),
    (
        "en",
        "",
        "I've been a customer for nineteen years and paid ninety nine dollars every month",
        [],
    ),
    ("en", "", "my case number is 00451239 and my account has 3 lines", []),
    ("en", "", "the outage started at 7 45 this morning and lasted 2 hours", []),
    (
        "en",
        "",
        "I'm Tom by the way and I live at 18 Maple Drive",
        [("PERSON", "Tom"), ("ADDRESS", "18 Maple Drive")],
    ),
]


def _table_cases() -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    data = yaml.safe_load(CASES.read_text("utf-8"))
    out = [
        (c["lang"], c.get("prev", ""), c["text"], [tuple(e) for e in c["expect"]])
        for c in data["positives"]
    ]
    out += [(c["lang"], c.get("prev", ""), c["text"], []) for c in data["negatives"]]
    return out


def _digits(text: str) -> str:
    return "".join(g.digits for run in normalize(text).runs for g in run)


def evaluate(cases) -> tuple[Counter, Counter, Counter, int, int, float]:
    tp, fp, fn = Counter(), Counter(), Counter()
    leaks = kept_negatives = 0
    started = time.perf_counter()
    for lang, prev, text, expected in cases:
        utts = [Utterance(speaker="agent", start=0, end=1, text=prev)] if prev else []
        utts.append(Utterance(speaker="customer", start=1, end=5, text=text))
        t = Transcript(language=lang, utterances=utts)
        last = len(utts) - 1
        found = [f for f in detect(t) if f.utterance == last]
        unmatched = list(found)
        for etype, etext in expected:
            s = text.find(etext)
            e = s + len(etext)
            hit = next(
                (
                    f
                    for f in unmatched
                    if f.entity_type == etype and f.char_start < e and f.char_end > s
                ),
                None,
            )
            if hit is None:
                fn[etype] += 1
            else:
                tp[etype] += 1
                unmatched.remove(hit)
        for f in unmatched:
            fp[f.entity_type] += 1
        clean = redact(t).utterances[last].text
        for _, etext in expected:
            d = _digits(etext)
            if etext in clean or (len(d) >= 7 and d in _digits(clean)):
                leaks += 1
        if not expected and clean == text:
            kept_negatives += 1
    return tp, fp, fn, leaks, kept_negatives, time.perf_counter() - started


def report(name: str, cases) -> None:
    tp, fp, fn, leaks, kept, secs = evaluate(cases)
    n_pos = sum(len(c[3]) for c in cases)
    n_neg = sum(1 for c in cases if not c[3])
    print(
        f"\n== {name}: {n_pos} expected items in {len(cases) - n_neg} utterances, {n_neg} negative utterances"
    )
    print(f"{'type':<12}{'tp':>5}{'fp':>5}{'fn':>5}{'recall':>9}{'precision':>11}")
    for t in sorted(set(tp) | set(fp) | set(fn)):
        r = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else float("nan")
        p = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else float("nan")
        print(f"{t:<12}{tp[t]:>5}{fp[t]:>5}{fn[t]:>5}{r:>9.3f}{p:>11.3f}")
    TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(f"{'overall':<12}{TP:>5}{FP:>5}{FN:>5}{TP / (TP + FN):>9.3f}{TP / (TP + FP):>11.3f}")
    print(
        f"leaks after redact: {leaks}/{n_pos}; negatives kept intact: {kept}/{n_neg}; "
        f"{1000 * secs / len(cases):.2f} ms per utterance (detect + redact)"
    )


# --------------------------------------------------------------------------- dialogue context


@dataclass
class Dialogue:
    lang: str
    turns: list[tuple[str, str]]
    personal: list[tuple[int, str]] = field(default_factory=list)
    keep: list[tuple[int, str]] = field(default_factory=list)
    kind: str = ""


_EN_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_ZH_WORDS = "零一二三四五六七八九"


def _en_forms(d: str, rng: random.Random) -> dict[str, str]:
    words = [_EN_WORDS[int(c)] for c in d]
    oh_double: list[str] = []
    i = 0
    while i < len(d):
        if i + 1 < len(d) and d[i] == d[i + 1]:
            oh_double.append(f"double {'oh' if d[i] == '0' else _EN_WORDS[int(d[i])]}")
            i += 2
        else:
            oh_double.append("oh" if d[i] == "0" else _EN_WORDS[int(d[i])])
            i += 1
    half = len(d) // 2
    return {
        "digits": d,
        "spaced": " ".join(d),
        "whisper_commas": ", ".join(d),
        "grouped": f"{d[:half]} {d[half:]}",
        "words": " ".join(words),
        "words_grouped": f"{' '.join(words[:half])}, {' '.join(words[half:])}",
        "oh_double": " ".join(oh_double),
        "mixed": " ".join(c if k % 2 else _EN_WORDS[int(c)] for k, c in enumerate(d)),
    }


def _zh_forms(d: str, rng: random.Random) -> dict[str, str]:
    plain = "".join(_ZH_WORDS[int(c)] for c in d)
    yao = plain.replace("一", "幺")
    dong = "".join({"0": "洞", "2": "两"}.get(c, _ZH_WORDS[int(c)]) for c in d)
    half = len(d) // 2
    return {
        "digits": d,
        "spaced": " ".join(d),
        "whisper_commas": "，".join(d),
        "numerals": plain,
        "numerals_yao": yao,
        "numerals_dong_liang": dong,
        "numerals_grouped": f"{yao[:half]}，{yao[half:]}",
        "mixed": d[:half] + yao[half:],
    }


# (entity, request, digits length) per language
_EN_REQUESTS = [
    ("account", "May I have your account number please?", 8),
    ("account", "Could you read me your customer ID?", 7),
    ("card", "Can I get the card number?", 16),
    ("card", "What are the digits on your debit card?", 16),
    ("ssn", "Can you verify your social security number?", 9),
    ("id", "What are the last four of your ID?", 4),
    ("phone", "What's the best number to reach you?", 10),
    ("phone", "Can I get a callback number?", 10),
    ("pin", "Please say your PIN.", 4),
    ("pin", "Can you confirm your passcode?", 6),
    ("code", "Could you read me the verification code?", 6),
    ("code", "What's the code we just texted you?", 6),
    ("address", "What's your zip code?", 5),
]
_ZH_REQUESTS = [
    ("account", "请问您的账号是多少？", 10),
    ("card", "麻烦您报一下银行卡号。", 16),
    ("card", "请说一下您卡号的后四位。", 4),
    ("id", "请提供一下您的身份证后四位。", 4),
    ("id", "请报一下您的身份证号码。", 18),
    ("phone", "请问您的手机号码是多少？", 11),
    ("phone", "麻烦留一下您的联系电话。", 8),
    ("password", "请您输入一下查询密码。", 6),
    ("code", "请您念一下收到的验证码。", 6),
    ("address", "请问您那边的邮编是多少？", 6),
]
# each request as an ASR model garbled it (homophones, a dropped or changed word), issue 28
_EN_GARBLED = {
    "May I have your account number please?": "May I have your count number please?",
    "Could you read me your customer ID?": "Could you read me your customer I.D.?",
    "Can I get the card number?": "Can I get the car number?",
    "What are the digits on your debit card?": "What are the digits on your debit guard?",
    "Can you verify your social security number?": "Can you verify your social secure tea number?",
    "What are the last four of your ID?": "What are the last for of your ID?",
    "What's the best number to reach you?": "What's the best numb her to reach you?",
    "Can I get a callback number?": "Can I get a call back numbers?",
    "Please say your PIN.": "Please say your pin number.",
    "Can you confirm your passcode?": "Can you confirm your pass code?",
    "Could you read me the verification code?": "Could you read me the verification coat?",
    "What's the code we just texted you?": "What's the code we just text you?",
    "What's your zip code?": "What's your zipcode?",
}
_ZH_GARBLED = {
    "请问您的账号是多少？": "请问您的账好是多少？",
    "麻烦您报一下银行卡号。": "麻烦您报一下银行咖号。",
    "请说一下您卡号的后四位。": "请说一下您咖号的后四位。",
    "请提供一下您的身份证后四位。": "请提供一下您的身份正后四位。",
    "请报一下您的身份证号码。": "请报一下您的身分证号码。",
    "请问您的手机号码是多少？": "请问您的手鸡号码是多少？",
    "麻烦留一下您的联系电话。": "麻烦留一下您的联系电化。",
    "请您输入一下查询密码。": "请您输入一下查询蜜码。",
    "请您念一下收到的验证码。": "请您念一下收到的验正码。",
    "请问您那边的邮编是多少？": "请问您那边的油编是多少？",
}
_EN_WRAP = ["{x}", "It's {x}.", "Um, it's uh, {x}.", "Sure, {x}", "Yeah. {x}, I think."]
_ZH_WRAP = ["{x}", "{x}。", "嗯，是{x}。", "呃，那个，{x}。", "好的，{x}，对。"]

# (question, answer, phrase that must stay); {x} takes an order number in any spoken form
_EN_KEEP = [
    ("How much was the charge?", "It was 49.99 dollars.", "49.99"),
    ("How much do you pay a month?", "Eighty five dollars.", "Eighty five dollars"),
    ("How many lines do you have?", "I have 3 lines.", "3 lines"),
    ("How many times did you call?", "About four times.", "four times"),
    ("When did this happen?", "On June 3rd at 2 30.", "June 3rd at 2 30"),
    ("What time works for the technician?", "After 5 pm.", "After 5 pm"),
    ("Which day was the charge?", "The 12th of May.", "12th of May"),
    ("How long have you been a customer?", "Nineteen years.", "Nineteen years"),
    ("What's your order number?", "{x}", "{x}"),
    ("Can I have the confirmation number please?", "It's {x}.", "{x}"),
    ("What's the ticket number on your email?", "Uh, {x}.", "{x}"),
]
_ZH_KEEP = [
    ("这笔扣了多少钱？", "扣了一百二十八块。", "一百二十八块"),
    ("您每个月交多少钱？", "每个月五十九元。", "五十九元"),
    ("一共买了几件？", "买了三件。", "三件"),
    ("您打了几次电话？", "打了四次了。", "四次"),
    ("您是什么时候下的单？", "五月十二号晚上八点。", "五月十二号晚上八点"),
    ("您几点方便接电话？", "下午三点以后。", "下午三点以后"),
    ("您用了多久了？", "用了两年了。", "两年"),
    ("请问您的订单号是多少？", "{x}", "{x}"),
    ("麻烦提供一下快递单号。", "单号是{x}。", "{x}"),
    ("请问工单号是多少？", "嗯，{x}。", "{x}"),
]


def dialogue_set(seed: int = 17) -> list[Dialogue]:
    """Requests answered in every spoken form (one turn, two turns through the agent's
    backchannel) and numbers after questions that ask for nothing personal."""
    rng = random.Random(seed)
    out: list[Dialogue] = []
    for lang, requests, forms_of, wraps, backchannel, keeps in (
        ("en", _EN_REQUESTS, _en_forms, _EN_WRAP, "Mm-hm.", _EN_KEEP),
        ("zh", _ZH_REQUESTS, _zh_forms, _ZH_WRAP, "嗯，您说。", _ZH_KEEP),
    ):
        for entity, question, length in requests:
            digits = str(rng.randint(1, 9)) + "".join(
                str(rng.randint(0, 9)) for _ in range(length - 1)
            )
            if rng.random() < 0.5:  # runs of equal digits: "double five", 两两
                k = rng.randrange(length - 1)
                digits = digits[:k] + digits[k] * 2 + digits[k + 2 :]
            for form, x in forms_of(digits, rng).items():
                wrap = rng.choice(wraps)
                out.append(
                    Dialogue(
                        lang,
                        [("agent", question), ("customer", wrap.format(x=x))],
                        personal=[(1, x)],
                        kind=f"{entity}/{form}",
                    )  # fmt: skip
                )
                # a mono call without speakers: question and answer in one utterance
                out.append(
                    Dialogue(
                        lang,
                        [("unknown", f"{question} {wrap.format(x=x)}")],
                        personal=[(0, x)],
                        kind=f"{entity}/{form}/mono",
                    )  # fmt: skip
                )
                if len(digits) >= 6:  # the answer over two turns, the agent's mm-hm between
                    a, b = (
                        forms_of(digits[: len(digits) // 2], rng)[form],
                        forms_of(digits[len(digits) // 2 :], rng)[form],
                    )
                    out.append(
                        Dialogue(
                            lang,
                            [
                                ("agent", question),
                                ("customer", wrap.format(x=a)),
                                ("agent", backchannel),
                                ("customer", b),
                            ],
                            personal=[(1, a), (3, b)],
                            kind=f"{entity}/{form}/two turns",
                        )  # fmt: skip
                    )
        for question, answer, phrase in keeps:
            order = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(9))
            fills = forms_of(order, rng) if "{x}" in answer else {"": phrase}
            for form, x in fills.items():
                said, kept = answer.format(x=x), phrase.format(x=x)
                kind = f"keep/order/{form}" if form else "keep"
                two_turns = [("agent", question), ("customer", said)]
                out.append(Dialogue(lang, two_turns, keep=[(1, kept)], kind=kind))
                mono = [("unknown", f"{question} {said}")]  # no speakers: one utterance
                out.append(Dialogue(lang, mono, keep=[(0, kept)], kind=f"{kind}/mono"))
    return out


def garbled_set(seed: int = 28) -> list[Dialogue]:
    """Every request as ASR garbled it, answered in every spoken form; and every request
    (as written) in a call of the other language (code-switching): issue 28."""
    rng = random.Random(seed)
    out: list[Dialogue] = []
    for lang, other, requests, garbled, forms_of, wraps in (
        ("en", "zh", _EN_REQUESTS, _EN_GARBLED, _en_forms, _EN_WRAP),
        ("zh", "en", _ZH_REQUESTS, _ZH_GARBLED, _zh_forms, _ZH_WRAP),
    ):
        for entity, question, length in requests:
            digits = str(rng.randint(1, 9)) + "".join(
                str(rng.randint(0, 9)) for _ in range(length - 1)
            )
            for form, x in forms_of(digits, rng).items():
                answer = rng.choice(wraps).format(x=x)
                turns = [("agent", garbled[question]), ("customer", answer)]
                out.append(Dialogue(lang, turns, personal=[(1, x)], kind=f"{entity}/{form}/asr"))
                turns = [("agent", question), ("customer", answer)]
                kind = f"{entity}/{form}/in a {other} call"
                out.append(Dialogue(other, turns, personal=[(1, x)], kind=kind))
    return out


def held_out_dialogues(path: Path = DIALOGUE_HELD_OUT) -> list[Dialogue]:
    data = yaml.safe_load(path.read_text("utf-8"))
    return [
        Dialogue(
            d["lang"],
            [tuple(t) for t in d["turns"]],
            personal=[tuple(p) for p in d.get("personal", [])],
            keep=[tuple(k) for k in d.get("keep", [])],
            kind="held-out",
        )
        for d in data
    ]


def evaluate_dialogues(cases: list[Dialogue]) -> dict:
    masked = total = kept = keeps = true_findings = findings = 0
    misses: list[str] = []
    started = time.perf_counter()
    for c in cases:
        t = Transcript(
            language=c.lang,
            utterances=[
                Utterance(speaker=spk, start=3.0 * i, end=3.0 * i + 2.5, text=text)
                for i, (spk, text) in enumerate(c.turns)
            ],
        )
        found = detect(t)
        clean = redact(t, found)
        spans = {(i, c.turns[i][1].find(x), c.turns[i][1].find(x) + len(x)) for i, x in c.personal}
        for f in found:
            findings += 1
            true_findings += any(
                i == f.utterance and f.char_start < e and f.char_end > s for i, s, e in spans
            )
        for i, x in c.personal:
            total += 1
            out = clean.utterances[i].text
            d = _digits(x)
            leaked = x in out or (len(d) >= 3 and d in _digits(out))
            masked += not leaked
            if leaked:
                misses.append(f"LEAK {c.kind}: {' | '.join(u.text for u in clean.utterances)}")
        for i, x in c.keep:
            keeps += 1
            ok = x in clean.utterances[i].text
            kept += ok
            if not ok:
                misses.append(f"LOST {c.kind}: {' | '.join(u.text for u in clean.utterances)}")
    return {
        "dialogues": len(cases),
        "personal": total,
        "recall": masked / total if total else float("nan"),
        "precision": true_findings / findings if findings else float("nan"),
        "non_personal": keeps,
        "kept": kept / keeps if keeps else float("nan"),
        "misses": misses,
        "ms_per_dialogue": 1000 * (time.perf_counter() - started) / max(len(cases), 1),
    }


def report_dialogues(name: str, cases: list[Dialogue]) -> None:
    r = evaluate_dialogues(cases)
    print(f"\n== {name}: {r['dialogues']} dialogues")
    for lang in ("en", "zh"):
        part = evaluate_dialogues([c for c in cases if c.lang == lang])
        print(
            f"  {lang}: personal items {part['personal']:>4}  recall {part['recall']:.3f}  "
            f"precision {part['precision']:.3f}  non-personal {part['non_personal']:>3}  "
            f"kept {part['kept']:.3f}"
        )
    print(
        f"  all: personal items {r['personal']:>4}  recall {r['recall']:.3f}  "
        f"precision {r['precision']:.3f}  non-personal {r['non_personal']:>3}  "
        f"kept {r['kept']:.3f}  ({r['ms_per_dialogue']:.2f} ms per dialogue)"
    )
    goals = r["recall"] >= 0.99 and r["kept"] >= 0.98
    print(f"  goals (recall >= 0.99, kept >= 0.98): {'met' if goals else 'NOT met'}")
    for line in r["misses"][:20]:
        print(f"  {line}")


def main() -> None:
    report("test tables (tests/data/redact_cases.yaml)", _table_cases())
    report("held-out (benchmarks/redaction.py HELD_OUT)", HELD_OUT)
    report("fresh held-out, never tuned on (HELD_OUT_FRESH)", HELD_OUT_FRESH)
    report_dialogues("dialogue context, generated (dialogue_set)", dialogue_set())
    report_dialogues(
        "dialogue context, fresh held-out, never tuned on (data/redaction_dialogue_heldout.yaml)",
        held_out_dialogues(),
    )
    report_dialogues(
        "ASR-garbled requests and requests in a call of the other language, generated",
        garbled_set(),
    )
    for name, file in [*ISSUE28_SETS, ("fresh, written after the rules, untuned", "fresh.yaml")]:
        report_dialogues(
            f"issue 28 held-out {name} (data/issue28/{file})", held_out_dialogues(ISSUE28 / file)
        )
    report_dialogues(
        "dialogue context, second held-out (data/redaction_dialogue_heldout2.yaml; "
        "first run: recall 0.941, kept 0.900)",
        held_out_dialogues(DIALOGUE_HELD_OUT_2),
    )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
