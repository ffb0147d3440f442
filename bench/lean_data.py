"""Peak RSS and start-up time of dlib jobs: stock loaders vs the lean ones, side by side.

Variants (one fresh process each, interleaved over ``--repeats`` rounds):

* ``stock``: ``SPLITENC_LEAN_DATA=0``, dlib's own loaders;
* ``lean (cold)``: lean loaders with an empty packed-data cache (as the first
  job on a machine: the npz is streamed and bit-packed, the cache written;
  the OS page cache is not dropped, so the npz's pages may be in memory from
  an earlier run, unlike on a machine that never read it);
* ``lean``: lean loaders, the packed dSprites cache already on disk (every
  later job).

Measured per process (:mod:`bench.lean_data_child`, which imports only what
its job needs): peak RSS (``os.wait4``, the child's own maximum), start-up =
launch -> end of the first training step (a session hook on dlib's
estimator), and the wall time of the whole job. Jobs:

1. **dSprites training**: dlib's ``train_with_gin`` with the shipped
   ``vae.gin`` on ``dsprites_full``, ``--steps`` steps (the TF-Hub export at
   the end builds the dataset a second time, as every dlib training does).
2. **MIG evaluation**: ``dlib_evaluate`` with dlib's
   ``unsupervised_study_v1/metric_configs/mig.gin`` on one model trained for
   100 steps (mean representation); the MIG values must agree across variants
   (same observations, same seeds).
3. **Shapes3D training start**: h5 fixtures in DeepMind's layout (one colour
   per image, encoding its factors) converted with ``splitenc_data shapes3d``
   to the npz dlib reads, at a sweep of sizes (prefix blocks of the real row
   order; factors are drawn inside the block, a bench-only adjustment) and at
   the full 480,000 images when ``--full-shapes3d`` is given; ``vae.gin`` with
   ``--shapes3d-steps`` steps. Stock runs only where its float32 copy fits
   (``--stock-max-images``); its memory and start-up at the full size are
   extrapolated linearly from the sweep. The converter's own time and peak
   RSS at the largest size are reported too.

Usage (from the repository root; needs dSprites in ``$DISENTANGLEMENT_LIB_DATA``)::

    .venv/bin/python -m bench.lean_data --full-shapes3d --json lean_data.json
    .venv/bin/python -m bench.lean_data --smoke     # tiny files, 2 steps: table shape only
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import common, lean_data_child
from splitenc_plugin.data import dsprites, lean_data, registry
from splitenc_plugin.data import shapes3d as shapes3d_data
from splitenc_plugin.experiments import tool
from splitenc_plugin.studies.grid import dlib_config_path


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a variant's process starts: lean loaders or dlib's, packed cache kept or emptied."""

    lean: bool
    cold_cache: bool


VARIANTS = {"stock": Variant(lean=False, cold_cache=False),
            "lean (cold)": Variant(lean=True, cold_cache=True),
            "lean": Variant(lean=True, cold_cache=False)}
# Prefix blocks of the Shapes3D order (leading factors cut first).
SWEEP = {4800: (1, 1, 10, 8, 4, 15), 9600: (1, 2, 10, 8, 4, 15),
         19200: (1, 4, 10, 8, 4, 15), 48000: (1, 10, 10, 8, 4, 15),
         480000: (10, 10, 10, 8, 4, 15)}
SMOKE_DSPRITES = {"shape": [0, 2], "scale": [1, 4], "orientation": [0, 9],
                  "posX": [0, 5, 31], "posY": [2, 29]}


