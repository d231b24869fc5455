"""The inspection store on the real PostgreSQL server at 127.0.0.1:5432.

Re-runs the behaviour tests of tests/test_store.py with ``store_url`` pointing at a fresh
database (``callqa_test_<random>_<n>``, dropped after each test), then PostgreSQL-only
checks: many writer processes and dropped connections.
"""

from __future__ import annotations

import itertools
import uuid

import pytest

from pipeline.store import StoreUnavailable, dispose_engines, open_store
from tests.test_store import (  # noqa: F401 - collected again here, against PostgreSQL
    check_concurrent_writers,
    make_job,
    make_result,
    make_transcript,
    store,
    test_cli_calls_json_and_table,
    test_concurrent_writers,
    test_failed_call_then_scored,
    test_failed_save_leaves_nothing_half_written,
    test_failure_after_success_keeps_the_score,
    test_leases_failure_rows_and_abandoned_runs,
    test_migrations_create_every_table,
    test_migrations_match_the_models,
    test_mismatched_call_ids_are_rejected,
    test_new_fingerprint_adds_a_version_and_keeps_the_old,
    test_open_is_idempotent,
    test_resave_same_fingerprint_is_idempotent,
    test_runs_record_settings_and_counts,
    test_save_list_get_round_trip,
    test_transcript_without_call_id_takes_the_jobs,
)

pytestmark = pytest.mark.postgres

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
RUN_TAG = uuid.uuid4().hex[:8]
_numbers = itertools.count()


@pytest.fixture(scope="module")
def admin():
    """An autocommit connection to the server's ``postgres`` database (or a skip)."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (v3) is not installed")
    try:
        conn = psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 cannot be reached: {exc}".strip())
    yield conn
    conn.close()


@pytest.fixture
def store_url(admin) -> str:
    name = f"callqa_test_{RUN_TAG}_{next(_numbers)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    dispose_engines()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_many_concurrent_writers(store_url: str) -> None:
    check_concurrent_writers(store_url, workers=5, calls_each=6)
    dispose_engines()


def test_dropped_connections_are_replaced(admin, store_url: str) -> None:
    pg_store = open_store(store_url)
    pg_store.save_failed(make_job("c1"), "decode error")
    database = store_url.rsplit("/", 1)[1]
    killed = admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
        (database,),
    ).fetchone()[0]
    assert killed >= 1  # the pooled connection of the store
    pg_store.save_scored(make_job("c1"), make_transcript("c1"), make_result("c1"), None)
    assert pg_store.list_calls()[0]["status"] == "scored"


def test_missing_database_is_unavailable(admin) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open the store"):
        open_store(f"{SERVER}/callqa_test_{RUN_TAG}_missing")
