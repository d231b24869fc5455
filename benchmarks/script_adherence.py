"""Script adherence: per-item precision / recall / F1 at 0, 10 and 20 % simulated ASR noise,
and the end-to-end time of ``callqa score FOLDER --rubric R --out DIR`` on the whole set.

The labelled set is synthesised (fixed seed) from templates of Chinese e-commerce and bank
customer-service dialogues: many paraphrases of greetings, "anything else" questions and
closings, scripted phrases embedded in longer agent sentences, forbidden phrases and
near-miss negatives (不知道您…, 我不是说不可能, 还有一件事…). Labels come from the generator,
never from the engine. Paraphrase pools are larger than the rubric's phrase lists, as in real
calls. (NTCIR STC-3 and JDDC are held out for the product owner's check: not used here.)

Noise is applied to the agent's Chinese characters: at rate p a character becomes a homophone
(same tone-less pinyin, 60 %), a near-homophone (zh/z, ch/c, sh/s, n/l, -ng/-n, 25 %) or is
deleted (15 %) — or, one time in ten, kept with a hesitation before it (那个, 就是, 呃, or the
character repeated).

Negatives include near misses (不知道您…, 我不是说不可能, 还有一件事…) and negation flips of
the forbidden phrases (这归我管, 我有办法, 我知道您着急) and of the required ones (没有其他可以
帮您的了, 暂时无法为您服务). ``--calibrate`` sweeps the default thresholds in-process on a
separate seed and prints, per kind (required / forbidden), the threshold with the highest
worst-item F1 whose precision is at least 0.98 at every noise level.

    .venv/bin/python benchmarks/script_adherence.py [--n 1500] [--seed 7] [--risk] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUBRIC_YAML = """\
# Benchmark rubric, DESIGN.md minimal format, written the way a QA team would; thresholds
# are the engine's calibrated per-language defaults (defaults.yaml match.zh).
id: bench_cs
version: 1
language: zh
title: 客服会话质检（基准）
sections:
  - id: opening
    title: 开场
    items:
      - id: greeting
        title: 标准问候语
        points: 25
        check:
          required:
            role: agent
            phrases: ["您好，很高兴为您服务", "您好，欢迎光临", "亲，在的", "您好，请问有什么可以帮您",
                      "欢迎致电", "您好，我是客服"]
            within: {first_turns: 2}
  - id: closing
    title: 结束
    items:
      - id: anything_else
        title: 询问是否还有其他需要
        points: 25
        check:
          required:
            role: agent
            phrases: ["请问还有其他可以帮您的吗", "还有什么问题吗", "请问还有别的需要吗",
                      "还有其他问题需要咨询吗", "请问还有什么可以帮您的吗",
                      "请问您还有其他问题吗"]
            within: {last_turns: 4}
      - id: closing
        title: 结束语
        points: 25
        check:
          required:
            role: agent
            phrases: ["感谢您的来电，祝您生活愉快", "感谢您的支持，祝您生活愉快", "祝您生活愉快，再见",
                      "感谢您的耐心，再见", "再见"]
            within: {last_turns: 2}
  - id: attitude
    title: 服务禁用语
    items:
      - id: no_forbidden
        title: 未使用服务禁用语
        points: 25
        critical: true
        check:
          forbidden:
            role: agent
            phrases: ["不知道", "不清楚", "这不归我管", "这是规定", "你自己看着办", "不可能",
                      "我也没有办法"]
