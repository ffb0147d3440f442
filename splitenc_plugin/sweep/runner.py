"""``splitenc_reproduce``: run (a slice of) one of the paper's studies, resumably.

Usage::

    splitenc_reproduce --study split_encoder_study_v1 --output_directory runs \\
        [--steps N] [--datasets D ...] [--models M ...] [--encoders E ...] \\
        [--sigmas S ...] [--seeds 0 1 ...] [--model_nums N ...] \\
        [--workers K | --scheduler ADDRESS | --cluster slurm|pbs [--cluster_* ...]] \\
        [--retries R] [--threads_per_job T] \\
        [--visualize] [--prune_heavy] [--deterministic] [--max_jobs K] \\
        [--gin_bindings B]... [--dry_run]
    splitenc_reproduce --selections FILE --output_directory runs [--steps N] ...

``--selections`` runs several slices (one per line of FILE, in the syntax of
the command line's ``--study`` and filters) as one queue, in the file's order.

Each selected model of the study is one *job* (train -> postprocess ->
evaluate, optionally visualize), run by :mod:`splitenc_plugin.sweep.job` in its own
subprocess, in ``DIR/<study>/<model_num>/`` with dlib_reproduce's layout; its
output goes to ``job.log`` there (for humans), its progress to ``progress.json``
(:mod:`splitenc_plugin.sweep.progress`: the progress bar and the dry run's time
estimates read that file, never the log). Jobs run on a local pool of ``--workers``
threads (default 1), on a Dask distributed cluster with ``--scheduler``, or on
Dask workers the runner submits as Slurm/PBS batch jobs with ``--cluster``
(:mod:`splitenc_plugin.sweep.clusters`, which also retries jobs lost with their worker).

Guarantees:

* A job is finished when its ``done.json`` marker exists (written last,
  atomically). Finished jobs are skipped and never touched, even if their
  checkpoints and TF-Hub modules are gone (``--prune_heavy``, or only the small
  result files were committed and checked out elsewhere).
* An unfinished job of the same identity that left a checkpoint resumes
  training from it (see :mod:`splitenc_plugin.sweep.job`); any other unfinished job
  directory is deleted and the job redone from scratch.
* A job runs under an exclusive lock (``<study>/.<model_num>.lock``, held by
  the runner and inherited by the job process): a second runner never deletes
  or doubles a job that is still running, even if the first runner was killed
  and its job lives on. Such a job takes no ``--max_jobs`` slot.
* A job's identity is (study, model_num, gin config, bindings, steps): a
  finished job with another identity in the output directory (e.g. 5 steps
  where 100,000 are asked) is an error before anything runs.
* Bad input (unknown study / dataset / model / encoder / sigma / seed,
  steps < 1, empty selection, missing dataset files) is one error before any
  job starts.
* A failing job does not stop the others; the command exits 1 if any failed,
  listing each with its log.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from splitenc_plugin.compat import DETERMINISTIC_ENV
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.grid import (
    DEFAULT_TRAINING_STEPS,
    GRIDS,
    TEST_DATASET,
    JobSpec,
    check_extra_bindings,
    get_grid,
    make_job_spec,
)
from splitenc_plugin.sweep.job import (
    DONE_FILE,
    JOB_FILE,
    LOG_FILE,
    THREAD_ENV,
    MarkerError,
    read_done,
    read_job_spec,
    resumable_step,
    write_json_atomic,
)
from splitenc_plugin.sweep.progress import Progress, read_progress

__all__ = ["Job", "JobMismatchError", "execute_job", "job_status", "lock_path", "main",
           "plan_jobs", "plan_selections", "read_selections", "run_jobs", "running_state"]

DATA_ENV = "DISENTANGLEMENT_LIB_DATA"
# Exit codes: 0 all finished, 1 some job failed or is busy elsewhere, 2 bad input,
# 130 interrupted.
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class JobMismatchError(SplitencUserError):
    """The output directory holds finished jobs that computed something else."""


@dataclass(frozen=True)
class Job:
    """A job to run (or skip): its spec, its directory and its options."""

    spec: JobSpec
    job_dir: Path
    visualize: bool = False
    prune_heavy: bool = False

    @property
    def key(self) -> str:
        """``<study>/<model_num>``: the job's name in messages."""
        return f"{self.spec.study}/{self.spec.model_num}"

    def to_dict(self) -> dict:
        """A picklable, JSON-able description (what workers receive)."""
        return {"spec": self.spec.to_dict(), "job_dir": str(self.job_dir),
                "options": {"visualize": self.visualize, "prune_heavy": self.prune_heavy}}


