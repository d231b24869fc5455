"""Typed ASR output: segments with the scores the hallucination rules need and their words'
times, and the conversion from faster-whisper's segments (times on the call's timeline)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AsrWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class AsrSegment:
    """One Whisper segment with the scores the hallucination rules need."""

    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    words: list[AsrWord] = field(default_factory=list)
    channel: int | None = None


@dataclass
class ChannelResult:
    segments: list[AsrSegment]
    language: str
    language_probability: float
    speech_seconds: float


def asr_segment(s, channel: int | None) -> AsrSegment:
    return AsrSegment(
        start=float(s.start),
        end=float(s.end),
        text=s.text.strip(),
        avg_logprob=float(s.avg_logprob),
        no_speech_prob=float(s.no_speech_prob),
        compression_ratio=float(s.compression_ratio),
        words=[
            AsrWord(w.word, float(w.start), float(w.end), float(w.probability))
            for w in (s.words or [])
        ],
        channel=channel,
    )
