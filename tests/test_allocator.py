"""``QA_MALLOC``: callqa runs on tcmalloc where it is installed, and a run says which allocator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline.allocator import MALLOC_ENV, AllocatorError, chosen, in_use, library

CALLQA = [sys.executable, "-m", "pipeline.cli"]
needs_tcmalloc = pytest.mark.skipif(
    library("tcmalloc") is None,
    reason="libtcmalloc-minimal4 (Debian) is not installed: make setup installs it",
)
# what a process entry point does, then which allocator the process ended up on
ENTRY = "from pipeline.allocator import preload, in_use; preload(); print(in_use())"


def _env(**changes: str | None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "CALLQA_MALLOC_PRELOADED")
    }
    for key, value in changes.items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    return env


@needs_tcmalloc
@pytest.mark.parametrize(
    "setting, expected",
    [(None, "tcmalloc"), ("tcmalloc", "tcmalloc"), ("TCMalloc ", "tcmalloc"), ("system", "system")],
)
def test_an_entry_point_runs_on_the_chosen_allocator(setting, expected) -> None:
    out = subprocess.run(
        [sys.executable, "-c", ENTRY],
        capture_output=True,
        text=True,
        env=_env(**{MALLOC_ENV: setting}),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_this_test_process_runs_on_the_system_allocator() -> None:
    """The check reads the process's own mappings: pytest was not started with a preload."""
    assert in_use() == ("tcmalloc" if "tcmalloc" in os.environ.get("LD_PRELOAD", "") else "system")


@pytest.mark.parametrize("value", ["jemalloc", "glibc", "1"])
def test_an_unknown_allocator_is_refused_naming_the_variable(monkeypatch, value) -> None:
    monkeypatch.setenv(MALLOC_ENV, value)
    with pytest.raises(AllocatorError, match=f"{MALLOC_ENV}='{value}'"):
        chosen()
    out = subprocess.run(
        [*CALLQA, "calls", "--db", "sqlite://"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert f"callqa: error: {MALLOC_ENV}='{value}'" in out.stderr


@needs_tcmalloc
def test_callqa_run_reports_its_allocator(tmp_path) -> None:
    """The whole entry point: ``callqa run --json`` over an archive of one broken file
    (nothing to transcribe) ran on tcmalloc and says so, and on glibc when asked."""
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    for setting in ("tcmalloc", "system"):
        db = f"sqlite:///{tmp_path / f'{setting}.db'}"
        out = subprocess.run(
            [*CALLQA, "run", str(tmp_path / "archive"), "--db", db, "--json"],
            capture_output=True,
            text=True,
            env=_env(**{MALLOC_ENV: setting, "PREFECT_HOME": str(tmp_path / "prefect")}),
            timeout=600,
        )
        summary = json.loads(out.stdout)
        assert summary["failed"] == 1, out.stderr[-2000:]
        assert summary["allocator"] == setting
