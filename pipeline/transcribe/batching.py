"""Batched decoding of one call: VAD speech clips merged into chunks of up to
``chunk_length_s``, their log-mel features made a batch at a time, ``batch_size`` chunks per
batch on the process's batch threads, the deterministic fallback per chunk, the tails a
decode left out decoded again, and word times put back on the call's timeline.

The batches are fixed by the call alone (never by what else runs), so a call's words do not
depend on the load of the machine.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pipeline.timing import StageTimer
from pipeline.transcribe.decode_config import SAMPLE_RATE, AsrConfig, better, passes
from pipeline.transcribe.heap import release_heap_memory
from pipeline.transcribe.segments import ChannelResult, asr_segment

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


# Voice activity is detected in windows of this many seconds: Silero's frame matrix, padded
# copy and ONNX intermediates (it runs up to 10,000 frames at once) stay small on a long call;
# at 600 s they added 257 MiB to a 60-minute call's peak. A call shorter than this is one
# window; speech crossing a window edge becomes two adjacent clips of the same chunk.
VAD_WINDOW_S = 120
# The rescue pass asks gaps of at least this many samples, and keeps clips of at least this many.
RESCUE_GAP = SAMPLE_RATE
RESCUE_MIN = SAMPLE_RATE
# ... and keeps them only this many samples clear of the clips found on each side.
RESCUE_CLEAR = SAMPLE_RATE // 5


def _speech_clips(samples: np.ndarray, config: AsrConfig) -> list[dict]:
    """Sample ranges of speech (VAD), or fixed windows when VAD is off."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if config.vad is None:
        step = config.chunk_length_s * SAMPLE_RATE
        return [
            {"start": i, "end": min(i + step, len(samples))} for i in range(0, len(samples), step)
        ]
    settings = config.vad.model_dump(exclude={"rescue_threshold"})
    options = VadOptions(**settings, max_speech_duration_s=config.chunk_length_s)
    window = VAD_WINDOW_S * SAMPLE_RATE

    def found(start: int, end: int, opts) -> list[dict]:
        out = []
        for offset in range(start, end, window):
            part = samples[offset : min(offset + window, end)]
            for clip in get_speech_timestamps(part, opts):
                out.append({"start": clip["start"] + offset, "end": clip["end"] + offset})
        return out

    clips = found(0, len(samples), options)
    if config.vad.rescue_threshold is None:
        return clips
    # speech Silero scored under the threshold throughout (a whole turn lost): the gaps asked
    # again at the rescue threshold; what it finds there is speech of its own
    rescue = VadOptions(
        **{**settings, "threshold": config.vad.rescue_threshold},
        max_speech_duration_s=config.chunk_length_s,
    )
    bounds = [0, *(x for c in clips for x in (c["start"], c["end"])), len(samples)]
    gaps = [(a, b) for a, b in zip(bounds[::2], bounds[1::2], strict=True) if b - a >= RESCUE_GAP]
    # a whole turn: clear of the clips found (not their onset or end that Silero scored low:
    # those change what Whisper hears of the clip next to them), and long enough
    found_again = [
        c
        for a, b in gaps
        for c in found(a, b, rescue)
        if c["end"] - c["start"] >= RESCUE_MIN
        and c["start"] - a >= RESCUE_CLEAR
        and b - c["end"] >= RESCUE_CLEAR
    ]
    return sorted(clips + found_again, key=lambda c: c["start"])


def _merge_clips(clips: list[dict], max_seconds: float) -> list[dict]:
    """Clips merged into chunks of at most ``max_seconds`` of speech, with the metadata
    faster-whisper's ``collect_chunks`` gives (offset and duration on the speech-only
    timeline, the clips of each chunk), without building the chunks' audio."""
    limit = max_seconds * SAMPLE_RATE
    metas, current, length, total = [], [], 0, 0
    for clip in clips:
        size = clip["end"] - clip["start"]
        if current and length + size > limit:
            metas.append(
                {
                    "offset": total / SAMPLE_RATE,
                    "duration": length / SAMPLE_RATE,
                    "segments": current,
                }
            )
            total += length
            current, length = [], 0
        current.append(clip)
        length += size
    if current:
        metas.append(
            {"offset": total / SAMPLE_RATE, "duration": length / SAMPLE_RATE, "segments": current}
        )
    return metas


