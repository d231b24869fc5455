"""Archive discovery: a folder of recordings, optionally with ``manifest.csv`` at its root.

One :class:`~pipeline.schema.CallJob` per recording (or per Transcript JSON, for calls that
come as text from chat or another ASR). Without a manifest the call id is the file's stem.

The archive comes from other systems and people, so discovery trusts none of it:

- every path a job will read resolves (symlinks followed) inside the archive root; anything
  else becomes a job that is already refused (``manifest_error``) and is never opened;
- nothing is skipped silently: dangling links, folders with audio suffixes, names that are
  not UTF-8, files the manifest does not list, bad or duplicate manifest rows are all jobs
  refused with the reason, so the run records them as failed calls;
- call ids carry no control characters and stay unique (a clash of stems gives each file
  its relative path as id; a duplicate manifest id fails the later row).

Only an archive root that cannot be read refuses the whole run (:class:`ArchiveError`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from pipeline.config import RUBRICS_DIR
from pipeline.schema import CallJob
from pipeline.source import kind_of

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
    "customer_channel",
    "language",
    "rubric",
    "queue",
    "skill",
    "agent_group",
)
MAX_CALL_ID = 255  # calls.call_id is String(255)
# Longest value a manifest column may hold (the store's column sizes); a longer cell fails its
# row. A call id may be longer: it is cut to MAX_CALL_ID with a hash of the whole id.
FIELD_LIMITS = {
    "file": 4096,  # PATH_MAX
    "call_id": 4096,
    "agent_id": 255,
    "agent_name": 255,
    "team": 255,
    "started_at": 64,
    "direction": 32,
    "agent_channel": 8,
    "customer_channel": 8,
    "language": 16,
    "rubric": 4096,
    "queue": 255,
    "skill": 255,
    "agent_group": 255,
}
OTHER_FIELD_LIMIT = 4096  # a column callqa does not read
# A manifest over either limit refuses the night with the reason: split the archive.
MAX_MANIFEST_BYTES = 256 * 2**20
MAX_MANIFEST_ROWS = 250_000
# Characters no manifest cell may hold: C0/C1 controls, line and paragraph separators, and
# the bidirectional overrides that make a name read as another (Trojan Source).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")

CHANNEL_NAMES = {"left": 0, "right": 1, "l": 0, "r": 1}


class ArchiveError(ValueError):
    """The archive itself cannot be read (missing or unreadable folder)."""


class OutsideArchive(ValueError):
    """A path that resolves outside the roots it must stay in."""


def confined(path: str | Path, roots: list[Path], what: str = "file") -> Path:
    """``path`` with symlinks resolved, if it lies inside one of ``roots`` (already resolved).

    Raises :class:`OutsideArchive` (naming the path and its target) otherwise, and
    :class:`FileNotFoundError` for a dangling link. Nothing is opened.
    """
    path = Path(path)
    try:
        real = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise OutsideArchive(f"{display(path)}: cannot resolve the path ({exc})") from None
    if not any(real == root or real.is_relative_to(root) for root in roots):
        where = " or ".join(display(r) for r in roots)
        raise OutsideArchive(
            f"{display(path)}: {what} resolves to {display(real)}, outside {where}; not opened"
        )
    if path.is_symlink() and not real.exists():
        raise FileNotFoundError(f"{display(path)}: dangling symlink to {display(real)}")
    return real


def display(path: str | Path) -> str:
    """A path (or any text) as printable UTF-8: undecodable bytes as ``\\xNN``, control
    characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def clean_call_id(raw: str) -> str:
    """A call id without control or unprintable characters (each becomes ``_``)."""
    text = os.fsencode(raw).decode("utf-8", "replace") if _has_surrogates(raw) else raw
    text = unicodedata.normalize("NFC", text)
    if text.isprintable():  # the common case, checked in C
        cleaned = text.strip()
    else:
        cleaned = "".join(c if c.isprintable() else "_" for c in text).strip()
    return fit_call_id(cleaned or "_")


def fit_call_id(call_id: str, suffix: str = "") -> str:
    """``call_id + suffix`` within MAX_CALL_ID characters. Cut only when it must be, and then
    with ``~`` and 16 hex digits of the whole id's SHA-256: ids that differ only past the
    cut stay different."""
    if len(call_id) + len(suffix) <= MAX_CALL_ID:
        return call_id + suffix
    digest = "~" + hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return call_id[: MAX_CALL_ID - len(digest) - len(suffix)] + digest + suffix


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in text)


