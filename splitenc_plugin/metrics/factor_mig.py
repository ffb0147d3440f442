"""Per-factor MIG: dlib's Mutual Information Gap, factor by factor.

dlib's ``mig.compute_mig`` (Chen et al. 2018, "Isolating Sources of
Disentanglement in VAEs") reports one number, the mean over factors. This
metric computes the same quantities with dlib's own helpers
(``utils.generate_batch_factor_code``, ``utils.make_discretizer``,
``utils.discrete_mutual_info``, ``utils.discrete_entropy``) and keeps them per
factor. With the latents z_j discretized by dlib's discretizer (histogram, 20
bins in ``mig.gin``) and the ground-truth factors v_k::

    I[j, k]          = I(z_j; v_k)                 (nats, sklearn mutual_info_score)
    H[k]             = H(v_k)
    mi_matrix[k, j]  = I[j, k] / H[k]              shape [num_factors, num_latents]
    factor_gap[k]    = (I[j1, k] - I[j2, k]) / H[k]
                       j1, j2: the latents with the largest and second-largest I[., k]
    discrete_mig     = mean_k factor_gap[k]        (dlib's number, bit for bit)
    best_latent[k]   = argmax_j I[j, k]            (the lowest index on ties)
    best_normalized_mi[k] = mi_matrix[k, best_latent[k]]

Orientation: ``mi_matrix`` is factor-major (row k = factor k, column j =
latent j), the transpose of dlib's internal [num_latents, num_factors] matrix.

Results in dlib's JSON: the per-factor values are plain (nested) lists. dlib's
``results.update_result_directory`` writes the dict with ``simplejson`` and
its aggregate only namespaces top-level keys, so the lists survive unchanged
into ``results/json/evaluation_results.json`` (``mi_matrix``, ...) and
``results/aggregate/evaluation.json`` (``evaluation_results.mi_matrix``, ...);
nothing is flattened.

Neither TensorFlow nor dlib is imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gin
import numpy as np

from splitenc_plugin._gin import configurable

__all__ = ["factor_mig", "factor_mig_scores"]


def factor_mig_scores(mus: np.ndarray, ys: np.ndarray) -> dict[str, Any]:
    """Per-factor MIG of codes and factors, with dlib's configured discretizer.

    The equations are in the module docstring; ``discrete_mig`` is computed
    with the same operations as dlib's ``mig._compute_mig``, so the two are
    equal on the same input.

    Args:
      mus: [num_latents, num_points] representation (dlib's layout, as
        ``utils.generate_batch_factor_code`` returns it); discretized with
        ``utils.make_discretizer`` (gin: ``discretizer.discretizer_fn``,
        ``discretizer.num_bins``).
      ys: [num_factors, num_points] discrete ground-truth factors.

    Returns:
      Dict with ``discrete_mig`` (float), ``factor_gap`` ([num_factors]),
      ``mi_matrix`` ([num_factors][num_latents], normalized by H(v_k)),
      ``best_latent`` ([num_factors] ints), ``best_normalized_mi``
      ([num_factors]), ``factor_entropy`` ([num_factors] H(v_k) in nats),
      ``num_factors`` and ``num_latents``; lists of Python numbers.

    Raises:
      ValueError: on fewer than two latents (a gap needs a second latent) or
        mismatched numbers of points.
    """
    from disentanglement_lib.evaluation.metrics import utils

    mus, ys = np.asarray(mus), np.asarray(ys)
    if mus.ndim != 2 or ys.ndim != 2 or mus.shape[1] != ys.shape[1]:
        raise ValueError(f"mus must be [num_latents, N] and ys [num_factors, N]; got "
                         f"{mus.shape} and {ys.shape}.")
    if mus.shape[0] < 2:
        raise ValueError(f"MIG needs at least 2 latents, got {mus.shape[0]}.")
    discretized = utils.make_discretizer(mus)
    mi = utils.discrete_mutual_info(discretized, ys)  # [num_latents, num_factors]
    entropy = utils.discrete_entropy(ys)  # [num_factors]
    sorted_mi = np.sort(mi, axis=0)[::-1]
    gap = np.divide(sorted_mi[0, :] - sorted_mi[1, :], entropy[:])  # as dlib's _compute_mig
    normalized = np.divide(mi, entropy[None, :]).T  # [num_factors, num_latents]
    best = np.argmax(mi, axis=0)  # [num_factors]
    return {
        "discrete_mig": float(np.mean(gap)),
        "factor_gap": gap.tolist(),
        "mi_matrix": normalized.tolist(),
        "best_latent": best.astype(int).tolist(),
        "best_normalized_mi": normalized[np.arange(len(best)), best].tolist(),
        "factor_entropy": entropy.tolist(),
        "num_factors": int(ys.shape[0]),
        "num_latents": int(mus.shape[0]),
    }


@configurable("factor_mig", allowlist=["num_train", "batch_size"])
def factor_mig(ground_truth_data: Any, representation_function: Callable[[np.ndarray], np.ndarray],
               random_state: np.random.RandomState, artifact_dir: str | None = None,
               num_train: int = gin.REQUIRED, batch_size: int = 16) -> dict[str, Any]:
    """dlib evaluation function: MIG and its per-factor parts (:func:`factor_mig_scores`).

    Same signature, sampling and defaults as dlib's ``mig.compute_mig`` (its
    ``batch_size`` default is 16; ``num_train`` must be bound, and
    ``gin/metrics/factor_mig.gin`` binds it as dlib's ``mig.gin`` does), so with the same
    ``evaluation.random_seed`` it sees the same points and its
    ``discrete_mig`` equals dlib's.

    Args:
      ground_truth_data: dlib GroundTruthData.
      representation_function: images -> [batch, num_latents] array.
      random_state: numpy RandomState (seeded by ``evaluation.random_seed``).
      artifact_dir: Unused.
      num_train: Number of points N (required, like dlib's ``mig.num_train``).
      batch_size: Points per representation_function call.

    Returns:
      The dict of :func:`factor_mig_scores`.
    """
    del artifact_dir
    from disentanglement_lib.evaluation.metrics import utils

    mus, ys = utils.generate_batch_factor_code(ground_truth_data, representation_function,
                                               int(num_train), random_state, int(batch_size))
    return factor_mig_scores(mus, ys)