def _features(model, audio: np.ndarray) -> np.ndarray:
    """Log-mel features of speech audio (faster-whisper's front end); every decode window's
    and language detection's features are made here."""
    return model.feature_extractor(audio)[..., :-1]


class CallSpeech:
    """One call's speech, found once for language detection and the decode: each party's VAD
    clips and merged chunks (per VAD setting and chunk length), and the encoder outputs
    detection computed, which the decode takes instead of encoding those chunks again."""

    def __init__(self, parties: list[tuple[int | None, np.ndarray]]):
        self.channels = [channel for channel, _x in parties]
        # as given: a long recording's SpooledChannel is read a window at a time, and
        # np.asarray would read the whole channel into memory (460 MB for 60 min of stereo)
        self.samples = [x for _channel, x in parties]
        self._clips: dict[tuple, list[list[dict]]] = {}
        self._metas: dict[tuple, list[list[dict]]] = {}
        self._windows: dict[tuple, list[Window]] = {}
        # (id(model), chunking key, window) -> one window's encoder output (CPU)
        self.encoded: dict[tuple, np.ndarray] = {}

    @staticmethod
    def key(config: AsrConfig) -> tuple:
        vad = config.vad.model_dump_json() if config.vad is not None else None
        return vad, config.chunk_length_s, config.shared_windows

    def clips(self, config: AsrConfig, timer: StageTimer | None = None) -> list[list[dict]]:
        """Each party's speech clips (VAD runs once per party and setting)."""
        vad_key = self.key(config)[:2]  # VAD cuts clips at the chunk length
        if vad_key not in self._clips:
            clips = []
            for samples in self.samples:
                with (timer or StageTimer()).stage("vad"):
                    clips.append(_speech_clips(samples, config))
            self._clips[vad_key] = clips
        clips = self._clips[vad_key]
        key = self.key(config)
        if key not in self._metas:
            if config.shared_windows:
                self._metas[key], self._windows[key] = _shared_windows(clips, config.chunk_length_s)
            else:
                self._metas[key] = [
                    _merge_clips(c, config.chunk_length_s) if c else [] for c in clips
                ]
                self._windows[key] = [
                    ((p, k),) for p, metas in enumerate(self._metas[key]) for k in range(len(metas))
                ]
        return clips

    def chunks(self, config: AsrConfig, timer: StageTimer | None = None) -> list[list[dict]]:
        """Each party's chunks (new lists: the decode appends the tails it decodes again)."""
        self.clips(config, timer)
        return [list(metas) for metas in self._metas[self.key(config)]]

    def windows(self, config: AsrConfig, timer: StageTimer | None = None) -> list[Window]:
        """The call's decode windows, in decode order."""
        self.clips(config, timer)
        return self._windows[self.key(config)]


# A decode window: the chunks (party, chunk index) decoded as one Whisper window, in order.
Window = tuple[tuple[int, int], ...]


def _shared_windows(
    clips_by_party: list[list[dict]], limit: float
) -> tuple[list[list[dict]], list[Window]]:
    """Each party's chunks (:func:`_merge_clips`) packed into windows of at most ``limit`` s
    of speech, first fit by decreasing length: every window is padded to Whisper's 30 s, so
    a party's short chunk shares one with the other party's instead of taking its own. A
    window's chunks in the order spoken; windows in the order of their first chunk."""
    metas = [_merge_clips(c, limit) if c else [] for c in clips_by_party]
    chunks = [(m["duration"], p, k) for p, ms in enumerate(metas) for k, m in enumerate(ms)]
    bins: list[list[tuple[int, int]]] = []
    used: list[float] = []
    for duration, p, k in sorted(chunks, key=lambda c: (-c[0], c[1], c[2])):
        for i in range(len(bins)):
            if used[i] + duration <= limit + 1e-6:
                bins[i].append((p, k))
                used[i] += duration
                break
        else:
            bins.append([(p, k)])
            used.append(duration)

    def spoken(pk: tuple[int, int]) -> tuple:
        return metas[pk[0]][pk[1]]["segments"][0]["start"], pk

    windows = sorted((tuple(sorted(b, key=spoken)) for b in bins), key=lambda w: spoken(w[0]))
    return metas, windows


