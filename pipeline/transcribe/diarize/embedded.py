"""The offline default diarizer for mono calls: Silero VAD + GE2E window embeddings +
clustering + overlap-aware frame resegmentation + minimum-duration smoothing.

1. Silero VAD (the ONNX model faster-whisper ships) finds speech regions.
2. Each region is cut into sliding windows (a region shorter than a window is one window
   of its own, so a short reply is embedded from its own audio, not its neighbours').
3. Windows of at least ``min_cluster_window`` seconds are clustered (clustering.py); every
   window is then scored against the speaker centroids.
4. Each 20 ms frame averages the scores of the windows covering it; the best speaker
   wins, and a second speaker whose score is within ``overlap_margin`` of the best (and
   above ``overlap_min_score``) is marked as overlapping speech.
5. smoothing.py removes in-region flickers and joins short same-speaker gaps.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pipeline.transcribe.diarize import encoder
from pipeline.transcribe.diarize.base import Diarization, Diarizer, Hyperparameters, check_samples
from pipeline.transcribe.diarize.clustering import cluster_speakers
from pipeline.transcribe.diarize.smoothing import frames_to_turns, smooth_turns

SR = 16000
FRAME_S = 0.02


class EmbeddedParams(Hyperparameters):
    # voice activity (Silero VAD)
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence: float = Field(0.15, ge=0, description="seconds of silence that end a region")
    vad_pad: float = Field(0.05, ge=0, description="seconds added each side of a region")
    vad_min_speech: float = Field(0.1, ge=0)
    # embeddings
    window: float = Field(1.5, gt=0.2, le=3.0, description="embedding window, seconds")
    step: float = Field(0.25, gt=0, le=3.0)
    min_cluster_window: float = Field(0.8, ge=0, description="shorter windows are not clustered")
    # clustering
    min_speakers: int = Field(1, ge=1)
    max_speakers: int = Field(4, ge=1, le=8)
    merge_threshold: float = Field(
        0.9, gt=0, lt=1, description="raw centroid cosine above which two clusters are one speaker"
    )
    min_cluster_speech: float = Field(
        2.0, ge=0, description="seconds a cluster needs to count as a speaker"
    )
    # resegmentation
    overlap_margin: float = Field(0.0, ge=0, description="0 disables overlapped-speech labelling")
    overlap_min_score: float = Field(0.2, ge=-1, le=1)
    # smoothing
    min_duration_on: float = Field(0.5, ge=0)
    min_duration_off: float = Field(0.3, ge=0)
    threads: int = Field(1, ge=1, description="torch threads for the encoder")


class EmbeddedDiarizer(Diarizer):
    name = "embedded"
    libraries = ("faster-whisper", "onnxruntime", "resemblyzer", "torch", "numpy")
    Params = EmbeddedParams

    def speech_regions(self, wav: np.ndarray) -> list[tuple[float, float]]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        p = self.params
        opts = VadOptions(
            threshold=p.vad_threshold,
            min_silence_duration_ms=int(p.vad_min_silence * 1000),
            speech_pad_ms=int(p.vad_pad * 1000),
            min_speech_duration_ms=int(p.vad_min_speech * 1000),
        )
        return [(s["start"] / SR, s["end"] / SR) for s in get_speech_timestamps(wav, opts)]

    def windows(self, regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
        p = self.params
        out = []
        for a, b in regions:
            if b - a <= p.window:
                out.append((a, b))
                continue
            starts = list(np.arange(a, b - p.window, p.step)) + [b - p.window]
            out.extend((s, s + p.window) for s in starts)
        return out

    def __call__(
        self, samples: np.ndarray, sample_rate: int = 16000, num_speakers: int | None = None
    ) -> Diarization:
        import torch

        p = self.params
        wav = check_samples(samples, sample_rate)
        if num_speakers is not None and not 1 <= num_speakers <= 8:
            raise ValueError(f"num_speakers must be between 1 and 8, got {num_speakers}")
        duration = len(wav) / SR
        prov = self.provenance({"vad": "silero (faster-whisper)", "embedding": encoder.MODEL_ID})
        regions = self.speech_regions(wav)
        if not regions:
            return Diarization(turns=[], duration=duration, produced_by=prov)

        speech = np.concatenate([wav[int(a * SR) : int(b * SR)] for a, b in regions])
        norm = encoder.normalize_volume(wav, float(np.sqrt(np.mean(speech**2)) + 1e-12))
        wins = self.windows(regions)
        previous = torch.get_num_threads()
        torch.set_num_threads(p.threads)  # more threads thrash on shared CPUs
        try:
            emb = encoder.embed_segments(norm, [(int(a * SR), int(b * SR)) for a, b in wins])
        finally:
            torch.set_num_threads(previous)

        lengths = np.array([b - a for a, b in wins])
        usable = lengths >= min(p.min_cluster_window, lengths.max())
        step_weight = np.minimum(lengths, p.step)[usable]
        labels_u, report = cluster_speakers(
            emb[usable],
            step_weight,
            num_speakers=num_speakers,
            min_speakers=p.min_speakers,
            max_speakers=max(p.max_speakers, p.min_speakers),
            merge_threshold=p.merge_threshold,
            min_cluster_weight=p.min_cluster_speech,
        )
        k = int(labels_u.max()) + 1
        mean = emb[usable].mean(axis=0)
        centred = emb - mean
        centred /= np.linalg.norm(centred, axis=1, keepdims=True) + 1e-9
        cents = np.stack([centred[usable][labels_u == i].mean(axis=0) for i in range(k)])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-9
        scores = centred @ cents.T  # (n_windows, k)

        n_frames = int(np.ceil(duration / FRAME_S))
        total = np.zeros((n_frames, k))
        count = np.zeros(n_frames)
        for (a, b), s in zip(wins, scores, strict=True):
            fa, fb = int(a / FRAME_S), max(int(a / FRAME_S) + 1, int(b / FRAME_S))
            total[fa:fb] += s
            count[fa:fb] += 1
        frame_labels: list[tuple[int, ...]] = []
        for f in range(n_frames):
            if count[f] == 0:
                frame_labels.append(())
                continue
            s = total[f] / count[f]
            order = np.argsort(-s)
            active = [int(order[0])]
            if (
                p.overlap_margin > 0
                and k > 1
                and s[order[1]] >= p.overlap_min_score
                and s[order[0]] - s[order[1]] <= p.overlap_margin
            ):
                active.append(int(order[1]))
            frame_labels.append(tuple(active))

        # name speakers by first appearance: SPEAKER_00, SPEAKER_01, ...
        raw_names = [f"_{i}" for i in range(k)]
        turns = frames_to_turns(frame_labels, FRAME_S, raw_names)
        turns = smooth_turns(
            turns, regions, min_duration_on=p.min_duration_on, min_duration_off=p.min_duration_off
        )
        first = {}
        for t in turns:
            first.setdefault(t.speaker, len(first))
        rename = {old: f"SPEAKER_{i:02d}" for old, i in first.items()}
        turns = [
            t.model_copy(update={"speaker": rename[t.speaker], "end": min(t.end, duration)})
            for t in turns
        ]

        raw_centroids = {}
        for i in range(k):
            name = rename.get(f"_{i}")
            if name is not None:
                c = emb[usable][labels_u == i].mean(axis=0)
                raw_centroids[name] = (c / (np.linalg.norm(c) + 1e-9)).round(5).tolist()
        prov.details["clustering"] = report
        return Diarization(
            turns=turns, duration=duration, produced_by=prov, embeddings=raw_centroids
        )
