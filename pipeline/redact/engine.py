"""The one engine that runs recogniser sets over a transcript (detection only)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.redact.models import PiiFinding
from pipeline.redact.normalize import Normalized, normalize
from pipeline.redact.recognizers import RecognizerSet, RecognizerSpec, sets_for_language
from pipeline.redact.timing import span_times
from pipeline.redact.validators import VALIDATORS
from pipeline.schema import Transcript

_MAX_DIGITS = 20  # longest digit string any recogniser looks at


@dataclass
class _Candidate:
    start: int
    end: int
    score: float
    reason: str
    spec: RecognizerSpec
    rset: RecognizerSet


def detect(
    transcript: Transcript,
    language: str | None = None,
    recognizer_sets: list[RecognizerSet] | None = None,
) -> list[PiiFinding]:
    """Personal data in every utterance, best non-overlapping findings, in text order.

    ``language`` (default: the transcript's) picks the shipped recogniser sets;
    ``recognizer_sets`` replaces them (e.g. a site's own YAML).
    """
    sets = recognizer_sets or sets_for_language(language or transcript.language)
    findings: list[PiiFinding] = []
    previous = ""
    for index, utt in enumerate(transcript.utterances):
        norm = normalize(utt.text)
        candidates: list[_Candidate] = []
        for rset in sets:
            candidates += _number_candidates(rset, norm, previous)
            candidates += _text_candidates(rset, norm, previous)
        for c in _best(candidates):
            start, end = span_times(utt, c.start, c.end)
            findings.append(
                PiiFinding(
                    utterance=index,
                    char_start=c.start,
                    char_end=c.end,
                    entity_type=c.spec.entity,
                    text=utt.text[c.start : c.end],
                    score=round(c.score, 3),
                    recognizer=c.spec.name,
                    reason=c.reason,
                    start=start,
                    end=end,
                    mask=c.rset.mask_for(c.spec),
                    recognizer_set=c.rset.label,
                )
            )
        previous = utt.text
    return findings


def _best(candidates: list[_Candidate]) -> list[_Candidate]:
    """Greedy: highest score first, then longest; drop what overlaps a kept one."""
    kept: list[_Candidate] = []
    for c in sorted(candidates, key=lambda c: (-c.score, -(c.end - c.start), c.start)):
        if all(c.end <= k.start or c.start >= k.end for k in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.start)


def _context_word(
    words: list[str], text: str, start: int, end: int, previous: str, rset
) -> str | None:
    win = rset.context_window
    prev_tail = previous[-win.previous_utterance :] if win.previous_utterance else ""
    around = " ".join(
        (prev_tail, text[max(0, start - win.before) : start], text[end : end + win.after])
    ).lower()
    return next((w for w in words if w.lower() in around), None)


def _score(
    spec: RecognizerSpec,
    rset: RecognizerSet,
    base: float,
    pattern_name: str,
    digits: str | None,
    text: str,
    start: int,
    end: int,
    previous: str,
) -> _Candidate | None:
    score, reasons = base, []
    if spec.validator is not None and digits is not None:
        check = VALIDATORS[spec.validator](digits)
        bonus = getattr(spec.validation, check.verdict)
        if bonus is None:
            return None
        score += bonus
        reasons.append(check.reason)
    else:
        reasons.append(f"pattern {pattern_name}")
    if spec.context and (word := _context_word(spec.context, text, start, end, previous, rset)):
        score += spec.context_score
        reasons.append(f"context word '{word}'")
    if spec.negative_context and (
        word := _context_word(spec.negative_context, text, start, end, previous, rset)
    ):
        score -= spec.negative_context_score
        reasons.append(f"negative context '{word}'")
    score = min(max(score, 0.0), 1.0)
    if score < rset.min_score:
        return None
    return _Candidate(start, end, score, "; ".join(reasons), spec, rset)


def _number_candidates(rset: RecognizerSet, norm: Normalized, previous: str) -> list[_Candidate]:
    specs = [r for r in rset.recognizers if r.kind == "number"]
    out: list[_Candidate] = []
    text = norm.original
    for run in norm.runs:
        for i in range(len(run)):
            digits = ""
            for j in range(i, len(run)):
                digits += run[j].digits
                if len(digits) > _MAX_DIGITS:
                    break
                lengths = [len(g.digits) for g in run[i : j + 1]]
                start, end = _widen(text, run[i].start, run[j].end)
                for spec in specs:
                    best: _Candidate | None = None
                    for pat in spec.patterns:
                        if pat.groups is not None and pat.groups != lengths:
                            continue
                        if not pat.compiled.fullmatch(digits):
                            continue
                        c = _score(
                            spec, rset, pat.score, pat.name, digits, text, start, end, previous
                        )
                        if c is not None and (best is None or c.score > best.score):
                            best = c
                    if best is not None:
                        out.append(best)
    return out


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """Take in a leading '+' (country code) and an opening bracket closed inside the span."""
    if start > 0 and text[start - 1] == "+":
        start -= 1
    span = text[start:end]
    for op, cl in (("(", ")"), ("（", "）")):
        if start > 0 and text[start - 1] == op and span.count(cl) > span.count(op):
            start -= 1
    return start, end


def _text_candidates(rset: RecognizerSet, norm: Normalized, previous: str) -> list[_Candidate]:
    out: list[_Candidate] = []
    for spec in (r for r in rset.recognizers if r.kind == "text"):
        for pat in spec.patterns:
            rx = pat.compiled
            for m in rx.finditer(norm.text):
                s, e = m.span("pii") if "pii" in rx.groupindex and m.group("pii") else m.span()
                if e <= s:
                    continue
                start, end = norm.to_original(s, e)
                digits = "".join(ch for ch in m.group() if ch.isdigit())
                c = _score(
                    spec, rset, pat.score, pat.name, digits, norm.original, start, end, previous
                )
                if c is not None:
                    out.append(c)
    return out
