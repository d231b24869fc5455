"""Which language a call is decoded in, and by which model.

Decided in this order, first that decides wins: an English-only model (``english_only``);
a language given for the call (the manifest's ``language`` column, ``--language``, or the
language of the form a routing rule chose before transcription); ``QA_LANGUAGE``
(``setting``); else detection (``detected``). Detection runs the multilingual model's
language identification (faster-whisper ``detect_language``) once per call, on a
:data:`DETECT_SPEECH_S`-second window of the parties' first speech shared between them,
among the deployment's languages (``QA_ASR_LANGUAGES``): one language per call, so the two
sides of a call are decoded alike and a customer's one-word "hello?" cannot turn a Mandarin
call English. English words spoken inside Mandarin are written as
Whisper hears them (no translation): the task is always ``transcribe``.

A call in English is decoded by ``QA_ASR_ENGLISH_MODEL`` (``tiny.en``) where one is set:
see the README for the measurement behind that default.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import Settings
from pipeline.schema import LanguageDecision
from pipeline.timing import StageTimer
from pipeline.transcribe.batching import _speech_clips
from pipeline.transcribe.decode_config import SAMPLE_RATE, AsrConfig
from pipeline.transcribe.model import get_model, is_english_only
from pipeline.transcribe.models import embedded_models

# Speech Whisper's language identification looks at (its window).
DETECT_SPEECH_S = 30.0
# Audio searched for that speech: a call's first two minutes hold plenty of both parties.
DETECT_AUDIO_S = 120.0

LanguageSource = str  # manifest, option, routing, setting


def whisper_language(code: str) -> str:
    """``code`` as a Whisper language (``zh-CN`` → ``zh``); ValueError when Whisper has none."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    lang = code.strip().lower().split("-")[0].split("_")[0]
    if lang not in _LANGUAGE_CODES:
        raise ValueError(f"unknown language {code!r}: use auto, zh, en or a Whisper code")
    return lang


def model_for(settings: Settings, language: str) -> str:
    """The model that decodes a call in ``language``: the English model for English."""
    if language == "en" and settings.asr_english_model:
        return settings.asr_english_model
    return settings.asr_model


def _english_only(name: str, settings: Settings) -> bool:
    """Whether model ``name`` knows only English (an embedded one without loading it)."""
    spec = embedded_models().get(name)
    if spec is not None:
        return spec.english_only
    return is_english_only(get_model(settings.model_copy(update={"asr_model": name})))


def _speech_head(samples: np.ndarray, config: AsrConfig) -> np.ndarray:
    """The party's first speech (VAD clips joined), at most DETECT_SPEECH_S seconds."""
    head = samples[: int(DETECT_AUDIO_S * SAMPLE_RATE)]
    limit = int(DETECT_SPEECH_S * SAMPLE_RATE)
    pieces, total = [], 0
    for clip in _speech_clips(head, config):
        piece = head[clip["start"] : clip["end"]][: limit - total]
        pieces.append(piece)
        total += len(piece)
        if total >= limit:
            break
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def detect_call_language(
    model, parties: list[tuple[int | None, np.ndarray]], config: AsrConfig, candidates: list[str]
) -> tuple[str, float | None, dict[str, float]]:
    """(language, probability, seconds of each party's speech listened to).

    One pass of Whisper's language identification over one 30-s window shared out between
    the parties' first speech (a party with less leaves its share to the others), so a call
    costs one encoder pass whatever its channels. Probabilities are restricted to
    ``candidates`` when given. Without speech: the first candidate (or ``en``), None.
    """
    heads = [
        ("mono" if channel is None else str(channel), _speech_head(np.asarray(x), config))
        for channel, x in parties
    ]
    heads = [(party, h) for party, h in heads if len(h) >= SAMPLE_RATE // 2]
    if not heads:
        return (candidates[0] if candidates else "en"), None, {}
    left = int(DETECT_SPEECH_S * SAMPLE_RATE)
    share: dict[str, np.ndarray] = {}
    for i, (party, head) in enumerate(sorted(heads, key=lambda ph: len(ph[1]))):
        share[party] = head[: left // (len(heads) - i)]
        left -= len(share[party])
    window = np.concatenate([share[party] for party, _h in heads])  # in channel order
    _lang, _prob, ranked = model.detect_language(audio=window)
    probs = {lang: float(p) for lang, p in ranked}
    if candidates:
        probs = {lang: probs.get(lang, 0.0) for lang in candidates}
    best = max(probs, key=probs.get)
    listened = {party: round(len(share[party]) / SAMPLE_RATE, 2) for party, _h in heads}
    return best, round(probs[best], 4), listened


def decide_language(
    settings: Settings,
    parties: list[tuple[int | None, np.ndarray]],
    config: AsrConfig,
    language: str | None = None,
    language_from: LanguageSource = "manifest",
    timer: StageTimer | None = None,
) -> LanguageDecision:
    """The call's :class:`LanguageDecision` (language, who decided, model, its sha256)."""
    detected = None
    probability: float | None = 1.0
    if _english_only(settings.asr_model, settings):
        lang, method = "en", "english_only"
    elif language and language.strip().lower() not in ("", "auto"):
        lang, method = whisper_language(language), language_from
    elif settings.language.strip().lower() not in ("", "auto"):
        lang, method = whisper_language(settings.language), "setting"
    else:
        candidates = [whisper_language(c) for c in config.languages]
        with (timer or StageTimer()).stage("asr"):
            main = get_model(settings)
            lang, probability, detected = detect_call_language(main, parties, config, candidates)
        method = "detected"
    model = settings.asr_model if method == "english_only" else model_for(settings, lang)
    return LanguageDecision(
        language=lang,
        probability=probability,
        method=method,
        detected=detected,
        model=model,
        model_sha256=config.models.get(model) if config.models else None,
    )
