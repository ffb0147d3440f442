"""Where a run's jobs execute: a local pool of threads or a Dask cluster, and the loop that drives one.

A pool has ``submit(job, env)`` (returns a future of a
:class:`~splitenc_plugin.sweep.execute.JobOutcome`), ``as_completed(futures)``
and ``close(cancel=False)``:

* :class:`LocalPool` runs :func:`~splitenc_plugin.sweep.execute.execute_job`
  on ``--workers`` threads, each driving one job subprocess;
* :class:`DaskPool` submits each job to a Dask distributed scheduler
  (``--scheduler``) through :func:`splitenc_plugin.sweep.clusters.run_attempt`,
  which retries a job lost with its worker; interrupted, it stops this run's
  jobs on every worker. :mod:`splitenc_plugin.sweep.clusters` subclasses it
  for ``--cluster slurm|pbs``.

:func:`run_jobs` runs a queue on one of them with a progress bar
(:mod:`splitenc_plugin.sweep.display`) and collects the outcomes.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.sweep.display import ProgressWatcher, outcome_line
from splitenc_plugin.sweep.execute import (
    JobOutcome,
    RunStatus,
    execute_job,
    job_env,
    terminate_children,
)
from splitenc_plugin.sweep.job_files import LOG_FILE
from splitenc_plugin.sweep.plan import Job

if TYPE_CHECKING:  # annotations only: Dask is imported when a scheduler is used
    import distributed

__all__ = ["DASK_STOP_TIMEOUT_S", "DaskPool", "LocalPool", "run_jobs"]

# How long an interrupted runner waits for the Dask workers to stop its jobs
# (each job gets SIGTERM, then SIGKILL after 10 s).
DASK_STOP_TIMEOUT_S = 60


def _new_run_id() -> str:
    """An id for one run: what its stop stops (:func:`terminate_children`)."""
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


class LocalPool:
    """Runs execute_job on a pool of threads, each driving one subprocess.

    Attributes:
      run_id: This run's id: stopping it stops its jobs and starts no more.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splitenc-job")
        self.run_id = _new_run_id()

    def submit(self, job: Job, env: dict) -> Future:
        """Starts the job when a thread is free; returns its future."""
        return self._pool.submit(execute_job, job.to_dict(), env, self.run_id)

    @staticmethod
    def as_completed(futures):
        """The futures as they complete (waking twice a second for Ctrl-C / SIGTERM)."""
        pending = set(futures)
        while pending:
            # A timeout keeps the main thread responsive to Ctrl-C / SIGTERM.
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            yield from done

    def close(self, cancel: bool = False) -> None:
        """Waits for the running jobs, or with ``cancel`` drops the queued ones."""
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskPool:
    """Runs execute_job on the workers of a Dask distributed scheduler.

    Attributes:
      client: The ``distributed.Client`` of the scheduler.
      run_id: This run's id: the workers stop only this run's jobs when it is
        interrupted.
    """

    def __init__(self, address: str, retries: int | None = None) -> None:
        """Connects to the scheduler at ``address``.

        Args:
          address: The scheduler, e.g. ``tcp://host:8786``.
          retries: How often a job lost with its worker is run again (None:
            :data:`splitenc_plugin.sweep.clusters.DEFAULT_RETRIES`).

        Raises:
          SplitencUserError: If the scheduler cannot be reached.
        """
        from splitenc_plugin.sweep.clusters import DEFAULT_RETRIES

        self._retries = DEFAULT_RETRIES if retries is None else retries
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise SplitencUserError("--scheduler needs dask[distributed] installed") from exc
        try:
            self.client = Client(address, timeout="20s")
        except OSError as exc:
            raise SplitencUserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.run_id = _new_run_id()

    def submit(self, job: Job, env: dict) -> distributed.Future:
        """Submits the job to the scheduler; returns its Dask future."""
        # A job lost with its worker is run again (clusters.run_attempt).
        from splitenc_plugin.sweep.clusters import run_attempt

        return self.client.submit(run_attempt, job.to_dict(), env, self.run_id, self._retries,
                                  pure=False,
                                  key=f"splitenc-{job.spec.study}-{job.spec.model_num}-"
                                      f"{time.time_ns()}")

    @staticmethod
    def as_completed(futures):
        """The futures as they complete."""
        from distributed import as_completed

        yield from as_completed(futures)

    def close(self, cancel: bool = False) -> None:
        """Closes the client; with ``cancel``, first stops this run's jobs on every worker."""
        if cancel:
            # Cancelling a future does not stop a task that is running: stop
            # this run's job subprocesses on every worker (a job's checkpoint
            # stays, so the same command resumes it). Bounded, so that an
            # unresponsive cluster cannot keep an interrupted runner alive.
            print("stopping this run's jobs on the Dask workers ...", file=sys.stderr, flush=True)
            outcome: dict = {}

            def stop_jobs() -> None:
                try:
                    outcome["stopped"] = sum(self.client.run(terminate_children,
                                                             self.run_id).values())
                except Exception as exc:  # noqa: BLE001 - reported below
                    outcome["error"] = exc

            stopper = threading.Thread(target=stop_jobs, daemon=True)
            stopper.start()
            stopper.join(timeout=DASK_STOP_TIMEOUT_S)
            if "stopped" in outcome:
                print(f"stopped {outcome['stopped']} job(s) on the Dask workers", file=sys.stderr)
            else:
                print("warning: could not stop the jobs on the Dask workers "
                      f"({outcome.get('error', f'no answer in {DASK_STOP_TIMEOUT_S} s')}); "
                      "they hold their locks until they end", file=sys.stderr)
        self.client.close(timeout=DASK_STOP_TIMEOUT_S)


