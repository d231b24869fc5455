"""The ASR stage: every party channel of one call to typed segments, in the configured
decoding mode (batched: :mod:`pipeline.transcribe.batching`; sequential: faster-whisper's
own ``transcribe`` loop with the deterministic fallback).

What it owns is the choice of path and the sequential path; the model comes from
:mod:`pipeline.transcribe.model`, every decode setting from
:mod:`pipeline.transcribe.decode_config`, the output types from
:mod:`pipeline.transcribe.segments`.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pipeline.timing import StageTimer
from pipeline.transcribe.batching import CallSpeech, transcribe_batched
from pipeline.transcribe.decode_config import AsrConfig, FallbackConfig, better, passes
from pipeline.transcribe.segments import ChannelResult, asr_segment

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


def transcribe_parties(
    model: WhisperModel,
    parties: list[tuple[int | None, np.ndarray]],
    config: AsrConfig,
    language: str | None,
    timer=None,
    speech: CallSpeech | None = None,
) -> list[ChannelResult]:
    """ASR of every party channel of one call, in the configured decoding mode.

    ``batched``: the VAD speech chunks (up to ``chunk_length_s``) of all channels are decoded
    together, channel 0's chunks first, ``batch_size`` at a time: the batches depend on the
    call alone, never on what else runs. ``sequential``: each channel through faster-whisper's
    ``transcribe``. ``timer`` (a :class:`pipeline.timing.StageTimer`) collects ``vad`` and
    ``asr`` seconds. ``speech``: the call's VAD clips and encoder outputs found already
    (language detection's), reused by the batched decode.
    """
    timer = timer or StageTimer()
    if config.decoding == "sequential":
        with timer.stage("asr"):
            return [
                transcribe_channel(model, np.asarray(x), config, language, channel)
                for channel, x in parties
            ]
    return transcribe_batched(model, parties, config, language, timer, speech)


def _with_deterministic_fallback(model: WhisperModel, fb: FallbackConfig) -> WhisperModel:
    """A shallow copy of ``model`` whose per-window fallback is :class:`FallbackConfig`'s."""
    from faster_whisper import WhisperModel as _WhisperModel  # loads ctranslate2: after the pins

    original = _WhisperModel.generate_with_fallback

    def generate(encoder_output, prompt, tokenizer, options):
        options = replace(options, temperatures=[0.0])
        first = original(clone, encoder_output, prompt, tokenizer, options)
        a = (first[1], first[0].no_speech_prob, first[3], first)
        if fb.scheme == "none" or passes(*a[:3], fb):
            return first
        wider = replace(
            options,
            beam_size=fb.beam_size,
            repetition_penalty=fb.repetition_penalty,
            no_repeat_ngram_size=fb.no_repeat_ngram_size,
        )
        retry = original(clone, encoder_output, prompt, tokenizer, wider)
        return better(a, (retry[1], retry[0].no_speech_prob, retry[3], retry), fb)[3]

    clone = copy.copy(model)
    clone.generate_with_fallback = generate
    return clone


def transcribe_channel(
    model: WhisperModel,
    samples: np.ndarray,
    config: AsrConfig,
    language: str | None,
    channel: int | None = None,
) -> ChannelResult:
    """Run faster-whisper's sequential ``transcribe`` over one channel (16 kHz float32)."""
    fb = config.fallback
    segments, info = _with_deterministic_fallback(model, fb).transcribe(
        samples,
        language=language,
        beam_size=config.beam_size,
        temperature=config.temperature,
        compression_ratio_threshold=fb.compression_ratio_threshold,
        log_prob_threshold=fb.log_prob_threshold,
        no_speech_threshold=fb.no_speech_threshold,
        vad_filter=config.vad is not None,
        vad_parameters=(
            {
                **config.vad.model_dump(exclude={"rescue_threshold"}),
                "max_speech_duration_s": config.chunk_length_s,
            }
            if config.vad
            else None
        ),
        word_timestamps=config.word_timestamps,
        condition_on_previous_text=config.condition_on_previous_text,
        hotwords=config.hotwords,
        initial_prompt=config.initial_prompt,
    )
    out = [asr_segment(s, channel) for s in segments]  # the generator runs the decoding
    return ChannelResult(
        segments=out,
        language=info.language,
        language_probability=float(info.language_probability),
        speech_seconds=float(info.duration_after_vad),
    )
