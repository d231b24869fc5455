"""Speaker embeddings from the GE2E encoder that the PyPI package Resemblyzer ships.

Only the weights file ``resemblyzer/pretrained.pt`` is used: importing ``resemblyzer``
itself pulls webrtcvad and librosa, so the network (3-layer LSTM, 256 units) and its mel
features (16 kHz, 40 mels, 25 ms window, 10 ms hop, power spectrum, Slaney mel scale, as
librosa computes them) are rebuilt here with torch and numpy.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
TARGET_DBFS = -30.0
MODEL_ID = "resemblyzer-0.1.4/pretrained.pt (GE2E LSTM 3x256)"

_lock = threading.Lock()


def weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the speaker encoder weights come from the resemblyzer package: "
            "install it with `pip install resemblyzer --no-deps`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.exists():
        raise RuntimeError(f"speaker encoder weights not found at {path}")
    return path


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) with htk=False, norm='slaney'."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log_region = f >= 1000.0
        return np.where(
            log_region, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27), mel
        )

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        f = m * (200.0 / 3)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27) * (m - 15.0)), f)

    fftfreqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """Mel power spectrogram, shape (n_frames, 40); frame i is centred on sample i*160."""
    pad = N_FFT // 2
    padded = np.pad(wav.astype(np.float32), (pad, pad), mode="constant")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    spec = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    return (spec.astype(np.float32) @ _mel_filters().T).astype(np.float32)


def normalize_volume(wav: np.ndarray, speech_rms: float | None = None) -> np.ndarray:
    """Raise (never lower) the level to -30 dBFS, as Resemblyzer's preprocessing does."""
    rms = speech_rms if speech_rms is not None else float(np.sqrt(np.mean(wav**2)) + 1e-12)
    change = TARGET_DBFS - 20 * np.log10(max(rms, 1e-9))
    return wav * (10 ** (change / 20)) if change > 0 else wav


class _Encoder:
    def __init__(self, path: Path):
        import torch
        from torch import nn

        self.torch = torch
        state = torch.load(path, map_location="cpu", weights_only=False)["model_state"]
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.linear.eval()

    def embed(self, mels: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """L2-normed embeddings of variable-length mel segments, shape (n, 256)."""
        torch = self.torch
        from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

        out = np.zeros((len(mels), 256), dtype=np.float32)
        order = np.argsort([-len(m) for m in mels])
        with _lock, torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                seqs = [torch.from_numpy(np.ascontiguousarray(mels[i])) for i in idx]
                lengths = torch.tensor([len(s) for s in seqs])
                packed = pack_padded_sequence(
                    pad_sequence(seqs, batch_first=True), lengths, batch_first=True
                )
                _, (hidden, _) = self.lstm(packed)
                raw = torch.relu(self.linear(hidden[-1]))
                emb = raw / torch.clamp(torch.norm(raw, dim=1, keepdim=True), min=1e-9)
                out[idx] = emb.numpy()
        return out


@lru_cache(maxsize=1)
def get_encoder() -> _Encoder:
    """The speaker encoder, loaded once per process."""
    return _Encoder(weights_path())


def embed_segments(wav: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    """One embedding per ``(start_sample, end_sample)`` segment of a normalised waveform."""
    mel = mel_frames(wav)
    mels = []
    for s, e in segments:
        a, b = s // HOP, max(s // HOP + 1, e // HOP)
        mels.append(mel[a:b])
    if not mels:
        return np.zeros((0, 256), dtype=np.float32)
    return get_encoder().embed(mels)


def embed_waveform(wav: np.ndarray, window_s: float = 1.6, step_s: float = 0.8) -> np.ndarray:
    """Mean L2-normed embedding of a whole (speech-only) waveform, as for enrolment."""
    wav = normalize_volume(wav)
    win, step = int(window_s * SAMPLE_RATE), int(step_s * SAMPLE_RATE)
    starts = range(0, max(1, len(wav) - win + 1), step)
    emb = embed_segments(wav, [(s, min(len(wav), s + win)) for s in starts])
    mean = emb.mean(axis=0)
    return mean / (np.linalg.norm(mean) + 1e-9)
