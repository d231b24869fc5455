"""Enrolled agent voiceprints: one mean speaker embedding per agent, as JSON files.

Stored under ``$QA_VOICEPRINTS`` (default ``var/voiceprints/``) as ``<AGENT_ID>.json``
with the encoder that produced it, so a voiceprint is only compared with embeddings of
the same model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from pipeline.schema import ContractError

DEFAULT_DIR = Path("var/voiceprints")
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Voiceprint(BaseModel):
    agent_id: str
    model: str
    embedding: list[float]
    sources: list[str] = Field(default_factory=list)
    speech_seconds: float = 0.0
    created_at: str = ""


def voiceprint_dir(directory: str | Path | None = None) -> Path:
    from pipeline.config import load_settings

    return Path(directory or load_settings().voiceprints or DEFAULT_DIR)


def _check_id(agent_id: str) -> str:
    if not _AGENT_ID.match(agent_id):
        raise ValueError(
            f"invalid agent id {agent_id!r}: use letters, digits, '_', '-', '.' (max 64)"
        )
    return agent_id


def enroll(
    agent_id: str, audio_files: list[str | Path], directory: str | Path | None = None
) -> Path:
    """Embed the speech of each file (mono mix) and store their mean as the agent's voiceprint."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from pipeline.audio import decode_audio
    from pipeline.transcribe.diarize import encoder

    _check_id(agent_id)
    if not audio_files:
        raise ValueError("enrolment needs at least one audio file")
    embeddings, seconds = [], 0.0
    for path in audio_files:
        wav = decode_audio(path).mono()
        regions = get_speech_timestamps(
            wav, VadOptions(min_silence_duration_ms=300, speech_pad_ms=50)
        )
        if not regions:
            raise ValueError(f"{path}: no speech found to enrol")
        speech = np.concatenate([wav[r["start"] : r["end"]] for r in regions])
        seconds += len(speech) / 16000
        embeddings.append(encoder.embed_waveform(speech))
    mean = np.mean(embeddings, axis=0)
    mean /= np.linalg.norm(mean) + 1e-9
    out_dir = voiceprint_dir(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    vp = Voiceprint(
        agent_id=agent_id,
        model=encoder.MODEL_ID,
        embedding=mean.round(6).tolist(),
        sources=[str(p) for p in audio_files],
        speech_seconds=round(seconds, 2),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out = out_dir / f"{agent_id}.json"
    out.write_text(vp.model_dump_json(indent=2), encoding="utf-8")
    return out


def load_voiceprints(directory: str | Path | None = None) -> dict[str, Voiceprint]:
    """All enrolled voiceprints by agent id; a malformed file is an error naming it."""
    out = {}
    d = voiceprint_dir(directory)
    if not d.is_dir():
        return out
    for path in sorted(d.glob("*.json")):
        try:
            vp = Voiceprint.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError) as exc:
            raise ContractError(path, f"not a voiceprint: {exc}") from None
        out[vp.agent_id] = vp
    return out