class _Windows:
    """Features, metadata and output split of a call's windows (chunks of ``metas_by_party``)."""

    def __init__(self, model, samples_by_party: list[np.ndarray], metas_by_party: list[list[dict]]):
        self._model, self._samples, self._metas = model, samples_by_party, metas_by_party

    def meta(self, window: Window) -> dict:
        """faster-whisper's chunk metadata of the window (a lone chunk's own)."""
        pieces = [self._metas[p][k] for p, k in window]
        if len(pieces) == 1:
            return pieces[0]
        return {
            "offset": pieces[0]["offset"],
            "duration": sum(m["duration"] for m in pieces),
            "segments": [c for m in pieces for c in m["segments"]],
        }

    def features(self, window: Window) -> np.ndarray:
        """Log-mel features of the window: its chunks' audio joined."""
        audio = np.concatenate(
            [
                self._samples[p][c["start"] : c["end"]]
                for p, k in window
                for c in self._metas[p][k]["segments"]
            ]
        )
        return _features(self._model, audio)

    def split(self, window: Window, segments: list[dict]) -> dict[tuple[int, int], list[dict]]:
        """The window's decoded segments per chunk, on each chunk's party timeline: a word
        belongs to the chunk its middle falls in; a segment spanning two chunks is cut."""
        if len(window) == 1:
            return {window[0]: segments}
        offset = self.meta(window)["offset"]
        starts, position = [], 0.0
        for p, k in window:
            starts.append(position)
            position += self._metas[p][k]["duration"]
        shifts = [
            self._metas[p][k]["offset"] - offset - s
            for (p, k), s in zip(window, starts, strict=True)
        ]

        def piece(t: float) -> int:
            return min(max(bisect.bisect_right(starts, t - offset) - 1, 0), len(window) - 1)

        out: dict[tuple[int, int], list[dict]] = {pk: [] for pk in window}
        for seg in segments:
            words = seg.get("words") or []
            if not words:
                i = piece((seg["start"] + seg["end"]) / 2)
                d = shifts[i]
                out[window[i]].append({**seg, "start": seg["start"] + d, "end": seg["end"] + d})
                continue
            runs: list[tuple[int, list[dict]]] = []
            for w in words:
                i = piece((w["start"] + w["end"]) / 2)
                if not runs or runs[-1][0] != i:
                    runs.append((i, []))
                runs[-1][1].append(
                    {**w, "start": w["start"] + shifts[i], "end": w["end"] + shifts[i]}
                )
            for i, run in runs:
                text = seg["text"] if len(runs) == 1 else "".join(w["word"] for w in run)
                out[window[i]].append(
                    {
                        **seg,
                        "words": run,
                        "start": run[0]["start"],
                        "end": run[-1]["end"],
                        "text": text,
                    }
                )
        return out


