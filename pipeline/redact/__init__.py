"""The redact stage: personal data found in transcripts (detection) and masked (action).

>>> findings = detect(transcript)            # list[PiiFinding], each with evidence
>>> clean = redact(transcript, findings)     # typed masks, ``redactions`` with times
>>> audio.beep(samples, sr, [(r["start"], r["end"]) for r in clean.redactions])

Recognisers are YAML data (``recognizers/zh.yaml``, ``en.yaml``) run by one engine.
"""

from pipeline.redact import audio
from pipeline.redact.action import redact
from pipeline.redact.engine import detect
from pipeline.redact.models import PiiFinding, Redaction, RedactionProvenance
from pipeline.redact.recognizers import (
    RECOGNIZERS_DIR,
    RecognizerError,
    RecognizerSet,
    default_set,
    load_recognizers,
    recognizer_sha256,
    sets_for_language,
)

__all__ = [
    "RECOGNIZERS_DIR",
    "PiiFinding",
    "Redaction",
    "RedactionProvenance",
    "RecognizerError",
    "RecognizerSet",
    "audio",
    "default_set",
    "detect",
    "load_recognizers",
    "recognizer_sha256",
    "redact",
    "sets_for_language",
]
