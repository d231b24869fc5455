"""The action: apply findings to a transcript (masks in text and words, spans recorded)."""

from __future__ import annotations

from pipeline import __version__
from pipeline.redact.language import call_sets
from pipeline.redact.models import PiiFinding, Redaction, RedactionProvenance
from pipeline.redact.recognizers import RecognizerSet, shipped_sets
from pipeline.redact.timing import span_times, word_char_spans
from pipeline.schema import Transcript, Utterance, Word


def redact(
    transcript: Transcript,
    findings: list[PiiFinding] | None = None,
    *,
    language: str | None = None,
    recognizer_sets: list[RecognizerSet] | None = None,
) -> Transcript:
    """A copy of ``transcript`` with every finding replaced by its typed mask.

    ``findings`` defaults to :func:`pipeline.redact.detect` on the transcript. The copy
    carries ``redactions`` (utterance, times, type, the mask's char offsets: no personal
    data) for beeping the audio, and ``redacted_by`` (engine and recogniser set versions).
    """
    from pipeline.redact.engine import detect

    available = recognizer_sets or shipped_sets()
    sets = call_sets(available, language or transcript.language)
    if findings is None:
        findings = detect(transcript, language, recognizer_sets=available)
    masks: dict[str, str] = {}
    for rset in reversed(available):
        masks.update(rset.masks)
    for rset in reversed(sets):  # the call language's masks win
        masks.update(rset.masks)

    out = transcript.model_copy(deep=True)
    records: list[Redaction] = list(out.redactions or [])
    by_utt: dict[int, list[PiiFinding]] = {}
    for f in findings:
        if not 0 <= f.utterance < len(out.utterances):
            raise ValueError(
                f"finding for utterance {f.utterance}: transcript has {len(out.utterances)}"
            )
        by_utt.setdefault(f.utterance, []).append(f)
    for index, group in sorted(by_utt.items()):
        utt = out.utterances[index]
        spans = _merge(group, utt)
        records += _apply(index, utt, spans, masks)

    labels = {f.recognizer_set for f in findings if f.recognizer_set} | {s.label for s in sets}
    used = sorted(labels)
    sets = [s for s in available if s.label in labels]
    out.redactions = sorted(records, key=lambda r: (r.utterance, r.char_start))
    out.redacted_by = RedactionProvenance(
        pipeline_version=__version__,
        recognizer_sets=used,
        recognizer_sha256={s.label: s.sha256 for s in sets if s.sha256},
    )
    return out


def _merge(findings: list[PiiFinding], utt: Utterance) -> list[PiiFinding]:
    """Overlapping findings become one span (type of the higher score)."""
    merged: list[PiiFinding] = []
    for f in sorted(findings, key=lambda f: (f.char_start, -f.char_end)):
        if not (0 <= f.char_start < f.char_end <= len(utt.text)):
            raise ValueError(
                f"finding {f.char_start}-{f.char_end} is outside utterance text of length {len(utt.text)}"
            )
        if merged and f.char_start < merged[-1].char_end:
            last = merged[-1]
            keep = last if last.score >= f.score else f
            merged[-1] = keep.model_copy(
                update={"char_start": last.char_start, "char_end": max(last.char_end, f.char_end)}
            )
        else:
            merged.append(f)
    return merged


def _apply(
    index: int, utt: Utterance, spans: list[PiiFinding], masks: dict[str, str]
) -> list[Redaction]:
    original = utt.text
    word_spans = word_char_spans(utt)
    times = [span_times(utt, f.char_start, f.char_end) for f in spans]
    records: list[Redaction] = []
    pieces: list[str] = []
    cursor = 0
    for f, (t0, t1) in zip(spans, times, strict=True):
        mask = f.mask or masks.get(f.entity_type) or f"[{f.entity_type}]"
        pieces.append(original[cursor : f.char_start])
        new_start = sum(len(p) for p in pieces)
        pieces.append(mask)
        cursor = f.char_end
        records.append(
            Redaction(
                utterance=index,
                start=t0,
                end=t1,
                type=f.entity_type,
                char_start=new_start,
                char_end=new_start + len(mask),
                mask=mask,
                recognizer=f.recognizer,
                score=f.score,
            )
        )
    pieces.append(original[cursor:])
    if utt.words:
        utt.words = _mask_words(utt.words, word_spans, original, spans, times, masks)
    utt.text = "".join(pieces)
    return records


def _mask_words(
    words: list[Word],
    word_spans: list[tuple[int, int]] | None,
    text: str,
    spans: list[PiiFinding],
    times: list[tuple[float, float]],
    masks: dict[str, str],
) -> list[Word]:
    """Words inside a masked span become one word holding the mask (and any text around it)."""
    out: list[Word] = []
    i = 0
    for f, (t0, t1) in zip(spans, times, strict=True):
        mask = f.mask or masks.get(f.entity_type) or f"[{f.entity_type}]"
        if word_spans is not None:
            hit = [
                k
                for k in range(i, len(words))
                if word_spans[k][0] < f.char_end and word_spans[k][1] > f.char_start
            ]
        else:  # words that don't align with the text: go by time
            hit = [k for k in range(i, len(words)) if words[k].start < t1 and words[k].end > t0]
        if not hit:
            continue
        first, last = hit[0], hit[-1]
        out.extend(words[i:first])
        lead = words[first].word[: len(words[first].word) - len(words[first].word.lstrip())]
        prefix = suffix = ""
        if word_spans is not None:
            prefix = text[word_spans[first][0] : f.char_start]
            suffix = text[f.char_end : word_spans[last][1]]
        out.append(
            Word(
                word=f"{lead}{prefix}{mask}{suffix}", start=words[first].start, end=words[last].end
            )
        )
        i = last + 1
    out.extend(words[i:])
    return out
