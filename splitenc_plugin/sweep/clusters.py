"""Batch-system clusters for ``splitenc_reproduce``, and jobs that survive losing their Dask worker.

``--cluster slurm`` (or ``pbs``) makes the runner start its own Dask cluster
through dask-jobqueue: every batch job (``sbatch``/``qsub``) runs one Dask
worker that runs one study job at a time. The options
(:class:`ClusterOptions`, from :func:`add_arguments`'s flags) are validated
before anything is submitted; :func:`cluster_pool` builds the
``SLURMCluster``/``PBSCluster``, scales it to the work (at most
``--cluster_jobs`` batch jobs, never more than there are jobs to run, fewer as
the queue drains), resubmits a batch job whose worker was lost while work
remains, prints where the Dask dashboard is, and cancels its batch jobs when
the sweep ends or is interrupted.

On any Dask cluster (``--cluster`` or ``--scheduler``) jobs are submitted
through :func:`run_attempt`: a job lost with its worker (pre-emption, walltime,
``scancel``, a dead node) is run again on another worker, at most
``--retries`` times, and resumes from its last checkpoint on the shared output
directory. The job's lock (:func:`splitenc_plugin.sweep.lock.job_lock`) still
guarantees one running copy: a retry waits for the lost copy's process to
release it (:func:`wait_for_release`). :func:`retry_report` gives the
summary's lines about retried jobs.

Importing this module does not import dask-jobqueue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.sweep.execute import JobOutcome, RunStatus, execute_job
from splitenc_plugin.sweep.lock import job_lock, lock_path
from splitenc_plugin.sweep.pools import DaskPool

__all__ = ["DEFAULT_RETRIES", "ClusterOptions", "add_arguments", "cluster_options",
           "cluster_pool", "retry_report", "run_attempt", "wait_for_release"]

DEFAULT_RETRIES = 2
# How long a retried job waits for its lost copy's process to end (and release
# the job's lock); a batch system kills a cancelled job's processes in seconds.
RETRY_LOCK_WAIT_S = 120.0
# How long the runner waits for the first batch jobs to be submitted.
SUBMIT_TIMEOUT_S = 60.0
# How often the runner checks that the cluster has the batch jobs it needs.
KEEP_INTERVAL_S = 10.0

# kind -> (dask-jobqueue class, submit command, what the queue option is called)
KINDS = {"slurm": ("SLURMCluster", "sbatch", "partition"),
         "pbs": ("PBSCluster", "qsub", "queue")}
_WALLTIME = {"slurm": re.compile(r"^(\d+-)?\d{1,3}:[0-5]\d:[0-5]\d$"),
             "pbs": re.compile(r"^\d{1,4}:[0-5]\d:[0-5]\d$")}
# Defaults of the --cluster_* options: they suit one of the paper's jobs
# (300k steps of a conv VAE on CPU: about a day on 4 cores).
_DEFAULTS = {"jobs": 10, "cores": 4, "memory": "16GB", "walltime": "24:00:00"}


@dataclass(frozen=True)
class ClusterOptions:
    """What a cluster user sets for ``--cluster``; see :func:`add_arguments` for each."""

    kind: str
    log_directory: str
    jobs: int = _DEFAULTS["jobs"]
    cores: int = _DEFAULTS["cores"]
    memory: str = _DEFAULTS["memory"]
    walltime: str = _DEFAULTS["walltime"]
    queue: str | None = None
    account: str | None = None
    directives: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()
    interface: str | None = None
    python: str = field(default=sys.executable)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises one SplitencUserError naming the bad option and its fix."""
        if self.kind not in KINDS:
            raise SplitencUserError(f"--cluster must be one of {', '.join(KINDS)}, "
                                    f"got {self.kind!r}")
        for name in ("jobs", "cores"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SplitencUserError(f"--cluster_{name} must be >= 1, got {value!r}")
        from dask.utils import parse_bytes

        try:
            memory = parse_bytes(self.memory)
        except (ValueError, TypeError):
            memory = 0
        if memory < 2**28:
            raise SplitencUserError(f"--cluster_memory must be a size like 16GB (at least "
                                    f"256MB), got {self.memory!r}")
        if not _WALLTIME[self.kind].match(self.walltime):
            form = "HH:MM:SS or D-HH:MM:SS" if self.kind == "slurm" else "HH:MM:SS"
            raise SplitencUserError(f"--cluster_walltime must be {form} for {self.kind}, "
                                    f"got {self.walltime!r}")
        for flag, lines in (("--cluster_directive", self.directives),
                            ("--cluster_prologue", self.prologue)):
            bad = [line for line in lines if not line.strip() or "\n" in line]
            if bad:
                raise SplitencUserError(f"{flag} takes one non-empty line each, got {bad[0]!r}")
        for flag, value in (("--cluster_queue", self.queue), ("--cluster_account", self.account)):
            if value is not None and not re.fullmatch(r"[\w.@+-]+", value):
                raise SplitencUserError(f"{flag} must be a plain name, got {value!r}")
        if self.interface is not None:
            import psutil

            names = sorted(psutil.net_if_addrs())
            if self.interface not in names:
                raise SplitencUserError(f"--cluster_interface {self.interface!r} is not a "
                                        f"network interface of this host ({', '.join(names)})")
        submit = KINDS[self.kind][1]
        if shutil.which(submit) is None:
            raise SplitencUserError(f"--cluster {self.kind} submits batch jobs with {submit}, "
                                    "which is not on PATH: run on a login node of the cluster, "
                                    "or start Dask workers yourself and use --scheduler ADDRESS")
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError:
            raise SplitencUserError("--cluster needs dask-jobqueue: pip install "
                                    "dask-jobqueue (or reinstall splitenc_plugin)") from None

    def describe(self, jobs: int) -> str:
        """'up to 3 Slurm batch job(s) (4 cores, 16GB, 24:00:00 each)' for a plan line."""
        name = {"slurm": "Slurm", "pbs": "PBS"}[self.kind]
        return (f"up to {min(self.jobs, jobs)} {name} batch job(s) ({self.cores} cores, "
                f"{self.memory}, {self.walltime} each)")

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of dask-jobqueue's SLURMCluster / PBSCluster."""
        kwargs = {
            "cores": self.cores, "processes": 1, "memory": self.memory,
            "walltime": self.walltime, "queue": self.queue, "account": self.account,
            "job_name": "splitenc", "job_extra_directives": list(self.directives),
            "job_script_prologue": list(self.prologue), "log_directory": self.log_directory,
            "python": self.python,
            # One study job at a time per worker; the job's TensorFlow gets the cores.
            "worker_extra_args": ["--nthreads", "1"],
        }
        if self.interface is not None:
            kwargs["interface"] = self.interface
        return kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--cluster``, its ``--cluster_*`` options and ``--retries`` to the parser."""
    group = parser.add_argument_group(
        "batch-system cluster (Slurm or PBS, through dask-jobqueue)",
        "With --cluster the runner submits its own Dask workers as batch jobs (one worker, "
        "one study job at a time per batch job), scales them to the work and cancels them at "
        "the end. The output directory and the data root must be on a shared filesystem.")
    group.add_argument("--cluster", choices=sorted(KINDS),
                       help="run the jobs on Dask workers submitted as batch jobs")
    group.add_argument("--cluster_jobs", type=int, metavar="N",
                       help=f"at most N batch jobs (Dask workers) at a time (default: "
                            f"{_DEFAULTS['jobs']}; never more than there are jobs to run)")
    group.add_argument("--cluster_cores", type=int, metavar="C",
                       help=f"cores per batch job (default: {_DEFAULTS['cores']}); also each "
                            "job's TensorFlow threads unless --threads_per_job is given")
    group.add_argument("--cluster_memory", metavar="SIZE",
                       help=f"memory per batch job (default: {_DEFAULTS['memory']})")
    group.add_argument("--cluster_walltime", metavar="HH:MM:SS",
                       help=f"walltime per batch job (default: {_DEFAULTS['walltime']}); a job "
                            "cut off by it is retried and resumes from its checkpoint")
    group.add_argument("--cluster_queue", metavar="NAME",
                       help="Slurm partition (-p) or PBS queue (-q)")
    group.add_argument("--cluster_account", metavar="NAME",
                       help="account to charge (-A)")
    group.add_argument("--cluster_directive", action="append", metavar="LINE",
                       help="extra batch directive (repeatable), e.g. '--gres=gpu:1' (Slurm) "
                            "or '-l ngpus=1' (PBS)")
    group.add_argument("--cluster_prologue", action="append", metavar="LINE",
                       help="shell line run before the worker starts (repeatable), e.g. "
                            "'source /shared/splitenc_plugin/.venv/bin/activate'")
    group.add_argument("--cluster_log_dir", metavar="DIR",
                       help="where the batch jobs' output goes (default: "
                            "OUTPUT_DIRECTORY/cluster_logs)")
    group.add_argument("--cluster_interface", metavar="IFACE",
                       help="network interface for the scheduler and workers, e.g. ib0 "
                            "(default: Dask's choice)")
    group.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="R",
                       help="on a Dask cluster (--cluster or --scheduler), run a job lost with "
                            "its worker again up to R times, from its last checkpoint "
                            "(default: %(default)s)")


def cluster_options(args: argparse.Namespace) -> ClusterOptions | None:
    """The validated ``--cluster`` options of a command line, or None without ``--cluster``.

    Raises:
      SplitencUserError: For a bad option, ``--cluster_*`` options without
        ``--cluster``, or ``--cluster`` with ``--scheduler`` (before anything
        is submitted).
    """
    if args.retries < 0:
        raise SplitencUserError(f"--retries must be >= 0, got {args.retries}")
    given = {name: getattr(args, f"cluster_{name}") for name in
             ("jobs", "cores", "memory", "walltime", "queue", "account", "directive",
              "prologue", "log_dir", "interface")}
    given = {name: value for name, value in given.items() if value is not None}
    if args.cluster is None:
        if given:
            raise SplitencUserError(f"--cluster_{next(iter(given))} needs --cluster slurm "
                                    "or --cluster pbs")
        return None
    if args.scheduler is not None:
        raise SplitencUserError("give --cluster (the runner starts its own cluster) or "
                                "--scheduler ADDRESS (an existing one), not both")
    log_dir = given.pop("log_dir", None) or os.path.join(args.output_directory, "cluster_logs")
    kwargs = {{"directive": "directives", "prologue": "prologue"}.get(name, name):
              tuple(value) if isinstance(value, list) else value
              for name, value in given.items()}
    return ClusterOptions(kind=args.cluster, log_directory=os.path.abspath(log_dir), **kwargs)


# --------------------------------------------------------------------------
# On the worker: one attempt of a job
# --------------------------------------------------------------------------
def _attempts_path(job_dir: Path) -> Path:
    return lock_path(job_dir).with_suffix(".attempts")


def _count_attempt(job_dir: Path, run_id: str) -> int:
    """Records one more attempt of the job by run ``run_id``; returns its number (1, 2, ...)."""
    from splitenc_plugin._io import write_json_atomic

    path = _attempts_path(job_dir)
    try:
        data = json.loads(path.read_text())
        attempt = data["attempts"] + 1 if data.get("run") == run_id else 1
    except (OSError, ValueError, KeyError, TypeError):
        attempt = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"run": run_id, "attempts": attempt})
    return attempt


def wait_for_release(job_dir: str | os.PathLike, timeout: float = RETRY_LOCK_WAIT_S) -> bool:
    """Waits until no process holds the job's lock (a lost copy of the job has ended).

    Holds the lock for an instant only: the caller takes it again to run the job.

    Returns:
      Whether the lock was free within ``timeout`` seconds.
    """
    with job_lock(job_dir, patience=timeout) as fd:
        return fd is not None


def run_attempt(job: dict, env: dict | None, run_id: str, retries: int) -> JobOutcome:
    """Runs one attempt of a job on a Dask worker; what the runner submits to Dask.

    Counts the attempt on the shared output directory (beside the job's lock),
    waits for a lost earlier copy of the job to release the lock, and runs
    :func:`splitenc_plugin.sweep.execute.execute_job`, which resumes from the job's
    last checkpoint. A job killed by a signal it did not raise itself (its
    batch job cancelled or pre-empted) is handed back to the scheduler to run
    on another worker (``distributed.Reschedule``) while retries remain; a
    worker that dies outright makes the scheduler do the same.

    Returns:
      :func:`~splitenc_plugin.sweep.execute.execute_job`'s outcome, with its
      ``attempt`` (1 for a job that was never lost).
    """
    from distributed import Reschedule

    job_dir = Path(job["job_dir"])
    attempt = _count_attempt(job_dir, run_id)
    if attempt > retries + 1:
        spec = job["spec"]
        return JobOutcome(f"{spec['study']}/{spec['model_num']}", RunStatus.FAILED,
                          log=str(job_dir / "job.log"), attempt=attempt - 1,
                          error=f"lost its worker on each of {attempt - 1} attempts (--retries "
                                f"{retries}); re-run the same command to resume it")
    if attempt > 1:
        wait_for_release(job_dir)
    outcome = execute_job(job, env, run_id)
    killed = outcome.status is RunStatus.FAILED and (outcome.returncode or 0) < 0
    if killed and attempt <= retries:
        raise Reschedule()
    _attempts_path(job_dir).unlink(missing_ok=True)
    return replace(outcome, attempt=attempt)


def retry_report(outcomes: Iterable[JobOutcome]) -> list[str]:
    """Summary lines naming the jobs that were run again after losing their worker."""
    retried = sorted((o for o in outcomes if o.attempt > 1), key=lambda o: o.key)
    if not retried:
        return []
    lines = [f"{len(retried)} job(s) lost their Dask worker and were retried:"]
    for o in retried:
        resumed = o.resumed_from
        lines.append(f"  {o.key}: {o.status} on attempt {o.attempt}"
                     + (f", resumed from step {resumed}" if resumed is not None else ""))
    return lines


# --------------------------------------------------------------------------
# In the runner: the pool of a batch-system cluster
# --------------------------------------------------------------------------
def cluster_pool(options: ClusterOptions, jobs: int, retries: int) -> DaskPool:
    """Starts a batch-system cluster for ``jobs`` jobs; returns the runner's pool on it.

    The pool (a :class:`splitenc_plugin.sweep.pools.DaskPool`) submits up to
    ``options.jobs`` batch jobs, prints the dashboard address, keeps the
    cluster scaled to the remaining work and cancels its batch jobs on close.

    Raises:
      SplitencUserError: If the batch system rejects the first submission
        (its message included); nothing is left running.
    """
    return _pool_class()(options, jobs, retries)


_POOL_CLASS = None


def _pool_class():
    global _POOL_CLASS
    if _POOL_CLASS is not None:
        return _POOL_CLASS
    import dask
    import dask_jobqueue

    from splitenc_plugin.sweep.job import THREAD_ENV

    class _JobqueuePool(DaskPool):
        def __init__(self, options: ClusterOptions, jobs: int, retries: int) -> None:
            cls = getattr(dask_jobqueue, KINDS[options.kind][0])
            Path(options.log_directory).mkdir(parents=True, exist_ok=True)
            # The scheduler gives up on a job after as many lost workers as --retries.
            with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
                self.cluster = cls(**options.cluster_kwargs())
            self._options, self._remaining = options, jobs
            self._lock = threading.Lock()
            try:
                self._check_submission()
            except SplitencUserError:
                self.cluster.close()
                raise
            try:
                super().__init__(self.cluster.scheduler_address, retries)
            except BaseException:
                self.cluster.close()
                raise
            print(f"{options.kind} cluster: Dask dashboard at {self.cluster.dashboard_link}; "
                  f"batch job output in {options.log_directory}", flush=True)
            self._stop = threading.Event()
            self._keeper = threading.Thread(target=self._keep, daemon=True,
                                            name="splitenc-cluster-keeper")
            self._keeper.start()

        def _check_submission(self) -> None:
            """Submits the first batch jobs; a rejected one is an error, not a hang."""
            options = self._options
            submit = KINDS[options.kind][1]
            if options.kind == "slurm":
                # Slurm validates a job (partition, account, resources) without submitting it.
                script = Path(options.log_directory) / "splitenc-worker.sbatch"
                script.write_text(self.cluster.job_script())
                test = subprocess.run([submit, "--test-only", str(script)], capture_output=True,
                                      text=True, check=False)
                if test.returncode != 0:
                    raise SplitencUserError(
                        f"could not start the slurm cluster: {submit} rejects its batch job "
                        f"({script}): {test.stderr.strip() or test.stdout.strip()}")
            target = min(options.jobs, self._remaining)
            self.cluster.scale(jobs=target)
            deadline = time.monotonic() + SUBMIT_TIMEOUT_S
            while len(self.cluster.workers) < target and time.monotonic() < deadline:
                time.sleep(0.2)
            if not any(getattr(w, "job_id", None) for w in self.cluster.workers.values()):
                raise SplitencUserError(f"could not start the {options.kind} cluster: {submit} "
                                        "failed (its message is above)")

        def submit(self, job, env: dict):
            threads = {name: str(self._options.cores) for name in THREAD_ENV}
            return super().submit(job, {**threads, **env})

        def as_completed(self, futures):
            for future in DaskPool.as_completed(futures):
                with self._lock:
                    self._remaining -= 1
                yield future

        def _keep(self) -> None:
            """Resubmits lost batch jobs while work remains; retires idle ones as it drains."""
            while not self._stop.wait(KEEP_INTERVAL_S):
                try:
                    with self._lock:
                        target = min(self._options.jobs, self._remaining)
                    planned = len(self.cluster.worker_spec)
                    if target >= planned:
                        self.cluster.scale(jobs=target)  # reopens lost workers
                        continue
                    busy = {addr for addr, keys in self.client.processing().items() if keys}
                    idle = [info["name"] for addr, info
                            in self.cluster.scheduler_info.get("workers", {}).items()
                            if addr not in busy]
                    if idle:
                        self.cluster.sync(self.cluster.scale_down, idle[:planned - target])
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    print(f"warning: cluster upkeep failed ({type(exc).__name__}: {exc})",
                          file=sys.stderr, flush=True)

        def close(self, cancel: bool = False) -> None:
            self._stop.set()
            try:
                super().close(cancel)
            finally:
                self.cluster.close()
                print(f"{self._options.kind} cluster stopped (its batch jobs are cancelled)",
                      file=sys.stderr, flush=True)

    _POOL_CLASS = _JobqueuePool
    return _POOL_CLASS
