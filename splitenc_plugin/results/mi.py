"""The MI decomposition (Theorem 1, Eq 8) as intervals, per run, per cell and per comparison.

I(z;x) and Σ_j I(z_j;x) lie between two estimates a job records (plug-in
and leave-one-out), each clipped into what the quantity can be at all; the
gap and TC follow by interval arithmetic (:func:`mi_intervals`). A cell's
interval is the median of its runs' bounds; two compared cells' intervals
say whether the quantity can separate them (:func:`mi_separation`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from splitenc_plugin.data.dsprites import LATENT_SIZES

__all__ = ["DISTINCT_IMAGES", "MI_QUANTITIES", "entropy_cap", "median_bounds",
           "mi_intervals", "mi_separation"]

# How many distinct images each dataset's observations are drawn from, where
# that is a fixed, finite set: H(x) <= log of it bounds every I(.;x). Datasets
# whose observations are drawn afresh (random colour, noise or Scream patch;
# dummy_data's random pixels) have no such bound.
DISTINCT_IMAGES: dict[str, int] = {
    "dsprites_full": math.prod(LATENT_SIZES),  # 737,280
    "dsprites_noshape": math.prod(LATENT_SIZES),  # shape is drawn, not dropped
    "smallnorb": 48_600,
    "cars3d": 183 * 4 * 24,
    "shapes3d": 480_000,
    "mpi3d_toy": 460_800,
    "mpi3d_realistic": 460_800,
    "mpi3d_real": 1_036_800,
}

# Quantity -> its label. Two are estimated directly, each between two
# estimates a job records: the plug-in estimate of I(z;x) (and of each
# I(z_j;x)) includes each sample's own encoding in the mixture q(z), a lower
# bound in expectation; the leave-one-out one an upper bound (README,
# MI-decomposition estimator). The gap = Σ_j I(z_j;x) - I(z;x) and TC = gap + CI
# (Theorem 1) follow from those by interval arithmetic; CI = -1/2 log det Sigma
# is exact.
MI_QUANTITIES: dict[str, str] = {
    "joint": "I(z;x)",
    "latent_sum": "Σ_j I(z_j;x)",
    "gap": "gap",
    "tc": "TC",
    "ci": "CI",
}


def entropy_cap(dataset: str) -> float:
    """log(number of distinct images) of a dataset, an upper bound on H(x) >= I(z;x).

    Returns:
      ``log(DISTINCT_IMAGES[dataset])`` (log 737,280 = 13.51 nats for
      dSprites); ``inf`` for a dataset not in :data:`DISTINCT_IMAGES`
      (dummy_data, and the dSprites variants that draw colour, noise or a
      Scream patch per image).
    """
    count = DISTINCT_IMAGES.get(dataset)
    return math.log(count) if count else math.inf


def _clip(values, low, high) -> np.ndarray:
    """``values`` clipped into [low, high]; NaN values stay NaN, NaN limits do not clip."""
    values = np.asarray(values, dtype=float)
    clipped = np.fmin(np.fmax(values, low), high)
    return np.where(np.isnan(values), np.nan, clipped)


def _bracket(plug_in, leave_one_out) -> tuple[np.ndarray, np.ndarray]:
    """Per run, [smaller, larger] of the plug-in and the leave-one-out estimate.

    The plug-in estimate lies below the leave-one-out one in expectation,
    not in every sample: per point their difference is
    log((N-1)(q_nn + S) / (N S)), S the sum of the other N-1 densities at
    z_n, which is negative where q(z_n|x_n) is below their mean — e.g. for
    collapsed latents, whose two estimates are both about 0. An interval is
    never read upside down. NaN (no MI evaluation) stays NaN.
    """
    a = np.asarray(plug_in, dtype=float)
    b = np.asarray(leave_one_out, dtype=float)
    return np.minimum(a, b), np.maximum(a, b)


def mi_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run, the interval [lower, upper] (nats) of each MI-decomposition quantity.

    With H = :func:`entropy_cap` of the run's dataset and CI exact:

    * I(z;x) in [plug-in, leave-one-out], clipped into [0, H];
    * Σ_j I(z_j;x) in [plug-in, leave-one-out], clipped at 0;
      (each as [smaller, larger] of the two: sampling noise can invert them,
      :func:`_bracket`);
    * gap = Σ_j I(z_j;x) - I(z;x) in [Σ's lower - I's upper, Σ's upper -
      I's lower], raised to -CI where below it (TC >= 0);
    * TC = gap + CI (Theorem 1): the gap's interval shifted by CI.

    Each interval holds wherever the estimates it is made of hold, whatever
    their errors' correlation: the gap and TC are not bracketed by their own
    plug-in and leave-one-out estimates (those are differences of two
    biased terms, whose biases partly cancel). I(z;x) <= H makes the gap at
    least Σ's lower bound - H; I(z;x) >= 0 makes it at most Σ's upper bound.

    log N (``mi_log_n``) caps the plug-in estimate, not the quantity: I(z;x)
    can exceed log N (README: 11.87 nats at log N = 9.21), so it is shown
    beside the intervals, not used to clip them.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.

    Returns:
      Indexed like ``frame``: ``h_cap`` and, per quantity key ``q`` of
      :data:`MI_QUANTITIES`, ``q_lower`` and ``q_upper`` (NaN where the run
      has no MI evaluation).
    """
    h_cap = frame["dataset"].map(entropy_cap).to_numpy(dtype=float)
    ci = frame["mi_ci"].to_numpy(dtype=float)
    joint = tuple(_clip(bound, 0.0, h_cap)
                  for bound in _bracket(frame["mi_joint"], frame["mi_joint_loo"]))
    latent = tuple(_clip(bound, 0.0, np.inf)
                   for bound in _bracket(frame["mi_latent_sum"], frame["mi_latent_sum_loo"]))
    gap = (_clip(latent[0] - joint[1], -ci, np.inf), _clip(latent[1] - joint[0], -ci, np.inf))
    bounds = {"joint": joint, "latent_sum": latent, "gap": gap,
              "tc": (gap[0] + ci, gap[1] + ci), "ci": (ci, ci)}
    out = pd.DataFrame({"h_cap": h_cap}, index=frame.index)
    for key in MI_QUANTITIES:
        out[f"{key}_lower"], out[f"{key}_upper"] = bounds[key]
    return out


