"""What a machine result was produced with, as one hash: the key of idempotent re-runs.

Two results of a call with the same fingerprint are the same result (a re-run skips or
re-saves it); a new ASR model, compute type, rubric version or pipeline version gives a new
fingerprint and so a new, versioned result row.
"""

from __future__ import annotations

import hashlib
import json

from pipeline import __version__
from pipeline.schema import Result


def fingerprint(
    *,
    asr_model: str | None,
    compute_type: str | None,
    rubric_id: str,
    rubric_version: int | str,
    rubric_sha256: str | None = None,
    pipeline_version: str | None = __version__,
) -> str:
    """sha256 hex of the settings and rubric a result is scored with.

    The flow calls this *before* transcribing (from its Settings and the loaded rubric) to
    ask :meth:`Store.is_scored`; it must pass the same values the stages record in
    ``Result.produced_by`` and ``Result.rubric``, which :func:`result_fingerprint` reads.
    """
    key = {
        "asr_model": asr_model,
        "compute_type": compute_type,
        "rubric_id": rubric_id,
        "rubric_version": str(rubric_version),
        "rubric_sha256": rubric_sha256,
        "pipeline_version": pipeline_version,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def result_fingerprint(result: Result) -> str:
    """The fingerprint of a Result, from its ``produced_by`` and ``rubric``."""
    made = result.produced_by
    return fingerprint(
        asr_model=made.asr_model if made else None,
        compute_type=made.compute_type if made else None,
        rubric_id=result.rubric.id,
        rubric_version=result.rubric.version,
        rubric_sha256=result.rubric.sha256,
        pipeline_version=made.pipeline_version if made else None,
    )
