"""``callqa score T.json... --rubric R.yaml --out RESULT.json`` (DESIGN.md, "Command line").

One input file and ``--out`` a file (or ``-`` for stdout): one Result JSON. Several inputs
or a folder: ``--out`` is a folder with one ``<call_id>.json`` each (``-``: one JSON per
line). A bad transcript is reported (file: reason) and the others are still scored; the
exit status is non-zero at the end when any failed.

Many transcripts are scored by ``--workers`` processes (each loads the models once); results
come back in input order, and every score is the same whatever the number of workers (each
model's output for a text does not depend on what it is batched with).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import CallqaError
from pipeline.schema import ContractError, Transcript

# below this many transcripts per worker, starting a process (and its models) does not pay
FILES_PER_WORKER = 100
MAX_AUTO_WORKERS = 8
CHUNK = 20  # transcripts per task handed to a worker


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


class _FileScorer:
    """What scoring one file needs (settings, routing, rubrics, risk), set up once per process."""

    def __init__(self, rubric_name: str | None, no_risk: bool):
        from pipeline.config import load_settings
        from pipeline.routing import RoutingError, load_routing
        from pipeline.score import default_risk_fn
        from pipeline.scoring_config import risk_config_ref

        settings = load_settings()
        self.rubric_name = rubric_name or settings.rubric
        self.rubrics: dict[str, object] = {}
        try:
            self.routing = load_routing(settings.routing)
        except RoutingError as exc:
            raise CallqaError(str(exc)) from None
        self.risk_fn = (lambda t: None) if no_risk else default_risk_fn()
        self.risk = risk_config_ref() if not no_risk else None

    def rubric_for(self, transcript: Transcript | None):
        from pipeline.schema import CallJob
        from pipeline.scripts_check import RubricError, load_rubric

        language = transcript.language if transcript is not None else ""
        job = CallJob(call_id=transcript.call_id if transcript else "", source="")
        route = self.routing.route(job, language or "en", self.rubric_name)
        if route.rubric not in self.rubrics:
            try:
                self.rubrics[route.rubric] = load_rubric(route.rubric)
            except RubricError as exc:
                raise CallqaError(str(exc)) from None
        return self.rubrics[route.rubric], route

    def score(self, path: Path):
        """The Result of one transcript file; ContractError when the file is bad."""
        from pipeline.score import score_transcript
        from pipeline.scoring_config import build_scoring_config, transcript_asr_config

        transcript = Transcript.load(path)
        rubric, route = self.rubric_for(transcript)
        if "language" not in transcript.model_fields_set:
            transcript.language = rubric.language
        # ``callqa score`` scores the transcript as given (no redaction)
        config = build_scoring_config(
            rubric, asr=transcript_asr_config(transcript), redaction=None, risk=self.risk
        )
        return score_transcript(
            transcript, rubric, risk_fn=self.risk_fn, config=config, route=route
        )


def _render(result, compact: bool) -> str:
    return result.model_dump_json(exclude_none=True) if compact else result.to_json()


def _score_files(
    scorer: _FileScorer, paths: list[Path], compact: bool
) -> list[tuple[str | None, str]]:
    """(call_id, Result JSON) per file, or (None, the error naming the file and reason)."""
    out = []
    for path in paths:
        try:
            result = scorer.score(path)
        except ContractError as exc:
            out.append((None, str(exc)))
            continue
        out.append((result.call_id, _render(result, compact)))
    return out


_WORKER: _FileScorer | None = None  # the worker process's scorer


def _start_worker(rubric_name: str | None, no_risk: bool) -> None:
    global _WORKER
    _WORKER = _FileScorer(rubric_name, no_risk)


def _worker_chunk(paths: list[Path], compact: bool) -> list[tuple[str | None, str]]:
    return _score_files(_WORKER, paths, compact)


def _auto_workers(n_files: int) -> int:
    from pipeline.transcribe.model import available_cores

    return max(1, min(available_cores(), MAX_AUTO_WORKERS, n_files // FILES_PER_WORKER))


def _scored(files: list[Path], scorer: _FileScorer, workers: int, compact: bool, args):
    """(call_id, Result JSON) or (None, error) per file, in input order."""
    if workers <= 1:
        for path in files:
            yield from _score_files(scorer, [path], compact)
        return
    import multiprocessing
    from functools import partial

    size = max(1, min(CHUNK, -(-len(files) // workers)))  # every worker gets work
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    # spawn: a fresh interpreter per worker (no inherited threads or locks); each worker
    # loads the rubrics and models once
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(chunks)), initializer=_start_worker, initargs=args) as pool:
        for chunk in pool.imap(partial(_worker_chunk, compact=compact), chunks):
            yield from chunk


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
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=f"Processes that score (0: one per CPU core, at most {MAX_AUTO_WORKERS}, "
    f"with at least {FILES_PER_WORKER} transcripts each).",
)
def score(
    transcripts: tuple[Path, ...], rubric_name: str | None, no_risk: bool, out: str, workers: int
) -> None:
    """Score transcripts against a rubric: scripts + complaint risk + form → Result JSON."""
    files, many = _inputs(transcripts)
    if not files:
        raise CallqaError(f"no transcript JSON found in {', '.join(map(str, transcripts))}")
    scorer = _FileScorer(rubric_name, no_risk)
    if scorer.rubric_name:
        scorer.rubric_for(None)  # a broken rubric stops everything before any call is scored

    out_dir = None
    if out != "-" and (many or Path(out).is_dir()):
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)

    workers = workers or _auto_workers(len(files))
    compact = out == "-" and many
    failed = 0
    for call_id, text in _scored(files, scorer, workers, compact, (rubric_name, no_risk)):
        if call_id is None:
            click.echo(f"callqa: error: {text}", err=True)
            failed += 1
        elif out == "-":
            click.echo(text)
        else:
            target = out_dir / f"{call_id}.json" if out_dir else Path(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8")
    if failed:
        raise CallqaError(f"{failed} of {len(files)} transcript(s) could not be scored")
