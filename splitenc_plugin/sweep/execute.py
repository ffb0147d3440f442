"""Running one job, on the machine that runs it (a runner's thread or a Dask worker).

:func:`execute_job` takes the job's lock (:mod:`splitenc_plugin.sweep.lock`),
looks at the job's directory again under the lock (:func:`~splitenc_plugin.sweep.plan.classify`:
a job finished or started elsewhere since planning is left alone), resumes
it from its checkpoint or starts it afresh, and runs the job worker
(``python -m splitenc_plugin.sweep.job JOB_DIR``) as a subprocess that
inherits the lock. It returns a :class:`JobOutcome` whose :class:`RunStatus`
says how the attempt ended; it never raises for a failing job.

The job subprocesses this process started are kept in a registry with the id
of the run that asked for each, so that stopping a run stops its jobs and no
other run's (:func:`terminate_children`, also called on Dask workers).
:func:`job_env` is the environment a run gives its jobs (data root, thread
limits, deterministic mode).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from splitenc_plugin._io import write_json_atomic
from splitenc_plugin.compat import DETERMINISTIC_ENV
from splitenc_plugin.data import registry
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.sweep.job import THREAD_ENV
from splitenc_plugin.sweep.job_files import JOB_FILE, LOG_FILE
from splitenc_plugin.sweep.lock import (
    LOCK_PATIENCE_S,
    busy_message,
    job_lock,
    record_holder,
)
from splitenc_plugin.sweep.plan import Job, JobStatus, classify, is_finished

__all__ = ["DATA_ENV", "JobOutcome", "RunStatus", "execute_job", "job_env",
           "terminate_children", "thread_env"]

DATA_ENV = registry.ENV_VAR  # dlib's data root


class RunStatus(StrEnum):
    """How an attempt to run a job ended."""

    #: The job ran and finished (its ``done.json`` is readable).
    DONE = "done"
    #: The job was already finished when its turn came: nothing was run.
    SKIPPED = "skipped"
    #: Another process holds the job's lock (runs it): left alone.
    BUSY = "busy"
    #: The job failed, or could not be started (see ``error``).
    FAILED = "failed"


@dataclass(frozen=True)
class JobOutcome:
    """How running one job ended.

    Attributes:
      key: The job's name, ``<study>/<model_num>``.
      status: How it ended.
      log: The job's ``job.log`` ('' if unknown).
      returncode: The job process's exit code (None if none ran; negative:
        killed by that signal).
      elapsed: Seconds the job process ran.
      resumed_from: The checkpoint step training resumed from, or None.
      error: A failed job's last log lines or reason; who runs a busy job.
      attempt: Which attempt this was (> 1: the job was run again after
        losing its Dask worker; :mod:`splitenc_plugin.sweep.clusters`).
    """

    key: str
    status: RunStatus
    log: str = ""
    returncode: int | None = None
    elapsed: float = 0.0
    resumed_from: int | None = None
    error: str = ""
    attempt: int = 1


# Job subprocesses started by this process (a runner, or a Dask worker that
# may serve several runners), with the id of the run that asked for each.
_CHILDREN: dict[subprocess.Popen, str | None] = {}
# Runs stopped in this process (terminate_children): none of their jobs
# starts after that, not even one whose thread was between taking the job's
# lock and starting its subprocess when the stop came.
_STOPPED_RUNS: set[str | None] = set()
_CHILDREN_LOCK = threading.Lock()
_NOT_STARTED = "not started: its run was stopped (the same command resumes it)"


def thread_env(threads_per_job: int | None) -> dict[str, str]:
    """Environment limiting a job's TensorFlow (and oneDNN/OpenMP) to that many threads."""
    if threads_per_job is None:
        return {}
    if not isinstance(threads_per_job, int) or threads_per_job < 1:
        raise SplitencUserError(f"--threads_per_job must be >= 1, got {threads_per_job!r}")
    return {name: str(threads_per_job) for name in THREAD_ENV}


def job_env(threads_per_job: int | None = None, deterministic: bool = False) -> dict[str, str]:
    """The environment a run gives each of its jobs (on top of the worker's).

    The data root (``DISENTANGLEMENT_LIB_DATA``, made absolute), the thread
    limits (:func:`thread_env`), and ``SPLITENC_DETERMINISTIC=1`` in
    deterministic mode (otherwise a job inherits the worker's setting).
    """
    env = {DATA_ENV: os.path.abspath(os.environ[DATA_ENV])} if DATA_ENV in os.environ else {}
    env.update(thread_env(threads_per_job))
    if deterministic:
        env[DETERMINISTIC_ENV] = "1"
    return env


