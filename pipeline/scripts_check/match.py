"""Phrase matching: the best local alignment of a rubric phrase inside an utterance.

The measure (``similarity`` in [0, 1]) is ``1 - cost / len(phrase)`` for the cheapest
alignment of the *whole* phrase against *any span* of the utterance (semi-global
alignment: text before and after the span is free). Costs per phrase unit:

========================================  =====
same unit                                 0
same sound (zh homophone / near-homophone  0.25
  by folded pinyin; en spelling ratio≥0.7  1-ratio)
different unit, or unit missing           1
extra utterance units inside the span     0.5 for the first, 0.15 for each next
========================================  =====

So one homophone in five characters scores 0.95, one wrong or dropped unit in five 0.8,
and an unrelated sentence falls far below. A clause inserted inside the scripted sentence
("您好，工号一二三四，很高兴为您服务") costs little: speakers do that, scattered noise does not. English words may also be split or merged by
the recogniser ("northwind" / "north wind"): one phrase word against two utterance words
(or the reverse) is compared as one string.

Speed: a bound computed with rapidfuzz in C (``similarity <= LCS(codes) / len(phrase)``
for Chinese; per-word best substitutions for English) discards almost every pair before
the small Python alignment runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from pipeline.scripts_check.text import NormText

HOMOPHONE_COST = 0.25
MISSING_COST = 1.0
EXTRA_OPEN = 0.5
EXTRA_EXTEND = 0.15
EN_SIMILAR_WORD = 70.0  # rapidfuzz ratio (0..100) from which two words count as a slip
EN_SIMILAR_JOIN = 85.0  # stricter for split / joined words, else a dropped word hides in a join


@dataclass(frozen=True)
class Match:
    """Where and how well a phrase aligns inside an utterance."""

    similarity: float
    start: int  # unit span in the utterance, [start, end)
    end: int
    ops: tuple[tuple[str, str, str], ...] = field(default=())  # (op, phrase unit, spoken)

    def explain(self) -> str:
        """Short human description of the differences (missing / homophone / changed)."""
        parts: list[str] = []
        missing = [p for op, p, _ in self.ops if op == "missing"]
        homo = [f"{s}→{p}" for op, p, s in self.ops if op == "homophone"]
        changed = [f"{s}→{p}" for op, p, s in self.ops if op in ("changed", "slip")]
        extra = [s for op, _, s in self.ops if op == "extra"]
        joined = [f"{s}→{p}" for op, p, s in self.ops if op in ("split", "merged")]
        if any(op == "reordered" for op, _, _ in self.ops):
            parts.append("clauses in another order")
        if missing:
            parts.append("missing " + " ".join(missing))
        if changed:
            parts.append("different " + ", ".join(changed))
        if homo:
            parts.append("homophones " + ", ".join(homo))
        if joined:
            parts.append("split/joined " + ", ".join(joined))
        if extra:
            parts.append("extra " + " ".join(extra))
        return "; ".join(parts) or "exact"


def upper_bound(phrase: NormText, utt: NormText, language: str) -> float:
    """A cheap value that ``similarity`` can never exceed (used to skip hopeless pairs)."""
    m = len(phrase)
    if m == 0 or len(utt) == 0:
        return 0.0
    if language.startswith("zh"):
        return LCSseq.similarity(phrase.codes, utt.codes) / m
    sub, sub2, merged = _en_costs(phrase, utt)
    best = sub.min(axis=1)
    if sub2 is not None:
        best = np.minimum(best, sub2.min(axis=1))
    if merged is not None:  # a merge covers units i-1 and i: half its cost to each
        half = merged.min(axis=1) / 2
        best[1:] = np.minimum(best[1:], half[1:])
        best[:-1] = np.minimum(best[:-1], half[1:])
    return max(0.0, 1.0 - float(np.minimum(best, MISSING_COST).sum()) / m)


def _zh_costs(phrase: NormText, utt: NormText) -> np.ndarray:
    p = np.array(phrase.units)
    u = np.array(utt.units)
    pc = np.array(list(phrase.codes))
    uc = np.array(list(utt.codes))
    same = p[:, None] == u[None, :]
    homo = pc[:, None] == uc[None, :]
    return np.where(same, 0.0, np.where(homo, HOMOPHONE_COST, MISSING_COST))


def _word_cost(
    ratio: np.ndarray, unrelated: float = MISSING_COST, similar: float = EN_SIMILAR_WORD
) -> np.ndarray:
    return np.where(ratio >= 100, 0.0, np.where(ratio >= similar, 1 - ratio / 100, unrelated))


def _en_costs(phrase: NormText, utt: NormText):
    """Word substitution costs; also phrase word vs two merged spoken words (split by ASR)
    and two phrase words vs one spoken word (merged by ASR)."""
    pw, uw = list(phrase.units), list(utt.units)
    sub = _word_cost(process.cdist(pw, uw, scorer=fuzz.ratio))
    sub2 = None  # [i, j]: phrase i vs utt j-1 + j
    if len(uw) > 1:
        pairs = [a + b for a, b in zip(uw, uw[1:], strict=False)]
        sub2 = np.full((len(pw), len(uw)), MISSING_COST * 2)
        sub2[:, 1:] = _word_cost(
            process.cdist(pw, pairs, scorer=fuzz.ratio), MISSING_COST + EXTRA_OPEN, EN_SIMILAR_JOIN
        )
    merged = None  # [i, j]: phrase i-1 + i vs utt j
    if len(pw) > 1:
        ppairs = [a + b for a, b in zip(pw, pw[1:], strict=False)]
        merged = np.full((len(pw), len(uw)), MISSING_COST * 2)
        merged[1:, :] = 2 * _word_cost(
            process.cdist(ppairs, uw, scorer=fuzz.ratio), similar=EN_SIMILAR_JOIN
        )
    return sub, sub2, merged


def align(phrase: NormText, utt: NormText, language: str) -> Match:
    """Best semi-global alignment of the whole phrase against a span of the utterance."""
    m, n = len(phrase), len(utt)
    if m == 0 or n == 0:
        return Match(0.0, 0, 0)
    zh = language.startswith("zh")
    if zh:
        sub, sub2, merged = _zh_costs(phrase, utt).tolist(), None, None
    else:
        s, s2, mg = _en_costs(phrase, utt)
        sub = s.tolist()
        sub2 = s2.tolist() if s2 is not None else None
        merged = mg.tolist() if mg is not None else None

    inf = float("inf")
    # D[i][j]: cost of phrase[:i] aligned ending at utterance position j; B: back-pointer
    D = [[0.0] * (n + 1)] + [[inf] * (n + 1) for _ in range(m)]
    B = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        Di, Dp, Bi, si = D[i], D[i - 1], B[i], sub[i - 1]
        Di[0], Bi[0] = i * MISSING_COST, 2
        s2i = sub2[i - 1] if sub2 is not None else None
        mgi = merged[i - 1] if merged is not None and i >= 2 else None
        Dpp = D[i - 2] if i >= 2 else None
        for j in range(1, n + 1):
            best, how = Dp[j - 1] + si[j - 1], 1  # substitute / match
            c = Dp[j] + MISSING_COST
            if c < best:
                best, how = c, 2  # phrase unit missing
            c = Di[j - 1] + (EXTRA_EXTEND if Bi[j - 1] == 3 else EXTRA_OPEN)
            if c < best:
                best, how = c, 3  # extra spoken unit inside the span
            if s2i is not None and j >= 2:
                c = Dp[j - 2] + s2i[j - 1]
                if c < best:
                    best, how = c, 4  # one phrase word = two spoken words
            if mgi is not None and Dpp is not None:
                c = Dpp[j - 1] + mgi[j - 1]
                if c < best:
                    best, how = c, 5  # two phrase words = one spoken word
            Di[j], Bi[j] = best, how
    last = D[m]
    end = min(range(1, n + 1), key=lambda j: (last[j], j))
    cost = last[end]

    ops: list[tuple[str, str, str]] = []
    i, j = m, end
    while i > 0:
        how = B[i][j]
        if how == 1:
            p, s = phrase.units[i - 1], utt.units[j - 1]
            c = sub[i - 1][j - 1]
            kind = (
                "same"
                if c == 0
                else ("homophone" if zh and c < 1 else "slip" if c < 1 else "changed")
            )
            ops.append((kind, p, s))
            i, j = i - 1, j - 1
        elif how == 2:
            ops.append(("missing", phrase.units[i - 1], ""))
            i -= 1
        elif how == 3:
            ops.append(("extra", "", utt.units[j - 1]))
            j -= 1
        elif how == 4:
            ops.append(("split", phrase.units[i - 1], utt.units[j - 2] + " " + utt.units[j - 1]))
            i, j = i - 1, j - 2
        else:
            ops.append(
                ("merged", phrase.units[i - 2] + " " + phrase.units[i - 1], utt.units[j - 1])
            )
            i, j = i - 2, j - 1
    start = j
    ops.reverse()
    similarity = max(0.0, 1.0 - cost / m)
    if start == end:  # nothing of the utterance aligned
        similarity = 0.0
    return Match(round(similarity, 4), start, end, tuple(o for o in ops if o[0] != "same"))


def match(phrase: NormText, utt: NormText, language: str, threshold: float = 0.0) -> Match | None:
    """``align`` when the cheap bound says the phrase could reach ``threshold``, else None."""
    if upper_bound(phrase, utt, language) < threshold:
        return None
    return align(phrase, utt, language)
