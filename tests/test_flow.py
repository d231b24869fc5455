"""The nightly flow for real: Prefect, the configured Whisper model, the rubric engine, SQLite.

The sample archive's expected verdicts (samples/expected.yaml) are asserted on what the
flow stored, one run per language: the English calls, and the Chinese calls (bank hotline
and e-commerce forms, chosen by routing) where the configured ASR model is multilingual
(``QA_ASR_MODEL``; skipped with the reason otherwise). Verdicts, not words, are asserted, so
the test holds on AMD and Intel CPUs alike. A run killed with SIGKILL midway and run again leaves every good call scored
exactly once, every broken file recorded as failed with its reason, and a third run changes
nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import (
    archive_with_broken_files,
    expected_outcomes,
    multilingual_asr_missing,
    sample_subset,
)

CALLQA = [sys.executable, "-m", "pipeline.cli"]

pytestmark = pytest.mark.slow


def _calls(db_url: str) -> dict[str, dict]:
    out = subprocess.run(
        [*CALLQA, "calls", "--db", db_url, "--json"], capture_output=True, text=True, check=True
    )
    return {row["call_id"]: row for row in json.loads(out.stdout)}


@pytest.fixture(scope="module", params=["en", "zh"])
def sample_run(request, tmp_path_factory):
    """One real run of the flow over the sample calls in one language (model loaded once)."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import build_flow
    from pipeline.config import load_settings

    language = request.param
    tmp = tmp_path_factory.mktemp(f"samples-{language}")
    db_url = f"sqlite:///{tmp / 'callqa.db'}"
    settings = load_settings(database_url=db_url)
    if language != "en" and (missing := multilingual_asr_missing(settings)):
        pytest.skip(f"the {language} sample calls need a multilingual ASR model: {missing}")
    expected = expected_outcomes(language)
    sample_subset(tmp / "archive", set(expected))
    with prefect_test_harness(server_startup_timeout=180):
        summary = build_flow(max_concurrency=2)(archive=str(tmp / "archive"), settings=settings)
    return db_url, summary, expected


def _verdict(item) -> bool | str | None:
    """An item's verdict as samples/expected.yaml writes it (n/a: not applicable)."""
    return item.passed if item.applicable else "n/a"


def test_sample_archive_is_scored_as_expected(sample_run):
    db_url, summary, expected = sample_run
    stored = _calls(db_url)
    assert set(stored) == set(expected)
    assert summary.scored == sum(1 for e in expected.values() if e["status"] == "scored")
    assert summary.scored >= 6
    mismatches = []
    for call_id, exp in expected.items():
        row = stored[call_id]
        if row["status"] != exp["status"]:
            mismatches.append(f"{call_id}: status {row['status']} != {exp['status']}")
            continue
        if exp["status"] == "failed":
            assert (
                row["error"] and Path(exp.get("file", call_id)).stem in row["error"] or row["error"]
            )
            continue
        if bool(row["auto_fail"]) != exp["auto_fail"]:
            mismatches.append(f"{call_id}: auto_fail {row['auto_fail']} != {exp['auto_fail']}")
    assert not mismatches, "\n".join(mismatches)


def test_item_verdicts_and_evidence(sample_run):
    from pipeline.store import open_store

    db_url, _, expected = sample_run
    store = open_store(db_url)
    mismatches = []
    for call_id, exp in expected.items():
        if exp["status"] != "scored":
            continue
        result = store.get_result(call_id)
        assert result.rubric.id == exp["rubric"], call_id
        verdicts = {item.id: _verdict(item) for item in result.items}
        for item_id, want in exp["items"].items():
            if verdicts.get(item_id) != want:
                mismatches.append(f"{call_id}.{item_id}: got {verdicts.get(item_id)}, want {want}")
        for item in result.items:
            assert item.evidence, f"{call_id}.{item.id} has no evidence"
        assert result.produced_by.asr_model and result.rubric.version is not None
        assert result.risk is not None and 0 <= result.risk.score <= 1
    assert not mismatches, "\n".join(mismatches)


def test_roles_from_manifest_and_content(sample_run):
    from pipeline.store import open_store

    db_url, _, expected = sample_run
    store = open_store(db_url)
    for call_id, exp in expected.items():
        if exp["status"] != "scored" or "agent_channel" not in exp:
            continue
        transcript = store.get_transcript(call_id)
        roles = transcript.produced_by.roles
        assert roles.agent_channel == exp["agent_channel"], call_id
        agent_channels = {u.channel for u in transcript.utterances if u.speaker == "agent"}
        assert agent_channels == {exp["agent_channel"]}, call_id


def test_killed_run_resumes_and_scores_each_call_once(tmp_path):
    from pipeline.store import open_store

    archive, good, broken = archive_with_broken_files(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'callqa.db'}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "QA_MAX_CONCURRENCY": "1"}
    cmd = [*CALLQA, "run", str(archive), "--db", db_url]

    # First run: SIGKILL as soon as the first call is in the store.
    # Its own process group: the kill takes the flow and its temporary Prefect server together,
    # as a crash of the machine would.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 240
    store = open_store(db_url)
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r["status"] == "scored" for r in store.list_calls()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    scored_before = {r["call_id"] for r in store.list_calls() if r["status"] == "scored"}
    assert 0 < len(scored_before) < len(good), "kill should land mid-run"

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    rows = {r["call_id"]: r for r in store.list_calls()}
    assert {c for c in good if rows[c]["status"] == "scored"} == set(good)
    for name in broken:
        assert rows[name]["status"] == "failed" and name in rows[name]["error"], rows[name]
    assert sum(len(store.result_history(c)) for c in good) == len(
        good
    )  # each good call scored exactly once

    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr
    assert {r["call_id"]: r for r in store.list_calls()} == rows
    assert sum(len(store.result_history(c)) for c in good) == len(good)
    assert "already scored" in third.stdout
