"""A digits-only view of an utterance, with a map back to the original characters.

ASR writes spoken numbers as Chinese numerals (一三八, 幺, 两, 洞), English number words
("four one five", "oh", "double five", "thirty four") or digits broken by spaces and
dashes. :func:`normalize` turns each numeral into digits and groups them:

* a *group* is numerals written without a break (``一三八``, ``1234``, ``double five``);
* a *run* is groups joined by short separators (spaces, dashes, commas, dots).

Number recognisers look at every contiguous range of groups in a run, so
``一三八 1234 五六七八`` yields ``13812345678`` while ``13812345678，3个`` still yields the
phone number alone. Every group keeps the original character span so a mask replaces
exactly what was said.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


def _words(line: str) -> list[str]:
    return line.split()


_ZH_DIGITS = dict(zip("零〇一幺二三四五六七八九", "001123456789", strict=True))
# only next to other numerals (两个, 漏洞 stay); 幺 heard as a sound-alike ("他的号是189-0723-605药":
# split 27, a phone number's last digit)
_ZH_COND = {"两": "2", "洞": "0", "药": "1", "腰": "1", "妖": "1", "吆": "1"}
_ZH_CLASSIFIERS = set("个块元件位次张天年月日号点分岁斤百千万十亿倍份条台瓶盒遍")
_EN_DIGITS = {
    w: str(i) for i, w in enumerate(_words("zero one two three four five six seven eight nine"))
}
_EN_COND = {"oh": "0", "o": "0"}  # "oh" is zero only inside a number
_EN_TEENS = {
    w: str(10 + i)
    for i, w in enumerate(
        _words("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen")
    )
}
_EN_TENS = {
    w: str(i + 2)
    for i, w in enumerate(_words("twenty thirty forty fifty sixty seventy eighty ninety"))
}
_EN_MULT = {"double": 2, "triple": 3}
_EN_SCALE = {"hundred": "00", "thousand": "000"}
_SEP_CHARS = set(" \t\u3000-–—.,，、·()（）")
_MAX_SEP = 3  # separator characters allowed between two groups of one run

_TOKEN = re.compile(r"[A-Za-z]+|\d|.", re.S)


@dataclass
class Group:
    """Numerals written without a break; start/end index the original text."""

    start: int
    end: int
    digits: str


@dataclass
class Normalized:
    original: str
    text: str  # the original with every numeral replaced by its digits
    origin: list[tuple[int, int]]  # original span of each character of ``text``
    runs: list[list[Group]] = field(default_factory=list)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Original character span of ``text[start:end]``."""
        return self.origin[start][0], self.origin[end - 1][1]


@dataclass
class _Tok:
    start: int
    end: int
    text: str
    kind: str  # num, cond, tens, mult, scale, xmark, sep, other
    digits: str = ""


def _classify(m: re.Match[str]) -> _Tok:
    s, e, t = m.start(), m.end(), m.group()
    low = t.lower()
    if len(t) == 1 and t.isdigit():
        try:
            return _Tok(s, e, t, "num", str(unicodedata.decimal(t)))
        except ValueError:
            return _Tok(s, e, t, "other")
    if t in _ZH_DIGITS:
        return _Tok(s, e, t, "num", _ZH_DIGITS[t])
    if t in _ZH_COND:
        return _Tok(s, e, t, "cond", _ZH_COND[t])
    if t == "叉" or low == "x":
        return _Tok(s, e, t, "xmark", "X")
    if low in _EN_DIGITS:
        return _Tok(s, e, t, "num", _EN_DIGITS[low])
    if low in _EN_TEENS:
        return _Tok(s, e, t, "num", _EN_TEENS[low])
    if low in _EN_COND:
        return _Tok(s, e, t, "cond", _EN_COND[low])
    if low in _EN_TENS:
        return _Tok(s, e, t, "tens", _EN_TENS[low])
    if low in _EN_MULT:
        return _Tok(s, e, t, "mult", str(_EN_MULT[low]))
    if low in _EN_SCALE:
        return _Tok(s, e, t, "scale", _EN_SCALE[low])
    if t in _SEP_CHARS:
        return _Tok(s, e, t, "sep")
    return _Tok(s, e, t, "other")


