"""Archive discovery: folders, manifests, and the errors that must name the file and reason."""

from __future__ import annotations

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
    (tmp_path / "manifest.csv").write_text(
        "file,agent_channel\na.wav,three\nb.wav,1\n", encoding="utf-8"
    )
    bad, good = discover(tmp_path)
    assert "manifest.csv:2" in bad.manifest_error and "agent_channel" in bad.manifest_error
    assert good.agent_channel == 1 and not getattr(good, "manifest_error", None)


@pytest.mark.parametrize(
    "content, message",
    [
        ("call_id,agent_id\n1,2\n", "required column 'file'"),
        ("file,call_id\na.wav,dup\nb.wav,dup\n", "used twice"),
        ("file\n\n,\n", "more fields than the header"),
        ("file,team\n,blue\n", "empty .file."),
    ],
)
def test_broken_manifests_are_rejected_with_the_reason(tmp_path, content, message):
    (tmp_path / "manifest.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ArchiveError, match=message) as info:
        discover(tmp_path)
    assert "manifest.csv" in str(info.value)


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="archive not found"):
        discover(tmp_path / "nope")