"""

SHOPS = ["小米官方旗舰店", "京东自营", "华为商城", "优衣库旗舰店", "三只松鼠", "美的官方店"]
BANKS = ["华信银行信用卡中心", "招商银行客服中心", "建设银行", "平安银行"]
GREET = [
    "您好，很高兴为您服务",
    "您好，很高兴为您服务，请问有什么可以帮您？",
    "亲，在的，请问有什么可以帮您",
    "您好，欢迎光临{shop}，请问有什么可以帮您",
    "亲，您好，欢迎光临{shop}",
    "在的亲，有什么问题您说",
    "您好，欢迎致电{bank}，工号{num}，很高兴为您服务",
    "您好，我是客服小{name}，很高兴为您服务",
    "您好呀，很高兴为您服务，请问您遇到了什么问题",
    "您好，请问有什么可以帮您",
    "亲，在的哦，很高兴为您服务",
    "您好，{bank}，工号{num}，请问有什么可以帮您",
]
NO_GREET = [
    "喂？说吧。",
    "订单号发一下。",
    "什么事？",
    "嗯，你说。",
    "请讲。",
    "有事吗？",
    # near misses and negation flips of the greeting phrases
    "您好，这边暂时无法为您服务，请稍后再来。",
    "不好意思，现在没法为您服务。",
    "您好，我不是客服，您打错了。",
    "欢迎您下次再来。",
]
ASK = [
    "请问还有其他可以帮您的吗？",
    "还有什么问题吗？",
    "请问还有别的需要吗？",
    "亲，还有其他问题需要咨询吗？",
    "那请问您还有其他问题吗？",
    "好的，请问还有什么可以帮您的吗？",
    "这边已经给您处理好了，请问还有其他可以帮您的吗？",
    "亲亲还有什么问题吗",
    "请问还有别的需要帮忙的吗？",
]
NO_ASK = [
    "还有一件事需要跟您确认一下，收货地址没有变吧？",
    "您稍后留意一下短信通知。",
    "我这边已经给您备注了。",
    "其他的订单都已经发货了。",
    "您再看一下有没有收到退款。",
    # near misses and negation flips of the "anything else" phrases
    "没有其他可以帮您的了，就这样吧。",
    "其他问题我这边没法帮您。",
    "还有问题的话我也帮不了您。",
    "您还有其他订单没有收货吗？",
]
CLOSE = [
    "感谢您的来电，祝您生活愉快，再见！",
    "感谢您的支持，祝您生活愉快！",
    "好的，祝您生活愉快，再见。",
    "感谢您的耐心，再见。",
    "那不打扰您了，再见。",
    "感谢您对{shop}的支持，祝您生活愉快，再见",
    "好的亲，感谢您的支持，祝您生活愉快哦",
    "感谢来电，再见。",
]
NO_CLOSE = [
    "好的。",
    "嗯嗯，那就这样。",
    "行，您等通知吧。",
    "好的，我这边会跟进的。",
    # near misses of the closing phrases
    "先别挂，我再核实一下。",
    "感谢您的反馈，我们会改进。",
    "祝您的问题早日解决。",
]
FORBID = [
    "这个我也不知道，您去问物流吧。",
    "这个我不清楚，您自己看一下。",
    "这不归我管，您找售后。",
    "这是规定，我们也没办法。",
    "你自己看着办吧。",
    "退全款是不可能的。",
    "这个我真的不知道怎么处理。",
    "不清楚，系统上没显示。",
    # fillers and hesitations inside the phrase
    "你自己那个看着办吧。",
    "这个，这不归，呃，我管。",
    "这这是规定，没法改。",
    "我也没有办法，系统就是这样。",
    "这个我也没有办法帮您。",
    "那个我真的就是不知道。",
]
NEAR_MISS = [
    "不知道您现在方便提供一下订单号吗？",
    "我不是说不可能，只是需要一点时间。",
    "不知道您对这个方案满意吗？",
    "如果有不清楚的地方，您可以随时联系我们。",
    "我们知道您着急，已经在加急处理了。",
    "这边清楚地看到您的订单已经签收了。",
    "规定的时效是七个工作日，我帮您催一下。",
    "您看着方便的时候回复我就可以。",
]
# the forbidden phrases with a negation gained or lost: the opposite meaning, no forbidden use
NEGATION_FLIP = [
    "这归我管，我马上帮您处理。",
    "这不是规定的问题，我帮您申请特殊处理。",
    "我知道您着急，马上帮您催。",
    "我清楚您的情况了，马上处理。",
    "这是可能的，您放心。",
    "我有办法，您别着急。",
    "我有办法帮您处理。",
    "这边清楚了，我马上给您补发。",
]
CUSTOMER_Q = [
    "我的快递三天了还没到，怎么回事？",
    "我想申请退款，订单号是{order}。",
    "你好，这个衣服尺码不合适能换吗？",
    "我的信用卡账单有一笔{amount}元的消费不是我刷的。",
    "我想把这期账单分十二期。",
    "发票怎么开？",
    "这个耳机左边没声音了。",
    "我上周买的东西降价了，能补差价吗？",
]
AGENT_BODY = [
    "好的，麻烦您提供一下订单号，我这边帮您查询。",
    "我这边看到您的订单已经在派送中了，预计明天送达。",
    "非常抱歉给您带来不便，我马上帮您申请换货。",
    "这笔消费我已经帮您登记了，会在七个工作日内给您回复。",
    "分期手续费一经收取不予退还，您确认要办理吗？",
    "请您稍等，我帮您查询一下。",
    "已经帮您提交了退款申请，款项会在{days}个工作日内原路退回。",
    "您可以在订单详情页点击申请开票。",
    "这个商品支持七天无理由退换，您放心。",
    "已经给您备注了优先处理，{amount}元会退到您的账户。",
]
CUSTOMER_MID = [
    "好的。",
    "嗯，那要多久？",
    "行吧。",
    "订单号是{order}。",
    "可以，谢谢。",
    "那你快点处理。",
    "明白了。",
]
CUSTOMER_END = ["没有了，谢谢。", "没了。", "好的，谢谢你。", "暂时没有了。"]
NAMES = "张王李赵刘陈杨黄周吴"


def _fill(s: str, rng: random.Random) -> str:
    return s.format(
        shop=rng.choice(SHOPS),
        bank=rng.choice(BANKS),
        name=rng.choice(NAMES),
        num=rng.choice(["三八二七", "1086", "二零四五", "5521"]),
        order=str(rng.randint(10**9, 10**10)),
        amount=rng.choice(["三百", "1299", "八十八", "450"]),
        days=rng.choice(["三到五", "7", "十"]),
    )


def synth_dialogue(
    k: int, rng: random.Random, language: str = "zh"
) -> tuple[dict, dict[str, bool]]:
    """One labelled dialogue: transcript JSON and the truth per item (True = said)."""
    if language == "en":
        return synth_dialogue_en(k, rng)
    lab = {
        "greeting": rng.random() < 0.6,
        "anything_else": rng.random() < 0.6,
        "closing": rng.random() < 0.6,
        "forbidden": rng.random() < 0.3,
    }
    turns: list[tuple[str, str]] = []
    f = lambda pool: _fill(rng.choice(pool), rng)  # noqa: E731
    first = f(GREET) if lab["greeting"] else f(NO_GREET)
    if rng.random() < 0.3:  # customer speaks first in chats ("在吗")
        turns.append(("customer", rng.choice(["在吗？", "你好", "有人吗"])))
    turns.append(("agent", first))
    turns.append(("customer", f(CUSTOMER_Q)))
    body = [f(AGENT_BODY) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.5:
        body.insert(rng.randrange(len(body) + 1), f(NEAR_MISS))
    if rng.random() < 0.4:
        body.insert(rng.randrange(len(body) + 1), f(NEGATION_FLIP))
    if lab["forbidden"]:
        body.insert(rng.randrange(len(body) + 1), f(FORBID))
    for b in body:
        turns.append(("agent", b))
        turns.append(("customer", f(CUSTOMER_MID)))
    if lab["anything_else"]:
        turns.append(("agent", f(ASK)))
        turns.append(("customer", f(CUSTOMER_END)))
    elif rng.random() < 0.5:
        turns.append(("agent", f(NO_ASK)))
        turns.append(("customer", "好的。"))
    turns.append(("agent", f(CLOSE) if lab["closing"] else f(NO_CLOSE)))
    utts, t = [], 0.0
    for spk, text in turns:
        d = max(1.0, len(text) / 4.0)
        utts.append({"speaker": spk, "start": round(t, 2), "end": round(t + d, 2), "text": text})
        t += d + rng.uniform(0.3, 1.5)
    return {"call_id": f"cs{k:05d}", "language": "zh", "utterances": utts}, lab


# --------------------------------------------------------------------------- noise


@lru_cache(maxsize=1)
def _sound_tables() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """Common characters (GB2312 level 1) by tone-less pinyin and by folded pinyin."""
    from pipeline.text import common_hanzi, fold_syllable, hanzi_by_reading

    by_py = {py: list(chars) for py, chars in hanzi_by_reading().items()}
    py_of = {c: py for py, chars in by_py.items() for c in chars}
    by_fold: dict[str, list[str]] = {}
    for c in common_hanzi():
        by_fold.setdefault(fold_syllable(py_of[c]), []).append(c)
    return by_py, by_fold, py_of


def add_noise(text: str, rate: float, rng: random.Random) -> str:
    """At ``rate``, a Chinese character of ``text`` gets a hesitation before it (10 %), else
    becomes a homophone (60 %) / near-homophone (25 %) or is deleted (15 %)."""
    if rate <= 0:
        return text
    from pypinyin import Style, lazy_pinyin

    from pipeline.text import fold_syllable, is_cjk

    by_py, by_fold, py_of = _sound_tables()
    out = []
    for c in text:
        if not is_cjk(c) or rng.random() >= rate:
            out.append(c)
            continue
        if rng.random() < 0.1:  # a hesitation before the character, the character kept
            out += [rng.choice(["那个", "就是", "呃", c]), c]
            continue
        r = rng.random()
        py = py_of.get(c) or lazy_pinyin(c, style=Style.NORMAL)[0]
        if r < 0.60:
            pool = [x for x in by_py.get(py, []) if x != c]
        elif r < 0.85:
            pool = [x for x in by_fold.get(fold_syllable(py), []) if py_of[x] != py]
            pool = pool or [x for x in by_py.get(py, []) if x != c]
        else:
            continue  # deleted
        out.append(rng.choice(pool) if pool else c)
    return "".join(out)


def noisy(transcript: dict, rate: float, rng: random.Random) -> dict:
    t = json.loads(json.dumps(transcript))
    noise = add_noise_en if t.get("language") == "en" else add_noise
    for u in t["utterances"]:
        if u["speaker"] == "agent":
            u["text"] = noise(u["text"], rate, rng)
    return t


def build_set(n: int, seed: int, language: str = "zh") -> list[tuple[dict, dict[str, bool]]]:
    rng = random.Random(seed)
    return [synth_dialogue(k, rng, language) for k in range(n)]


# --------------------------------------------------------------------------- English

EN_RUBRIC_YAML = """\
id: bench_cs_en
version: 1
language: en
title: Customer service QA (benchmark)
sections:
  - id: opening
    title: Opening
    items:
      - id: greeting
        title: Standard greeting
        points: 25
        check:
          required:
            role: agent
            phrases: ["thank you for calling", "how may i help you today",
                      "how can i help you today"]
            within: {first_turns: 2}
  - id: closing
    title: Closing
    items:
      - id: anything_else
        title: Asked whether there is anything else
        points: 25
        check:
          required:
            role: agent
            phrases: ["is there anything else i can help you with",
                      "is there anything else i can do for you",
                      "do you have any other questions"]
            within: {last_turns: 4}
      - id: closing
        title: Closing words
        points: 25
        check:
          required:
            role: agent
            phrases: ["have a great day", "have a nice day", "thanks for your patience"]
            within: {last_turns: 2}
  - id: attitude
    title: Forbidden phrases
    items:
      - id: no_forbidden
        title: No forbidden phrases
        points: 25
        critical: true
        check:
          forbidden:
            role: agent
            phrases: ["i don't know", "that's not my problem", "that's our policy",
                      "calm down", "there is nothing i can do", "you should have read the terms"]
