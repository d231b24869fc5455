"""Which evaluation form scores a call: a YAML routing table, validated on load.

Order (first that decides wins): ``--rubric`` / ``QA_RUBRIC`` (rule ``setting``), the
manifest's ``rubric`` column (``manifest``), the rows of the table in file order
(``table``), then the table's default per language (``language``). The decision is a
:class:`~pipeline.schema.RubricRoute`, recorded in the Result's provenance.
"""

from __future__ import annotations

import fnmatch
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.config import ROUTING_TABLE, resolve_rubric_path
from pipeline.contracts import ContractError, read_yaml, validate
from pipeline.schema import CallJob, RubricRoute

MatchKey = Literal["team", "queue", "skill", "direction", "agent_group", "language", "call_id"]
# Conditions compare exactly (case-insensitive) except call_id, a glob (``bank_*``): a call
# centre's call ids often carry the hotline or queue they came in on.
GLOB_KEYS = frozenset({"call_id"})


class RoutingError(ContractError):
    """A routing table that does not validate (names the file, the place in it and why), or a
    call no rule and no default routes."""


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: dict[MatchKey, str] = Field(min_length=1)
    rubric: str = Field(min_length=1)

    @field_validator("match", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: str(v) for k, v in value.items()}
        return value

    def matches(self, fields: dict[str, str | None]) -> bool:
        for key, want in self.match.items():
            have = fields.get(key)
            if have is None:
                return False
            if key in GLOB_KEYS:
                if not fnmatch.fnmatchcase(have.lower(), want.lower()):
                    return False
            elif have.strip().lower() != want.strip().lower():
                return False
        return True


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | str
    routes: list[Route] = Field(default_factory=list)
    defaults: dict[str, str] = Field(default_factory=dict)  # language → rubric
    sha256: str | None = None
    path: str | None = None

    def route(
        self, job: CallJob, language: str | None, setting: str | None = None
    ) -> RubricRoute | None:
        """The rule that picks the call's rubric; None when that needs the (unknown) language.

        Raises :class:`RoutingError` when the language is known and nothing routes it.
        """
        if setting:
            return RubricRoute(rule="setting", rubric=setting)
        if job.rubric:
            return RubricRoute(rule="manifest", rubric=job.rubric)
        lang = (job.language or language or "").split("-")[0].lower() or None
        fields = {
            "team": job.team,
            "queue": job.queue,
            "skill": job.skill,
            "direction": job.direction,
            "agent_group": job.agent_group,
            "language": lang,
            "call_id": job.call_id,
        }
        for i, row in enumerate(self.routes):
            if lang is None and "language" in row.match:
                return None  # this row may decide once the language is known
            if row.matches(fields):
                return RubricRoute(
                    rule="table", rubric=row.rubric, row=i, match=dict(row.match),
                    table_sha256=self.sha256,
                )  # fmt: skip
        if lang is None:
            return None
        if lang not in self.defaults:
            raise RoutingError(
                self.path,
                f"no rubric for call {job.call_id!r} in language {lang!r}: no row matches and "
                f"there is no default for it (set --rubric or the manifest's 'rubric')",
            )
        return RubricRoute(rule="language", rubric=self.defaults[lang], table_sha256=self.sha256)


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> RoutingTable:
    data, raw = read_yaml(path, error=RoutingError)
    table = validate(data, RoutingTable, path, error=RoutingError)
    targets = [(f"routes[{i}].rubric", r.rubric) for i, r in enumerate(table.routes)]
    targets += [(f"defaults.{lang}", name) for lang, name in table.defaults.items()]
    for where, name in targets:
        try:
            resolve_rubric_path(name)
        except FileNotFoundError as exc:
            raise RoutingError(path, where, str(exc)) from None
    return table.model_copy(update={"sha256": hashlib.sha256(raw).hexdigest(), "path": str(path)})


def load_routing(path: str | Path | None = None) -> RoutingTable:
    """The routing table at ``path`` (default ``rubrics/routing/default.yaml``), validated."""
    path = Path(path) if path else ROUTING_TABLE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise RoutingError(path, "file not found") from None
    return _load(path, mtime)
