"""The temporary Prefect API that ``callqa run`` starts before anything else."""

from __future__ import annotations

import urllib.request

import pytest

from pipeline import prefect_api
from pipeline.prefect_api import PrefectApiError, TemporaryPrefectApi, serving, start_early


def test_not_started_where_the_environment_names_an_api(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.internal:4200/api")
    assert start_early() is None


@pytest.mark.slow
def test_serves_prefect_health_then_stops(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    api = TemporaryPrefectApi()
    try:
        url = api.wait_ready(timeout_s=120)
        assert url == f"http://127.0.0.1:{api.port}/api"
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert response.status == 200
        process = api.process
    finally:
        api.stop()
    assert process.poll() is not None  # stopped, not left running
    api.stop()  # twice is harmless


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "nosuchdriver://nowhere/db")
    api = TemporaryPrefectApi()
    try:
        with pytest.raises(PrefectApiError, match="exited with status"):
            api.wait_ready(timeout_s=120)
    finally:
        api.stop()


@pytest.mark.slow
def test_a_configured_api_wins_and_the_early_server_is_stopped(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    api = TemporaryPrefectApi()
    process = api.process
    configured = "http://prefect.internal:4200/api"
    with temporary_settings(updates={PREFECT_API_URL: configured}):
        with serving(api):
            assert PREFECT_API_URL.value() == configured
        assert process.poll() is not None


def test_waiting_gives_up_after_its_timeout(monkeypatch):
    class Silent:
        """A server process that never answers and never exits."""

        stderr = None

        def poll(self):
            return None

    api = TemporaryPrefectApi.__new__(TemporaryPrefectApi)
    api.port, api.process = 9, Silent()  # port 9: discard, nothing listens
    monkeypatch.setattr(api, "stop", lambda: None)
    with pytest.raises(PrefectApiError, match="did not answer within 0 s"):
        api.wait_ready(timeout_s=0.3)
    assert prefect_api.STARTUP_TIMEOUT_ENV in str(
        pytest.raises(PrefectApiError, api.wait_ready, timeout_s=0.1).value
    )
