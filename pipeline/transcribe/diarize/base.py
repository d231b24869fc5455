"""Typed output of the diarization stage (who spoke when) and the backend interface.

A backend is a callable ``(samples, sample_rate, num_speakers) -> Diarization`` with
declared hyper-parameters (a pydantic model, pyannote-style), so every output records
which backend, which parameter values, models and library versions produced it.
:class:`Diarization` is a closed model: its turns, each speaker's mean embedding (for
voiceprint comparison; role identification reads it, transcripts do not store it) and its
provenance.
"""

from __future__ import annotations

import abc
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline import __version__
from pipeline.schema import ContractError


class Turn(BaseModel):
    """One stretch of speech by one speaker; overlapping turns mean overlapped speech."""

    model_config = ConfigDict(extra="forbid")
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    speaker: str

    @model_validator(mode="after")
    def _end_after_start(self) -> Turn:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self

    @property
    def duration(self) -> float:
        return self.end - self.start


class Hyperparameters(BaseModel):
    """Base of every backend's declared hyper-parameters; unknown names are rejected."""

    model_config = ConfigDict(extra="forbid")


class DiarizationProvenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)  # role -> model id/version
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. how the speaker count was chosen
    libraries: dict[str, str] = Field(default_factory=dict)  # distribution -> installed version
    pipeline_version: str = __version__


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each distribution (``"absent"`` when it is not installed)."""
    out = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


class Diarization(BaseModel):
    """Who spoke when. ``embeddings`` holds one mean speaker embedding per label when the
    backend computes them (used to compare against enrolled agent voiceprints)."""

    model_config = ConfigDict(extra="forbid")
    turns: list[Turn] = Field(default_factory=list)
    duration: float | None = None
    produced_by: DiarizationProvenance
    embeddings: dict[str, list[float]] = Field(default_factory=dict)

    @classmethod
    def from_tuples(
        cls, triples: list[tuple[float, float, str]], backend: str = "callable"
    ) -> Diarization:
        """The typed form of ``(start, end, speaker)`` turns from a plain diarizer callable."""
        return cls(
            turns=[Turn(start=a, end=b, speaker=str(s)) for a, b, s in triples],
            produced_by=DiarizationProvenance(backend=backend),
        )

    @property
    def speakers(self) -> list[str]:
        """Labels ordered by first appearance."""
        seen: dict[str, None] = {}
        for turn in sorted(self.turns, key=lambda t: t.start):
            seen.setdefault(turn.speaker, None)
        return list(seen)

    def speech_time(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for turn in self.turns:
            out[turn.speaker] = out.get(turn.speaker, 0.0) + turn.duration
        return out

    def as_tuples(self) -> list[tuple[float, float, str]]:
        """``(start, end, speaker)`` triples, the shape the ASR stage's ``diarizer`` takes."""
        return [(t.start, t.end, t.speaker) for t in self.turns]

    def to_rttm(self, file_id: str) -> str:
        """Standard RTTM: one ``SPEAKER`` line per turn, channel 1, times in seconds."""
        if not file_id or any(c.isspace() for c in file_id):
            raise ValueError(f"RTTM file id must be a non-empty word, got {file_id!r}")
        lines = []
        for t in sorted(self.turns, key=lambda t: (t.start, t.speaker)):
            lines.append(
                f"SPEAKER {file_id} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
            )
        return "".join(line + "\n" for line in lines)


def load_rttm(path: str | Path, file_id: str | None = None) -> list[Turn]:
    """Turns of one file of an RTTM file (all of them when ``file_id`` is None)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(path, f"cannot read: {exc}") from None
    turns = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ContractError(path, f"line {n}: expected at least 8 fields, got {len(fields)}")
        if file_id is not None and fields[1] != file_id:
            continue
        try:
            start, dur = float(fields[3]), float(fields[4])
        except ValueError:
            raise ContractError(path, f"line {n}: onset/duration are not numbers") from None
        if start < 0 or dur < 0:
            raise ContractError(path, f"line {n}: negative onset or duration")
        turns.append(Turn(start=start, end=start + dur, speaker=fields[7]))
    return turns


class Diarizer(abc.ABC):
    """A diarization backend. Subclasses declare ``name`` and ``Params``."""

    name: ClassVar[str]
    Params: ClassVar[type[Hyperparameters]]
    libraries: ClassVar[tuple[str, ...]] = ()  # distributions whose version is recorded

    def __init__(self, **params: Any):
        try:
            self.params = self.Params(**params)
        except Exception as exc:  # pydantic ValidationError: name the backend
            raise ValueError(
                f"invalid hyper-parameters for diarizer {self.name!r}: {exc}"
            ) from None

    @abc.abstractmethod
    def __call__(
        self, samples: np.ndarray, sample_rate: int = 16000, num_speakers: int | None = None
    ) -> Diarization:
        """Diarize ``samples`` (mono float32, or channels x samples for ``channel``)."""

    def as_callable(self):
        """The ``(samples_16k_mono) -> [(start, end, label)]`` form the ASR stage accepts."""
        return lambda samples: self(samples, 16000).as_tuples()

    def provenance(self, models: dict[str, str] | None = None) -> DiarizationProvenance:
        return DiarizationProvenance(
            backend=self.name,
            hyperparameters=self.params.model_dump(),
            models=models or {},
            libraries=library_versions(self.libraries),
        )


def check_samples(samples: np.ndarray, sample_rate: int, *, mono: bool = True) -> np.ndarray:
    """Validate and return float32 samples; clear errors for wrong shapes or rates."""
    arr = np.asarray(samples)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"samples must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    arr = arr.astype(np.float32, copy=False)
    if mono:
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        if arr.ndim != 1:
            raise ValueError(
                f"expected mono samples (1-D), got shape {arr.shape}; mix down first "
                "or use the 'channel' backend for one speaker per channel"
            )
    if sample_rate != 16000:
        raise ValueError(f"expected 16 kHz samples, got {sample_rate} Hz; resample first")
    return arr
