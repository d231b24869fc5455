"""Labelled synthetic calls built from real held-out reviews, for calibration and benchmarks.

No labelled Chinese call with a complaint outcome may be used here, so calls are assembled
from real reviews the dissatisfaction model never trained on (the held-out split), with the
structure of a helpdesk conversation: the customer opens, the agent answers, and the ending
depends on the outcome. Dissatisfied calls (label 1) end unresolved, negative or unanswered
and may escalate or repeat; satisfied calls (label 0) often open with a complaint too but end
with thanks. Both sides get the other's cues at a low rate, plus label noise, so no single
cue separates them. This measures calibration and consistency, not real-world validity.
"""

from __future__ import annotations

import hashlib
import random
import re

from pipeline.schema import Transcript, Utterance
from pipeline.score.risk.corpora import DEFAULT_CACHE, Review, load_reviews, split_of

AGENT_OPEN = [
    "您好，很高兴为您服务，请问有什么可以帮您？",
    "您好，客服中心，请讲。",
    "您好，请问有什么问题需要处理？",
]
AGENT_ACK = [
    "非常抱歉给您带来不便，我这边帮您查询一下。",
    "好的，请您稍等，我帮您核实一下。",
    "明白了，我帮您记录一下。",
    "这边已经给您登记了，会尽快给您处理。",
    "理解您的心情，我马上帮您反馈。",
]
AGENT_CLOSE = [
    "请问还有其他可以帮您的吗？",
    "感谢您的来电，祝您生活愉快。",
    "好的，后续有问题随时联系我们。",
]
AGENT_COMPLAINT_INFO = ["如果您对处理结果不满意，也可以通过投诉渠道反馈。"]
CUST_OPEN = [
    "你好，我想问一下我的订单。",
    "你好，我有个问题想咨询一下。",
    "喂，你好，我之前买的东西有点问题。",
    "请问积分怎么兑换话费？",
    "我想查一下我的订单到哪了",
    "能不能帮我改一下收货地址？",
    "请问发票怎么开？",
    "我想问下这个套餐怎么办理",
    "在吗？我想咨询一下退换货的流程",
]
REJECT = [
    "不行，这样解决不了我的问题。",
    "那我该怎么办？",
    "还是不行啊。",
    "你没听懂我的意思。",
    "我不要优惠券，我要你们解决问题。",
]
RHETORICAL = [
    "你们到底有没有人管？",
    "凭什么让我一直等？",
    "为什么每次都是这样？",
    "你们怎么回事？",
]
CUST_THANKS = [
    "好的，谢谢。",
    "行，那麻烦你了，谢谢。",
    "好的，知道了，谢谢你。",
    "可以了，问题解决了，谢谢。",
]
CUST_UNRESOLVED = [
    "算了，说了也没用。",
    "你们到底什么时候才能解决？",
    "还是没解决，我不想再等了。",
    "那我到底要等到什么时候？",
    "每次都这么说，有什么用。",
]
REPEAT = [
    "这是我第三次打电话了，",
    "我上次就反映过了，",
    "都等了好几天了，",
    "我已经打了好几次了，",
]
ESCALATE = [
    "再不解决我就去12315投诉。",
    "我要投诉你们。",
    "叫你们领导来跟我说。",
    "我要找媒体曝光你们。",
    "给我退款，不然我就起诉。",
]
HARD_NEGATIVE = ["我不是要投诉，就是问问。", "上次有人说要投诉，我觉得没必要。"]


def subsplit(text: str) -> str:
    """Halves of the held-out reviews: 'calib' fits the calibration, 'bench' measures it."""
    return "calib" if hashlib.md5(text.encode("utf-8")).digest()[1] % 2 == 0 else "bench"


def heldout_reviews(reviews: list[Review], part: str) -> list[Review]:
    return [r for r in reviews if split_of(r.text) == "test" and subsplit(r.text) == part]


def _turn(text: str) -> str:
    return text if len(text) <= 120 else text[:120]


