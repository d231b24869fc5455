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


@rubric.command("test")
@click.argument("rubric_path")
@click.argument("cases_paths", nargs=-1, required=True)
def test(rubric_path: str, cases_paths: tuple[str, ...]) -> None:
    """Run golden cases (CASES.yaml: transcript snippet → expected verdict per item) against
    a rubric; print every failing expectation; exit 1 when any fails."""
    from pipeline.scripts_check import RubricError, load_rubric
    from pipeline.scripts_check.cases import load_cases, run_cases

    try:
        r = load_rubric(rubric_path)
    except RubricError as exc:
        raise CallqaError(str(exc)) from None
    total = failed = 0
    for path in cases_paths:
        try:
            cases = load_cases(path)
            n, failures = run_cases(r, cases, path)
        except RubricError as exc:
            raise CallqaError(str(exc)) from None
        for f in failures:
            click.echo(f"{path}: {f.line()}")
        total += n
        failed += len(failures)
        click.echo(f"{path}: {len(cases.cases)} cases, {n} checks, {len(failures)} failed")
    if failed:
        raise CallqaError(f"{failed} of {total} golden checks failed for rubric {r.id}")
