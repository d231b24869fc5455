"""Rubrics that learn from reviewers: overturned verdicts become proposals a rubric owner
accepts (or not) as a new rubric version.

Reviewers' overturns are labels. For one rubric, per ``required`` item:

- :func:`disagreements`: the stored calls whose current machine verdict differs from the
  reviewer's latest verdict on that item (over every result version of the call: a verdict
  survives a re-score as a label even where it was not carried over), with the utterance
  the machine judged (its hit, or its best near miss);
- :func:`propose`: candidate changes, each re-scored on every stored call of the rubric and
  on its golden cases (``rubrics/cases/<id>.yaml``): new phrases taken from the utterances
  reviewers passed and the rule failed, a lower ``min_similarity`` that would have passed
  them, or a higher one that would have failed what reviewers failed. Each
  :class:`Proposal` says how many verdicts flip, how many reviewer labels it agrees with
  before and after, and which golden cases it breaks;
- :func:`accept`: writes the proposal into the rubric file as a new version (comments and
  layout kept, version + 1), after checking that the file is the one the proposal was made
  from (its sha256) and that the golden cases pass; returns the YAML diff. ``callqa
  rescore --rubric FILE`` then applies it; human verdicts carry over as for any new version.

Nothing here changes a rubric by itself: a proposal is data until someone accepts it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML
from sqlalchemy import func, select

from pipeline.config import RUBRICS_DIR, resolve_rubric_path
from pipeline.contracts import read_yaml
from pipeline.schema import Result, Transcript
from pipeline.scripts_check import Rubric, check_items, parse_rubric
from pipeline.scripts_check.cases import load_cases, run_cases
from pipeline.scripts_check.content import (
    content_settings,
    key_terms,
    keys_heard,
    plain,
    word_heard,
)
from pipeline.scripts_check.operators import select as in_window
from pipeline.store import models as m
from pipeline.store.reviews import HUMAN_VERDICTS
from pipeline.text import normalise
from pipeline.transcribe.vocabulary import Lexicon, load_lexicon

_CLAUSE = re.compile(r"[,;.!?，。！？；]+")
MAX_NEW_PHRASES = 5
# a content word no phrase of the item, no synonym of one and no lexicon term says becomes a
# key word of a learnt phrase only when this many overturned utterances say it: one
# utterance's word may be an ASR slip ("[ouu]" for out), which a key word would then require
SEVERAL_OVERTURNS = 2


class LearnError(ValueError):
    """A proposal that cannot be made or accepted (the reason says which and why)."""


class Disagreement(BaseModel):
    """One stored call where the reviewer's verdict on an item differs from the machine's."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    item_id: str
    machine: bool | None
    reviewer: bool
    utterance: int | None = None  # the utterance the machine judged (hit or near miss)
    text: str | None = None
    span: str | None = None
    similarity: float | None = None


class Flip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str
    before: bool | None
    after: bool | None
    reviewer: bool | None = None  # the reviewer's label, where there is one


