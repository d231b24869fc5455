"""Composition (``all_of`` / ``any_of`` / ``not``) and the rubric ``check`` type: a
discriminated union over every registered operator, tagged by the YAML key.

``check: {all_of: [{required: {...}}, {order: {...}}]}``; ``check: {not: {repeated: ...}}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field

# imported for their @register side effect: every operator must be known before the union
from pipeline.scripts_check import conversation, llm_item, order  # noqa: F401
from pipeline.scripts_check.operators import OPERATORS, Context, Operator, Outcome, register


def tag_check(value: Any) -> Any:
    """``{required: {...}}`` → ``{"op": "required", ...}`` for the discriminated union."""
    if isinstance(value, Operator):
        return value
    valid = ", ".join(sorted(OPERATORS))
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping with one operator ({valid})")
    if len(value) != 1:
        got = ", ".join(map(str, value)) or "none"
        raise ValueError(f"needs exactly one operator, got {len(value)} ({got}); valid: {valid}")
    ((name, body),) = value.items()
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; valid: {valid}")
    field = OPERATORS[name].body_field
    if field is not None:
        return {"op": name, field: body}
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise ValueError(f"{name}: must be a mapping of settings")
    if "op" in body:
        raise ValueError(f"{name}: unknown key 'op'")
    return {**body, "op": name}


def _children(ctx: Context, checks: list[Operator]) -> list[tuple[Operator, Outcome]]:
    return [(c, c.evaluate(ctx)) for c in checks]


def _combine(kind: str, results: list[tuple[Operator, Outcome]]) -> Outcome:
    live = [(c, o) for c, o in results if o.applicable]
    if not live:
        return Outcome(None, "not applicable: no part applies", applicable=False)
    verdicts = [o.passed for _, o in live]
    if kind == "all_of":
        passed = False if False in verdicts else (None if None in verdicts else True)
    else:
        passed = True if True in verdicts else (None if None in verdicts else False)
    parts = [
        f"{c.op}: {'pass' if o.passed else 'fail' if o.passed is False else '?'} ({o.reason})"
        for c, o in live
    ]
    evidence = [e for _, o in live for e in o.evidence]
    deciding = [o for _, o in live if o.passed == passed] or [o for _, o in live]
    support = [e for o in deciding for e in o.support]
    return Outcome(passed, f"{kind}: " + "; ".join(parts), evidence, support=support)


@register
class AllOf(Operator):
    """Passes when every part passes (parts that do not apply are left out)."""

    op: Literal["all_of"] = "all_of"
    checks: list[Check] = Field(min_length=1)
    body_field = "checks"

    def evaluate(self, ctx: Context) -> Outcome:
        return _combine("all_of", _children(ctx, self.checks))

    def phrases_used(self) -> list[str]:
        return [p for c in self.checks for p in c.phrases_used()]


@register
class AnyOf(AllOf):
    """Passes when at least one part passes."""

    op: Literal["any_of"] = "any_of"

    def evaluate(self, ctx: Context) -> Outcome:
        return _combine("any_of", _children(ctx, self.checks))


@register
class Not(Operator):
    """Passes when its check fails (undecided stays undecided)."""

    op: Literal["not"] = "not"
    check: Check
    body_field = "check"

    def evaluate(self, ctx: Context) -> Outcome:
        o = self.check.evaluate(ctx)
        if not o.applicable or o.passed is None:
            return o
        return Outcome(
            not o.passed, f"not ({self.check.op}: {o.reason})", o.evidence, support=o.support
        )

    def phrases_used(self) -> list[str]:
        return self.check.phrases_used()


def _build_union():
    union = Union[tuple(OPERATORS.values())]  # noqa: UP007
    return Annotated[Annotated[union, Field(discriminator="op")], BeforeValidator(tag_check)]


Check = _build_union()
for _cls in (AllOf, AnyOf, Not):
    _cls.model_rebuild(_types_namespace={"Check": Check})
