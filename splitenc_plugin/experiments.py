"""The paper's experiments as one command each: run the study, then aggregate it.

``bin/`` holds one script per experiment; each is a thin entry point over
:func:`main` here::

    bin/sec5_1_correlated_noise.py [--steps N] [--workers W] [runner options ...]
    bin/sec5_2_split_encoder.py    [...]
    bin/capacity_control.py        [...]

Each runs its study with ``splitenc_reproduce`` (resumable: run it again to
continue), on the local pool by default, or on Dask / a batch cluster when
``--scheduler`` / ``--cluster`` are passed (every option not listed below goes
to ``splitenc_reproduce`` unchanged: selections such as ``--datasets`` or
``--seeds``, ``--gin_config``, ``--cluster slurm``, ...), then runs
``splitenc_aggregate`` on the output and prints where the summary and figures
are. ``--smoke`` runs a two-model, few-step version on dlib's in-memory
``dummy_data`` to check an installation end to end (results mean nothing),
into its own directory (``runs/<study>_smoke``), so that it never stands in
the way of the real run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from splitenc_plugin.studies.grid import DEFAULT_TRAINING_STEPS, GRIDS, TEST_DATASET


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper.

    Attributes:
      script: Its script in ``bin/``.
      study: The study it runs (a name in :data:`~splitenc_plugin.studies.grid.GRIDS`).
      what: What it reproduces (the paper's section and figures).
      smoke: Runner selection of the two-model ``--smoke`` run.
    """

    script: str
    study: str
    what: str
    smoke: tuple[str, ...]


EXPERIMENTS = {e.script: e for e in (
    Experiment("sec5_1_correlated_noise", "correlated_noise_study_v1",
               "Sec 5.1, Fig 2: correlated (sigma = 0.9) vs factorized reparameterization noise",
               ("--models", "vae", "--seeds", "0")),
    Experiment("sec5_2_split_encoder", "split_encoder_study_v1",
               "Sec 5.2, Figs 3-8 and Appendix C: the split encoder vs dlib's conv encoder",
               ("--models", "factor_vae", "--seeds", "0")),
    Experiment("capacity_control", "split_encoder_capacity_study_v1",
               "Capacity control (not in the paper): split vs parameter-matched split vs "
               "widened shared encoder",
               ("--models", "factor_vae", "--encoders", "conv_encoder",
                "matched_split_conv_encoder", "--seeds", "0")),
)}
"""Script name (without ``.py``) -> experiment."""

SMOKE_STEPS = 5  # global steps per model of a --smoke run


def tool(name: str) -> str:
    """A console script of this environment (beside its Python), e.g. ``splitenc_reproduce``."""
    return str(Path(sys.executable).parent / name)