class Proposal(BaseModel):
    """A change to one item of one rubric, measured on the stored calls; JSON-serialisable."""

    model_config = ConfigDict(extra="forbid")
    rubric_id: str
    rubric_path: str
    rubric_sha256: str
    item_id: str
    kind: Literal["phrases", "threshold"]
    add_phrases: list[str] = Field(default_factory=list)
    min_similarity: float | None = None
    reason: str
    labelled: int  # reviewer labels on this item over the stored calls
    agree_before: int
    agree_after: int
    flips: list[Flip] = Field(default_factory=list)
    broken_cases: list[str] = Field(default_factory=list)  # "case id: item: want → got"

    @property
    def overturn_rate_before(self) -> float | None:
        return 1 - self.agree_before / self.labelled if self.labelled else None

    @property
    def overturn_rate_after(self) -> float | None:
        return 1 - self.agree_after / self.labelled if self.labelled else None

    @property
    def digest(self) -> str:
        """What the rubric owner saw, as a short hash: accepting from the page names it, so
        that a proposal re-measured since (new reviews, another version) is not accepted."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- reading


def reviewer_labels(store, rubric_id: str) -> dict[tuple[str, str], bool]:
    """(call id, item id) → the reviewer's latest verdict (override, ruling, confirm) on
    that item in any result version of the call scored with ``rubric_id``."""
    A, IR, R, C = m.ReviewAction, m.ItemResult, m.Result, m.Call  # noqa: N806
    newest = (
        select(func.max(A.id))
        .join(IR, IR.id == A.item_result_id)
        .join(R, R.id == IR.result_id)
        .where(A.kind.in_(HUMAN_VERDICTS), R.rubric_id == rubric_id)
        .group_by(A.call_pk, IR.item_id)
    )
    q = (
        select(C.call_id, IR.item_id, A.after)
        .join(IR, IR.id == A.item_result_id)
        .join(C, C.id == A.call_pk)
        .where(A.id.in_(newest), A.after.is_not(None))
    )
    with store.session("cannot read reviewer verdicts") as s:
        return {(c, i): bool(after) for c, i, after in s.execute(q)}


def stored_calls(store, rubric_id: str) -> list[tuple[str, Transcript, Result]]:
    """(call id, stored transcript, current result) of every call whose current result was
    scored with ``rubric_id``."""
    out = []
    ids = store.rescore_targets()
    for row in store.iter_rescore_inputs(ids):
        result = Result.model_validate(row["result"])
        if result.rubric.id == rubric_id:
            out.append((result.call_id, Transcript.model_validate(row["transcript"]), result))
    return out


def disagreements(
    store, rubric: Rubric, calls: list | None = None, labels: dict | None = None
) -> dict[str, list[Disagreement]]:
    """Per item id: the calls whose current machine verdict differs from the reviewer's."""
    calls = stored_calls(store, rubric.id) if calls is None else calls
    labels = reviewer_labels(store, rubric.id) if labels is None else labels
    out: dict[str, list[Disagreement]] = {}
    for call_id, _, result in calls:
        for it in result.items:
            want = labels.get((call_id, it.id))
            if want is None or it.passed is want:
                continue
            ev = next((e for e in it.evidence if e.utterance is not None), None)
            out.setdefault(it.id, []).append(
                Disagreement(
                    call_id=call_id,
                    item_id=it.id,
                    machine=it.passed,
                    reviewer=want,
                    utterance=ev.utterance if ev else None,
                    text=ev.text if ev else None,
                    span=ev.span if ev else None,
                    similarity=ev.similarity if ev else None,
                )
            )
    return out


# --------------------------------------------------------------------------- proposing


def _item_path(data: dict, item_id: str) -> tuple[int, int]:
    for si, section in enumerate(data["sections"]):
        for ii, item in enumerate(section["items"]):
            if item["id"] == item_id:
                return si, ii
    raise LearnError(f"rubric {data['id']!r} has no item {item_id!r}")


def _required_body(data: dict, item_id: str) -> dict:
    """The item's ``required`` check: the check itself, or the one ``required`` branch of an
    ``any_of`` (en_telecom's greeting: its phrases, or a pattern), where a phrase added can
    only widen what passes, as in a plain one."""
    si, ii = _item_path(data, item_id)
    check = data["sections"][si]["items"][ii]["check"]
    if isinstance(check, dict) and set(check) == {"required"}:
        return check["required"]
    if isinstance(check, dict) and set(check) == {"any_of"}:
        branches = [
            b["required"] for b in check["any_of"] if isinstance(b, dict) and set(b) == {"required"}
        ]
        if len(branches) == 1:
            return branches[0]
    raise LearnError(
        f"item {item_id!r}: only a `required` check, alone or the one such branch of an"
        " `any_of`, can learn phrases"
    )


def changed_data(data: dict, proposal: Proposal) -> dict:
    """The rubric mapping with ``proposal`` applied (version + 1)."""
    new = copy.deepcopy(data)
    body = _required_body(new, proposal.item_id)
    if proposal.add_phrases:
        body["phrases"] = list(body["phrases"]) + list(proposal.add_phrases)
    if proposal.min_similarity is not None:
        body["min_similarity"] = proposal.min_similarity
    new["version"] = _next_version(new["version"])
    return new


