"""Charts of the dashboard as inline SVG drawn on the server: no script, no CDN. The SVG
scales to its box (``viewBox``), so the same markup reads at 1366x768 and on a phone; each
point is a link to the calls behind it."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
PAD_L, PAD_R, PAD_T, PAD_B = 40, 12, 12, 28


@dataclass(frozen=True)
class Point:
    label: str  # x-axis label (a day or week)
    value: float | None  # None: no data (a gap, no mark)
    href: str  # the queue of the calls behind the point
    title: str  # tooltip: what the point says in words
    count: int = 0  # the calls behind the point (the queue's count at ``href``)


def chart(points: list[Point], y_max: float, unit: str, test_id: str, bars: bool = False) -> Markup:
    """A line (or bar) chart of ``points`` from 0 to ``y_max`` with 5 grid lines; every mark
    is an ``<a>`` to its calls."""
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    n = max(len(points), 1)
    step = inner_w / n
    y_max = y_max or 1.0

    def y(v: float) -> float:
        return PAD_T + inner_h * (1 - min(max(v / y_max, 0.0), 1.0))

    parts = [
        f'<svg class="chart" data-testid="{escape(test_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'preserveAspectRatio="none" role="img" width="100%">'
    ]
    for i in range(5):
        v = y_max * i / 4
        parts.append(
            f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="axis" x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}{escape(unit)}</text>'  # fmt: skip
        )
    label_every = max(1, n // 8)
    line: list[str] = []
    marks: list[str] = []
    for i, p in enumerate(points):
        x = PAD_L + step * (i + 0.5)
        if i % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(p.label[5:])}</text>'  # fmt: skip
            )
        if p.value is None:
            continue
        bar_w = min(step * 0.7, 36.0)
        mark = (
            f'<rect x="{x - bar_w / 2:.1f}" y="{y(p.value):.1f}" width="{bar_w:.1f}" '
            f'height="{PAD_T + inner_h - y(p.value):.1f}"/>'
            if bars
            else f'<circle cx="{x:.1f}" cy="{y(p.value):.1f}" r="4"/>'
        )
        marks.append(f'<a href="{escape(p.href)}" data-testid="{escape(test_id)}-point" data-count="{p.count}"><title>{escape(p.title)}</title>{mark}</a>')  # fmt: skip
        line.append(f"{x:.1f},{y(p.value):.1f}")
    if not bars and len(line) > 1:
        parts.append(f'<polyline class="line" points="{" ".join(line)}"/>')
    parts += [*marks, "</svg>"]
    return Markup("".join(parts))
