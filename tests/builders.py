"""Builders shared by test modules: the review-app store, the coaching archive, the personal-
data call, the sample archive with broken files and the contract-model walks.

Test modules import these from here, never from one another; pytest fixtures over them live in
tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
import typing
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import BaseModel

from pipeline.app.permissions import scope_of
from pipeline.schema import (
    CallJob,
    Evidence,
    ItemResult,
    Result,
    Risk,
    RiskEvidence,
    RubricRef,
    Transcript,
    Utterance,
)
from pipeline.score.form import score_form
from pipeline.scripts_check import check_items, load_rubric
from pipeline.store import Store, open_store
from pipeline.store.review import ReviewStore

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_ARCHIVE = ROOT / "samples" / "archive"
SAMPLES_EXPECTED = ROOT / "samples" / "expected.yaml"
SR = 8000  # sample rate of the synthetic recordings
# real recordings with references (../shared/data, never committed)
AUDIO_DATA = ROOT.parent / "shared" / "data" / "audio"
# model.bin of the multilingual Whisper base, reassembled from its two PyPI parts
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"

# --------------------------------------------------------------------------- review-app store

PASSWORD = "correct horse 1"
# Real argon2id, cheap parameters: hashes carry their parameters, so logins stay fast too.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
UTT_STARTS = (0.5, 2.5, 4.5, 6.5, 8.5)

# call_id -> (agent_id, team, needs_review, auto_fail, risk level)
CALLS = {
    "c-a1-1": ("A1", "T1", True, False, "high"),
    "c-a1-2": ("A1", "T1", False, False, "low"),
    "c-a2-1": ("A2", "T2", True, True, "medium"),
    "c-a2-2": ("A2", "T2", False, False, "low"),
}
# call_id -> predicted mean customer satisfaction (-2..2): the queue's "least satisfied" order
SATISFACTION = {"c-a1-1": -1.4, "c-a1-2": 1.1, "c-a2-1": 0.3, "c-a2-2": -0.2}
USERS = {  # name -> (role, agent_id)
    "admin": ("admin", None),
    "rev": ("reviewer", None),
    "trainer": ("trainer", None),
    "agent1": ("agent", "A1"),
    "agent2": ("agent", "A2"),
}
OWN = "c-a1-1"  # agent1's call


def write_wav(path: Path, seconds: float = 10.0, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    return path


def make_transcript(call_id: str, redactions: list[dict] | None = None) -> Transcript:
    texts = [
        ("agent", "您好，很高兴为您服务，请问有什么可以帮您"),
        ("customer", "我的快递三天了还没到"),
        ("agent", "这不归我管，您去问快递公司"),
        ("customer", "你们这什么态度，我要投诉"),
        ("agent", "非常抱歉，我马上为您处理"),
    ]
    extra = {"redactions": redactions} if redactions else {}
    return Transcript(
        call_id=call_id,
        language="zh",
        duration=10.0,
        utterances=[
            Utterance(speaker=spk, start=s, end=s + 1.8, text=text, confidence=0.9)
            for (spk, text), s in zip(texts, UTT_STARTS, strict=True)
        ],
        **extra,
    )


def make_result(call_id: str, needs_review: bool, auto_fail: bool, level: str) -> Result:
    items = [
        ItemResult(
            id="greeting",
            section="opening",
            title="标准开场白",
            passed=True,
            points=10,
            max_points=10,
            evidence=[
                Evidence(
                    utterance=0,
                    start=0.5,
                    end=2.3,
                    text="您好，很高兴为您服务",
                    matched="您好，很高兴为您服务",
                    similarity=0.97,
                )
            ],  # fmt: skip
        ),
        ItemResult(
            id="no_forbidden",
            section="manner",
            title="服务禁用语",
            passed=not auto_fail,
            points=10,
            max_points=10,
            critical=True,
            evidence=[
                Evidence(
                    utterance=2,
                    start=4.5,
                    end=6.3,
                    text="这不归我管",
                    matched="这不归我管",
                    similarity=1.0,
                )
            ]
            if auto_fail
            else [],  # fmt: skip
        ),
        ItemResult(
            id="apology",
            section="closing",
            title="致歉",
            passed=False,
            points=10,
            max_points=10,
            reason="no apology before the customer's complaint",
        ),
    ]
    earned = sum(i.points for i in items if i.passed)
    return Result(
        call_id=call_id,
        rubric=RubricRef(id="zh_ecommerce", version=3),
        total=0.0 if auto_fail else earned,
        max=30,
        auto_fail=auto_fail,
        needs_review=needs_review,
        items=items,
        risk=Risk(
            score={"high": 0.9, "medium": 0.5, "low": 0.1}[level],
            level=level,
            evidence=[RiskEvidence(utterance=3, text="我要投诉", reason="explicit complaint")],
            satisfaction=SATISFACTION.get(call_id),
        ),
    )


def build_store(root: Path, alaw_call: str | None = "c-a2-2") -> str:
    """A store with CALLS and USERS; one recording as A-law WAV (browsers can't play it)."""
    url = f"sqlite:///{root / 'qa.db'}"
    store = open_store(url)
    audio = root / "audio"
    audio.mkdir()
    for n, (call_id, (agent, team, review, fail, level)) in enumerate(CALLS.items()):
        src = write_wav(audio / f"{call_id}.wav", freq=300 + 100 * n)
        if call_id == alaw_call and shutil.which("ffmpeg"):
            alaw = audio / f"{call_id}-alaw.wav"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "pcm_alaw", str(alaw)], check=True)  # fmt: skip
            src.unlink()
            src = alaw
        job = CallJob(call_id=call_id, source=str(src), agent_id=agent, agent_name=f"agent {agent}", team=team, started_at=f"2026-11-0{n + 1}T09:00:00")  # fmt: skip
        store.save_scored(job, make_transcript(call_id), make_result(call_id, review, fail, level))
    reviews = ReviewStore(store, FAST_HASHER)
    for name, (role, agent_id) in USERS.items():
        reviews.add_user(name, PASSWORD, role, agent_id)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, **config: typing.Any) -> typing.Iterator[str]:
    """``app`` served by uvicorn (``config``: more ``uvicorn.Config`` options) on a free
    loopback port in a thread of this process; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fresh_store(template: Path, dest: Path) -> str:
    """A copy of the ``template`` store (see the conftest fixture) in ``dest``; its URL."""
    shutil.copytree(template, dest, dirs_exist_ok=True)
    return f"sqlite:///{dest / 'qa.db'}"


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient, path: str = "/login") -> str:
    return CSRF.search(client.get(path).text).group(1)


def login(app, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client)
    r = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return client


def item_ids(app, call_id: str) -> dict[str, int]:
    reviews: ReviewStore = app.state.reviews
    admin = reviews.authenticate("admin", PASSWORD)
    return {i.id: i.item_result_id for i in reviews.final_score(scope_of(admin), call_id).items}


def queue_ids(client: TestClient, query: str = "") -> list[str]:
    return re.findall(r'data-testid="call-row" data-call-id="([^"]+)"', client.get("/" + query).text)  # fmt: skip


# --------------------------------------------------------------------------- coaching archive

TURN_S, GAP_S = 2.0, 0.5
TONES = {"agent": 300.0, "customer": 450.0}

GREETING = "thank you for calling northwind telecom my name is {name}"
IDENTITY = "may i have your account number please"
ELSE = "is there anything else i can help you with"
BYE = "thank you for calling have a great day"

# call_id: agent, day, risk level, turns (speaker, text); "{acct}" marks a redacted number.
COACH_CALLS: dict[str, tuple[str, str, str, list[tuple[str, str]]]] = {
    "c1": ("A1", "2026-11-01", "low", [
        ("agent", GREETING), ("customer", "hi i have a billing question"),
        ("agent", IDENTITY), ("customer", "sure it is {acct}"),
        ("agent", "thanks i fixed the bill"), ("customer", "great"),
        ("agent", ELSE), ("customer", "no thanks"), ("agent", BYE),
    ]),
    "c2": ("A1", "2026-11-02", "low", [
        ("agent", "yeah what do you want"), ("customer", "my internet is slow"),
        ("agent", IDENTITY), ("customer", "it is {acct}"),
        ("agent", "i reset your line"), ("customer", "ok"),
        ("agent", ELSE), ("customer", "no"), ("agent", BYE),
    ]),
    "c3": ("A2", "2026-11-01", "high", [
        ("agent", GREETING), ("customer", "this is the third time i call"),
        ("agent", IDENTITY), ("customer", "my account number is {acct}"),
        ("agent", "calm down sir there is a process"), ("customer", "i want to complain"),
        ("agent", ELSE), ("customer", "no"), ("agent", BYE),
    ]),
    "c4": ("A2", "2026-11-03", "medium", [
        ("agent", GREETING), ("customer", "i want to change my plan"),
        ("agent", IDENTITY), ("customer", "it is {acct}"),
        ("agent", "done you are on the new plan"), ("customer", "thanks"),
        ("agent", ELSE), ("customer", "no that is all"), ("agent", "ok bye"),
    ]),
    "c5": ("A2", "2026-11-02", "low", [
        ("agent", GREETING), ("customer", "question about roaming"),
        ("agent", IDENTITY), ("customer", "{acct}"),
        ("agent", "roaming is on for you"), ("customer", "perfect"),
        ("agent", ELSE), ("customer", "nope"), ("agent", BYE),
    ]),
}  # fmt: skip
# The scripted items of rubrics/en_telecom.yaml, frozen here so that the shipped rubric can
# grow (timing checks, new items) without changing what these calls fail.
RUBRIC_YAML = """
id: coach_test
version: 1
language: en
title: Coaching test form
sections:
  - id: opening
    title: Opening
    items:
      - id: greeting
        title: Standard greeting with company name
        points: 20
        check:
          required:
            role: agent
            phrases: ["thank you for calling northwind telecom", "welcome to northwind telecom"]
            within: {first_turns: 2}
            min_similarity: 0.8
      - id: identity_check
        title: Verify the caller before discussing the account
        points: 20
        check:
          required:
            role: agent
            phrases: ["may i have your account number please"]
            within: {first_turns: 5}
  - id: attitude
    title: Service attitude
    items:
      - id: no_forbidden
        title: No forbidden phrases
        points: 30
        critical: true
        check:
          forbidden:
            role: agent
            phrases: ["that is not my problem", "calm down", "i don't know"]
  - id: closing
    title: Closing
    items:
      - id: anything_else
        title: Offer further help
        points: 15
        check:
          required:
            role: agent
            phrases: ["is there anything else i can help you with"]
            within: {last_turns: 3}
      - id: farewell
        title: Thank the customer and close politely
        points: 15
        check:
          required:
            role: agent
            phrases: ["thank you for calling have a great day", "thanks for calling goodbye"]
            within: {last_turns: 2}
