"""``callqa rubric check RUBRIC.yaml...``: validate rubric files and explain problems."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import CallqaError


@click.group("rubric")
def rubric() -> None:
    """Rubric (evaluation form) tools."""


@rubric.command("check")
@click.argument("paths", nargs=-1, required=True)
def check(paths: tuple[str, ...]) -> None:
    """Validate rubric YAML files (paths or shipped ids); print a summary of each."""
    from pipeline.scripts_check import RubricError, load_rubric

    bad = 0
    for path in paths:
        try:
            r = load_rubric(path)
        except RubricError as exc:
            for line in exc.lines():
                click.echo(f"callqa: error: {line}", err=True)
            bad += 1
            continue
        items = r.items()
        critical = [i.id for _, i in items if i.critical]
        click.echo(
            f"{r.path or Path(path)}: ok: {r.id} v{r.version} ({r.language}) {r.title}: "
            f"{len(r.sections)} sections, {len(items)} items, {r.points:g} points, "
            f"critical: {', '.join(critical) or 'none'}"
        )
        for s in r.sections:
            parts = ", ".join(
                f"{i.id} {i.points:g}{'!' if i.critical else ''} ({i.check.op})" for i in s.items
            )
            click.echo(f"  {s.id} {s.title} [{s.points:g}]: {parts}")
    if bad:
        raise CallqaError(f"{bad} of {len(paths)} rubric(s) invalid")
