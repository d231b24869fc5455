"""``callqa train risk``: refit the call-level complaint-risk weights from reviewer labels.

Labels: a CSV with columns ``call_id,label`` (label 1/0, true/false, yes/no, high/low,
complaint/ok). Transcripts come from the store (``--db``) or from ``--transcripts DIR`` of
``<call_id>.json``. The weights are fitted on those calls plus ``--synthetic N`` synthetic calls
(``pipeline/score/risk/synth.py``, built from held-out real reviews; needs ../shared/data), each
reviewer-labelled call counting ``--label-weight`` times. A new calibration version is written
under ``models/risk``; stored scores name it in ``risk.model``.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import click

from pipeline.cli import CallqaError
from pipeline.schema import ContractError, Transcript

_TRUE = {"1", "true", "yes", "y", "high", "complaint", "dissatisfied", "positive"}
_FALSE = {"0", "false", "no", "n", "low", "ok", "satisfied", "negative", "none"}


def read_labels(path: Path) -> list[tuple[str, int]]:
    """(call_id, 0/1) rows of a labels CSV; errors name the file, line and reason."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"call_id", "label"} - set(reader.fieldnames or [])
            if missing:
                raise ContractError(
                    path, f"missing column(s) {sorted(missing)}; need call_id,label"
                )
            rows = []
            for line, row in enumerate(reader, start=2):
                raw = (row["label"] or "").strip().lower()
                if raw not in _TRUE | _FALSE:
                    raise ContractError(path, f"line {line}: label {row['label']!r} is not 1/0")
                if not (row["call_id"] or "").strip():
                    raise ContractError(path, f"line {line}: empty call_id")
                rows.append((row["call_id"].strip(), int(raw in _TRUE)))
    except FileNotFoundError:
        raise ContractError(path, "file not found") from None
    if not rows:
        raise ContractError(path, "no labelled calls")
    return rows


def load_calls(
    labels: list[tuple[str, int]], transcripts: Path | None, db: str | None
) -> tuple[list[tuple[Transcript, int]], list[str]]:
    """Labelled transcripts, and the call ids that had none."""
    store = None
    if transcripts is None:
        from pipeline.store import open_store

        store = open_store(db)
    calls, missing = [], []
    for call_id, label in labels:
        if store is not None:
            t = store.get_transcript(call_id)
        else:
            path = transcripts / f"{call_id}.json"
            t = Transcript.load(path) if path.exists() else None
        if t is None:
            missing.append(call_id)
        else:
            calls.append((t, label))
    return calls, missing


@click.group()
def train() -> None:
    """Retrain or recalibrate models from reviewer labels."""


@train.command("risk")
@click.option(
    "--labels",
    "labels_file",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV with columns call_id,label (1 = complaint / dissatisfied).",
)
@click.option(
    "--transcripts",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of <call_id>.json transcripts (default: read them from the store).",
)
@click.option("--db", default=None, help="Store URL (default: QA_DATABASE_URL).")
@click.option(
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where calibrations live (default: models/risk).",
)
@click.option("--min-calls", default=20, show_default=True, help="Refuse to fit on fewer calls.")
@click.option(
    "--synthetic",
    default=200,
    show_default=True,
    help="Synthetic calls fitted alongside (half as text chats); 0 = reviewer labels only.",
)
@click.option(
    "--label-weight", default=2.0, show_default=True, help="Weight of a reviewer-labelled call."
)
@click.option(
    "--l2", default=20.0, show_default=True, help="L2 pull of the weights towards the priors."
)
def risk(
    labels_file: Path,
    transcripts: Path | None,
    db: str | None,
    out_dir: Path | None,
    min_calls: int,
    synthetic: int,
    label_weight: float,
    l2: float,
) -> None:
    """Refit complaint-risk weights on reviewer-labelled (+ synthetic) calls; writes a new
    calibration version."""
    from pipeline.score.risk.calibrate import recalibrate
    from pipeline.score.risk.config import CALIBRATION_DIR, load_calibration

    try:
        labels = read_labels(labels_file)
        if transcripts is not None and not transcripts.is_dir():
            raise ContractError(transcripts, "not a folder")
        calls, missing = load_calls(labels, transcripts, db)
        if len(calls) < min_calls:
            raise CallqaError(
                f"{labels_file}: only {len(calls)} labelled calls with transcripts "
                f"({len(missing)} missing); need at least {min_calls}"
            )
        digest = hashlib.sha256(labels_file.read_bytes()).hexdigest()[:16]
        directory = out_dir or CALIBRATION_DIR
        previous = load_calibration("latest", directory)
        if previous.version == 0:  # an empty folder: compare with the calibration in force
            previous = load_calibration("latest")
        fitted_on = f"reviewer labels {labels_file.name} (sha256 {digest})"
        weights = [label_weight] * len(calls)
        if synthetic > 0:
            from pipeline.score.risk.synth import calibration_calls

            extra = calibration_calls(synthetic)
            calls = calls + extra
            weights += [1.0] * len(extra)
            fitted_on += f" + {len(extra)} synthetic calls (calib half)"
        path, report = recalibrate(
            calls,
            fitted_on,
            directory=directory,
            previous=previous,
            sample_weight=weights,
            l2=l2,
        )
    except (ContractError, ValueError, FileNotFoundError) as exc:
        raise CallqaError(str(exc)) from None
    click.echo(
        f"wrote {path} ({report['n']} calls, {report['positives']} positive; "
        f"AUC {report['auc']:.3f}, Brier {report.get('brier_before', float('nan')):.4f} "
        f"-> {report['brier']:.4f})"
    )
    if missing:
        click.echo(
            f"skipped {len(missing)} call(s) without a transcript: {', '.join(missing[:10])}",
            err=True,
        )
