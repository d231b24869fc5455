"""The temporary Prefect API that ``callqa run`` starts before anything else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline import prefect_api
from pipeline.prefect_api import PrefectApiError, TemporaryPrefectApi, serving, start_early

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_home(tmp_path, monkeypatch):
    """No API configured, and Prefect's files under ``tmp_path``."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def early_api(own_home):
    """A started (not yet waited for) early server; stopped after the test."""
    api = TemporaryPrefectApi()
    yield api
    api.stop()


def test_not_started_where_the_environment_names_an_api(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.internal:4200/api")
    assert start_early() is None


@pytest.mark.slow
def test_serves_prefect_health_then_stops(early_api):
    url = early_api.wait_ready(timeout_s=120)
    assert url == f"http://127.0.0.1:{early_api.port}/api"
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        assert response.status == 200
    process = early_api.process
    early_api.stop()
    assert process.poll() is not None  # stopped, not left running
    early_api.stop()  # twice is harmless


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_with_its_reason(own_home, monkeypatch):
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "nosuchdriver://nowhere/db")
    api = TemporaryPrefectApi()
    try:
        with pytest.raises(PrefectApiError, match="exited with status"):
            api.wait_ready(timeout_s=120)
    finally:
        api.stop()


@pytest.mark.slow
def test_a_configured_api_wins_and_the_early_server_is_stopped(early_api):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    process = early_api.process
    configured = "http://prefect.internal:4200/api"
    with temporary_settings(updates={PREFECT_API_URL: configured}):
        with serving(early_api):
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


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_the_server_does_not_outlive_a_killed_run(tmp_path):
    """``callqa run`` killed outright (no cleanup runs) takes its API server with it."""
    import psutil

    code = (
        "from pipeline.prefect_api import TemporaryPrefectApi\n"
        "api = TemporaryPrefectApi(); api.wait_ready(timeout_s=120)\n"
        "print(api.process.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    run = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        server = psutil.Process(int(run.stdout.readline()))
        assert server.is_running()
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    gone, alive = psutil.wait_procs([server], timeout=15)
    assert gone and not alive


@pytest.mark.slow
def test_prefect_calls_inside_use_the_early_server_without_heartbeats(early_api):
    from prefect.settings import PREFECT_API_URL, get_current_settings

    process = early_api.process
    with serving(early_api):
        assert PREFECT_API_URL.value() == early_api.url
        assert os.environ["PREFECT_API_URL"] == early_api.url  # Dask workers started here see it
        assert get_current_settings().flows.heartbeat_frequency is None
    assert process.poll() is not None
    assert "PREFECT_API_URL" not in os.environ
