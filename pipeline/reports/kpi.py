"""KPI report for managers: scores per agent, team and day, script adherence, risk, reviews.

>>> report = build_report(open_store(url), Period.parse("2026-11-01", "2026-11-30"))
>>> write_report(report, "out/", by="team")

The figures of the summary, the agent, team and day tables and the items' pass rates are
the review app dashboard's: read with the same store queries
(:meth:`pipeline.store.dashboard.DashboardQueries.breakdown` and ``item_rows``, over the
materialised facts), so the two cannot disagree for the same days. ``mean_score_pct`` is
the mean over calls of ``100 * total / max``; ``final_*`` figures apply reviewers' verdicts;
``overturn_rate`` is overturned / reviewed items of reviewed calls, as the review app's
calibration page counts it. Only what is not a sum is computed here from the per-call rows
(the median and lowest score of a group; the items' review columns), and the per-call
table itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pipeline import __version__
from pipeline.cells import safe_frame, strict_json_value, write_csv
from pipeline.reports.data import Period, Report, calls_frame, has_review_tables, items_frame
from pipeline.reports.render import render
from pipeline.store import Store
from pipeline.store.dashboard import GroupFigures
from pipeline.store.review import QueueFilter, ReviewStore, Scope

ENGINE = "pipeline.reports.kpi"
RISK_LEVELS = ("low", "medium", "high")
BY = ("agent", "team", "day")
By = Literal["agent", "team", "day"]
NONE_LABEL = "(none)"

FILES = {
    "html": "report.html",
    "agents": "agents.csv",
    "teams": "teams.csv",
    "items": "items.csv",
    "daily": "daily.csv",
    "calls": "calls.csv",
    "xlsx": "report.xlsx",
    "summary": "summary.json",
}


# --------------------------------------------------------------------------- figures


REPORT_SCOPE = Scope(user_id=0, all_calls=True)  # the report is of every call
# the columns of a group's figures, in the order of the CSVs (the store's, plus two that
# are not sums: the median and the lowest score)
FIGURES = (
    "calls",
    "mean_score_pct",
    "median_score_pct",
    "min_score_pct",
    "final_mean_score_pct",
    "auto_fail",
    "auto_fail_rate",
    "needs_review",
    "needs_review_rate",
    "error_rate",
    *(f"risk_{lvl}" for lvl in (*RISK_LEVELS, "none")),
    "mean_risk",
    "reviewed_calls",
    "reviewed_items",
    "overturned_items",
    "overturn_rate",
)


def period_filter(period: Period) -> QueueFilter:
    """The dashboard's filter of the report's days."""
    return QueueFilter(
        date_from=period.since.isoformat() if period.since else None,
        date_to=period.until.isoformat() if period.until else None,
    )


def _per_call(calls: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Calls with the item-derived columns of the per-call table."""
    applicable = items[items["applicable"]]
    machine_failed = applicable["machine_passed"].map(lambda v: v is False)
    by_call = pd.DataFrame(
        {
            "failed_items": machine_failed.groupby(applicable["call_id"]).sum(),
            "overturned_items": items["overturned"].groupby(items["call_id"]).sum(),
        }
    )
    out = calls.merge(by_call, how="left", left_on="call_id", right_index=True)
    for col in by_call.columns:
        out[col] = out[col].fillna(0).astype(int)
    return out


def _row(g: GroupFigures, median: Any, lowest: Any) -> dict[str, Any]:
    """One group's figures in :data:`FIGURES` order: the store's, with the median and the
    lowest score of its calls."""
    figures = g.model_dump() | {"median_score_pct": median, "min_score_pct": lowest}
    return {f: figures[f] for f in FIGURES}


