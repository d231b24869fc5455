"""Golden cases: rules tested like code (``callqa rubric test RUBRIC.yaml CASES.yaml``).

A cases file lists transcript snippets and the verdict each rubric item must give::

    rubric: zh_bank_hotline            # optional: the rubric the cases were written for
    cases:
      - id: greeting_with_job_number
        turns:                         # {role: text}, or a full utterance mapping
          - agent: 您好，欢迎致电华信银行信用卡中心，工号三八二七
          - customer: 你好
          - {speaker: agent, text: 请您稍等, pause: 15}   # pause: seconds of silence before
        expect: {greeting: true, job_number: true, apology: n/a, verify_identity: review}

Verdicts: ``true`` / ``false``; ``review`` (passed null, needs review); ``n/a`` (not
applicable). Optional ``auto_fail`` and ``needs_review`` check the form. Turns without
times are laid out one after another (0.5 s apart, plus ``pause``) at a natural speaking
rate (4 characters / 2.5 words per second), so timing operators can be tested too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.contracts import load_model
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check.rubric import Rubric, RubricError, _where
from pipeline.text import normalise

Verdict = Literal[True, False, "review", "n/a"]
_ROLES = ("agent", "customer", "unknown")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Case(_Strict):
    id: str = Field(min_length=1)
    description: str | None = None
    language: str | None = None
    duration: float | None = None
    turns: list[dict[str, Any]] = Field(min_length=1)
    expect: dict[str, Verdict | None] = Field(min_length=1)
    auto_fail: bool | None = None
    needs_review: bool | None = None

    @field_validator("turns")
    @classmethod
    def _turns(cls, turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for k, t in enumerate(turns):
            roles = [r for r in _ROLES if r in t]
            if roles and len(t) - ("pause" in t) != 1:
                raise ValueError(f"turn {k}: {{{roles[0]}: text}} takes only 'pause' beside it")
            if not roles and "text" not in t:
                raise ValueError(f"turn {k}: needs {{agent|customer|unknown: text}} or 'text'")
        return turns

    def transcript(self, language: str) -> Transcript:
        lang = self.language or language
        per_second = 4.0 if lang.startswith("zh") else 2.5
        utts, clock = [], 0.0
        for t in self.turns:
            t = dict(t)
            pause = float(t.pop("pause", 0.0))
            role = next((r for r in _ROLES if r in t), None)
            if role is not None:
                t = {"speaker": role, "text": str(t[role])}
            t.setdefault("start", round(clock + 0.5 + pause if utts else pause, 3))
            n = len(normalise(t["text"], lang))
            t.setdefault("end", round(t["start"] + max(1.0, n / per_second), 3))
            utts.append(Utterance.model_validate(t))
            clock = max(clock, utts[-1].end)
        return Transcript(call_id=self.id, language=lang, utterances=utts, duration=self.duration)


class CaseFile(_Strict):
    rubric: str | None = None
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseFailure:
    case: str
    item: str
    expected: Any
    got: Any
    reason: str

    def line(self) -> str:
        return f"FAIL {self.case}: {self.item}: expected {_show(self.expected)}, got {_show(self.got)} — {self.reason}"


def _show(v: Any) -> str:
    return (
        {True: "true", False: "false", None: "review"}.get(v, str(v))
        if not isinstance(v, str)
        else v
    )


def load_cases(path: str | Path) -> CaseFile:
    """Read and validate a cases file; :class:`RubricError` (file, path, reason) when broken."""
    return load_model(path, CaseFile, error=RubricError, where=_where)


def run_cases(
    rubric: Rubric, cases: CaseFile, path: str | Path = "<cases>", judge: Any = None
) -> tuple[int, list[CaseFailure]]:
    """Score every case with ``rubric``; (number of checks made, failures). ``judge``
    (:class:`pipeline.llm.judge.Judge`) answers its ``llm`` items; None: they go to review."""
    from pipeline.score import score_transcript

    ids = {i.id for _, i in rubric.items()}
    failures: list[CaseFailure] = []
    checks = 0
    for case in cases.cases:
        unknown = sorted(set(case.expect) - ids)
        if unknown:
            raise RubricError(
                path,
                f"cases[{case.id}].expect",
                f"unknown item(s) {', '.join(unknown)} (rubric {rubric.id})",
            )
        result = score_transcript(
            case.transcript(rubric.language), rubric, risk_fn=lambda t: None, judge=judge
        )
        by_id = {i.id: i for i in result.items}
        for item_id, want in case.expect.items():
            checks += 1
            it = by_id[item_id]
            got: Any = (
                "n/a" if not it.applicable else ("review" if it.passed is None else it.passed)
            )
            want = "review" if want is None else want
            if got != want:
                failures.append(CaseFailure(case.id, item_id, want, got, it.reason or ""))
        for key in ("auto_fail", "needs_review"):
            want = getattr(case, key)
            if want is not None:
                checks += 1
                if getattr(result, key) is not want:
                    failures.append(CaseFailure(case.id, key, want, getattr(result, key), "form"))
    return checks, failures
