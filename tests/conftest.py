"""Test-wide settings (offline models, no telemetry, a private Prefect home) and the shared
fixtures: the store on each backend, the review-app template store, the live app and the browser.

Shared builders that are not fixtures live in tests/builders.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="callqa-prefect-"))

# Golden tests assert ASR-dependent verdicts: run them with the numeric kernels pinned
# (pipeline.cpu_isa), so they hold on both CPUs of this kind of machine (AMD AVX-512 VNNI,
# Intel AMX) alike. Set here, before anything imports numpy or ctranslate2 (pipeline.cpu_isa
# imports neither); subprocesses (callqa run, Dask workers) inherit it.
os.environ.setdefault("QA_CPU_ISA", "pinned")
from pipeline.cpu_isa import apply_cpu_isa_from_env  # noqa: E402

apply_cpu_isa_from_env()

# Fixtures import pipeline modules lazily: the settings above come first, and a module that
# needs no store pays nothing for them.
_PG_RUN_TAG = uuid.uuid4().hex[:8]
_pg_numbers = itertools.count()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


# --------------------------------------------------------------------------- stores


@pytest.fixture(scope="session")
def pg_admin():
    """An autocommit connection to the server's ``postgres`` database, or a skip saying why."""
    from tests.builders import PG_ADMIN_DSN

    psycopg = pytest.importorskip("psycopg", reason="psycopg (v3) is not installed")
    try:
        conn = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 cannot be reached: {exc}".strip())
    yield conn
    conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A new SQLite store file in the test's tmp_path."""
    from pipeline.store import dispose_engines

    yield f"sqlite:///{tmp_path / 'qa.db'}"
    dispose_engines()


@pytest.fixture
def postgres_url(pg_admin) -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this test alone, dropped after it."""
    from pipeline.store import dispose_engines
    from tests.builders import PG_SERVER

    name = f"callqa_test_{_PG_RUN_TAG}_{next(_pg_numbers)}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_SERVER}/{name}"
    dispose_engines()
    pg_admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')  # a test may refuse them
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request) -> str:
    """The store URL, once per backend: SQLite, and PostgreSQL (marked ``postgres``).

    A test that holds only on one backend narrows it with
    ``@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)``.
    """
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str):
    """The store opened (and migrated) at :func:`store_url`."""
    from pipeline.store import open_store

    return open_store(store_url)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """The review-app store of tests.builders, built once; tests work on a copy
    (:func:`tests.builders.fresh_store`)."""
    from pipeline.store import dispose_engines
    from tests.builders import build_store

    root = tmp_path_factory.mktemp("template")
    build_store(root)
    dispose_engines()  # checkpoint the WAL into qa.db before it is copied
    return root


@pytest.fixture
def app(template: Path, tmp_path: Path, monkeypatch):
    """The review app over a fresh copy of :func:`template`, with no secret key, webhook or
    interface language taken from the environment."""
    from pipeline.app import create_app
    from pipeline.store import dispose_engines
    from tests.builders import fresh_store

    for name in ("QA_SECRET_KEY", "QA_WEBHOOK_URL", "QA_UI_LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(fresh_store(template, tmp_path), var_dir=tmp_path / "var")
    yield app
    dispose_engines()


# --------------------------------------------------------------------------- live app, browser


@pytest.fixture(scope="module")
def live_app(tmp_path_factory) -> Iterator[str]:
    """The review app over a fresh :func:`tests.builders.build_store`, served by uvicorn on a
    free loopback port; its base URL. One per test module (a module may throttle 127.0.0.1)."""
    from pipeline.app import create_app
    from pipeline.store import dispose_engines
    from tests.builders import build_store, live_server

    root = tmp_path_factory.mktemp("live")
    os.environ.pop("QA_WEBHOOK_URL", None)
    app = create_app(build_store(root), var_dir=root / "var", secret_key="test-only-key")
    with live_server(app) as url:
        yield url
    dispose_engines()


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright, or a skip saying what is missing."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
