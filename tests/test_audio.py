"""Audio in: every format recorders write decodes with its channels apart; bad files are
rejected with the file name and a specific reason. Fixtures are made with ffmpeg at test time."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import AudioError, DecodedAudio, decode_audio

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

LEFT_HZ, RIGHT_HZ = 440, 1000


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_tone(path: Path, *, rate: int, channels: int, codec: str, seconds: float = 1.0) -> Path:
    """A tone per channel (440 Hz left, 1000 Hz right) encoded with ``codec``."""
    if channels == 1:
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"sine=f={LEFT_HZ}:d={seconds}",
            "-ar",
            str(rate),
            "-c:a",
            codec,
            str(path),
        )
    else:
        ffmpeg(
            "-f", "lavfi", "-i", f"sine=f={LEFT_HZ}:d={seconds}",
            "-f", "lavfi", "-i", f"sine=f={RIGHT_HZ}:d={seconds}",
            "-filter_complex", "[0][1]amerge=inputs=2",
            "-ar", str(rate), "-c:a", codec, str(path),
        )  # fmt: skip
    return path


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


FORMATS = [
    ("pcm_s16le", "wav", "pcm_s16le"),
    ("pcm_mulaw", "wav", "pcm_mulaw"),
    ("pcm_alaw", "wav", "pcm_alaw"),
    ("flac", "flac", "flac"),
    ("libmp3lame", "mp3", "mp3"),
    ("libopus", "ogg", "opus"),
    ("aac", "m4a", "aac"),
]


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize(("encoder", "ext", "codec"), FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_recorder_formats(tmp_path, encoder, ext, codec, rate, channels):
    path = make_tone(tmp_path / f"call.{ext}", rate=rate, channels=channels, codec=encoder)
    audio = decode_audio(path)
    assert isinstance(audio, DecodedAudio)
    assert audio.codec.startswith(codec)  # mp3 decodes as "mp3float"
    assert audio.sample_rate == 16000
    assert audio.source_sample_rate == (48000 if codec == "opus" else rate)
    assert audio.channels.dtype == np.float32
    assert audio.channels.shape[0] == channels
    assert audio.channels.shape[1] == pytest.approx(16000, rel=0.06)
    assert audio.duration == pytest.approx(1.0, abs=0.06)
    assert np.abs(audio.channels).max() <= 1.0
    # Channels stay apart: each keeps its own tone.
    assert dominant_hz(audio.channels[0], 16000) == pytest.approx(LEFT_HZ, abs=5)
    if channels == 2:
        assert dominant_hz(audio.channels[1], 16000) == pytest.approx(RIGHT_HZ, abs=5)
    assert audio.path == str(path) and len(audio.sha256) == 64


def test_resamples_to_requested_rate(tmp_path):
    path = make_tone(tmp_path / "a.wav", rate=16000, channels=2, codec="pcm_s16le")
    audio = decode_audio(path, sample_rate=8000)
    assert audio.sample_rate == 8000 and audio.channels.shape == (2, 8000)


# --------------------------------------------------------------------------- broken input


def _damage(data: bytes, every: int, start: int = 200) -> bytes:
    rng = random.Random(1)
    out = bytearray(data)
    for i in range(start, len(out), every):
        out[i] = rng.randrange(256)
    return bytes(out)


def broken_empty(tmp: Path) -> Path:
    path = tmp / "empty.wav"
    path.write_bytes(b"")
    return path


def broken_missing(tmp: Path) -> Path:
    return tmp / "missing.wav"


def broken_text(tmp: Path) -> Path:
    path = tmp / "notes.wav"
    path.write_text("call 123: customer asked about billing\n")
    return path


def broken_random_bytes(tmp: Path) -> Path:
    path = tmp / "noise.wav"
    path.write_bytes(random.Random(2).randbytes(4000))
    return path


def _cut(tmp: Path, codec: str, ext: str, share: float = 0.3) -> Path:
    whole = make_tone(tmp / f"whole.{ext}", rate=8000, channels=2, codec=codec, seconds=3)
    path = tmp / f"cut.{ext}"
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


def broken_truncated_wav(tmp: Path) -> Path:
    return _cut(tmp, "pcm_mulaw", "wav")


def broken_truncated_flac(tmp: Path) -> Path:
    return _cut(tmp, "flac", "flac", share=0.5)


def broken_truncated_m4a(tmp: Path) -> Path:
    return _cut(tmp, "aac", "m4a")  # the moov atom is at the end: the header is gone


def broken_corrupt_mp3(tmp: Path) -> Path:
    whole = make_tone(tmp / "whole.mp3", rate=8000, channels=2, codec="libmp3lame", seconds=2)
    path = tmp / "corrupt.mp3"
    path.write_bytes(_damage(whole.read_bytes(), every=7))
    return path


def broken_corrupt_flac(tmp: Path) -> Path:
    whole = make_tone(tmp / "whole.flac", rate=16000, channels=2, codec="flac", seconds=2)
    path = tmp / "corrupt.flac"
    path.write_bytes(_damage(whole.read_bytes(), every=5, start=100))
    return path


def broken_silent(tmp: Path) -> Path:
    path = tmp / "silent.wav"
    ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=stereo", "-t", "2", "-c:a", "pcm_mulaw", str(path)
    )
    return path


def broken_too_short(tmp: Path) -> Path:
    return make_tone(tmp / "blip.wav", rate=8000, channels=1, codec="pcm_s16le", seconds=0.1)


def broken_no_audio_stream(tmp: Path) -> Path:
    path = tmp / "video.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16:d=1", "-c:v", "ffv1", str(path))
    return path


BROKEN = [
    (broken_empty, "file is empty"),
    (broken_missing, "file not found"),
    (broken_text, "not audio: the file is text"),
    (broken_random_bytes, "not audio, or its header is damaged"),
    (broken_truncated_wav, "truncated: decoded"),
    (broken_truncated_flac, "truncated: decoded"),
    (broken_truncated_m4a, "not audio, or its header is damaged"),
    (broken_corrupt_mp3, "corrupt:"),
    (broken_corrupt_flac, "corrupt:"),
    (broken_silent, "silent:"),
    (broken_too_short, "too short:"),
    (broken_no_audio_stream, "no audio stream"),
]


@pytest.mark.parametrize(("make", "reason"), BROKEN, ids=[m.__name__[7:] for m, _ in BROKEN])
def test_broken_files_are_rejected_with_name_and_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(AudioError) as caught:
        decode_audio(path)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert reason in err.reason
    assert str(err) == f"{path}: {err.reason}"


def test_one_silent_channel_is_not_a_silent_file(tmp_path):
    path = tmp_path / "one_side.wav"
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={LEFT_HZ}:d=1",
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono:d=1",
        "-filter_complex", "[0][1]amerge=inputs=2", "-ar", "8000", "-c:a", "pcm_mulaw", str(path),
    )  # fmt: skip
    audio = decode_audio(path)
    assert np.abs(audio.channels[1]).max() < 1e-3 < np.abs(audio.channels[0]).max()


# --------------------------------------------------------------------------- long recordings


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("header", [True, False], ids=["header-duration", "no-header-duration"])
def test_a_spooled_recording_reads_back_the_same_samples(tmp_path, channels, header):
    """Past ``spool_above_s`` the samples go to temporary files: slices, levels and the
    stereo correlation are exactly those of the same file decoded into memory, whether the
    header announced the length (spooled from the start) or not (spilled on the way)."""
    codec, ext = ("pcm_mulaw", "wav") if header else ("libopus", "ogg")
    path = make_tone(
        tmp_path / f"tone.{ext}", rate=8000, channels=channels, codec=codec, seconds=70
    )
    held = decode_audio(path)
    spooled = decode_audio(path, spool_above_s=5.0)
    assert not held.spooled and spooled.spooled
    assert spooled.channels.shape == held.channels.shape
    assert spooled.duration == held.duration
    assert spooled.channel_correlation == held.channel_correlation
    n = held.channels.shape[1]
    for c in range(channels):
        for a, b in [(0, 1), (1000, 17_000), (n - 999, n), (n - 10, n + 50), (0, n)]:
            np.testing.assert_array_equal(spooled.channels[c][a:b], held.channels[c][a:b])
    np.testing.assert_array_equal(np.asarray(spooled.channels), held.channels)
    np.testing.assert_array_equal(spooled.mono(), held.mono())
    with pytest.raises(TypeError, match="contiguous slices"):
        spooled.channels[0][::2]


def test_stereo_correlation_tells_one_signal_written_twice(tmp_path):
    two = make_tone(tmp_path / "two.wav", rate=8000, channels=2, codec="pcm_s16le", seconds=2)
    ffmpeg(
        "-f", "lavfi", "-i", "sine=f=440:d=2", "-ac", "2", "-ar", "8000", str(tmp_path / "dup.wav")
    )
    assert abs(decode_audio(two).channel_correlation) < 0.1
    assert decode_audio(tmp_path / "dup.wav").channel_correlation == pytest.approx(1.0)
    assert decode_audio(tmp_path / "dup.wav", spool_above_s=0.5).channel_correlation == (
        pytest.approx(1.0)
    )