# --------------------------------------------------------------------------
# Running one job (on a local thread or on a Dask worker)
# --------------------------------------------------------------------------
# Job subprocesses started by this process (a runner, or a Dask worker that
# may serve several runners), with the id of the run that asked for each.
_CHILDREN: dict[subprocess.Popen, str | None] = {}
_CHILDREN_LOCK = threading.Lock()
# How long a runner waits for a job's lock before leaving the job as busy:
# long enough to outlast another process's instantaneous probe of it.
LOCK_PATIENCE_S = 1.0


def lock_path(job_dir: str | os.PathLike) -> Path:
    """The lock file of a job: ``<study>/.<model_num>.lock``, beside its directory."""
    job_dir = Path(job_dir)
    return job_dir.parent / f".{job_dir.name}.lock"


def _lock(job_dir: Path, patience: float = 0.0) -> int | None:
    """Takes the job's exclusive lock; returns its fd, or None if another process holds it.

    Args:
      job_dir: The job's directory.
      patience: Seconds to keep trying. A dry run (``_running_elsewhere``)
        probes a lock by taking it for an instant; a runner that met such a
        probe would otherwise skip a free job as busy.
    """
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


def _holder(job_dir: Path) -> str:
    try:
        data = json.loads(lock_path(job_dir).read_text())
        return f"pid {data['pid']} on {data['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _resume_step(job_dir: Path, spec: JobSpec) -> int | None:
    """The checkpoint step an unfinished job would resume from (None: from scratch).

    Raises:
      MarkerError: If the directory's ``job.json`` is unreadable or of another
        schema (its checkpoint is never deleted on a guess).
    """
    started = read_job_spec(job_dir)
    if started is None or started.identity() != spec.identity():
        return None
    return resumable_step(job_dir)


def _busy_error(job_dir: Path) -> str:
    return f"{_holder(job_dir)} is running this job (lock {lock_path(job_dir)})"