def transcribe_batched(
    model, parties, config: AsrConfig, language, timer, speech: CallSpeech | None = None
) -> list[ChannelResult]:
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import (
        Segment,
        TranscriptionOptions,
        Word,
        get_suppressed_tokens,
        restore_speech_timestamps,
    )

    # Speech clips and their merged chunks per party (found once per call: language
    # detection used them too); chunk audio and log-mel features are made a batch at a time
    # (_decode_batches), so a long call never holds them all at once.
    speech = speech or CallSpeech(parties)
    if language is None and model.model.is_multilingual:  # a language per party: no sharing
        config = config.model_copy(update={"shared_windows": False})
    clips_by_party = speech.clips(config, timer)
    metas_by_party = speech.chunks(config, timer)
    samples_by_party = speech.samples
    # windows whose encoder output language detection computed with this model
    prefix = (id(model), speech.key(config))
    encoded = {key[2]: out for key, out in speech.encoded.items() if key[:2] == prefix}

    # ASR seconds of this call: its own wall time, less the time it waited on the shared batch
    # threads ("blocked"), plus the time those threads spent on its batches ("busy").
    clock = StageTimer()
    started = time.perf_counter()
    try:
        windows = _Windows(model, samples_by_party, metas_by_party)
        languages = []
        for p, metas in enumerate(metas_by_party):
            if not model.model.is_multilingual:
                languages.append(("en", 1.0))
            elif language is not None:
                languages.append((language, 1.0))
            elif not metas:
                languages.append(("en", 0.0))
            else:  # faster-whisper detects from the first 30 s of speech
                head = windows.features(((p, 0),))
                dummy = np.full((model.model.n_mels, 1), -1.5, dtype="float32")
                lang, prob, _ = model.detect_language(
                    features=np.concatenate([head, dummy], axis=1)
                )
                languages.append((lang, float(prob)))
        order = speech.windows(config, timer)  # the call's windows, in a fixed order
        outputs: dict[tuple[int, int], list[dict]] = {}
        fb = config.fallback
        for lang in dict.fromkeys(lang for lang, _ in languages):
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=lang
            )
            options = TranscriptionOptions(
                beam_size=config.beam_size,
                best_of=1,
                patience=1,
                length_penalty=1,
                repetition_penalty=1,
                no_repeat_ngram_size=0,
                log_prob_threshold=fb.log_prob_threshold,
                no_speech_threshold=fb.no_speech_threshold,
                compression_ratio_threshold=fb.compression_ratio_threshold,
                condition_on_previous_text=False,
                prompt_reset_on_temperature=0.5,
                temperatures=[config.temperature],
                initial_prompt=config.initial_prompt,
                prefix=None,
                suppress_blank=True,
                suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
                # Timestamp tokens let Whisper end a segment; without them a glued
                # chunk of digits runs into a repetition loop.
                without_timestamps=False,
                max_initial_timestamp=0.0,
                word_timestamps=config.word_timestamps,
                prepend_punctuations="\"'“¿([{-",
                append_punctuations="\"'.。,，!！?？:：”)]}、",
                multilingual=False,
                max_new_tokens=None,
                clip_timestamps="0",
                hallucination_silence_threshold=None,
                hotwords=config.hotwords,
            )
            keys = [w for w in order if languages[w[0][0]][0] == lang]

            def decode(keys, options=options, tokenizer=tokenizer):
                decoded = _decode_with_fallback(
                    model, keys, windows, tokenizer, options, config, clock, encoded
                )
                for w in keys:
                    outputs.update(windows.split(w, decoded[w]))

            decode(keys)
            # Whisper sometimes stops before the end of a glued chunk (the sequential
            # decoder would seek and go on) or skips a whole clip in its middle: the clips
            # it left out are decoded again, as chunks of their own, once, without the
            # vocabulary hints (a clip the hinted decode skipped was heard without them:
            # sample z08's 请问还有其他问题吗 on an Intel Xeon without AMX; and hints decode
            # silence into their own words)
            tails = []
            for p, k in (pk for w in keys for pk in w):
                for meta in _uncovered(metas_by_party[p][k], outputs[(p, k)]):
                    metas_by_party[p].append(meta)
                    tails.append(((p, len(metas_by_party[p]) - 1),))
            if tails:
                decode(tails, options=replace(options, initial_prompt=None, hotwords=None))

    finally:
        pooled = clock.seconds.get("busy", 0.0) - clock.seconds.get("blocked", 0.0)
        timer.add("asr", time.perf_counter() - started + pooled)

    results = []
    for p, (channel, _samples) in enumerate(parties):
        raw = [
            Segment(
                id=0,
                seek=seg["seek"],
                start=round(seg["start"], 3),
                end=round(seg["end"], 3),
                text=seg["text"],
                tokens=seg["tokens"],
                avg_logprob=seg["avg_logprob"],
                no_speech_prob=seg["no_speech_prob"],
                compression_ratio=seg["compression_ratio"],
                temperature=config.temperature,
                words=[Word(**w) for w in seg["words"]] if config.word_timestamps else None,
            )
            for k in sorted(
                range(len(metas_by_party[p])), key=lambda k: metas_by_party[p][k]["offset"]
            )
            for seg in outputs[(p, k)]
        ]
        raw.sort(key=lambda s: s.start)  # a clip decoded again lies inside its chunk
        if config.vad is not None:
            raw = list(restore_speech_timestamps(raw, clips_by_party[p], SAMPLE_RATE))
        results.append(
            ChannelResult(
                segments=[asr_segment(s, channel) for s in raw],
                language=languages[p][0],
                language_probability=languages[p][1],
                speech_seconds=sum(c["end"] - c["start"] for c in clips_by_party[p]) / SAMPLE_RATE,
            )
        )
    return results