def synth_calls(
    reviews: list[Review],
    n: int,
    seed: int = 7,
    noise: float = 0.08,
    p_dissatisfied: float = 0.4,
    chat: bool = False,
) -> list[tuple[Transcript, int]]:
    """``n`` labelled calls; label 1 = dissatisfied customer (complaint risk).

    ``chat``: text-only helpdesk chats instead: no times (all 0) and customer messages split
    at clause punctuation into several consecutive short turns.
    """
    rng = random.Random(seed)
    neg = [r.text for r in reviews if r.label == 0]
    pos = [r.text for r in reviews if r.label == 1]
    calls = []
    for k in range(n):
        y = int(rng.random() < p_dissatisfied)
        cust: list[str] = []
        agent_extra = rng.random() < 0.15
        if y:
            if rng.random() < 0.3:
                cust.append(rng.choice(CUST_OPEN))
            first = rng.choice(neg)
            cust.append((rng.choice(REPEAT) if rng.random() < 0.35 else "") + first)
            cust.append(first if rng.random() < 0.25 else rng.choice(neg))
            if rng.random() < 0.3:
                cust.append(rng.choice(REJECT))
            if rng.random() < 0.25:
                cust.append(rng.choice(RHETORICAL))
            if rng.random() < 0.3:
                cust.append(rng.choice(ESCALATE))
            cust.append(rng.choice(CUST_UNRESOLVED) if rng.random() < 0.5 else rng.choice(neg))
            if rng.random() < 0.1:
                cust.append(rng.choice(CUST_THANKS))
            unanswered_end = rng.random() < 0.4
        elif rng.random() < 0.25:  # a short calm service question
            cust += [rng.choice(CUST_OPEN), rng.choice(CUST_THANKS)]
            unanswered_end = False
        else:
            r = rng.random()
            cust.append(
                rng.choice(neg)
                if r < 0.5
                else rng.choice(CUST_OPEN)
                if r < 0.8
                else rng.choice(pos)
            )
            if rng.random() < 0.1:
                cust[0] = rng.choice(REPEAT) + cust[0]
            cust.append(rng.choice(pos) if rng.random() < 0.6 else rng.choice(neg))
            if rng.random() < 0.1:
                cust.append(rng.choice(HARD_NEGATIVE))
            cust.append(rng.choice(CUST_THANKS) if rng.random() < 0.75 else rng.choice(pos))
            unanswered_end = rng.random() < 0.1
        utts: list[tuple[str, str]] = [("agent", rng.choice(AGENT_OPEN))]
        for j, text in enumerate(cust):
            utts.append(("customer", _turn(text)))
            last = j == len(cust) - 1
            if last and unanswered_end:
                break
            if last:
                utts.append(("agent", rng.choice(AGENT_CLOSE)))
            else:
                utts.append(
                    (
                        "agent",
                        rng.choice(AGENT_COMPLAINT_INFO if agent_extra and j == 0 else AGENT_ACK),
                    )
                )
        if chat:
            split: list[tuple[str, str]] = []
            for speaker, text in utts:
                parts = [p for p in re.split(r"(?<=[，。！？,.!?])", text) if p.strip()]
                split += [(speaker, p) for p in (parts if speaker == "customer" else [text])]
            utts = split
        t, utterances = 0.0, []
        for speaker, text in utts:
            dur = 0.5 + 0.2 * len(text)
            start, end = (0.0, 0.0) if chat else (round(t, 2), round(t + dur, 2))
            utterances.append(Utterance(speaker=speaker, start=start, end=end, text=text))
            t += dur + rng.uniform(0.2, 1.5)
        label = 1 - y if rng.random() < noise else y
        calls.append(
            (
                Transcript(call_id=f"synth-{seed}-{k:05d}", language="zh", utterances=utterances),
                label,
            )
        )
    return calls


def calibration_calls(n: int, seed: int = 5, part: str = "calib") -> list[tuple[Transcript, int]]:
    """``n`` labelled calls from the ``part`` half of the held-out reviews (all corpora), half
    of them as text-only chats, so fitted weights hold for calls and chats alike."""
    reviews = heldout_reviews(load_reviews(DEFAULT_CACHE, extended=True), part)
    calls = synth_calls(reviews, n - n // 2, seed=seed)
    return calls + synth_calls(reviews, n // 2, seed=seed + 1, chat=True)