"""
EN = {
    "greet": [
        "thank you for calling northwind, my name is sam, how can i help you today?",
        "hi, thank you for calling, how may i help you today?",
        "good morning and thank you for calling acme support.",
        "hello, how can i help you today?",
        "thanks for calling, this is alex, how may i help you today?",
    ],
    "no_greet": [
        "yeah, what is it?",
        "account number?",
        "go ahead.",
        "i can't help you today, please call back later.",
        "we are not able to help you today.",
        "calling about your order, right?",
    ],
    "ask": [
        "is there anything else i can help you with?",
        "okay, is there anything else i can do for you today?",
        "great, do you have any other questions?",
        "alright, is there anything else i can help you with today?",
        "perfect, is there anything else i can do for you?",
    ],
    "no_ask": [
        "there isn't anything else i can do for you.",
        "i don't have any other information.",
        "anything else will have to wait until monday.",
        "you can ask any other questions on the website.",
    ],
    "close": [
        "thanks again and have a great day!",
        "alright, have a nice day, goodbye.",
        "thanks for your patience, have a great day.",
        "thank you, you have a nice day now.",
    ],
    "no_close": [
        "okay.",
        "bye.",
        "we'll be in touch.",
        "have your receipt ready next time.",
        "it wasn't a great day for our systems.",
    ],
    "forbid": [
        "i don't know, you'll have to ask the courier.",
        "honestly that's not my problem.",
        "sorry but that's our policy.",
        "sir, calm down please.",
        "there is nothing i can do about it.",
        "you should have read the terms before buying.",
        "i, um, don't know what happened.",
        "look, that's, you know, our policy.",
    ],
    "near_miss": [
        "i don't know if you have your order number handy?",
        "i'm not saying that's our policy, let me check.",
        "our return policy gives you thirty days.",
        "please take a moment to read the terms on the website.",
        "let me know if the package arrives.",
        "i know this has been frustrating.",
    ],
    "negation_flip": [
        "i do know what happened, let me explain.",
        "that's my problem to fix now, leave it with me.",
        "that is not our policy, i'll correct it.",
        "there is something i can do about it.",
        "you don't need to have read the terms, i'll walk you through them.",
        "i know the answer, one second.",
    ],
    "body": [
        "let me pull up your account.",
        "i can see the order shipped yesterday.",
        "i've issued a refund to your card, it should arrive in five working days.",
        "i'm sorry about the delay.",
        "i've added a note to your account.",
        "your new router will arrive on friday.",
    ],
    "customer_q": [
        "my internet has been down since monday.",
        "i want a refund for my order.",
        "there's a charge on my bill i don't recognise.",
        "my package never arrived.",
    ],
    "customer_mid": ["okay.", "how long will that take?", "fine.", "thanks.", "right."],
    "customer_end": ["no, that's all, thanks.", "nope.", "no thank you."],
}
EN_SOUNDS = {
    "for": ["four"],
    "to": ["too", "two"],
    "you": ["ya"],
    "your": ["you're"],
    "there": ["their"],
    "right": ["write"],
    "here": ["hear"],
    "by": ["buy"],
    "know": ["no"],
    "see": ["sea"],
    "have": ["of"],
    "great": ["grate"],
    "day": ["they"],
    "help": ["health"],
    "nice": ["knife"],
    "calling": ["calming"],
    "anything": ["any thing"],
    "thank": ["think"],
    "can": ["cat"],
}
EN_FILLERS = ["um", "uh", "you know", "like", "i mean"]


def synth_dialogue_en(k: int, rng: random.Random) -> tuple[dict, dict[str, bool]]:
    """The English counterpart of :func:`synth_dialogue` (the same four items)."""
    lab = {
        "greeting": rng.random() < 0.6,
        "anything_else": rng.random() < 0.6,
        "closing": rng.random() < 0.6,
        "forbidden": rng.random() < 0.3,
    }
    c = rng.choice
    turns = [("agent", c(EN["greet"] if lab["greeting"] else EN["no_greet"]))]
    turns.append(("customer", c(EN["customer_q"])))
    body = [c(EN["body"]) for _ in range(rng.randint(1, 4))]
    for pool, p in (("near_miss", 0.5), ("negation_flip", 0.4)):
        if rng.random() < p:
            body.insert(rng.randrange(len(body) + 1), c(EN[pool]))
    if lab["forbidden"]:
        body.insert(rng.randrange(len(body) + 1), c(EN["forbid"]))
    for b in body:
        turns += [("agent", b), ("customer", c(EN["customer_mid"]))]
    if lab["anything_else"]:
        turns += [("agent", c(EN["ask"])), ("customer", c(EN["customer_end"]))]
    elif rng.random() < 0.5:
        turns += [("agent", c(EN["no_ask"])), ("customer", "okay.")]
    turns.append(("agent", c(EN["close"] if lab["closing"] else EN["no_close"])))
    utts, t = [], 0.0
    for spk, text in turns:
        d = max(1.0, len(text.split()) / 2.5)
        utts.append({"speaker": spk, "start": round(t, 2), "end": round(t + d, 2), "text": text})
        t += d + rng.uniform(0.3, 1.5)
    return {"call_id": f"en{k:05d}", "language": "en", "utterances": utts}, lab


def _misspell(word: str, rng: random.Random) -> str:
    if word in EN_SOUNDS:
        return rng.choice(EN_SOUNDS[word])
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word))
    edit = rng.random()
    if edit < 0.4:
        return word[:i] + word[i + 1 :]  # a dropped letter
    if edit < 0.7:
        return word[:i] + word[i - 1] + word[i:]  # a doubled letter
    vowels = "aeiou"
    return word[:i] + rng.choice(vowels) + word[i + 1 :]  # another vowel / letter


def add_noise_en(text: str, rate: float, rng: random.Random) -> str:
    """At ``rate``, an English word gets a hesitation before it (10 %), else becomes a
    sound-alike or misspelt word (75 %) or is deleted (15 %), as the Chinese noise."""
    if rate <= 0:
        return text
    out = []
    for word in text.split():
        if rng.random() >= rate:
            out.append(word)
            continue
        r = rng.random()
        if r < 0.1:
            out += [rng.choice(EN_FILLERS + [word]), word]
        elif r < 0.85:
            core = word.rstrip(",.?!")
            out.append(_misspell(core.lower(), rng) + word[len(core) :])
        # else: deleted
    return " ".join(out)


# --------------------------------------------------------------------------- scoring

# item → (rubric item id, verdict that means "detected", kind)
ITEMS = {
    "greeting": ("greeting", True, "required"),
    "anything_else": ("anything_else", True, "required"),
    "closing": ("closing", True, "required"),
    "forbidden": ("no_forbidden", False, "forbidden"),
}
KINDS = ("required", "forbidden")
MIN_PRECISION = 0.98


def prf(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float]:
    tp = sum(1 for t, p in pairs if t and p)
    fp = sum(1 for t, p in pairs if not t and p)
    fn = sum(1 for t, p in pairs if t and not p)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score_folder(folder: Path, rubric: Path, out: Path, risk: bool) -> tuple[float, float]:
    """Run the real CLI (process start to finish): wall seconds and the CPU seconds (user +
    system) of the process (on a shared machine the wall time includes waiting for CPU)."""
    import resource

    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "score",
        str(folder),
        "--rubric",
        str(rubric),
        "--out",
        str(out),
    ] + ([] if risk else ["--no-risk"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"callqa score failed after {wall:.1f} s: {last[0]}")
    return wall, cpu


def _load() -> float:
    """The 1-minute load average (how shared the machine was)."""
    import os

    return os.getloadavg()[0]


def pairs_by_item(labelled, verdicts) -> dict[str, list[tuple[bool, bool]]]:
    """(truth, detected) per item; ``verdicts`` gives each call's {item id: passed}."""
    pairs: dict[str, list[tuple[bool, bool]]] = {k: [] for k in ITEMS}
    for (_, lab), by_id in zip(labelled, verdicts, strict=True):
        for name, (item, detected_when, _) in ITEMS.items():
            pairs[name].append((lab[name], by_id[item] is detected_when))
    return pairs


