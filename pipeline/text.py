"""Script and language of a text, and its normalisation for matching (Chinese and English).

The one place for: which characters are Chinese (:data:`CJK_CHARS`), the language of a text
by its share of Chinese characters, traditional → simplified conversion, and the two
normalised forms callqa matches on:

* :func:`normalise_for_match`: a plain string (lower case, NFKC, simplified, punctuation
  dropped) for exact and substring comparisons, e.g. hallucination phrases;
* :func:`normalise`: comparable *units* with sound codes and original spans, what the phrase
  matcher (:mod:`pipeline.scripts_check.match`) aligns.

Chinese units: one per character after traditional→simplified (OpenCC t2s), full→half width
(NFKC), lower case, punctuation and fillers removed, Arabic digits written as Chinese digit
characters (ASR writes 138, 一三八 and 幺三八 for the same digits). Each unit also gets a
*sound code*: its tone-less pinyin with near-homophones folded (zh/z, ch/c, sh/s, n/l,
ang/an, eng/en, ing/in), so a homophone ASR error keeps the code of the intended character.

English units: one per word after lower-casing, contraction expansion (don't → do not),
number words → digits and filler removal; the sound code of a word is the word itself
(similar spellings are compared by the matcher).

Every unit keeps the character span of the original text it came from, so evidence can
quote exactly what was said. A unit is *soft* when it is a hesitation: part of a filler word
(那个, 就是, you know; ``match.fillers`` in scripts_check/defaults.yaml) or a repeat of the
unit before it (这这不归我管, i i can): the matcher charges little for it inside a phrase.
Results are cached per text: a phrase or an utterance is normalised once per process.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from pipeline.match_config import match_settings

Language = str  # "zh" or "en"

# --------------------------------------------------------------------------- script, language

# CJK Unified Ideographs, Extension A and Compatibility Ideographs: the Chinese characters ASR
# writes. For a regex character class: ``f"[{CJK_CHARS}]"``.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{CJK_CHARS}]")
_NOT_LETTER = re.compile(r"[\s\d\W_]+")
ZH_SHARE = 0.3  # a text with at least this share of Chinese characters among its letters is zh


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` (or the first character of it) is a Chinese character."""
    return bool(_CJK.match(ch))


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def cjk_share(text: str) -> float:
    """Chinese characters among the letters of ``text`` (spaces, digits, punctuation left
    out); 0.0 for a text without letters."""
    letters = _NOT_LETTER.sub("", text)
    return len(_CJK.findall(letters)) / len(letters) if letters else 0.0


def detect_language(text: str) -> Language | None:
    """``zh`` or ``en`` by the share of Chinese characters; None for a text without letters."""
    if not _NOT_LETTER.sub("", text):
        return None
    return "zh" if cjk_share(text) >= ZH_SHARE else "en"


# --------------------------------------------------------------------------- simplified Chinese