def main(script: str, argv: list[str] | None = None) -> int:
    """Runs one experiment and aggregates it.

    Args:
      script: The experiment's key in :data:`EXPERIMENTS`.
      argv: Command-line arguments (default ``sys.argv[1:]``).

    Returns:
      The exit code (:func:`reproduce_and_aggregate`'s).
    """
    if script not in EXPERIMENTS:  # e.g. a renamed copy of a bin/ script
        print(f"{script}: error: not an experiment's script; the scripts are bin/"
              + ".py, bin/".join(EXPERIMENTS) + ".py", file=sys.stderr)
        return 2
    experiment = EXPERIMENTS[script]
    parser = argparse.ArgumentParser(
        prog=f"{script}.py",
        description=f"{experiment.what}. Runs {experiment.study} with splitenc_reproduce, "
                    "then splitenc_aggregate. Other options go to splitenc_reproduce.")
    parser.add_argument("--output_directory", default=None,
                        help="where jobs, results.csv, summary.md and figures/ go (default: "
                             f"runs/{experiment.study}; with --smoke, "
                             f"runs/{experiment.study}_smoke)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"global steps per model (default: the paper's "
                             f"{DEFAULT_TRAINING_STEPS})")
    parser.add_argument("--workers", type=int, default=1,
                        help="local jobs side by side (ignored with --scheduler/--cluster)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"two models, {SMOKE_STEPS} steps, on {TEST_DATASET}: checks "
                             "the installation, results mean nothing")
    parser.add_argument("--dry_run", action="store_true",
                        help="show each job's state (splitenc_reproduce --dry_run) and stop: "
                             "nothing is trained or aggregated")
    args, runner_args = parser.parse_known_args(argv)
    assert experiment.study in GRIDS, experiment  # one source: the study grids
    # The script's study is fixed: another one would be run, then not aggregated.
    if any(arg.split("=")[0] in ("--study", "--selections") for arg in runner_args):
        parser.error(f"this script runs {experiment.study}; for another study or a "
                     "selections file use splitenc_reproduce and splitenc_aggregate")
    if args.smoke and args.steps is not None:
        parser.error(f"--smoke runs {SMOKE_STEPS} steps per model; drop --steps (or --smoke)")
    if args.output_directory is None:  # a smoke run's jobs never block the real ones
        args.output_directory = f"runs/{experiment.study}" + ("_smoke" if args.smoke else "")

    run = [tool("splitenc_reproduce"), "--study", experiment.study,
           "--output_directory", args.output_directory, "--workers", str(args.workers)]
    if args.smoke:
        run += ["--steps", str(SMOKE_STEPS), "--datasets", TEST_DATASET, *experiment.smoke,
                "--no_progress"]
    else:
        run += ["--steps", str(DEFAULT_TRAINING_STEPS if args.steps is None else args.steps)]
    if args.dry_run:
        return subprocess.run([*run, "--dry_run", *runner_args], check=False).returncode
    return reproduce_and_aggregate(script, run + runner_args, args.output_directory,
                                   experiment.study)


def reproduce_and_aggregate(label: str, reproduce: list[str], output_directory: str,
                            study: str) -> int:
    """Runs ``splitenc_reproduce``, then ``splitenc_aggregate`` on its output; returns the exit code.

    Args:
      label: Prefix of this function's own lines, e.g. the script's name.
      reproduce: The ``splitenc_reproduce`` command line (program first);
        its ``--output_directory`` must be ``output_directory``.
      output_directory: Where the jobs are and the summary goes.
      study: The study to aggregate.

    Returns:
      0; else ``splitenc_reproduce``'s exit code (1 some jobs failed, 2 bad
      input, 3 some are running in another process, 130 interrupted), or
      ``splitenc_aggregate``'s.
    """
    from splitenc_plugin.sweep.cli import EXIT_BUSY, EXIT_FAILED

    code = subprocess.run(reproduce, check=False).returncode
    if code == EXIT_BUSY:  # the other process aggregates when it is done, or the user
        print(f"[{label}] jobs are running in another process (listed above); aggregate "
              f"when they are done: splitenc_aggregate {output_directory}", file=sys.stderr)
    if code not in (0, EXIT_FAILED):  # bad input was said in one line; interrupted
        return code
    if code == EXIT_FAILED:
        # One failed job of many still leaves a summary of the rest worth reading
        # (its cells' verdicts wait for the missing runs).
        print(f"[{label}] some jobs failed (listed above); run the same command again to "
              "retry them. Aggregating the finished ones ...", file=sys.stderr, flush=True)
    print(f"[{label}] aggregating (summary, figures, Appendix C via dlib's visualize_model) "
          "...", flush=True)
    aggregated = subprocess.run([tool("splitenc_aggregate"), output_directory, "--study",
                                 study], check=False).returncode
    if aggregated == 0:
        out = Path(output_directory)
        print(f"[{label}] summary: {out / 'summary.md'}\n[{label}] table: "
              f"{out / 'results.csv'}\n[{label}] figures: {out / 'figures'}")
    return code or aggregated