def run_jobs(jobs: Sequence[Job], *, workers: int = 1, scheduler: str | None = None,
             already_finished: int = 0, progress: bool = True,
             threads_per_job: int | None = None, deterministic: bool = False,
             cluster=None, retries: int | None = None) -> list[JobOutcome]:
    """Runs the jobs, locally or on Dask, with a progress bar.

    Args:
      jobs: Jobs to run (none of them finished).
      workers: Local pool size (ignored with ``scheduler``).
      scheduler: Dask scheduler address, e.g. ``tcp://host:8786``.
      already_finished: Finished jobs of the selection (start of the bar).
      progress: Whether to show the tqdm bar.
      threads_per_job: Limit each job's TensorFlow to this many threads
        (None: TF's default, every core).
      deterministic: Run each job in deterministic mode (``SPLITENC_DETERMINISTIC=1``
        in its environment; see :mod:`splitenc_plugin.compat`). Otherwise a job
        inherits this process's setting.
      cluster: :class:`splitenc_plugin.sweep.clusters.ClusterOptions` to run
        on a batch-system cluster the run starts (instead of ``scheduler``).
      retries: How often a job lost with its Dask worker is run again.

    Returns:
      One outcome per job (see :func:`~splitenc_plugin.sweep.execute.execute_job`),
      in completion order.
    """
    from tqdm import tqdm

    env = job_env(threads_per_job, deterministic)
    if cluster is not None:  # a batch-system cluster (splitenc_plugin.sweep.clusters)
        from splitenc_plugin.sweep.clusters import cluster_pool

        pool = cluster_pool(cluster, len(jobs), retries)
    else:
        pool = DaskPool(scheduler, retries) if scheduler else LocalPool(workers)
    outcomes: list[JobOutcome] = []
    bar = tqdm(total=len(jobs) + already_finished, initial=already_finished, unit="job",
               desc="splitenc jobs", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    futures = {}
    interrupted = False
    watcher = ProgressWatcher(bar, jobs, time.time())
    if progress:
        watcher.start()
    try:
        futures = {pool.submit(job, env): job for job in jobs}
        for future in pool.as_completed(list(futures)):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001  (a worker-side crash is one failed job)
                outcome = JobOutcome(job.key, RunStatus.FAILED, log=str(job.job_dir / LOG_FILE),
                                     error=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
            watcher.ended(job.key)
            bar.update(1)
            bar.write(outcome_line(outcome), file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        watcher.stop()
        bar.close()
        if interrupted:
            for future in futures:
                future.cancel()
            terminate_children(pool.run_id)  # a local pool's jobs; none on Dask's
        pool.close(cancel=interrupted)
    return outcomes
