"""Reading rule files into validated models: one YAML loader, one error.

Every YAML callqa reads (rubrics, routing, recognisers, risk configuration and calibration,
signals, phrase lists, engine defaults) goes through :func:`load_model` (or
:func:`read_yaml` + :func:`validate` when the caller also needs the file's bytes). A file that
does not validate raises :class:`ContractError` naming the file, the place inside it in YAML
notation (``sections[0].items[2].weight``) and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")

TOP_LEVEL = "(top level)"


class ContractError(ValueError):
    """A file that does not follow its contract: the file, the place inside it, the reason.

    ``ContractError(file, reason)`` for the whole file (unreadable, not YAML);
    ``ContractError(file, location, reason)`` for one place inside it. ``problems`` lists
    every (location, reason) found; the message names the first.
    """

    def __init__(
        self,
        file: str | Path | None,
        *where_and_reason: str,
        problems: Sequence[tuple[str, str]] | None = None,
    ):
        if len(where_and_reason) == 1:
            location, reason = "", where_and_reason[0]
        elif len(where_and_reason) == 2:
            location, reason = where_and_reason
        else:
            raise TypeError("ContractError(file, reason) or ContractError(file, location, reason)")
        self.file = str(file) if file is not None else None
        self.path = self.file  # the file, under its older name
        self.location = location
        self.reason = reason
        self.problems: list[tuple[str, str]] = list(problems or [(location, reason)])
        super().__init__(self._line(location, reason))

    def _line(self, location: str, reason: str) -> str:
        return ": ".join([p for p in (self.file, location) if p] + [reason])

    def lines(self) -> list[str]:
        """One ``file: location: reason`` line per problem found."""
        return [self._line(loc, why) for loc, why in self.problems]


def yaml_path(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a YAML path: ``('items', 2, 'weight')`` → ``items[2].weight``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or TOP_LEVEL


def validation_problems(
    exc: ValidationError, where: Callable[[tuple], str] = yaml_path
) -> list[tuple[str, str]]:
    """Every (location, reason) of a validation error, worded for the person editing the file."""
    found = []
    for err in exc.errors():
        loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
        if kind == "extra_forbidden":
            found.append((where(loc[:-1]), f"unknown key {loc[-1]!r}"))
        elif kind == "missing":
            found.append((where(loc[:-1]), f"missing key {loc[-1]!r}"))
        else:
            found.append((where(loc), msg.removeprefix("Value error, ")))
    return found


def read_yaml(
    path: str | Path,
    *,
    error: type[ContractError] = ContractError,
    allow_empty: bool = False,
) -> tuple[dict[str, Any], bytes]:
    """(the top-level mapping, the file's bytes) of a YAML file, with safe loading.

    ``allow_empty``: an empty file is an empty mapping rather than an error.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(path, "file not found") from None
    except OSError as exc:
        raise error(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(path, "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(path, where, f"not valid YAML: {problem}") from None
    if data is None:
        if not allow_empty:
            raise error(path, "file is empty")
        data = {}
    if not isinstance(data, dict):
        raise error(path, f"expected a mapping at the top level, got {type(data).__name__}")
    return data, raw


def validate(
    data: Any,
    model: type[T] | Any,
    path: str | Path | None,
    *,
    section: str | None = None,
    error: type[ContractError] = ContractError,
    where: Callable[[tuple], str] = yaml_path,
) -> T:
    """``data`` (or its ``section``) validated as ``model`` (a pydantic model or any type
    pydantic validates, e.g. ``dict[str, Model]``); :class:`ContractError` when it is wrong."""
    prefix: tuple = ()
    if section is not None:
        if section not in data:
            raise error(path, TOP_LEVEL, f"missing key {section!r}")
        data, prefix = data[section], (section,)
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        found = validation_problems(exc, lambda loc: where(prefix + loc))
        raise error(path, *found[0], problems=found) from None


def load_model(
    path: str | Path,
    model: type[T] | Any,
    *,
    section: str | None = None,
    error: type[ContractError] = ContractError,
    where: Callable[[tuple], str] = yaml_path,
    allow_empty: bool = False,
) -> T:
    """Read the YAML file at ``path`` and validate it (or its top-level key ``section``)."""
    data, _ = read_yaml(path, error=error, allow_empty=allow_empty)
    return validate(data, model, path, section=section, error=error, where=where)
