"""Audio in: decode what call recorders write, validate it, keep the channels apart.

One decoder (PyAV, the FFmpeg libraries faster-whisper already ships) reads every format
recorders produce: WAV (PCM 16-bit, G.711 mu-law / A-law), FLAC, MP3, OGG/Opus, M4A/AAC, at
8 kHz and up, mono or stereo. Stereo is never downmixed: on a dual-channel recording each
channel is one party. Bad input raises :class:`AudioError` naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
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
# What a call recording's header may declare (anything else is refused before decoding).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 48_000
MAX_CHANNELS = 16  # beyond stereo, the manifest names the two parties' channels
SAMPLE_FORMATS = frozenset(
    {"u8", "s16", "s32", "flt", "dbl", "u8p", "s16p", "s32p", "fltp", "dblp"}
)
# No codec recorders use stores speech in under 100 bytes a second (AMR-NB at its lowest
# rate needs ~600): a header declaring more seconds than size / 100 is lying.
MIN_BYTES_PER_SECOND = 100


class AudioError(ValueError):
    """A recording that cannot be used; ``str`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SpooledChannel:
    """One channel's float32 samples in a temporary file, read a range at a time.

    What a long recording is decoded into (``decode_audio(spool_above_s=...)``): slicing
    ``channel[a:b]`` reads those samples (a new array); ``len`` is the sample count. Nothing
    holds the whole channel in memory unless ``np.asarray`` asks for it.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, fh, n_samples: int):
        self._fh, self._n = fh, n_samples

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int]:
        return (self._n,)

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a spooled channel is read by contiguous slices only")
        start, stop, _ = key.indices(self._n)
        if stop <= start:
            return np.zeros(0, np.float32)
        size = self.dtype.itemsize
        raw = os.pread(self._fh.fileno(), (stop - start) * size, start * size)
        return np.frombuffer(raw, dtype=np.float32).copy()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[0 : self._n]
        return whole if dtype is None else whole.astype(dtype)


class SpooledChannels:
    """The channels of a spooled recording: ``[i]`` is a :class:`SpooledChannel`."""

    def __init__(self, channels: list[SpooledChannel]):
        self._channels = channels

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self._channels), len(self._channels[0]))

    def __len__(self) -> int:
        return len(self._channels)

    def __getitem__(self, index: int) -> SpooledChannel:
        return self._channels[index]

    def __iter__(self):
        return iter(self._channels)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.stack([np.asarray(c, dtype=dtype) for c in self._channels])


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded recording: float32 samples in [-1, 1], shape (n_channels, n_samples).

    ``channels`` is an array, or :class:`SpooledChannels` (read by slices from temporary
    files) for a recording longer than ``decode_audio``'s ``spool_above_s``.
    ``channel_correlation``: of the two channels of a stereo file (1.0: one signal twice).
    """

    channels: np.ndarray | SpooledChannels = field(repr=False)
    sample_rate: int
    source_sample_rate: int
    codec: str
    duration: float
    path: str
    sha256: str
    channel_correlation: float | None = None

    @property
    def n_channels(self) -> int:
        return int(self.channels.shape[0])

    @property
    def spooled(self) -> bool:
        return isinstance(self.channels, SpooledChannels)

    def mono(self) -> np.ndarray:
        """The channels averaged (for a mono model input); the stored channels stay apart."""
        channels = np.asarray(self.channels)
        return channels[0] if self.n_channels == 1 else channels.mean(axis=0)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_problem(
    rate: int, channels: int, sample_format: str | None, declared_s: float | None, size: int
) -> str | None:
    """Why a recording's header is not one of a call (checked before decoding), or None:
    sample rate outside 8-48 kHz, more channels than :data:`MAX_CHANNELS`, a sample format
    PCM decoders do not give, or more seconds declared than the file's size can hold."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return (
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE // 1000}-"
            f"{MAX_SAMPLE_RATE // 1000} kHz; not a call recording"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        return f"{channels} audio channels; at most {MAX_CHANNELS} are supported"
    if sample_format is not None and sample_format not in SAMPLE_FORMATS:
        return f"sample format {sample_format!r} is not supported"
    if declared_s is not None and declared_s > max(size, 1) / MIN_BYTES_PER_SECOND:
        return (
            f"the header declares {declared_s:.0f} s of audio in {size} bytes; "
            "not possible, the header is damaged"
        )
    return None


def decode_audio(
    path: str | Path,
    sample_rate: int = 16000,
    *,
    min_duration: float = MIN_DURATION,
    silence_peak: float = SILENCE_PEAK,
    silence_rms: float = SILENCE_RMS,
    max_seconds: float | None = None,
    spool_above_s: float | None = None,
    sha256: str | None = None,
    read_from: str | Path | None = None,
) -> DecodedAudio:
    """Decode ``path`` to float32 at ``sample_rate``, one row per channel, and validate it.

    A recording longer than ``spool_above_s`` seconds is written to temporary files as it
    decodes (:class:`SpooledChannels`) instead of being held in memory: a long call's memory
    stays that of a short one.

    Raises :class:`AudioError` for a missing, empty, non-audio, corrupt, truncated, too short
    or silent file, and for one longer than ``max_seconds`` (refused from its header before
    decoding, or as soon as the decoded audio passes the limit when the header says less).
    ``sha256``: the file's, when the caller hashed it already (the file is not read again).
    ``read_from``: where to read the file from when that is not ``path`` (the call's open
    descriptor, :attr:`pipeline.source.Source.fd_path`); ``path`` still names it.
    """
    path = Path(path)
    src = Path(read_from) if read_from is not None else path
    if not src.exists():
        raise AudioError(path, "file not found")
    if not src.is_file():
        raise AudioError(path, "not a regular file")
    size = src.stat().st_size
    if size == 0:
        raise AudioError(path, "file is empty (0 bytes)")

    try:
        container = av.open(str(src), metadata_errors="ignore")
    except av.error.EOFError:
        raise AudioError(path, "truncated: the file ends inside its header") from None
    except av.error.FFmpegError as exc:
        if _looks_like_text(src):
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
        problem = header_problem(
            source_rate, n_channels, stream.format.name if stream.format else None,
            declared, size,
        )  # fmt: skip
        if problem:
            raise AudioError(path, problem)
        if max_seconds is not None and declared and declared > max_seconds:
            raise AudioError(path, _too_long(declared, max_seconds))
        store, bad, total = _decode_stream(
            container, stream, n_channels, sample_rate, max_seconds, path, declared, spool_above_s
        )

    samples = store.array()
    decoded = store.size / sample_rate
    if wav_declared := _wav_declared_duration(src, source_rate, n_channels, codec):
        declared = max(declared or 0.0, wav_declared)
    if declared and decoded < TRUNCATED_RATIO * declared:
        # A cut file loses its tail: at most the last, partial packet fails. More failures,
        # or nothing decodable at all, mean damaged data.
        if store.size == 0:
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
    if store.size == 0:
        raise AudioError(path, f"no audio decoded from the {codec} stream")
    if decoded < min_duration:
        raise AudioError(path, f"too short: {decoded:.2f} s of audio (minimum {min_duration} s)")
    peak, rms = store.levels()
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
        sha256=sha256 if sha256 is not None else file_sha256(src),
        channel_correlation=store.correlation(),
    )


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


# Samples per block of the level and correlation sums (the same blocks in memory and spooled,
# so a recording's figures do not depend on where it was held).
STATS_BLOCK = 1 << 20


class _Samples:
    """Decoded frames written into one preallocated (channels, samples) float32 array, or,
    past ``spool_above`` samples, into one temporary file per channel.

    Sized from the header's duration, so a call is held once, not as a list of frames plus
    their concatenation (twice the memory at the peak); grows when the header says less.
    Levels (peak, power) and the channels' products are summed a block of
    :data:`STATS_BLOCK` samples at a time as the samples arrive.
    """

    def __init__(self, n_channels: int, capacity: int, spool_above: int | None = None):
        self._spool_above = spool_above
        self._files: list | None = None
        if spool_above is not None and capacity > spool_above:
            capacity = 2 * STATS_BLOCK  # spooled from the start: a buffer of blocks only
            self._start_spooling(n_channels)
        self.data = np.zeros((n_channels, max(capacity, 1)), dtype=np.float32)
        self.size = 0  # samples decoded
        self._held = 0  # samples in self.data (all of them unless spooled)
        self._summed = 0  # samples already in the sums
        self._peak = np.zeros(n_channels)
        self._power = np.zeros(n_channels)
        self._products = np.zeros(3)  # left·left, right·right, left·right (stereo)

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self._held + n > self.data.shape[1]:
            if (
                self._files is None
                and self._spool_above is not None
                and (self.size + n > self._spool_above)
            ):
                self._start_spooling(self.data.shape[0])
            if self._files is not None:
                self._flush(final=False)
            if self._held + n > self.data.shape[1]:
                grown = np.zeros(
                    (self.data.shape[0], max(2 * self.data.shape[1], self._held + n)), np.float32
                )
                grown[:, : self._held] = self.data[:, : self._held]
                self.data = grown
        self.data[:, self._held : self._held + n] = block
        self._held += n
        self.size += n
        self._sum(final=False)

    def _sum(self, final: bool) -> None:
        """Add every complete block not summed yet (and, at the end, the last partial one)."""
        base = self.size - self._held  # stream position of self.data[:, 0]
        while self.size - self._summed >= STATS_BLOCK or (final and self.size > self._summed):
            start = self._summed - base
            size = min(STATS_BLOCK, self.size - self._summed)
            part = self.data[:, start : start + size].astype(np.float64)
            self._peak = np.maximum(self._peak, np.abs(part).max(axis=1))
            self._power += np.square(part).sum(axis=1)
            if part.shape[0] == 2:
                left, right = part
                self._products += (left @ left, right @ right, left @ right)
            self._summed += part.shape[1]

    def _start_spooling(self, n_channels: int) -> None:
        # Unnamed files, gone when the DecodedAudio holding them is (or the process ends).
        self._files = [
            tempfile.TemporaryFile(prefix="callqa-audio-")  # noqa: SIM115
            for _ in range(n_channels)
        ]

    def _flush(self, final: bool) -> None:
        """Write the summed samples to the spool files; keep the rest (a partial block)."""
        base = self.size - self._held
        upto = (self.size if final else self._summed) - base
        for fh, row in zip(self._files, self.data, strict=True):
            fh.write(row[:upto].tobytes())
        self.data[:, : self._held - upto] = self.data[:, upto : self._held]
        self._held -= upto

    def array(self) -> np.ndarray | SpooledChannels:
        """The samples: an array (each channel row contiguous; no copy of the whole), or
        the spool files."""
        self._sum(final=True)
        if self._files is None:
            return self.data[:, : self.size]
        self._flush(final=True)
        for fh in self._files:
            fh.flush()
        self.data = np.zeros((self.data.shape[0], 0), np.float32)
        return SpooledChannels([SpooledChannel(fh, self.size) for fh in self._files])

    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """Peak and RMS per channel."""
        return self._peak, np.sqrt(self._power / max(self.size, 1))

    def correlation(self) -> float | None:
        """Normalised correlation of the two channels of a stereo recording."""
        if self.data.shape[0] != 2:
            return None
        left, right, cross = self._products
        denom = float(np.sqrt(left * right))
        return float(cross / denom) if denom > 0 else 0.0


def _decode_stream(
    container,
    stream,
    n_channels: int,
    rate: int,
    max_seconds: float | None = None,
    path: Path | None = None,
    declared: float | None = None,
    spool_above_s: float | None = None,
) -> tuple[_Samples, int, int]:
    """All frames resampled to planar float32 at ``rate``; (samples, bad packets, packets)."""
    # Unknown layouts ("1 channels") are common in G.711 WAV: name them by channel count.
    layout = {1: "mono", 2: "stereo"}.get(n_channels, stream.layout.name)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    spool_above = None if spool_above_s is None else int(spool_above_s * rate)
    samples = _Samples(n_channels, int((declared or 0) * rate) + rate, spool_above)
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
    return samples, bad, total
