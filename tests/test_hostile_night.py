"""A nightly batch nothing can break, round two (issue 34): honest exit codes, files that
change under the run, manifests and transcripts built to hurt, reports without formulas.

Each test here failed on the code before issue 34.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "samples" / "zh_transcripts"
CALLQA = [sys.executable, "-m", "pipeline.cli"]


@contextlib.contextmanager
def _small_filesystem(where: Path, size: str = "4m"):
    """A tmpfs of ``size`` mounted at ``where`` (root only), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s filesystem up to ``leave`` free bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave))


# --------------------------------------------------------------------------- 1. exit codes


@pytest.mark.slow
def test_a_run_stopped_by_a_full_disk_exits_1(tmp_path):
    """The store's disk fills up: the summary says STOPPED and ``callqa run`` exits 1."""
    from pipeline.store import open_store

    archive = tmp_path / "a"
    archive.mkdir()
    for i in range(5):
        shutil.copy(ZH / "bank_001_compliant.json", archive / f"c{i}.json")
    with _small_filesystem(tmp_path / "db") as db:
        url = f"sqlite:///{db / 'qa.db'}"
        open_store(url).engine.dispose()  # schema made while there is room
        _fill(db, leave=64 * 1024)  # room for the run's start, not for a call
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
        out = subprocess.run(
            [*CALLQA, "run", str(archive), "--db", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert "STOPPED" in out.stdout and "full" in out.stdout, out.stdout + out.stderr[-2000:]
    assert out.returncode == 1, out.stdout
