"""``callqa calls``: the stored calls with their current scores."""

from __future__ import annotations

import json
from typing import Any

import click

from pipeline.cells import strict_json_value
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


@click.group("calls", invoke_without_command=True)
@click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--status", type=click.Choice(["scored", "failed"]), help="Only calls with it.")
@click.pass_context
def calls(ctx: click.Context, db_url: str | None, as_json: bool, status: str | None) -> None:
    """List stored calls with their current score, risk and error (``calls show CALL``: one
    call's history)."""
    ctx.obj = {"db_url": db_url, "as_json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.store import StoreError, open_store

    try:
        rows = open_store(db_url).list_calls(status=status)
    except StoreError as exc:
        raise CallqaError(str(exc)) from None
    if as_json:
        rows = strict_json_value(rows)  # a stored infinity prints null, not Infinity
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, allow_nan=False, default=str))
    elif rows:
        click.echo(format_table(rows))
        scored = sum(r["status"] == "scored" for r in rows)
        click.echo(f"{len(rows)} calls: {scored} scored, {len(rows) - scored} failed")
    else:
        click.echo("no calls stored", err=True)


def call_history(store, call_id: str) -> dict[str, Any] | None:
    """One call: metadata, every result version (with configuration changes from the one
    before), every human action, every failure; None when the call is not stored."""
    from pipeline.store.review import ReviewStore, Scope

    row = next(iter(store.list_calls(call_id=call_id)), None)
    if row is None:
        return None
    results = store.result_history(call_id)
    actions = []
    if results:
        every_call = Scope(user_id=0, all_calls=True)  # the operator's command line
        actions = [a.model_dump() for a in ReviewStore(store).audit(every_call, call_id)]
    return {
        **{k: row[k] for k in ("call_id", "status", "agent_id", "agent_name", "team")},
        **{k: row[k] for k in ("started_at", "language", "error", "result_versions")},
        "results": results,
        "actions": actions,
        "failures": store.failures(call_id),
    }


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:59] + "…"


def format_history(h: dict[str, Any]) -> str:
    """The history of :func:`call_history` as readable text."""
    who = " ".join(x for x in (h["agent_id"], f"({h['agent_name']})" if h["agent_name"] else None) if x)  # fmt: skip
    lines = [
        f"call {h['call_id']}  status {h['status']}  agent {who or '-'}  team {h['team'] or '-'}"
    ]
    lines.append(f"result versions: {len(h['results'])}")
    for n, r in enumerate(h["results"], start=1):
        mark = "  (current)" if r["current"] else ""
        lines.append(
            f"  v{n} result #{r['result_id']}  {r['created_at']}  {r['rubric_id']} "
            f"v{r['rubric_version']}  {r['total']:g}/{r['max']:g}"
            f"{'  auto-fail' if r['auto_fail'] else ''}  risk {r['risk_level'] or '-'}  "
            f"run {r['run_id']}  fingerprint {r['fingerprint'][:12]}{mark}"
        )
        route = r.get("rubric_route")
        if route:
            extra = (
                f" row {route['row']} {route.get('match')}" if route.get("row") is not None else ""
            )
            lines.append(f"      form chosen by: {route['rule']}{extra} → {route['rubric']}")
        if r.get("stage_seconds"):
            parts = ", ".join(f"{k} {v:.2f}s" for k, v in r["stage_seconds"].items())
            lines.append(f"      stage seconds: {parts}")
        if n > 1:
            if r["changes"]:
                lines.append(f"      changes from v{n - 1}:")
                for c in r["changes"]:
                    lines.append(f"        {c['path']}: {_short(c['old'])} → {_short(c['new'])}")
            else:
                lines.append(f"      same configuration as v{n - 1}")
    lines.append(f"human actions: {len(h['actions'])}")
    for a in h["actions"]:
        carried = f"  carried from action {a['carried_from']}" if a["carried_from"] else ""
        comment = f"  “{a['comment']}”" if a["comment"] else ""
        lines.append(
            f"  #{a['id']} {a['created_at']}  {a['kind']} {a['item_id']}  by {a['user']} "
            f"({a['role']})  {a['before']} → {a['after']}  on result #{a['result_id']}"
            f"{carried}{comment}"
        )
    if h["failures"]:
        lines.append(f"failures: {len(h['failures'])}")
        for f in h["failures"]:
            lines.append(f"  {f['created_at']}  run {f['run_id']}  {f['error']}")
    return "\n".join(lines)


