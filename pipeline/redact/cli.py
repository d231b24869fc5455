"""``callqa redact T.json --out T2.json``: the transcript with personal data masked."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from pipeline.cli import CallqaError
from pipeline.schema import ContractError, Transcript


@click.command("redact")
@click.argument("transcript", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out", required=True, help="Redacted transcript JSON ('-': stdout).")
@click.option(
    "--language", default=None, help="Recogniser set (zh, en); default: the transcript's language."
)
@click.option(
    "--recognizers",
    "recognizer_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Recogniser YAML to use instead of the shipped sets (repeatable).",
)
def redact(
    transcript: Path, out: str, language: str | None, recognizer_files: tuple[Path, ...]
) -> None:
    """Mask IDs, phone and card numbers, e-mails, addresses and names in TRANSCRIPT."""
    from pipeline.redact import load_recognizers
    from pipeline.redact import redact as apply_redaction

    try:
        sets = [load_recognizers(p) for p in recognizer_files] or None
        t = Transcript.load(transcript)
        redacted = apply_redaction(t, language=language, recognizer_sets=sets)
    except ContractError as exc:
        raise CallqaError(str(exc)) from None
    except ValueError as exc:
        raise CallqaError(f"{transcript}: {exc}") from None
    text = redacted.to_json() + "\n"
    if out == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CallqaError(f"{out}: cannot write: {exc.strerror or exc}") from None
    counts = Counter(r.type for r in redacted.redactions or [])
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing found"
    click.echo(f"redact: {redacted.call_id}: {summary}", err=True)