def execute_job(job: dict, env: dict | None = None, run_id: str | None = None) -> dict:
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
      A dict with ``key``, ``status`` (``done``, ``skipped``, ``busy`` or
      ``failed``), ``returncode``, ``log``, ``elapsed``, ``resumed_from``
      (checkpoint step or None) and ``error`` (last log lines).
    """
    spec = JobSpec.from_dict(job["spec"])
    job_dir = Path(job["job_dir"])
    outcome = {"key": f"{spec.study}/{spec.model_num}", "log": str(job_dir / LOG_FILE),
               "returncode": None, "elapsed": 0.0, "resumed_from": None, "error": ""}
    fd = _lock(job_dir, patience=LOCK_PATIENCE_S)
    if fd is None:
        return {**outcome, "status": "busy", "error": _busy_error(job_dir)}
    try:
        try:
            done = read_done(job_dir)
            resume = None if done is not None else _resume_step(job_dir, spec)
        except MarkerError as exc:
            # Planning refuses these; a marker broken since then is left alone too.
            return {**outcome, "status": "failed", "error": str(exc)}
        if done is not None:
            same = done.get("identity") == spec.identity()
            return {**outcome, "status": "skipped" if same else "failed",
                    "error": "" if same else "a different finished job is in the way"}
        start = time.time()
        if resume is None:
            if job_dir.exists():
                shutil.rmtree(job_dir)
            job_dir.mkdir(parents=True)
        write_json_atomic(job_dir / JOB_FILE, {"spec": job["spec"], "options": job["options"]})
        full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        with open(job_dir / LOG_FILE, "a") as log:
            # The job process inherits the locked fd: the lock lives as long as
            # the job does, even if this runner is killed.
            proc = subprocess.Popen([sys.executable, "-m", "splitenc_plugin.sweep.job", str(job_dir)],
                                    stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                    stdin=subprocess.DEVNULL, pass_fds=(fd,))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": proc.pid, "host": socket.gethostname()}).encode(), 0)
            with _CHILDREN_LOCK:
                _CHILDREN[proc] = run_id
            try:
                returncode = proc.wait()
            finally:
                with _CHILDREN_LOCK:
                    _CHILDREN.pop(proc, None)
    finally:
        os.close(fd)
    ok = returncode == 0 and _finished(job_dir)
    return {**outcome, "status": "done" if ok else "failed", "returncode": returncode,
            "elapsed": time.time() - start, "resumed_from": resume,
            "error": "" if ok else _tail(job_dir / LOG_FILE)}


def _finished(job_dir: Path) -> bool:
    """Whether the job has a readable completion marker (a broken one is not finished)."""
    try:
        return read_done(job_dir) is not None
    except MarkerError:
        return False


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _terminate_children(run_id: str | None = None) -> int:
    """Stops this process's job subprocesses (only run ``run_id``'s, if given).

    SIGTERM first (the job process exits; its checkpoint stays for a resume),
    SIGKILL after 10 s. Returns how many were stopped.
    """
    with _CHILDREN_LOCK:
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


# --------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------
def plan_jobs(study: str, output_directory: str | os.PathLike, *, steps: int,
              datasets: Sequence[str] | None = None, models: Sequence[str] | None = None,
              encoders: Sequence[str] | None = None, sigmas: Sequence[float] | None = None,
              seeds: Sequence[int] | None = None, model_nums: Sequence[int] | None = None,
              gin_bindings: Sequence[str] = (), visualize: bool = False,
              prune_heavy: bool = False) -> list[Job]:
    """The jobs of a study slice, validated.

    Args:
      study: Study name.
      output_directory: Jobs go to ``<output_directory>/<study>/<model_num>``.
      steps: ``model.training_steps`` of every job (>= 1).
      datasets, models, encoders, sigmas, seeds: Keep only models with these
        grid values (None: all). ``datasets=["dummy_data"]`` (tests and smoke
        runs only) selects the study's first dataset's models and trains them
        on dlib's in-memory dummy data instead.
      model_nums: Keep only these model numbers (None: all).
      gin_bindings: Extra bindings for every job (part of its identity).
      visualize: Also run dlib's visualize_model in each job.
      prune_heavy: Delete checkpoints and TF-Hub modules of finished jobs.

    Returns:
      The selected jobs, in model_num order.

    Raises:
      SplitencUserError: For any invalid input or an empty selection.
    """
    grid = get_grid(study)
    check_extra_bindings(gin_bindings)
    if not isinstance(steps, int) or steps < 1:
        raise SplitencUserError(f"--steps must be a positive integer, got {steps!r}")
    override = None
    if datasets is not None and TEST_DATASET in datasets:
        if len(set(datasets)) > 1:
            raise SplitencUserError(
                f"--datasets {TEST_DATASET} (test data) cannot be combined with other datasets")
        override, datasets = TEST_DATASET, [grid.axes["dataset"][0]]
    specs = grid.select(dataset=datasets, model=models, encoder=encoders, sigma=sigmas,
                        seed=seeds)
    if model_nums is not None:
        bad = sorted(set(model_nums) - set(range(len(grid))))
        if bad:
            raise SplitencUserError(f"{study} has models 0..{len(grid) - 1}, not {bad}")
        specs = [s for s in specs if s.model_num in set(model_nums)]
    if not specs:
        raise SplitencUserError(
            f"the selection matches none of the {len(grid)} models of {study}; "
            "check --datasets/--models/--encoders/--sigmas/--seeds/--model_nums")
    out = Path(output_directory)
    return [Job(make_job_spec(study, s.model_num, steps, override, tuple(gin_bindings)),
                out / study / str(s.model_num), visualize, prune_heavy) for s in specs]


def _difference(key: str, finished, asked) -> str:
    if key == "bindings" and isinstance(finished, list):
        only_done = [b for b in finished if b not in asked]
        only_asked = [b for b in asked if b not in finished]
        return f"bindings: finished has {only_done}, asked has {only_asked}"
    return f"{key}: finished {finished!r}, asked {asked!r}"


def current_data(jobs: Iterable[Job]) -> dict[str, dict]:
    """The identity of each selected dataset that is present now (absent ones are left out).

    A dataset that is not there cannot be compared with what finished jobs
    trained on; the runner then trains nothing on it either
    (:func:`check_datasets`).
    """
    from splitenc_plugin.data import fingerprint, registry

    return {dataset: fingerprint.data_identity(dataset)
            for dataset in sorted({job.spec.dataset for job in jobs})
            if registry.check_dataset(dataset).ok}


def check_finished(jobs: Iterable[Job], data: dict[str, dict] | None = None
                   ) -> tuple[list[Job], list[Job]]:
    """Splits jobs into (finished, to run); refuses anything it must not overwrite.

    Args:
      jobs: The planned jobs.
      data: Dataset name -> its current identity (:func:`current_data`); a
        finished job counts only if it recorded the same data. None, or a
        dataset missing from it, skips that comparison.

    Raises:
      JobMismatchError: If a job directory holds a finished job whose identity
        differs, a finished job made on other data, a finished job whose result
        files are missing, or a ``done.json``/``job.json`` that cannot be read
        (never taken for "not finished": the runner would delete it).
    """
    from splitenc_plugin.data.fingerprint import recorded_identity, same_data

    finished, pending, problems = [], [], []
    for job in jobs:
        try:
            done = read_done(job.job_dir)
            if done is None:
                read_job_spec(job.job_dir)  # an unreadable one would be deleted
        except MarkerError as exc:
            problems.append(str(exc))
            continue
        if done is None:
            pending.append(job)
            continue
        identity = job.spec.identity()
        if done["identity"] != identity:
            diffs = [_difference(k, done["identity"].get(k), v)
                     for k, v in identity.items() if done["identity"].get(k) != v]
            problems.append(f"{job.job_dir} ({'; '.join(diffs)})")
            continue
        recorded, now = recorded_identity(done), (data or {}).get(job.spec.dataset)
        if now is not None and not same_data(recorded, now):
            problems.append(f"{job.job_dir} was trained on {recorded['label']}, the data is now "
                            f"{now['label']}")
            continue
        missing = [f for f in done.get("results", []) if not (job.job_dir / f).is_file()]
        if missing:
            problems.append(f"{job.job_dir} has {DONE_FILE} but lacks {', '.join(missing)}")
            continue
        finished.append(job)
    if problems:
        shown = "\n  ".join(problems[:5]) + (
            f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise JobMismatchError(
            f"{len(problems)} job director(ies) in the output directory do not match this run "
            f"and are never overwritten or deleted:\n  {shown}\nUse another "
            "--output_directory, the --steps/--gin_bindings/--datasets and the data of the run "
            "that made them, or repair the files named.")
    return finished, pending


def check_datasets(jobs: Iterable[Job]) -> None:
    """Raises one clear error if a selected dataset's files are missing."""
    from splitenc_plugin.data import registry

    for dataset in sorted({job.spec.dataset for job in jobs}):
        registry.require_dataset(dataset)