def figures(pairs: dict[str, list[tuple[bool, bool]]]) -> dict[str, tuple[str, tuple]]:
    """P/R/F1 per item and pooled per kind: {row name: (kind, (P, R, F1))}."""
    out = {k: (ITEMS[k][2], prf(v)) for k, v in pairs.items()}
    for kind in KINDS:
        pooled = [x for k, v in pairs.items() if ITEMS[k][2] == kind for x in v]
        out[f"all {kind}"] = (kind, prf(pooled))
    return out


def cli_verdicts(labelled, out: Path) -> list[dict[str, bool | None]]:
    res = [json.loads((out / f"{t['call_id']}.json").read_text("utf-8")) for t, _ in labelled]
    return [{i["id"]: i["passed"] for i in r["items"]} for r in res]


def print_rates(rate: float, pairs: dict[str, list[tuple[bool, bool]]]) -> None:
    """Pooled required items: false fails (said, failed) over the lines said, false passes
    (not said, passed) over those not said."""
    pooled = [x for k, v in pairs.items() if ITEMS[k][2] == "required" for x in v]
    said = [d for t, d in pooled if t]
    not_said = [d for t, d in pooled if not t]
    ff = sum(1 for d in said if not d) / len(said) if said else 0.0
    fp = sum(1 for d in not_said if d) / len(not_said) if not_said else 0.0
    print(
        f"{rate:>5.0%}  required: false-fail rate {ff:.1%} of {len(said)} said, "
        f"false-pass rate {fp:.1%} of {len(not_said)} not said"
    )


