"""Diarization backends, RTTM, the min-duration smoother and agent/customer identification."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.schema import ContractError
from pipeline.transcribe.agent_identification import load_agent_phrases, phrase_similarity
from pipeline.transcribe.diarize import Diarization, Turn, get_diarizer, identify_roles, load_rttm
from pipeline.transcribe.diarize.base import DiarizationProvenance
from pipeline.transcribe.diarize.smoothing import smooth_turns

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = DATA / "diarization" / "sample.wav"
# measured: DER 0.158 on sample.wav (benchmarks/diarization.py); the target is 0.25
SAMPLE_MAX_DER = 0.22

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are needed",
)
AGENT_VOICE = ["-v", "en-us+f3", "-s", "150", "-p", "62"]
CUSTOMER_VOICE = ["-v", "en-gb+m3", "-s", "160", "-p", "38"]


def _speak(text: str, voice: list[str], tmp: Path) -> np.ndarray:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", *voice, "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    with wave.open(str(out)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    nz = np.flatnonzero(np.abs(x) > 1e-3)
    return x[nz[0] : nz[-1] + 1] * 0.5


def _mix(script: list[tuple[str, str]], tmp: Path, gap: float = 0.7):
    """Mono mix of alternating voices, reference turns and timed texts."""
    voices = {"agent": AGENT_VOICE, "customer": CUSTOMER_VOICE}
    rng = np.random.default_rng(7)
    pieces, turns, texts, t = [], [], [], 0.3
    for who, text in script:
        wav = _speak(text, voices[who], tmp)
        pieces.append((int(t * 16000), wav))
        turns.append(Turn(start=t, end=t + len(wav) / 16000, speaker=who))
        texts.append((t, t + len(wav) / 16000, text))
        t += len(wav) / 16000 + gap
    mix = np.zeros(int((t + 0.3) * 16000), dtype=np.float32)
    for start, wav in pieces:
        mix[start : start + len(wav)] += wav
    return mix + rng.normal(0, 0.002, len(mix)).astype(np.float32), turns, texts


SCRIPT = [
    ("customer", "Hello?"),
    ("agent", "Thank you for calling Northwind, my name is Anna, how can I help you today?"),
    ("customer", "My internet has been down since this morning and nothing works."),
    ("agent", "I am sorry to hear that. Can I have your account number please?"),
    ("customer", "Yes."),
    ("customer", "It is four five six seven eight, under my wife's name."),
    ("agent", "I reset your line. Is there anything else I can help you with?"),
    ("customer", "No, that is all, thanks a lot."),
]


@pytest.fixture(scope="module")
def espeak_call(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed")
    tmp = tmp_path_factory.mktemp("espeak")
    return _mix(SCRIPT, tmp)


def _der(reference: list[Turn], hypothesis: list[Turn]) -> float:
    pytest.importorskip("pyannote.metrics", reason="pip install pyannote.metrics to score DER")
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    def ann(turns):
        a = Annotation()
        for i, t in enumerate(turns):
            a[Segment(t.start, t.end), i] = t.speaker
        return a

    return float(
        DiarizationErrorRate(collar=0.0, skip_overlap=False)(ann(reference), ann(hypothesis))
    )


# --------------------------------------------------------------------------- registry


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="channel, embedded, pyannote"):
        get_diarizer("nemo")


@pytest.mark.parametrize(
    "name, params",
    [
        ("embedded", {"window": 0.01}),
        ("embedded", {"no_such_param": 1}),
        ("channel", {"dominance_db": -3}),
    ],
)
def test_bad_hyperparameters_are_rejected(name, params):
    with pytest.raises(ValueError, match=f"invalid hyper-parameters for diarizer '{name}'"):
        get_diarizer(name, **params)


def test_pyannote_without_extra_says_how_to_install():
    pytest.importorskip("pyannote")
    import importlib.util

    if importlib.util.find_spec("pyannote.audio") is not None:
        pytest.skip("pyannote.audio is installed here")
    with pytest.raises(RuntimeError, match=r"pip install 'callqa\[pyannote\]'"):
        get_diarizer("pyannote")


def test_embedded_rejects_stereo_and_wrong_rate():
    d = get_diarizer("embedded")
    with pytest.raises(ValueError, match="mono"):
        d(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="16 kHz"):
        d(np.zeros(8000, dtype=np.float32), sample_rate=8000)


# --------------------------------------------------------------------------- RTTM


def test_rttm_format_and_round_trip(tmp_path):
    turns = [Turn(start=1.5, end=2.25, speaker="B"), Turn(start=0.0, end=1.2, speaker="A")]
    d = Diarization(turns=turns, produced_by=DiarizationProvenance(backend="test"))
    text = d.to_rttm("call1")
    lines = text.splitlines()
    assert lines[0] == "SPEAKER call1 1 0.000 1.200 <NA> <NA> A <NA> <NA>"
    assert lines[1] == "SPEAKER call1 1 1.500 0.750 <NA> <NA> B <NA> <NA>"
    path = tmp_path / "x.rttm"
    path.write_text(text)
    assert [(t.start, t.end, t.speaker) for t in load_rttm(path)] == [
        (0.0, 1.2, "A"),
        (1.5, 2.25, "B"),
    ]
    with pytest.raises(ValueError, match="file id"):
        d.to_rttm("has space")


def test_diarization_is_a_closed_typed_output_with_provenance():
    d = get_diarizer("channel").provenance({"vad": "silero"})
    assert d.backend == "channel" and d.hyperparameters and d.models == {"vad": "silero"}
    assert d.libraries["faster-whisper"] not in ("", "absent")
    out = Diarization(
        turns=[Turn(start=0, end=1, speaker="A")], produced_by=d, embeddings={"A": [0.5, 0.5]}
    )
    again = Diarization.model_validate_json(out.model_dump_json())
    assert again == out and again.embeddings == {"A": [0.5, 0.5]}
    with pytest.raises(ValueError, match="extra"):
        Diarization(produced_by=d, speakers=["A"])
    plain = Diarization.from_tuples([(0.5, 1.0, "S1"), (1.2, 2.0, "S2")])
    assert plain.speakers == ["S1", "S2"] and plain.produced_by.backend == "callable"
    assert plain.as_tuples() == [(0.5, 1.0, "S1"), (1.2, 2.0, "S2")]


@pytest.mark.parametrize(
    "content, reason",
    [("SPEAKER f 1 0.0\n", "at least 8 fields"), ("SPEAKER f 1 a 1 <NA> <NA> A\n", "not numbers")],
)
def test_broken_rttm_is_rejected(tmp_path, content, reason):
    path = tmp_path / "bad.rttm"
    path.write_text(content)
    with pytest.raises(ContractError, match=reason):
        load_rttm(path)


# --------------------------------------------------------------------------- smoother

REGIONS = [(0.0, 5.0), (5.3, 5.6), (6.0, 10.0)]


@pytest.mark.parametrize(
    "turns, expected",
    [
        # a short "yes" that is a speech region of its own is kept with its own speaker
        (
            [(0.0, 5.0, "A"), (5.3, 5.6, "B"), (6.0, 10.0, "A")],
            [(0.0, 5.0, "A"), (5.3, 5.6, "B"), (6.0, 10.0, "A")],
        ),
        # a short flicker inside A's region goes to A
        ([(0.0, 2.0, "A"), (2.0, 2.2, "B"), (2.2, 5.0, "A")], [(0.0, 5.0, "A")]),
        # same-speaker turns split by a short gap are joined
        ([(6.0, 7.0, "A"), (7.2, 10.0, "A")], [(6.0, 10.0, "A")]),
    ],
)
def test_min_duration_smoother(turns, expected):
    out = smooth_turns(
        [Turn(start=a, end=b, speaker=s) for a, b, s in turns],
        REGIONS,
        min_duration_on=0.5,
        min_duration_off=0.3,
    )
    assert [(round(t.start, 2), round(t.end, 2), t.speaker) for t in out] == expected


# --------------------------------------------------------------------------- embedded backend


@pytest.mark.slow
@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} absent (../shared/data not mounted)")
def test_embedded_on_sample_finds_two_speakers_under_der_threshold():
    from pipeline.audio import decode_audio

    result = get_diarizer("embedded")(decode_audio(SAMPLE).channels[0])
    assert len(result.speakers) == 2
    assert result.produced_by.backend == "embedded"
    assert result.produced_by.hyperparameters["merge_threshold"] > 0
    assert _der(load_rttm(SAMPLE.with_suffix(".rttm")), result.turns) <= SAMPLE_MAX_DER


def test_embedded_as_asr_callable_on_synthetic_call(espeak_call):
    mix, reference, _ = espeak_call
    triples = get_diarizer("embedded").as_callable()(mix)
    assert all(isinstance(s, str) and 0 <= a < b for a, b, s in triples)
    hyp = [Turn(start=a, end=b, speaker=s) for a, b, s in triples]
    assert len({t.speaker for t in hyp}) == 2
    assert _der(reference, hyp) < 0.15
    # the one-word "Yes." (a turn of its own) is labelled as the customer
    yes = reference[4]
    customer_label = max(
        {t.speaker for t in hyp},
        key=lambda s: sum(
            max(0, min(t.end, r.end) - max(t.start, r.start))
            for t in hyp
            if t.speaker == s
            for r in reference
            if r.speaker == "customer"
        ),
    )
    covering = [t.speaker for t in hyp if t.start < (yes.start + yes.end) / 2 < t.end]
    assert covering == [customer_label]


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    "phrase, text, language, at_least",
    [
        ("how can i help you", "Hi, how can I help you today?", "en", 1.0),
        ("工号", "您好，工号一二三四为您服务", "zh", 1.0),
        ("还有其他可以帮您的吗", "请问还有其它可以帮您的吗", "zh", 0.85),
        ("thank you for calling", "thank you for coling", "en", 0.85),  # ASR slip
        ("thank you for calling", "my internet is down", "en", 0.0),
        ("还有其他问题吗", "我没有其他问题了", "zh", 0.0),
    ],
)
def test_phrase_similarity(phrase, text, language, at_least):
    sim = phrase_similarity(phrase, text, language)
    assert sim >= at_least and (at_least > 0 or sim < 0.8)


def test_roles_from_agent_phrases_on_synthetic_mix(espeak_call):
    mix, reference, texts = espeak_call
    diarization = get_diarizer("embedded")(mix)
    assignment = identify_roles(diarization, texts)
    assert assignment.confidence >= assignment.threshold
    agent_turns = [t for t in diarization.turns if assignment.role_of(t.speaker) == "agent"]
    ref_agent = [r for r in reference if r.speaker == "agent"]
    overlap = sum(
        max(0, min(t.end, r.end) - max(t.start, r.start)) for t in agent_turns for r in ref_agent
    )
    assert overlap > 0.8 * sum(r.end - r.start for r in ref_agent)
    phrases = next(s for s in assignment.signals if s.signal == "phrases")
    assert phrases.contribution > 0 and phrases.evidence
    assert assignment.to_role_decision().method == "diarization"


@pytest.mark.parametrize(
    "texts, expected_agent",
    [
        (
            [
                (0, 2, "您好，工号1234，很高兴为您服务"),
                (3, 5, "我的快递一直没到"),
                (6, 8, "还有其他可以帮您的吗"),
            ],
            "S1",
        ),
        (
            [
                (0, 2, "hello?"),
                (3, 5, "thank you for calling, how can I help you"),
                (9, 10, "have a nice day"),
            ],
            "S2",
        ),
        (
            [(0, 2, "hello"), (3, 5, "hi there")],
            None,
        ),  # no agent phrase: below threshold -> unknown
    ],
)
def test_roles_table(texts, expected_agent):
    turns = [
        Turn(start=0, end=2.5, speaker="S1"),
        Turn(start=3, end=5.5, speaker="S2"),
        Turn(start=6, end=10, speaker="S1"),
    ]
    if expected_agent == "S2":
        turns = [
            Turn(start=0, end=2.5, speaker="S1"),
            Turn(start=3, end=5.5, speaker="S2"),
            Turn(start=9, end=10, speaker="S2"),
        ]
    a = identify_roles(turns, texts)
    assert a.agent_speaker == expected_agent
    if expected_agent is None:
        assert set(a.roles.values()) == {"unknown"} and a.needs_review


@pytest.mark.slow
def test_voiceprint_identifies_agent_without_phrases(espeak_call, tmp_path):
    from pipeline.transcribe.diarize.voiceprints import enroll, load_voiceprints

    enrol_wav = tmp_path / "agent.wav"
    wav = _speak(
        "This is an enrolment recording of the agent reading a few sentences aloud.",
        AGENT_VOICE,
        tmp_path,
    )
    with wave.open(str(enrol_wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((wav * 32767).astype(np.int16).tobytes())
    enroll("A101", [enrol_wav], tmp_path / "vp")
    prints = load_voiceprints(tmp_path / "vp")
    mix, reference, _ = espeak_call
    diarization = get_diarizer("embedded")(mix)
    a = identify_roles(
        diarization, None, voiceprints=prints, manifest_agent_id="A101", threshold=0.3
    )
    vp = next(s for s in a.signals if s.signal == "voiceprint")
    agent_label = max(vp.support, key=vp.support.get)
    assert a.agent_speaker == agent_label
    first_agent = next(r for r in reference if r.speaker == "agent")
    assert any(
        t.speaker == agent_label and t.start < first_agent.end and t.end > first_agent.start
        for t in diarization.turns
    )


def test_bad_agent_phrases_file_names_path(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("phrases:\n  en:\n    - {text: hi, kind: greting, weight: 1}\n")
    with pytest.raises(ContractError, match=r"p.yaml: phrases.en\[0\].kind"):
        load_agent_phrases(bad)


# --------------------------------------------------------------------------- CLI


def test_cli_diarize_writes_rttm(espeak_call, tmp_path):
    from pipeline.cli import cli

    mix, _, _ = espeak_call
    audio = tmp_path / "call one.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(mix, -1, 1) * 32767).astype(np.int16).tobytes())
    out = tmp_path / "o.rttm"
    res = CliRunner().invoke(
        cli, ["diarize", str(audio), "--rttm", str(out), "--num-speakers", "2"]
    )
    assert res.exit_code == 0, res.output
    assert {t.speaker for t in load_rttm(out, "call_one")} == {"SPEAKER_00", "SPEAKER_01"}
    res = CliRunner().invoke(cli, ["diarize", str(audio), "--rttm", str(out), "--backend", "nope"])
    assert res.exit_code != 0 and "valid backends" in res.output
