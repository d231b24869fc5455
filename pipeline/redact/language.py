"""Which recogniser sets read an utterance: its own script, not only the call's language.

A call whose language is ``zh`` can hold an English exchange ("May I have your account
number please?" / "4, 0, 9, 5, 4, 6, 1, 1."), and the reverse: code-switching is common in
Hong Kong, Singapore and multinational centres. Each utterance is read by the sets of the
scripts it is written in (Han characters: the ``zh`` sets; Latin words: the ``en`` sets;
both: both). An utterance of digits and punctuation only says nothing about its language:
it gets the call's sets, and the dialogue state (the request it answers, whatever that
request's language) does the rest (:mod:`pipeline.redact.dialogue`).
"""

from __future__ import annotations

import re

from pipeline.redact.recognizers import RecognizerSet, shipped_sets

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# a Latin word of two letters or more ("OK" counts; a lone "A" of an ID does not)
_LATIN_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z][A-Za-z']+")
_SCRIPT_LANGUAGES = {"zh": ("zh", "cmn", "yue"), "en": ("en",)}


def _is(rset: RecognizerSet, script: str) -> bool:
    return rset.language.lower().startswith(_SCRIPT_LANGUAGES[script])


def call_sets(available: list[RecognizerSet], language: str | None) -> list[RecognizerSet]:
    """The sets of ``available`` for the call's language (all of them when none match)."""
    lang = (language or "").lower()
    for script, prefixes in _SCRIPT_LANGUAGES.items():
        if lang.startswith(prefixes):
            chosen = [s for s in available if _is(s, script)]
            return chosen or available
    return available


def sets_for_language(language: str | None) -> list[RecognizerSet]:
    """Shipped sets for a call language: zh*/cmn/yue → zh, en* → en, anything else → all."""
    return call_sets(shipped_sets(), language)


def utterance_sets(
    text: str, available: list[RecognizerSet], default: list[RecognizerSet]
) -> list[RecognizerSet]:
    """The sets of ``available`` that read ``text``: by the scripts it is written in
    (see module doc); ``default`` (the call's) when it has neither Han nor Latin words."""
    han = bool(_HAN.search(text))
    latin = len(_LATIN_WORD.findall(text))
    scripts = [s for s, on in (("zh", han), ("en", latin >= 2 or (latin and not han))) if on]
    chosen = [s for s in available if any(_is(s, script) for script in scripts)]
    # sets of other languages (a site's own) read every utterance as before
    others = [s for s in available if not any(_is(s, k) for k in _SCRIPT_LANGUAGES)]
    return (chosen + others) or default
