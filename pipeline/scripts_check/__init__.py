"""Rubric engine: rubric YAML validated on load, script / order / conversation operators
composable with all_of / any_of / not, ASR- and paraphrase-tolerant matching (Chinese and
English), confidence-aware verdicts, evidence on every item."""

from pipeline.scripts_check.conversation import conversation_metrics
from pipeline.scripts_check.engine import ENGINE, ENGINE_VERSION, check_items
from pipeline.scripts_check.operators import OPERATORS, Operator, register
from pipeline.scripts_check.rubric import (
    Item,
    Rubric,
    RubricError,
    Section,
    load_rubric,
    parse_rubric,
)

__all__ = [
    "ENGINE",
    "ENGINE_VERSION",
    "OPERATORS",
    "Item",
    "Operator",
    "Rubric",
    "RubricError",
    "Section",
    "check_items",
    "conversation_metrics",
    "load_rubric",
    "parse_rubric",
    "register",
]