@lru_cache(maxsize=1)
def _opencc():
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese → simplified (Whisper mixes both for Mandarin)."""
    return _opencc().convert(text) if has_cjk(text) else text


@lru_cache(maxsize=65536)
def _t2s(ch: str) -> str:
    return _opencc().convert(ch)


# --------------------------------------------------------------------------- plain form

_NOT_WORD = re.compile(r"[^\w.]+|(?<!\w)\.|\.(?!\w)")  # keep "amara.org", drop a full stop
_SPACE_BY_CJK = re.compile(f"(?<=[{CJK_CHARS}]) +| +(?=[{CJK_CHARS}])")


def normalise_for_match(text: str) -> str:
    """Lower case, NFKC, simplified, punctuation dropped, spaces collapsed (none between CJK).

    The plain-string form for exact and substring tests; the phrase matcher uses
    :func:`normalise` (units, sound codes, spans) instead."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    text = _NOT_WORD.sub(" ", text.replace("_", " "))
    text = _SPACE_BY_CJK.sub("", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class NormText:
    """A normalised text: units (characters or words), their sound codes, original spans."""

    original: str
    units: tuple[str, ...]
    codes: str  # one code character per unit (compact for rapidfuzz)
    spans: tuple[tuple[int, int], ...]  # original [start, end) of each unit
    soft: tuple[bool, ...] = ()  # per unit: a filler / hesitation (cheap as an extra unit)

    def __len__(self) -> int:
        return len(self.units)

    @property
    def normalised(self) -> str:
        return ("" if self.units and is_cjk(self.units[0][:1]) else " ").join(self.units)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original character span of units [start, end)."""
        if start >= end:
            return (0, 0)
        return (self.spans[start][0], self.spans[end - 1][1])


# --------------------------------------------------------------------------- codes

_CODE_OF: dict[str, str] = {}


def _code(key: str) -> str:
    """A single private-use character standing for a syllable / word (interned)."""
    code = _CODE_OF.get(key)
    if code is None:
        n = len(_CODE_OF)
        # Private-use planes: 6,400 + 2 x 65,534 distinct codes, plenty for a vocabulary.
        code = chr(0xE000 + n) if n < 6400 else chr(0xF0000 + n - 6400)
        _CODE_OF[key] = code
    return code


def fold_syllable(syllable: str) -> str:
    """Tone-less pinyin with near-homophone initials and finals folded together."""
    s = syllable.replace("ü", "v")
    if s[:2] in ("zh", "ch", "sh"):
        initial, final = s[0], s[2:]
    elif s[:1] and s[0] in "bpmfdtnlgkhjqxrzcsyw":
        initial, final = s[0], s[1:]
    else:
        initial, final = "", s
    if initial == "n":
        initial = "l"
    if final.endswith("ng") and final not in ("ong", "iong"):
        final = final[:-1]  # ang→an, eng→en, ing→in, iang→ian, uang→uan
    return initial + final


@lru_cache(maxsize=65536)
def zh_sound_code(ch: str) -> str:
    """Sound code of one normalised unit: folded pinyin for a hanzi, the unit itself else."""
    if not is_cjk(ch):
        return ch
    from pypinyin import Style, lazy_pinyin

    syllable = lazy_pinyin(ch, style=Style.NORMAL)[0]
    return _code("py:" + fold_syllable(syllable))


@lru_cache(maxsize=1)
def common_hanzi() -> tuple[str, ...]:
    """The 3,755 most common Chinese characters (GB2312 level 1), in code order."""
    chars = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return tuple(chars)


@lru_cache(maxsize=1)
def hanzi_by_reading() -> dict[str, str]:
    """Tone-less pinyin -> the common characters read so on their own (a character's other,
    often archaic, readings would put 不 among the homophones of 服)."""
    from pypinyin import Style, lazy_pinyin

    table: dict[str, str] = {}
    for ch in common_hanzi():
        syllable = lazy_pinyin(ch, style=Style.NORMAL)[0]
        table[syllable] = table.get(syllable, "") + ch
    return table


def zh_readings(text: str) -> list[str]:
    """Tone-less pinyin of each character of an all-hanzi ``text``, read as a phrase
    (还款 huan kuan, 还有 hai you)."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.NORMAL)


def homophones(syllable: str) -> str:
    """The common characters with the tone-less reading ``syllable`` ("" if none)."""
    return hanzi_by_reading().get(syllable, "")


# --------------------------------------------------------------------------- hesitations


@lru_cache(maxsize=4)
def _filler_pattern(language: str) -> re.Pattern | None:
    words = sorted(match_settings(language).fillers, key=len, reverse=True)
    if not words:
        return None
    alts = "|".join(re.escape(w) for w in words)
    return re.compile(alts if language == "zh" else rf"\b(?:{alts})\b", re.IGNORECASE)


def _soft_units(
    text: str, units: tuple[str, ...], spans: list[tuple[int, int]], language: str
) -> tuple[bool, ...]:
    """Per unit: inside a filler word of ``text``, or the same as the unit before it."""
    pat = _filler_pattern(language)
    ranges = [m.span() for m in pat.finditer(text)] if pat is not None else []
    soft = []
    for k, (a, b) in enumerate(spans):
        filler = any(fa <= a and b <= fb for fa, fb in ranges)
        soft.append(filler or (k > 0 and units[k] == units[k - 1]))
    return tuple(soft)


# --------------------------------------------------------------------------- Chinese


_ZH_DIGITS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
_ZH_DIGIT_ALIASES = {"幺": "一", "两": "二", "〇": "零"}
# the characters a spoken digit is written with (零 一 … 九, 幺, 两, 〇)
ZH_DIGIT_CHARS = frozenset(_ZH_DIGITS.values()) | frozenset(_ZH_DIGIT_ALIASES)
# Pure fillers: dropped wherever they occur, in phrases and utterances alike.
_ZH_FILLER_CHARS = frozenset("嗯呃啊")
# "那个" is also a real word (那个订单); only dropped in filler position: repeated, or
# followed by a pause (punctuation / space) or at the very end.
_ZH_FILLER_WORD = re.compile(r"(?:那个)+(?=[\s，,。.、…！!？?]|$)|(?:那个){2,}")


# A Chinese numeral with a unit (十二, 一百二十三, 两千零五): written as digits like its Arabic
# form (12 → 一二). It must hold a digit and not start with 百/千/万 (千万, 万一, 十分 stay).
_ZH_NUMERAL = re.compile(
    r"[零一二三四五六七八九两]*十[零一二三四五六七八九]?|"
    r"[一二三四五六七八九两]+[百千万亿][零一二三四五六七八九两十百千万亿]*"
)


def _numeral_digits(numeral: str) -> str | None:
    """``十二`` → ``12`` (cn2an), or None when it is not a number on its own."""
    if not any(c in "零一二三四五六七八九两" for c in numeral):
        return None
    try:
        import cn2an

        value = cn2an.cn2an(numeral, "normal")
    except Exception:  # noqa: BLE001 - cn2an raises bare ValueError/KeyError on non-numbers
        return None
    return str(int(value)) if float(value).is_integer() else None


def _expand_numerals(text: str) -> list[tuple[str, int, int]]:
    """(piece, start, end) over ``text``: numerals with units replaced by their digits, each
    digit keeping the whole numeral's span; every other character as itself."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    for m in _ZH_NUMERAL.finditer(text) if any(c in text for c in "十百千万亿") else ():
        digits = _numeral_digits(m.group(0))
        if digits is None:
            continue
        out += [(text[k], k, k + 1) for k in range(pos, m.start())]
        out += [(d, m.start(), m.end()) for d in digits]
        pos = m.end()
    out += [(text[k], k, k + 1) for k in range(pos, len(text))]
    return out


@lru_cache(maxsize=200_000)
def normalise_zh(text: str) -> NormText:
    # Filler words are blanked (same length) so offsets stay valid.
    blanked = _ZH_FILLER_WORD.sub(lambda m: " " * len(m.group(0)), text)
    units: list[str] = []
    spans: list[tuple[int, int]] = []
    for raw, a, b in _expand_numerals(blanked):
        for ch in unicodedata.normalize("NFKC", raw).lower():
            if ch in _ZH_FILLER_CHARS:
                continue
            if ch.isdigit() and ch in _ZH_DIGITS:
                ch = _ZH_DIGITS[ch]
            elif is_cjk(ch):
                ch = _t2s(ch)
                ch = _ZH_DIGIT_ALIASES.get(ch, ch)
            elif not ch.isalnum():
                continue  # punctuation, symbols, spaces
            units.append(ch)
            spans.append((a, b))
    codes = "".join(zh_sound_code(u) for u in units)
    return NormText(
        text, tuple(units), codes, tuple(spans), _soft_units(text, tuple(units), spans, "zh")
    )


# --------------------------------------------------------------------------- English

_CONTRACTIONS = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "ain't": "is not",
    "let's": "let us",
    "i'm": "i am",
    "y'all": "you all",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
    "ok": "okay",
    "thanks": "thank you",
    "dob": "date of birth",  # "can you confirm your DOB?" (held-out 12)
}
# ASR (tiny.en) often drops the apostrophe ("whats the account number youre calling
# about"): those spellings are read as the contraction, except where the spelling is another
# English word (ill, were, its, lets, well, id, hell, shell, wed, hes)
_BARE = {
    w.replace("'", ""): w
    for w in [
        "what's",
        "that's",
        "there's",
        "here's",
        "how's",
        "where's",
        "who's",
        "i'm",
        "i've",
        "you're",
        "you've",
        "you'll",
        "you'd",
        "we've",
        "they're",
        "they've",
        "they'll",
        "she's",
        "it'll",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "can't",
        "couldn't",
        "wouldn't",
        "shouldn't",
        "haven't",
        "hasn't",
        "hadn't",
        "won't",
    ]
}
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'d", " would"))
_IS_WORDS = frozenset(
    [
        "it",
        "that",
        "what",
        "there",
        "here",
        "he",
        "she",
        "who",
        "where",
        "how",
        "when",
        "why",
        "this",
        "everything",
        "something",
    ]
)
_FILLERS_EN = frozenset(["um", "uh", "uhm", "umm", "er", "erm", "ah", "hmm", "mm", "mhm"])
_UNITS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2
    )
}
_WORD = re.compile(r"[0-9a-z'’]+", re.IGNORECASE)


def _expand(token: str) -> list[str]:
    t = token.lower().replace("’", "'")
    t = _BARE.get(t, t)
    if t in _CONTRACTIONS:
        return _CONTRACTIONS[t].split()
    for suffix, repl in _SUFFIXES:
        if t.endswith(suffix) and len(t) > len(suffix):
            base = t[: -len(suffix)]
            return (base + repl).split()
    if t.endswith("'s"):
        base = t[:-2]
        return [base, "is"] if base in _IS_WORDS else [base]
    if t.endswith("'m"):
        return [t[:-2], "am"]
    t = t.replace("'", "")
    return [t] if t else []


@lru_cache(maxsize=200_000)
def normalise_en(text: str) -> NormText:
    words: list[tuple[str, tuple[int, int]]] = []
    for m in _WORD.finditer(text):
        for w in _expand(m.group(0)):
            if w not in _FILLERS_EN:
                words.append((w, m.span()))
    # number words → digits; "twenty four" → "24"
    merged: list[tuple[str, tuple[int, int]]] = []
    for w, span in words:
        if w in _UNITS and merged and merged[-1][0].isdigit() and merged[-1][0].endswith("0"):
            prev, pspan = merged[-1]
            if int(prev) in _TENS.values() and _UNITS[w] < 10:
                merged[-1] = (str(int(prev) + _UNITS[w]), (pspan[0], span[1]))
                continue
        if w in _UNITS:
            w = str(_UNITS[w])
        elif w in _TENS:
            w = str(_TENS[w])
        merged.append((w, span))
    units = tuple(w for w, _ in merged)
    codes = "".join(_code("w:" + w) for w in units)
    spans = [s for _, s in merged]
    return NormText(text, units, codes, tuple(spans), _soft_units(text, units, spans, "en"))


def normalise(text: str, language: Language) -> NormText:
    """Normalised units of ``text``; Chinese rules for ``zh``, English rules otherwise."""
    return normalise_zh(text) if language.startswith("zh") else normalise_en(text)


# --------------------------------------------------------------------------- segmentation


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


@lru_cache(maxsize=8)  # a copy is ~14 MiB and 7 ms to make
def _tokenizer(user_words: tuple[str, ...]):
    """A jieba tokenizer with these user words (a rubric's phrases and keywords, their
    punctuation-free pieces) added, so a scripted phrase segments as one unit.

    One tokenizer per set of user words, each a copy of the dictionary loaded once: adding a
    rubric's words to one shared tokenizer would make a call's segmentation depend on which
    rubrics the process had loaded before (found: "祝您购物愉快" segmented differently in a
    worker and in a process that had scored zh_ecommerce first)."""
    import jieba

    base = _jieba()
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = dict(base.FREQ), base.total, True
    for phrase in user_words:
        for piece in re.split(r"[\s，,。.、！!？?；;：:]+", phrase):
            if len(piece) >= 2 and all(is_cjk(c) for c in piece):
                tok.add_word(piece, freq=2000)
    return tok


def segment_words(text: str, user_words: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Chinese word segmentation (jieba) of ``text``, punctuation and spaces dropped."""
    tok = _tokenizer(tuple(sorted(set(user_words))))
    return [w for w in tok.lcut(text) if w.strip() and any(c.isalnum() for c in w)]


def clauses(text: str, *, words: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, text) of the clauses of ``text``, between punctuation marks and, in
    Chinese, spaces (the ASR writes a pause as one); positions are ``text``'s own, the clause
    text NFKC-folded character by character (full-width digits and marks as ASCII).
    ``words``: a language written in words, whose spaces part words, not clauses."""
    folded = "".join(f if len(f := unicodedata.normalize("NFKC", c)) == 1 else c for c in text)
    if not words:
        return [(m.start(), m.end(), m.group(0)) for m in _CLAUSE_TEXT.finditer(folded)]
    out = []
    for m in _CLAUSE_WORDS.finditer(folded):
        stripped = m.group(0).strip()
        if stripped:
            start = m.start() + m.group(0).index(stripped)
            out.append((start, start + len(stripped), stripped))
    return out


# a clause: the text between punctuation marks (a number's own comma or point stays inside)
_CLAUSE_TEXT = re.compile(r"(?:[^，,、；;。.！!？?…⋯\s]|(?<=\d)[,.](?=\d))+")
_CLAUSE_WORDS = re.compile(r"(?:[^，,、；;。.！!？?…⋯]|(?<=\d)[,.](?=\d))+")