def print_figures(rate: float, rows: dict[str, tuple[str, tuple]]) -> None:
    for kind in KINDS:
        for name, (k, (p, r, f)) in rows.items():
            if k == kind:
                print(f"{rate:>5.0%}  {kind:<9} {name:<14} {p:6.3f} {r:6.3f} {f:6.3f}")


# words whose loss turns a negative into a forbidden phrase (a negation, a polite "if")
CUE_WORDS = {
    "zh": ("不", "没", "别", "未", "无"),
    "en": ("not", "n't", "never", "if", "whether", "saying"),
}


def _cue_count(text: str, language: str) -> int:
    if language == "en":
        words = text.lower().replace("n't", " n't").split()
        return sum(1 for w in words if w.strip(",.?!") in CUE_WORDS["en"])
    return sum(text.count(c) for c in CUE_WORDS["zh"])


def lost_cue(clean: dict, noisy_t: dict, language: str) -> bool:
    """Noise removed or garbled a negation / context word of an agent turn: what is left
    may read, word for word, as a forbidden phrase (我不是说不可能 → 我是说不可能)."""
    return any(
        _cue_count(n["text"], language) < _cue_count(c["text"], language)
        for c, n in zip(clean["utterances"], noisy_t["utterances"], strict=True)
        if c["speaker"] == "agent"
    )


def print_noise_ceiling(rate: float, clean, data, out: Path, language: str) -> None:
    """Forbidden false alarms on negatives whose negation / context word the noise removed
    (no text matcher can tell those from the phrase), and precision without them."""
    verdicts = cli_verdicts(data, out)
    item, detected_when, _ = ITEMS["forbidden"]
    fp_lost = fp_other = tp = 0
    for (c, _), (n, lab), by_id in zip(clean, data, verdicts, strict=True):
        if by_id[item] is not detected_when:
            continue
        if lab["forbidden"]:
            tp += 1
        elif lost_cue(c, n, language):
            fp_lost += 1
        else:
            fp_other += 1
    rest = tp / (tp + fp_other) if tp + fp_other else 1.0
    print(
        f"{rate:>5.0%}  forbidden false alarms: {fp_lost + fp_other}, of which {fp_lost} on "
        f"negatives whose negation/context word noise removed; precision without those "
        f"{rest:.3f}"
    )


# --------------------------------------------------------------------------- agent lines
# Compliant lines in the agent's own words and near misses, against the shipped rubric's
# required items (benchmarks/data/en_script_lines_{dev,heldout}.yaml). Each line is scored
# as it was written (clean, or as tiny.en mis-heard it: "asr: ...") and, unless written as
# mis-heard, once more with one or two ASR slips in its words (a sound-alike or misspelt
# word; never a negation, which would turn a near miss into the phrase).

LINES = {
    "en": ("en_telecom", ROOT / "benchmarks" / "data" / "en_script_lines_{split}.yaml"),
}
MAX_FALSE_RATE = 0.02


def load_lines(language: str, split: str) -> list[tuple[str, str, bool, bool]]:
    """(item id, line, compliant, written as mis-heard) of one split."""
    import yaml

    path = Path(str(LINES[language][1]).format(split=split))
    rows = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8")):
        for key, compliant in (("said", True), ("not_said", False)):
            for line in entry[key]:
                asr = line.startswith("asr:")
                rows.append((entry["item"], line[4:].strip() if asr else line, compliant, asr))
    return rows


