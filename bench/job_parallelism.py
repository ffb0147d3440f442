"""Campaign throughput on one machine: 1 training job at a time vs 2 side by side.

A long study on a small machine is throughput-bound: what matters is global
steps per second summed over the jobs running at once. This benchmark runs
dlib's own training (``bench.train_throughput``'s worker: the shipped gin
config, dlib's estimator, steady-state step time) in three layouts, interleaved
over ``--repeats`` rounds:

* ``1 job``: one process with TensorFlow's default threading (all cores), what
  ``splitenc_reproduce --workers 1`` does;
* ``2 jobs``: two processes at once, default threading each (``--workers 2``);
* ``2 jobs x 1 thread``: two processes at once, each with
  ``TF_NUM_INTRAOP_THREADS = TF_NUM_INTEROP_THREADS = OMP_NUM_THREADS = 1``
  (``--workers 2 --threads_per_job 1``).

It reports each layout's total steps/s, its ratio to ``1 job``, each process's
steps/s and the cores it used (process CPU time / wall time over the timed
window; dlib's Python input generator runs in its own thread, so a 1-thread
TF process can use a little more than one core). A layout's total counts only
the window in which all its processes were in their timed (post-warm-up)
iterations (:func:`steps_per_second_together`): a process that runs on alone
after the other has finished would otherwise add its faster solo rate. The
processes start training together (a start barrier at their first iteration),
so that window is nearly all of each one's.

Usage (from the repository root)::

    .venv/bin/python -m bench.job_parallelism                  # beta_tc_vae, 800 steps x 2
    .venv/bin/python -m bench.job_parallelism --model factor_vae --steps 1000 --repeats 3
    .venv/bin/python -m bench.job_parallelism --smoke
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bench import common
from bench.train_throughput import MODELS, START_BARRIER_ENV, Config, run_worker
from splitenc_plugin.sweep.execute import thread_env

# Exactly what splitenc_reproduce --threads_per_job 1 gives each job.
ONE_THREAD = thread_env(1)
# Layout -> the extra environment of each of its concurrent processes.
LAYOUTS: dict[str, tuple[dict[str, str], ...]] = {
    "1 job": ({},),
    "2 jobs": ({}, {}),
    "2 jobs x 1 thread": (ONE_THREAD, ONE_THREAD),
}


def run_layout(layout: str, config: Config, steps: int, dataset: str) -> list[dict]:
    """Starts the layout's processes at once; returns each one's worker result.

    The processes wait for each other at their first training iteration
    (``train_throughput.START_BARRIER_ENV``), so their timed windows coincide.
    """
    envs = LAYOUTS[layout]
    with tempfile.TemporaryDirectory(prefix="bench_barrier_") as barrier, \
            ThreadPoolExecutor(max_workers=len(envs)) as pool:
        start = {START_BARRIER_ENV: f"{barrier}:{len(envs)}"}
        futures = [pool.submit(run_worker, [config], steps, dataset, {**env, **start})
                   for env in envs]
        return [result for future in futures for result in future.result()]


def steps_per_second_together(run: Sequence[dict]) -> float:
    """Global steps per second summed over processes that ran at the same time.

    Each process's rate is taken over the window all of them were timing
    (the latest first timed iteration to the earliest last one), from the
    wall-clock times of its iterations in that window.

    Args:
      run: One layout run: each process's worker result, with its
        ``steady_epochs`` and ``global_steps_per_iteration``.

    Raises:
      RuntimeError: If the windows do not overlap by two iterations of each.
    """
    start = max(r["steady_epochs"][0] for r in run)
    end = min(r["steady_epochs"][-1] for r in run)
    total = 0.0
    for r in run:
        inside = [t for t in r["steady_epochs"] if start <= t <= end]
        if len(inside) < 2 or inside[-1] <= inside[0]:
            raise RuntimeError("the processes' timed windows hardly overlap; use more --steps")
        total += (len(inside) - 1) * r["global_steps_per_iteration"] / (inside[-1] - inside[0])
    return total


def report(samples: dict[str, list[list[dict]]]) -> tuple[str, dict]:
    """The layout table (Markdown) and a JSON payload."""
    # Each run's total once: the median and the range below both read it.
    totals = {layout: [steps_per_second_together(run) for run in runs]
              for layout, runs in samples.items()}
    total = {layout: common.median(values) for layout, values in totals.items()}
    base = total["1 job"]
    rows, payload = [], []
    for layout, runs in samples.items():
        per_process = [1.0 / r["seconds_per_step"] for run in runs for r in run]
        cores = [r["cores_used"] for run in runs for r in run]
        rows.append([layout, len(LAYOUTS[layout]), total[layout], total[layout] / base,
                     common.median(per_process), common.median(cores),
                     common.spread(totals[layout])])
        payload.append({"layout": layout, "processes": len(LAYOUTS[layout]),
                        "total_steps_per_s": total[layout], "ratio_to_1_job": total[layout] / base,
                        "runs": runs})
    table = common.format_table(
        ["layout", "processes", "total steps/s (median)", "ratio to 1 job",
         "steps/s per process", "cores per process", "total steps/s range"], rows)
    return table, {"layouts": payload}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="beta_tc_vae", choices=MODELS)
    parser.add_argument("--encoder", default="conv_encoder")
    parser.add_argument("--steps", type=common.positive_int, default=800, help="global steps per process")
    parser.add_argument("--dataset", default="dsprites_full")
    args = parser.parse_args(argv)
    common.check_shipped(parser, [args.model], [args.encoder])
    config = Config(args.model, args.encoder)
    if args.smoke:
        steps, dataset, repeats = 10, "dummy_data", 1
    else:
        steps, dataset, repeats = args.steps, args.dataset, args.repeats or 2
        common.check_datasets(parser, [dataset])
    print(f"# {len(LAYOUTS)} layouts x {repeats} rounds, {config.label}, {steps} steps per "
          f"process, dataset {dataset}", file=sys.stderr, flush=True)

    def measure(layout: str) -> list[dict]:
        run = run_layout(layout, config, steps, dataset)
        print(f"#   {layout}: " + ", ".join(f"{1 / r['seconds_per_step']:.1f} steps/s on "
                                            f"{r['cores_used']:.2f} cores" for r in run),
              file=sys.stderr, flush=True)
        return run

    samples = common.interleaved(list(LAYOUTS), repeats, measure)
    text, payload = report(samples)
    print(f"Job parallelism: {config.label}, dataset {dataset}, batch 64, {steps} global "
          f"steps per process, median of {repeats} interleaved round(s)\n")
    print(text)
    common.write_json(args.json, {"benchmark": "job_parallelism", "model": args.model,
                                  "encoder": args.encoder, "steps": steps, "dataset": dataset,
                                  "repeats": repeats, **payload})


if __name__ == "__main__":
    main()
