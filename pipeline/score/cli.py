"""``callqa score T.json... --rubric R.yaml --out RESULT.json`` (DESIGN.md, "Command line").

One input file and ``--out`` a file (or ``-`` for stdout): one Result JSON. Several inputs
or a folder: ``--out`` is a folder with one ``<call_id>.json`` each (``-``: one JSON per
line). A bad transcript is reported (file: reason) and the others are still scored; the
exit status is non-zero at the end when any failed.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import CallqaError
from pipeline.schema import ContractError, Transcript


def _inputs(paths: tuple[Path, ...]) -> tuple[list[Path], bool]:
    files: list[Path] = []
    many = len(paths) > 1
    for p in paths:
        if p.is_dir():
            many = True
            files.extend(sorted(q for q in p.glob("*.json") if q.is_file()))
        else:
            files.append(p)
    return files, many


@click.command("score")
@click.argument("transcripts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--rubric",
    "rubric_name",
    default=None,
    help="Rubric YAML path or shipped id (default: QA_RUBRIC, else by the call's language).",
)
@click.option("--no-risk", is_flag=True, help="Skip complaint risk (risk: null in the result).")
@click.option("--out", "out", default="-", show_default=True, help="Result file, folder, or -.")
def score(transcripts: tuple[Path, ...], rubric_name: str | None, no_risk: bool, out: str) -> None:
    """Score transcripts against a rubric: scripts + complaint risk + form → Result JSON."""
    from pipeline.config import (
        build_scoring_config,
        load_settings,
        risk_config_ref,
        transcript_asr_config,
    )
    from pipeline.routing import RoutingError, load_routing
    from pipeline.schema import CallJob
    from pipeline.score import default_risk_fn, score_transcript
    from pipeline.scripts_check import RubricError, load_rubric

    files, many = _inputs(transcripts)
    if not files:
        raise CallqaError(f"no transcript JSON found in {', '.join(map(str, transcripts))}")
    settings = load_settings()
    rubric_name = rubric_name or settings.rubric
    rubrics: dict[str, object] = {}
    try:
        routing = load_routing(settings.routing)
    except RoutingError as exc:
        raise CallqaError(str(exc)) from None

    def rubric_for(transcript: Transcript | None):
        language = transcript.language if transcript is not None else ""
        job = CallJob(call_id=transcript.call_id if transcript else "", source="")
        route = routing.route(job, language or "en", rubric_name)
        if route.rubric not in rubrics:
            try:
                rubrics[route.rubric] = load_rubric(route.rubric)
            except RubricError as exc:
                raise CallqaError(str(exc)) from None
        return rubrics[route.rubric], route

    if rubric_name:
        rubric_for(None)  # a broken rubric stops everything before any call is scored

    out_dir = None
    if out != "-" and (many or Path(out).is_dir()):
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)

    risk_fn = (lambda t: None) if no_risk else default_risk_fn()
    risk = risk_config_ref() if risk_fn is not None and not no_risk else None
    redaction = None  # ``callqa score`` scores the transcript as given (no redaction)
    failed = 0
    for path in files:
        try:
            transcript = Transcript.load(path)
            rubric, route = rubric_for(transcript)
            if "language" not in transcript.model_fields_set:
                transcript.language = rubric.language
            config = build_scoring_config(
                rubric, asr=transcript_asr_config(transcript), redaction=redaction, risk=risk
            )
            result = score_transcript(
                transcript, rubric, risk_fn=risk_fn, config=config, route=route
            )
        except ContractError as exc:
            click.echo(f"callqa: error: {exc}", err=True)
            failed += 1
            continue
        if out == "-":
            click.echo(result.to_json() if not many else result.model_dump_json(exclude_none=True))
        else:
            target = out_dir / f"{result.call_id}.json" if out_dir else Path(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(result.to_json() + "\n", encoding="utf-8")
    if failed:
        raise CallqaError(f"{failed} of {len(files)} transcript(s) could not be scored")
