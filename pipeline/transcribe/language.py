"""Which language a call is decoded in, and by which model.

Decided in this order, first that decides wins: an English-only model (``english_only``);
a language given for the call (the manifest's ``language`` column, ``--language``, or the
language of the form a routing rule chose before transcription); ``QA_LANGUAGE``
(``setting``); else detection (``detected``). Detection runs the multilingual model's
language identification once per call, on one of the decode's windows: of those holding a
party's first chunk, the one with the most speech (its encoder output is then decoded, not
encoded again), among the deployment's languages (``QA_ASR_LANGUAGES``): one language per call, so the two sides of a
call are decoded alike and a customer's one-word "hello?" cannot turn a Mandarin call
English. English words spoken inside Mandarin are written as
Whisper hears them (no translation): the task is always ``transcribe``.

A call in English is decoded by ``QA_ASR_ENGLISH_MODEL`` (``tiny.en``) where one is set:
see the README for the measurement behind that default.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import Settings
from pipeline.schema import LanguageDecision
from pipeline.timing import StageTimer
from pipeline.transcribe.batching import CallSpeech, _Windows
from pipeline.transcribe.decode_config import AsrConfig
from pipeline.transcribe.model import get_model, is_english_only
from pipeline.transcribe.models import embedded_models

# A party's first chunk with less speech than this is not listened to.
MIN_SPEECH_S = 0.5

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


def detect_call_language(
    model, speech: CallSpeech, config: AsrConfig, candidates: list[str]
) -> tuple[str, float | None, dict[str, float]]:
    """(language, probability, seconds of each party's speech listened to).

    Whisper's language identification over one decode window: of those holding a party's
    first chunk, the one with the most speech (with shared windows, both parties' first
    speech), so a party's one-word "hello?" cannot decide the call. Its encoder output is
    kept in ``speech`` for the decode, which then does not encode that window again.
    Probabilities are restricted to ``candidates`` when given. Without speech: the first
    candidate (or ``en``), None.
    """
    metas = speech.chunks(config)

    def seconds(window) -> float:
        return sum(metas[p][k]["duration"] for p, k in window)

    # the windows holding a party's first chunk; the one with the most speech is listened to
    firsts = [w for w in speech.windows(config) if any(k == 0 for _p, k in w)]
    if not firsts or seconds(max(firsts, key=seconds)) < MIN_SPEECH_S:
        return (candidates[0] if candidates else "en"), None, {}
    window = max(firsts, key=seconds)
    from faster_whisper.audio import pad_or_trim

    features = _Windows(model, speech.samples, metas).features(window)
    encoder_output = model.encode(pad_or_trim(features))
    ranked = model.model.detect_language(encoder_output)[0]
    if encoder_output.device == "cpu":
        key = (id(model), speech.key(config), window)
        speech.encoded[key] = np.asarray(encoder_output)[0].copy()
    probs = {token[2:-2]: float(p) for token, p in ranked}
    if candidates:
        probs = {lang: probs.get(lang, 0.0) for lang in candidates}
    best = max(probs, key=probs.get)
    listened: dict[str, float] = {}
    for p, k in window:
        name = "mono" if speech.channels[p] is None else str(speech.channels[p])
        listened[name] = round(listened.get(name, 0.0) + metas[p][k]["duration"], 2)
    return best, round(probs[best], 4), listened


def decide_language(
    settings: Settings,
    parties: list[tuple[int | None, np.ndarray]],
    config: AsrConfig,
    language: str | None = None,
    language_from: LanguageSource = "manifest",
    timer: StageTimer | None = None,
    speech: CallSpeech | None = None,
) -> LanguageDecision:
    """The call's :class:`LanguageDecision` (language, who decided, model, its sha256).

    ``speech``: the call's :class:`CallSpeech`, shared with the decode."""
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
        timer = timer or StageTimer()
        speech = speech or CallSpeech(parties)
        detection = config.for_model(settings.asr_model)  # the chunks that model decodes
        speech.clips(detection, timer)
        with timer.stage("asr"):
            main = get_model(settings)
            lang, probability, detected = detect_call_language(main, speech, detection, candidates)
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
