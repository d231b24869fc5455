"""How fast cross-call search answers with 100,000 scored calls in SQLite.

Fills a fresh store with N calls (the bulk fill of benchmarks/review_queue.py) and gives each
a synthetic Chinese conversation of 16 utterances drawn from templates with varying names,
products, numbers and dates (~400 characters a call), indexed with the app's own
:class:`~pipeline.store.search.SearchIndex`. Then times the first page of ``/search`` (what
:meth:`ReviewStore.search` does, the lazy index check included) for a reviewer and for an
agent, over common and rare words, phrases, single characters and a query that matches
nothing. Target: under 300 ms.

    .venv/bin/python benchmarks/search.py [--calls 100000] [--repeat 5] [--db var/search.db]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from pipeline.store import dispose_engines, open_store
from pipeline.store.review import ReviewStore, Scope
from pipeline.store.search import SearchIndex

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("review_queue_bench", HERE / "review_queue.py")
review_queue = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(review_queue)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
PRODUCTS = ("洗衣机", "空调", "手机", "会员卡", "信用卡", "宽带", "机票", "保险", "耳机", "电视")
TEMPLATES = (
    ("agent", "您好，很高兴为您服务，我是{n}号客服，请问有什么可以帮您"),
    ("customer", "我上周买的{p}到现在还没有发货"),
    ("agent", "请您提供一下订单号，我帮您查询"),
    ("customer", "订单号是{d}，尾号{k}"),
    ("agent", "好的{s}先生，稍等我查一下物流信息"),
    ("customer", "已经等了{k}天了，你们什么时候能处理"),
    ("agent", "非常抱歉给您带来不便，预计{k}个工作日内送达"),
    ("customer", "如果再不到我就要投诉了"),
    ("customer", "我想申请退款，{p}不要了"),
    ("agent", "退款会在{k}个工作日原路退回"),
    ("customer", "你们这个{p}质量太差了"),
    ("agent", "我们会反馈给质检部门，给您补偿{k}元优惠券"),
    ("customer", "上次客服说会回电话，结果没人联系我"),
    ("agent", "请问还有其他可以帮您的吗"),
    ("customer", "没有了，谢谢"),
    ("agent", "感谢您的来电，祝您生活愉快，再见"),
)
QUERIES = (
    ("common 2 chars (every call)", "您好"),
    ("common word", "投诉"),
    ("phrase 5 chars", "想申请退款"),
    ("name + title", "王先生"),
    ("product", "空调"),
    ("single char", "赔"),
    ("order number", "20260517"),
    ("two words", "退款 空调"),
    ("no match", "火星快递"),
)


def conversation(rng: random.Random) -> str:
    picks = rng.sample(TEMPLATES, 16)
    fill = {
        "n": rng.randint(1000, 9999),
        "p": rng.choice(PRODUCTS),
        "d": f"2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 9999):04d}",
        "k": rng.randint(1, 30),
        "s": rng.choice(SURNAMES),
    }
    lines = [t.format(**fill) for _, t in sorted(picks, key=TEMPLATES.index)]
    if rng.random() < 0.001:
        lines.append("那我要求赔偿")
    return "\n".join(lines)


def index(store, n: int, seed: int = 1, batch: int = 5000) -> float:
    rng = random.Random(seed)
    search = SearchIndex(store)
    started = time.perf_counter()
    for lo in range(0, n, batch):
        docs = [
            {"call_pk": i + 1, "result_id": i + 1, "text": conversation(rng)}
            for i in range(lo, min(n, lo + batch))
        ]
        search.write(docs)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
    return time.perf_counter() - started


def timed(fn, repeat: int) -> tuple[float, float, int]:
    times, found = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = len(fn().hits)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, max(times) * 1000, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", type=Path, help="keep the filled database here (reused if present)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "search.db"
        reuse = path.exists()
        store = open_store(f"sqlite:///{path}")
        if reuse:
            print(f"reusing {path}")
        else:
            t0 = time.perf_counter()
            review_queue.fill(store, args.calls)
            filled = time.perf_counter() - t0
            indexed = index(store, args.calls)
            size = path.stat().st_size / 2**20
            print(f"{args.calls} calls: filled in {filled:.1f} s, indexed in {indexed:.1f} s, db {size:.0f} MiB")  # fmt: skip
        reviews = ReviewStore(store)
        reviewer = Scope(user_id=1, all_calls=True)
        agent = Scope(user_id=2, agent_id="A007")
        worst = 0.0
        print(f"{'query':32} {'who':9} {'median ms':>10} {'max ms':>8} {'hits':>5}")
        for label, q in QUERIES:
            for who, user in (("reviewer", reviewer), ("agent", agent)):
                med, top, hits = timed(lambda q=q, u=user: reviews.search(u, q), args.repeat)
                worst = max(worst, med)
                print(f"{label + ' ' + q:32} {who:9} {med:10.1f} {top:8.1f} {hits:5d}")
        print(f"slowest median: {worst:.1f} ms (target < 300 ms)")
        dispose_engines()


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
