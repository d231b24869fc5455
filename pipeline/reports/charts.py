"""Charts of the KPI report (matplotlib, Agg backend, PNG files beside report.html)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    from pipeline.reports.data import Report

NAVY, RED, AMBER, GREEN, GREY = "#1f3a5f", "#c0392b", "#e0a100", "#2e8b57", "#9aa3b2"


def _label(row, by: str) -> str:
    """ASCII-safe label (the default font has no CJK glyphs; names stay in the tables)."""
    if by == "agent":
        name = row.get("agent_name")
        return (
            f"{row['agent_id']} {name}"
            if isinstance(name, str) and name.isascii()
            else str(row["agent_id"])
        )
    return str(row[by])


def draw_charts(report: Report, by: str, out: Path) -> dict[str, Path]:
    """trend, breakdown, items and risk charts; returns name → PNG path."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})

    daily = report.daily
    if len(daily):
        fig, ax = plt.subplots(figsize=(9, 3.0))
        ax2 = ax.twinx()
        ax2.bar(daily["day"], daily["calls"], color=GREY, alpha=0.35, label="calls")
        ax2.set_ylabel("calls scored")
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.plot(daily["day"], daily["mean_score_pct"], marker="o", color=NAVY, label="mean score %")
        if report.review_data and daily["final_mean_score_pct"].ne(daily["mean_score_pct"]).any():
            ax.plot(
                daily["day"],
                daily["final_mean_score_pct"],
                ls="--",
                color=GREEN,
                label="after review",
            )
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylim(0, 105)
        ax.set_ylabel("mean score (% of max)")
        ax.set_title("Score trend by day")
        ax.legend(loc="lower left", frameon=False)
        ax.tick_params(axis="x", rotation=30)
        paths["trend"] = _save(fig, out / "trend.png")

    table = {"agent": report.agents, "team": report.teams, "day": report.daily}[by]
    key = {"agent": "agent_id", "team": "team", "day": "day"}[by]
    if len(table):
        rows = table.sort_values("mean_score_pct", na_position="first")
        labels = [_label(r, key if by != "agent" else "agent") for r in rows.to_dict("records")]
        fig, ax = plt.subplots(figsize=(5.2, 0.4 * len(rows) + 1.3))
        colors = [
            RED if v < 60 else AMBER if v < 80 else NAVY for v in rows["mean_score_pct"].fillna(0)
        ]
        ax.barh(labels, rows["mean_score_pct"].fillna(0), color=colors)
        for y, (v, n) in enumerate(zip(rows["mean_score_pct"], rows["calls"], strict=True)):
            ax.text(min(v if v == v else 0, 100) + 1, y, f"{v:.1f}%  ({n} calls)", va="center")
        ax.set_xlim(0, 120)
        ax.set_xlabel("mean score (% of max)")
        ax.set_title(f"Mean score by {by}")
        paths["breakdown"] = _save(fig, out / "breakdown.png")

    items = report.items
    if len(items):
        rows = items.iloc[::-1]
        labels = [f"{r['item_id']}" for r in rows.to_dict("records")]
        rates = (100 * rows["pass_rate"]).fillna(0)
        fig, ax = plt.subplots(figsize=(5.2, 0.35 * len(rows) + 1.3))
        ax.barh(labels, rates, color=[RED if c else NAVY for c in rows["critical"]])
        for y, v in enumerate(rates):
            ax.text(v + 1, y, f"{v:.0f}%", va="center")
        ax.set_xlim(0, 110)
        ax.set_xlabel("pass rate (%); red = red-line item")
        ax.set_title("Script adherence by rubric item")
        paths["items"] = _save(fig, out / "items.png")

    s = report.summary
    counts = [s.get(f"risk_{lvl}", 0) or 0 for lvl in ("low", "medium", "high")]
    if sum(counts):
        fig, ax = plt.subplots(figsize=(5.2, 2.6))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.bar(["low", "medium", "high"], counts, color=[GREEN, AMBER, RED])
        for x, v in enumerate(counts):
            ax.text(x, v, str(v), ha="center", va="bottom")
        ax.set_title("Complaint risk (calls)")
        paths["risk"] = _save(fig, out / "risk.png")
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
