"""The one engine that runs recogniser sets over a transcript (detection only).

Per utterance: the number and text recognisers of each set (see
:mod:`pipeline.redact.recognizers`), best non-overlapping candidates kept; then, when the
utterance answers an agent's request (:mod:`pipeline.redact.dialogue`), the answer's
numerals or content, and numerals right after a request's words in the same turn; these
take in any finding they overlap (a finding that covers one keeps its own evidence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.redact.dialogue import (
    AnswerContext,
    answer_contexts,
    answer_names,
    answer_span,
    declared_numbers,
    is_kept_number,
)
from pipeline.redact.digits import Normalized, normalize
from pipeline.redact.language import call_sets, utterance_sets
from pipeline.redact.models import PiiFinding
from pipeline.redact.recognizers import RecognizerSet, RecognizerSpec, shipped_sets
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
    spec: RecognizerSpec | None  # None: an answer to a request (entity in ``entity``)
    rset: RecognizerSet
    digits: str = ""
    entity: str = ""
    mask: str = ""
    self_introduction: bool = False  # a pattern of a speaker giving their own name


def detect(
    transcript: Transcript,
    language: str | None = None,
    recognizer_sets: list[RecognizerSet] | None = None,
) -> list[PiiFinding]:
    """Personal data in every utterance, best non-overlapping findings, in text order.

    Each utterance is read by the sets of its own script (:mod:`pipeline.redact.language`);
    ``language`` (default: the transcript's) picks the sets of utterances that have none
    (digits only). ``recognizer_sets`` replaces the shipped sets (e.g. a site's own YAML).
    """
    available = recognizer_sets or shipped_sets()
    default = call_sets(available, language or transcript.language)
    per_utt = [utterance_sets(u.text, available, default) for u in transcript.utterances]
    contexts = answer_contexts(transcript, per_utt)
    findings: list[PiiFinding] = []
    said: list[tuple[str, PiiFinding]] = []  # each earlier finding's digits, read once
    previous = ""
    for index, utt in enumerate(transcript.utterances):
        sets = per_utt[index]
        norm = normalize(utt.text)
        context = contexts.get(index)
        candidates: list[_Candidate] = []
        for rset in sets:
            found = _number_candidates(rset, norm, previous)
            if context is None and _exempt_side(rset, utt.speaker):
                found = [c for c in found if not _test_number(c, norm.original, previous)]
            candidates += found + _text_candidates(rset, norm, previous)
        if utt.speaker == "agent":  # the agent's own name: the set's decision
            candidates = [
                c for c in candidates if not (c.self_introduction and c.rset.agent_name == "keep")
            ]
        kept = _best(candidates)
        answer = _answer_candidates(norm, context, sets) if context is not None else []
        answer += _declared_candidates(norm, sets, answer, previous, utt.speaker)
        if answer:
            kept = _with_answer(answer, kept)
        kept = _with_partials(norm, sets, kept, said)
        found_before = len(findings)
        for c in kept:
            start, end = span_times(utt, c.start, c.end)
            findings.append(
                PiiFinding(
                    utterance=index,
                    char_start=c.start,
                    char_end=c.end,
                    entity_type=c.spec.entity if c.spec else c.entity,
                    text=utt.text[c.start : c.end],
                    score=round(c.score, 3),
                    recognizer=c.spec.name if c.spec else f"dialogue:{c.entity.lower()}",
                    reason=c.reason,
                    start=start,
                    end=end,
                    mask=c.rset.mask_for(c.spec) if c.spec else c.mask,
                    recognizer_set=c.rset.label,
                )
            )
        said += [(re.sub(r"\D", "", normalize(f.text).text), f) for f in findings[found_before:]]
        previous = utt.text
    return findings


def _answer_candidates(
    norm: Normalized, context: AnswerContext, sets: list[RecognizerSet]
) -> list[_Candidate]:
    """The answer's numerals (or its content, for ``scope: answer``) as candidates.

    ``sets`` read the answer itself: its language may not be the request's."""
    req = context.request
    rset, rule = req.rset, req.rule
    readers = [rset, *(s for s in sets if s is not rset and s.dialogue is not None)]
    assert rset.dialogue is not None
    text = norm.original

    def cand(start: int, end: int, what: str) -> _Candidate:
        return _Candidate(
            start,
            end,
            rset.dialogue.score,
            f"{what} {context.reason}",
            None,
            rset,
            entity=rule.entity,
            mask=rset.masks[rule.entity],
        )

    if rule.scope == "name":
        return [] if context.readback else [cand(*n, "name") for n in answer_names(text, *readers)]
    if rule.scope == "answer" and not context.readback:
        span = answer_span(text, *readers)
        return [cand(*span, "content")] if span else []
    out = []
    keep_words = {w.lower() for r in readers for w in r.dialogue.keep_words}  # type: ignore[union-attr]
    for run in norm.runs:
        start, end = _widen(text, run[0].start, run[-1].end)
        if len(run) == 1 and text[start:end].lower() in keep_words:
            continue  # "the new one"
        if is_kept_number(text, start, end, *readers):
            continue
        out.append(cand(start, end, "numerals"))
    return out


def _declared_candidates(
    norm: Normalized,
    sets: list[RecognizerSet],
    answer: list[_Candidate],
    previous: str,
    speaker: str,
) -> list[_Candidate]:
    """Numerals right after a request's words in this turn (not already in ``answer``)."""
    out: list[_Candidate] = []
    text = norm.original
    for d in declared_numbers(text, norm.runs, sets, speaker):
        start, end = _widen(text, d.start, d.end)
        if any(start < c.end and end > c.start for c in answer + out):
            continue
        dialogue = d.rset.dialogue
        assert dialogue is not None
        keep_words = {w.lower() for w in dialogue.keep_words}
        if text[start:end].lower() in keep_words or is_kept_number(text, start, end, d.rset):
            continue
        digits = "".join(g.digits for run in norm.runs for g in run if start <= g.start < end)
        if _exempt_side(d.rset, speaker) and is_test_number(
            d.rset, digits, text, start, end, previous
        ):
            continue  # "the sample SSN 123-45-6789": nothing says it is someone's
        out.append(
            _Candidate(
                start,
                end,
                dialogue.score,
                d.reason,
                None,
                d.rset,
                entity=d.rule.entity,
                mask=d.rset.masks[d.rule.entity],
            )
        )
    return out


def _with_partials(
    norm: Normalized,
    sets: list[RecognizerSet],
    kept: list[_Candidate],
    numbers: list[tuple[str, PiiFinding]],
) -> list[_Candidate]:
    """``kept`` plus the runs of ``partial_min_digits`` digits or more that are part of a
    personal number found earlier in the call (``numbers``: each earlier finding's digits):
    that number read back partly ("跟您确认一下，以360298" after 13602981753 was masked),
    masked as that number was."""
    out = list(kept)
    if not numbers or not norm.runs:
        return out
    for rset in sets:
        least = rset.dialogue.partial_min_digits if rset.dialogue else None
        if least is None:
            continue
        for run in norm.runs:
            start, end = _widen(norm.original, run[0].start, run[-1].end)
            digits = "".join(g.digits for g in run)
            if len(digits) < least or any(start < c.end and end > c.start for c in out):
                continue
            whole = next((f for d, f in numbers if len(d) > len(digits) and digits in d), None)
            if whole is None:
                continue
            out.append(
                _Candidate(
                    start,
                    end,
                    whole.score,
                    f"{len(digits)} digits of the {whole.entity_type} in utterance "
                    f"{whole.utterance} read back",
                    None,
                    rset,
                    entity=whole.entity_type,
                    mask=whole.mask,
                )
            )
    return sorted(out, key=lambda c: c.start)


def _with_answer(answer: list[_Candidate], found: list[_Candidate]) -> list[_Candidate]:
    """Answer spans win, and take in every finding they overlap (so nothing of a longer
    finding is left out); findings elsewhere in the turn stay as they are."""
    # a recogniser's finding that already covers an answer span keeps its own evidence
    # (unless it is a fallback, known by its length alone)
    own = [f for f in found if not (f.spec and f.spec.fallback)]
    spans = [a for a in answer if not any(f.start <= a.start and a.end <= f.end for f in own)]
    rest = []
    for f in found:
        hits = [a for a in spans if f.start < a.end and f.end > a.start]
        if not hits:
            rest.append(f)
        for a in hits:
            a.start, a.end = min(a.start, f.start), max(a.end, f.end)
    merged: list[_Candidate] = []
    for a in sorted(spans, key=lambda c: c.start):
        if merged and a.start < merged[-1].end:
            merged[-1].end = max(merged[-1].end, a.end)
        else:
            merged.append(a)
    return sorted(merged + rest, key=lambda c: c.start)


def _exempt_side(rset: RecognizerSet, speaker: str) -> bool:
    """Whether test numbers said by ``speaker`` may be exempt at all (``test_numbers.
    speakers``: the agent's side only, by default; a caller says what they say)."""
    tn = rset.test_numbers
    return tn is not None and speaker in tn.speakers


def _test_number(c: _Candidate, text: str, previous: str) -> bool:
    """A recogniser's candidate that is a configured fictitious number, no personal word near."""
    if c.spec is None:
        return False
    return is_test_number(c.rset, c.digits, text, c.start, c.end, previous)


def is_test_number(
    rset: RecognizerSet, digits: str, text: str, start: int, end: int, previous: str = ""
) -> bool:
    """``digits`` is one of the set's ``test_numbers`` and no personal word is around it."""
    tn = rset.test_numbers
    if tn is None or not tn.enabled or not digits:
        return False
    if not any(re.fullmatch(n, digits) for n in tn.numbers):
        return False
    win = rset.context_window
    around = " ".join(
        (
            previous[-win.previous_utterance :] if win.previous_utterance else "",
            text[max(0, start - win.before) : start],
            text[end : end + win.after],
        )
    )
    for word in tn.personal_context:
        pattern = rf"(?<![\w']){re.escape(word)}(?![\w'])" if word.isascii() else re.escape(word)
        if re.search(pattern, around, re.I):
            return False
    return True


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
    return _Candidate(start, end, score, "; ".join(reasons), spec, rset, digits=digits or "")


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
                    c.self_introduction = pat.self_introduction
                    out.append(c)
    return out
