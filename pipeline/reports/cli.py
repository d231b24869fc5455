"""``callqa coach export`` (coaching packs) and ``callqa report`` (KPI report)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import CallqaError

_DB = click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
_SINCE = click.option("--since", metavar="DATE", help="First day (YYYY-MM-DD, inclusive).")
_UNTIL = click.option("--until", metavar="DATE", help="Last day (YYYY-MM-DD, inclusive).")
_OUT = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (created if missing).",
)


def _open(db_url: str | None):
    from pipeline.store import StoreError, open_store

    try:
        return open_store(db_url)
    except StoreError as exc:
        raise CallqaError(str(exc)) from None


def _progress(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    click.echo(f"\rcoaching pack: {done}/{total} examples{end}", nl=False, err=True)


@click.group("coach")
def coach() -> None:
    """Coaching material for trainers, from the inspection store."""


@coach.command("export")
@_DB
@click.option("--item", metavar="ID", help="Only this rubric item (e.g. greeting).")
@click.option("--agent", metavar="A", help="Only this agent (agent_id or name).")
@click.option("--team", metavar="T", help="Only this team.")
@_SINCE
@_UNTIL
@click.option(
    "--min-confidence",
    type=float,
    default=0.0,
    show_default=True,
    metavar="C",
    help="Only fails at least this sure (0-1): reviewer verdicts are 1, near misses low.",
)
@click.option("--limit", type=int, metavar="N", help="At most N examples, most clear-cut first.")
@click.option(
    "--rubric",
    "rubric_paths",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rubric YAML not shipped in rubrics/ (repeatable): its rules are shown in the pack.",
)
@_OUT
def export(
    db_url: str | None,
    item: str | None,
    agent: str | None,
    team: str | None,
    since: str | None,
    until: str | None,
    min_confidence: float,
    limit: int | None,
    rubric_paths: tuple[Path, ...],
    out_dir: Path,
) -> None:
    """Write a coaching pack of weak-script examples: clips, excerpts, index.html."""
    from pipeline.reports.coaching import CoachFilter, export_coaching_pack
    from pipeline.reports.data import ReportError
    from pipeline.store import StoreError

    try:
        filters = CoachFilter.parse(
            item=item,
            agent=agent,
            team=team,
            since=since,
            until=until,
            min_confidence=min_confidence,
            limit=limit,
        )
        manifest = export_coaching_pack(
            _open(db_url), out_dir, filters, progress=_progress, rubric_paths=rubric_paths
        )
    except (ReportError, StoreError) as exc:
        raise CallqaError(str(exc)) from None
    if not manifest.entries:
        why = (
            f"{manifest.candidates} weak items below --min-confidence {min_confidence:g}"
            if manifest.candidates
            else "no failed items match the filters"
        )
        click.echo(f"coaching pack: nothing to export ({why}); nothing written", err=True)
        return
    missing = manifest.without_audio
    click.echo(
        f"wrote {len(manifest.entries)} examples to {out_dir / 'index.html'}"
        + (f" ({missing} without audio)" if missing else "")
    )


@click.command("report")
@_DB
@_SINCE
@_UNTIL
@click.option(
    "--by",
    type=click.Choice(["agent", "team", "day"]),
    default="agent",
    show_default=True,
    help="Breakdown shown in report.html (every CSV is written anyway).",
)
@_OUT
def report(
    db_url: str | None, since: str | None, until: str | None, by: str, out_dir: Path
) -> None:
    """KPI report: report.html with charts, agents/teams/items/daily CSVs, report.xlsx."""
    from pipeline.reports.data import Period, ReportError
    from pipeline.reports.kpi import build_report, write_report
    from pipeline.store import StoreError

    try:
        period = Period.parse(since, until)
        built = build_report(_open(db_url), period)
    except (ReportError, StoreError) as exc:
        raise CallqaError(str(exc)) from None
    if built.empty:
        click.echo(f"report: no scored calls in {period.describe()}; nothing written", err=True)
        return
    paths = write_report(built, out_dir, by=by)  # type: ignore[arg-type]
    click.echo(f"wrote {paths['html']} ({built.summary['calls']} calls)")