def slip_line(text: str, rng: random.Random, negations: frozenset[str]) -> str:
    """``text`` with one or two words mis-heard (sound-alike or misspelt), no deletions."""
    words = text.split()
    idx = [
        k
        for k, w in enumerate(words)
        if len(w.strip(",.?!")) >= 3 and w.strip(",.?!").lower() not in negations and "'" not in w
    ]
    for k in rng.sample(idx, min(len(idx), 1 if rng.random() < 0.7 else 2)):
        core = words[k].rstrip(",.?!")
        words[k] = _misspell(core.lower(), rng) + words[k][len(core) :]
    return " ".join(words)


def line_set(language: str, split: str, seed: int) -> list[tuple[str, str, bool, str]]:
    """(item id, text, compliant, variant: clean / asr / slipped) of one split."""
    rng = random.Random(seed)
    negations = frozenset(["not", "never", "nothing", "don't", "can't", "isn't", "no"])
    out = []
    for item, line, compliant, asr in load_lines(language, split):
        out.append((item, line, compliant, "asr" if asr else "clean"))
        if not asr:
            out.append((item, slip_line(line, rng, negations), compliant, "slipped"))
    return out


def line_verdicts(rows, rubric) -> list[bool | None]:
    """The rubric item's verdict on each line said by the agent (one agent turn, then the
    customer's), the engine as ``callqa score`` runs it."""
    from pipeline.schema import Transcript
    from pipeline.scripts_check import check_items

    out = []
    for k, (item, text, _, _) in enumerate(rows):
        t = Transcript.model_validate(
            {
                "call_id": f"line{k}",
                "language": rubric.language,
                "utterances": [
                    {"speaker": "agent", "start": 0.0, "end": 3.0, "text": text},
                    {"speaker": "customer", "start": 3.5, "end": 4.5, "text": "okay."},
                ],
            }
        )
        by_id = {r.id: r.passed for r in check_items(t, rubric)}
        out.append(by_id[item])
    return out


def sweep_line_semantic(language: str, seed: int, grid: list[float]) -> None:
    """False-fail / false-pass rates on the DEV lines for each semantic threshold (the
    rubric's ``semantic.min_similarity``): how the English default was picked."""
    from pipeline.config import resolve_rubric_path
    from pipeline.contracts import read_yaml
    from pipeline.scripts_check import parse_rubric

    data = read_yaml(resolve_rubric_path(LINES[language][0]))[0]
    rows = line_set(language, "dev", seed)
    print(f"{'semantic':>8} {'false fail':>10} {'false pass':>10}  (dev lines, seed {seed})")
    for th in grid:
        rubric = parse_rubric({**data, "semantic": {"min_similarity": th}}, path="sweep")
        verdicts = line_verdicts(rows, rubric)
        pos = [v for r, v in zip(rows, verdicts, strict=True) if r[2]]
        neg = [v for r, v in zip(rows, verdicts, strict=True) if not r[2]]
        ff = sum(1 for v in pos if v is not True) / len(pos)
        fp = sum(1 for v in neg if v is True) / len(neg)
        print(f"{th:>8.3f} {ff:>10.1%} {fp:>10.1%}")


def print_line_rates(language: str, splits: list[str], seed: int, show: bool) -> None:
    """False-fail rate on compliant lines, false-pass rate on near misses, per split."""
    from pipeline.scripts_check import load_rubric

    rubric = load_rubric(LINES[language][0])
    print(f"agent lines vs {rubric.id} (sha256 {rubric.sha256[:12]}), seed {seed}")
    print(
        f"{'split':<8} {'variant':<8} {'compliant':>9} {'false fail':>10} "
        f"{'near miss':>9} {'false pass':>10}"
    )
    pooled: list = []
    for split in [*splits, "held-out"]:
        if split == "held-out":  # every held-out split scored above, pooled
            if sum(1 for s in splits if s.startswith("heldout")) < 2:
                break
            rows, verdicts = [r for r, _ in pooled], [v for _, v in pooled]
            show = False
        else:
            rows = line_set(language, split, seed)
            verdicts = line_verdicts(rows, rubric)
            if split.startswith("heldout"):
                pooled += zip(rows, verdicts, strict=True)
        for variant in ("clean", "asr", "slipped", "all"):
            sel = [
                (r, v)
                for r, v in zip(rows, verdicts, strict=True)
                if variant == "all" or r[3] == variant
            ]
            pos = [v for r, v in sel if r[2]]
            neg = [v for r, v in sel if not r[2]]
            ff = sum(1 for v in pos if v is not True) / len(pos) if pos else 0.0
            fp = sum(1 for v in neg if v is True) / len(neg) if neg else 0.0
            print(f"{split:<8} {variant:<8} {len(pos):>9} {ff:>10.1%} {len(neg):>9} {fp:>10.1%}")
        if show:
            for (item, text, compliant, variant), v in zip(rows, verdicts, strict=True):
                if (v is True) != compliant:
                    what = "FALSE FAIL" if compliant else "FALSE PASS"
                    print(f"  {what:<10} {item:<15} {variant:<7} {text}")


# --------------------------------------------------------------------------- learning


def _scored(transcripts, rubric):
    """(call id, Transcript, Result) as the store would hold them."""
    from pipeline.schema import Transcript
    from pipeline.score import score_transcript

    out = []
    for t in transcripts:
        tr = Transcript.model_validate(t)
        out.append((tr.call_id, tr, score_transcript(tr, rubric, risk_fn=lambda _t: None)))
    return out


def _learnt(data: dict, rubric, calls, labels):
    """The rubric with, per item, the best proposal that agrees with more labels and breaks
    no golden case applied (what a rubric owner would accept); the proposals taken."""
    from pipeline.rubric_learning import changed_data, propose_from
    from pipeline.scripts_check import parse_rubric

    taken, new = [], data
    for p in propose_from(data, rubric, calls, labels):
        if p.item_id in {t.item_id for t in taken}:
            continue
        if p.agree_after > p.agree_before and not p.broken_cases:
            taken.append(p)
            new = {**changed_data(new, p), "version": data["version"]}
    return parse_rubric(new, path=rubric.path), taken


