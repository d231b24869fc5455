"""HTML of packs and reports: Jinja2 templates in ``templates/``, autoescaped."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape


def mmss(seconds: float | None) -> str:
    """Seconds as ``m:ss.s`` (call time as trainers read it)."""
    if seconds is None:
        return ""
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def highlight(text: str, marks: list[Any]) -> Markup:
    """``text`` with each ``(start, end, kind)`` char span wrapped in ``<mark class=kind>``."""
    out, pos = [], 0
    for a, b, kind in sorted(marks or []):
        if a < pos:
            continue
        out.append(escape(text[pos:a]))
        out.append(Markup('<mark class="{}">{}</mark>').format(kind, text[a:b]))
        pos = b
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def pct(value: Any, digits: int = 1) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if value != value else f"{value:.{digits}f}%"


def num(value: Any, digits: int = 1) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if value != value:
        return "n/a"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.{digits}f}"


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.reports", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(mmss=mmss, highlight=highlight, pct=pct, num=num)
    return env


def render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)
