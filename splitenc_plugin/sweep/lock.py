"""Job locks: one running copy of a job, across runners, machines and lost Dask workers.

A job runs under an exclusive ``flock`` on ``<study>/.<model_num>.lock``
(:func:`lock_path`), beside its directory. The runner (or Dask worker) that
starts a job takes the lock with :func:`job_lock` and passes the locked file
descriptor to the job process, which inherits it: the lock lives as long as
the job does, even if the runner is killed. The lock file's content names the
process that holds it (:func:`record_holder`, :func:`lock_holder`), for
messages only; the ``flock`` decides.

Used by the planner (:func:`held_elsewhere`: "running in another process"),
by :mod:`splitenc_plugin.sweep.execute` (the lock a job runs under) and by
:mod:`splitenc_plugin.sweep.clusters` (a retried job waits for its lost copy to
release the lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCK_PATIENCE_S", "busy_message", "held_elsewhere", "job_lock", "lock_holder",
           "lock_path", "record_holder"]

# How long a runner waits for a job's lock before leaving the job as busy:
# long enough to outlast another process's instantaneous probe of it.
LOCK_PATIENCE_S = 1.0


def lock_path(job_dir: str | os.PathLike) -> Path:
    """The lock file of a job: ``<study>/.<model_num>.lock``, beside its directory."""
    job_dir = Path(job_dir)
    return job_dir.parent / f".{job_dir.name}.lock"


def _acquire(job_dir: Path, patience: float) -> int | None:
    """Takes the job's exclusive lock; returns its fd, or None if another process holds it."""
    path = lock_path(job_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


@contextmanager
def job_lock(job_dir: str | os.PathLike, patience: float = 0.0) -> Iterator[int | None]:
    """Holds the job's exclusive lock for the ``with`` block.

    Creates the lock file (and its study directory) if needed. The lock is
    released when the block ends, unless a process that inherited the file
    descriptor (the job) still holds it.

    Args:
      job_dir: The job's directory.
      patience: Seconds to keep trying. A dry run (:func:`held_elsewhere`)
        probes a lock by taking it for an instant; a runner that met such a
        probe would otherwise skip a free job as busy (use
        :data:`LOCK_PATIENCE_S`).

    Yields:
      The locked file descriptor, or None if another process holds the lock
      (then nothing is held).
    """
    fd = _acquire(Path(job_dir), patience)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def record_holder(fd: int, pid: int) -> None:
    """Writes who runs the job (``pid`` on this host) into the held lock file ``fd``."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": pid, "host": socket.gethostname()}).encode(), 0)


def lock_holder(job_dir: str | os.PathLike) -> str:
    """'pid N on HOST' as the lock file records it, or 'another process'."""
    try:
        data = json.loads(lock_path(job_dir).read_text())
        return f"pid {data['pid']} on {data['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def busy_message(job_dir: str | os.PathLike) -> str:
    """Why a job is left alone: who holds its lock, and where the lock is."""
    return f"{lock_holder(job_dir)} is running this job (lock {lock_path(job_dir)})"


def held_elsewhere(job_dir: str | os.PathLike) -> bool:
    """Whether another process holds the job's lock (i.e. is running it now).

    Creates nothing: a job without a lock file is not running.
    """
    if not lock_path(job_dir).exists():  # a dry run creates nothing
        return False
    with job_lock(job_dir) as fd:
        return fd is None
