"""``callqa calls``: the stored calls with their current scores."""

from __future__ import annotations

import json
from typing import Any

import click

from pipeline.cli import CallqaError

# (header, key, width) of the readable table
_TABLE = (
    ("CALL", "call_id", 22),
    ("STATUS", "status", 6),
    ("SCORE", "score", 11),
    ("AUTO_FAIL", "auto_fail", 9),
    ("REVIEW", "needs_review", 6),
    ("RISK", "risk", 11),
    ("AGENT", "agent_id", 10),
    ("TEAM", "team", 10),
    ("RUBRIC", "rubric", 18),
    ("ERROR", "error", 0),
)


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "score":
        return "" if row["total"] is None else f"{row['total']:g}/{row['max']:g}"
    if key == "risk":
        return "" if row["risk"] is None else f"{row['risk']:.2f} {row['risk_level']}"
    if key == "rubric":
        return "" if row["rubric_id"] is None else f"{row['rubric_id']} v{row['rubric_version']}"
    value = row[key]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width text table (long cells are cut with an ellipsis)."""

    def fit(text: str, width: int) -> str:
        if not width:
            return text
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["  ".join(fit(h, w).ljust(w) for h, _, w in _TABLE).rstrip()]
    for row in rows:
        cells = (fit(_cell(row, key), w).ljust(w) for _, key, w in _TABLE)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@click.command("calls")
@click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--status", type=click.Choice(["scored", "failed"]), help="Only calls with it.")
def calls(db_url: str | None, as_json: bool, status: str | None) -> None:
    """List stored calls with their current score, risk and error."""
    from pipeline.store import StoreError, open_store

    try:
        rows = open_store(db_url).list_calls(status=status)
    except StoreError as exc:
        raise CallqaError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif rows:
        click.echo(format_table(rows))
        scored = sum(r["status"] == "scored" for r in rows)
        click.echo(f"{len(rows)} calls: {scored} scored, {len(rows) - scored} failed")
    else:
        click.echo("no calls stored", err=True)
