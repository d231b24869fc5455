"""The summary a run ends with: what was scored, what failed and why, where to look next."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from pipeline.allocator import in_use
from pipeline.archive import display
from pipeline.process import CallOutcome
from pipeline.timing import sum_stage_seconds


class RunSummary(BaseModel):
    run_id: int | None = None
    archive: str
    database_url: str
    calls: int
    scored: int
    skipped: int
    failed: int
    mean_score_pct: float | None = Field(
        None, description="mean of total/max over calls scored now"
    )
    auto_fail: int = 0
    needs_review: int = 0
    risk_levels: dict[str, int] = Field(default_factory=dict)
    audio_seconds: float = 0.0
    stage_seconds: dict[str, float] = Field(
        default_factory=dict, description="seconds per stage, summed over the calls of the run"
    )
    failures: list[dict[str, str]] = Field(default_factory=list)
    not_retried: int = Field(0, description="failed before, unchanged since: not tried again")
    busy: int = Field(0, description="held by another run at the same time")
    not_processed: int = Field(
        0, description="not processed: the run stopped, or the store stayed away for the call"
    )
    stopped: str | None = Field(None, description="why the run stopped early")
    allocator: str = Field(
        default_factory=in_use, description="the C allocator the run's process ran on (QA_MALLOC)"
    )

    @property
    def exit_code(self) -> int:
        """``callqa run``'s exit status: 0 when every call was scored (now or before), failed
        for a reason of its own, or was held by another run; 1 when the run stopped or left
        a call unprocessed (the store stayed away)."""
        return 1 if self.stopped or self.not_processed else 0

    def one_line(self) -> str:
        mean = f"{self.mean_score_pct:.1f}%" if self.mean_score_pct is not None else "n/a"
        extra = "".join(
            f", {n} {what}"
            for n, what in (
                (self.not_retried, "failed before and unchanged (not retried)"),
                (self.busy, "held by another run"),
                (self.not_processed, "not processed (run stopped or store away)"),
            )
            if n
        )
        return (
            f"{self.calls} calls: {self.scored} scored, {self.skipped} already scored, "
            f"{self.failed} failed{extra}; mean score {mean}; {self.auto_fail} auto-fail, "
            f"{self.needs_review} need review"
        )

    def render(self) -> str:
        """The human summary ``callqa run`` prints."""
        lines = [f"callqa run #{self.run_id} over {display(self.archive)}", "  " + self.one_line()]
        if self.stopped:
            lines.append(f"  STOPPED: {self.stopped}; what is listed as scored is stored")
        if self.risk_levels:
            levels = ", ".join(f"{k} {v}" for k, v in sorted(self.risk_levels.items()))
            lines.append(f"  complaint risk: {levels}")
        if self.audio_seconds:
            lines.append(f"  audio processed: {self.audio_seconds / 60:.1f} min")
        if self.stage_seconds:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items())
            lines.append(
                f"  seconds per stage (summed over calls; allocator {self.allocator}): {stages}"
            )
        for failure in self.failures:
            lines.append(f"  FAILED {display(failure['call_id'])}: {display(failure['error'])}")
        db = self.database_url
        lines += [
            "next:",
            f"  callqa calls --db {db}            # every stored call and its score",
            f"  callqa calls --db {db} --json     # the same as JSON",
        ]
        return "\n".join(lines)


def summarise(
    outcomes: list[CallOutcome],
    *,
    run_id: int | None,
    archive: str,
    database_url: str,
    stopped: str | None = None,
) -> RunSummary:
    status = Counter(o.status for o in outcomes)
    scored = [o for o in outcomes if o.status == "scored"]
    pcts = [100.0 * o.total / o.max for o in scored if o.max]
    return RunSummary(
        run_id=run_id,
        archive=archive,
        database_url=database_url,
        calls=len(outcomes),
        scored=status["scored"],
        skipped=status["skipped"],
        failed=status["failed"],
        mean_score_pct=round(sum(pcts) / len(pcts), 2) if pcts else None,
        auto_fail=sum(1 for o in scored if o.auto_fail),
        needs_review=sum(1 for o in scored if o.needs_review),
        risk_levels=dict(Counter(o.risk_level for o in scored if o.risk_level)),
        audio_seconds=round(sum(o.audio_seconds or 0 for o in scored), 1),
        stage_seconds=sum_stage_seconds([o.stage_seconds for o in outcomes]),
        failures=[
            {"call_id": display(o.call_id), "error": display(o.error or "unknown")}
            for o in outcomes
            if o.status == "failed" or (o.status == "stopped" and o.error)
        ],
        not_retried=sum(1 for o in outcomes if o.status == "failed" and o.retried is False),
        busy=status["busy"],
        not_processed=status["stopped"],
        stopped=stopped,
    )