def discover(
    archive: str | Path,
    rubric_roots: list[str] | None = None,
    *,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
    max_manifest_rows: int = MAX_MANIFEST_ROWS,
) -> list[CallJob]:
    """List the calls of an archive, in manifest order (or sorted by path without one).

    A manifest ``rubric`` that is a path must lie in the archive, the shipped rubrics or one
    of ``rubric_roots``; it is resolved against the archive root. A manifest over
    ``max_manifest_bytes`` or ``max_manifest_rows`` refuses the archive (ArchiveError)."""
    root = _readable_root(archive)
    real_root = root.resolve()
    manifest = root / MANIFEST_NAME
    try:
        entries = _walk(root, real_root)
    except OSError as exc:
        raise ArchiveError(f"{display(root)}: cannot list the archive ({exc.strerror})") from None
    if manifest.exists() or manifest.is_symlink():
        roots = [real_root, *(Path(r).resolve() for r in rubric_roots or []), RUBRICS_DIR.resolve()]
        limits = (max_manifest_bytes, max_manifest_rows)
        jobs = _from_manifest(root, real_root, manifest, entries, roots, limits)
    else:
        jobs = _from_folder(root, entries)
    return _unique_ids(jobs)


def check_archive(
    archive: str | Path,
    *,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
    max_manifest_rows: int = MAX_MANIFEST_ROWS,
) -> int | None:
    """What refuses a whole archive, found without discovering its calls (``callqa run``'s
    preflight; the flow then discovers once): the root is a readable folder and its manifest,
    if any, is UTF-8 CSV within the limits. Returns the manifest's row count (None without
    one); raises :class:`ArchiveError`. A million-row manifest takes seconds here."""
    root = _readable_root(archive)
    manifest = root / MANIFEST_NAME
    if not (manifest.exists() or manifest.is_symlink()):
        return None
    limits = (max_manifest_bytes, max_manifest_rows)
    with _manifest_errors(manifest):
        return sum(1 for _ in _manifest_rows(manifest, root.resolve(), limits))


