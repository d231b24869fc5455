"""Audio in: decode what call recorders write, validate it, keep the channels apart.

One decoder (PyAV, the FFmpeg libraries faster-whisper already ships) reads every format
recorders produce: WAV (PCM 16-bit, G.711 mu-law / A-law), FLAC, MP3, OGG/Opus, M4A/AAC, at
8 kHz and up, mono or stereo. Stereo is never downmixed: on a dual-channel recording each
channel is one party. Bad input raises :class:`AudioError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

# Validation thresholds (keyword arguments of decode_audio; these are the defaults).
MIN_DURATION = 0.25  # seconds of audio below which a file is "too short"
SILENCE_PEAK = 10 ** (-50 / 20)  # -50 dBFS: a channel whose peak stays below is silent
SILENCE_RMS = 10 ** (-60 / 20)  # -60 dBFS: ... or whose RMS stays below
TRUNCATED_RATIO = 0.9  # decoded duration below this share of the header's: truncated
MAX_BAD_PACKETS = 0.05  # share of packets the decoder may reject before a file is corrupt


class AudioError(ValueError):
    """A recording that cannot be used; ``str`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded recording: float32 samples in [-1, 1], shape (n_channels, n_samples)."""

    channels: np.ndarray = field(repr=False)
    sample_rate: int
    source_sample_rate: int
    codec: str
    duration: float
    path: str
    sha256: str

    @property
    def n_channels(self) -> int:
        return int(self.channels.shape[0])

    def mono(self) -> np.ndarray:
        """The channels averaged (for a mono model input); the stored channels stay apart."""
        return self.channels[0] if self.n_channels == 1 else self.channels.mean(axis=0)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode_audio(
    path: str | Path,
    sample_rate: int = 16000,
    *,
    min_duration: float = MIN_DURATION,
    silence_peak: float = SILENCE_PEAK,
    silence_rms: float = SILENCE_RMS,
    max_seconds: float | None = None,
) -> DecodedAudio:
    """Decode ``path`` to float32 at ``sample_rate``, one row per channel, and validate it.

    Raises :class:`AudioError` for a missing, empty, non-audio, corrupt, truncated, too short
    or silent file, and for one longer than ``max_seconds`` (refused from its header before
    decoding, or as soon as the decoded audio passes the limit when the header says less).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.EOFError:
        raise AudioError(path, "truncated: the file ends inside its header") from None
    except av.error.FFmpegError as exc:
        if _looks_like_text(path):
            raise AudioError(path, "not audio: the file is text") from None
        raise AudioError(
            path, f"not audio, or its header is damaged: the decoder says {_why(exc)!r}"
        ) from None

    with container:
        if not container.streams.audio:
            raise AudioError(path, "no audio stream in the file")
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        source_rate = int(stream.rate or 0)
        n_channels = int(stream.channels or 0)
        if source_rate <= 0 or n_channels <= 0:
            raise AudioError(path, f"audio stream has no usable format ({codec})")
        declared = _declared_duration(container, stream)
        if max_seconds is not None and declared and declared > max_seconds:
            raise AudioError(path, _too_long(declared, max_seconds))
        samples, bad, total = _decode_stream(
            container, stream, n_channels, sample_rate, max_seconds, path, declared
        )

    decoded = samples.shape[1] / sample_rate
    if wav_declared := _wav_declared_duration(path, source_rate, n_channels, codec):
        declared = max(declared or 0.0, wav_declared)
    if declared and decoded < TRUNCATED_RATIO * declared:
        # A cut file loses its tail: at most the last, partial packet fails. More failures,
        # or nothing decodable at all, mean damaged data.
        if samples.shape[1] == 0:
            raise AudioError(
                path, f"corrupt: no decodable {codec} audio of the {declared:.2f} s declared"
            )
        if bad > 1:
            raise AudioError(
                path,
                f"corrupt: the {codec} decoder rejected {bad} of {total} packets "
                f"and decoded {decoded:.2f} s of the {declared:.2f} s the header declares",
            )
        raise AudioError(
            path, f"truncated: decoded {decoded:.2f} s of the {declared:.2f} s the header declares"
        )
    if bad > MAX_BAD_PACKETS * max(total, 1):
        raise AudioError(path, f"corrupt: the {codec} decoder rejected {bad} of {total} packets")
    if samples.shape[1] == 0:
        raise AudioError(path, f"no audio decoded from the {codec} stream")
    if decoded < min_duration:
        raise AudioError(path, f"too short: {decoded:.2f} s of audio (minimum {min_duration} s)")
    peak, rms = _levels(samples)
    if np.all((peak < silence_peak) | (rms < silence_rms)):
        loudest = 20 * np.log10(max(float(peak.max()), 1e-10))
        raise AudioError(path, f"silent: peak level {loudest:.0f} dBFS on every channel")

    return DecodedAudio(
        channels=samples,
        sample_rate=sample_rate,
        source_sample_rate=source_rate,
        codec=codec,
        duration=round(decoded, 3),
        path=str(path),
        sha256=file_sha256(path),
    )


def _levels(samples: np.ndarray, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Peak and RMS per channel, a block at a time (no whole-file temporary copies)."""
    peak = np.zeros(samples.shape[0])
    power = np.zeros(samples.shape[0])
    for start in range(0, samples.shape[1], block):
        part = samples[:, start : start + block].astype(np.float64)
        peak = np.maximum(peak, np.abs(part).max(axis=1))
        power += np.square(part).sum(axis=1)
    return peak, np.sqrt(power / max(samples.shape[1], 1))


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut by the 1 KiB read
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in text)


_PCM_BYTES = {"pcm_s16le": 2, "pcm_mulaw": 1, "pcm_alaw": 1, "pcm_u8": 1, "pcm_s24le": 3}


def _wav_declared_duration(path: Path, rate: int, n_channels: int, codec: str) -> float | None:
    """Seconds the RIFF ``data`` chunk declares (FFmpeg clamps it to the file size)."""
    width = _PCM_BYTES.get(codec)
    if width is None:
        return None
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = (
            head[offset : offset + 4],
            int.from_bytes(head[offset + 4 : offset + 8], "little"),
        )
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF):  # written while streaming: size unknown
                return None
            return size / (width * n_channels * rate)
        offset += 8 + size + (size & 1)
    return None


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _too_long(seconds: float, limit: float) -> str:
    return (
        f"too long: {seconds / 60:.1f} min of audio, more than the {limit / 60:.4g} min limit "
        f"(QA_MAX_AUDIO_MINUTES); split the recording or raise the limit"
    )


class _Samples:
    """Decoded frames written into one preallocated (channels, samples) float32 array.

    Sized from the header's duration, so a long call is held once, not as a list of frames
    plus their concatenation (twice the memory at the peak). Grows when the header says less.
    """

    def __init__(self, n_channels: int, capacity: int):
        self.data = np.zeros((n_channels, max(capacity, 1)), dtype=np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.size + n > self.data.shape[1]:
            grown = np.zeros(
                (self.data.shape[0], max(2 * self.data.shape[1], self.size + n)), np.float32
            )
            grown[:, : self.size] = self.data[:, : self.size]
            self.data = grown
        self.data[:, self.size : self.size + n] = block
        self.size += n

    def array(self) -> np.ndarray:
        """The samples (each channel row contiguous; no copy of the whole)."""
        return self.data[:, : self.size]


def _decode_stream(
    container,
    stream,
    n_channels: int,
    rate: int,
    max_seconds: float | None = None,
    path: Path | None = None,
    declared: float | None = None,
) -> tuple[np.ndarray, int, int]:
    """All frames resampled to planar float32 at ``rate``; (samples, bad packets, packets)."""
    # Unknown layouts ("1 channels") are common in G.711 WAV: name them by channel count.
    layout = {1: "mono", 2: "stereo"}.get(n_channels, stream.layout.name)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    samples = _Samples(n_channels, int((declared or 0) * rate) + rate)
    bad = total = 0
    for packet in container.demux(stream):
        total += packet.size > 0
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError):
            bad += 1
            continue
        for frame in frames:
            frame.pts = None  # resample by sample count; broken timestamps must not matter
            for out in resampler.resample(frame):
                samples.append(out.to_ndarray())
        if max_seconds is not None and samples.size > max_seconds * rate:
            raise AudioError(path, _too_long(samples.size / rate, max_seconds))
    for out in resampler.resample(None):
        samples.append(out.to_ndarray())
    return samples.array(), bad, total
