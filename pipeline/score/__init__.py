"""Scoring: rubric checks + complaint risk + the weighted form → one Result per call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.schema import Result, Risk, RubricRoute, ScoringConfig, Transcript
from pipeline.scripts_check import Rubric, check_items, conversation_metrics

if TYPE_CHECKING:
    from pipeline.llm.judge import Judge

RiskFn = Callable[[Transcript], Risk]


def default_risk_fn() -> RiskFn:
    """Complaint risk, :func:`pipeline.score.risk.assess_risk`: part of callqa, never optional
    (an import error there is a broken install and is raised, not read as "no risk")."""
    from pipeline.score.risk import assess_risk

    return assess_risk


def score_transcript(
    transcript: Transcript,
    rubric: Rubric,
    *,
    risk_fn: RiskFn | None = None,
    config: ScoringConfig | None = None,
    route: RubricRoute | None = None,
    judge: Judge | None = None,
) -> Result:
    """Run the rubric's checks, assess complaint risk, and fill in the form.

    ``config`` and ``route`` are recorded in the Result's provenance (see score_form).
    ``judge`` answers the rubric's ``llm`` questions, all in one request (None: no backend,
    they go to review), and writes the summary when ``config.llm.summary`` says so.
    """
    from pipeline.score.form import score_form

    questions = rubric.llm_checks()
    summary = bool(config is not None and config.llm is not None and config.llm.summary)
    asked = None
    if judge is not None and (questions or summary):
        language = transcript.language or rubric.language
        asked = judge.ask(transcript, questions, language, summary=summary)
    items = check_items(transcript, rubric, asked.answers if asked is not None else None)
    fn = risk_fn if risk_fn is not None else default_risk_fn()
    risk = None
    if fn is not None:
        if _takes_metrics(fn):  # assess_risk(transcript, metrics): silences, interruptions
            risk = fn(transcript, conversation_metrics(transcript, rubric.language))
        else:
            risk = fn(transcript)
    result = score_form(transcript, rubric, items, risk, config=config, route=route)
    if asked is not None and asked.summary is not None:
        result.summary = asked.summary
    return result


def _takes_metrics(fn: Callable) -> bool:
    import inspect

    try:
        return "metrics" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["RiskFn", "default_risk_fn", "score_transcript"]