"""
AGENTS = {"A1": ("Ann Lee", "North"), "A2": ("Bob Stone", "South")}
RISK_SCORES = {"low": 0.1, "medium": 0.5, "high": 0.9}


@dataclass
class Archive:
    url: str
    store: Store
    root: Path
    transcripts: dict[str, Transcript]
    rubric: Path


def _transcript(call_id: str, turns: list[tuple[str, str]]) -> Transcript:
    utts, redactions, t = [], [], 0.5
    for speaker, text in turns:
        if "{acct}" in text:
            shown = text.replace("{acct}", "[ACCOUNT]")
            a = shown.index("[ACCOUNT]")
            redactions.append(
                {
                    "utterance": len(utts),
                    "start": round(t + TURN_S * a / len(shown), 3),
                    "end": t + TURN_S,
                    "type": "ACCOUNT",
                    "char_start": a,
                    "char_end": a + len("[ACCOUNT]"),
                    "mask": "[ACCOUNT]",
                }
            )
            text = shown
        text = text.format(name="alex")
        utts.append(
            Utterance(
                speaker=speaker,
                start=t,
                end=t + TURN_S,
                text=text,
                channel=0 if speaker == "agent" else 1,
            )
        )
        t += TURN_S + GAP_S
    return Transcript(
        call_id=call_id,
        language="en",
        duration=t + 0.5,
        utterances=utts,
        redactions=redactions,
    )


def _write_wav(path: Path, transcript: Transcript, seed: int) -> None:
    """Stereo 16-bit: channel 0 the agent, 1 the customer, a tone (plus a little noise)
    while each speaks, near-silence between turns."""
    rng = np.random.default_rng(seed)
    n = int(round(transcript.duration * SR))
    audio = rng.normal(0, 0.002, (n, 2))
    for u in transcript.utterances:
        i0, i1 = int(u.start * SR), int(u.end * SR)
        tt = np.arange(i1 - i0) / SR
        audio[i0:i1, u.channel] += 0.3 * np.sin(2 * np.pi * TONES[u.speaker] * tt)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def build_archive(root: Path) -> Archive:
    rubric_path = root / "coach_test.yaml"
    rubric_path.write_text(RUBRIC_YAML, encoding="utf-8")
    rubric = load_rubric(rubric_path)
    url = f"sqlite:///{root / 'qa.db'}"
    store = open_store(url)
    transcripts = {}
    for seed, (call_id, (agent, day, risk, turns)) in enumerate(COACH_CALLS.items()):
        transcript = _transcript(call_id, turns)
        wav = root / "archive" / f"{call_id}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        _write_wav(wav, transcript, seed)
        result = score_form(
            transcript,
            rubric,
            check_items(transcript, rubric),
            Risk(score=RISK_SCORES[risk], level=risk),
        )
        name, team = AGENTS[agent]
        job = CallJob(
            call_id=call_id,
            source=str(wav),
            agent_id=agent,
            agent_name=name,
            team=team,
            started_at=f"{day}T10:00:00+08:00",
        )
        store.save_scored(job, transcript, result)
        transcripts[call_id] = transcript
    return Archive(url=url, store=store, root=root, transcripts=transcripts, rubric=rubric_path)


# --------------------------------------------------------------------------- personal data

SAMPLE = ROOT / "samples" / "zh_transcripts" / "bank_001_compliant.json"
CALL_ID = "pii_call"
PHONE = "13812345678"
CN_ID = "11010519491231002X"
SPOKEN_PHONE = "幺三九零零幺幺二二三三"  # 139 0011 2233, as ASR writes it
ID_ANSWER = "三二幺五"  # last four of the ID, personal because the agent asked for them
PERSONAL = (PHONE, CN_ID, SPOKEN_PHONE, ID_ANSWER)


def pii_transcript(path: Path) -> Path:
    """The compliant bank call plus customer turns that carry personal data."""
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    doc["call_id"] = CALL_ID
    end = max(u["end"] for u in doc["utterances"])
    doc["utterances"] += [
        {"speaker": "agent", "start": end + 0.5, "end": end + 3.0,
         "text": "请提供一下您的身份证后四位。"},
        {"speaker": "customer", "start": end + 3.5, "end": end + 4.5, "text": f"{ID_ANSWER}。"},
    ]  # fmt: skip
    end += 5.0
    doc["utterances"] += [
        {"speaker": "customer", "start": end + 0.5, "end": end + 6.0,
         "text": f"我的手机号是{PHONE}，身份证号是{CN_ID}"},
        {"speaker": "customer", "start": end + 6.5, "end": end + 9.0,
         "text": f"另一个号码是{SPOKEN_PHONE}"},
    ]  # fmt: skip
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- contract models


def contract_classes(root: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model reachable from ``root`` through its field annotations."""
    seen: set[type[BaseModel]] = set()

    def visit(tp: object) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for field in tp.model_fields.values():
                visit(field.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)
        if isinstance(tp, types.UnionType):
            for arg in tp.__args__:
                visit(arg)

    visit(root)
    return seen