def median_bounds(bounds: pd.DataFrame) -> dict[str, float]:
    """A cell's interval per quantity: the median lower and the median upper bound.

    If every run's interval holds its true value, these bound the median of
    the true values (the median is monotone). A run without an MI evaluation
    makes the cell's interval NaN.

    Args:
      bounds: The cell's runs' ``<q>_lower`` / ``<q>_upper`` columns
        (:func:`mi_intervals`); other columns are ignored.
    """
    return {column: float(np.median(bounds[column].to_numpy(dtype=float)))
            for column in bounds.columns if column.endswith(("_lower", "_upper"))}


def mi_separation(diffs: pd.DataFrame) -> pd.DataFrame:
    """Whether each MI-decomposition quantity separates the cells of each comparison.

    The two cells' intervals (the medians of bounds that
    :func:`~splitenc_plugin.results.compare.summarize` records) overlap by
    ``overlap`` (0 if disjoint); ``difference`` is the distance between their
    midpoints. The metric separates the cells only where the intervals are
    disjoint: each interval brackets its quantity, so wherever they share a
    point both cells may have that value, however far apart the midpoints
    (``separates`` False).

    Args:
      diffs: The differences frame of :func:`~splitenc_plugin.results.compare.summarize`.

    Returns:
      One row per (comparison, quantity): dataset, data_fingerprint, model,
      the study's bindings where the cells have them (``vae.beta``, ...),
      steps, comparison, quantity (label), variant_lower / variant_upper,
      baseline_lower / baseline_upper, overlap, difference, separates
      (NaN / False where an interval is unknown).
    """
    rows = []
    for d in diffs.to_dict("records"):
        for key, label in MI_QUANTITIES.items():
            v = d["_mi_variant"][f"{key}_lower"], d["_mi_variant"][f"{key}_upper"]
            b = d["_mi_baseline"][f"{key}_lower"], d["_mi_baseline"][f"{key}_upper"]
            overlap = max(0.0, min(v[1], b[1]) - max(v[0], b[0]))
            difference = abs((v[0] + v[1]) / 2 - (b[0] + b[1]) / 2)
            known = not np.isnan([*v, *b]).any()
            rows.append({
                "dataset": d["dataset"], "data_fingerprint": d["data_fingerprint"],
                "model": d["model"], **{c: d[c] for c in d if "." in c},
                "steps": d["steps"], "comparison": d["comparison"],
                "quantity": label,
                "variant_lower": v[0], "variant_upper": v[1],
                "baseline_lower": b[0], "baseline_upper": b[1],
                "overlap": overlap if known else np.nan,
                "difference": difference if known else np.nan,
                "separates": bool(known and min(v[1], b[1]) < max(v[0], b[0])),
            })
    return pd.DataFrame(rows)