def _neighbour(toks: list[_Tok], i: int, step: int, max_sep: int = _MAX_SEP) -> _Tok | None:
    """Nearest non-separator token from ``i`` in direction ``step`` within ``max_sep`` seps."""
    j, seps = i + step, 0
    while 0 <= j < len(toks) and toks[j].kind == "sep":
        seps += toks[j].end - toks[j].start
        if seps > max_sep:
            return None
        j += step
    return toks[j] if 0 <= j < len(toks) else None


def _merge(a: _Tok, b: _Tok, digits: str, text: str) -> _Tok:
    return _Tok(a.start, b.end, text, "num", digits)


def _resolve(toks: list[_Tok], original: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = _neighbour(toks, i, 1, max_sep=1)
        if t.kind == "tens":
            if (
                nxt is not None
                and nxt.kind == "num"
                and nxt.text.isalpha()
                and len(nxt.digits) == 1
                and nxt.digits != "0"
            ):
                out.append(_merge(t, nxt, t.digits + nxt.digits, original[t.start : nxt.end]))
                i = toks.index(nxt, i) + 1
                continue
            out.append(_Tok(t.start, t.end, t.text, "num", t.digits + "0"))
        elif (
            t.kind == "mult"
            and nxt is not None
            and nxt.kind in ("num", "cond")
            and len(nxt.digits) == 1
        ):
            digits = nxt.digits * int(t.digits)
            out.append(_merge(t, nxt, digits, original[t.start : nxt.end]))
            i = toks.index(nxt, i) + 1
            continue
        else:
            out.append(t)
        i += 1

    # a conditional numeral next to a numeral is one, and so on along a chain (两两三三)
    changed = True
    while changed:
        changed = False
        for i, t in enumerate(out):
            if t.kind != "cond":
                continue
            prev, nxt = _neighbour(out, i, -1), _neighbour(out, i, 1)
            near_num = (prev is not None and prev.kind == "num") or (
                nxt is not None and nxt.kind == "num"
            )
            after = original[t.end : t.end + 1]
            if near_num and not (t.text == "两" and after in _ZH_CLASSIFIERS):
                t.kind, changed = "num", True
    for i, t in enumerate(out):
        prev = _neighbour(out, i, -1)
        if (
            t.kind in ("scale", "xmark")
            and prev is not None
            and prev.kind == "num"
            and _neighbour(out, i, -1, max_sep=1) is prev
        ):
            # "five hundred", "...002X": only right after a numeral
            t.kind = "num"
    return out


def normalize(text: str) -> Normalized:
    """Digits view of ``text`` with offset map and numeral groups (see module doc)."""
    toks = _resolve([_classify(m) for m in _TOKEN.finditer(text)], text)
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    runs: list[list[Group]] = []
    current: list[Group] = []
    prev_kind, pending_sep = "other", 0
    for t in toks:
        if t.kind == "num":
            if prev_kind == "num" and pending_sep == 0 and current:
                g = current[-1]
                g.end, g.digits = t.end, g.digits + t.digits
            elif current and 0 < pending_sep <= _MAX_SEP:
                current.append(Group(t.start, t.end, t.digits))
            else:
                if current:
                    runs.append(current)
                current = [Group(t.start, t.end, t.digits)]
            out.append(t.digits)
            origin.extend([(t.start, t.end)] * len(t.digits))
            prev_kind, pending_sep = "num", 0
            continue
        if t.kind == "sep" and prev_kind in ("num", "sep"):
            pending_sep += t.end - t.start
            prev_kind = "sep"
        else:
            if current:
                runs.append(current)
                current = []
            prev_kind, pending_sep = "other", 0
        out.append(t.text)
        origin.extend((k, k + 1) for k in range(t.start, t.end))
    if current:
        runs.append(current)
    return Normalized(text, "".join(out), origin, runs)
