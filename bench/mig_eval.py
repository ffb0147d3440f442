"""MIG evaluation time per model, with dlib's own scripts and dlib's mig.gin.

Trains one short model per encoder (dlib's ``train_with_gin`` with the shipped
``vae.gin`` / ``split_vae.gin``, ``--train-steps`` steps), extracts its mean
representation (``postprocess_with_gin`` with dlib's ``mean.gin``), then times
``dlib_evaluate`` with dlib's ``unsupervised_study_v1/metric_configs/mig.gin``
(10,000 points, 20-bin histogram discretizer) on each model, one fresh
process per evaluation, interleaved over ``--repeats`` rounds. Reported: the
process wall time (what a study pays per model, start-up and dataset load
included), dlib's own ``elapsed_time`` from the evaluation results (dataset
load + representation + MIG) and the child's peak RSS.

Usage (from the repository root; needs dSprites in ``$DISENTANGLEMENT_LIB_DATA``)::

    .venv/bin/python -m bench.mig_eval                 # dsprites_full, 3 rounds
    .venv/bin/python -m bench.mig_eval --smoke         # dummy_data, 200 points
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import common
from splitenc_plugin.experiments import tool
from splitenc_plugin.studies.grid import dlib_config_path

# The VAE's shipped configs with these encoders (vae.gin, split_vae.gin).
ENCODERS = ("conv_encoder", "split_conv_encoder")


def run_script(name: str, *args: str) -> tuple[float, float]:
    """Runs a dlib console script; returns (wall seconds, peak RSS MB)."""
    code, out, err, wall, rss = common.run_with_peak_rss([tool(name), *args])
    common.check_ok(code, out, err, f"{name} {' '.join(args)}")
    return wall, rss


def prepare_worker(spec: str) -> None:
    """Entry point of :func:`prepare`'s subprocess: trains and postprocesses each model.

    Args:
      spec: JSON: ``root`` (models go to ``root/<encoder>``), ``dataset``,
        ``steps``, ``mean_gin`` (dlib's ``mean.gin``) and ``configs``
        (encoder -> its shipped gin config).
    """
    from disentanglement_lib.methods.unsupervised import train
    from disentanglement_lib.postprocessing import postprocess

    job = json.loads(spec)
    root, dataset, steps = job["root"], job["dataset"], job["steps"]
    for encoder, config in job["configs"].items():
        model_dir = f"{root}/{encoder}"
        train.train_with_gin(model_dir, gin_config_files=[config], gin_bindings=[
            f"model.training_steps = {steps}", "model.eval_steps = 1",
            f"dataset.name = '{dataset}'"])
        postprocess.postprocess_with_gin(model_dir, f"{model_dir}/mean",
                                         gin_config_files=[job["mean_gin"]])


def prepare(root: Path, dataset: str, steps: int) -> dict[str, Path]:
    """Trains and postprocesses (mean representation) one model per encoder, in one process.

    dlib's ``train_with_gin`` / ``postprocess_with_gin`` (what ``dlib_train`` and
    ``dlib_postprocess`` run), in a subprocess running :func:`prepare_worker`;
    not timed.

    Returns:
      Encoder -> its representation directory.
    """
    mean_gin = dlib_config_path("unsupervised_study_v1", "postprocess_configs", "mean.gin")
    spec = json.dumps({"root": str(root), "dataset": dataset, "steps": steps,
                       "mean_gin": mean_gin,
                       "configs": {e: common.shipped_config("vae", e) for e in ENCODERS}})
    code, out, err, _, _ = common.run_with_peak_rss(
        [common.python(), "-m", "bench.mig_eval", "--worker", spec])
    common.check_ok(code, out, err, "training and postprocessing the models")
    return {e: root / e / "mean" for e in ENCODERS}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the child process's entry
    parser.add_argument("--dataset", default="dsprites_full")
    parser.add_argument("--train-steps", type=common.positive_int, default=100)
    args = parser.parse_args(argv)
    if args.worker:
        prepare_worker(args.worker)
        return
    if args.smoke:
        dataset, steps, repeats, extra = "dummy_data", 2, 1, ["--gin_bindings=mig.num_train=200"]
    else:
        dataset, steps, repeats, extra = args.dataset, args.train_steps, args.repeats or 3, []
        common.check_datasets(parser, [dataset])
    mig_gin = dlib_config_path("unsupervised_study_v1", "metric_configs", "mig.gin")
    with tempfile.TemporaryDirectory(prefix="bench_mig_") as tmp:
        root = Path(tmp)
        print(f"# training {len(ENCODERS)} models ({steps} steps, {dataset})", file=sys.stderr,
              flush=True)
        representations = prepare(root, dataset, steps)
        raw: dict[str, list[tuple[float, float, float]]] = {e: [] for e in ENCODERS}

        def measure(encoder: str) -> float:
            out = root / f"mig_{encoder}_{len(raw[encoder])}"
            wall, rss = run_script("dlib_evaluate", f"--input_dir={representations[encoder]}",
                                   f"--output_dir={out}", f"--gin_config={mig_gin}",
                                   f"--gin_bindings=dataset.name='{dataset}'", *extra)
            result = json.loads((out / "results" / "json" / "evaluation_results.json")
                                .read_text())
            raw[encoder].append((wall, float(result["elapsed_time"]), rss))
            print(f"#   {encoder}: {wall:.1f} s (dlib elapsed {result['elapsed_time']:.1f} s, "
                  f"MIG {result.get('discrete_mig', float('nan')):.3f})", file=sys.stderr,
                  flush=True)
            return wall

        common.interleaved(list(ENCODERS), repeats, measure)
    rows, payload = [], []
    for encoder, values in raw.items():
        wall = common.median(v[0] for v in values)
        elapsed = common.median(v[1] for v in values)
        rss = max(v[2] for v in values)
        rows.append([encoder, wall, elapsed, rss, common.spread([v[0] for v in values])])
        payload.append({"encoder": encoder, "wall_seconds": wall, "dlib_elapsed_seconds": elapsed,
                        "peak_rss_mb": rss, "raw": values})
    ratio = payload[1]["wall_seconds"] / payload[0]["wall_seconds"]
    print(f"MIG evaluation per model (dlib_evaluate + dlib's mig.gin"
          f"{', mig.num_train=200' if args.smoke else ''}), dataset {dataset}, "
          f"median of {repeats} interleaved rounds\n")
    print(common.format_table(["model (VAE)", "dlib_evaluate wall s (median)",
                               "dlib elapsed_time s", "peak RSS MB", "wall s range"], rows))
    print(f"\nsplit / vanilla evaluation time: {ratio:.2f}")
    common.write_json(args.json, {"benchmark": "mig_eval", "dataset": dataset,
                                  "repeats": repeats, "rows": payload, "ratio": ratio})


if __name__ == "__main__":
    main()