@calls.command("show")
@click.argument("call_id")
@click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def show(ctx: click.Context, call_id: str, db_url: str | None, as_json: bool) -> None:
    """One call's result versions (with configuration changes) and human actions."""
    from pipeline.store import StoreError, open_store

    parent = ctx.obj or {}
    db_url = db_url or parent.get("db_url")
    as_json = as_json or parent.get("as_json", False)
    try:
        history = call_history(open_store(db_url), call_id)
    except StoreError as exc:
        raise CallqaError(str(exc)) from None
    if history is None:
        raise CallqaError(f"no call {call_id!r} in the store")
    if as_json:
        history = strict_json_value(history)
        click.echo(json.dumps(history, ensure_ascii=False, indent=2, allow_nan=False, default=str))
    else:
        click.echo(format_history(history))


@click.command("rescore")
@click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
@click.option(
    "--rubric",
    metavar="ID|PATH",
    help="Form version to score with: calls scored with a form of the same id move to it "
    "(with --call, the named calls take it whatever their form). Default: each call's "
    "form by the routing table, at its current version.",
)
@click.option("--call", "call_ids", multiple=True, metavar="ID", help="Only this call (repeat).")
@click.option("--since", metavar="DATE", help="Only calls started on or after DATE (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Only calls started on or before DATE.")
@click.option("--team", metavar="T", help="Only calls of team T.")
@click.option("--no-risk", is_flag=True, help="Do not assess complaint risk (risk: null).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that score in parallel [default: the CPU cores this process may use].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def rescore(
    db_url: str | None,
    rubric: str | None,
    call_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    team: str | None,
    no_risk: bool,
    workers: int | None,
    as_json: bool,
) -> None:
    """Re-score stored calls from their stored transcripts (no audio, no ASR): a new result
    version each, the old kept, human verdicts carried over."""
    from pipeline.rescore import RescoreError, Rescorer
    from pipeline.schema import ContractError
    from pipeline.scripts_check import RubricError
    from pipeline.store import StoreError, open_store

    def progress(summary) -> None:
        click.echo(
            f"rescore: {summary.done}/{summary.selected} calls  {summary.rescored} re-scored, "
            f"{summary.unchanged} unchanged, {summary.other_form} other form, "
            f"{summary.failed} failed  ({summary.calls_per_second:.0f} calls/s)",
            err=True,
        )

    if workers is None:
        from pipeline.transcribe.model import available_cores

        workers = available_cores()
    try:
        rescorer = Rescorer(open_store(db_url), rubric=rubric, risk=not no_risk)
        summary = rescorer.rescore(
            call_ids=call_ids,
            since=since,
            until=until,
            team=team,
            progress=progress,
            workers=workers,
        )
    except (RescoreError, RubricError, ContractError, StoreError) as exc:
        raise CallqaError(str(exc)) from None
    for call_id, reason in summary.errors.items():
        click.echo(f"callqa: call {call_id}: {reason}", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {**summary.model_dump(), "calls_per_second": round(summary.calls_per_second, 1)},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        click.echo(
            f"{summary.rescored} re-scored, {summary.unchanged} unchanged, "
            f"{summary.other_form} other form, {summary.failed} failed of {summary.selected} "
            f"in {summary.seconds:.1f} s (run {summary.run_id})"
        )
    if summary.failed:
        raise SystemExit(1)
