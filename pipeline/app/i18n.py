"""Interface language of the review app: gettext catalogues (Babel) for zh-CN and en.

The language of a request follows, in order: the user's saved choice, the browser's
``Accept-Language``, then ``QA_UI_LANGUAGE`` (default ``zh_CN``). Templates use the Jinja2
i18n extension (``{{ _("...") }}``, ``{% trans %}``); Python code uses :func:`gettext`. The
catalogues live in ``pipeline/app/locale`` (``.po`` sources and the compiled ``.mo`` files,
rebuilt with ``make locale``). Dates, durations and numbers are formatted with Babel for the
same locale. The rubric's own titles are shown as written, never translated.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGE_ENV = "QA_UI_LANGUAGE"
LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGE_NAMES = {"zh_CN": "简体中文", "en": "English"}
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}

_current: ContextVar[str] = ContextVar("callqa_ui_language", default=DEFAULT_LANGUAGE)


def normalise(tag: str | None) -> str | None:
    """``zh``, ``zh-CN``, ``zh-Hans-CN``, ``zh_cn`` → ``zh_CN``; ``en-GB`` → ``en``; else None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return {"zh": "zh_CN", "en": "en"}.get(primary)


def from_accept_language(header: str | None) -> str | None:
    """The first supported language of an ``Accept-Language`` header, by quality."""
    choices: list[tuple[float, int, str]] = []
    for n, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalise(tag)
        if lang and q > 0:
            choices.append((-q, n, lang))
    return min(choices)[2] if choices else None


def default_language() -> str:
    from pipeline.config import AppSettings, settings_from

    return normalise(settings_from(model=AppSettings).ui_language) or DEFAULT_LANGUAGE


def choose(saved: str | None, accept_language: str | None) -> str:
    """The user's saved choice, else the browser's, else ``QA_UI_LANGUAGE``."""
    return normalise(saved) or from_accept_language(accept_language) or default_language()


@cache
def translations(lang: str) -> NullTranslations:
    if lang == "en":
        return NullTranslations()  # the source strings are English
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def activate(lang: str) -> None:
    """Use ``lang`` for the rest of this request (context-local)."""
    _current.set(lang if lang in LANGUAGES else default_language())


def current() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current()).ngettext(singular, plural, n)


_ = gettext


def _locale() -> Locale:
    return Locale.parse(current())


def fmt_datetime(value: str | datetime | None, format: str = "short") -> str:
    """An ISO timestamp (as stored) in the locale's form; unparsable text is shown as is."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return format_datetime(value, format, locale=_locale())


def fmt_duration(seconds: float | None) -> str:
    """1h 2 min 5 s / 1小时2分5秒."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    if h:
        return gettext("%(h)d h %(m)d min %(s)d s") % {"h": h, "m": m, "s": sec}
    if m:
        return gettext("%(m)d min %(s)d s") % {"m": m, "s": sec}
    return gettext("%(s)d s") % {"s": sec}


def fmt_number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    pattern = "#,##0." + "#" * digits if digits else "#,##0"
    return format_decimal(value, format=pattern, locale=_locale())


def fmt_percent(value: float | None) -> str:
    return "–" if value is None else format_percent(value, locale=_locale())


def install(env) -> None:
    """The Jinja2 i18n extension with this module's context-local gettext, and filters."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    env.filters["datetime"] = fmt_datetime
    env.filters["duration"] = fmt_duration
    env.filters["number"] = fmt_number
    env.filters["percent"] = fmt_percent
