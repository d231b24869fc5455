"""Character offsets of an utterance → seconds in the call."""

from __future__ import annotations

from pipeline.schema import Utterance


def word_char_spans(utt: Utterance) -> list[tuple[int, int]] | None:
    """Character span of each word of ``utt`` in its text; None when the words don't align."""
    if not utt.words:
        return None
    spans: list[tuple[int, int]] = []
    cursor = 0
    for w in utt.words:
        token = w.word.strip()
        if not token:
            spans.append((cursor, cursor))
            continue
        idx = utt.text.find(token, cursor)
        if idx < 0:
            return None
        spans.append((idx, idx + len(token)))
        cursor = idx + len(token)
    return spans


def span_times(utt: Utterance, char_start: int, char_end: int) -> tuple[float, float]:
    """(start, end) seconds of ``utt.text[char_start:char_end]``."""
    spans = word_char_spans(utt)
    if spans is not None and utt.words:
        hit = [
            w
            for w, (s, e) in zip(utt.words, spans, strict=True)
            if s < char_end and e > char_start and e > s
        ]
        if hit:
            return min(w.start for w in hit), max(w.end for w in hit)
    n = max(len(utt.text), 1)
    dur = utt.end - utt.start
    return (
        round(utt.start + dur * char_start / n, 3),
        round(utt.start + dur * min(char_end, n) / n, 3),
    )