# --------------------------------------------------------------------------
# Executing
# --------------------------------------------------------------------------
class _LocalPool:
    """Runs execute_job on a pool of threads, each driving one subprocess."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splitenc-job")

    def submit(self, job: Job, env: dict):
        return self._pool.submit(execute_job, job.to_dict(), env)

    @staticmethod
    def as_completed(futures):
        pending = set(futures)
        while pending:
            # A timeout keeps the main thread responsive to Ctrl-C / SIGTERM.
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            yield from done

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


# How long an interrupted runner waits for the Dask workers to stop its jobs
# (each job gets SIGTERM, then SIGKILL after 10 s).
DASK_STOP_TIMEOUT_S = 60


class _DaskPool:
    """Runs execute_job on the workers of a Dask distributed scheduler."""

    def __init__(self, address: str, retries: int | None = None) -> None:
        from splitenc_plugin.sweep.clusters import DEFAULT_RETRIES

        self._retries = DEFAULT_RETRIES if retries is None else retries
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - dask is a dependency
            raise SplitencUserError("--scheduler needs dask[distributed] installed") from exc
        try:
            self._client = Client(address, timeout="20s")
        except OSError as exc:
            raise SplitencUserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self._run_id = f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"

    def submit(self, job: Job, env: dict):
        # A job lost with its worker is run again (clusters.run_attempt).
        from splitenc_plugin.sweep.clusters import run_attempt

        return self._client.submit(run_attempt, job.to_dict(), env, self._run_id, self._retries,
                                   pure=False,
                                   key=f"splitenc-{job.spec.study}-{job.spec.model_num}-"
                                       f"{time.time_ns()}")

    @staticmethod
    def as_completed(futures):
        from distributed import as_completed

        yield from as_completed(futures)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            # Cancelling a future does not stop a task that is running: stop
            # this run's job subprocesses on every worker (a job's checkpoint
            # stays, so the same command resumes it). Bounded, so that an
            # unresponsive cluster cannot keep an interrupted runner alive.
            print("stopping this run's jobs on the Dask workers ...", file=sys.stderr, flush=True)
            outcome: dict = {}

            def stop_jobs() -> None:
                try:
                    outcome["stopped"] = sum(self._client.run(_terminate_children,
                                                              self._run_id).values())
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
        self._client.close(timeout=DASK_STOP_TIMEOUT_S)


def _phase_text(progress: Progress) -> str:
    """'train 4200/100000', 'postprocess mean', 'evaluate mean/mig', ...: a job's phase."""
    if progress.phase == "train":
        return "train" if progress.step is None else \
            f"train {progress.step}/{progress.total_steps}"
    return f"{progress.phase} {progress.detail}".strip()


