"""Archive discovery: a folder of recordings, optionally with ``manifest.csv`` at its root.

One :class:`~pipeline.schema.CallJob` per recording (or per Transcript JSON, for calls that
come as text from chat or another ASR). Without a manifest the call id is the file's stem.
A manifest row that names a missing file is still a job: processing it records the failure,
so the nightly summary shows it instead of silently skipping it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import ValidationError

from pipeline.schema import CallJob

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".mp4", ".aac", ".wma", ".amr", ".gsm"}
)
TRANSCRIPT_SUFFIXES = frozenset({".json"})
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = (
    "file",
    "call_id",
    "agent_id",
    "agent_name",
    "team",
    "started_at",
    "direction",
    "agent_channel",
    "language",
    "rubric",
    "queue",
    "skill",
    "agent_group",
)


CHANNEL_NAMES = {"left": 0, "right": 1, "l": 0, "r": 1}


class ArchiveError(ValueError):
    """The archive itself cannot be read (missing folder, unreadable or malformed manifest)."""


def discover(archive: str | Path) -> list[CallJob]:
    """List the calls of an archive, in manifest order (or sorted by path without one)."""
    root = Path(archive)
    if not root.exists():
        raise ArchiveError(f"{root}: archive not found")
    if not root.is_dir():
        raise ArchiveError(f"{root}: archive must be a folder")
    manifest = root / MANIFEST_NAME
    jobs = _from_manifest(root, manifest) if manifest.exists() else _from_folder(root)
    _reject_duplicate_ids(jobs, manifest if manifest.exists() else root)
    return jobs


def is_transcript(job: CallJob) -> bool:
    return Path(job.source).suffix.lower() in TRANSCRIPT_SUFFIXES


def _from_folder(root: Path) -> list[CallJob]:
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in AUDIO_SUFFIXES | TRANSCRIPT_SUFFIXES
    )
    return [CallJob(call_id=p.stem, source=str(p)) for p in files]


def _from_manifest(root: Path, manifest: Path) -> list[CallJob]:
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "file" not in header:
                raise ArchiveError(f"{manifest}: required column 'file' is missing (has {header})")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{manifest}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise ArchiveError(f"{manifest}: malformed CSV: {exc}") from None

    jobs = []
    for line, row in enumerate(rows, start=2):
        if None in row:
            raise ArchiveError(f"{manifest}:{line}: more fields than the header has columns")
        row = {k.strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("file"):
            raise ArchiveError(f"{manifest}:{line}: empty 'file'")
        path = root / row["file"]
        fields = {k: row[k] for k in MANIFEST_COLUMNS if row.get(k)}
        fields.pop("file", None)
        fields.setdefault("call_id", Path(row["file"]).stem)
        if fields.get("agent_channel", "").lower() in CHANNEL_NAMES:
            fields["agent_channel"] = CHANNEL_NAMES[fields["agent_channel"].lower()]
        try:
            jobs.append(CallJob(source=str(path), **fields))
        except ValidationError as exc:
            # One bad row must not stop the batch: the call is recorded as failed with why.
            err = exc.errors()[0]
            column = ".".join(str(p) for p in err["loc"])
            jobs.append(
                CallJob(
                    call_id=fields["call_id"],
                    source=str(path),
                    manifest_error=f"{manifest}:{line}: column '{column}': {err['msg']}",
                )
            )
    return jobs


def _reject_duplicate_ids(jobs: list[CallJob], where: Path) -> None:
    seen: dict[str, str] = {}
    for job in jobs:
        if job.call_id in seen:
            raise ArchiveError(
                f"{where}: call_id {job.call_id!r} used twice ({seen[job.call_id]}, {job.source})"
            )
        seen[job.call_id] = job.source


def archive_for_day(pattern: str, day: str | None = None) -> str:
    """Expand ``{date}`` in an archive path: the given day, or yesterday (the nightly default).

    ``/recordings/{date}`` with no day → ``/recordings/2026-11-27`` when run on 2026-11-28.
    """
    if "{date}" not in pattern:
        return pattern
    import datetime as dt

    if day is None:
        day = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    else:
        dt.date.fromisoformat(day)  # a clear error on a malformed day
    return pattern.replace("{date}", day)
