"""The runner of ``splitenc_reproduce``: one object that plans a sweep and runs it.

A :class:`Runner` holds a run's options (what ``splitenc_reproduce``'s
command line says: selections, steps, bindings, where and how to run) and
does the run in two steps, without printing anything: :meth:`Runner.plan`
gives the :class:`~splitenc_plugin.sweep.plan.RunPlan` (every job's state and
the queue), :meth:`Runner.run` runs the queue and returns one
:class:`~splitenc_plugin.sweep.execute.JobOutcome` per job. The command line
(:mod:`splitenc_plugin.sweep.cli`) is a thin layer over it that parses and
prints. The pieces, one job each:

* :mod:`.plan` -- selections, jobs, where each job stands (:class:`JobStatus`);
* :mod:`.lock` -- the per-job lock (one running copy of a job);
* :mod:`.execute` -- running one job in a subprocess (:class:`JobOutcome`);
* :mod:`.pools` -- local and Dask pools, and the loop that drives one;
* :mod:`.clusters` -- Slurm/PBS clusters and retries of jobs lost with their worker;
* :mod:`.display` -- progress texts (from ``progress.json``, never the log);
* :mod:`.cli` -- ``splitenc_reproduce``'s options, messages and exit codes.

Guarantees of a run:

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
* A job's identity is (study, model_num, gin config, bindings, steps, and any
  fragments and ``--metrics``;
  :meth:`~splitenc_plugin.studies.grid.JobSpec.identity`): a finished job
  with another identity in the output directory (e.g. 5 steps where 100,000
  are asked), or one whose marker cannot be read, is an error before anything
  runs.
* Bad input (unknown study / dataset / model / encoder / sigma / seed,
  steps < 1, empty selection, missing dataset files) is one error before any
  job starts.
* A failing job does not stop the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from splitenc_plugin.errors import (
    SplitencUserError,
    env_switch,
    refuse_file_as_directory,
)
from splitenc_plugin.studies.dlib_any import import_study_modules
from splitenc_plugin.studies.grid import DEFAULT_TRAINING_STEPS
from splitenc_plugin.sweep.execute import (
    JobOutcome,
    RunStatus,
    thread_env,
)
from splitenc_plugin.sweep.lock import busy_message
from splitenc_plugin.sweep.plan import (
    SELECTION_FILTERS,
    Job,
    RunPlan,
    check_datasets,
    current_data,
    plan_run,
    plan_selections,
    read_selections,
)
from splitenc_plugin.sweep.pools import run_jobs

__all__ = ["Runner"]


def _check_scheduler_address(address: str) -> None:
    """Raises one SplitencUserError if ``address`` is not a Dask scheduler address.

    Checked before planning; whether the scheduler answers is known only
    when the run connects to it (:class:`~splitenc_plugin.sweep.pools.DaskPool`).
    """
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        parse_host_port(parse_address(address)[1])
    except (ValueError, TypeError) as exc:
        raise SplitencUserError(
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); give it as "
            "tcp://HOST:PORT, as `dask scheduler` prints it (e.g. tcp://10.0.0.5:8786)") \
            from None


def _check_switches() -> None:
    """Raises one SplitencUserError for a bad ``SPLITENC_*`` switch the jobs would read.

    Every job inherits the environment: a bad value is one error here, not a
    failure of each job in turn.
    """
    from splitenc_plugin.compat import DETERMINISTIC_ENV
    from splitenc_plugin.compat.features import FEATURES_ENV
    from splitenc_plugin.compat.user_errors import TRACEBACK_ENV
    from splitenc_plugin.data.lean_data import ENV_VAR as LEAN_DATA_ENV

    for name in (DETERMINISTIC_ENV, FEATURES_ENV, TRACEBACK_ENV, LEAN_DATA_ENV):
        env_switch(name, default=False)


def _check_options(workers: int, threads_per_job: int | None, steps: int,
                   max_jobs: int | None) -> None:
    """Raises one SplitencUserError for a bad execution option (in the command's order)."""
    if workers < 1:
        raise SplitencUserError(f"--workers must be >= 1, got {workers}")
    thread_env(threads_per_job)
    if steps < 1:
        raise SplitencUserError(f"--steps must be a positive integer, got {steps!r}")
    if max_jobs is not None and max_jobs < 1:
        raise SplitencUserError(f"--max_jobs must be >= 1, got {max_jobs}")


class Runner:
    """One sweep: its options, its plan and its execution (prints nothing but the progress bar).

    Attributes:
      selections: Namespaces with ``study`` and the filter options
        (:func:`~splitenc_plugin.sweep.plan.read_selections`), run as one queue.
      output_directory: Jobs go to ``<output_directory>/<study>/<model_num>``.
      label: The run's name in messages (the study, or the selections file).
      Other attributes: As the keyword arguments of :meth:`__init__`.
    """

    def __init__(self, selections: Sequence[argparse.Namespace],
                 output_directory: str | os.PathLike, *, steps: int = DEFAULT_TRAINING_STEPS,
                 label: str | None = None, gin_bindings: Sequence[str] = (),
                 visualize: bool = False, prune_heavy: bool = False, workers: int = 1,
                 scheduler: str | None = None, cluster=None, retries: int | None = None,
                 threads_per_job: int | None = None, deterministic: bool = False,
                 max_jobs: int | None = None, progress: bool = True) -> None:
        """A run of these selections with these options.

        Args:
          selections: See the class attributes.
          output_directory: See the class attributes.
          steps: ``model.training_steps`` of every job (part of its identity).
          label: The run's name in messages (default: the first selection's study).
          gin_bindings: Extra bindings for every job (part of its identity).
          visualize: Also run dlib's visualize_model in each job.
          prune_heavy: Delete a job's checkpoints and TF-Hub modules once finished.
          workers: Local jobs at a time (without ``scheduler`` and ``cluster``).
          scheduler: A Dask scheduler's address to run the jobs on.
          cluster: :class:`splitenc_plugin.sweep.clusters.ClusterOptions`: run
            on Dask workers submitted as batch jobs.
          retries: How often a job lost with its Dask worker is run again.
          threads_per_job: Limit each job's TensorFlow to this many threads.
          deterministic: Run every job in deterministic mode.
          max_jobs: Start at most this many unfinished jobs.
          progress: Show a progress bar while running.

        Raises:
          SplitencUserError: For a bad option.
        """
        _check_options(workers, threads_per_job, steps, max_jobs)
        if not selections:
            raise SplitencUserError("give --study (and filters) or --selections FILE")
        self.selections = list(selections)
        self.output_directory = output_directory
        self.label = label if label is not None else self.selections[0].study
        self.steps, self.gin_bindings = steps, list(gin_bindings)
        self.visualize, self.prune_heavy = visualize, prune_heavy
        self.workers, self.scheduler, self.cluster, self.retries = \
            workers, scheduler, cluster, retries
        self.threads_per_job, self.deterministic = threads_per_job, deterministic
        self.max_jobs, self.progress = max_jobs, progress

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Runner:
        """The run of a ``splitenc_reproduce`` command line (:func:`~splitenc_plugin.sweep.cli.build_parser`).

        Checks the options in the command's order (execution options, then the
        cluster's, then the selections) and reads a ``--selections`` file.

        Raises:
          SplitencUserError: For the first bad option or selection.
        """
        from splitenc_plugin.sweep.clusters import cluster_options

        # The command's own options first: no planning with a bad one.
        _check_options(args.workers, args.threads_per_job, args.steps, args.max_jobs)
        _check_switches()
        refuse_file_as_directory(args.output_directory, "--output_directory",
                                 "the jobs go to")
        if args.scheduler is not None:
            _check_scheduler_address(args.scheduler)
        cluster = cluster_options(args)  # --cluster/--retries: checked before any submission
        import_study_modules(args.study_module)  # users' studies, before any lookup
        selections = _command_selections(args)
        label = args.study or f"{args.selections} ({len(selections)} selection(s))"
        return cls(selections, args.output_directory, steps=args.steps, label=label,
                   gin_bindings=args.gin_bindings, visualize=args.visualize,
                   prune_heavy=args.prune_heavy, workers=args.workers,
                   scheduler=args.scheduler, cluster=cluster, retries=args.retries,
                   threads_per_job=args.threads_per_job, deterministic=args.deterministic,
                   max_jobs=args.max_jobs, progress=not args.no_progress)

    def jobs(self) -> tuple[list[Job], dict[str, int]]:
        """The selected jobs in selection order, and each one's selection rank."""
        return plan_selections(self.selections, self.output_directory, steps=self.steps,
                               gin_bindings=self.gin_bindings, visualize=self.visualize,
                               prune_heavy=self.prune_heavy)

    def plan(self, *, require_datasets: bool = True) -> RunPlan:
        """Where every selected job stands, and the queue to start.

        Args:
          require_datasets: Also require the queued jobs' dataset files (a dry
            run does not).

        Raises:
          SplitencUserError: For an invalid selection, a job directory that
            must not be overwritten (:class:`JobMismatchError`), or missing
            dataset files; before anything runs.
        """
        jobs, rank = self.jobs()
        plan = plan_run(jobs, rank, max_jobs=self.max_jobs, data=current_data(jobs))
        if plan.queue and require_datasets:
            check_datasets(plan.queue)
        return plan

    def where(self, jobs: int) -> str:
        """Where ``jobs`` jobs run: 'K local worker(s)', 'Dask scheduler ADDRESS', or the cluster."""
        if self.cluster is not None:
            return self.cluster.describe(jobs)
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        return f"{self.workers} local worker(s)"

    @staticmethod
    def left_alone(plan: RunPlan) -> list[JobOutcome]:
        """A BUSY outcome for each job another process is running (naming that process)."""
        return [JobOutcome(job.key, RunStatus.BUSY, error=busy_message(job.job_dir))
                for job in plan.running]

    def run(self, plan: RunPlan) -> list[JobOutcome]:
        """Runs the plan's queue; one outcome per job, in completion order.

        Raises:
          KeyboardInterrupt: On Ctrl-C / SIGTERM, once this run's jobs are stopped.
        """
        return run_jobs(list(plan.queue), workers=self.workers, scheduler=self.scheduler,
                        already_finished=len(plan.finished), progress=self.progress,
                        threads_per_job=self.threads_per_job,
                        deterministic=self.deterministic, cluster=self.cluster,
                        retries=self.retries)


def _command_selections(args: argparse.Namespace) -> list[argparse.Namespace]:
    """The command's selections: its own --study and filters, or a --selections file."""
    if args.selections is None:
        if args.study is None:
            raise SplitencUserError("give --study (and filters) or --selections FILE")
        return [args]
    given = [flag for name, flag in {"study": "--study", **SELECTION_FILTERS}.items()
             if getattr(args, name) is not None]
    if given:
        raise SplitencUserError(f"--selections replaces {', '.join(given)}: put them in the "
                                "file's lines instead")
    return read_selections(args.selections)


if __name__ == "__main__":
    from splitenc_plugin.sweep.cli import main as _main

    sys.exit(_main())
