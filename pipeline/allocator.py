"""The C allocator of a ``callqa`` process (``QA_MALLOC``): tcmalloc where it is installed.

Whisper base's encoder allocates an attention tensor of 72 MB per window and layer (8 heads
x 1500 x 1500 floats). glibc serves blocks that large with ``mmap`` (its threshold cannot be
raised past 32 MB) and returns them with ``munmap`` at free, so every window faults its
pages in again and the kernel zeroes them: 8.4 million page faults and 14.7 s of system time
for the 25 calls of ``benchmarks/throughput.py --zh`` (80.5 CPU-s in all). tcmalloc keeps
freed spans for the next window: 0.4 million faults, 1.6 s of system time, 70.4 CPU-s. The
allocator does not change a float: same kernels, same inputs (``benchmarks/identical_outputs.py``
finds the stores of a run with and without it identical).

An allocator can only be chosen before the process starts, so ``callqa`` runs itself again
with ``LD_PRELOAD`` first thing (before any import of numpy or ctranslate2); Prefect's
server, Dask workers and every subprocess inherit it. Where the library is missing
(``libtcmalloc-minimal4``, a Debian package that ``make setup`` installs) the system allocator
stays, and ``callqa run`` says which one ran. ``QA_MALLOC=system`` keeps glibc's.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

MALLOC_ENV = "QA_MALLOC"
# name -> the library's name for the dynamic loader (ctypes.util.find_library's spelling)
ALLOCATORS: dict[str, str] = {"tcmalloc": "tcmalloc_minimal"}
DEFAULT = "tcmalloc"
SYSTEM = "system"
# set before the second exec, so a process never runs itself a third time
_REEXEC_ENV = "CALLQA_MALLOC_PRELOADED"


class AllocatorError(ValueError):
    """``QA_MALLOC`` names no allocator callqa knows."""


def chosen() -> str:
    """The allocator ``QA_MALLOC`` asks for (default tcmalloc); an unknown name is refused."""
    name = os.environ.get(MALLOC_ENV, DEFAULT).strip().lower() or DEFAULT
    if name != SYSTEM and name not in ALLOCATORS:
        known = ", ".join([*ALLOCATORS, SYSTEM])
        raise AllocatorError(f"{MALLOC_ENV}={name!r}: not an allocator callqa knows ({known})")
    return name


def library(name: str) -> str | None:
    """The shared library of allocator ``name`` as the dynamic loader finds it, or None."""
    return ctypes.util.find_library(ALLOCATORS[name]) if name in ALLOCATORS else None


def in_use() -> str:
    """The allocator this process runs on: a known one's name when its library is mapped
    into the process (Linux), else ``system``."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return SYSTEM
    for name, lib in ALLOCATORS.items():
        if f"lib{lib}.so" in maps:
            return name
    return SYSTEM


def preload(argv: list[str] | None = None) -> None:
    """At a process entry point: run this process again with the chosen allocator preloaded.

    Returns without doing anything when the system allocator is asked for, the library is
    not installed, this is not Linux, it is already loaded, or the process already ran itself
    again. Otherwise it does not return (``os.execv``).
    """
    name = chosen()
    if name == SYSTEM or not sys.platform.startswith("linux") or os.environ.get(_REEXEC_ENV):
        return
    lib = library(name)
    if lib is None or in_use() == name:
        return
    preloaded = os.environ.get("LD_PRELOAD", "")
    os.environ["LD_PRELOAD"] = f"{lib}:{preloaded}" if preloaded else lib
    os.environ[_REEXEC_ENV] = name
    # tcmalloc prints "large alloc" to stderr for every block over 1 GiB (a 3-h recording's
    # samples come near); the run's own messages are what a user should read there.
    os.environ.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2**40))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *(argv if argv is not None else sys.orig_argv[1:])])
