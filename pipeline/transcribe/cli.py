"""``callqa transcribe AUDIO --out T.json [--model M] [--language L] [--agent-channel N]``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.cli import CallqaError


@click.command("transcribe")
@click.argument("audio", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out", "out", default="-", show_default=True, help="Transcript JSON path; - for stdout."
)
@click.option(
    "--model", default=None, help="faster-whisper model directory or name (QA_ASR_MODEL)."
)
@click.option("--language", default=None, help="zh, en or auto (QA_LANGUAGE).")
@click.option(
    "--agent-channel",
    type=click.IntRange(min=0),
    default=None,
    help="Channel of the agent on stereo audio (0 = left); default: decided from the content.",
)
@click.option("--call-id", default=None, help="Call id; default: the audio file's stem.")
@click.option(
    "--diarizer",
    default=None,
    help="Diarization backend for mono audio: embedded (default), pyannote; 'none' to skip.",
)
def transcribe(
    audio: Path,
    out: str,
    model: str | None,
    language: str | None,
    agent_channel: int | None,
    call_id: str | None,
    diarizer: str | None,
) -> None:
    """Transcribe AUDIO and tell agent from customer → Transcript JSON."""
    from pipeline.config import load_settings
    from pipeline.transcribe.call import transcribe_call

    try:
        # --language is given to the call (recorded as "option"); QA_LANGUAGE stays the setting
        settings = load_settings(asr_model=model, diarizer=diarizer)
        mono = None
        if settings.diarizer != "none":
            from pipeline.transcribe.diarize import mono_diarizer

            mono = mono_diarizer(settings.diarizer)
        transcript = transcribe_call(
            audio,
            call_id=call_id,
            settings=settings,
            agent_channel=agent_channel,
            agent_channel_from="option",
            language=language,
            language_from="option",
            diarizer=mono,
        )
    except ValueError as exc:  # AudioError, ModelError, RulesError, bad settings
        raise CallqaError(" ".join(str(exc).split())) from None
    text = transcript.to_json() + "\n"
    if out == "-":
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CallqaError(f"{out}: cannot write: {exc.strerror or exc}") from None
