"""Checks before a run starts: everything that would fail every call, found in seconds.

``callqa run`` calls :func:`preflight` before Prefect starts and before any audio is decoded:
the archive root is readable, the routing table validates, every rubric the run may use
loads (the ``--rubric`` setting, or every rubric the routing table names), the database URL
opens, migrates and takes a write. Each problem is one line (:class:`PreflightFailed`).
A manifest's rubric is checked per call, before that call's audio is decoded.
"""

from __future__ import annotations

from pipeline.config import Settings, resolve_rubric_path


class PreflightFailed(RuntimeError):
    """The run cannot start: one line saying what and why."""


def preflight(archive: str, settings: Settings) -> None:
    """Raise :class:`PreflightFailed` for the first thing that would make the run useless."""
    from pipeline.archive import ArchiveError, archive_for_day, check_archive

    try:  # the flow discovers the calls, once; here only what refuses the whole archive
        check_archive(archive_for_day(archive))
    except ArchiveError as exc:
        raise PreflightFailed(str(exc)) from None
    check_rubrics(settings)
    check_store(settings.database_url)
    from pipeline.redact.vault import VaultError, vault_from_env

    try:
        vault_from_env()  # QA_KEEP_UNREDACTED without a usable QA_PII_KEY
    except VaultError as exc:
        raise PreflightFailed(str(exc)) from None


def check_rubrics(settings: Settings) -> None:
    """The routing table validates; the configured rubric, or every rubric the table names,
    loads."""
    from pipeline.routing import RoutingError, load_routing
    from pipeline.scripts_check import RubricError, load_rubric

    try:
        table = load_routing(settings.routing)
    except RoutingError as exc:
        raise PreflightFailed(f"routing table: {' '.join(str(exc).split())}") from None
    if settings.rubric:
        names = [settings.rubric]
    else:
        names = sorted({r.rubric for r in table.routes} | set(table.defaults.values()))
    for name in names:
        try:
            load_rubric(resolve_rubric_path(name).resolve())
        except (FileNotFoundError, RubricError, OSError, ValueError) as exc:
            raise PreflightFailed(f"rubric {name}: {' '.join(str(exc).split())}") from None


def check_store(url: str) -> None:
    """The store opens (migrating it) and commits a write."""
    from pipeline.store import StoreError, open_store
    from pipeline.store.db import get_engine

    try:
        get_engine(url)
        store = open_store(url)
        store.check_writable()
    except StoreError as exc:
        raise PreflightFailed(f"store {_safe(url)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a driver error we did not translate: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightFailed(f"store {_safe(url)}: {first}") from None


def _safe(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparseable URL)"