def _by(figures: dict[str | None, GroupFigures], calls: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per group (``key``: agent_id, team, day), in key order; no key: NONE_LABEL
    (calls without a day are left out of the days, as the dashboard's trend does)."""
    labels = calls[key].fillna(NONE_LABEL)
    scores = calls["score_pct"].astype(float).groupby(labels)
    median, lowest = scores.median(), scores.min()
    rows = []
    for k, g in figures.items():
        if k is None and key == "day":
            continue
        label = NONE_LABEL if k is None else k
        rows.append({key: label, **_row(g, median.get(label), lowest.get(label))})
    rows.sort(key=lambda r: str(r[key]))
    return pd.DataFrame(rows, columns=[key, *FIGURES]).infer_objects()


def agent_table(calls: pd.DataFrame, figures: dict[str | None, GroupFigures]) -> pd.DataFrame:
    """One row per agent_id; name and team as on the agent's latest call."""
    table = _by(figures, calls, "agent_id")
    latest = (
        calls.assign(agent_id=calls["agent_id"].fillna(NONE_LABEL))
        .sort_values(["started_at", "call_id"], na_position="first")
        .groupby("agent_id")[["agent_name", "team"]]
        .agg(lambda s: s.dropna().iloc[-1] if s.notna().any() else None)
    )
    table = table.merge(latest, how="left", left_on="agent_id", right_index=True)
    first = ["agent_id", "agent_name", "team"]
    days = calls.groupby(calls["agent_id"].fillna(NONE_LABEL))["day"].agg(["min", "max"])
    table["first_day"] = table["agent_id"].map(days["min"]) if not days.empty else None
    table["last_day"] = table["agent_id"].map(days["max"]) if not days.empty else None
    return table[first + [c for c in table.columns if c not in first]]


def item_table(items: pd.DataFrame, verdicts: dict[tuple[str, str], tuple[int, int]]) -> pd.DataFrame:  # fmt: skip
    """Script adherence per rubric item: machine pass rates (``verdicts``: (rubric, item) →
    (passed, failed), the dashboard's item rows), final pass rates, review overturns."""
    cols = [
        "rubric_id",
        "item_id",
        "section",
        "title",
        "critical",
        "calls",
        "applicable",
        "passed",
        "failed",
        "undecided",
        "pass_rate",
        "final_passed",
        "final_failed",
        "final_pass_rate",
        "needs_review",
        "reviewed",
        "overturned",
        "overturn_rate",
    ]
    if items.empty:
        return pd.DataFrame(columns=cols)

    def figures(df: pd.DataFrame) -> pd.Series:
        app = df[df["applicable"]]
        passed, failed = verdicts.get(df.name, (0, 0))
        f_passed = int(app["final_passed"].map(lambda v: v is True).sum())
        f_failed = int(app["final_passed"].map(lambda v: v is False).sum())
        reviewed = int(df["reviewed"].sum())
        overturned = int(df["overturned"].sum())
        nan = float("nan")
        return pd.Series(
            {
                "section": df["section"].iloc[0],
                "title": df["title"].dropna().iloc[0] if df["title"].notna().any() else None,
                "critical": bool(df["critical"].any()),
                "calls": df["call_id"].nunique(),
                "applicable": len(app),
                "passed": passed,
                "failed": failed,
                "undecided": len(app) - passed - failed,
                "pass_rate": passed / (passed + failed) if passed + failed else nan,
                "final_passed": f_passed,
                "final_failed": f_failed,
                "final_pass_rate": f_passed / (f_passed + f_failed) if f_passed + f_failed else nan,
                "needs_review": int(df["needs_review"].sum()),
                "reviewed": reviewed,
                "overturned": overturned,
                "overturn_rate": overturned / reviewed if reviewed else nan,
            },
            dtype=object,
        )

    groups = items.groupby(["rubric_id", "item_id"])
    table = groups[list(items.columns)].apply(figures).assign(_pos=groups["position"].min())
    table = table.reset_index().infer_objects().sort_values(["rubric_id", "_pos", "item_id"])
    return table[cols].reset_index(drop=True)


def build_report(store: Store, period: Period = Period()) -> Report:
    """KPI tables of the scored calls whose ``started_at`` day lies in ``period``."""
    calls = calls_frame(store, period)
    items = items_frame(store, period)
    per_call = _per_call(calls, items)
    figures, f = ReviewStore(store), period_filter(period)
    summary: dict[str, Any] = {"calls": 0}
    if not calls.empty:
        whole = figures.breakdown(REPORT_SCOPE, f).get(None, GroupFigures())
        scores = per_call["score_pct"].astype(float)
        summary = {k: _plain(v) for k, v in _row(whole, scores.median(), scores.min()).items()}
    summary.update(
        period=period.describe(),
        since=period.since.isoformat() if period.since else None,
        until=period.until.isoformat() if period.until else None,
        agents=int(calls["agent_id"].nunique()),
        teams=int(calls["team"].nunique()),
        first_day=_plain(calls["day"].min()) if not calls.empty else None,
        last_day=_plain(calls["day"].max()) if not calls.empty else None,
        review_data=has_review_tables(store),
        rubrics=sorted(calls["rubric_id"].dropna().unique().tolist()),
    )
    verdicts = {(r.rubric_id, r.item_id): (r.passed, r.failed) for r in figures.item_rows(REPORT_SCOPE, f)}  # fmt: skip
    return Report(
        period=period,
        review_data=summary["review_data"],
        summary=summary,
        agents=agent_table(per_call, figures.breakdown(REPORT_SCOPE, f, "agent_id")),
        teams=_by(figures.breakdown(REPORT_SCOPE, f, "team"), per_call, "team"),
        items=item_table(items, verdicts),
        daily=_by(figures.breakdown(REPORT_SCOPE, f, "day"), per_call, "day"),
        calls=per_call,
    )


def _plain(value: Any) -> Any:
    """JSON-able scalars (NaN → None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# --------------------------------------------------------------------------- output


def write_report(report: Report, out_dir: str | Path, by: By = "agent") -> dict[str, Path]:
    """Write report.html (with chart PNGs), the CSVs, report.xlsx and summary.json."""
    if by not in BY:
        raise ValueError(f"unknown breakdown {by!r}; valid: {', '.join(BY)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in FILES.items()}
    calls_cols = [
        "call_id",
        "agent_id",
        "agent_name",
        "team",
        "started_at",
        "day",
        "rubric_id",
        "total",
        "max",
        "score_pct",
        "auto_fail",
        "needs_review",
        "risk",
        "risk_level",
        "failed_items",
        "review_status",
        "final_total",
        "final_score_pct",
        "final_auto_fail",
        "overturned_items",
    ]
    # Cells from manifests and transcripts: never a live formula, never unwritable.
    tables = {
        "agents": safe_frame(report.agents),
        "teams": safe_frame(report.teams),
        "items": safe_frame(report.items),
        "daily": safe_frame(report.daily),
        "calls": safe_frame(report.calls[calls_cols]),
    }
    for name, table in tables.items():
        write_csv(table, paths[name])
    _write_xlsx(report, tables, paths["xlsx"])
    paths["summary"].write_text(
        json.dumps(
            strict_json_value(
                {**report.summary, "created_at": report.created_at, "produced_by": _produced_by()}
            ),
            ensure_ascii=False,
            indent=2,
            allow_nan=False,
        ),
        encoding="utf-8",
    )
    from pipeline.reports.charts import draw_charts  # matplotlib: loaded only to draw

    charts = draw_charts(report, by, out / "charts")
    breakdown = {"agent": report.agents, "team": report.teams, "day": report.daily}[by]
    html = render(
        "report.html",
        report=report,
        s=report.summary,
        by=by,
        breakdown=breakdown,
        charts={k: p.relative_to(out).as_posix() for k, p in charts.items()},
        files={k: p.name for k, p in paths.items() if k != "html"},
        produced_by=_produced_by(),
    )
    paths["html"].write_text(html, encoding="utf-8")
    paths.update({f"chart_{k}": p for k, p in charts.items()})
    return paths


def _produced_by() -> dict[str, str]:
    return {"engine": ENGINE, "pipeline_version": __version__}


def _write_xlsx(report: Report, tables: dict[str, pd.DataFrame], path: Path) -> None:
    summary = pd.DataFrame(
        [(k, ", ".join(v) if isinstance(v, list) else v) for k, v in report.summary.items()],
        columns=["figure", "value"],
    )
    summary = safe_frame(summary)
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        summary.to_excel(xl, sheet_name="Summary", index=False)
        for name, table in tables.items():
            table.to_excel(xl, sheet_name=name.capitalize(), index=False)
        for sheet in xl.book.worksheets:
            sheet.freeze_panes = "A2"
            for column in sheet.columns:
                width = max(len(str(c.value)) if c.value is not None else 0 for c in column)
                sheet.column_dimensions[column[0].column_letter].width = min(max(width, 8), 40)
                for c in column[1:]:
                    if isinstance(c.value, float):
                        c.number_format = "0.00"
