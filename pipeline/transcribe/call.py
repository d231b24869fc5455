"""One call, audio to Transcript: decode once, ASR per party channel, clean, tell roles apart.

Stereo: one party per channel; the agent's channel comes from the manifest, the command
line, or the content (who says the agent's scripted phrases). Mono: speakers are
``unknown`` unless a diarizer is plugged in, then utterances are split at speaker changes
using word timestamps and the agent is the speaker who says the agent phrases.

Utterance ``confidence`` is the mean probability of its words (0-1), so it is really per
utterance (Whisper's ``avg_logprob`` is shared by every segment of a 30 s window); without
word timings it falls back to ``exp(avg_logprob)``. Each word keeps its own ``probability``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.audio import AudioError, DecodedAudio, decode_audio
from pipeline.config import Settings, load_settings
from pipeline.schema import Provenance, RoleDecision, Transcript, Utterance, Word
from pipeline.timing import StageTimer
from pipeline.transcribe.agent_identification import decide_agent_channel
from pipeline.transcribe.asr import transcribe_parties
from pipeline.transcribe.batching import CallSpeech
from pipeline.transcribe.decode_config import SAMPLE_RATE, asr_config
from pipeline.transcribe.hallucination import filter_segments, load_rules
from pipeline.transcribe.language import LanguageSource, decide_language
from pipeline.transcribe.model import get_model
from pipeline.transcribe.segments import AsrSegment, AsrWord
from pipeline.transcribe.vocabulary import decode_hints, load_lexicon
from pipeline.transcribe.zh_text import attach_fragments, load_options, normalise_segment

if TYPE_CHECKING:
    from pipeline.transcribe.diarize import Diarization

CONFIDENCE_MEASURE = "mean word probability (else exp(avg_logprob))"
# Channels this correlated are one signal written twice (a "stereo" mono export).
DUPLICATE_CHANNEL_CORRELATION = 0.98

# mono 16 kHz samples -> who spoke when (a plain callable may give (start, end, speaker) turns)
Diarizer = Callable[[np.ndarray], "Diarization | list[tuple[float, float, str]]"]
Hook = Callable[[str, Any], None]


def _no_hook(step: str, artefact: Any) -> None:
    pass


def decode_for_asr(
    path: str | Path,
    settings: Settings,
    *,
    sha256: str | None = None,
    read_from: str | Path | None = None,
) -> DecodedAudio:
    """The one way a call's recording is decoded for ASR, whatever the manifest says: at
    the ASR's rate, refused over ``max_audio_minutes``, spooled to disk over
    ``spool_audio_minutes`` (:func:`pipeline.audio.decode_audio`)."""
    return decode_audio(
        path,
        SAMPLE_RATE,
        max_seconds=settings.max_audio_minutes * 60,
        spool_above_s=settings.spool_audio_minutes * 60,
        sha256=sha256,
        read_from=read_from,
    )


def transcribe_call(
    source: str | Path | DecodedAudio,
    *,
    call_id: str | None = None,
    settings: Settings | None = None,
    agent_channel: int | None = None,
    language: str | None = None,
    role_phrases: list[str] | None = None,
    diarizer: Diarizer | None = None,
    hook: Hook | None = None,
    agent_channel_from: Literal["manifest", "option"] = "manifest",
    language_from: LanguageSource = "manifest",
    vocabulary: list[str] | Callable[[str], list[str]] | None = None,
    agent_id: str | None = None,
    timer: StageTimer | None = None,
    source_sha256: str | None = None,
) -> Transcript:
    """Transcribe one recording into a :class:`~pipeline.schema.Transcript`.

    ``agent_channel`` (0 = left) overrides the content decision; ``agent_channel_from``
    says where it came from (recorded as the RoleDecision method). ``language`` overrides
    ``settings.language`` (``zh``, ``en`` or ``auto``); ``language_from`` says where it came
    from (``manifest``, ``option``, ``routing``), recorded in the transcript's
    ``language_decision`` with the model that decoded the call. ``vocabulary``: a form's
    terms, decode hints beside the deployment lexicon's (``QA_ASR_LEXICON``), or a function
    of the decided language that gives them (a call whose form waits on its language).
    ``role_phrases`` are extra agent phrases (e.g. a rubric's greeting).
    ``hook(step, artefact)`` reports progress: steps ``decode``, ``asr`` (per channel),
    ``filter``, ``diarization`` (mono with a diarizer), ``roles``, ``transcript``. ``agent_id`` (the manifest's) selects the enrolled voiceprint
    that diarized mono calls are compared with. ``timer`` collects seconds per stage
    (``decode``, ``vad``, ``asr``, ``diarization``). ``source_sha256``: the file's, when the
    caller hashed it already.
    """
    settings = settings or load_settings()
    hook = hook or _no_hook
    timer = timer or StageTimer()
    if isinstance(source, DecodedAudio):
        audio = source
    else:
        with timer.stage("decode"):
            audio = decode_for_asr(source, settings, sha256=source_sha256)
    if audio.sample_rate != SAMPLE_RATE:
        raise AudioError(audio.path, f"decoded at {audio.sample_rate} Hz, ASR needs {SAMPLE_RATE}")
    hook("decode", audio)
    if agent_channel is not None and not 0 <= agent_channel < audio.n_channels:
        raise AudioError(
            audio.path,
            f"agent channel {agent_channel} does not exist "
            f"(the file has {audio.n_channels} channels, numbered from 0)",
        )

    config = asr_config(settings)
    language_setting = language or settings.language
    parties = _party_channels(audio)
    speech = CallSpeech(parties)  # VAD once per party, for detection and decode alike
    decision = decide_language(settings, parties, config, language, language_from, timer, speech)
    forced = decision.language
    model = get_model(settings.model_copy(update={"asr_model": decision.model}))
    terms = vocabulary(forced) if callable(vocabulary) else vocabulary
    hints = decode_hints(load_lexicon(settings.asr_lexicon), forced, terms or ())
    config = config.for_model(decision.model).model_copy(update=hints)

    segments: list[AsrSegment] = []
    dropped: list[dict] = []
    for result in transcribe_parties(model, parties, config, forced, timer, speech):
        hook("asr", result)
        kept, gone = filter_segments(result.segments, load_rules())
        dropped.extend(d.as_record() for d in gone)
        segments.extend(text_pieces(kept, result.language))
    hook("filter", dropped)

    segments.sort(key=lambda s: (s.start, s.channel or 0))
    if len(parties) > 1:
        roles = _channel_roles(audio, segments, agent_channel, agent_channel_from, role_phrases)
        utterances = [
            _utterance(s, "agent" if s.channel == roles.agent_channel else "customer")
            for s in segments
        ]
    elif diarizer is not None:
        with timer.stage("diarization"):
            utterances, roles = _diarized(audio, segments, diarizer, agent_id, hook)
    else:
        utterances = [_utterance(s, "unknown") for s in segments]
        why = "single-channel audio" if audio.n_channels == 1 else "both channels carry one signal"
        roles = RoleDecision(
            method="none", confidence=0.0, detail=f"{why} and no diarizer: speakers unknown"
        )
    hook("roles", roles)

    transcript = Transcript(
        call_id=call_id if call_id is not None else Path(audio.path).stem,
        language=decision.language,
        duration=audio.duration,
        utterances=utterances,
        produced_by=Provenance(
            asr_model=decision.model,
            compute_type=settings.compute_type,
            device=settings.device,
            vad=settings.vad,
            language_setting=language_setting,
            roles=roles,
            source=audio.path,
            source_sha256=audio.sha256,
            asr_engine=f"faster-whisper {config.faster_whisper}",
            asr=config.model_dump(mode="json")
            | {"zh_text": load_options().model_dump(mode="json")},
            confidence_measure=CONFIDENCE_MEASURE,
            channels=audio.n_channels,
            codec=audio.codec,
            source_sample_rate=audio.source_sample_rate,
            dropped=dropped,
            language_decision=decision,
        ),
    )
    hook("transcript", transcript)
    return transcript


# --------------------------------------------------------------------------- helpers


def _party_channels(audio: DecodedAudio) -> list[tuple[int | None, np.ndarray]]:
    """(channel, samples) per party; duplicated channels count as one mono signal."""
    if audio.n_channels == 1:
        return [(None, audio.channels[0])]
    if audio.n_channels == 2 and audio.channel_correlation >= DUPLICATE_CHANNEL_CORRELATION:
        return [(None, audio.mono())]
    return [(i, audio.channels[i]) for i in range(audio.n_channels)]


# A pause this long between two words of one Whisper segment is a turn boundary. With VAD on,
# Whisper decodes the speech of a channel glued together, so one segment can span the other
# party's turn (stereo) or dead air; its times would then cover speech that is not its own.
TURN_PAUSE_S = 1.0


def split_at_pauses(segment: AsrSegment, max_pause: float = TURN_PAUSE_S) -> list[AsrSegment]:
    """The segment cut where its words pause longer than ``max_pause``, times fit to words."""
    words = segment.words
    if not words:
        return [segment]
    groups: list[list[AsrWord]] = [[words[0]]]
    for prev, word in zip(words, words[1:], strict=False):
        if word.start - prev.end > max_pause:
            groups.append([word])
        else:
            groups[-1].append(word)
    if len(groups) == 1:
        segment.start, segment.end = words[0].start, max(words[-1].end, words[0].start)
        return [segment]
    return [
        replace(
            segment,
            start=group[0].start,
            end=max(group[-1].end, group[0].start),
            text="".join(w.word for w in group).strip(),
            words=group,
        )
        for group in groups
    ]


def text_pieces(segments: list[AsrSegment], language: str | None) -> list[AsrSegment]:
    """Kept segments cut at turn pauses, then (Chinese) through the text stage.

    Cut first: the Chinese text stage joins digit tokens into one number and times its
    digits evenly, so a number joined across the other party's turn ("5" … "6788990") would
    cover that turn, an interruption that never was.
    """
    pieces = [piece for s in segments for piece in split_at_pauses(s)]
    if language == "zh":
        pieces = [normalise_segment(piece, load_options()) for piece in pieces]
        if pieces and all(p.channel is not None for p in pieces):  # one party's channel
            pieces = attach_fragments(sorted(pieces, key=lambda p: p.start), load_options())
    return pieces


def _utterance(
    segment: AsrSegment, speaker: str, piece: list[AsrWord] | None = None, **extra: Any
) -> Utterance:
    """An utterance from a whole segment, or from ``piece``, a run of its words."""
    if piece is None:
        words, text, start, end = segment.words, segment.text, segment.start, segment.end
    else:
        words, start, end = piece, piece[0].start, piece[-1].end
        text = "".join(w.word for w in piece).strip()
    start = max(start, 0.0)
    return Utterance(
        speaker=speaker,
        start=round(start, 3),
        end=round(max(end, start), 3),
        text=text,
        confidence=round(_confidence(segment, words), 3),
        words=[
            Word(
                word=w.word,
                start=round(w.start, 3),
                end=round(max(w.end, w.start), 3),
                probability=round(w.probability, 3),
            )
            for w in words
        ]
        or None,
        channel=segment.channel,
        **extra,
    )


def _confidence(segment: AsrSegment, words: list[AsrWord]) -> float:
    if words:
        return sum(w.probability for w in words) / len(words)
    return math.exp(min(segment.avg_logprob, 0.0))


def _channel_roles(
    audio: DecodedAudio,
    segments: list[AsrSegment],
    agent_channel: int | None,
    source: str,
    role_phrases: list[str] | None,
) -> RoleDecision:
    if agent_channel is not None:
        return RoleDecision(
            method=source,
            agent_channel=agent_channel,
            confidence=1.0,
            detail=f"agent channel {agent_channel} given by the {source}",
        )
    turns = {channel: [] for channel in range(audio.n_channels)}
    for s in segments:
        turns[s.channel].append(s.text)
    return decide_agent_channel(turns, role_phrases)


def _speaker_at(turns: list[tuple[float, float, str]], start: float, end: float) -> str:
    """The diarized speaker with the most overlap with [start, end], else the nearest one."""
    best, best_overlap = None, 0.0
    for t0, t1, label in turns:
        overlap = min(end, t1) - max(start, t0)
        if overlap > best_overlap:
            best, best_overlap = label, overlap
    if best is not None:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t[0]), abs(middle - t[1])))[2]


def _diarized(
    audio: DecodedAudio,
    segments: list[AsrSegment],
    diarizer: Diarizer,
    agent_id: str | None,
    hook: Hook,
) -> tuple[list[Utterance], RoleDecision]:
    from pipeline.transcribe.diarize import Diarization

    diarized = diarizer(audio.mono())
    if not isinstance(diarized, Diarization):
        diarized = Diarization.from_tuples(diarized)
    turns = sorted(diarized.as_tuples())
    hook("diarization", turns)
    if not turns:
        utterances = [_utterance(s, "unknown") for s in segments]
        return utterances, RoleDecision(
            method="diarization", confidence=0.0, detail="the diarizer found no speech turns"
        )
    # Split each segment where the speaker of its words changes.
    pieces: list[tuple[str, AsrSegment, list[AsrWord] | None]] = []
    for s in segments:
        if not s.words:
            pieces.append((_speaker_at(turns, s.start, s.end), s, None))
            continue
        run: list[AsrWord] = []
        label = None
        for w in s.words:
            who = _speaker_at(turns, w.start, max(w.end, w.start + 1e-3))
            if run and who != label:
                pieces.append((label, s, run))
                run = []
            run.append(w)
            label = who
        pieces.append((label, s, run if len(run) < len(s.words) else None))
    roles, decision = _diarized_roles(turns, pieces, diarized, agent_id)
    utterances = [
        _utterance(s, roles.get(label, "unknown"), words, speaker_label=label)
        for label, s, words in pieces
    ]
    return utterances, decision


def _diarized_roles(turns, pieces, diarized, agent_id: str | None):
    """Agent/customer per speaker label from agent phrases, voiceprints and who spoke first.

    Below the identification threshold every role is ``unknown``: the call goes to review
    rather than being scored against the wrong speaker.
    """
    from pipeline.transcribe.agent_identification import identify_roles
    from pipeline.transcribe.diarize import Turn
    from pipeline.transcribe.diarize.voiceprints import load_voiceprints

    texts = []
    for _label, s, words in pieces:
        if words is None:
            texts.append((s.start, s.end, s.text))
        else:
            texts.append((words[0].start, words[-1].end, "".join(w.word for w in words)))
    assignment = identify_roles(
        [Turn(start=a, end=b, speaker=label) for a, b, label in turns],
        texts,
        voiceprints=load_voiceprints() or None,
        manifest_agent_id=agent_id,
        speaker_embeddings=diarized.embeddings or None,
    )
    decision = assignment.to_role_decision()
    decision.agent_speaker = assignment.agent_speaker
    return assignment.roles, decision