def assert_no_extras(value: object, where: str = "") -> int:
    """Walk a validated model tree; fail on any undeclared field. Returns models seen."""
    if isinstance(value, BaseModel):
        assert not value.model_extra, (
            f"{where or type(value).__name__}: {sorted(value.model_extra)}"
        )
        return 1 + sum(
            assert_no_extras(getattr(value, name), f"{where}.{name}".lstrip("."))
            for name in type(value).model_fields
        )
    if isinstance(value, list | tuple):
        return sum(assert_no_extras(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return sum(assert_no_extras(v, f"{where}.{k}") for k, v in value.items())
    return 0


# --------------------------------------------------------------------------- sample archive


@functools.cache
def make_samples_module() -> types.ModuleType:
    """samples/make_samples.py, the sample archive's builder and its scripts' one loader."""
    spec = importlib.util.spec_from_file_location(
        "make_samples", ROOT / "samples" / "make_samples.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module
    spec.loader.exec_module(module)
    return module


def expected_outcomes(language: str | None = None) -> dict:
    """samples/expected.yaml: what each sample call of samples/archive must come out as
    (only the calls in ``language``, if given)."""
    calls = yaml.safe_load(SAMPLES_EXPECTED.read_text(encoding="utf-8"))["calls"]
    return {k: v for k, v in calls.items() if language in (None, v["language"])}


def sample_subset(archive: Path, call_ids: list[str] | set[str]) -> list[dict[str, str]]:
    """Copy these sample calls and their manifest rows into ``archive`` (created); the rows."""
    archive.mkdir(parents=True)
    with (SAMPLES_ARCHIVE / "manifest.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["call_id"] in call_ids]
    for r in rows:
        shutil.copy(SAMPLES_ARCHIVE / r["file"], archive / r["file"])
    with (archive / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def multilingual_asr_missing(settings) -> str | None:
    """Why the configured ASR model (``QA_ASR_MODEL``) cannot transcribe languages other than
    English (not installed, or English-only); None when it can. Loads it, once per process,
    as the pipeline does."""
    from pipeline.transcribe.model import ModelError, get_model, is_english_only

    try:
        model = get_model(settings)
    except ModelError as exc:
        return f"the ASR model {settings.asr_model!r} is not installed ({exc})"
    if is_english_only(model):
        return f"the ASR model {settings.asr_model!r} is English-only (set QA_ASR_MODEL)"
    return None


def archive_with_broken_files(tmp_path: Path, n_good: int = 4) -> tuple[Path, list[str], list[str]]:
    """A few good sample calls plus the kinds of broken file a nightly batch meets."""
    expected = expected_outcomes()
    good = [c for c, e in expected.items() if e["status"] == "scored"][:n_good]
    archive = tmp_path / "archive"
    rows = sample_subset(archive, good)
    (archive / "empty.wav").write_bytes(b"")
    (archive / "notaudio.mp3").write_text("<html>404 not found</html>", encoding="utf-8")
    source = SAMPLES_ARCHIVE / rows[0]["file"]
    data = source.read_bytes()
    (archive / ("truncated" + source.suffix)).write_bytes(data[: len(data) // 20])
    fields = list(rows[0].keys())
    with (archive / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        for name in ("empty.wav", "notaudio.mp3", "truncated" + source.suffix):
            writer.writerow({**dict.fromkeys(fields, ""), "file": name, "call_id": Path(name).stem})
    return archive, good, ["empty", "notaudio", "truncated"]


def signed_in_page(
    browser, base: str, name: str, locale: str | None = None, width: int = 1400, height: int = 1000
):
    """A browser page signed in as ``name`` (``locale``: its language and Accept-Language),
    with CSP violations recorded in ``page.csp_errors``."""
    options = {"locale": locale} if locale else {}
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True, **options)  # fmt: skip
    page = context.new_page()
    page.csp_errors = []
    page.on("console", lambda msg: "Content Security Policy" in msg.text and page.csp_errors.append(msg.text))  # fmt: skip
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")
    return page


def open_zh(browser, base: str, name: str, width: int = 1400, height: int = 1000):
    """A Chinese browser (zh-CN locale and Accept-Language) signed in as ``name``."""
    return signed_in_page(browser, base, name, "zh-CN", width, height)


def noise_wav(path: Path, channels: int, frames: int, rate: int = 16_000, seed: int = 0) -> Path:
    """A 16-bit PCM WAV of white noise (no speech), ``frames`` samples per channel."""
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal((frames, channels)) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def needs_data(name: str) -> Path:
    """``AUDIO_DATA / name``, or the test skipped with the reason when it is absent."""
    import pytest

    path = AUDIO_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (shared real data, see ../shared/data/README.md)")
    return path


@contextlib.contextmanager
def counted_encoder_rows() -> typing.Iterator[list[int]]:
    """Every Whisper encoder pass while the block runs, as its row count (windows encoded),
    the real encoder spied on, not replaced; the list can be cleared between runs."""
    import faster_whisper.transcribe as fwt

    rows: list[int] = []
    encode = fwt.WhisperModel.encode

    def counted(self, features):
        rows.append(1 if features.ndim == 2 else features.shape[0])
        return encode(self, features)

    fwt.WhisperModel.encode = counted
    try:
        yield rows
    finally:
        fwt.WhisperModel.encode = encode
