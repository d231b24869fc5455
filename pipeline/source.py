"""A call's file, opened once: what the call hashes and decodes is the file discovery saw.

Between discovery and the call, anything may happen to a path in an archive other people
write: the recording replaced by a FIFO (a reader blocks for ever), a character device (an
endless stream), a socket, a link to somewhere else, or new bytes. :func:`open_source`:

- looks before it opens (``stat``): anything but a regular file is refused unopened, so no
  device is ever opened (opening some has side effects);
- opens with ``O_NONBLOCK`` (a FIFO swapped in between the look and the open cannot block)
  and ``O_NOFOLLOW`` on the last component (a link swapped in is refused, not followed),
  then checks that what it opened (``fstat``) is that same regular file;
- hashes from the open descriptor, and hands decoders ``/proc/self/fd/N``: the same file,
  whatever the path names by then;
- :meth:`Source.check_unchanged` at the end says whether the file changed or was replaced
  during the call (size, modification time, or what the path names).

Every refusal is a :class:`SourceError` naming the file and the reason.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
_BLOCK = 1 << 20


class SourceError(ValueError):
    """The call's file cannot be read as a recording; ``str`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a file"


class Source:
    """An open call file (:func:`open_source`); close it, or use it as a context manager."""

    def __init__(self, path: str, fd: int, st: os.stat_result):
        self.path, self.fd, self.stat = path, fd, st
        self._sha256: str | None = None

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def fd_path(self) -> str:
        """A path that opens this same file for a decoder (Linux), else the path itself."""
        proc = f"/proc/self/fd/{self.fd}"
        return proc if os.path.exists(proc) else self.path

    def _blocks(self):
        """The file's bytes as opened, from the descriptor: the size it had then, never more
        (a file appended to without end cannot keep a reader going)."""
        offset = 0
        while offset < self.size:
            block = os.pread(self.fd, min(_BLOCK, self.size - offset), offset)
            if not block:
                raise SourceError(self.path, "the file shrank during the call")
            offset += len(block)
            yield block

    def sha256(self) -> str:
        """SHA-256 of the file's content, read from the open descriptor (once)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for block in self._blocks():
                digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def read_text(self) -> str:
        """The whole file as UTF-8 text (a text transcript), hashed as it is read."""
        data = b"".join(self._blocks())
        self._sha256 = hashlib.sha256(data).hexdigest()
        return data.decode("utf-8")

    def check_unchanged(self) -> None:
        """Raise :class:`SourceError` when the file changed, or the path names another file,
        since it was opened."""
        now = os.fstat(self.fd)
        if (now.st_size, now.st_mtime_ns) != (self.stat.st_size, self.stat.st_mtime_ns):
            raise SourceError(
                self.path,
                f"the file changed during the call ({self.stat.st_size} bytes when opened, "
                f"{now.st_size} now); it is tried again when the next run finds it unchanged",
            )
        try:
            there = os.lstat(self.path)
        except OSError:
            raise SourceError(self.path, "the file was removed during the call") from None
        if (there.st_dev, there.st_ino) != (self.stat.st_dev, self.stat.st_ino):
            by = "" if stat.S_ISREG(there.st_mode) else f" (by {kind_of(there.st_mode)})"
            raise SourceError(self.path, f"the file was replaced during the call{by}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # a plan dropped without closing its file
        self.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(path: str | Path) -> Source:
    """Open a call's file for reading, refusing anything but the regular file it names.

    A link in the archive (discovery confined it) is resolved once, here; the file it names
    is then opened without following links."""
    path = str(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        seen = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        raise SourceError(path, "file not found") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(seen.st_mode):
        raise SourceError(path, f"not a regular file ({kind_of(seen.st_mode)}); not opened")
    try:
        fd = os.open(target, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceError(path, "replaced by a link while being opened; not read") from None
        raise SourceError(path, f"cannot open ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            seen.st_dev,
            seen.st_ino,
        ):
            raise SourceError(path, f"replaced while being opened (by {kind_of(st.st_mode)})")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return Source(path, fd, st)
