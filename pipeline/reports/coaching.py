"""Coaching packs: weak-script examples for trainers, each with audio, transcript and rule.

>>> manifest = export_coaching_pack(open_store(url), "pack/", CoachFilter(item="greeting"))

A weak example is an applicable rubric item whose final verdict is a fail (the machine's,
or a reviewer's where one overrode or ruled on it). For each: a clip cut around the
evidence (or, for a required phrase that was never said, around the window the rule looked
at), both parties mixed and personal data beeped; the transcript excerpt with the missed or
violated phrase marked; the rule and why it failed; and a well-scored example of the same
item from another call for contrast. ``out_dir`` gets ``index.html`` (plays from disk),
``manifest.json`` (a list of entries) and ``pack.json`` (the filters and provenance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select as sql_select

from pipeline import __version__
from pipeline.audio import AudioError
from pipeline.config import load_settings
from pipeline.reports.clips import (
    CONTEXT_S,
    MAX_WINDOW_S,
    AudioCache,
    cut_clip,
    redaction_spans,
)
from pipeline.reports.data import Period, ReportError, calls_frame, check_known, items_frame
from pipeline.reports.render import render
from pipeline.schema import Transcript
from pipeline.scripts_check import RubricError, load_rubric
from pipeline.scripts_check.operators import select as select_window
from pipeline.store import Store
from pipeline.store import models as m

ENGINE = "pipeline.reports.coaching"
EXCERPT_PAD = 1  # utterances shown before and after the focus (besides those in the clip)
CALL_START_S = 15.0  # the clip of a call with no usable window: its first seconds
NEAR_MISS_MIN = 0.5  # a near miss below this similarity is no example: clip the window

SpanSource = Literal["evidence", "window", "call start"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoachFilter(_Model):
    """Which weak items go into a pack (all optional; days are inclusive, on ``started_at``)."""

    item: str | None = None
    agent: str | None = None  # agent_id or agent_name
    team: str | None = None
    since: date | None = None
    until: date | None = None
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    limit: int | None = Field(default=None, ge=1)

    @classmethod
    def parse(cls, **values: Any) -> CoachFilter:
        """Build from user input; any problem is a one-line :class:`ReportError`."""
        period = Period.parse(values.pop("since", None), values.pop("until", None))
        try:
            return cls(since=period.since, until=period.until, **values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ReportError(f"--{where.replace('_', '-')}: {first['msg']}") from None

    @property
    def period(self) -> Period:
        return Period(self.since, self.until)


class ExcerptLine(_Model):
    utterance: int
    speaker: str
    start: float
    end: float
    text: str
    highlights: list[tuple[int, int, str]] = Field(default_factory=list)  # chars + kind
    focus: bool = False


class RuleInfo(_Model):
    """The rubric rule behind an item (from the rubric file, when it can be loaded)."""

    op: str | None = None
    role: str | None = None
    phrases: list[str] = Field(default_factory=list)
    within: str | None = None
    min_similarity: float | None = None
    points: float | None = None
    critical: bool = False
    description: str | None = None
    summary: str


class ContrastExample(_Model):
    call_id: str
    agent_id: str | None = None
    agent_name: str | None = None
    start: float | None = None
    end: float | None = None
    clip: str | None = None
    clip_start: float | None = None
    clip_end: float | None = None
    reason: str | None = None
    transcript: list[ExcerptLine] = Field(default_factory=list)
    audio_error: str | None = None


class CoachingEntry(_Model):
    """One weak example. ``start``/``end``: the evidence (or window) span in call seconds;
    ``clip`` (relative to the pack) holds ``[clip_start, clip_end]`` of the call."""

    call_id: str
    item: str
    title: str | None = None
    section: str | None = None
    rubric_id: str | None = None
    critical: bool = False
    agent_id: str | None = None
    agent_name: str | None = None
    team: str | None = None
    started_at: str | None = None
    start: float
    end: float
    span_source: SpanSource
    clip: str | None
    clip_start: float | None = None
    clip_end: float | None = None
    redacted: list[tuple[float, float]] = Field(default_factory=list)  # beeped, clip seconds
    transcript: list[ExcerptLine]
    reason: str | None = None
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    rule: RuleInfo
    verdict_by: Literal["machine", "reviewer"] = "machine"
    confidence: float
    confidence_basis: str
    contrast: ContrastExample | None = None
    audio_error: str | None = None


class CoachingManifest(_Model):
    """What :func:`export_coaching_pack` wrote; ``manifest.json`` holds ``entries``."""

    out_dir: str
    entries: list[CoachingEntry]
    filters: CoachFilter
    candidates: int  # weak items matching the filters, before --min-confidence and --limit
    created_at: str
    produced_by: dict[str, str] = Field(
        default_factory=lambda: {"engine": ENGINE, "pipeline_version": __version__}
    )

    @property
    def without_audio(self) -> int:
        return sum(e.clip is None for e in self.entries)


# --------------------------------------------------------------------------- rules


class _Rubrics:
    """Rubric files by id, loaded once per pack: ``paths`` first (custom rubrics), then
    ``QA_RUBRIC`` when it is a file, then the shipped ``rubrics/<id>.yaml``. An id found
    nowhere gives None (the pack then describes the rule from the stored item)."""

    def __init__(self, paths: Sequence[str | Path] = ()) -> None:
        self._paths = [str(p) for p in paths]
        self._cache: dict[str, Any] = {}
        self._extra: dict[str, Any] | None = None

    def _load_extra(self) -> dict[str, Any]:
        if self._extra is None:
            self._extra = {}
            configured = load_settings().rubric
            paths = [*self._paths]
            if configured and Path(configured).suffix in (".yaml", ".yml"):
                paths.append(configured)
            for path in paths:
                try:
                    rubric = load_rubric(path)
                except (RubricError, OSError) as exc:
                    if path in self._paths:  # asked for by name: say what is wrong
                        raise ReportError(str(exc)) from None
                    continue
                self._extra.setdefault(rubric.id, rubric)
        return self._extra

    def item(self, rubric_id: str | None, item_id: str) -> Any | None:
        if not rubric_id:
            return None
        if rubric_id not in self._cache:
            rubric = self._load_extra().get(rubric_id)
            if rubric is None:
                try:
                    rubric = load_rubric(rubric_id)
                except (RubricError, OSError):
                    rubric = None
            self._cache[rubric_id] = rubric
        rubric = self._cache[rubric_id]
        if rubric is None:
            return None
        return next((i for _, i in rubric.items() if i.id == item_id), None)


def rule_info(rubric_item: Any | None, row: pd.Series) -> RuleInfo:
    """The rule in words (and as data) for the pack."""
    if rubric_item is None:
        return RuleInfo(
            critical=bool(row["critical"]),
            points=_num(row["max_points"]),
            summary=f"{row['title'] or row['item_id']} (rubric file not available)",
        )
    check = rubric_item.check
    phrases = list(getattr(check, "phrases", []) or [])
    within = getattr(check, "within", None)
    role = getattr(check, "role", None)
    shown = " / ".join(f"“{p}”" for p in phrases[:3]) + (" …" if len(phrases) > 3 else "")
    where = f" within {within.describe().replace('=', ' ')}" if within else ""
    verb = {"required": "must say one of", "forbidden": "must not say"}.get(check.op, check.op)
    return RuleInfo(
        op=check.op,
        role=role,
        phrases=phrases,
        within=within.describe() if within else None,
        min_similarity=getattr(check, "threshold", None),
        points=rubric_item.points,
        critical=rubric_item.critical,
        description=rubric_item.description,
        summary=f"The {role or 'speaker'} {verb} {shown}{where}.",
    )


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


# --------------------------------------------------------------------------- confidence


def confidence(row: pd.Series, asr: dict[int, float] | None = None) -> tuple[float, str]:
    """How sure the fail is, in [0, 1], and on what it rests.

    A reviewer's verdict is certain. A forbidden phrase is as sure as its match; a missing
    required phrase is as sure as the best near miss is far from it. Either is capped by
    the ASR confidence of the evidence utterance (``asr``: utterance index → confidence),
    when the transcript has one.
    """
    if row["human_verdict"]:
        return 1.0, "reviewer verdict"
    evidence = [e for e in row["evidence"] or [] if isinstance(e, dict)]
    hits = [e for e in evidence if (e.get("reason") or "").startswith("forbidden phrase")]
    near = [e for e in evidence if (e.get("reason") or "").startswith("near miss")]
    if hits:
        value = max(float(e.get("similarity") or 0.0) for e in hits)
        basis = f"match similarity {value:.2f}"
        focus = hits[0]
    elif near:
        best = max(float(e.get("similarity") or 0.0) for e in near)
        value, basis, focus = 1.0 - best, f"best near miss {best:.2f}", near[0]
    else:
        value, basis, focus = 1.0, "nothing close was said", None
    if row["needs_review"]:
        basis += "; the machine asked for review"
    if focus is not None and asr:
        said = asr.get(focus.get("utterance"))
        if said is not None and 0 <= said <= 1 and said < value:
            value, basis = said, f"{basis}; ASR confidence {said:.2f}"
    return round(value, 4), basis


# --------------------------------------------------------------------------- spans


def _timed(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in evidence
        if isinstance(e, dict)
        and e.get("start") is not None
        and e.get("end") is not None
        and not (e.get("reason") or "").startswith("not counted")
    ]


def focus_span(
    evidence: list[dict[str, Any]], transcript: Transcript, rubric_item: Any | None
) -> tuple[float, float, SpanSource, list[int]]:
    """(start, end, source, utterances) the clip is cut around.

    The first timed piece of evidence that shows the item (a forbidden hit, the phrase
    said, a near miss at least :data:`NEAR_MISS_MIN` similar); else the window the rule
    looked at (e.g. the agent's first two turns for a greeting), at most
    :data:`MAX_WINDOW_S` of it; else any timed evidence (a phrase said outside the window
    or by the other party); else the first seconds of the call.
    """
    timed = _timed(evidence)
    usable = [e for e in timed if _shows_the_item(e)]
    if usable:
        return _span_of(usable[0])
    window = _window(transcript, rubric_item)
    if window is not None:
        return window
    if timed:
        return _span_of(timed[0])
    duration = transcript.duration or 0.0
    end = min(duration, CALL_START_S) if duration else CALL_START_S
    return 0.0, end, "call start", []


def _shows_the_item(e: dict[str, Any]) -> bool:
    reason = e.get("reason") or ""
    if reason.startswith("near miss"):
        return float(e.get("similarity") or 0.0) >= NEAR_MISS_MIN
    # said in the wrong place or by the wrong party: the miss is in the window, not there
    return ", outside " not in reason and not reason.startswith("said by ")


def _span_of(e: dict[str, Any]) -> tuple[float, float, SpanSource, list[int]]:
    idx = e.get("utterance")
    return float(e["start"]), float(e["end"]), "evidence", [idx] if idx is not None else []


def _window(
    transcript: Transcript, rubric_item: Any | None
) -> tuple[float, float, SpanSource, list[int]] | None:
    """The utterances the rule's check looked at (first :data:`MAX_WINDOW_S` of them, or
    the last for a ``last_*`` window)."""
    check = getattr(rubric_item, "check", None)
    if check is None or not hasattr(check, "role"):
        return None
    within = getattr(check, "within", None)
    pairs = select_window(transcript, check.role, within)
    if not pairs:
        return None
    if within is not None and (within.last_turns or within.last_seconds):
        end = pairs[-1][1].end
        kept = [(i, u) for i, u in pairs if u.start >= end - MAX_WINDOW_S] or pairs[-1:]
    else:
        start = pairs[0][1].start
        kept = [(i, u) for i, u in pairs if u.end <= start + MAX_WINDOW_S] or pairs[:1]
    return kept[0][1].start, kept[-1][1].end, "window", [i for i, _ in kept]


def excerpt(
    transcript: Transcript,
    lo: float,
    hi: float,
    focus: list[int],
    evidence: list[dict[str, Any]],
    kind: str,
) -> list[ExcerptLine]:
    """Utterances overlapping ``[lo, hi]`` plus the focus ones (± :data:`EXCERPT_PAD`), with
    each evidence span marked (``kind``: ``violation``, ``miss`` or ``good``)."""
    utts = transcript.utterances
    keep = {i for i, u in enumerate(utts) if u.end > lo and u.start < hi}
    for i in focus:
        keep.update(range(max(0, i - EXCERPT_PAD), min(len(utts), i + EXCERPT_PAD + 1)))
    marks: dict[int, list[tuple[int, int, str]]] = {}
    for e in evidence:
        idx, chars = e.get("utterance"), e.get("span_chars")
        if not isinstance(idx, int) or idx not in keep:
            continue
        if (e.get("reason") or "").startswith("not counted"):
            continue
        text = utts[idx].text
        a, b = chars if chars and len(chars) == 2 else (0, len(text))
        a, b = max(0, min(int(a), len(text))), max(0, min(int(b), len(text)))
        if b > a:
            marks.setdefault(idx, []).append((a, b, kind))
    return [
        ExcerptLine(
            utterance=i,
            speaker=utts[i].speaker,
            start=utts[i].start,
            end=utts[i].end,
            text=utts[i].text,
            highlights=_merge(marks.get(i, [])),
            focus=i in focus,
        )
        for i in sorted(keep)
    ]


def _merge(marks: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for a, b, k in sorted(marks):
        if out and a < out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]), out[-1][2])
        else:
            out.append((a, b, k))
    return out


# --------------------------------------------------------------------------- contrast


def _evidence_similarity(evidence: list[dict[str, Any]]) -> float:
    return max((float(e.get("similarity") or 0.0) for e in _timed(evidence)), default=0.0)


def pick_contrast(candidates: pd.DataFrame, weak: pd.Series) -> pd.Series | None:
    """A well-scored example of the weak item from another call: same rubric and item,
    passed; another agent first, then timed evidence, best match, best call."""
    pool = candidates[
        (candidates["item_id"] == weak["item_id"])
        & (candidates["rubric_id"] == weak["rubric_id"])
        & (candidates["call_id"] != weak["call_id"])
    ]
    if pool.empty:
        return None
    ranked = pool.assign(
        _other=pool["agent_id"] != weak["agent_id"],
        _timed=pool["evidence"].map(lambda ev: bool(_timed(ev or []))),
        _sim=pool["evidence"].map(lambda ev: _evidence_similarity(ev or [])),
    ).sort_values(
        ["_other", "_timed", "_sim", "call_score_pct", "call_id"],
        ascending=[False, False, False, False, True],
    )
    return missing_as_none(ranked.iloc[0])


def missing_as_none(row: pd.Series) -> pd.Series:
    """The row with missing values as None: pandas' string columns hold NaN for a call
    without agent metadata (``agent_id`` etc.), which the typed entries must not receive."""
    return row.astype(object).where(row.notna(), None)


# --------------------------------------------------------------------------- export


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _clip_name(call_id: str, item: str, suffix: str = "") -> str:
    return f"clips/{_SAFE.sub('_', call_id)}__{_SAFE.sub('_', item)}{suffix}.wav"


class _Pack:
    """State of one export: caches of audio, transcripts, rubrics and contrast clips."""

    def __init__(self, store: Store, out_dir: Path, rubrics: _Rubrics):
        self.store = store
        self.out = out_dir
        self.audio = AudioCache()
        self.rubrics = rubrics
        self._transcripts: dict[str, Transcript | None] = {}
        self._contrasts: dict[tuple[str, str], ContrastExample] = {}

    def transcript(self, call_id: str) -> Transcript | None:
        if call_id not in self._transcripts:
            if len(self._transcripts) > 64:
                self._transcripts.clear()
            self._transcripts[call_id] = self.store.get_transcript(call_id)
        return self._transcripts[call_id]

    def clip(
        self, source: str | None, transcript: Transcript, start: float, end: float, name: str
    ) -> tuple[Any | None, str | None]:
        """(Clip, None) or (None, why there is no audio)."""
        if not source:
            return None, "the call has no recording path"
        if source.lower().endswith(".json"):
            return None, f"{source}: the call was scored from a transcript, not audio"
        try:
            audio = self.audio.get(source)
        except AudioError as exc:
            return None, str(exc)
        return cut_clip(audio, start, end, redaction_spans(transcript), self.out / name), None

    def entry(self, row: pd.Series, contrast_pool: pd.DataFrame) -> CoachingEntry:
        row = missing_as_none(row)
        transcript = self.transcript(row["call_id"]) or Transcript(call_id=row["call_id"])
        evidence = [e for e in row["evidence"] or [] if isinstance(e, dict)]
        rubric_item = self.rubrics.item(row["rubric_id"], row["item_id"])
        rule = rule_info(rubric_item, row)
        start, end, source, focus = focus_span(evidence, transcript, rubric_item)
        clip, audio_error = self.clip(
            row["source"], transcript, start, end, _clip_name(row["call_id"], row["item_id"])
        )
        lo, hi = (clip.start, clip.end) if clip else (start - CONTEXT_S, end + CONTEXT_S)
        kind = "violation" if rule.op == "forbidden" else "miss"
        conf, basis = row["confidence"], row["confidence_basis"]
        contrast_row = pick_contrast(contrast_pool, row)
        return CoachingEntry(
            call_id=row["call_id"],
            item=row["item_id"],
            title=row["title"],
            section=row["section"],
            rubric_id=row["rubric_id"],
            critical=bool(row["critical"]),
            agent_id=row["agent_id"],
            agent_name=row["agent_name"],
            team=row["team"],
            started_at=row["started_at"],
            start=round(start, 3),
            end=round(end, 3),
            span_source=source,
            clip=str(clip.path.relative_to(self.out).as_posix()) if clip else None,
            clip_start=clip.start if clip else None,
            clip_end=clip.end if clip else None,
            redacted=clip.redacted if clip else [],
            transcript=excerpt(transcript, lo, hi, focus, evidence, kind),
            reason=row["reason"],
            evidence=evidence,
            rule=rule,
            verdict_by="reviewer" if row["human_verdict"] else "machine",
            confidence=conf,
            confidence_basis=basis,
            contrast=self.contrast(contrast_row) if contrast_row is not None else None,
            audio_error=audio_error,
        )

    def contrast(self, row: pd.Series) -> ContrastExample:
        key = (row["call_id"], row["item_id"])
        if key in self._contrasts:
            return self._contrasts[key]
        transcript = self.transcript(row["call_id"]) or Transcript(call_id=row["call_id"])
        evidence = [e for e in row["evidence"] or [] if isinstance(e, dict)]
        rubric_item = self.rubrics.item(row["rubric_id"], row["item_id"])
        start, end, source, focus = focus_span(evidence, transcript, rubric_item)
        clip = error = None
        if source != "call start":  # a passed forbidden item over the whole call: no span
            clip, error = self.clip(
                row["source"],
                transcript,
                start,
                end,
                _clip_name(row["call_id"], row["item_id"], "__contrast"),
            )
        lo, hi = (clip.start, clip.end) if clip else (start, end)
        out = ContrastExample(
            call_id=row["call_id"],
            agent_id=row["agent_id"],
            agent_name=row["agent_name"],
            start=round(start, 3) if source != "call start" else None,
            end=round(end, 3) if source != "call start" else None,
            clip=str(clip.path.relative_to(self.out).as_posix()) if clip else None,
            clip_start=clip.start if clip else None,
            clip_end=clip.end if clip else None,
            reason=row["reason"],
            transcript=excerpt(transcript, lo, hi, focus, evidence, "good")
            if source != "call start"
            else [],
            audio_error=error,
        )
        self._contrasts[key] = out
        return out


def select_weak(store: Store, filters: CoachFilter) -> tuple[pd.DataFrame, int]:
    """The weak items matching the filters, most clear-cut first (after --min-confidence
    and --limit), and how many matched before those two."""
    check_known(store, filters.item, filters.agent, filters.team)
    weak = items_frame(
        store,
        filters.period,
        agent=filters.agent,
        team=filters.team,
        item_ids=[filters.item] if filters.item else None,
        final_passed=False,
    )
    weak = weak[weak["applicable"]].reset_index(drop=True)
    candidates = len(weak)
    if weak.empty:
        return weak.assign(confidence=[], confidence_basis=[], source=[]), 0
    sources = _call_sources(store, weak["call_id"].unique().tolist())
    weak["source"] = weak["call_id"].map(sources)
    asr = _asr_confidences(store, weak["result_id"].unique().tolist())
    scored = [confidence(row, asr.get(row["result_id"])) for _, row in weak.iterrows()]
    weak["confidence"] = [c for c, _ in scored]
    weak["confidence_basis"] = [b for _, b in scored]
    weak = weak[weak["confidence"] >= filters.min_confidence]
    weak = weak.sort_values(
        ["confidence", "started_at", "call_id", "position"],
        ascending=[False, False, True, True],
        na_position="last",
    )
    if filters.limit:
        weak = weak.head(filters.limit)
    return weak.reset_index(drop=True), candidates


def _call_sources(store: Store, call_ids: list[str]) -> dict[str, str | None]:
    with store.session("cannot read call sources") as s:
        rows = s.execute(
            sql_select(m.Call.call_id, m.Call.source).where(m.Call.call_id.in_(call_ids))
        ).all()
    return dict(rows)


def _asr_confidences(store: Store, result_ids: list[int]) -> dict[int, dict[int, float]]:
    """result id → {utterance index → ASR confidence} of the transcripts scored."""
    out: dict[int, dict[int, float]] = {}
    with store.session("cannot read utterances") as s:
        for i in range(0, len(result_ids), 500):
            rows = s.execute(
                sql_select(m.Result.id, m.Utterance.idx, m.Utterance.confidence)
                .join(m.Utterance, m.Utterance.transcript_id == m.Result.transcript_id)
                .where(
                    m.Result.id.in_([int(r) for r in result_ids[i : i + 500]]),
                    m.Utterance.confidence.is_not(None),
                )
            )
            for rid, idx, conf in rows:
                out.setdefault(rid, {})[idx] = conf
    return out


def _contrast_pool(store: Store, weak: pd.DataFrame) -> pd.DataFrame:
    """Passed items (final verdict) of the weak items' ids, over the whole store."""
    pool = items_frame(store, item_ids=sorted(weak["item_id"].unique()), final_passed=True)
    pool = pool[pool["applicable"]].reset_index(drop=True)
    if pool.empty:
        return pool.assign(source=[], call_score_pct=[])
    calls = calls_frame(store).set_index("call_id")
    pool["source"] = pool["call_id"].map(calls["source"])
    pool["call_score_pct"] = pool["call_id"].map(calls["score_pct"]).fillna(0.0)
    return pool


