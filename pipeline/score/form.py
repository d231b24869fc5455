"""The weighted inspection form: item verdicts → total, auto-fail, review flag, provenance.

Arithmetic (DOMAIN.md, 质检评分表):
- ``max`` is the sum of the points of applicable items (``applicable: false`` items, for
  context-conditional checks, are left out of both total and max);
- ``total`` is the sum of points earned; a failed ``critical`` item (red line, 红线) sets
  ``auto_fail`` and zeroes the total;
- an undecided item (``passed: null``) earns 0 and sets ``needs_review``; so do an
  auto-fail and a high complaint risk, the calls QA teams route to a human.
"""

from __future__ import annotations

from pipeline.schema import (
    ItemResult,
    Result,
    ResultProvenance,
    Risk,
    RubricRef,
    RubricRoute,
    ScoringConfig,
    Transcript,
    canonical_sha256,
)
from pipeline.scripts_check.engine import ENGINE, ENGINE_VERSION
from pipeline.scripts_check.rubric import Rubric


def item_check_sha256(rubric: Rubric, item) -> str:
    """Hash of what decides an item's verdict (its check, condition, red-line flag and the
    rubric's matching policy), not its points: a human override of the item survives a
    re-score only while this stays the same."""
    # fails_with (engine 15): what the items it fails with decide by, too; left out while
    # empty, so the items without it keep their hash
    others = {i.id: i for _, i in rubric.items()}
    extra = (
        {"fails_with": {k: item_check_sha256(rubric, others[k]) for k in item.fails_with}}
        if item.fails_with
        else {}
    )
    return canonical_sha256(
        {
            **extra,
            "check": _without_unset_options(item.check.model_dump(mode="json")),
            "when": _without_unset_options(item.when.model_dump(mode="json"))
            if item.when
            else None,
            "critical": item.critical,
            "confidence": rubric.confidence.model_dump(mode="json"),
            "semantic": _semantic_part(rubric),
        }
    )


# options added to operators after checks were stored (engines 10, 13), left out of the hash while
# unset, so an unchanged check keeps its hash and the human overrides on it survive a re-score
_LATER_OPTIONS = {"patterns": [], "if_first_only": None, "unless": []}


def _without_unset_options(dump):
    if isinstance(dump, dict):
        return {
            k: _without_unset_options(v)
            for k, v in dump.items()
            if not (k in _LATER_OPTIONS and v == _LATER_OPTIONS[k])
        }
    if isinstance(dump, list):
        return [_without_unset_options(v) for v in dump]
    return dump


def _semantic_part(rubric: Rubric) -> dict | None:
    """The paraphrase policy that decides verdicts: the rubric's block as written (None when
    absent or ``false``, as before English had it on by default), or the language default
    it runs with when on without a block (en), so that a changed default voids overrides."""
    policy, on = rubric.semantic_settings()
    if rubric.semantic is not None:
        if not rubric.semantic.enabled:
            return None
        return rubric.semantic.model_dump(mode="json", exclude={"enabled"})
    if not on:
        return None
    return {"default": policy.model_dump(mode="json", exclude={"enabled"})}


_CHECKS: dict[tuple[str, str, str], dict[str, str]] = {}


def _check_hashes(rubric: Rubric) -> dict[str, str]:
    """item id → :func:`item_check_sha256`, once per rubric file content."""
    key = (rubric.id, str(rubric.version), rubric.sha256 or "")
    if not rubric.sha256 or key not in _CHECKS:
        hashes = {item.id: item_check_sha256(rubric, item) for _, item in rubric.items()}
        if not rubric.sha256:
            return hashes
        _CHECKS[key] = hashes
    return _CHECKS[key]


def _round(x: float) -> float:
    return round(x, 4)


def form_total(items) -> tuple[float, bool]:
    """(total, auto_fail) of item verdicts under the form's rules, machine or human.

    ``items`` have ``applicable``, ``critical``, ``passed`` and ``points`` (awarded). A failed
    critical item (red line) zeroes the total; not-applicable items do not count.
    """
    applicable = [i for i in items if i.applicable]
    auto_fail = any(i.critical and i.passed is False for i in applicable)
    earned = sum(i.points for i in applicable if i.passed)
    return (0.0 if auto_fail else _round(earned)), auto_fail


def score_form(
    transcript: Transcript,
    rubric: Rubric,
    items: list[ItemResult],
    risk: Risk | None,
    *,
    config: ScoringConfig | None = None,
    route: RubricRoute | None = None,
) -> Result:
    """Combine item verdicts (from :func:`pipeline.scripts_check.check_items`) into a Result.

    ``config`` (what produced it, :func:`pipeline.scoring_config.build_scoring_config`) and ``route``
    (the rule that chose the rubric) are recorded in ``produced_by``; the fingerprint is
    the config's hash.
    """
    checks = _check_hashes(rubric)
    items = [i.model_copy(update={"check_sha256": checks.get(i.id)}) for i in items]
    applicable = [i for i in items if i.applicable]
    max_points = sum(i.max_points if i.max_points is not None else i.points for i in applicable)
    total, auto_fail = form_total(items)
    failed_critical = [i.id for i in applicable if i.critical and i.passed is False]
    needs_review = (
        auto_fail
        or any(i.needs_review for i in applicable)
        or (risk is not None and risk.level == "high")
    )

    sections = []
    for section in rubric.sections:
        own = [i for i in applicable if i.section == section.id]
        sections.append(
            {
                "id": section.id,
                "title": section.title,
                "points": _round(sum(i.points for i in own if i.passed)),
                "max": _round(sum(i.max_points or 0.0 for i in own)),
            }
        )

    source = transcript.produced_by.model_dump() if transcript.produced_by else {}
    source.pop("pipeline_version", None)
    produced_by = ResultProvenance(
        **source,
        transcript_sha256=canonical_sha256(transcript),
        scorer=f"{ENGINE} {ENGINE_VERSION}",
        rubric=RubricRef(
            id=rubric.id, version=rubric.version, title=rubric.title, sha256=rubric.sha256
        ),
        config=config,
        fingerprint=config.fingerprint() if config is not None else None,
        rubric_route=route,
    )
    return Result(
        call_id=transcript.call_id,
        rubric=RubricRef(
            id=rubric.id, version=rubric.version, title=rubric.title, sha256=rubric.sha256
        ),
        total=_round(total),
        max=_round(max_points),
        auto_fail=auto_fail,
        needs_review=needs_review,
        items=items,
        risk=risk,
        produced_by=produced_by,
        sections=sections,
        auto_fail_items=failed_critical,
        language=transcript.language,
    )