def run_child(job: dict, variant: str, data_root: Path, cache: Path) -> dict:
    """Runs one job in a fresh process under ``variant``; returns its measurements.

    The process is :mod:`bench.lean_data_child` (``--job``): dlib's own
    train/evaluate with a first-step timestamp, timed from ``launch`` here.
    Reduced files (smoke, Shapes3D blocks) skip the completeness check, and
    Shapes3D blocks draw their factors inside the block (the bench's only
    adjustment).
    """
    if VARIANTS[variant].cold_cache:
        shutil.rmtree(cache, ignore_errors=True)
    env = common.subprocess_env({
        registry.ENV_VAR: str(data_root),
        lean_data.ENV_VAR: "1" if VARIANTS[variant].lean else "0",
        lean_data.CACHE_ENV: str(cache)})
    launch = time.time()
    code, out, err, wall, rss = common.run_with_peak_rss(
        [common.python(), "-m", "bench.lean_data_child", "--job", repr(launch), json.dumps(job)],
        env=env)
    common.check_ok(code, out, err, f"{job['kind']} ({variant})")
    line = next(x for x in out.splitlines() if x.startswith(lean_data_child.RESULT_PREFIX))
    result = json.loads(line[len(lean_data_child.RESULT_PREFIX):])
    result.update(wall_s=wall, peak_rss_mb=rss)
    print(f"#   {job['kind']} {job.get('label', '')} {variant}: peak {rss:.0f} MB, "
          f"wall {wall:.1f} s, first step {result.get('first_step_s', float('nan')):.1f} s",
          file=sys.stderr, flush=True)
    return result


def _train_job(model_dir: Path, dataset: str, steps: int, **extra) -> dict:
    return {"kind": "train", "model_dir": str(model_dir),
            "gin": common.shipped_config("vae", "conv_encoder"),
            "bindings": [f"model.training_steps = {steps}", "model.eval_steps = 1",
                         f"dataset.name = '{dataset}'"], **extra}


def _summary(values: list[dict], key: str, reduce=common.median) -> float:
    got = [v[key] for v in values if v.get(key) is not None]
    return float(reduce(got)) if got else float("nan")


def bench_dsprites(root: Path, work: Path, steps: int, repeats: int,
                   reduced: bool) -> dict:
    """dSprites training and MIG evaluation, every variant."""
    cache = work / "cache"
    train_raw: dict[str, list[dict]] = {v: [] for v in VARIANTS}

    def train(variant: str) -> float:
        job = _train_job(work / f"train_{len(train_raw[variant])}_{variant[:5]}",
                         "dsprites_full", steps, reduced=reduced, label="dsprites")
        train_raw[variant].append(run_child(job, variant, root, cache))
        return train_raw[variant][-1]["first_step_s"]

    common.interleaved(list(VARIANTS), repeats, train)

    # One model (lean, 100 steps) + its mean representation, then MIG per variant.
    model = work / "mig_model"
    run_child(_train_job(model, "dsprites_full", 2 if reduced else 100, reduced=reduced,
                         label="(model for MIG)"), "lean", root, cache)
    _postprocess(model, root, cache, reduced)
    mig_raw: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    mig_gin = dlib_config_path("unsupervised_study_v1", "metric_configs", "mig.gin")

    def evaluate(variant: str) -> float:
        out = work / f"mig_{len(mig_raw[variant])}_{variant[:5]}"
        bindings = ["dataset.name = 'dsprites_full'"] + (["mig.num_train = 200"] if reduced
                                                         else [])
        job = {"kind": "evaluate", "model_dir": str(model / "mean"), "output_dir": str(out),
               "gin": mig_gin, "bindings": bindings, "reduced": reduced, "label": "MIG"}
        mig_raw[variant].append(run_child(job, variant, root, cache))
        return mig_raw[variant][-1]["wall_s"]

    common.interleaved(list(VARIANTS), repeats, evaluate)
    return {"train": train_raw, "mig": mig_raw}


def _postprocess(model: Path, root: Path, cache: Path, reduced: bool) -> None:
    mean_gin = dlib_config_path("unsupervised_study_v1", "postprocess_configs", "mean.gin")
    env = common.subprocess_env({registry.ENV_VAR: str(root),
                                 lean_data.CACHE_ENV: str(cache)})
    spec = json.dumps({"model_dir": str(model), "output_dir": str(model / "mean"),
                       "gin": mean_gin, "reduced": reduced})
    code, out, err, _, _ = common.run_with_peak_rss(
        [common.python(), "-m", "bench.lean_data_child", "--postprocess", spec], env=env)
    common.check_ok(code, out, err, "postprocessing the MIG model")