def running_state(job_dir: str | os.PathLike) -> str:
    """A running job's state for a dry run's plan, from its ``progress.json`` only.

    'running (train N/total, R steps/s, ~T left)' while it trains (rate and
    time left once it has reported twice in its current attempt), 'running
    (PHASE ...)' after; plain 'running' for a job that writes no progress file
    (one started by an older version).
    """
    progress = read_progress(job_dir)
    if progress is None:
        return "running"
    status = _phase_text(progress)
    rate, left = progress.rate(), progress.seconds_left()
    if rate is not None and left is not None:
        status += f", {rate:.1f} steps/s, ~{int(left // 3600)}h{int(left % 3600 // 60):02d}m left"
    return f"running ({status})"


def job_status(job: Job, since: float = 0.0) -> str | None:
    """A running job's short status for the progress bar ('20: train 40/100'), from ``progress.json``.

    None if the job has no progress file (not started, or started by an older
    version), or the file was last updated before ``since`` (epoch seconds): a
    queued job that an earlier run left half trained still has that run's
    progress, and is not running now.
    """
    progress = read_progress(job.job_dir)
    if progress is None or progress.updated_at < since:
        return None
    return f"{job.spec.model_num}: {_phase_text(progress)}"


def _watch(bar, jobs: Sequence[Job], finished: set[str], stop: threading.Event,
           since: float) -> None:
    """Shows what the running jobs are doing as the bar's postfix, every 2 s."""
    while not stop.wait(2.0):
        states = [s for job in jobs if job.key not in finished
                  and (s := job_status(job, since)) is not None
                  and not _finished(job.job_dir)]
        bar.set_postfix_str(" | ".join(states[:4]), refresh=True)


def thread_env(threads_per_job: int | None) -> dict[str, str]:
    """Environment limiting a job's TensorFlow (and oneDNN/OpenMP) to that many threads."""
    if threads_per_job is None:
        return {}
    if not isinstance(threads_per_job, int) or threads_per_job < 1:
        raise SplitencUserError(f"--threads_per_job must be >= 1, got {threads_per_job!r}")
    return {name: str(threads_per_job) for name in THREAD_ENV}