# Speech seconds of a chunk's clips its decode may leave out before they are decoded again:
# whole clips and the chunk's end; the end of a clip with words (VAD pads speech, Whisper
# ends words early: more than that is left out there).
TAIL_S = 1.0
CLIP_TAIL_S = 1.5
# A clip counts as heard where a decoded word overlaps it by more than this (seconds).
HEARD_OVERLAP_S = 0.1


def _uncovered(meta: dict, segments: list[dict]) -> list[dict]:
    """What the chunk's decode left out, as chunks of their own: runs of its clips in which no
    decoded word (a segment, without words) falls, and a clip's end after its last word (a
    sentence Whisper skipped: sample z08's 请问还有其他问题吗), each run more than ``TAIL_S``
    of speech (none: all heard)."""
    spans = [(w["start"], w["end"]) for s in segments for w in (s.get("words") or [s])]
    pieces: list[tuple[float, dict, float]] = []  # (speech-time start, clip, seconds)
    position = meta["offset"]
    for clip in meta["segments"]:
        length = (clip["end"] - clip["start"]) / SAMPLE_RATE
        a, b = position, position + length
        heard = [e for s, e in spans if s < b - HEARD_OVERLAP_S and e > a + HEARD_OVERLAP_S]
        last = max(heard, default=None)
        if last is None:
            pieces.append((a, clip, length))
        elif b - last > CLIP_TAIL_S:
            cut = clip["start"] + int((last - a) * SAMPLE_RATE)
            pieces.append((last, {"start": cut, "end": clip["end"]}, b - last))
        position = b
    runs: list[list[tuple[float, dict, float]]] = []
    for piece in pieces:
        last = runs[-1][-1] if runs else None
        if last is not None and abs(last[0] + last[2] - piece[0]) < 1e-6:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    out = []
    for run in runs:
        length = sum(n for _, _, n in run)
        if length > TAIL_S:
            out.append(
                {"offset": run[0][0], "duration": length, "segments": [c for _, c, _ in run]}
            )
    return out


def _decode_with_fallback(
    model,
    keys,
    windows: _Windows,
    tokenizer,
    options,
    config: AsrConfig,
    clock: StageTimer,
    encoded: dict | None = None,
) -> dict[tuple[int, int], list[dict]]:
    """Decodes of ``keys``; those failing the thresholds decoded again deterministically,
    from the encoder outputs of the first decode (``encoded``: encoder outputs by key, taken
    instead of encoding; those of failed chunks are kept there for the retry)."""
    from faster_whisper.transcribe import TranscriptionOptions, get_compression_ratio

    fb = config.fallback
    encoded = {} if encoded is None else encoded

    def fails(segments: list[dict]) -> bool:
        return fb.scheme != "none" and not passes(*_scores(segments, get_compression_ratio), fb)

    first = _decode_batches(
        model, keys, windows, tokenizer, options, config.batch_size, clock, encoded, fails
    )
    if fb.scheme == "none":
        return first
    failed = [k for k in keys if fails(first[k])]
    if not failed:
        return first
    retry_options = TranscriptionOptions(
        **{
            **options.__dict__,
            "beam_size": fb.beam_size,
            "repetition_penalty": fb.repetition_penalty,
            "no_repeat_ngram_size": fb.no_repeat_ngram_size,
        }
    )
    retried = _decode_batches(
        model, failed, windows, tokenizer, retry_options, config.batch_size, clock, encoded
    )
    out = dict(first)
    for k in failed:
        a = (*_scores(first[k], get_compression_ratio), first[k])
        b = (*_scores(retried[k], get_compression_ratio), retried[k])
        out[k] = better(a, b, fb)[3]
    return out


