"""The statistics of one comparison: two arms' runs -> what the decision rule reads.

One computation (:func:`contrast`) serves the observed arms
(:func:`splitenc_plugin.results.compare.summarize`) and every relabelling of
their runs (:mod:`splitenc_plugin.results.verdicts`' chance if exchangeable).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["STATISTICS", "arm", "contrast", "mann_whitney_p", "p_higher"]

# The per-run values a comparison's statistics read.
STATISTICS = ("mig_mean", "mig_sampled", "reconstruction_loss")


def arm(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """One comparison arm's runs as :func:`contrast` reads them (:data:`STATISTICS`)."""
    return {column: runs[column].to_numpy(dtype=float) for column in STATISTICS}


def p_higher(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The share of (variant, baseline) pairs where the variant is higher, ties half.

    The Mann-Whitney U / (n1 n2).
    """
    return float(np.mean((variant[:, None] > baseline[None, :])
                         + 0.5 * (variant[:, None] == baseline[None, :])))


def mann_whitney_p(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The exact two-sided Mann-Whitney p-value (NaN with fewer than 2 runs per arm).

    With 3 vs 3 runs the smallest possible p-value is 0.1: such samples
    cannot reach conventional significance.
    """
    from scipy.stats import mannwhitneyu

    if min(len(variant), len(baseline)) < 2:
        return np.nan
    return float(mannwhitneyu(variant, baseline, alternative="two-sided",
                              method="exact").pvalue)


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
