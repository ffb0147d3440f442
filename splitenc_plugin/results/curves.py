"""Learning curves across runs: each run's curves, and the median and range per cell.

A finished job keeps its training curves in ``JOB_DIR/model/learning_curves.json``
(written at training time by :mod:`splitenc_plugin.results.learning_curves`
from the estimator's event files). dlib logs neither KL nor the regulariser:
both are exact differences of logged values (:data:`CURVE_QUANTITIES`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.results.cells import (
    cell_columns,
    pooled_cell_columns,
    pooled_run_columns,
)
from splitenc_plugin.results.learning_curves import CURVES_FILE
from splitenc_plugin.sweep.job_files import CHECKPOINT_DIR

__all__ = ["CURVES", "CURVE_BINS", "CURVE_QUANTITIES", "FIRST_SUMMARY_BY", "cell_curves",
           "late_curves", "run_curves"]

# Learning curves: JOB_DIR/model/learning_curves.json (the model directory
# holds the estimator's tf_checkpoint/, whose event files the curves are read from).
CURVES = Path(CHECKPOINT_DIR).parent / CURVES_FILE
# Quantity -> its axis label. From the tags dlib logs in training
# (splitenc_plugin.results.learning_curves): dlib's elbo summary is -(reconstruction + KL)
# and the estimator's loss is reconstruction + regularizer, so KL and the
# regularizer are exact differences of logged values. FactorVAE logs no elbo:
# it has no KL curve.
CURVE_QUANTITIES: dict[str, str] = {
    "reconstruction_loss": "reconstruction loss",
    "kl": "KL = −elbo − reconstruction loss",
    "regularizer": "regulariser = loss − reconstruction loss",
}
# The estimator's first summary comes at the first training step, the next
# about every 100 global steps (RunConfig.save_summary_steps's default, which
# dlib keeps; FactorVAE's two updates per iteration make it 102): a run's
# curves that start later miss the start of its training.
FIRST_SUMMARY_BY = 100  # global steps
# A cell's curve has a point per bin: each run's summaries are averaged in
# bins of ceil(steps / CURVE_BINS) global steps, so that runs logged on
# different step grids meet (a resumed run logs from its resume step on, e.g.
# FactorVAE at 77,094, 77,196, ... after a resume at 77,092, where a fresh
# run logs at 77,112, 77,214, ...).
CURVE_BINS = 200


def run_curves(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Every run's learning curves (:data:`CURVE_QUANTITIES`) from its learning_curves.json.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.

    Returns:
      (one row per (run, logged step): the cell columns
      (:func:`~.cells.cell_columns`),
      ``seed``, ``model_num``, ``job_dir``, ``step`` and each quantity of
      :data:`CURVE_QUANTITIES` (NaN where a tag was not logged: ``kl`` for
      FactorVAE, which logs no elbo); the job directories of runs without
      learning_curves.json, which are left out).
    """
    cell = cell_columns(frame)
    columns = [*cell, "seed", "model_num", "job_dir", "step", *CURVE_QUANTITIES]
    parts, missing = [], []
    for run in frame.to_dict("records"):
        path = Path(run["job_dir"]) / CURVES
        if not run["job_dir"] or not path.is_file():
            missing.append(run["job_dir"])
            continue
        curves = json.loads(path.read_text())
        steps = curves["steps"]

        def tag(name: str, steps=steps, curves=curves) -> np.ndarray:
            values = curves.get(name, [None] * len(steps))
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        recon = tag("reconstruction_loss")
        parts.append(pd.DataFrame({
            **{c: [run[c]] * len(steps) for c in [*cell, "seed", "model_num", "job_dir"]},
            "step": np.asarray(steps, dtype=int), "reconstruction_loss": recon,
            "kl": -tag("elbo") - recon, "regularizer": tag("loss") - recon}))
    curves = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return curves[columns], missing


def late_curves(curves: pd.DataFrame) -> dict[str, int]:
    """Runs whose curves start after :data:`FIRST_SUMMARY_BY`: job directory -> first step.

    Such a run's early summaries are gone (e.g. a job resumed before resumed
    jobs kept their interrupted attempts' event files), so a cell's curve
    pools fewer runs before that step.

    Args:
      curves: :func:`run_curves` rows.

    Returns:
      Job directory -> its first logged step, for those runs only.
    """
    first = curves.groupby("job_dir")["step"].min()
    return {job_dir: int(step) for job_dir, step in first.items() if step > FIRST_SUMMARY_BY}


def cell_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per cell and bin of steps, the median over seeds and the range of each quantity.

    Each run's values are first averaged in bins of w = ceil(steps /
    :data:`CURVE_BINS`) global steps (bin k: steps in ((k - 1)·w, k·w], labelled
    k·w; w = 1 keeps every logged step), then pooled over the cell's runs.
    Cells pool like the figures' (identical configurations across studies
    are one cell; a run in both studies counts once).

    Args:
      curves: :func:`run_curves` rows.

    Returns:
      One row per (cell: ``dataset``, ``data_fingerprint``, ``model``,
      ``encoder``, ``sigma``, ``steps`` and any fragments and study bindings;
      ``step``: the bin's last step): ``n`` (runs logged in the bin) and per
      quantity ``q``: ``q_median``, ``q_low``, ``q_high`` (median, min and
      max over the runs' bin means; NaN where not logged).
    """
    curves = curves.sort_values("study").drop_duplicates([*pooled_run_columns(curves), "step"])
    width = np.maximum(1.0, np.ceil(curves["steps"].astype(float).fillna(1.0) / CURVE_BINS))
    curves = curves.assign(step=(np.ceil(curves["step"] / width) * width).astype(int))
    curves = curves.groupby([*pooled_run_columns(curves), "step"], sort=True, dropna=False)[
        list(CURVE_QUANTITIES)].mean().reset_index()
    groups = curves.groupby([*pooled_cell_columns(curves), "step"], sort=True, dropna=False)
    stats = {"n": ("seed", "size")}
    for quantity in CURVE_QUANTITIES:
        stats.update({f"{quantity}_median": (quantity, "median"),
                      f"{quantity}_low": (quantity, "min"),
                      f"{quantity}_high": (quantity, "max")})
    return groups.agg(**stats).reset_index()
