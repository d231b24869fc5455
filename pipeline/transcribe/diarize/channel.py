"""The ``channel`` backend: stereo recordings with one speaker per channel.

Each channel gets its own voice-activity regions (Silero VAD); the label is the channel
(``CH0``, ``CH1``, ...). Cross-talk leaking into the other channel is kept out by
requiring a channel to be ``dominance_db`` louder than the others over a region.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pipeline.transcribe.diarize.base import Diarization, Diarizer, Hyperparameters, Turn
from pipeline.transcribe.diarize.smoothing import merge_gaps

SR = 16000


class ChannelParams(Hyperparameters):
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence: float = Field(0.15, ge=0)
    vad_pad: float = Field(0.05, ge=0)
    dominance_db: float = Field(
        6.0, ge=0, description="how much louder a channel must be than the others"
    )
    min_duration_off: float = Field(0.3, ge=0)


class ChannelDiarizer(Diarizer):
    name = "channel"
    libraries = ("faster-whisper", "onnxruntime")
    Params = ChannelParams

    def __call__(
        self, samples: np.ndarray, sample_rate: int = 16000, num_speakers: int | None = None
    ) -> Diarization:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        arr = np.asarray(samples, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(
                f"the channel backend needs (channels, samples), got shape {arr.shape}"
            )
        if sample_rate != SR:
            raise ValueError(f"expected 16 kHz samples, got {sample_rate} Hz; resample first")
        p = self.params
        opts = VadOptions(
            threshold=p.vad_threshold,
            min_silence_duration_ms=int(p.vad_min_silence * 1000),
            speech_pad_ms=int(p.vad_pad * 1000),
        )
        turns = []
        for ch, wav in enumerate(arr):
            for seg in get_speech_timestamps(wav, opts):
                a, b = seg["start"], seg["end"]
                own = float(np.sqrt(np.mean(wav[a:b] ** 2)) + 1e-9)
                others = [
                    float(np.sqrt(np.mean(o[a:b] ** 2)) + 1e-9)
                    for j, o in enumerate(arr)
                    if j != ch
                ]
                if others and 20 * np.log10(own / max(others)) < -p.dominance_db:
                    continue  # this channel only hears the other side's leak
                turns.append(Turn(start=a / SR, end=b / SR, speaker=f"CH{ch}"))
        turns = merge_gaps(turns, p.min_duration_off)
        return Diarization(
            turns=sorted(turns, key=lambda t: t.start),
            duration=arr.shape[1] / SR,
            produced_by=self.provenance({"vad": "silero (faster-whisper)"}),
        )