def _next_version(v: Any) -> Any:
    return v + 1 if isinstance(v, int) else f"{v}+1"


def known_words(
    rubric: Rubric, item_phrases: list[str], overturned: list[str], lexicon: Lexicon | None = None
) -> frozenset[str]:
    """The words a learnt phrase may bracket: the content words of the item's phrases and
    their synonym groups, the words of the rubric's ``vocabulary`` and of the deployment
    lexicon (``rubrics/lexicon``), and any word said in at least ``SEVERAL_OVERTURNS`` of the
    ``overturned`` utterances (the reviewer-passed texts of this item)."""
    cfg = content_settings(rubric.language)
    lang = rubric.language
    words = {u for p in item_phrases for u in normalise(plain(p), lang).units}
    if cfg is not None:
        words |= {w for g in cfg.synonyms if words & set(g) for w in g}
    lexicon = lexicon or load_lexicon()
    terms = [*rubric.vocabulary, *lexicon.terms.get(lang, [])]
    words |= {u for t in terms for u in normalise(t, lang).units}
    counts: dict[str, int] = {}
    for text in dict.fromkeys(overturned):
        for u in set(normalise(text, lang).units):
            counts[u] = counts.get(u, 0) + 1
    words |= {u for u, n in counts.items() if n >= SEVERAL_OVERTURNS}
    return frozenset(words)


def phrase_from(
    d: Disagreement, rubric: Rubric, item_phrases: list[str], known: frozenset[str] | None = None
) -> str | None:
    """The clause of the judged utterance around its near-miss span, as a rubric phrase (the
    item's key words bracketed where it says them), or None when there is nothing to learn
    from (no utterance came close) or it lacks the item's key words. With ``known``
    (:func:`known_words`), a content word is bracketed only when it is a known word or an
    ASR variant of one (then written as the known word: "health" -> "[help]")."""
    if not d.text:
        return None
    text = d.text
    start = text.find(d.span) if d.span else -1
    clauses, pos = [], 0
    for part in _CLAUSE.split(text):
        a = text.find(part, pos)
        clauses.append((a, a + len(part), part.strip()))
        pos = a + len(part)
    if start >= 0:
        end = start + len(d.span)
        chosen = [c for a, b, c in clauses if a < end and b > start and c]
    else:  # no span: the clauses that say a key word of the item (else all of them)
        keys = [k for p in item_phrases for k in key_terms(p, rubric.language)]
        chosen = [
            c
            for *_, c in clauses
            if c
            and any(keys_heard((k,), normalise(c, rubric.language), rubric.language) for k in keys)
        ] or [c for *_, c in clauses if c]
    joiner = "" if rubric.language.startswith("zh") else " "
    said = joiner.join(chosen).strip().lower()
    norm = normalise(said, rubric.language)
    if not said or not len(norm):
        return None
    # the key words every phrase of the item shares (the company's name) must be said
    shared = set.intersection(
        *[set(key_terms(p, rubric.language)) for p in item_phrases] or [set()]
    )
    if any(not keys_heard((k,), norm, rubric.language) for k in shared):
        return None
    cfg = content_settings(rubric.language)
    if cfg is None:  # characters: the clause as said
        return said
    # conservative: what the reviewer accepted, every content word of it a key word, so
    # that the phrase passes this wording (any order, ASR slips) and not a part of it
    light = set(cfg.light_words)
    words = []
    for token in said.split():
        core = token.strip(",.?!;:")
        units = normalise(core, rubric.language).units
        content = bool(units) and any(u not in light for u in units) and "'" not in core
        if content and known is not None and not set(units) <= known:
            heard_as = [
                w
                for w in sorted(known)
                if w not in light
                and len(units) == 1
                and word_heard(w, units[0], cfg.min_ratio, cfg)
            ]
            if not heard_as:  # one utterance's unknown word: said, not required
                words.append(core)
                continue
            core = heard_as[0]
        words.append(f"[{core}]" if content else core)
    return " ".join(words)