def export_coaching_pack(
    store: Store,
    out_dir: str | Path,
    filters: CoachFilter | None = None,
    progress: Callable[[int, int], None] | None = None,
    rubric_paths: Sequence[str | Path] = (),
) -> CoachingManifest:
    """Write a coaching pack of the weak items matching ``filters`` to ``out_dir``.

    ``progress(done, total)`` is called after each entry. ``rubric_paths``: rubric files
    not shipped in ``rubrics/`` whose rules the pack should describe. An empty selection
    writes nothing and returns a manifest without entries. Raises :class:`ReportError`
    for an unknown item id, agent or team, or a rubric file that does not load.
    """
    filters = filters or CoachFilter()
    out = Path(out_dir)
    rubrics = _Rubrics(rubric_paths)
    rubrics._load_extra()  # a bad --rubric fails before anything is written
    weak, candidates = select_weak(store, filters)
    manifest = CoachingManifest(
        out_dir=str(out),
        entries=[],
        filters=filters,
        candidates=candidates,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if weak.empty:
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    pack = _Pack(store, out, rubrics)
    pool = _contrast_pool(store, weak)
    # Cut call by call so each recording is decoded once; the manifest keeps the ranking.
    order = weak.sort_values(["call_id", "position"]).index
    entries: dict[int, CoachingEntry] = {}
    for done, i in enumerate(order, start=1):
        entries[i] = pack.entry(weak.loc[i], pool)
        if progress:
            progress(done, len(order))
    manifest.entries = [entries[i] for i in weak.index]
    _write(manifest, out)
    return manifest


def _write(manifest: CoachingManifest, out: Path) -> None:
    entries = [e.model_dump(mode="json") for e in manifest.entries]
    (out / "manifest.json").write_text(
        json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    meta = manifest.model_dump(mode="json", exclude={"entries"})
    meta["entries"] = len(entries)
    meta["without_audio"] = manifest.without_audio
    (out / "pack.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
    groups: dict[str, list[CoachingEntry]] = {}
    for e in manifest.entries:
        groups.setdefault(e.item, []).append(e)
    html = render("coaching.html", manifest=manifest, groups=groups, filters=manifest.filters)
    (out / "index.html").write_text(html, encoding="utf-8")
