"""Chinese transcript text a QA team can use: the post-ASR normalisation of a Mandarin call.

Applied to each kept ASR segment of a call decoded in Chinese, in this order, with the
options of ``zh_text.yaml`` (validated on load, recorded in the transcript):

1. the words split into characters, each timed by sharing out its Whisper token's time
   (``character_times``); Latin-script words (English said inside Mandarin) stay whole;
2. traditional → simplified (:func:`pipeline.text.to_simplified`);
3. digit strings written in Arabic digits (``numbers``): the numerals are read by
   :func:`pipeline.redact.digits.normalize`, the one reader of spoken digits, so what rules
   and redaction see is one form whether ASR wrote 幺三五七, 一三五七 or 1357;
4. punctuation where Whisper left none: a comma at a long pause or at a space between
   Chinese characters, a full stop (or question mark) at the end of a segment.

Characters never move: every output character keeps the time of the characters it came
from, so :mod:`pipeline.redact.timing` and evidence spans stay exact.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio import file_sha256
from pipeline.contracts import ContractError, load_model
from pipeline.redact.digits import normalize as read_digits
from pipeline.text import has_cjk, is_cjk, to_simplified
from pipeline.transcribe.segments import AsrSegment, AsrWord

DEFAULT_OPTIONS = Path(__file__).with_name("zh_text.yaml")

# Punctuation that ends a sentence, and any punctuation (Whisper's and ours).
SENTENCE_END = set("。！？!?…")
PUNCTUATION = SENTENCE_END | set("，,、；;：:.\"'“”‘’()（）《》")
# Whisper's ASCII punctuation after a Chinese character, written as Chinese text writes it
FULL_WIDTH = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}


class ZhTextError(ContractError):
    """A Chinese text options file that does not validate: file, place, reason."""


class Punctuation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    comma_pause_s: float = Field(0.5, gt=0)
    space_is_comma: bool = True
    question_particles: list[str] = Field(default_factory=lambda: ["吗"])


class Numbers(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    min_digits: int = Field(3, ge=1)


class Fragments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_units: int = Field(2, ge=1)
    max_gap_s: float = Field(1.5, ge=0)
    standalone: list[str] = Field(default_factory=list)


class ZhTextOptions(BaseModel):
    """The options of the Chinese text stage; ``sha256`` is the file's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    simplified: bool = True
    punctuation: Punctuation = Punctuation()
    numbers: Numbers = Numbers()
    character_times: bool = True
    fragments: Fragments = Fragments(enabled=False)
    sha256: str | None = None


@lru_cache(maxsize=8)
def load_options(path: str | Path = DEFAULT_OPTIONS) -> ZhTextOptions:
    """The options at ``path``; :class:`ZhTextError` names the file, the place and why."""
    options = load_model(path, ZhTextOptions, error=ZhTextError)
    return options.model_copy(update={"sha256": file_sha256(path)})


@dataclass
class _Unit:
    """A piece of text (one Chinese character, a Latin word, a space) and its time."""

    text: str
    start: float
    end: float
    probability: float


_PIECES = re.compile(r"\s+|[A-Za-z0-9'’.\-]+|.", re.S)


def _units(words: list[AsrWord], per_character: bool) -> list[_Unit]:
    """The words as units; a Chinese token split per character, its time shared out and its
    probability too: each of its n characters gets the n-th root, so the characters together
    keep the token's probability. A multi-character token (不好意思) is scored low when its
    text could also be decoded as shorter tokens (不好 + 意思): 0.06-0.13 for well-heard
    apologies in splits 24 and 25, which sent correct passes to review as if misheard."""
    out: list[_Unit] = []
    for w in words:
        pieces = _PIECES.findall(w.word) if per_character else [w.word]
        timed = [p for p in pieces if not p.isspace() and p not in PUNCTUATION] or pieces
        step = (max(w.end, w.start) - w.start) / max(len(timed), 1)
        if len(timed) > 1 and w.probability > 0:
            w = replace(w, probability=round(w.probability ** (1 / len(timed)), 3))
        k = 0
        for piece in pieces:
            if piece.isspace():
                out.append(_Unit(" ", w.start + step * k, w.start + step * k, w.probability))
                continue
            if piece in PUNCTUATION and out and out[-1].text != " ":
                out[-1].text += piece  # Whisper's punctuation stays with what it follows
                continue
            a = w.start + step * k
            out.append(_Unit(piece, round(a, 3), round(a + step, 3), w.probability))
            k += 1
    return out


def _with_digits(units: list[_Unit], min_digits: int) -> list[_Unit]:
    """Digit strings of at least ``min_digits`` digits as Arabic digits, one unit a digit."""
    text, owner = "", []
    for i, u in enumerate(units):
        text += u.text
        owner += [i] * len(u.text)
    if not text:
        return units
    found = read_digits(text)
    replace: dict[int, tuple[int, str]] = {}  # first unit → (last unit, digits)
    for run in found.runs:
        for g in run:
            if len(g.digits) < min_digits and sum(len(x.digits) for x in run) < min_digits:
                continue
            if text[g.start : g.end] == g.digits:
                continue  # already Arabic digits
            replace[owner[g.start]] = (owner[g.end - 1], g.digits)
    if not replace:
        return units
    out: list[_Unit] = []
    i = 0
    while i < len(units):
        if i not in replace:
            out.append(units[i])
            i += 1
            continue
        last, digits = replace[i]
        a, b = units[i].start, max(units[last].end, units[i].start)
        prob = sum(u.probability for u in units[i : last + 1]) / (last + 1 - i)
        step = (b - a) / len(digits)
        out += [
            _Unit(d, round(a + step * k, 3), round(a + step * (k + 1), 3), prob)
            for k, d in enumerate(digits)
        ]
        i = last + 1
    return out


