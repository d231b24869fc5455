"""The one engine that runs a rubric's checks over a transcript: item verdicts + evidence."""

from __future__ import annotations

from pipeline.schema import ItemResult, Transcript
from pipeline.scripts_check.operators import Context
from pipeline.scripts_check.rubric import Rubric

ENGINE = "callqa.scripts_check"
ENGINE_VERSION = "1"


def check_items(transcript: Transcript, rubric: Rubric) -> list[ItemResult]:
    """Evaluate every item of ``rubric`` on ``transcript``, in rubric order.

    Only ``speaker``, ``start``, ``end`` and ``text`` of utterances are used, so a chat or
    text transcript scores exactly like an audio-derived one. Phrases are compared in the
    rubric's language. ``points`` is what the item earns (its full points when passed,
    0 when failed or undecided); the form applies auto-fail.
    """
    ctx = Context(transcript=transcript, language=rubric.language)
    results: list[ItemResult] = []
    for section, item in rubric.items():
        outcome = item.check.evaluate(ctx)
        results.append(
            ItemResult(
                id=item.id,
                section=section.id,
                title=item.title,
                passed=outcome.passed,
                points=item.points if outcome.passed else 0.0,
                max_points=item.points,
                critical=item.critical,
                needs_review=outcome.passed is None,
                applicable=outcome.applicable,
                reason=outcome.reason,
                evidence=outcome.evidence,
                check=item.check.op,
            )
        )
    return results
