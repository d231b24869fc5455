"""Conversation-level satisfaction and complaint risk, learned from real helpdesk dialogues.

The dialogue is read as a whole, in order: consecutive turns of one speaker form a block, and
every customer block and the last agent block are embedded with a multilingual sentence
encoder (``fast-use``: Chinese and English in one space, so a model trained on the English
translation of Chinese helpdesk chats reads Chinese calls). From those:

- the embeddings of the customer's last block, first block and the mean of their blocks, and
  of the agent's last answer;
- a per-turn satisfaction estimate (a linear read-out of the embedding learned on the last
  customer turns) taken at fixed places: first, last, lowest, highest, mean, last minus first,
  and how the customer moved after each agent answer (the mean and the lowest change);
- the dialogue's shape: customer and agent blocks, who speaks last, customer blocks after the
  last agent answer, repeated asks (customer blocks that say again what an earlier one said).

Two linear read-outs of that vector (``models/risk_dialogue``, trained by
``models/train_risk_dialogue.py``): the mean 5-point satisfaction (-2..2) and the logit of
P(mean satisfaction < -0.5), the complaint risk. Weights are numpy arrays in ``model.npz``;
the scoring path imports neither torch nor sklearn.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import PROJECT_ROOT
from pipeline.contracts import ContractError, load_model
from pipeline.encoders import Encoder, load_encoder

DEFAULT_MODEL = PROJECT_ROOT / "models" / "risk_dialogue"
CUSTOMER, AGENT = "customer", "agent"
# per-turn estimate read at these places, then the dialogue's shape
TURN_FEATURES = (
    "turn_first",
    "turn_last",
    "turn_min",
    "turn_max",
    "turn_mean",
    "turn_last_minus_first",
    "moved_mean",
    "moved_min",
)
SHAPE_FEATURES = (
    "customer_blocks",
    "agent_blocks",
    "ends_with_customer",
    "customer_after_last_answer",
    "repeat_max_similarity",
    "repeated_asks",
    "last_customer_chars",
    "agent_answered",
)
EMBEDDINGS = ("emb_last_customer", "emb_first_customer", "emb_mean_customer", "emb_last_agent")


class DialogueCard(BaseModel):
    """``model.yaml`` beside ``model.npz``: what the weights were trained with."""

    model_config = ConfigDict(extra="forbid")
    id: str
    version: int
    encoder: str
    encoder_version: str
    dim: int = Field(gt=0)
    max_chars: int = Field(gt=0)  # a block is embedded clipped to this many characters
    repeat_similarity: float = Field(gt=0, le=1)  # cosine at which a block repeats an earlier
    risk_threshold: float = -0.5  # risk: P(mean satisfaction below this)
    # evidence: the customer blocks tried left out are the lowest per-turn read-outs, at most
    # this many (every block of an ordinary call; bounded so a 20,000-turn call stays linear)
    evidence_candidates: int = Field(default=32, gt=0)
    trained_on: str
    seed: int
    metrics: dict[str, float] = Field(default_factory=dict)


Block = tuple[str, list[int], str]  # speaker, utterance indices, joined text


def blocks_of(turns: Sequence[tuple[str, str]]) -> list[Block]:
    """Consecutive non-empty turns of one speaker as (speaker, turn indices, joined text);
    any speaker other than the customer counts as the agent."""
    out: list[Block] = []
    for i, (speaker, text) in enumerate(turns):
        text = " ".join(text.split())
        if not text:
            continue
        role = CUSTOMER if speaker == CUSTOMER else AGENT
        if out and out[-1][0] == role:
            out[-1][1].append(i)
            out[-1] = (role, out[-1][1], f"{out[-1][2]} {text}")
        else:
            out.append((role, [i], text))
    return out


@dataclass
class DialogueScore:
    satisfaction: float  # predicted mean satisfaction, -2..2
    z: float  # logit of P(dissatisfied), before calibration
    blocks: list[Block]
    moved: list[tuple[int, float]]  # (block, change in z when that block is left out)


class DialogueModel:
    """The trained read-outs and the encoder they read; :meth:`score` one dialogue."""

    def __init__(self, directory: Path = DEFAULT_MODEL):
        self.directory = Path(directory)
        self.card = load_model(self.directory / "model.yaml", DialogueCard)
        path = self.directory / "model.npz"
        try:
            data = np.load(path)
        except FileNotFoundError:
            raise ContractError(
                path, "file not found: train it (models/train_risk_dialogue.py)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ContractError(path, f"not a dialogue model .npz: {exc}") from None
        need = ("turn_w", "turn_b", "mean", "scale", "sat_w", "sat_b", "risk_w", "risk_b")
        missing = [k for k in need if k not in data]
        if missing:
            raise ContractError(path, f"missing arrays {missing}")
        self.turn_w, self.turn_b = data["turn_w"], float(data["turn_b"])
        self.mean, self.scale = data["mean"], data["scale"]
        self.sat_w, self.sat_b = data["sat_w"], float(data["sat_b"])
        self.risk_w, self.risk_b = data["risk_w"], float(data["risk_b"])
        width = feature_width(self.card.dim)
        for name, arr in (
            ("turn_w", self.turn_w),
            ("mean", self.mean),
            ("scale", self.scale),
            ("sat_w", self.sat_w),
            ("risk_w", self.risk_w),
        ):
            want = self.card.dim if name == "turn_w" else width
            if arr.shape != (want,):
                raise ContractError(path, f"{name} has shape {arr.shape}, expected ({want},)")
        self.encoder: Encoder = load_encoder(self.card.encoder)
        if self.encoder.version != self.card.encoder_version:
            raise ContractError(
                self.directory / "model.yaml",
                f"trained on {self.card.encoder} {self.card.encoder_version}, installed "
                f"{self.encoder.version}: retrain it (models/train_risk_dialogue.py)",
            )
        self.name = f"{self.card.id}-v{self.card.version}"  # what a calibration names
        self.id = f"{self.name}+{self.card.encoder}"
        self._memo: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` clipped to ``max_chars``, each distinct text encoded once per
        process (calls repeat short turns and template answers)."""
        clipped = [t[: self.card.max_chars] for t in texts]
        if not clipped:
            return np.zeros((0, self.card.dim), np.float32)
        with self._lock:
            known = {t: self._memo.get(t) for t in clipped}
            todo = [t for t, v in known.items() if v is None]
            if todo:
                known.update(zip(todo, self.encoder.encode(todo), strict=True))
                if len(self._memo) + len(todo) > 50_000:  # bounded memory: start over
                    self._memo.clear()
                self._memo.update((t, known[t]) for t in todo)
        return np.stack([known[t] for t in clipped])

    def features(self, blocks: list[Block]) -> np.ndarray:
        emb = self._block_embeddings(blocks)
        return dialogue_features(blocks, emb, self.turn_w, self.turn_b, self.card)

    def _block_embeddings(self, blocks: list[Block]) -> dict[int, np.ndarray]:
        """Embeddings of every customer block and of the last agent block."""
        last_agent = max((b for b, blk in enumerate(blocks) if blk[0] == AGENT), default=None)
        wanted = [b for b, blk in enumerate(blocks) if blk[0] == CUSTOMER or b == last_agent]
        vecs = self.embed([blocks[b][2] for b in wanted])
        return dict(zip(wanted, vecs, strict=True))

    def score(self, turns: Sequence[tuple[str, str]]) -> DialogueScore:
        """Satisfaction, risk logit and, per customer block tried, how much the risk logit
        falls when that block is left out (what moved the score)."""
        blocks = blocks_of(turns)
        emb = self._block_embeddings(blocks)
        cust = [b for b, blk in enumerate(blocks) if blk[0] == CUSTOMER]
        ce = np.stack([emb[b] for b in cust]) if cust else np.zeros((0, self.card.dim))
        repeats = Repeats.of(ce)
        features = dialogue_features(
            blocks, emb, self.turn_w, self.turn_b, self.card, best=repeats.best()
        )
        x = self._standard(features)
        z = float(x @ self.risk_w + self.risk_b)
        sat = float(np.clip(x @ self.sat_w + self.sat_b, -2.0, 2.0))
        moved = []
        if len(cust) > 1:
            readout = ce @ self.turn_w + self.turn_b
            tried = sorted(np.argsort(readout, kind="stable")[: self.card.evidence_candidates])
            for i in tried:
                b = cust[i]
                rest = [blk for k, blk in enumerate(blocks) if k != b]
                sub = {(k if k < b else k - 1): v for k, v in emb.items() if k != b}
                xs = self._standard(
                    dialogue_features(
                        rest, sub, self.turn_w, self.turn_b, self.card, best=repeats.best(int(i))
                    )
                )
                moved.append((b, z - float(xs @ self.risk_w + self.risk_b)))
        elif cust:
            moved.append((cust[0], z - self.risk_b))
        return DialogueScore(satisfaction=sat, z=z, blocks=blocks, moved=moved)

    def _standard(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


@dataclass
class Repeats:
    """For each customer block, its two highest cosines with an earlier customer block (and
    which block gave the highest), so that leaving any block out needs no new products."""

    top1: np.ndarray  # (n,), -inf where there is no earlier block
    arg1: np.ndarray  # (n,), the earlier block of top1 (-1: none)
    top2: np.ndarray  # (n,), -inf where there is no second earlier block

    ROWS = 512  # products computed this many rows at a time: memory linear in the call

    @classmethod
    def of(cls, ce: np.ndarray) -> Repeats:
        n = len(ce)
        top1 = np.full(n, -np.inf)
        top2 = np.full(n, -np.inf)
        arg1 = np.full(n, -1)
        for start in range(0, n, cls.ROWS):  # n <= ROWS: the one product ce @ ce.T
            stop = min(n, start + cls.ROWS)
            sims = (ce[start:stop] @ ce[:stop].T).astype(np.float64)
            rows = np.arange(start, stop)[:, None]
            sims[np.arange(stop)[None, :] >= rows] = -np.inf  # earlier blocks only
            order = np.argsort(-sims, axis=1, kind="stable")[:, :2]
            picked = np.take_along_axis(sims, order, axis=1)
            top1[start:stop], arg1[start:stop] = picked[:, 0], order[:, 0]
            if picked.shape[1] > 1:
                top2[start:stop] = picked[:, 1]
        return cls(top1=top1, arg1=arg1, top2=top2)

    def best(self, without: int | None = None) -> list[float]:
        """Each block's highest cosine with an earlier block, in order, for the dialogue
        without customer block ``without`` (its first remaining block has none)."""
        if without is None:
            return [float(v) for v in self.top1[1:]]
        out = []
        for k in range(1, len(self.top1)):
            if k == without:
                continue
            v = self.top2[k] if self.arg1[k] == without else self.top1[k]
            if np.isfinite(v):
                out.append(float(v))
        return out


def feature_width(dim: int) -> int:
    return len(EMBEDDINGS) * dim + len(TURN_FEATURES) + len(SHAPE_FEATURES)


def feature_names(dim: int) -> list[str]:
    return [f"{e}[{k}]" for e in EMBEDDINGS for k in range(dim)] + [
        *TURN_FEATURES,
        *SHAPE_FEATURES,
    ]


def dialogue_features(
    blocks: list[Block],
    emb: dict[int, np.ndarray],
    turn_w: np.ndarray,
    turn_b: float,
    card: DialogueCard,
    best: list[float] | None = None,
) -> np.ndarray:
    """The feature vector (:func:`feature_names`) of one dialogue from its blocks and the
    embeddings of its customer blocks and last agent block. ``best``: each customer block's
    highest cosine with an earlier one (:class:`Repeats`), computed here when not given."""
    dim = card.dim
    zero = np.zeros(dim, np.float32)
    cust = [b for b, blk in enumerate(blocks) if blk[0] == CUSTOMER]
    agents = [b for b, blk in enumerate(blocks) if blk[0] == AGENT]
    last_agent = agents[-1] if agents else None
    ce = np.stack([emb[b] for b in cust]) if cust else np.zeros((0, dim), np.float32)
    parts = [
        ce[-1] if cust else zero,
        ce[0] if cust else zero,
        ce.mean(0) if cust else zero,
        emb[last_agent] if last_agent is not None else zero,
    ]
    s = ce @ turn_w + turn_b if cust else np.zeros(0)
    # how the customer moved after each agent answer: the change between the customer blocks
    # before and after it
    moved = [  # agents is sorted: an answer between two customer blocks, by bisection
        s[k] - s[k - 1]
        for k in range(1, len(cust))
        if bisect_right(agents, cust[k - 1]) < bisect_left(agents, cust[k])
    ]
    turn = ([s[0], s[-1], s.min(), s.max(), s.mean(), s[-1] - s[0]] if cust else [0.0] * 6) + (
        [float(np.mean(moved)), float(min(moved))] if moved else [0.0, 0.0]
    )
    if best is None:
        best = Repeats.of(ce).best()
    shape = [
        np.log1p(len(cust)),
        np.log1p(len(agents)),
        float(bool(blocks) and blocks[-1][0] == CUSTOMER),
        float(sum(1 for b in cust if last_agent is None or b > last_agent)),
        max(best, default=0.0),
        float(sum(1 for v in best if v >= card.repeat_similarity)),
        np.log1p(len(blocks[cust[-1]][2])) if cust else 0.0,
        float(any(a > cust[0] for a in agents)) if cust else 0.0,
    ]
    return np.concatenate([*parts, np.asarray(turn + shape, np.float32)]).astype(np.float32)


@lru_cache(maxsize=4)
def load_dialogue_model(directory: str | Path = DEFAULT_MODEL) -> DialogueModel:
    """The model in ``directory``, loaded once per process."""
    return DialogueModel(Path(directory))
