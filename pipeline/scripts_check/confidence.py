"""ASR confidence of the words a verdict rests on.

A verdict is only as good as the words it was read from. The confidence of an evidence span
is the mean ``Word.probability`` of the words overlapping it (words are located in the
utterance text in order), the utterance's first word left out when the span holds more: Whisper
scores the first word of what it decodes low whatever was said (greetings and apologies at a
turn's onset went to review on it: "Morning," at 0.15 before "Northwind Telecom broadband" at
0.44-0.75, held-out 18 in audio); without word probabilities, the utterance's ``confidence``;
without either (chat, text transcripts), None: decided normally.
"""

from __future__ import annotations

import unicodedata

from pipeline.schema import Evidence, Transcript, Utterance


def _word_spans(u: Utterance) -> list[tuple[int, int, float]]:
    """(start, end, probability) character spans of the words in the utterance text."""
    text = unicodedata.normalize("NFKC", u.text).lower()
    out, cursor = [], 0
    for w in u.words or []:
        word, prob = (
            (w.get("word"), w.get("probability"))
            if isinstance(w, dict)
            else (w.word, w.probability)
        )
        token = unicodedata.normalize("NFKC", word or "").strip().lower()
        if not token or prob is None:
            continue
        at = text.find(token, cursor)
        if at < 0:
            continue
        out.append((at, at + len(token), prob))
        cursor = at + len(token)
    return out


def span_confidence(transcript: Transcript, ev: Evidence) -> float | None:
    """Confidence of the words under one piece of evidence (None: unknown)."""
    if ev.utterance is None or not 0 <= ev.utterance < len(transcript.utterances):
        return None
    u = transcript.utterances[ev.utterance]
    chars = ev.span_chars
    spans = _word_spans(u) if u.words else []
    if spans:
        a, b = chars if chars else (0, len(u.text))
        under = [k for k, (s, e, _p) in enumerate(spans) if s < b and e > a]
        if len(under) > 1 and under[0] == 0:
            under = under[1:]  # the onset word, scored low whatever was said
        probs = [spans[k][2] for k in under]
        if probs:
            return sum(probs) / len(probs)
    return u.confidence


def low_confidence(
    transcript: Transcript, evidence: list[Evidence], word_min: float, utt_min: float
) -> list[tuple[Evidence, float]]:
    """The pieces of ``evidence`` whose words are below the thresholds, with their confidence.
    Word probabilities are compared with ``word_min``, utterance confidence with ``utt_min``."""
    out = []
    for ev in evidence:
        conf = span_confidence(transcript, ev)
        if conf is None:
            continue
        u = transcript.utterances[ev.utterance]
        threshold = word_min if _word_spans(u) else utt_min
        if conf < threshold:
            out.append((ev, round(conf, 3)))
    return out
