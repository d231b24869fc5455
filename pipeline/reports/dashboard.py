"""The dashboard's figures as tables (KPIs, trend, items, agents, teams) and their CSV and
Excel files: the downloads of the dashboard, with the numbers it shows."""

from __future__ import annotations

import io

import pandas as pd

from pipeline.cells import csv_text, safe_frame
from pipeline.store.dashboard import Dashboard

TABLES = ("kpis", "trend", "items", "agents", "teams")


def tables(d: Dashboard) -> dict[str, pd.DataFrame]:
    """One frame per table of :data:`TABLES`; ``kpis`` has the period and the one before."""
    f = d.filters
    filters = {k: v for k, v in f.model_dump().items() if v is not None and k not in ("sort", "page", "per_page")}  # fmt: skip
    kpi_rows = []
    for name, value in d.kpis.model_dump().items():
        before = d.previous_kpis.model_dump()[name] if d.previous_kpis else None
        kpi_rows.append({"figure": name, "value": value, "previous": before})
    kpi_rows += [{"figure": f"filter.{k}", "value": v, "previous": None} for k, v in filters.items()]  # fmt: skip
    if d.previous:
        kpi_rows.append({"figure": "previous.date_from", "value": d.previous.date_from, "previous": None})  # fmt: skip
        kpi_rows.append({"figure": "previous.date_to", "value": d.previous.date_to, "previous": None})  # fmt: skip
    out = {
        "kpis": pd.DataFrame(kpi_rows, columns=["figure", "value", "previous"]),
        "trend": pd.DataFrame([p.model_dump() for p in d.trend]),
        "items": pd.DataFrame([r.model_dump() for r in d.items]),
        "agents": pd.DataFrame([r.model_dump() for r in d.agents]).rename(
            columns={"key": "agent_id"}
        ),  # fmt: skip
        "teams": pd.DataFrame([r.model_dump() for r in d.teams]).rename(columns={"key": "team"}),
    }
    # never a formula, never a cell a writer refuses (pipeline.cells, as every export)
    return {k: safe_frame(v) if not v.empty else v for k, v in out.items()}


def to_csv(d: Dashboard, table: str) -> str:
    """``table`` (one of :data:`TABLES`) as CSV text (:func:`pipeline.cells.csv_lines`:
    UTF-8 with BOM for Excel's sake, CRLF rows)."""
    return csv_text(tables(d)[table])


def to_xlsx(d: Dashboard) -> bytes:
    """Every table as a sheet of one workbook."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        for name, frame in tables(d).items():
            frame.to_excel(xl, sheet_name=name, index=False)
        for sheet in xl.book.worksheets:
            sheet.freeze_panes = "A2"
    return buf.getvalue()
