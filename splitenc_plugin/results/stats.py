"""The statistics of one comparison: two arms' runs -> what the decision rule reads.

One computation (:func:`contrast`) serves the observed arms
(:func:`splitenc_plugin.results.compare.summarize`) and every relabelling of
their runs (:mod:`splitenc_plugin.results.verdicts`' chance if exchangeable).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["MAX_RELABELLINGS", "STATISTICS", "arm", "contrast", "mann_whitney_p", "p_higher",
           "relabellings"]

# The per-run values a comparison's statistics read.
STATISTICS = ("mig_mean", "mig_sampled", "reconstruction_loss")


def arm(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """One comparison arm's runs as :func:`contrast` reads them (:data:`STATISTICS`)."""
    return {column: runs[column].to_numpy(dtype=float) for column in STATISTICS}


def p_higher(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The share of (variant, baseline) pairs where the variant is higher, ties half.

    The Mann-Whitney U / (n1 n2); NaN where a run has no value (NaN), which
    no pair can rank (compared as a number it would count as lower in every
    pair).
    """
    if np.isnan(variant).any() or np.isnan(baseline).any():
        return np.nan
    return float(np.mean((variant[:, None] > baseline[None, :])
                         + 0.5 * (variant[:, None] == baseline[None, :])))


# Beyond this many relabellings (C(n_variant + n_baseline, n_variant); 10 vs 10
# runs: 184,756) the permutation statistics use this many random ones (seeded).
MAX_RELABELLINGS = 200_000


def relabellings(size: int, k: int) -> tuple[np.ndarray, bool]:
    """Every way to pick ``k`` of ``size`` pooled runs as the variant group.

    Returns:
      (the picks, [count, k] indices into the pooled runs; whether that is
      all C(size, k) of them, the observed labelling — the first ``k`` —
      included, else :data:`MAX_RELABELLINGS` random ones, seeded).
    """
    if math.comb(size, k) <= MAX_RELABELLINGS:
        picks = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(size), k)),
                            dtype=np.int64, count=math.comb(size, k) * k)
        return picks.reshape(-1, k), True
    # Each row a random permutation of the pooled runs; its first k the variant group.
    picks = np.random.default_rng(0).random((MAX_RELABELLINGS, size)).argsort(axis=1)
    return picks[:, :k], False


def mann_whitney_p(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The exact two-sided Mann-Whitney p-value (NaN with fewer than 2 runs per arm, or a NaN).

    Without ties, scipy's exact distribution of U. With ties (e.g. runs
    collapsed at MIG 0), where that distribution, which assumes none, is not
    exact: the permutation distribution of U (ties count half, as in
    :func:`p_higher`) over every relabelling of the pooled runs
    (:func:`relabellings`), the share of them whose U is at least as far from
    n_v n_b / 2 as the observed one; beyond :data:`MAX_RELABELLINGS`
    relabellings (11 vs 10 runs and more), scipy's normal approximation with
    its tie correction. With 3 vs 3 runs the smallest possible p-value is
    0.1: such samples cannot reach conventional significance.
    """
    from scipy.stats import mannwhitneyu, rankdata

    pooled = np.concatenate([variant, baseline])
    if min(len(variant), len(baseline)) < 2 or np.isnan(pooled).any():
        return np.nan
    k = len(variant)
    ties = len(np.unique(pooled)) < len(pooled)
    if not ties or math.comb(len(pooled), k) > MAX_RELABELLINGS:
        return float(mannwhitneyu(variant, baseline, alternative="two-sided",
                                  method="asymptotic" if ties else "exact").pvalue)
    # U = (sum of the variant group's midranks) - k (k + 1) / 2.
    ranks = rankdata(pooled)
    picks, _ = relabellings(len(ranks), k)
    centre = k * len(baseline) / 2
    spread = np.abs(ranks[picks].sum(axis=1) - k * (k + 1) / 2 - centre)
    observed = abs(ranks[:k].sum() - k * (k + 1) / 2 - centre)
    return float(np.mean(spread >= observed - 1e-9))


def contrast(variant: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray]) -> dict:
    """The statistics the decision rule reads, from two arms' runs (:func:`arm`).

    Returns:
      ``d_mig_median``, ``d_mig_sampled_median``, ``d_recon_median``
      (variant's median minus baseline's), ``p_mig_higher``,
      ``p_recon_higher`` (:func:`p_higher`) and, for the judges only,
      ``_n_variant``, ``_n_baseline``, ``_mig_median_variant``,
      ``_mig_median_baseline`` and ``_d_mig_max``.
    """
    median = {name: {c: float(np.median(runs[c])) for c in STATISTICS}
              for name, runs in (("v", variant), ("b", baseline))}
    return {
        "d_mig_median": median["v"]["mig_mean"] - median["b"]["mig_mean"],
        "d_mig_sampled_median": median["v"]["mig_sampled"] - median["b"]["mig_sampled"],
        "d_recon_median": (median["v"]["reconstruction_loss"]
                           - median["b"]["reconstruction_loss"]),
        "p_mig_higher": p_higher(variant["mig_mean"], baseline["mig_mean"]),
        "p_recon_higher": p_higher(variant["reconstruction_loss"],
                                   baseline["reconstruction_loss"]),
        "_n_variant": len(variant["mig_mean"]), "_n_baseline": len(baseline["mig_mean"]),
        "_mig_median_variant": median["v"]["mig_mean"],
        "_mig_median_baseline": median["b"]["mig_mean"],
        "_d_mig_max": float(np.max(variant["mig_mean"]) - np.max(baseline["mig_mean"])),
    }