def _judged(d: Disagreement, item, transcript: Transcript) -> Disagreement:
    """``d`` with the utterance to learn from: the machine's near miss, else (nothing came
    close) the first utterance of the check's window that says one of its key words."""
    if d.text:
        return d
    check = item.check
    keys = [k for p in check.phrases for k in key_terms(p, transcript.language or "en")]
    lang = transcript.language or "en"
    for i, u in in_window(transcript, check.role, check.within):
        if keys and any(keys_heard((k,), normalise(u.text, lang), lang) for k in keys):
            return d.model_copy(update={"utterance": i, "text": u.text})
    return d


def _verdicts(rubric: Rubric, calls, item_id: str) -> dict[str, bool | None]:
    out = {}
    for call_id, transcript, _ in calls:
        by_id = {r.id: r.passed for r in check_items(transcript, rubric)}
        out[call_id] = by_id.get(item_id)
    return out


def cases_path(rubric: Rubric) -> Path | None:
    """The rubric's golden cases (``rubrics/cases/<id>.yaml`` beside the shipped ones)."""
    for folder in ([Path(rubric.path).parent / "cases"] if rubric.path else []) + [
        RUBRICS_DIR / "cases"
    ]:
        p = folder / f"{rubric.id}.yaml"
        if p.is_file():
            return p
    return None


def broken_cases(rubric: Rubric) -> list[str]:
    """Golden cases of ``rubric`` that fail with it: ``case: item: want → got``."""
    path = cases_path(rubric)
    if path is None:
        return []
    _, failures = run_cases(rubric, load_cases(path), path)
    return [f"{f.case}: {f.item}: {f.expected} → {f.got}" for f in failures]


def measure(
    data: dict, rubric: Rubric, candidate: Proposal, calls, labels, before: dict
) -> Proposal:
    """Fill ``candidate``'s flips, reviewer agreement and broken golden cases."""
    new = parse_rubric(changed_data(data, candidate), path=rubric.path)
    after = _verdicts(new, calls, candidate.item_id)
    item = candidate.item_id
    mine = {c: v for (c, i), v in labels.items() if i == item and c in before}
    candidate.labelled = len(mine)
    candidate.agree_before = sum(1 for c, v in mine.items() if before[c] is v)
    candidate.agree_after = sum(1 for c, v in mine.items() if after[c] is v)
    candidate.flips = [
        Flip(call_id=c, before=before[c], after=after[c], reviewer=mine.get(c))
        for c in sorted(before)
        if before[c] is not after[c]
    ]
    candidate.broken_cases = broken_cases(new)
    return candidate


def propose(store, rubric_ref: str | Path) -> list[Proposal]:
    """Measured proposals for every ``required`` item reviewers overturned, best first per
    item (most reviewer labels agreed with, then fewest flips, then no broken cases)."""
    path = resolve_rubric_path(str(rubric_ref))
    data, content = read_yaml(path)
    rubric = parse_rubric(data, path, content)
    calls = stored_calls(store, rubric.id)
    return propose_from(data, rubric, calls, reviewer_labels(store, rubric.id))