def run_jobs(jobs: Sequence[Job], *, workers: int = 1, scheduler: str | None = None,
             already_finished: int = 0, progress: bool = True,
             threads_per_job: int | None = None, deterministic: bool = False,
             cluster=None, retries: int | None = None) -> list[dict]:
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

    Returns:
      One outcome dict per job (see :func:`execute_job`), in completion order.
    """
    from tqdm import tqdm

    env = {DATA_ENV: os.path.abspath(os.environ[DATA_ENV])} if DATA_ENV in os.environ else {}
    env.update(thread_env(threads_per_job))
    if deterministic:
        env[DETERMINISTIC_ENV] = "1"
    if cluster is not None:  # a batch-system cluster (splitenc_plugin.sweep.clusters)
        from splitenc_plugin.sweep.clusters import cluster_pool

        pool = cluster_pool(cluster, len(jobs), retries)
    else:
        pool = _DaskPool(scheduler, retries) if scheduler else _LocalPool(workers)
    outcomes: list[dict] = []
    bar = tqdm(total=len(jobs) + already_finished, initial=already_finished, unit="job",
               desc="splitenc jobs", disable=not progress, dynamic_ncols=True, file=sys.stderr)
    futures = {}
    interrupted = False
    finished: set[str] = set()
    stop = threading.Event()
    if progress:
        threading.Thread(target=_watch, args=(bar, jobs, finished, stop, time.time()),
                         daemon=True).start()
    try:
        futures = {pool.submit(job, env): job for job in jobs}
        for future in pool.as_completed(list(futures)):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001  (a worker-side crash is one failed job)
                outcome = {"key": job.key, "status": "failed", "returncode": None,
                           "log": str(job.job_dir / LOG_FILE), "elapsed": 0.0,
                           "error": f"{type(exc).__name__}: {exc}"}
            outcomes.append(outcome)
            finished.add(job.key)
            bar.update(1)
            word = {"done": "finished", "skipped": "already finished",
                    "busy": "BUSY, left alone"}.get(outcome["status"], "FAILED")
            resumed = outcome.get("resumed_from")
            bar.write(f"{word}: {outcome['key']} ({outcome['elapsed']:.0f} s"
                      + (f", resumed from step {resumed}" if resumed is not None else "") + ")"
                      + (f"  log: {outcome['log']}" if outcome["status"] == "failed" else "")
                      + (f"  ({outcome['error']})" if outcome["status"] == "busy" else ""),
                      file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop.set()
        bar.close()
        if interrupted:
            for future in futures:
                future.cancel()
            _terminate_children()
        pool.close(cancel=interrupted)
    return outcomes


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def _split(values: Sequence[str] | None) -> list[str] | None:
    """Accepts ``--seeds 0 1 2`` as well as ``--seeds 0,1,2``."""
    if values is None:
        return None
    return [v for value in values for v in value.split(",") if v]


def _ints(values: Sequence[str] | None, flag: str) -> list[int] | None:
    values = _split(values)
    if values is None:
        return None
    out = []
    for value in values:
        lo, sep, hi = value.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(value)])
        except ValueError:
            raise SplitencUserError(f"{flag} takes integers or ranges like 0-9, got {value!r}") \
                from None
    return out


def _floats(values: Sequence[str] | None, flag: str) -> list[float] | None:
    values = _split(values)
    try:
        return None if values is None else [float(v) for v in values]
    except ValueError:
        raise SplitencUserError(f"{flag} takes numbers, got {values}") from None


def _add_filters(group) -> None:
    group.add_argument("--datasets", nargs="+", metavar="D",
                       help=f"dataset names; '{TEST_DATASET}' (tests/smoke runs only) trains "
                            "the first dataset's models on dlib's in-memory dummy data")
    group.add_argument("--models", nargs="+", metavar="M", help="vae, factor_vae, beta_tc_vae")
    group.add_argument("--encoders", nargs="+", metavar="E",
                       help="conv_encoder (vanilla), split_conv_encoder (split)")
    group.add_argument("--sigmas", nargs="+", metavar="S", help="noise correlation: 0, 0.9")
    group.add_argument("--seeds", nargs="+", metavar="S", help="seeds, e.g. 0 1 2 or 0-9")
    group.add_argument("--model_nums", nargs="+", metavar="N",
                       help="model numbers of the study")


_FILTERS = ("datasets", "models", "encoders", "sigmas", "seeds", "model_nums")


class _SelectionParser(argparse.ArgumentParser):
    """Parses one line of a --selections file; errors raise instead of exiting."""

    def error(self, message: str):
        raise SplitencUserError(message)


def read_selections(path: str | os.PathLike) -> list[argparse.Namespace]:
    """The selections of a ``--selections`` file, validated line by line.

    Returns:
      One namespace per selection line: ``study``, the filter options and
      ``where`` (file and line, for error messages).

    Raises:
      SplitencUserError: If the file is missing, empty, or a line is not a
        valid selection (the message names the line).
    """
    parser = _SelectionParser(prog="selection", add_help=False)
    parser.add_argument("--study", required=True)
    _add_filters(parser)
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SplitencUserError(f"cannot read --selections file {path}: {exc.strerror}") \
            from None
    selections = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}, line {number}"
        try:
            selections.append(parser.parse_args(shlex.split(line),
                                                argparse.Namespace(where=where)))
        except (SplitencUserError, ValueError) as exc:
            raise SplitencUserError(f"{where}: {exc}") from None
    if not selections:
        raise SplitencUserError(f"--selections file {path} has no selection lines")
    return selections


def _selections(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The command's selections: its own --study and filters, or a --selections file."""
    if args.selections is None:
        if args.study is None:
            raise SplitencUserError("give --study (and filters) or --selections FILE")
        return [args]
    given = [f"--{name}" for name in ("study", *_FILTERS) if getattr(args, name) is not None]
    if given:
        raise SplitencUserError(f"--selections replaces {', '.join(given)}: put them in the "
                                "file's lines instead")
    return read_selections(args.selections)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``splitenc_reproduce``."""
    parser = argparse.ArgumentParser(
        prog="splitenc_reproduce",
        description="Train, postprocess and evaluate the models of one of the paper's "
                    "studies (resumable; local pool or Dask cluster).",
        epilog="Studies: " + "; ".join(f"{g.name} ({len(g)} models): {g.description}"
                                       for g in GRIDS.values()))
    parser.add_argument("--study", help=f"one of {', '.join(GRIDS)} (or --selections)")
    parser.add_argument("--output_directory", required=True,
                        help="jobs go to DIR/<study>/<model_num> (dlib_reproduce's layout)")
    parser.add_argument("--steps", type=int, default=DEFAULT_TRAINING_STEPS,
                        help="model.training_steps of every model (default: %(default)s, "
                             "the paper's); part of each job's identity")
    _add_filters(parser.add_argument_group("selection (default: the whole study)"))
    parser.add_argument("--selections", metavar="FILE",
                        help="instead of --study and the filters: a file of selections, one "
                             "per line ('--study S [--datasets D ...] [--seeds ...]', '#' "
                             "comments), run as one queue in the file's order; --steps and "
                             "the execution options apply to all")
    ex = parser.add_argument_group("execution")
    ex.add_argument("--workers", type=int, default=1,
                    help="local jobs at a time (default: %(default)s)")
    ex.add_argument("--scheduler", metavar="ADDRESS",
                    help="run the jobs on this Dask distributed scheduler (e.g. "
                         "tcp://host:8786) instead of locally")
    ex.add_argument("--threads_per_job", type=int, metavar="T",
                    help="limit each job's TensorFlow to T threads (TF_NUM_INTRAOP_THREADS, "
                         "TF_NUM_INTEROP_THREADS, OMP_NUM_THREADS); default: TF's own, all "
                         "cores. With --workers K on C cores, T = C / K")
    ex.add_argument("--visualize", action="store_true",
                    help="also run dlib's visualize_model in each job, as dlib_reproduce does")
    ex.add_argument("--deterministic", action="store_true",
                    help="deterministic mode: the same job gives the same result JSONs every "
                         "time (TF op determinism, seeded TF-Hub export and sampled "
                         "representation; slower, see the README); recorded in done.json")
    ex.add_argument("--prune_heavy", action="store_true",
                    help="after a job finishes, delete its checkpoints, TF-Hub modules and "
                         "GIFs, keeping only what splitenc_aggregate reads")
    ex.add_argument("--gin_bindings", action="append", default=[], metavar="B",
                    help="extra gin binding for every job (one per flag, repeatable; part of "
                         "its identity); not the grid's own parameters (dataset, model, "
                         "encoder, sigma, seed, steps: use their options)")
    ex.add_argument("--max_jobs", type=int, metavar="K",
                    help="run at most K of the unfinished jobs (those that resume from a "
                         "checkpoint first, then in selection and model_num order; jobs "
                         "running in another process do not count), then stop; e.g. 1 to put the "
                         "next job on a core another runner's finished job left idle")
    ex.add_argument("--dry_run", action="store_true", help="print the plan and exit")
    ex.add_argument("--no_progress", action="store_true", help="no progress bar")
    from splitenc_plugin.sweep.clusters import add_arguments as add_cluster_arguments

    add_cluster_arguments(parser)
    return parser


def _running_elsewhere(job_dir: Path) -> bool:
    """Whether another process holds the job's lock (i.e. is running it now)."""
    if not lock_path(job_dir).exists():  # a dry run creates nothing
        return False
    fd = _lock(job_dir)
    if fd is None:
        return True
    os.close(fd)
    return False


