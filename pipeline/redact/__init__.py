"""The redact stage: personal data found in transcripts (detection) and masked (action).

>>> findings = detect(transcript)            # list[PiiFinding], each with evidence
>>> clean = redact(transcript, findings)     # typed masks, ``redactions`` with times
>>> audio_mask.mask_speech(samples, sr, audio_mask.redaction_intervals(clean))  # tone over the speech

Recognisers are YAML data (``recognizers/zh.yaml``, ``en.yaml``) run by one engine. Besides
pattern recognisers, a set's ``dialogue`` section names the agent's requests (account,
card, ID, phone, PIN, password, code, date of birth, address): the numerals that answer one
are masked whatever their length (:mod:`pipeline.redact.dialogue`). ``recognizer_sha256()``
is the hash of the recogniser configuration in use (recorded with scores).
"""

from pipeline.redact import audio_mask
from pipeline.redact.action import redact
from pipeline.redact.engine import detect
from pipeline.redact.language import sets_for_language
from pipeline.redact.models import PiiFinding, Redaction, RedactionProvenance
from pipeline.redact.recognizers import (
    RECOGNIZERS_DIR,
    RecognizerError,
    RecognizerSet,
    default_set,
    load_recognizers,
    recognizer_sha256,
)

__all__ = [
    "RECOGNIZERS_DIR",
    "PiiFinding",
    "Redaction",
    "RedactionProvenance",
    "RecognizerError",
    "RecognizerSet",
    "audio_mask",
    "default_set",
    "detect",
    "load_recognizers",
    "recognizer_sha256",
    "redact",
    "sets_for_language",
]