def propose_from(
    data: dict, rubric: Rubric, calls: list[tuple[str, Transcript, Result]], labels: dict
) -> list[Proposal]:
    """:func:`propose` on given calls (call id, transcript, current result) and reviewer
    labels ((call id, item id) → verdict): what the store gives, or a benchmark's set."""
    path = rubric.path or "<rubric>"
    found = disagreements(None, rubric, calls, labels)
    out: list[Proposal] = []
    for item_id, rows in found.items():
        try:
            body = _required_body(data, item_id)
        except LearnError:
            continue
        before = _verdicts(rubric, calls, item_id)
        base = {
            "rubric_id": rubric.id,
            "rubric_path": str(path),
            "rubric_sha256": rubric.sha256 or "",
            "item_id": item_id,
            "labelled": 0,
            "agree_before": 0,
            "agree_after": 0,
        }
        cands: list[Proposal] = []
        passed_by_reviewer = [d for d in rows if d.reviewer and d.machine is False]
        failed_by_reviewer = [d for d in rows if not d.reviewer and d.machine]
        transcripts = {c: t for c, t, _ in calls}
        item = next(i for _, i in rubric.items() if i.id == item_id)
        judged = [_judged(d, item, transcripts[d.call_id]) for d in passed_by_reviewer]
        known = known_words(rubric, body["phrases"], [d.text for d in judged if d.text])
        phrases = list(
            dict.fromkeys(
                p
                for d in judged
                if (p := phrase_from(d, rubric, body["phrases"], known)) is not None
                and p not in body["phrases"]
            )
        )[:MAX_NEW_PHRASES]
        if phrases:
            cands.append(
                Proposal(
                    **base,
                    kind="phrases",
                    add_phrases=phrases,
                    reason=f"{len(passed_by_reviewer)} call(s) reviewers passed and the rule "
                    f"failed: add what the agent said",
                )
            )
        near = [d.similarity for d in passed_by_reviewer if d.similarity is not None]
        if near and min(near) >= 0.5:
            cands.append(
                Proposal(
                    **base,
                    kind="threshold",
                    min_similarity=round(min(near) - 0.005, 3),
                    reason="the highest min_similarity that passes every near miss reviewers "
                    "passed",
                )
            )
        hits = [d.similarity for d in failed_by_reviewer if d.similarity is not None]
        if hits and max(hits) < 1.0:
            cands.append(
                Proposal(
                    **base,
                    kind="threshold",
                    min_similarity=round(min(1.0, max(hits) + 0.005), 3),
                    reason="the lowest min_similarity that fails every hit reviewers failed",
                )
            )
        measured = [measure(data, rubric, c, calls, labels, before) for c in cands]
        measured.sort(key=lambda p: (-p.agree_after, len(p.broken_cases), len(p.flips)))
        out += measured
    return out


# --------------------------------------------------------------------------- accepting


def _yaml() -> YAML:
    y = YAML()  # round trip: comments, order and quoting kept
    y.preserve_quotes = True
    # no re-wrapping: an untouched long line (a form's regex pattern) must come back as it
    # was, or the diff a rubric owner reviews shows lines the proposal never changed
    y.width = 1_000_000
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def proposed_text(proposal: Proposal) -> tuple[str, str]:
    """(the rubric file's text with ``proposal`` applied, the unified diff). Raises
    :class:`LearnError` when the file changed since the proposal was made."""
    path = Path(proposal.rubric_path)
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != proposal.rubric_sha256:
        raise LearnError(
            f"{path}: changed since the proposal was made (sha256 differs); propose again"
        )
    y = _yaml()
    doc = y.load(raw.decode("utf-8"))
    body = _required_body(doc, proposal.item_id)
    for p in proposal.add_phrases:
        body["phrases"].append(p)
    if proposal.min_similarity is not None:
        body["min_similarity"] = proposal.min_similarity
    doc["version"] = _next_version(doc["version"])
    buf = io.StringIO()
    y.dump(doc, buf)
    text = buf.getvalue()
    diff = "".join(
        difflib.unified_diff(
            raw.decode("utf-8").splitlines(True),
            text.splitlines(True),
            fromfile=f"{path} (sha256 {proposal.rubric_sha256[:12]})",
            tofile=f"{path} (proposed)",
        )
    )
    return text, diff


def accept(proposal: Proposal, out: str | Path | None = None) -> tuple[Path, str]:
    """Write the proposal as a new version of the rubric (to ``out``, default: over the
    rubric file) after its golden cases pass; (the file written, the YAML diff)."""
    text, diff = proposed_text(proposal)
    target = Path(out) if out is not None else Path(proposal.rubric_path)
    data = _yaml().load(text)
    rubric = parse_rubric(
        _plain(data), proposal.rubric_path, text.encode("utf-8")
    )  # validates before anything is written
    broken = broken_cases(rubric)
    if broken:
        raise LearnError(
            f"proposal for {proposal.rubric_id}.{proposal.item_id} breaks golden case(s): "
            + "; ".join(broken)
        )
    target.write_text(text, encoding="utf-8")
    return target, diff