def _report_busy(busy: list[dict]) -> None:
    if busy:
        print(f"{len(busy)} job(s) are being run by another process and were left alone "
              "(re-run the same command when it has ended):", file=sys.stderr)
        for o in busy:
            print(f"  {o['key']}: {o['error']}", file=sys.stderr)


def plan_selections(selections: Sequence[argparse.Namespace],
                    output_directory: str | os.PathLike, *, steps: int,
                    gin_bindings: Sequence[str] = (), visualize: bool = False,
                    prune_heavy: bool = False) -> tuple[list[Job], dict[str, int]]:
    """The jobs of several selections (:func:`read_selections`), as one queue.

    Args:
      selections: Namespaces with ``study`` and the filter options.
      output_directory, steps, gin_bindings, visualize, prune_heavy: As in
        :func:`plan_jobs`, for every selection.

    Returns:
      (the jobs in selection order, each named once; each job's rank: the
      index of the first selection that names it).

    Raises:
      SplitencUserError: For an invalid selection (naming its file line).
    """
    jobs, rank = [], {}
    for index, sel in enumerate(selections):
        try:
            planned = plan_jobs(
                sel.study, output_directory, steps=steps,
                datasets=_split(sel.datasets), models=_split(sel.models),
                encoders=_split(sel.encoders), sigmas=_floats(sel.sigmas, "--sigmas"),
                seeds=_ints(sel.seeds, "--seeds"),
                model_nums=_ints(sel.model_nums, "--model_nums"),
                gin_bindings=gin_bindings, visualize=visualize, prune_heavy=prune_heavy)
        except SplitencUserError as exc:
            where = getattr(sel, "where", None)
            raise (SplitencUserError(f"{where}: {exc}") if where else exc) from None
        for job in planned:
            if job.key not in rank:
                rank[job.key] = index
                jobs.append(job)
    return jobs, rank


def _plan(args: argparse.Namespace) -> tuple[list[Job], dict[str, int], str]:
    """The command's jobs in selection order, each job's selection rank, and a label."""
    selections = _selections(args)
    jobs, rank = plan_selections(selections, args.output_directory, steps=args.steps,
                                 gin_bindings=args.gin_bindings, visualize=args.visualize,
                                 prune_heavy=args.prune_heavy)
    label = args.study or f"{args.selections} ({len(selections)} selection(s))"
    return jobs, rank, label