def _readable_root(archive: str | Path) -> Path:
    root = Path(archive)
    if not root.exists():
        raise ArchiveError(f"{display(root)}: archive not found")
    if not root.is_dir():
        raise ArchiveError(f"{display(root)}: archive must be a folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ArchiveError(f"{display(root)}: archive folder is not readable")
    return root


def is_transcript(job: CallJob) -> bool:
    return Path(job.source).suffix.lower() in TRANSCRIPT_SUFFIXES


# --------------------------------------------------------------------------- walking


def _walk(root: Path, real_root: Path) -> list[tuple[Path, str | None]]:
    """Every call-like entry under ``root`` (sorted): (path, None) for a usable file, or
    (path, reason) for one that must be recorded as failed. Links are not followed into."""
    found: list[tuple[Path, str | None]] = []
    resolve = _Resolver()

    def failed(err: OSError) -> None:
        raise err

    for folder, dirs, files in os.walk(root, onerror=failed, followlinks=False):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in dirs:
            path = base / name
            if Path(name).suffix.lower() in AUDIO_SUFFIXES | TRANSCRIPT_SUFFIXES:
                kind = "a symlink to a folder" if path.is_symlink() else "a folder"
                found.append((path, f"{display(path)}: is {kind}, not a recording"))
        for name in sorted(files):
            if name.startswith(".") or name == MANIFEST_NAME and base == root:
                continue
            if Path(name).suffix.lower() not in AUDIO_SUFFIXES | TRANSCRIPT_SUFFIXES:
                continue
            found.append((base / name, _usable(base / name, real_root, resolve)))
    found.sort(key=lambda e: os.fsencode(e[0]))
    return found


def _usable(path: Path, real_root: Path, resolve: _Resolver | None = None) -> str | None:
    """None when ``path`` may be read; else why not (never opening what is outside)."""
    if _has_surrogates(str(path)):
        return f"{display(path)}: file name is not valid UTF-8; rename the file"
    try:
        real = (resolve or _Resolver()).confined(path, real_root)
        mode = os.stat(real).st_mode
    except (OutsideArchive, FileNotFoundError) as exc:
        return str(exc)
    except OSError as exc:
        return f"{display(path)}: cannot read ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return f"{display(path)}: is a folder, not a recording"
    if not stat.S_ISREG(mode):
        return f"{display(path)}: not a regular file ({kind_of(mode)})"
    if not os.access(real, os.R_OK):
        return f"{display(path)}: file is not readable (permission denied)"
    return None


# --------------------------------------------------------------------------- folder


def _from_folder(root: Path, entries: list[tuple[Path, str | None]]) -> list[CallJob]:
    stems: dict[str, int] = {}
    for path, _ in entries:
        stems[clean_call_id(path.stem)] = stems.get(clean_call_id(path.stem), 0) + 1
    jobs = []
    for path, reason in entries:
        call_id = clean_call_id(path.stem)
        if stems[call_id] > 1:  # a.wav and a.mp3 (or sub/a.wav): each keeps its own id
            call_id = clean_call_id(path.relative_to(root).as_posix())
        jobs.append(_job(call_id, path, reason))
    return jobs


def _job(call_id: str, path: Path, reason: str | None, **fields) -> CallJob:
    source = str(path) if reason is None else display(path)
    return CallJob(call_id=call_id, source=source, manifest_error=reason, **fields)


# --------------------------------------------------------------------------- manifest


@contextmanager
def _manifest_errors(manifest: Path) -> Iterator[None]:
    """Reading the manifest: what goes wrong becomes an :class:`ArchiveError` naming it."""
    where = display(manifest)
    try:
        yield
    except (OutsideArchive, FileNotFoundError) as exc:
        raise ArchiveError(str(exc)) from None
    except OSError as exc:
        raise ArchiveError(f"{where}: cannot read the manifest ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{where}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise ArchiveError(f"{where}: malformed CSV: {exc}") from None


def _from_manifest(
    root: Path,
    real_root: Path,
    manifest: Path,
    entries: list[tuple[Path, str | None]],
    rubric_roots: list[Path],
    limits: tuple[int, int] = (MAX_MANIFEST_BYTES, MAX_MANIFEST_ROWS),
) -> list[CallJob]:
    where = display(manifest)
    jobs = []
    listed: set[str] = set()
    resolve = _Resolver()
    with _manifest_errors(manifest):
        for line, header, cells in _manifest_rows(manifest, real_root, limits):
            job, path = _manifest_row(
                root, real_root, where, header, line, cells, rubric_roots, resolve
            )
            if path is not None:
                listed.add(str(path))
            if "file" in header and header.index("file") < len(cells):
                named = cells[header.index("file")].strip()
                if named and "\x00" not in named:
                    listed.add(os.path.normpath(root / named))
            jobs.append(job)
    # Recordings in the folder that no row names are not skipped silently.
    for path, reason in entries:
        if resolve(str(path)) in listed or os.path.normpath(path) in listed:
            continue
        why = reason or f"{display(path)}: not listed in {MANIFEST_NAME}"
        jobs.append(_job(clean_call_id(path.relative_to(root).as_posix()), path, why))
    return jobs


def _manifest_rows(manifest: Path, real_root: Path, limits: tuple[int, int]):
    """(line, header, cells) of each non-blank row, read as a stream; raises ArchiveError
    when the manifest is over ``limits`` (bytes, rows)."""
    max_bytes, max_rows = limits
    where = display(manifest)
    confined(manifest, [real_root], "manifest")
    # A cell longer than csv's default limit (128 KiB) made the whole manifest unreadable;
    # the file's own size bounds it now, and _manifest_row fails that one row.
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise ArchiveError(
                f"{where}: {size / 2**20:.0f} MiB, over the limit of {max_bytes / 2**20:.0f} MiB "
                "for one night's manifest; split the archive"
            )
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        rows = 0
        for line, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            rows += 1
            if rows > max_rows:
                raise ArchiveError(
                    f"{where}: more than {max_rows} rows, the limit for one night's "
                    "manifest; split the archive"
                )
            yield line, header, cells


def _bad_cell(header: list[str], cells: list[str]) -> str | None:
    """Why a row's cells cannot be taken as data (too long, a control character), or None."""
    for column, value in zip(header, cells, strict=False):
        limit = FIELD_LIMITS.get(column, OTHER_FIELD_LIMIT)
        if len(value) > limit:
            name = display(column[:64])
            return f"column '{name}': {len(value)} characters, over the limit of {limit}"
        bad = _FORBIDDEN.search(value)
        if bad:
            return (
                f"column '{display(column[:64])}': control character U+{ord(bad.group()):04X} "
                f"at position {bad.start() + 1}; remove it"
            )
    return None


def _manifest_row(
    root: Path,
    real_root: Path,
    where: str,
    header: list[str],
    line: int,
    cells: list[str],
    rubric_roots: list[Path],
    resolve: _Resolver | None = None,
) -> tuple[CallJob, Path | None]:
    """The job of one manifest row (refused with the reason when the row is bad)."""
    at = f"{where}:{line}"
    resolve = resolve or _Resolver()
    row = {k: (v or "").strip() for k, v in zip(header, cells, strict=False)}
    raw_id = row.get("call_id") or Path((row.get("file") or f"line-{line}")[:4096]).stem
    call_id = clean_call_id(raw_id[:4096])
    if "file" not in header:
        reason = f"{at}: the manifest has no 'file' column (has {header})"
        return _job(call_id, Path(at), reason), None
    if len(cells) > len(header):
        reason = f"{at}: more fields ({len(cells)}) than the header has columns ({len(header)})"
        return _job(call_id, Path(at), reason), None
    bad = _bad_cell(header, cells)
    if bad:  # the named file is not read: the row is not trusted
        return _job(call_id, Path(at), f"{at}: {bad}"), None
    if not row.get("file"):
        return _job(call_id, Path(at), f"{at}: empty 'file'"), None
    path = root / row["file"]
    fields = {k: row[k] for k in MANIFEST_COLUMNS if row.get(k)}
    fields.pop("file", None)
    fields["call_id"] = call_id
    for column in ("agent_channel", "customer_channel"):
        if fields.get(column, "").lower() in CHANNEL_NAMES:
            fields[column] = CHANNEL_NAMES[fields[column].lower()]
    try:
        real = resolve.confined(path, real_root)
        if _is_path(fields.get("rubric", "")):
            rubric = confined(root / fields["rubric"], rubric_roots, "rubric")
            mode = os.stat(rubric).st_mode if rubric.exists() else stat.S_IFREG
            if not stat.S_ISREG(mode):  # a FIFO would block the rubric loader for ever
                reason = f"{at}: rubric {display(rubric)} is not a regular file ({kind_of(mode)})"
                return _job(call_id, path, reason), None
            fields["rubric"] = str(rubric)
    except (OutsideArchive, FileNotFoundError) as exc:
        return _job(call_id, path, f"{at}: {exc}"), None
    reason = None
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        reason = f"{at}: {display(path)}: file not found"
    except OSError as exc:
        reason = f"{at}: {display(path)}: cannot read ({exc.strerror})"
    else:
        if stat.S_ISDIR(mode):
            reason = f"{at}: {display(path)} is a folder, not a recording"
        elif not stat.S_ISREG(mode):
            reason = f"{at}: {display(path)}: not a regular file ({kind_of(mode)})"
    try:
        return CallJob(source=str(path), manifest_error=reason, **fields), real
    except ValidationError as exc:
        # One bad row must not stop the batch: the call is recorded as failed with why.
        err = exc.errors()[0]
        column = ".".join(str(p) for p in err["loc"])
        reason = f"{at}: column '{column}': {err['msg']}"
        return _job(call_id, path, reason), real


class _Resolver:
    """``os.path.realpath`` for many files of few folders: each folder is resolved once.

    A million manifest rows under a thousand folders resolve a thousand folders, not a
    million paths component by component; the last component is still checked for a link.
    """

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        full = os.path.join(real, name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def confined(self, path: Path, real_root: Path) -> Path:
        """:func:`confined` for one root, through the folder cache."""
        real = self(str(path))
        root = str(real_root)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            return confined(path, [real_root])  # raises OutsideArchive, naming both
        if not os.path.exists(real) and os.path.islink(path):
            raise FileNotFoundError(f"{display(path)}: dangling symlink to {display(real)}")
        return Path(real)


def _is_path(rubric: str) -> bool:
    """A manifest rubric that names a file (not a rubric id)."""
    return rubric.lower().endswith((".yaml", ".yml")) or "/" in rubric or "\\" in rubric


def _unique_ids(jobs: list[CallJob]) -> list[CallJob]:
    """Call ids unique in the run: a later job reusing an id fails, under ``id~N``."""
    seen: dict[str, str] = {}
    out = []
    for job in jobs:
        if job.call_id in seen:
            n = 2
            while fit_call_id(job.call_id, f"~{n}") in seen:
                n += 1
            reason = (
                f"{job.source}: call_id {job.call_id!r} already used by {seen[job.call_id]}"
                + (f"; {job.manifest_error}" if job.manifest_error else "")
            )
            new_id = fit_call_id(job.call_id, f"~{n}")  # never the id it duplicates
            job = job.model_copy(update={"call_id": new_id, "manifest_error": reason})
        seen[job.call_id] = job.source
        out.append(job)
    return out


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
