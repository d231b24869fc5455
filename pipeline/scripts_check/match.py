"""Phrase matching: the best local alignment of a rubric phrase inside an utterance.

One matcher for every phrase the engine looks for (required and forbidden phrases, excluded
polite forms, hold phrases); role identification can call :func:`phrase_match` /
:func:`best_phrase_match` on plain strings.

The measure (``similarity`` in [0, 1]) is ``1 - cost / len(phrase)`` for the cheapest
alignment of the *whole* phrase against *any span* of the utterance (semi-global
alignment: text before and after the span is free). Costs per phrase unit, per language in
``defaults.yaml`` (``match:``; zh values shown):

========================================  =====
same unit                                 0
same sound (zh homophone / near-homophone  0.25
  by folded pinyin; en spelling ratio≥0.7  1-ratio)
different unit, or unit missing           1
extra utterance units inside the span     0.5 for the first, 0.15 for each next
an extra filler / hesitation unit         0.05 (那个, 就是, a repeated character)
========================================  =====

So one homophone in five characters scores 0.95, one wrong or dropped unit in five 0.8,
and an unrelated sentence falls far below. A clause inserted inside the scripted sentence
("您好，工号一二三四，很高兴为您服务") costs little: speakers do that, scattered noise does not. English words may also be split or merged by
the recogniser ("northwind" / "north wind"): one phrase word against two utterance words
(or the reverse) is compared as one string.

Negation guard: an alignment whose span gains or loses a negation relative to the phrase
(不/没/别/未/无; not/never, n't) — an extra or changed negation inside the span, one right
before it with no pause, or a phrase negation missing — says the opposite; its similarity
is capped at :data:`NEGATION_CAP` (below any threshold, so it can only be a near miss).

Speed: a bound computed with rapidfuzz in C (``similarity <= LCS(codes) / len(phrase)``
for Chinese; per-word best substitutions for English) discards almost every pair before
the small Python alignment runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from pipeline.match_config import LanguageMatch, match_settings
from pipeline.text import NormText, normalise, zh_sound_code

EN_SIMILAR_WORD = 70.0  # rapidfuzz ratio (0..100) from which two words count as a slip
EN_SIMILAR_JOIN = 85.0  # stricter for split / joined words, else a dropped word hides in a join
NEGATION_CAP = 0.5  # similarity of an alignment that flips a negation


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
        negation = [p or s for op, p, s in self.ops if op == "negation"]
        if negation:
            parts.append("negation differs: " + " ".join(negation))
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
    cfg = match_settings(language)
    if language.startswith("zh"):
        unmatched = m - LCSseq.similarity(phrase.codes, utt.codes)
        # the cheapest units may be the ones lost (light particles first)
        costs = sorted(min(cfg.missing_of(u), 1.0) for u in phrase.units)
        return 1.0 - sum(costs[:unmatched]) / m
    missing = cfg.missing_cost
    sub, sub2, merged = _en_costs(phrase, utt, missing)
    best = sub.min(axis=1)
    if sub2 is not None:
        best = np.minimum(best, sub2.min(axis=1))
    if merged is not None:  # a merge covers units i-1 and i: half its cost to each
        half = merged.min(axis=1) / 2
        best[1:] = np.minimum(best[1:], half[1:])
        best[:-1] = np.minimum(best[:-1], half[1:])
    return max(0.0, 1.0 - float(np.minimum(best, missing).sum()) / m)


def _zh_costs(phrase: NormText, utt: NormText, cfg: LanguageMatch) -> np.ndarray:
    p = np.array(phrase.units)
    u = np.array(utt.units)
    pc = np.array(list(phrase.codes))
    uc = np.array(list(utt.codes))
    same = p[:, None] == u[None, :]
    homo = pc[:, None] == uc[None, :]
    return np.where(same, 0.0, np.where(homo, cfg.homophone_cost, 1.0))


def _word_cost(
    ratio: np.ndarray, unrelated: float = 1.0, similar: float = EN_SIMILAR_WORD
) -> np.ndarray:
    return np.where(ratio >= 100, 0.0, np.where(ratio >= similar, 1 - ratio / 100, unrelated))


def _en_costs(phrase: NormText, utt: NormText, missing: float = 1.0):
    """Word substitution costs; also phrase word vs two merged spoken words (split by ASR)
    and two phrase words vs one spoken word (merged by ASR)."""
    pw, uw = list(phrase.units), list(utt.units)
    sub = _word_cost(process.cdist(pw, uw, scorer=fuzz.ratio))
    sub2 = None  # [i, j]: phrase i vs utt j-1 + j
    if len(uw) > 1:
        pairs = [a + b for a, b in zip(uw, uw[1:], strict=False)]
        sub2 = np.full((len(pw), len(uw)), 2.0)
        sub2[:, 1:] = _word_cost(
            process.cdist(pw, pairs, scorer=fuzz.ratio), missing + 0.5, EN_SIMILAR_JOIN
        )
    merged = None  # [i, j]: phrase i-1 + i vs utt j
    if len(pw) > 1:
        ppairs = [a + b for a, b in zip(pw, pw[1:], strict=False)]
        merged = np.full((len(pw), len(uw)), 2.0)
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
    cfg = match_settings(language)
    missing, opening, extending = cfg.missing_cost, cfg.extra_open, cfg.extra_extend
    soft = utt.soft or (False,) * n
    soft_cost = cfg.soft_extra_cost
    if zh:
        sub, sub2, merged = _zh_costs(phrase, utt, cfg).tolist(), None, None
    else:
        s, s2, mg = _en_costs(phrase, utt, missing)
        if any(soft) and not any(phrase.soft or ()):
            # a filler's words (you *know*, i *mean*) do not stand in for the phrase's own
            # ("i don't you know have…" is not "i don't know"), unless the phrase has fillers
            s[:, list(soft)] = np.maximum(s[:, list(soft)], missing)
        sub = s.tolist()
        sub2 = s2.tolist() if s2 is not None else None
        merged = mg.tolist() if mg is not None else None

    inf = float("inf")
    # D[i][j]: cost of phrase[:i] aligned ending at utterance position j; B: back-pointer
    D = [[0.0] * (n + 1)] + [[inf] * (n + 1) for _ in range(m)]
    B = [[0] * (n + 1) for _ in range(m + 1)]
    for i in range(1, m + 1):
        Di, Dp, Bi, si = D[i], D[i - 1], B[i], sub[i - 1]
        miss_i = cfg.missing_of(phrase.units[i - 1]) if zh else missing
        Di[0], Bi[0] = D[i - 1][0] + miss_i, 2
        s2i = sub2[i - 1] if sub2 is not None else None
        mgi = merged[i - 1] if merged is not None and i >= 2 else None
        Dpp = D[i - 2] if i >= 2 else None
        for j in range(1, n + 1):
            best, how = Dp[j - 1] + si[j - 1], 1  # substitute / match
            c = Dp[j] + miss_i
            if c < best:
                best, how = c, 2  # phrase unit missing
            c = Di[j - 1] + (soft_cost if soft[j - 1] else extending if Bi[j - 1] == 3 else opening)
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
    flipped = negation_flip(ops, utt, start, cfg.negations, _sounds(cfg) if zh else frozenset())
    ops = [o for o in ops if o[0] != "same"]
    if flipped is not None:
        similarity = min(similarity, NEGATION_CAP)
        ops.insert(0, flipped)
    return Match(round(similarity, 4), start, end, tuple(ops))


@lru_cache(maxsize=8)
def _sounds(cfg: LanguageMatch) -> frozenset[str]:
    return frozenset(zh_sound_code(n) for n in cfg.negation_sounds)


def negation_flip(
    ops: list[tuple[str, str, str]],
    utt: NormText,
    start: int,
    negations: tuple[str, ...],
    sounds: frozenset[str] = frozenset(),
) -> tuple[str, str, str] | None:
    """``("negation", phrase unit, spoken unit)`` when the aligned span says the opposite of
    the phrase: a phrase negation missing or changed, an extra or substituted spoken
    negation inside the span (or an extra unit sounding like one: ``sounds``), or a spoken
    negation right before it (no pause between)."""
    if not negations:
        return None
    lost = [p for op, p, _ in ops if p in negations and op in ("missing", "changed", "slip")]
    if lost:
        return ("negation", lost[0], "")
    gained = [
        s
        for op, p, s in ops
        if (s in negations and op in ("extra", "changed", "slip"))
        or (op == "extra" and sounds and zh_sound_code(s) in sounds)
    ]
    if not gained and start > 0 and utt.units[start - 1] in negations:
        before, first = utt.spans[start - 1], utt.spans[start]
        between = utt.original[before[1] : first[0]]
        if not between.strip():  # same clause: 没有办法 for 有办法
            gained = [utt.units[start - 1]]
    if gained:
        return ("negation", "", gained[0])
    return None


def match(phrase: NormText, utt: NormText, language: str, threshold: float = 0.0) -> Match | None:
    """``align`` when the cheap bound says the phrase could reach ``threshold``, else None."""
    if upper_bound(phrase, utt, language) < threshold:
        return None
    return align(phrase, utt, language)


# --------------------------------------------------------------------------- plain strings


def phrase_match(
    phrase: str, text: str, language: str, threshold: float | None = None
) -> Match | None:
    """The alignment of ``phrase`` in ``text`` when it reaches ``threshold`` (default: the
    language's ``required`` threshold), else None. Plain strings in, for any caller."""
    if threshold is None:
        threshold = match_settings(language).required
    m = match(normalise(phrase, language), normalise(text, language), language, threshold)
    return m if m is not None and m.similarity >= threshold else None


def cue_said(
    cue: str, text: str, language: str, *, at_end: bool, threshold: float | None = None
) -> bool:
    """Whether ``text`` ends (``at_end``) or starts with ``cue``, said at least ``threshold``
    alike (default: the language's ``required`` threshold) with fillers ignored at that edge:
    a context rule (not saying…, …if) that survives an ASR slip in one of its words."""
    if threshold is None:
        threshold = match_settings(language).required
    c, t = normalise(cue, language), normalise(text, language)
    if not c.units or not t.units:
        return False
    m = match(c, t, language, threshold)
    if m is None or m.similarity < threshold:
        return False
    soft = t.soft or (False,) * len(t.units)
    return all(soft[m.end :]) if at_end else all(soft[: m.start])


def best_phrase_match(
    phrases: list[str], text: str, language: str, threshold: float | None = None
) -> tuple[str, Match] | None:
    """The phrase of ``phrases`` that ``text`` says best (at least ``threshold``), or None."""
    best: tuple[str, Match] | None = None
    for phrase in phrases:
        m = phrase_match(phrase, text, language, threshold)
        if m is not None and (best is None or m.similarity > best[1].similarity):
            best = (phrase, m)
    return best