class Accepted(BaseModel):
    """One acceptance: who, which proposal, the version written and its diff (a line of
    the rubric change log)."""

    model_config = ConfigDict(extra="forbid")
    rubric_id: str
    item_id: str
    path: str
    by: str
    at: str  # ISO 8601, UTC
    version_before: int | str
    version_after: int | str
    sha256_before: str
    sha256_after: str
    proposal: Proposal
    diff: str


def accept_shown(store, rubric_path: str | Path, digest: str, by: str) -> Accepted:
    """Accept the proposal the calibration page showed (its :attr:`Proposal.digest`),
    re-measured now on the stored calls: :func:`accept` over the file, golden cases run.
    Raises :class:`LearnError` when no current proposal has that digest (the reviews or the
    rubric changed since the page was shown) or acceptance is refused."""
    path = Path(rubric_path)
    found = [p for p in propose(store, path) if p.digest == digest]
    if not found:
        raise LearnError(
            f"{path}: the proposal shown is no longer the current one (new reviews or another "
            "rubric version since the page was shown); reload the page"
        )
    proposal = found[0]
    before = load_yaml_version(path)
    written, diff = accept(proposal)
    raw = written.read_bytes()
    return Accepted(
        rubric_id=proposal.rubric_id,
        item_id=proposal.item_id,
        path=str(written),
        by=by,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        version_before=before,
        version_after=load_yaml_version(written),
        sha256_before=proposal.rubric_sha256,
        sha256_after=hashlib.sha256(raw).hexdigest(),
        proposal=proposal,
        diff=diff,
    )


def load_yaml_version(path: Path) -> int | str:
    return read_yaml(path)[0]["version"]


def log_acceptance(log: Path, accepted: Accepted) -> None:
    """Append ``accepted`` to the rubric change log (JSON lines; never rewritten)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(accepted.model_dump_json() + "\n")


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts / lists (for validation)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


# --------------------------------------------------------------------------- the page


class ProposalView(BaseModel):
    """A proposal with the YAML diff its acceptance would write."""

    model_config = ConfigDict(extra="forbid")
    proposal: Proposal
    diff: str
    file: str  # the PROPOSAL.json name `callqa rubric propose --out` writes
    digest: str  # Proposal.digest: what the page's accept button names


class ItemReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    title: str
    reviewer_passed: list[Disagreement] = Field(default_factory=list)  # the rule failed
    reviewer_failed: list[Disagreement] = Field(default_factory=list)  # the rule passed
    proposals: list[ProposalView] = Field(default_factory=list)


class RubricReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rubric_id: str
    version: int | str
    path: str
    sha256: str
    items: list[ItemReport] = Field(default_factory=list)


def report(store, rubric_ref: str | Path) -> RubricReport:
    """Everything the calibration page shows for one rubric: per item the overturned
    utterances both ways and the measured proposals with their diffs."""
    path = resolve_rubric_path(str(rubric_ref))
    data, content = read_yaml(path)
    rubric = parse_rubric(data, path, content)
    calls = stored_calls(store, rubric.id)
    found = disagreements(store, rubric, calls, reviewer_labels(store, rubric.id))
    proposals = propose(store, path) if found else []
    out = RubricReport(
        rubric_id=rubric.id, version=rubric.version, path=str(path), sha256=rubric.sha256
    )
    for _, item in rubric.items():
        rows = found.get(item.id, [])
        mine = [p for p in proposals if p.item_id == item.id]
        if not rows and not mine:
            continue
        out.items.append(
            ItemReport(
                item_id=item.id,
                title=item.title,
                reviewer_passed=[d for d in rows if d.reviewer],
                reviewer_failed=[d for d in rows if not d.reviewer],
                proposals=[
                    ProposalView(
                        proposal=p,
                        diff=proposed_text(p)[1],
                        file=f"{p.rubric_id}.{p.item_id}.{k}.json",
                        digest=p.digest,
                    )
                    for k, p in enumerate(proposals, 1)
                    if p.item_id == item.id
                ],
            )
        )
    return out
