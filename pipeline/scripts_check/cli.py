"""``callqa rubric check RUBRIC.yaml...``: validate rubric files and explain problems;
``rubric test`` runs golden cases; ``rubric propose`` / ``rubric accept``: proposals learnt
from reviewers' overturns (:mod:`pipeline.rubric_learning`)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import CallqaError
from pipeline.contracts import ContractError


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
    a rubric; print every failing expectation; exit 1 when any fails. ``llm`` items are asked
    of the model QA_LLM_BACKEND names (unset: they come out as review, saying why)."""
    from pipeline.scripts_check import RubricError, load_rubric
    from pipeline.scripts_check.cases import load_cases, run_cases

    try:
        r = load_rubric(rubric_path)
    except RubricError as exc:
        raise CallqaError(str(exc)) from None
    judge = None
    if r.llm_checks():
        from pipeline.config import LlmSettings, settings_from
        from pipeline.llm.judge import Judge

        judge = Judge(settings_from(None, LlmSettings))
    total = failed = 0
    for path in cases_paths:
        try:
            cases = load_cases(path)
            n, failures = run_cases(r, cases, path, judge=judge)
        except RubricError as exc:
            raise CallqaError(str(exc)) from None
        for f in failures:
            click.echo(f"{path}: {f.line()}")
        total += n
        failed += len(failures)
        click.echo(f"{path}: {len(cases.cases)} cases, {n} checks, {len(failures)} failed")
    if failed:
        raise CallqaError(f"{failed} of {total} golden checks failed for rubric {r.id}")


@rubric.command("propose")
@click.argument("rubric_ref", metavar="RUBRIC")
@click.option("--db", "db_url", metavar="URL", help="Database URL [default: QA_DATABASE_URL]")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Write each proposal as PROPOSAL.json here (for `callqa rubric accept`).",
)
def propose_cmd(rubric_ref: str, db_url: str | None, out: str | None) -> None:
    """Proposals from reviewers' overturns: per required item, what the rule and the
    reviewers disagreed on, the change that would have agreed, and what it changes on the
    stored calls and the golden cases. Changes nothing."""
    from pipeline.rubric_learning import LearnError, propose
    from pipeline.store import StoreError, open_store

    try:
        proposals = propose(open_store(db_url), rubric_ref)
    except (LearnError, StoreError, ContractError) as exc:
        raise CallqaError(str(exc)) from None
    if not proposals:
        click.echo(f"{rubric_ref}: no required item that reviewers overturned")
    for k, p in enumerate(proposals, 1):
        change = (
            f"add {', '.join(repr(x) for x in p.add_phrases)}"
            if p.add_phrases
            else f"min_similarity {p.min_similarity:g}"
        )
        click.echo(
            f"#{k} {p.rubric_id}.{p.item_id}: {change} ({p.reason}); reviewer labels agreed "
            f"{p.agree_before}/{p.labelled} -> {p.agree_after}/{p.labelled}; "
            f"{len(p.flips)} verdict(s) flip; golden cases broken: "
            f"{'; '.join(p.broken_cases) or 'none'}"
        )
        for f in p.flips:
            label = "" if f.reviewer is None else f" (reviewer: {'pass' if f.reviewer else 'fail'})"
            click.echo(f"    {f.call_id}: {f.before} -> {f.after}{label}")
        if out:
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{p.rubric_id}.{p.item_id}.{k}.json"
            path.write_text(p.model_dump_json(indent=2), encoding="utf-8")
            click.echo(f"    written: {path}")


@rubric.command("accept")
@click.argument("proposal_path", metavar="PROPOSAL.json", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write the new version here.")
def accept_cmd(proposal_path: str, out: str | None) -> None:
    """Accept a proposal as a new rubric version: show the YAML diff, run the golden cases,
    write the file (refused if the rubric changed since or a golden case breaks). Then
    `callqa rescore --rubric FILE` applies it."""
    from pipeline.rubric_learning import LearnError, Proposal, accept

    try:
        proposal = Proposal.model_validate_json(Path(proposal_path).read_text("utf-8"))
        written, diff = accept(proposal, out)
    except (LearnError, ContractError, OSError, ValueError) as exc:
        raise CallqaError(f"{proposal_path}: {exc}") from None
    click.echo(diff)
    click.echo(f"written: {written} (apply with: callqa rescore --rubric {written})")
