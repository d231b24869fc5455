"""Runs and concurrent calls: a run's record, heartbeat and close (killed runs closed on a
later start), and the leases by which two runs never process one call at once."""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.store import models as m
from pipeline.store.db import StoreError
from pipeline.store.session import StoreBase, is_value

_HOST = socket.gethostname()[:200]
# A run whose heartbeat is older than this (and not provably alive on this host) was killed.
RUN_STALE_AFTER_S = 15 * 60


def _jsonable(value: Any) -> Any:
    """Plain JSON (paths, datetimes, ... as strings) for the settings/summary columns."""
    return json.loads(json.dumps(value, default=str))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Runs(StoreBase):
    """Run records and call leases."""

    def start_run(self, archive: str, settings: dict[str, Any]) -> int:
        """Record the start of a pipeline run; returns its id (pass it to the saves)."""
        self.close_abandoned_runs()
        with self.transaction("cannot start a run") as s:
            now = m.utcnow()
            run = m.Run(
                archive=str(archive),
                settings=_jsonable(settings),
                host=_HOST,
                pid=os.getpid(),
                heartbeat_at=now,
                status="running",
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, summary: dict[str, Any], status: str = "finished") -> None:
        """Close a run. Counts come from ``summary`` (``scored``/``failed``/``skipped``) or,
        when absent, from the rows the run wrote. Its call leases are released."""
        with self.transaction(f"cannot finish run {run_id}") as s:
            run = s.get(m.Run, run_id)
            if run is None:
                raise StoreError(f"no run with id {run_id}")
            self._close(s, run, status, summary)

    def _close(self, s: Session, run: m.Run, status: str, summary: dict[str, Any]) -> None:
        run_id = run.id
        run.finished_at = m.utcnow()
        run.status = status
        run.summary = _jsonable(summary)
        s.execute(delete(m.CallLease).where(m.CallLease.run_id == run_id))
        counted = {
            "scored": select(func.count()).where(m.Result.run_id == run_id),
            "failed": select(func.count()).where(m.Failure.run_id == run_id),
        }
        for key in ("scored", "failed", "skipped"):
            value = summary.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(run, key, value)
            elif key in counted:
                setattr(run, key, s.scalar(counted[key]))

    def claim(self, call_id: str, run_id: int | None, ttl_s: float) -> bool:
        """Claim a call for this run for ``ttl_s`` seconds; False while another run holds an
        unexpired lease on it. Also the run's heartbeat."""
        now = m.utcnow()
        holder = f"{_HOST}:{os.getpid()}"
        expires = now + timedelta(seconds=ttl_s)
        with self.transaction(f"cannot claim call {call_id!r}") as s:
            dialect = s.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            s.execute(
                insert(m.CallLease)
                .values(
                    call_id=call_id,
                    run_id=run_id,
                    holder=holder,
                    expires_at=now - timedelta(seconds=1),
                )
                .on_conflict_do_nothing(index_elements=["call_id"])
            )
            lease = s.scalars(
                select(m.CallLease).where(m.CallLease.call_id == call_id).with_for_update()
            ).one()
            # Within one run a call is attempted again only after the previous attempt is
            # gone (a task retry, or Dask re-running a killed worker's task elsewhere), so
            # the run's own lease is taken over whichever of its processes held it.
            mine = lease.run_id == run_id and (run_id is not None or lease.holder == holder)
            if not mine and m.aware(lease.expires_at) > now:
                return False
            lease.run_id, lease.holder, lease.expires_at = run_id, holder, expires
            if run_id is not None:
                s.execute(update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=now))
            return True

    def release(self, call_id: str, run_id: int | None) -> None:
        """Give up this run's lease on a call (done with it, or stopping)."""
        with self.transaction(f"cannot release call {call_id!r}") as s:
            s.execute(
                delete(m.CallLease).where(
                    m.CallLease.call_id == call_id, is_value(m.CallLease.run_id, run_id)
                )
            )

    def keep_alive(self, run_id: int, every_s: float = 60.0) -> threading.Event:
        """Beat the run's heartbeat every ``every_s`` from a daemon thread until the returned
        event is set, so other hosts never take a long-running run for a killed one."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                try:
                    with self.transaction(f"cannot beat run {run_id}") as s:
                        s.execute(
                            update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=m.utcnow())
                        )
                except StoreError:
                    pass  # the calls' own saves report a store that went away

        threading.Thread(target=beat, name=f"callqa-run-{run_id}", daemon=True).start()
        return stop

    def close_abandoned_runs(self, stale_after_s: float = RUN_STALE_AFTER_S) -> list[int]:
        """Close runs that were killed: open runs of this host whose process is gone, and
        open runs of any host silent for ``stale_after_s``. Returns their ids."""
        now = m.utcnow()
        closed = []
        with self.transaction("cannot close abandoned runs") as s:
            for run in s.scalars(select(m.Run).where(m.Run.finished_at.is_(None))):
                beat = m.aware(run.heartbeat_at or run.started_at)
                here = run.host == _HOST and run.pid is not None
                dead = (here and not _alive(run.pid)) or (
                    not here and (now - beat).total_seconds() > stale_after_s
                )
                if dead:
                    counts = {
                        "scored": s.scalar(select(func.count()).where(m.Result.run_id == run.id)),
                        "failed": s.scalar(select(func.count()).where(m.Failure.run_id == run.id)),
                        "note": "closed on a later start: the run was killed",
                    }
                    self._close(s, run, "killed", counts)
                    closed.append(run.id)
        return closed

    def check_writable(self) -> None:
        """Raise StoreUnwritable (or StoreUnavailable) unless a write can be committed."""
        with self.transaction("the store is not writable") as s:
            probe = m.CallLease(
                call_id=f"__probe__{_HOST}:{os.getpid()}",
                holder="probe",
                expires_at=m.utcnow(),
            )
            s.add(probe)
            s.flush()
            s.delete(probe)