def _pixel_values(classes: np.ndarray) -> np.ndarray:
    """One colour per image, encoding its factor classes (0..255 per channel)."""
    c = np.asarray(classes)
    return np.stack([10 * c[:, 0] + c[:, 1], 10 * c[:, 2] + c[:, 3], 15 * c[:, 4] + c[:, 5]],
                    axis=1)


def bench_shapes3d(work: Path, sizes: Sequence[int], stock_max: int, steps: int) -> dict:
    """Shapes3D: convert an h5 fixture per size, then a short training per variant."""
    runs: list[dict] = []
    conversions: list[dict] = []
    for n in sizes:
        block = SWEEP[n]
        root = work / f"shapes3d_{n}"
        h5 = work / f"3dshapes_{n}.h5"
        shapes3d_data.write_layout_h5(str(h5), block, _pixel_values)
        args = [tool("splitenc_data"), "shapes3d", "--from",
                str(h5), "--output_dir", str(root)]
        if n != 480000:
            args += ["--block", ",".join(map(str, block))]
        code, out, err, wall, rss = common.run_with_peak_rss(args)
        common.check_ok(code, out, err, f"converting the {n}-image h5")
        h5.unlink()
        conversions.append({"images": n, "wall_s": wall, "peak_rss_mb": rss,
                            "npz_mb": os.path.getsize(root / registry.SHAPES3D_FILE) / 1e6})
        print(f"#   converted {n} images: {wall:.1f} s, peak {rss:.0f} MB", file=sys.stderr,
              flush=True)
        for variant in ("stock", "lean"):
            if not VARIANTS[variant].lean and n > stock_max:
                continue
            job = _train_job(work / f"s3d_{n}_{variant}", "shapes3d", steps,
                             reduced=n != 480000, block=list(block), label=f"shapes3d {n}")
            runs.append({"images": n, "variant": variant,
                         **run_child(job, variant, root, work / "cache")})
        shutil.rmtree(root)
    return {"runs": runs, "conversions": conversions}


def _fit(points: list[tuple[float, float]], x: float) -> float:
    """Least-squares line through the points, evaluated at x."""
    if len(points) < 2:
        return float("nan")
    slope, intercept = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
    return float(slope * x + intercept)


