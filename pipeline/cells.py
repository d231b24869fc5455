"""Values made safe to write as spreadsheet cells and strict JSON: the one place every CSV and
Excel writer (KPI report, calibration export) and ``--json`` printer goes through.

Stored values come from manifests and transcripts that other people wrote, so a cell may hold
``=HYPERLINK(...)``, a NUL or an infinity. Written raw, the first becomes a live formula in a
spreadsheet (CSV injection), the second makes openpyxl refuse the workbook, the third is not
JSON. Here:

- a text starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` (OWASP, "CSV
  Injection"), so Excel and LibreOffice show it as text;
- control characters Excel cannot hold (and lone surrogates, which are not UTF-8) are written
  as visible escapes (``\\x00``), and text is cut to Excel's 32,767 characters per cell;
- non-finite floats (NaN, ±infinity) become empty cells / ``null``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_CHARS = 32_767
# What XML 1.0 (and so .xlsx) cannot hold, C1 controls, and lone surrogates.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    """``text`` as a cell that is never a formula and that every writer can hold."""
    text = _UNWRITABLE.sub(_escape, text)
    if text.startswith(FORMULA_LEADS):
        text = "'" + text
    return text[:EXCEL_MAX_CHARS]


def safe_cell(value: Any) -> Any:
    """One cell: text through :func:`safe_text`, non-finite floats as None, the rest as is."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row (column → value) of cells for ``csv.DictWriter``."""
    return {safe_text(str(k)): safe_cell(v) for k, v in row.items()}


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell, column name and float made safe."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype.kind in "OSU":  # object and string columns
            out[column] = values.map(safe_cell)
        elif values.dtype.kind == "f":
            out[column] = values.where(values.map(math.isfinite))
    out.columns = [safe_text(str(c)) for c in out.columns]
    return out


BOM = "\ufeff"  # Excel reads a CSV as UTF-8 only after it (else Chinese names are garbled)


def csv_lines(fields: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The one CSV writer of every export (KPI report, dashboard, calibration): a UTF-8 BOM,
    the header, then each row of safe cells (:func:`safe_row`), a chunk at a time (a
    response can stream it). Rows end in CRLF (RFC 4180): the writer then quotes a field
    holding a lone CR, which a reader would otherwise take for a new row."""
    buf = io.StringIO()
    buf.write(BOM)
    writer = csv.DictWriter(buf, fieldnames=[safe_text(str(f)) for f in fields], lineterminator="\r\n")  # fmt: skip
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_row(row))
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def frame_rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows of ``frame`` as dicts of plain values (NaN as None)."""
    for row in frame.to_dict("records"):
        yield {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (:func:`csv_lines`)."""
    return "".join(csv_lines(frame.columns, frame_rows(frame)))


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """``frame`` as a CSV file (:func:`csv_lines`: BOM, safe cells, CRLF rows)."""
    Path(path).write_bytes(csv_text(frame).encode("utf-8"))


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) as None: ``json.dumps(...,
    allow_nan=False)`` then always succeeds, and strict parsers read what it prints."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_value(v) for v in value]
    return value
