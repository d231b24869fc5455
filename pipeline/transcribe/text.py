"""Text normalisation for ASR output and for phrase matching."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NOT_WORD = re.compile(r"[^\w.]+|(?<!\w)\.|\.(?!\w)")  # keep "amara.org", drop a full stop


@lru_cache(maxsize=1)
def _t2s():
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese characters → simplified (Whisper mixes both for Mandarin)."""
    return _t2s().convert(text) if _CJK.search(text) else text


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def normalise_for_match(text: str) -> str:
    """Lower case, NFKC, simplified, punctuation dropped, spaces collapsed (none between CJK)."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    text = _NOT_WORD.sub(" ", text.replace("_", " "))
    text = re.sub(r"(?<=[\u3400-\u9fff]) +| +(?=[\u3400-\u9fff])", "", text)
    return " ".join(text.split())
