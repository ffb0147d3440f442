"""``splitenc_reproduce``: run (a slice of) a dlib study, resumably.

The paper's studies, dlib's own (``unsupervised_study_v1``, ...) and users'
(``--study_module``) alike. Usage::

    splitenc_reproduce --study split_encoder_study_v1 --output_directory runs \\
        [--steps N] [--datasets D ...] [--models M ...] [--encoders E ...] \\
        [--sigmas S ...] [--seeds 0 1 ...] [--model_nums N ...] \\
        [--where BINDING]... [--gin_config FRAGMENT]... [--metrics NAME ...] \\
        [--study_module MODULE]... \\
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

This module is the command line only: its options (:func:`build_parser`), the
plan, dry run and summary it prints, and its exit codes. The run itself is a
:class:`splitenc_plugin.sweep.runner.Runner`, whose guarantees its docstring
lists. Exit codes: 0 all finished, 1 some job failed, 2 bad input (one error
before any job starts), 3 none failed but some are running in another process,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.grid import DEFAULT_TRAINING_STEPS, GRIDS
from splitenc_plugin.sweep.clusters import add_arguments as add_cluster_arguments
from splitenc_plugin.sweep.clusters import retry_report
from splitenc_plugin.sweep.display import state_text
from splitenc_plugin.sweep.execute import JobOutcome, RunStatus
from splitenc_plugin.sweep.plan import RunPlan, add_selection_filters
from splitenc_plugin.sweep.runner import Runner

__all__ = ["EXIT_BUSY", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser",
           "main"]

# Exit codes: 0 every selected job finished, 1 some job failed, 2 bad input, 3 none
# failed but some are running in another process (left alone), 130 interrupted.
EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``splitenc_reproduce``."""
    parser = argparse.ArgumentParser(
        prog="splitenc_reproduce",
        description="Train, postprocess and evaluate the models of a dlib study -- the "
                    "paper's, dlib's own (e.g. unsupervised_study_v1) or yours -- with gin "
                    "fragments layered on (resumable; local pool, Dask or a batch cluster).",
        epilog="Studies: " + "; ".join(f"{g.name} ({len(g)} models): {g.description}"
                                       for g in GRIDS.values()))
    parser.add_argument("--study", help=f"one of {', '.join(GRIDS)}, or any study in dlib's "
                                        "reproduce.STUDIES (unsupervised_study_v1, ...; "
                                        "or --selections)")
    parser.add_argument("--study_module", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: it registers studies of your own in "
                             "disentanglement_lib.config.reproduce.STUDIES (repeatable)")
    parser.add_argument("--output_directory", required=True,
                        help="jobs go to DIR/<study>/<model_num> (dlib_reproduce's layout; "
                             "DIR/<study>+<fragment>/<model_num> with --gin_config)")
    parser.add_argument("--steps", type=int, default=DEFAULT_TRAINING_STEPS,
                        help="model.training_steps of every model (default: %(default)s, "
                             "the paper's); part of each job's identity")
    add_selection_filters(parser.add_argument_group("selection (default: the whole study)"))
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
                    help="after a job finishes, delete its checkpoints and event files, "
                         "TF-Hub modules, traversal GIFs and interventional-effects plots, "
                         "keeping only what splitenc_aggregate reads")
    ex.add_argument("--gin_bindings", action="append", default=[], metavar="B",
                    help="extra gin binding for every job (one per flag, repeatable; part of "
                         "its identity), after the study's bindings and fragments; not the "
                         "grid's own parameters (dataset, model, encoder, sigma, seed, steps: "
                         "use their options; on a dlib study, encoder and model bindings are "
                         "fine)")
    ex.add_argument("--max_jobs", type=int, metavar="K",
                    help="run at most K of the unfinished jobs (in selection order; within a "
                         "selection, those that resume from a checkpoint first, then by "
                         "model_num; jobs running in another process do not count), then "
                         "stop; e.g. 1 to put the "
                         "next job on a core another runner's finished job left idle")
    ex.add_argument("--dry_run", action="store_true", help="print the plan and exit")
    ex.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_cluster_arguments(parser)
    return parser


def _report_busy(busy: list[JobOutcome]) -> None:
    if busy:
        print(f"{len(busy)} job(s) are being run by another process and were left alone "
              "(re-run the same command when it has ended):", file=sys.stderr)
        for o in busy:
            print(f"  {o.key}: {o.error}", file=sys.stderr)


def _print_plan(runner: Runner, plan: RunPlan, dry_run: bool) -> None:
    """The plan's one-line summary, and with ``dry_run`` every job's state."""
    jobs = [state.job for state in plan.states]
    finished, running, later = plan.finished, plan.running, plan.later
    studies = sorted({job.job_dir.parent.name for job in jobs})
    where_out = os.path.join(runner.output_directory, studies[0]) if len(studies) == 1 else \
        f"{runner.output_directory} ({', '.join(studies)})"
    print(f"{runner.label}: {len(jobs)} job(s) selected, {len(finished)} already finished, "
          f"{len(plan.queue)} to run on {runner.where(len(plan.queue))}"
          + (f", {len(running)} running in another process" if running else "")
          + (f" ({len(later)} left for later: --max_jobs)" if later else "")
          + f"; {runner.steps} steps each; output in {where_out}", flush=True)
    if dry_run:
        for state in plan.states:
            s = state.job.spec
            print(f"  {state.job.key:32s} {state_text(state):54s} {s.dataset} {s.model} "
                  f"{s.encoder} sigma={s.sigma:g} seed={s.seed} ({s.config})")


def _print_summary(plan: RunPlan, outcomes: list[JobOutcome],
                   elsewhere: list[JobOutcome]) -> int:
    """The run's summary (finished, failed, busy, retried jobs); returns the exit code."""
    failed = sorted((o for o in outcomes if o.status is RunStatus.FAILED), key=lambda o: o.log)
    busy = sorted([o for o in outcomes if o.status is RunStatus.BUSY] + elsewhere,
                  key=lambda o: o.key)
    ran = sum(o.status is RunStatus.DONE for o in outcomes)
    later = plan.later
    print(f"{ran} job(s) finished now, {len(plan.finished)} earlier, {len(failed)} failed"
          + (f", {len(busy)} running in another process" if busy else "")
          + (f", {len(later)} not started (--max_jobs)" if later else ""))
    _report_busy(busy)
    for line in retry_report(outcomes):
        print(line)
    if failed:
        print(f"{len(failed)} job(s) FAILED (re-run the same command to retry them):",
              file=sys.stderr)
        for o in failed:
            print(f"  {o.key}: exit {o.returncode}; log: {o.log}", file=sys.stderr)
            for line in o.error.splitlines():
                print(f"      {line}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_BUSY if busy else 0


def _run(args: argparse.Namespace) -> int:
    runner = Runner.from_args(args)
    plan = runner.plan(require_datasets=not args.dry_run)
    _print_plan(runner, plan, args.dry_run)
    if args.dry_run:
        return 0
    elsewhere = runner.left_alone(plan)
    if not plan.queue:
        print("nothing to do: every selected job is finished" if not plan.running else
              "nothing to start: the unfinished jobs are running in another process")
        _report_busy(elsewhere)
        return EXIT_BUSY if plan.running else 0
    outcomes = runner.run(plan)
    return _print_summary(plan, outcomes, elsewhere)


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
