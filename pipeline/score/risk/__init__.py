"""Complaint risk (DESIGN.md Result JSON ``risk``): P(this customer escalates or churns angry).

Public API: :func:`assess_risk`. Models, signals and configuration load once per process,
lazily, on the first call.
"""

from __future__ import annotations

from typing import Any

from pipeline.schema import Risk, Transcript

__all__ = ["assess_risk"]


def assess_risk(transcript: Transcript, metrics: dict[str, Any] | None = None) -> Risk:
    """Calibrated complaint risk of one call with the evidence utterances that drive it.

    ``metrics`` (optional, from scripts_check) may carry ``long_silences`` / ``silences`` /
    ``max_silence`` and ``agent_interruptions`` / ``interruptions`` (counts or event lists).
    """
    from pipeline.score.risk.engine import assess

    return assess(transcript, metrics)
