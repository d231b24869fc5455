"""Mono recordings end to end: diarization splits the speakers, roles come from the content.

Mono mix-downs of sample stereo calls (one with the agent on the left, one on the right)
must come back with the agent's scripted greeting and closing on the agent's side.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "samples" / "archive"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the mono mix-down"),
]


@pytest.mark.parametrize("call", ["c01-compliant.wav", "c08-agent-right.mp3"])
def test_mono_mixdown_gets_agent_and_customer_right(call, tmp_path):
    from pipeline.config import load_settings
    from pipeline.scripts_check import check_items, load_rubric
    from pipeline.transcribe import transcribe_call
    from pipeline.transcribe.diarize import mono_diarizer

    mono = tmp_path / "mono.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            str(ARCHIVE / call),
            "-ac",
            "1",
            "-ar",
            "8000",
            "-acodec",
            "pcm_mulaw",
            str(mono),
        ],
        check=True,
    )
    transcript = transcribe_call(
        mono, settings=load_settings(language="en"), diarizer=mono_diarizer("embedded")
    )
    roles = transcript.produced_by.roles
    assert roles.method == "diarization" and roles.confidence >= 0.6, roles
    agent = " ".join(u.text for u in transcript.utterances if u.speaker == "agent").lower()
    customer = " ".join(u.text for u in transcript.utterances if u.speaker == "customer").lower()
    assert "thank you for calling" in agent
    assert "thank you for calling" not in customer
    verdicts = {i.id: i.passed for i in check_items(transcript, load_rubric("en_telecom"))}
    assert verdicts["greeting"] is True and verdicts["farewell"] is True, verdicts