def execute_job(job: dict, env: dict | None = None, run_id: str | None = None) -> JobOutcome:
    """Runs one job in a subprocess; called on the machine that runs it.

    Takes the job's lock, resumes the job if it left a checkpoint of the same
    identity (else deletes its directory), writes ``job.json``, and runs
    ``python -m splitenc_plugin.sweep.job JOB_DIR`` with its output appended to
    ``JOB_DIR/job.log``. Never raises for a failing job.

    Args:
      job: :meth:`Job.to_dict` output.
      env: Environment variables to set for the job (on top of the worker's).
      run_id: Which run asked for the job, so that stopping that run stops
        its jobs on a shared Dask worker and no other run's.

    Returns:
      The outcome: DONE, SKIPPED (finished meanwhile), BUSY (another process
      holds the lock; ``error`` names it) or FAILED (``error``: the log's last
      lines, or why it was not started).
    """
    planned = Job.from_dict(job)
    job_dir = planned.job_dir
    log = str(job_dir / LOG_FILE)
    with job_lock(job_dir, patience=LOCK_PATIENCE_S) as fd:
        if fd is None:
            return JobOutcome(planned.key, RunStatus.BUSY, log=log, error=busy_message(job_dir))
        with _CHILDREN_LOCK:
            stopped = _stopped(run_id)
        if stopped:  # before its directory is touched
            return JobOutcome(planned.key, RunStatus.FAILED, log=log, error=_NOT_STARTED)
        state = classify(planned)
        if state.status is JobStatus.UNREADABLE:
            # Planning refuses these; a marker broken since then is left alone too.
            return JobOutcome(planned.key, RunStatus.FAILED, log=log, error=state.problem)
        if state.status is JobStatus.FINISHED:
            return JobOutcome(planned.key, RunStatus.SKIPPED, log=log)
        if state.status is JobStatus.IN_THE_WAY:
            return JobOutcome(planned.key, RunStatus.FAILED, log=log,
                              error="a different finished job is in the way")
        resume = state.resume_step
        start = time.time()
        if resume is None:
            if job_dir.exists():
                shutil.rmtree(job_dir)
            job_dir.mkdir(parents=True)
        write_json_atomic(job_dir / JOB_FILE, {"spec": job["spec"], "options": job["options"]})
        returncode = _run_worker(job_dir, fd, env, run_id)
    if returncode is None:
        return JobOutcome(planned.key, RunStatus.FAILED, log=log, resumed_from=None,
                          error=_NOT_STARTED)
    ok = returncode == 0 and is_finished(job_dir)
    return JobOutcome(planned.key, RunStatus.DONE if ok else RunStatus.FAILED, log=log,
                      returncode=returncode, elapsed=time.time() - start, resumed_from=resume,
                      error="" if ok else _tail(job_dir / LOG_FILE))


def _stopped(run_id: str | None) -> bool:
    """Whether ``terminate_children`` stopped this run (or every run) in this process.

    The caller holds ``_CHILDREN_LOCK``.
    """
    return None in _STOPPED_RUNS or run_id in _STOPPED_RUNS


def _run_worker(job_dir: Path, fd: int, env: dict | None, run_id: str | None) -> int | None:
    """Runs the job worker on ``job_dir`` under the held lock ``fd``.

    Returns:
      Its exit code; None if the run was stopped first (nothing started).
    """
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with open(job_dir / LOG_FILE, "a") as log:
        # Checked, started and registered under one lock: a stop either
        # comes first (nothing starts) or finds the process to terminate.
        with _CHILDREN_LOCK:
            if _stopped(run_id):
                return None
            # The job process inherits the locked fd: the lock lives as long
            # as the job does, even if this runner is killed.
            proc = subprocess.Popen(
                [sys.executable, "-m", "splitenc_plugin.sweep.job", str(job_dir)],
                stdout=log, stderr=subprocess.STDOUT, env=full_env, stdin=subprocess.DEVNULL,
                pass_fds=(fd,))
            _CHILDREN[proc] = run_id
        record_holder(fd, proc.pid)
        try:
            return proc.wait()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.pop(proc, None)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def terminate_children(run_id: str | None = None) -> int:
    """Stops this process's job subprocesses (only run ``run_id``'s, if given).

    SIGTERM first (the job process exits; its checkpoint stays for a resume),
    SIGKILL after 10 s. From then on no job of that run (of any run, without
    ``run_id``) starts in this process: :func:`execute_job` returns FAILED
    with "not started" for it (its directory untouched if the stop came
    before it took the job's lock). Returns how many were stopped.
    """
    with _CHILDREN_LOCK:
        _STOPPED_RUNS.add(run_id)
        children = [proc for proc, owner in _CHILDREN.items()
                    if run_id is None or owner == run_id]
    for proc in children:
        if proc.poll() is None:
            proc.terminate()
    for proc in children:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return len(children)
