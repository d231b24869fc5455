"""Archive discovery: folders, manifests, and the errors that must name the file and reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.archive import ArchiveError, discover


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_without_manifest_uses_file_stems(tmp_path):
    _touch(tmp_path / "b.wav")
    _touch(tmp_path / "sub" / "a.flac")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "chat-7.json", b"{}")
    jobs = discover(tmp_path)
    assert [j.call_id for j in jobs] == ["b", "chat-7", "a"]
    assert all(Path(j.source).exists() for j in jobs)


def test_manifest_metadata_and_order(tmp_path):
    _touch(tmp_path / "x.wav")
    (tmp_path / "manifest.csv").write_text(
        "file,call_id,agent_id,team,agent_channel,language\n"
        "x.wav,20261101-1,A7,blue,right,en\n"
        "missing.wav,,A8,red,0,zh\n",
        encoding="utf-8",
    )
    first, second = discover(tmp_path)
    assert (first.call_id, first.agent_id, first.team, first.agent_channel) == (
        "20261101-1",
        "A7",
        "blue",
        1,
    )
    # A row naming a missing file is still a job: processing records the failure.
    assert second.call_id == "missing" and second.agent_channel == 0


def test_bad_manifest_row_becomes_a_failed_job_not_a_failed_batch(tmp_path):
    _touch(tmp_path / "b.wav")  # a row naming a missing file is refused at discovery
    (tmp_path / "manifest.csv").write_text(
        "file,agent_channel\na.wav,three\nb.wav,1\n", encoding="utf-8"
    )
    bad, good = discover(tmp_path)
    assert "manifest.csv:2" in bad.manifest_error and "agent_channel" in bad.manifest_error
    assert good.agent_channel == 1 and not getattr(good, "manifest_error", None)


@pytest.mark.parametrize(
    "content, message",
    [
        ("call_id,agent_id\n1,2\n", "no 'file' column"),
        ("file\n\n,\n", None),  # blank lines only: no jobs
        ("file,team\n,blue\n", "empty .file."),
        ("file\na.wav,extra\n", "more fields"),
    ],
)
def test_broken_manifest_rows_fail_their_calls_not_the_batch(tmp_path, content, message):
    _touch(tmp_path / "good.wav")
    (tmp_path / "manifest.csv").write_text(content + "good.wav\n" * 0, encoding="utf-8")
    jobs = discover(tmp_path)
    refused = [j for j in jobs if j.manifest_error and "not listed" not in j.manifest_error]
    if message is None:
        assert refused == []
    else:
        assert len(refused) == 1
        assert "manifest.csv:2" in refused[0].manifest_error
        assert __import__("re").search(message, refused[0].manifest_error)
    # the recording no row names is not skipped silently either
    unlisted = [j for j in jobs if "not listed" in (j.manifest_error or "")]
    assert [j.call_id for j in unlisted] == ["good.wav"] or "file" not in content.split("\n")[0]


def test_duplicate_manifest_id_fails_the_later_row_only(tmp_path):
    _touch(tmp_path / "a.wav")
    _touch(tmp_path / "b.wav")
    (tmp_path / "manifest.csv").write_text("file,call_id\na.wav,dup\nb.wav,dup\n", encoding="utf-8")
    first, second = discover(tmp_path)
    assert first.call_id == "dup" and first.manifest_error is None
    assert second.call_id == "dup~2" and "already used" in second.manifest_error
    assert "b.wav" in second.manifest_error


def test_name_clash_gives_each_file_its_own_id(tmp_path):
    _touch(tmp_path / "a.wav")
    _touch(tmp_path / "a.mp3")
    _touch(tmp_path / "sub" / "a.flac")
    _touch(tmp_path / "b.wav")
    jobs = discover(tmp_path)
    assert sorted(j.call_id for j in jobs) == ["a.mp3", "a.wav", "b", "sub/a.flac"]
    assert not any(j.manifest_error for j in jobs)


@pytest.fixture()
def hostile(tmp_path) -> tuple[Path, Path]:
    """An archive with links out of it, a dangling link, a folder named like audio and bad names."""
    outside = tmp_path / "outside"
    _touch(outside / "secret.wav", b"RIFF-secret")
    archive = tmp_path / "archive"
    _touch(archive / "good.wav")
    (archive / "link_out.wav").symlink_to("../outside/secret.wav")
    (archive / "link_etc.wav").symlink_to("/etc/passwd")
    (archive / "dangling.wav").symlink_to("nowhere.wav")
    (archive / "inside_link.wav").symlink_to("good.wav")
    (archive / "x.wav").mkdir()
    (archive / "dirlink.wav").symlink_to(outside)
    _touch(archive / "new\nline.wav")
    _touch(archive / os.fsdecode(b"caf\xe9.wav"))
    return archive, outside


def test_hostile_folder_nothing_outside_nothing_skipped(hostile):
    archive, _ = hostile
    jobs = {j.call_id: j for j in discover(archive)}
    ok = {c for c, j in jobs.items() if not j.manifest_error}
    assert ok == {"good", "inside_link", "new_line"}  # the newline is not in the call id
    reasons = {c: j.manifest_error for c, j in jobs.items() if j.manifest_error}
    assert "outside" in reasons["link_out"] and "not opened" in reasons["link_out"]
    assert "/etc/passwd" in reasons["link_etc"]
    assert "dangling" in reasons["dangling"]
    assert "folder" in reasons["x"] and "folder" in reasons["dirlink"]
    bad_utf8 = next(c for c in reasons if c.startswith("caf"))
    assert "not valid UTF-8" in reasons[bad_utf8] and "\\xe9" in reasons[bad_utf8]
    for job in jobs.values():  # ids and sources print and store as UTF-8 text
        job.call_id.encode("utf-8")
        job.source.encode("utf-8")
        assert all(c.isprintable() for c in job.call_id)


def test_manifest_cannot_point_outside(hostile):
    archive, outside = hostile
    (archive / "manifest.csv").write_text(
        "file,call_id\n"
        "good.wav,good\n"
        "../../../etc/passwd,etc\n"
        "/etc/hostname,host\n"
        f"{outside / 'secret.wav'},abs_secret\n"
        "../outside/secret.wav,rel_secret\n"
        "link_out.wav,link\n"
        "x.wav,folder\n",
        encoding="utf-8",
    )
    jobs = {j.call_id: j for j in discover(archive)}
    assert jobs["good"].manifest_error is None
    for call_id in ("etc", "host", "abs_secret", "rel_secret", "link"):
        assert "outside" in jobs[call_id].manifest_error, call_id
        assert "manifest.csv:" in jobs[call_id].manifest_error
    assert "folder" in jobs["folder"].manifest_error
    # files in the folder that no row names are recorded, not skipped
    assert "not listed" in jobs["new_line.wav"].manifest_error
    (archive / "extra.wav").write_bytes(b"x")
    assert "not listed" in {j.call_id: j for j in discover(archive)}["extra.wav"].manifest_error
    assert "inside_link.wav" not in jobs  # the same file as the listed good.wav
    assert "dangling" in jobs["dangling.wav"].manifest_error


def test_unreadable_archive_refuses_the_run(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    with pytest.raises(ArchiveError, match="not readable"):
        discover(locked)


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="archive not found"):
        discover(tmp_path / "nope")