def _scores(segments: list[dict], ratio_of) -> tuple[float, float, float]:
    """(avg_logprob, no_speech_prob, compression ratio) of one chunk's decode."""
    if not segments:
        return 0.0, 1.0, 0.0
    text = "".join(s["text"] for s in segments).strip()
    return segments[0]["avg_logprob"], segments[0]["no_speech_prob"], ratio_of(text)


# Encoder outputs of failed chunks held for their retry, at most (a base window is 3 MB).
RETRY_ENCODED_MAX = 16


def _decode_batches(
    model, keys, windows: _Windows, tokenizer, options, batch_size, clock: StageTimer,
    encoded: dict | None = None, keep=None,
):  # fmt: skip
    """Window decodes (with words) of ``keys`` in order, ``batch_size`` windows per batch.

    A window's encoder output is taken (and removed) from ``encoded`` where it is there;
    ``keep(segments)`` true: the window's encoder output is put there for a later decode.

    The batches are fixed by the call alone. A call of several batches runs them on the
    process's batch threads (one per CTranslate2 stream), so a call alone on the machine
    still uses every stream and calls running together share them; a call of one batch
    decodes it in its own thread. A batch's features are made when its decode starts.
    """
    batches = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    several = len(batches) > 1

    encoded = {} if encoded is None else encoded
    lock = threading.Lock()

    def decode(batch):
        started = time.perf_counter()
        with lock:
            given = {key: encoded.pop(key) for key in batch if key in encoded}
        encoder_output = _encode(model, batch, given, windows)
        # one pipeline per batch: its word-time heuristics (last_speech_timestamp) start
        # afresh and are never shared between threads
        segmented = _encoded_pipeline(model, encoder_output).forward(
            np.empty((len(batch), 0)), tokenizer, [windows.meta(w) for w in batch], options
        )
        kept = [i for i, s in enumerate(segmented) if keep is not None and keep(s)]
        if kept and encoder_output.device == "cpu":  # for the retry: no second encoder pass
            rows = np.asarray(encoder_output)
            with lock:
                for i in kept[: max(0, RETRY_ENCODED_MAX - len(encoded))]:
                    encoded[batch[i]] = rows[i].copy()
        del encoder_output
        if several:  # on the batch threads; a call of several batches keeps its heap flat
            release_heap_memory()
            clock.add("busy", time.perf_counter() - started)
        return segmented

    out: dict[tuple[int, int], list[dict]] = {}
    if not several:
        for batch in batches:
            out.update(zip(batch, decode(batch), strict=True))
        return out
    futures = [_batch_pool(model).submit(decode, batch) for batch in batches]
    try:
        for batch, future in zip(batches, futures, strict=True):
            with clock.stage("blocked"):
                result = future.result()
            out.update(zip(batch, result, strict=True))
    except BaseException:
        # A failed batch, or the call stopped (over its budget): its batches not yet started
        # are dropped, not left to take the streams from the other calls.
        for future in futures:
            future.cancel()
        raise
    return out


def _encode(model, batch, given: dict, windows: _Windows):
    """The batch's encoder output: the rows in ``given`` as they are, the others encoded."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim

    todo = [key for key in batch if key not in given]
    fresh = None
    if todo:
        features = np.stack([pad_or_trim(windows.features(w)) for w in todo])
        fresh = model.encode(features)
        if not given:
            return fresh
        fresh = dict(zip(todo, np.asarray(fresh), strict=True))
    rows = np.stack([given[key] if key in given else fresh[key] for key in batch])
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))


def _encoded_pipeline(model, encoder_output):
    """faster-whisper's batched pipeline decoding a batch already encoded."""
    from faster_whisper.transcribe import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(model)
    pipeline.model = copy.copy(model)
    pipeline.model.encode = lambda _features: encoder_output
    return pipeline


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _batch_pool(model: WhisperModel) -> ThreadPoolExecutor:
    """The process's batch threads for ``model``: as many as its CTranslate2 streams."""
    with _POOLS_LOCK:
        pool = _POOLS.get(id(model))
        if pool is None:
            workers = max(1, int(getattr(model.model, "num_workers", 1)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callqa-asr")
            _POOLS[id(model)] = pool
    return pool
