"""Per-factor MIG across runs: median gaps per cell, heatmap panels, traversal labels.

Each job's ``factor_mig`` results are read by
:func:`splitenc_plugin.results.load.load_factor_mig`; this module combines
them: the median gap per cell and factor (summary.md's per-factor table),
each run's factor × latent normalised-MI matrix with its latents sorted
(the heatmap figure), and the label of each traversal column of Appendix C.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.results.cells import cell_columns, count_once, pooled_cell_columns
from splitenc_plugin.results.load import (
    GAP_PREFIX,
    factor_names,
    gap_column,
    gap_columns,
    load_factor_mig,
)
from splitenc_plugin.results.traversals import latent_labels, most_informative_factors

__all__ = ["factor_gap_medians", "factor_mi_panels", "latent_factor_labels"]


def factor_gap_medians(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell and factor, the median of the runs' factor_mig gaps.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows (with
        their ``gap_<factor>`` columns).

    Returns:
      One row per (cell, factor) of every cell with a run that has
      factor_mig results: the cell columns (:func:`~.cells.cell_columns`),
      ``factor`` (its name,
      :func:`~.load.factor_names`), ``n`` (the cell's runs with factor_mig)
      and ``gap_median``; the factors of a cell in dlib's order. Empty (same
      columns) when no run has factor_mig.
    """
    rows = []
    cell = cell_columns(frame)
    for key, group in frame.groupby(cell, sort=True, dropna=False):
        columns = [c for c in gap_columns(group) if group[c].notna().any()]
        if not columns:
            continue
        names = factor_names(group["dataset"].iloc[0], len(columns))
        if [gap_column(name) for name in names] != columns:  # cannot happen via load_results
            names = [c.removeprefix(GAP_PREFIX) for c in columns]
        runs = group[group[columns].notna().all(axis=1)]
        for name, column in zip(names, columns):
            rows.append({**dict(zip(cell, key)), "factor": name, "n": len(runs),
                         "gap_median": float(np.median(runs[column]))})
    return pd.DataFrame(rows, columns=[*cell, "factor", "n", "gap_median"])


def _latent_order(mi_matrix: np.ndarray) -> np.ndarray:
    """Latents grouped by the factor each is most informative about, then by that MI, high first."""
    factor, mi = most_informative_factors(mi_matrix)
    return np.lexsort((-mi, factor))


def factor_mi_panels(runs: pd.DataFrame) -> list[dict]:
    """What the per-factor heatmap figure draws: each run's normalised MI matrix, per cell.

    Each run's own matrix, not a mean over a cell's runs: latent j of one run
    has nothing to do with latent j of another, so averaging would mix
    unrelated latents and blur the block structure. Each run's latents are
    sorted by the factor they are most informative about (dlib's factor
    order), then by that MI, highest first, so that a disentangled model
    shows a staircase of blocks. Cells are pooled as in the other figures
    (identical configurations across studies are one cell; each run is
    named by its own study).

    Args:
      runs: :func:`~splitenc_plugin.results.load.load_results` rows of one
        figure (:func:`~.compare.figure_runs`).

    Returns:
      One dict per cell (by ``model``, ``encoder``, ``sigma``, ``steps`` and
      any fragments and study bindings) with
      a run that has factor_mig results: ``cell`` (its pooled-cell values),
      ``runs`` (by seed): dicts of ``study``, ``model_num``, ``seed``,
      ``mig`` (factor_mig's discrete_mig), ``factor_names``, ``latents``
      (the original latent indices in drawing order) and ``matrix`` (the
      [num_factors, num_latents] normalised MI with its columns in that
      order).
    """
    panels = []
    pooled = pooled_cell_columns(runs)
    for key, group in count_once(runs).groupby(pooled, sort=True, dropna=False):
        drawn = []
        for run in group.sort_values(["seed", "study"]).to_dict("records"):
            factors = load_factor_mig(run["job_dir"], run["dataset"])
            if factors is None:
                continue
            order = _latent_order(factors["mi_matrix"])
            drawn.append({"study": run["study"], "model_num": int(run["model_num"]),
                          "seed": int(run["seed"]), "mig": factors["discrete_mig"],
                          "factor_names": factors["factor_names"], "latents": order,
                          "matrix": factors["mi_matrix"][:, order]})
        if drawn:
            panels.append({"cell": dict(zip(pooled, key)), "runs": drawn})
    return panels


def latent_factor_labels(job_dir: str | Path, dataset: str) -> list[str] | None:
    """Appendix C's label of each traversal column, from the same job's factor_mig.

    Returns:
      :func:`splitenc_plugin.results.traversals.latent_labels` (``"z<j>: <factor>
      <normalised MI>"``, the factor latent j is most informative about), or
      None if the job has no factor_mig results.
    """
    factors = load_factor_mig(job_dir, dataset)
    if factors is None:
        return None
    return latent_labels(factors["mi_matrix"], factors["factor_names"])
