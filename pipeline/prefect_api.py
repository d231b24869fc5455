"""Prefect's temporary API server for ``callqa run``, started as the run's very first step.

Prefect starts such a server itself when no ``PREFECT_API_URL`` is configured, but only once
the flow is called, and only after importing its whole server application in the calling
process: on 2 cores that cost about 5 seconds of the main thread before the server process
even started, then its own start-up of about 6 more before the first call. Here the server
process (the same uvicorn command Prefect runs) is launched before callqa imports anything
heavy, so its start-up runs on the other core while the models load and the checks run, and
the flow process never imports ``prefect.server``.

Nothing changes where an API is configured (``PREFECT_API_URL`` in the environment, a Prefect
profile or ``prefect_test_harness``): the early server is stopped unused and Prefect's own
rules apply, including its refusal when temporary servers are disabled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

API_URL_ENV = "PREFECT_API_URL"
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# uvicorn's exit status when it cannot bind its port (another process took it meanwhile)
PORT_IN_USE_EXIT = 3


# uvicorn, run so that it stops with the process that started it even when that one is
# killed outright (Linux: the parent-death signal); elsewhere it is stopped by stop() only.
_SERVE = """
import ctypes, os, runpy, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)  # the parent is already gone
sys.argv = ["uvicorn", *sys.argv[2:]]
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


class PrefectApiError(RuntimeError):
    """The temporary API server did not come up; says why (its exit status and output)."""


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TemporaryPrefectApi:
    """One uvicorn process serving Prefect's API on a free local port until :meth:`stop`."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen | None = None
        # its output, read when it fails: a pipe nobody reads would stall a server that logs
        # more than the pipe holds over a long night
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._launch()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> None:
        spec = importlib.util.find_spec("prefect")  # its location, without importing it
        if spec is None or spec.origin is None:
            raise PrefectApiError("Prefect is not installed")
        self.port = _free_port()
        env = {
            **os.environ,
            # what Prefect's own SubprocessASGIServer sets: no UI, a temporary server
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable, "-c", _SERVE, str(os.getpid()),
                "--app-dir", str(Path(spec.origin).parent.parent),
                "--factory", "prefect.server.api.server:create_app",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._output,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float | None = None) -> str:
        """Block until the API answers its health check; its URL. Raises PrefectApiError."""
        if timeout_s is None:
            timeout_s = float(os.environ.get(STARTUP_TIMEOUT_ENV) or 180)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            status = self.process.poll()
            if status == PORT_IN_USE_EXIT:
                self._launch()
                continue
            if status is not None:
                self._output.seek(0)
                err = self._output.read().decode(errors="replace")
                raise PrefectApiError(
                    f"Prefect's temporary API server exited with status {status}: "
                    f"{err.strip()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise PrefectApiError(
            f"Prefect's temporary API server did not answer within {timeout_s:.0f} s "
            f"({STARTUP_TIMEOUT_ENV})"
        )

    def stop(self) -> None:
        """Stop the server (graceful, then killed after 5 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            self._output.close()
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._output.close()


def start_early() -> TemporaryPrefectApi | None:
    """Launch the server now unless the environment names an API; None when not launched
    (or when it cannot be, in which case Prefect starts its own and reports any error)."""
    if os.environ.get(API_URL_ENV):
        return None
    try:
        return TemporaryPrefectApi()
    except (OSError, PrefectApiError):
        return None


@contextlib.contextmanager
def serving(api: TemporaryPrefectApi | None) -> Iterator[None]:
    """Prefect calls inside use ``api`` (waited for) unless Prefect's settings name an API or
    disable temporary servers; ``api`` is stopped on leaving either way."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    if api is None or PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        if api is not None:
            api.stop()
        yield
        return
    try:
        url = api.wait_ready()
        os.environ[API_URL_ENV] = url  # for the Dask workers this process may start
        # No flow-run heartbeats: they let a lasting Prefect server mark crashed runs, but
        # this one stops with the run (killed runs are the store's own keep-alive's job),
        # and their thread, joined as the flow ends, sleeps in 1-s steps.
        with temporary_settings(
            updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        ):
            try:
                yield
            finally:
                _drain_prefect_workers()
    finally:
        os.environ.pop(API_URL_ENV, None)
        api.stop()


def _drain_prefect_workers() -> None:
    """Send the logs and events Prefect still queues to the API before it stops (as
    ``prefect_test_harness`` does): at interpreter exit it would retry a stopped server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # never started
        APILogWorker.instance().drain()
    EventsWorker.drain_all()