def report(ds: dict, s3d: dict, steps: int, s3d_steps: int, repeats: int,
           smoke: bool) -> dict:
    """Prints the tables; returns the JSON payload."""
    rows, payload_rows = [], []
    for job, label in (("train", f"dSprites training ({steps} steps)"),
                       ("mig", "MIG evaluation (dlib mig.gin)")):
        for variant in VARIANTS:
            values = ds[job][variant]
            row = {"job": label, "variant": variant,
                   "peak_rss_mb": _summary(values, "peak_rss_mb", max),
                   "first_step_s": _summary(values, "first_step_s"),
                   "wall_s": _summary(values, "wall_s"),
                   "rss_file_mb_at_end": _summary(values, "rss_file_mb_at_end", max),
                   "mig": _summary(values, "mig"), "raw": values}
            payload_rows.append(row)
            rows.append([label, variant, row["peak_rss_mb"], row["rss_file_mb_at_end"],
                         row["first_step_s"], row["wall_s"]])
    print(f"Lean data: peak RSS and start-up, stock vs lean, dsprites_full, median of "
          f"{repeats} interleaved round(s){' (smoke: reduced files)' if smoke else ''}\n")
    print(common.format_table(["job", "loaders", "peak RSS MB", "of which file-backed MB",
                               "start-up s (to 1st step)", "wall s"], rows))
    by = {(r["job"], r["variant"]): r for r in payload_rows}
    train_label = f"dSprites training ({steps} steps)"
    mig_label = "MIG evaluation (dlib mig.gin)"
    ratios = {
        "train_startup_stock_over_lean": by[(train_label, "stock")]["first_step_s"]
        / by[(train_label, "lean")]["first_step_s"],
        "train_startup_stock_over_lean_cold": by[(train_label, "stock")]["first_step_s"]
        / by[(train_label, "lean (cold)")]["first_step_s"],
        "mig_wall_stock_over_lean": by[(mig_label, "stock")]["wall_s"]
        / by[(mig_label, "lean")]["wall_s"],
        "train_peak_rss_stock_over_lean": by[(train_label, "stock")]["peak_rss_mb"]
        / by[(train_label, "lean")]["peak_rss_mb"],
        "mig_peak_rss_stock_over_lean": by[(mig_label, "stock")]["peak_rss_mb"]
        / by[(mig_label, "lean")]["peak_rss_mb"],
    }
    migs = {v: by[(mig_label, v)]["mig"] for v in VARIANTS}
    print()
    print(common.format_table(["comparison", "ratio"], [[k, v] for k, v in ratios.items()]))
    agree = len({round(v, 12) for v in migs.values() if not math.isnan(v)}) <= 1
    print(f"\nMIG per variant: {migs} (identical: {'yes' if agree else 'NO'})")

    s3d_rows = []
    for run in s3d["runs"]:
        s3d_rows.append([run["images"], run["variant"], run["peak_rss_mb"],
                         run["rss_file_mb_at_end"], run["first_step_s"], run["wall_s"]])
    stock = [r for r in s3d["runs"] if r["variant"] == "stock"]
    full = 480000
    extrapolated = {
        "stock_peak_rss_mb_at_480000": _fit([(r["images"], r["peak_rss_mb"]) for r in stock],
                                            full),
        "stock_first_step_s_at_480000": _fit([(r["images"], r["first_step_s"]) for r in stock],
                                             full),
    }
    print(f"\nShapes3D training start ({s3d_steps} steps), h5 fixture -> splitenc_data "
          f"shapes3d -> dlib's loader\n")
    print(common.format_table(["images", "loaders", "peak RSS MB", "of which file-backed MB",
                               "start-up s (to 1st step)", "wall s"], s3d_rows))
    for key, value in extrapolated.items():
        print(f"{key} (linear fit over the stock sweep): {value:,.0f}")
    print()
    print(common.format_table(["converted images", "converter wall s", "converter peak RSS MB",
                               "npz MB"], [[c["images"], c["wall_s"], c["peak_rss_mb"],
                                            c["npz_mb"]] for c in s3d["conversions"]]))
    return {"benchmark": "lean_data", "repeats": repeats, "steps": steps,
            "shapes3d_steps": s3d_steps, "smoke": smoke, "rows": payload_rows,
            "ratios": ratios, "mig_by_variant": migs, "mig_identical": agree, "shapes3d": s3d,
            "shapes3d_extrapolated": extrapolated}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=common.positive_int, default=200, help="dSprites training steps")
    parser.add_argument("--shapes3d-steps", type=common.positive_int, default=20)
    parser.add_argument("--shapes3d-sizes", type=int, nargs="*",
                        default=[4800, 9600, 19200, 48000], choices=sorted(SWEEP))
    parser.add_argument("--full-shapes3d", action="store_true",
                        help="also the full 480,000-image Shapes3D (12 GB of temporary disk)")
    parser.add_argument("--stock-max-images", type=int, default=19200,
                        help="largest Shapes3D size run with stock dlib (memory)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary files go (default: the system's temp dir)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    steps = 3 if smoke else args.steps
    s3d_steps = 2 if smoke else args.shapes3d_steps
    repeats = 1 if smoke else (args.repeats or 1)
    sizes = [4800] if smoke else list(args.shapes3d_sizes) + ([480000] if args.full_shapes3d
                                                              else [])
    with tempfile.TemporaryDirectory(prefix="bench_lean_", dir=args.workdir) as tmp:
        work = Path(tmp)
        if smoke:
            root = work / "data"
            dsprites.generate_dsprites(str(root), subset=SMOKE_DSPRITES)
        else:
            root = Path(registry.default_data_root())
            registry.require_dataset("dsprites_full", str(root))
        print(f"# dSprites from {root}", file=sys.stderr, flush=True)
        ds = bench_dsprites(root, work, steps, repeats, reduced=smoke)
        s3d = bench_shapes3d(work, sizes, args.stock_max_images, s3d_steps)
        payload = report(ds, s3d, steps, s3d_steps, repeats, smoke)
    payload["machine_note"] = os.environ.get("BENCH_NOTE", "")
    common.write_json(args.json, payload)


if __name__ == "__main__":
    main()