def _line_transcripts(rows) -> list[dict]:
    return [
        {
            "call_id": f"line{k}",
            "language": "en",
            "utterances": [
                {"speaker": "agent", "start": 0.0, "end": 3.0, "text": text},
                {"speaker": "customer", "start": 3.5, "end": 4.5, "text": "okay."},
            ],
        }
        for k, (_, text, _, _) in enumerate(rows)
    ]


def _rates(rows, verdicts) -> tuple[float, float]:
    pos = [v for r, v in zip(rows, verdicts, strict=True) if r[2]]
    neg = [v for r, v in zip(rows, verdicts, strict=True) if not r[2]]
    return (
        sum(1 for v in pos if v is not True) / len(pos),
        sum(1 for v in neg if v is True) / len(neg),
    )


def learn_benchmark(language: str, seed: int, n: int) -> None:
    """Reviewers' verdicts on a DEV set become proposals (pipeline.rubric_learning); the
    accepted ones must not raise false passes on a HELD-OUT set. en: the agent-line sets
    against en_telecom; zh: the dialogue set at 20 % noise (labels on --cal-seed dialogues,
    figures on --seed ones)."""
    from pipeline.config import resolve_rubric_path
    from pipeline.contracts import read_yaml
    from pipeline.schema import Transcript
    from pipeline.scripts_check import check_items, parse_rubric

    if language == "en":
        path = resolve_rubric_path(LINES["en"][0])
        data, content = read_yaml(path)
        rubric = parse_rubric(data, path, content)
        dev, held = line_set("en", "dev", seed), line_set("en", "heldout", seed)
        calls = _scored(_line_transcripts(dev), rubric)
        labels = {(f"line{k}", r[0]): r[2] for k, r in enumerate(dev)}
        new, taken = _learnt(data, rubric, calls, labels)
        for name, rows in (("dev", dev), ("heldout", held)):
            before = _rates(rows, line_verdicts(rows, rubric))
            after = _rates(rows, line_verdicts(rows, new))
            print(
                f"en {name:<8} false fail {before[0]:.1%} -> {after[0]:.1%}, "
                f"false pass {before[1]:.1%} -> {after[1]:.1%}"
            )
    else:
        import yaml

        data = yaml.safe_load(RUBRIC_YAML)
        rubric = parse_rubric(data, path=str(ROOT / "benchmarks" / "bench_cs.yaml"))
        rng = random.Random(seed)
        dev = [(noisy(t, 0.2, rng), lab) for t, lab in build_set(n, seed, "zh")]
        calls = _scored([t for t, _ in dev], rubric)
        labels = {
            (t["call_id"], item): (lab[name] if det else not lab[name])
            for t, lab in dev
            for name, (item, det, _) in ITEMS.items()
        }
        new, taken = _learnt(data, rubric, calls, labels)
        rng = random.Random(7 * 1000 + 20)
        held = [(noisy(t, 0.2, rng), lab) for t, lab in build_set(n, 7, "zh")]
        for name, r in (("before", rubric), ("after", new)):
            verdicts = [
                {x.id: x.passed for x in check_items(Transcript.model_validate(t), r)}
                for t, _ in held
            ]
            pairs = pairs_by_item(held, verdicts)
            print(f"zh held-out (seed 7, 20 % noise) {name}:")
            print_rates(0.2, pairs)
            rows = figures(pairs)
            worst = min(
                f for k, (kind, (_, _, f)) in rows.items() if kind == "required" and k in ITEMS
            )
            print(f"  worst required item F1 {worst:.3f}")
    for p in taken:
        change = p.add_phrases or f"min_similarity {p.min_similarity}"
        print(
            f"  accepted {p.item_id}: {change}; labels agreed {p.agree_before}/{p.labelled} -> "
            f"{p.agree_after}/{p.labelled}; {len(p.flips)} flips"
        )
    if not taken:
        print("  no proposal agreed with more reviewer labels")


# --------------------------------------------------------------------------- calibration


def calibrate(
    n: int,
    seed: int,
    noise: list[float],
    grid: list[float],
    costs: list[tuple[float, float]],
    language: str = "zh",
) -> None:
    """Sweep one min_similarity for every item of a kind (in-process, the same engine the
    CLI runs) on a set drawn with another seed, for each (homophone, missing) cost pair;
    print the table and the pick per kind."""
    from pipeline.match_config import overridden

    for homophone, missing in costs:
        with overridden(language, homophone_cost=homophone, missing_cost=missing):
            print(f"== {language} costs: homophone {homophone:g}, missing {missing:g}")
            _sweep(n, seed, noise, grid, language)


