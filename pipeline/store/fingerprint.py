"""What a machine result was produced with, as one hash: the key of idempotent re-runs.

The fingerprint is :meth:`ScoringConfig.fingerprint`, the hash of the one configuration
object recorded in ``Result.produced_by.config``. The flow asks :meth:`Store.is_scored`
with the fingerprint of the config it is about to use; the store keys result versions by
the fingerprint of the config the Result records. Both call the same method.
"""

from __future__ import annotations

from pipeline.schema import AsrConfig, Result, RubricConfig, ScoringConfig


def result_config(result: Result) -> ScoringConfig:
    """The ScoringConfig a Result records; for a Result written without one (an older
    ``callqa score`` file), the part of it its provenance and rubric still tell."""
    made = result.produced_by
    if made is not None and made.config is not None:
        return made.config
    return ScoringConfig(
        callqa_version=(made.pipeline_version if made else None) or "unknown",
        asr=AsrConfig(model=made.asr_model, compute_type=made.compute_type)
        if made is not None and made.asr_model
        else None,
        rubric=RubricConfig(
            id=result.rubric.id, version=result.rubric.version, sha256=result.rubric.sha256
        ),
    )


def result_fingerprint(result: Result) -> str:
    """The fingerprint of a Result: the hash of the configuration it records."""
    return result_config(result).fingerprint()
