"""``callqa diarize`` (standard RTTM) and ``callqa agents enroll`` (agent voiceprints)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli import CallqaError


@click.command()
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rttm", "rttm_out", required=True, help="output RTTM file ('-' for stdout)")
@click.option(
    "--num-speakers", type=click.IntRange(1, 8), default=None, help="known number of speakers"
)
@click.option(
    "--backend",
    default=None,
    help="channel | embedded | pyannote (default: embedded; channel for stereo)",
)
def diarize(audio: Path, rttm_out: str, num_speakers: int | None, backend: str | None) -> None:
    """Who spoke when in AUDIO, written as standard RTTM."""
    from pipeline.audio import decode_audio
    from pipeline.transcribe.diarize import DEFAULT_MONO_BACKEND, get_diarizer

    try:
        name = backend or DEFAULT_MONO_BACKEND
        diarizer = get_diarizer(name)
        decoded = decode_audio(audio)
        samples = decoded.channels if name == "channel" else decoded.mono()
        result = diarizer(samples, 16000, num_speakers=num_speakers)
    except (ValueError, RuntimeError, OSError) as exc:
        raise CallqaError(f"{audio}: {exc}" if str(audio) not in str(exc) else str(exc)) from None
    text = result.to_rttm(audio.stem.replace(" ", "_") or "audio")
    if rttm_out == "-":
        sys.stdout.write(text)
    else:
        Path(rttm_out).parent.mkdir(parents=True, exist_ok=True)
        Path(rttm_out).write_text(text, encoding="utf-8")
        click.echo(
            f"{len(result.turns)} turns, {len(result.speakers)} speakers -> {rttm_out}", err=True
        )


@click.group()
def agents() -> None:
    """Agent voiceprints for telling agent from customer on mono calls."""


@agents.command("enroll")
@click.argument("agent_id")
@click.argument("audio", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dir",
    "directory",
    default=None,
    help="voiceprint folder (default $QA_VOICEPRINTS or var/voiceprints)",
)
def enroll(agent_id: str, audio: tuple[Path, ...], directory: str | None) -> None:
    """Store AGENT_ID's voiceprint: the mean speaker embedding of AUDIO files of that agent alone."""
    from pipeline.transcribe.diarize.voiceprints import enroll as do_enroll

    try:
        out = do_enroll(agent_id, list(audio), directory)
    except (ValueError, RuntimeError, OSError) as exc:
        raise CallqaError(str(exc)) from None
    click.echo(f"enrolled {agent_id} -> {out}", err=True)