def _sweep(n: int, seed: int, noise: list[float], grid: list[float], language: str) -> None:
    import yaml

    from pipeline.schema import Transcript
    from pipeline.scripts_check import check_items, parse_rubric

    clean = build_set(n, seed, language)
    sets = {}
    for rate in noise:
        rng = random.Random(seed * 1000 + int(rate * 100))
        sets[rate] = [(Transcript.model_validate(noisy(t, rate, rng)), lab) for t, lab in clean]
    base = yaml.safe_load(EN_RUBRIC_YAML if language == "en" else RUBRIC_YAML)
    table: dict[float, dict[float, dict[str, tuple]]] = {}
    for th in grid:
        for section in base["sections"]:
            for item in section["items"]:
                next(iter(item["check"].values()))["min_similarity"] = th
        rubric = parse_rubric(base, path="calibration")
        table[th] = {}
        for rate, data in sets.items():
            verdicts = [{r.id: r.passed for r in check_items(t, rubric)} for t, _ in data]
            table[th][rate] = figures(pairs_by_item(data, verdicts))
    print(f"calibration: {n} dialogues (seed {seed}), precision >= {MIN_PRECISION}")
    print(f"{'kind':<9} {'thresh':>6}  " + "  ".join(f"{r:>4.0%} minP minF1" for r in noise))
    for kind in KINDS:
        best = None
        for th in grid:
            worst_p, worst_f, cells = [], [], []
            for rate in noise:
                rows = [v for k, (kk, v) in table[th][rate].items() if kk == kind and k in ITEMS]
                mp, mf = min(r[0] for r in rows), min(r[2] for r in rows)
                worst_p.append(mp)
                worst_f.append(mf)
                cells.append(f"{mp:10.3f} {mf:5.3f}")
            ok = min(worst_p) >= MIN_PRECISION
            print(f"{kind:<9} {th:>6.3f}  " + "  ".join(cells) + ("" if ok else "  (P < min)"))
            key = (min(worst_f), sum(worst_f))
            if ok and (best is None or key > best[0]):
                best = (key, th)
        pick = f"{best[1]:.3f} (worst-item F1 {best[0][0]:.3f})" if best else "none meets P"
        print(f"-> {kind}: default min_similarity {pick}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--noise", type=float, nargs="*", default=[0.0, 0.1, 0.2])
    ap.add_argument("--risk", action="store_true", help="also time the run with complaint risk on")
    ap.add_argument("--out", type=Path, default=None, help="keep the data here (default: temp)")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="sweep the default thresholds on a separate seed (--cal-seed) instead",
    )
    ap.add_argument("--cal-seed", type=int, default=11)
    ap.add_argument("--language", choices=["zh", "en"], default="zh")
    ap.add_argument(
        "--costs",
        nargs="*",
        default=["0.25:1.0"],
        help="zh HOMOPHONE:MISSING cost pairs to calibrate with (default: the shipped ones)",
    )
    ap.add_argument(
        "--grid", type=float, nargs="*", default=[0.65, 0.7, 0.725, 0.75, 0.775, 0.8, 0.85, 0.9]
    )
    ap.add_argument(
        "--lines",
        nargs="*",
        default=[
            "dev",
            "dev2",
            "dev3",
            "heldout",
            "heldout2",
            "heldout3",
            "heldout4",
            "heldout5",
            "heldout6",
            "heldout7",
            "heldout8",
            "heldout9",
            "heldout10",
        ],
        help="en: splits of the agent-line sets to score (benchmarks/data/en_script_lines_*)",
    )
    ap.add_argument("--lines-seed", type=int, default=5)
    ap.add_argument("--lines-only", action="store_true", help="en: only the agent-line sets")
    ap.add_argument("--show", action="store_true", help="list every wrong line verdict")
    ap.add_argument(
        "--semantic-grid",
        type=float,
        nargs="*",
        default=None,
        help="en: sweep the paraphrase threshold on the dev lines instead",
    )
    ap.add_argument(
        "--learn",
        action="store_true",
        help="reviewer labels on a dev set -> accepted proposals -> rates on a held-out set",
    )
    args = ap.parse_args()
    if args.learn:
        learn_benchmark(
            args.language,
            args.lines_seed if args.language == "en" else args.cal_seed,
            min(args.n, 300),
        )
        return
    if args.semantic_grid:
        sweep_line_semantic(args.language, args.lines_seed, args.semantic_grid)
        return
    if args.language in LINES and args.lines and not args.calibrate:
        print_line_rates(args.language, args.lines, args.lines_seed, args.show)
        if args.lines_only:
            return
    if args.calibrate:
        costs = [tuple(float(x) for x in c.split(":")) for c in args.costs]
        calibrate(args.n, args.cal_seed, args.noise, args.grid, costs, args.language)
        return

    work = args.out or Path(tempfile.mkdtemp(prefix="callqa-sa-"))
    work.mkdir(parents=True, exist_ok=True)
    rubric = work / "bench_cs.yaml"
    rubric.write_text(EN_RUBRIC_YAML if args.language == "en" else RUBRIC_YAML, encoding="utf-8")
    clean = build_set(args.n, args.seed, args.language)
    print(f"{args.n} synthetic dialogues (seed {args.seed}); rubric {rubric}")
    print(f"{'noise':>5}  {'kind':<9} {'item':<14} {'P':>6} {'R':>6} {'F1':>6}")
    for rate in args.noise:
        rng = random.Random(args.seed * 1000 + int(rate * 100))
        data = [(noisy(t, rate, rng), lab) for t, lab in clean]
        folder, out = work / f"in_{int(rate * 100)}", work / f"out_{int(rate * 100)}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        folder.mkdir()
        for t, _ in data:
            (folder / f"{t['call_id']}.json").write_text(json.dumps(t, ensure_ascii=False), "utf-8")
        wall, cpu = score_folder(folder, rubric, out, risk=False)
        pairs = pairs_by_item(data, cli_verdicts(data, out))
        print_figures(rate, figures(pairs))
        print_rates(rate, pairs)
        print_noise_ceiling(rate, clean, data, out, args.language)
        print(
            f"{rate:>5.0%}  scored {len(data)} transcripts in {wall:.1f} s end to end "
            f"({cpu:.1f} CPU s; --no-risk; load average {_load():.1f})"
        )
        if args.risk and rate == args.noise[0]:
            out_r = work / "out_risk"
            shutil.rmtree(out_r, ignore_errors=True)
            try:
                wall_r, cpu_r = score_folder(folder, rubric, out_r, risk=True)
                print(
                    f"{rate:>5.0%}  with complaint risk: {len(data)} transcripts in "
                    f"{wall_r:.1f} s ({cpu_r:.1f} CPU s; load average {_load():.1f})"
                )
            except RuntimeError as exc:
                print(f"{rate:>5.0%}  with complaint risk: {exc}")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