def _run(args: argparse.Namespace) -> int:
    # The command's own options first: no planning with a bad one.
    if args.workers < 1:
        raise SplitencUserError(f"--workers must be >= 1, got {args.workers}")
    thread_env(args.threads_per_job)
    if args.steps < 1:
        raise SplitencUserError(f"--steps must be a positive integer, got {args.steps!r}")
    if args.max_jobs is not None and args.max_jobs < 1:
        raise SplitencUserError(f"--max_jobs must be >= 1, got {args.max_jobs}")
    from splitenc_plugin.sweep.clusters import cluster_options, retry_report

    cluster = cluster_options(args)  # --cluster/--retries: checked before any submission
    jobs, rank, label = _plan(args)
    finished, pending = check_finished(jobs, current_data(jobs))
    # Jobs another runner is running are left alone and take no --max_jobs slot,
    # so a second runner can fill an idle core with the next job.
    running = [job for job in pending if _running_elsewhere(job.job_dir)]
    pending = [job for job in pending if job not in running]
    # Jobs that can resume from a checkpoint go first: their compute is half spent.
    resume = {job.key: _resume_step(job.job_dir, job.spec) for job in pending}
    pending.sort(key=lambda job: (resume[job.key] is None, rank[job.key], job.spec.model_num))
    later = pending[args.max_jobs:] if args.max_jobs is not None else []
    pending = pending[:len(pending) - len(later)]
    if pending and not args.dry_run:
        check_datasets(pending)
    where = cluster.describe(len(pending)) if cluster else \
        f"Dask scheduler {args.scheduler}" if args.scheduler else \
        f"{args.workers} local worker(s)"
    studies = sorted({job.spec.study for job in jobs})
    where_out = os.path.join(args.output_directory, studies[0]) if len(studies) == 1 else \
        f"{args.output_directory} ({', '.join(studies)})"
    print(f"{label}: {len(jobs)} job(s) selected, {len(finished)} already finished, "
          f"{len(pending)} to run on {where}"
          + (f", {len(running)} running in another process" if running else "")
          + (f" ({len(later)} left for later: --max_jobs)" if later else "")
          + f"; {args.steps} steps each; output in {where_out}", flush=True)
    if args.dry_run:
        for job in jobs:
            step = resume.get(job.key)
            state = "finished" if job in finished else running_state(job.job_dir) \
                if job in running else \
                ("to run" if step is None else f"resume from {step}") if job in pending \
                else "later"
            s = job.spec
            print(f"  {job.key:32s} {state:54s} {s.dataset} {s.model} {s.encoder} "
                  f"sigma={s.sigma:g} seed={s.seed} ({s.config})")
        return 0
    elsewhere = [{"key": job.key, "status": "busy", "error": _busy_error(job.job_dir)}
                 for job in running]
    if not pending:
        print("nothing to do: every selected job is finished" if not running else
              "nothing to start: the unfinished jobs are running in another process")
        _report_busy(elsewhere)
        return EXIT_FAILED if running else 0
    outcomes = run_jobs(pending, workers=args.workers, scheduler=args.scheduler,
                        already_finished=len(finished), progress=not args.no_progress,
                        threads_per_job=args.threads_per_job,
                        deterministic=args.deterministic, cluster=cluster,
                        retries=args.retries)
    failed = sorted((o for o in outcomes if o["status"] == "failed"), key=lambda o: o["log"])
    busy = sorted([o for o in outcomes if o["status"] == "busy"] + elsewhere,
                  key=lambda o: o["key"])
    ran = sum(o["status"] == "done" for o in outcomes)
    print(f"{ran} job(s) finished now, {len(finished)} earlier, {len(failed)} failed"
          + (f", {len(busy)} running in another process" if busy else "")
          + (f", {len(later)} not started (--max_jobs)" if later else ""))
    _report_busy(busy)
    for line in retry_report(outcomes):
        print(line)
    if failed:
        print(f"{len(failed)} job(s) FAILED (re-run the same command to retry them):",
              file=sys.stderr)
        for o in failed:
            print(f"  {o['key']}: exit {o['returncode']}; log: {o['log']}", file=sys.stderr)
            for line in o["error"].splitlines():
                print(f"      {line}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if busy else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``splitenc_reproduce``; returns the exit code."""
    args = build_parser().parse_args(argv)
    # SIGTERM (e.g. a batch system's kill) stops the jobs like Ctrl-C does.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args)
    except SplitencUserError as exc:
        print(f"splitenc_reproduce: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("splitenc_reproduce: interrupted; the same command resumes unfinished jobs "
              "from their last checkpoint (saved every 10 minutes)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed early (e.g. `--dry_run | head`); silence the exit flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0 if args.dry_run else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