def _punctuated(units: list[_Unit], options: Punctuation) -> list[_Unit]:
    """Commas at long pauses and at spaces between Chinese characters, an end mark."""
    out: list[_Unit] = []
    for u in units:
        prev = next((p for p in reversed(out) if p.text != " "), None)
        if u.text == " ":
            out.append(u)
            continue
        if prev is not None and prev.text[-1:] not in PUNCTUATION and u.text not in PUNCTUATION:
            a, b = prev.text[-1], u.text[:1]
            spaced = out[-1].text == " " and (
                (is_cjk(a) and is_cjk(b))
                or (is_cjk(a) and b.isdigit())
                or (a.isdigit() and is_cjk(b))
            )
            paused = u.start - prev.end >= options.comma_pause_s
            if (spaced and options.space_is_comma) or (paused and has_cjk(prev.text + u.text)):
                while out and out[-1].text == " ":
                    out.pop()
                prev.text += "，"
        out.append(u)
    while out and out[-1].text == " ":
        out.pop()
    last = next((p for p in reversed(out) if p.text.strip()), None)
    chinese = any(has_cjk(u.text) for u in out)
    if last is not None and last.text[-1] not in PUNCTUATION and chinese:
        asked = any(last.text.endswith(q) for q in options.question_particles)
        last.text += "？" if asked else "。"
    return out


def normalise_units(units: list[_Unit], options: ZhTextOptions) -> list[_Unit]:
    """The stages of the module doc over one segment's units."""
    if options.simplified:
        for u in units:
            u.text = to_simplified(u.text)
    units = [u for u in units if u.text]
    for u in units:
        if not u.text.isspace():
            u.text = unicodedata.normalize("NFKC", u.text) if u.text.isdigit() else u.text
        if len(u.text) > 1 and u.text[-1] in FULL_WIDTH and is_cjk(u.text[-2]):
            u.text = u.text[:-1] + FULL_WIDTH[u.text[-1]]  # 好, → 好，
    if options.numbers.enabled:
        units = _with_digits(units, options.numbers.min_digits)
    if options.punctuation.enabled:
        units = _punctuated(units, options.punctuation)
    return units


def normalise_segment(segment: AsrSegment, options: ZhTextOptions | None = None) -> AsrSegment:
    """``segment`` (of a call decoded in Chinese) with its text and words normalised."""
    options = options or load_options()
    if segment.words:
        units = _units(segment.words, options.character_times)
    else:  # no word times: the text alone, timed over the segment
        units = [_Unit(segment.text, segment.start, segment.end, 1.0)]
        if options.character_times or options.numbers.enabled:
            units = _units(
                [AsrWord(segment.text, segment.start, segment.end, 1.0)], per_character=True
            )
    units = normalise_units(units, options)
    segment.text = "".join(u.text for u in units).strip()
    if segment.words:
        segment.words = [
            AsrWord(u.text, u.start, u.end, u.probability) for u in units if u.text.strip()
        ]
    return segment


def normalise_text(text: str, options: ZhTextOptions | None = None) -> str:
    """The normalised form of a bare text (no times): what a segment's text becomes."""
    segment = AsrSegment(start=0.0, end=0.0, text=text)
    return normalise_segment(segment, options).text


def _bare(text: str) -> str:
    return "".join(ch for ch in text if ch not in PUNCTUATION and not ch.isspace())


def attach_fragments(
    pieces: list[AsrSegment], options: ZhTextOptions | None = None
) -> list[AsrSegment]:
    """One party's pieces (one channel, in time order) with each turn-start fragment joined
    to the party's next piece.

    Whisper times the first words of a decode chunk early, so the first character or two of
    a turn can land right after the party's previous turn (请。 … 问您是持卡人本人吗),
    cutting a scripted phrase in two and adding a turn that was never spoken. A piece of at
    most ``max_units`` characters that starts within ``max_gap_s`` of the party's previous
    piece and is not a reply that stands alone (好的, 对) is put in front of the next piece,
    timed at its start.
    """
    options = options or load_options()
    rule = options.fragments
    if not rule.enabled or len(pieces) < 3:
        return pieces
    standalone = {_bare(t) for t in rule.standalone}
    out: list[AsrSegment] = []
    carry: AsrSegment | None = None
    for k, piece in enumerate(pieces):
        if carry is not None:
            # spoken just before the turn, for as long as Whisper timed it (the speech rate
            # keeps its seconds)
            marks = "".join(PUNCTUATION) + " "
            start = max(piece.start - max(carry.end - carry.start, 0.0), out[-1].end)
            shift = start - carry.start
            words = [
                AsrWord(w.word, w.start + shift, w.end + shift, w.probability) for w in carry.words
            ]
            while words and not words[-1].word.rstrip(marks):
                words.pop()  # the fragment's own full stop goes
            if words:
                words[-1] = replace(words[-1], word=words[-1].word.rstrip(marks))
            piece = replace(
                piece,
                start=start,
                text=carry.text.rstrip(marks) + piece.text,
                words=words + list(piece.words),
            )
            carry = None
        bare = _bare(piece.text)
        if (
            out
            and k + 1 < len(pieces)
            and 0 < len(bare) <= rule.max_units
            and bare not in standalone
            and piece.start - out[-1].end <= rule.max_gap_s
        ):
            carry = piece
            continue
        out.append(piece)
    return out
