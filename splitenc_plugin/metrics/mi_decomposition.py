"""MI decomposition metric: the paper's Theorem 1 (Eq 8) measured on a trained encoder.

For a Gaussian encoder q(z|x) = N(mu(x), D Sigma D), D = diag(exp(logvar / 2)),
Sigma the reparameterization noise's correlation (identity for factorized
noise, Eq 11; (1 - sigma) I + sigma 11^T for Eq 13), Theorem 1 (Eq 8) says::

    sum_j I(z_j; x) - I(z; x) = TC(z) - CI,
    TC(z) = KL(q(z) || prod_j q(z_j)),
    CI    = E_x[KL(q(z|x) || prod_j q(z_j|x))]   (the conditional-independence term).

Assumption 3 (Eq 7) says a disentangled representation has
I(z; x) = sum_j I(z_j; x); Theorem 2 (Eq 12) is the special case CI = 0
(factorized noise, Sec 4.1). Because every marginal q(z_j|x) = N(mu_j,
exp(logvar_j)) (Sigma has a unit diagonal), CI = -1/2 log det Sigma exactly,
for every x.

This module provides, for dlib's evaluation pipeline:

* :func:`mean_logvar_representation`: a postprocessing function (like dlib's
  ``mean_representation``) whose representation is ``concat([mean, logvar],
  axis=1)``: columns ``0..J-1`` are the encoder's means, ``J..2J-1`` its
  log-variances.
* :func:`mi_decomposition`: a dlib evaluation function on that representation;
  it reads the noise setting (and J) from the trained model's operative gin
  config (``results/gin/train.gin``, which dlib carries into every
  postprocessing directory) and calls :func:`estimate_mi_decomposition`.
* :func:`estimate_mi_decomposition`: the Monte-Carlo estimator (numpy only).
* :func:`linear_gaussian_reference`: closed forms for a linear-Gaussian
  encoder on Gaussian data (reference for the tests and the README's bias
  table).

The estimator. Draw N data points x_n and, for each, M samples z_nm ~ q(z|x_n)
(with the model's Sigma). The aggregate posterior is approximated by the
mixture of the N encodings, q(z) ~ (1/N) sum_n' q(z|x_n') (the same for each
one-dimensional q(z_j)). Per sample::

    I(z;x)   term: log q(z|x_n) - log q(z)
    I(z_j;x) term: log q(z_j|x_n) - log q(z_j)
    TC       term: log q(z) - sum_j log q(z_j)
    CI       term: log q(z|x_n) - sum_j log q(z_j|x_n)

each averaged over the N*M samples. The mixture includes the sample's own
encoding (n' = n), the standard choice: that estimate of every I is an
InfoNCE-type *lower* bound in expectation and can never exceed log N. The
leave-one-out mixture (n' != n) gives an *upper* bound in expectation; both are
reported (``*_loo``), and their difference shows whether N was large enough.
Standard errors are over the N data points (each point's M samples averaged
first); they cover sampling noise, not the small-N bias.

Because all terms use the same samples, the identity of Eq 8 holds sample by
sample for the Monte-Carlo terms; the reported CI is the exact
-1/2 log det Sigma, so the identity's residual
(sum_j I_j - I) - (TC - CI) equals CI - (Monte-Carlo CI term): zero in
expectation, and a check that the samples and the densities agree.

Neither TensorFlow nor dlib is imported at module level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from splitenc_plugin._gin import TRAIN_GIN, configurable, read_operative_config
from splitenc_plugin.errors import ConfigError
from splitenc_plugin.model.noise import (
    NUM_LATENT_KEY,
    NoiseSetting,
    validate_correlation,
)

__all__ = [
    "estimate_mi_decomposition",
    "linear_gaussian_reference",
    "mean_logvar_representation",
    "mi_decomposition",
    "resolve_noise_correlation",
    "resolve_noise_setting",
]

_LOG_2PI = math.log(2.0 * math.pi)
_DEFAULT_CHUNK_BYTES = 32 * 2**20


# ---------------------------------------------------------------------------
# Postprocessing: a representation that carries q(z|x).
# ---------------------------------------------------------------------------


@configurable("mean_logvar_representation", allowlist=())  # dlib passes every argument
def mean_logvar_representation(ground_truth_data: Any, gaussian_encoder: Any, random_state: Any,
                               save_path: Any) -> tuple[Callable, None]:
    """Exports the encoder's mean and log-variance as one representation.

    Same signature as dlib's ``mean_representation``
    (``postprocessing/methods.py``). The representation is
    ``concat([mean, logvar], axis=1)``, shape [batch, 2 J]: columns 0..J-1 are
    mu(x), columns J..2J-1 are log sigma^2(x) of q(z|x) (Eq 11 / 13).

    Args:
      ground_truth_data: Unused.
      gaussian_encoder: Unused.
      random_state: Unused (the representation is deterministic).
      save_path: Unused.

    Returns:
      (transform_fn, None): transform_fn(mean, logvar) -> [batch, 2 J] tensor.
    """
    del ground_truth_data, gaussian_encoder, random_state, save_path

    def transform_fn(mean, logvar):
        import tensorflow.compat.v1 as tf

        return tf.concat([mean, logvar], axis=1)

    return transform_fn, None


# ---------------------------------------------------------------------------
# Closed form: linear-Gaussian encoder on Gaussian data.
# ---------------------------------------------------------------------------


def linear_gaussian_reference(weight: np.ndarray, logvar: np.ndarray,
                              correlation: np.ndarray | None = None,
                              data_cov: np.ndarray | None = None) -> dict[str, Any]:
    """Exact Eq-8 quantities for x ~ N(0, C_x), q(z|x) = N(W x, D Sigma D).

    With S = D Sigma D (D = diag(exp(logvar / 2))) and K = W C_x W^T + S, the
    aggregate posterior is q(z) = N(0, K), so::

        I(z;x)   = 1/2 log det K - 1/2 log det S
        I(z_j;x) = 1/2 log K_jj - 1/2 logvar_j
        TC(z)    = 1/2 sum_j log K_jj - 1/2 log det K
        CI       = -1/2 log det Sigma

    and sum_j I(z_j;x) - I(z;x) = TC - CI (Theorem 1, Eq 8) holds exactly.

    Args:
      weight: [J, D] encoder weight W (mu(x) = W x).
      logvar: [J] log-variances (the same for every x).
      correlation: [J, J] noise correlation Sigma; None for factorized noise.
      data_cov: [D, D] data covariance C_x; None for the identity.

    Returns:
      Dict with ``mi_joint``, ``mi_latent`` ([J] array), ``mi_latent_sum``,
      ``total_correlation``, ``conditional_independence`` and
      ``decomposition_gap`` (= sum_j I(z_j;x) - I(z;x)), in nats.
    """
    weight = np.atleast_2d(np.asarray(weight, dtype=np.float64))
    num_latent, dim = weight.shape
    logvar = np.broadcast_to(np.asarray(logvar, dtype=np.float64), (num_latent,))
    corr = np.eye(num_latent) if correlation is None else np.asarray(correlation, np.float64)
    cov_x = np.eye(dim) if data_cov is None else np.asarray(data_cov, np.float64)
    scale = np.exp(logvar / 2)
    noise_cov = corr * np.outer(scale, scale)
    marginal_cov = weight @ cov_x @ weight.T + noise_cov
    logdet_k = np.linalg.slogdet(marginal_cov)[1]
    logdet_s = np.linalg.slogdet(noise_cov)[1]
    logdet_corr = np.linalg.slogdet(corr)[1]
    mi_latent = 0.5 * (np.log(np.diag(marginal_cov)) - logvar)
    mi_joint = 0.5 * (logdet_k - logdet_s)
    return {
        "mi_joint": float(mi_joint),
        "mi_latent": mi_latent,
        "mi_latent_sum": float(mi_latent.sum()),
        "total_correlation": float(0.5 * (np.log(np.diag(marginal_cov)).sum() - logdet_k)),
        "conditional_independence": float(-0.5 * logdet_corr),
        "decomposition_gap": float(mi_latent.sum() - mi_joint),
    }


# ---------------------------------------------------------------------------
# The Monte-Carlo estimator.
# ---------------------------------------------------------------------------


def _logsumexp_last(values: np.ndarray) -> np.ndarray:
    """log sum exp over the last axis, in place (values is overwritten)."""
    peak = values.max(axis=-1, keepdims=True)
    values -= peak
    np.exp(values, out=values)
    return np.log(values.sum(axis=-1)) + peak[..., 0]


def _mean_and_se(per_point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and its standard error std / sqrt(N)."""
    count = per_point.shape[0]
    mean = per_point.mean(axis=0)
    se = per_point.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else np.zeros_like(mean)
    return mean, se


def estimate_mi_decomposition(means: np.ndarray, logvars: np.ndarray,
                              correlation: np.ndarray | None = None,
                              num_samples: int = 1,
                              random_state: np.random.RandomState | None = None,
                              max_chunk_bytes: int = _DEFAULT_CHUNK_BYTES) -> dict[str, Any]:
    """Monte-Carlo estimate of the terms of Theorem 1 (Eq 8) for a Gaussian encoder.

    q(z|x_n) = N(means[n], D_n Sigma D_n), D_n = diag(exp(logvars[n] / 2)); the
    aggregate posteriors q(z) and q(z_j) are the mixtures of the N encodings
    (see the module docstring for the estimator, its bias and its standard
    errors). Vectorized over the N x N x J pairwise densities, chunked over
    the samples so no array exceeds ``max_chunk_bytes``.

    Args:
      means: [N, J] encoder means mu(x_n).
      logvars: [N, J] encoder log-variances.
      correlation: [J, J] noise correlation Sigma (Eq 13), or None for
        factorized noise (Eq 11).
      num_samples: M, samples z per data point.
      random_state: numpy RandomState for the samples (default: seed 0).
      max_chunk_bytes: Memory budget of one pairwise chunk.

    Returns:
      Dict of floats (nats) and lists: ``mi_joint`` (I(z;x)), ``mi_latent``
      ([J] I(z_j;x)), ``mi_latent_sum``, ``decomposition_gap``
      (sum_j I(z_j;x) - I(z;x), zero under Assumption 3 / Eq 7),
      ``total_correlation`` (TC(z)), ``conditional_independence`` (exact
      -1/2 log det Sigma), ``conditional_independence_mc`` (its Monte-Carlo
      term), ``identity_residual`` ((sum_j I_j - I) - (TC - CI)), each with a
      ``*_se``; leave-one-out (upper-bound) versions ``mi_joint_loo``,
      ``mi_latent_loo``, ``mi_latent_sum_loo``, ``decomposition_gap_loo``,
      ``total_correlation_loo`` with standard errors; ``num_points``,
      ``num_samples``, ``num_latents`` and ``log_num_points`` (the cap of
      ``mi_joint``).

    Raises:
      ConfigError: on mismatched shapes, non-finite inputs, N < 2 or M < 1.
    """
    means = np.asarray(means, dtype=np.float64)
    logvars = np.asarray(logvars, dtype=np.float64)
    if means.ndim != 2 or means.shape != logvars.shape:
        raise ConfigError(f"means and logvars must both be [N, J]; got {means.shape} and "
                          f"{logvars.shape}.")
    num_points, num_latent = means.shape
    if num_points < 2:
        raise ConfigError(f"mi_decomposition needs at least 2 data points, got {num_points}.")
    if int(num_samples) < 1:
        raise ConfigError(f"mi_decomposition.num_samples must be >= 1, got {num_samples}.")
    num_samples = int(num_samples)
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(logvars))):
        raise ConfigError("The encoder returned non-finite means or log-variances; "
                          "the model is not usable for mi_decomposition.")
    factorized = correlation is None
    corr = np.eye(num_latent) if factorized else validate_correlation(correlation, num_latent)
    cholesky = np.linalg.cholesky(corr)
    precision = np.linalg.inv(corr)
    logdet_corr = 2.0 * np.log(np.diag(cholesky)).sum()
    rng = random_state if random_state is not None else np.random.RandomState(0)

    # Pairwise tensors are laid out [chunk, J, N] (reductions over the last,
    # contiguous axis): about twice as fast as [chunk, N, J].
    inv_scale_t = np.exp(-logvars / 2).T.copy()  # [J, N]
    means_t = means.T.copy()
    base = -0.5 * logvars - 0.5 * _LOG_2PI  # [N, J]: log N(mu; mu, s^2) per dim
    base_t = base.T.copy()
    base_joint = base.sum(axis=1) - 0.5 * logdet_corr  # [N]

    # Samples: z = mu + s * (L n), n ~ N(0, I). Row r = n * M + m.
    white = rng.standard_normal((num_points, num_samples, num_latent))
    eps = white if factorized else white @ cholesky.T
    z = (means[:, None, :] + np.exp(logvars / 2)[:, None, :] * eps).reshape(-1, num_latent)
    owner = np.repeat(np.arange(num_points), num_samples)
    eps = eps.reshape(-1, num_latent)
    # Own densities, exactly: u = eps, u^T Sigma^-1 u = |n|^2.
    own_joint = base_joint[owner] - 0.5 * np.sum(white.reshape(-1, num_latent) ** 2, axis=1)
    own_latent = base[owner] - 0.5 * eps**2

    total = num_points * num_samples
    loo_joint = np.empty(total)
    loo_latent = np.empty((total, num_latent))
    bytes_per_row = 8 * num_points * num_latent * (1 if factorized else 2)
    rows_per_chunk = max(1, min(total, int(max_chunk_bytes // bytes_per_row)))
    buffer = np.empty((rows_per_chunk, num_latent, num_points))
    for start in range(0, total, rows_per_chunk):
        stop = min(total, start + rows_per_chunk)
        rows, own = np.arange(stop - start), owner[start:stop]
        u = buffer[: stop - start]
        np.subtract(z[start:stop, :, None], means_t[None], out=u)
        u *= inv_scale_t[None]  # [c, J, N] standardized z_rj w.r.t. q(z_j | x_n')
        if not factorized:
            quad = np.einsum("cjn,cjn->cn", np.matmul(precision[None], u), u)
        u *= u
        if factorized:
            quad = u.sum(axis=1)
        joint = base_joint[None] - 0.5 * quad  # [c, N] log q(z_r | x_n')
        u *= -0.5
        u += base_t[None]  # [c, J, N] log q(z_rj | x_n'j)
        joint[rows, own] = -np.inf  # leave the sample's own encoding out
        u[rows, :, own] = -np.inf
        loo_joint[start:stop] = _logsumexp_last(joint)
        loo_latent[start:stop] = _logsumexp_last(u)

    log_n, log_n1 = math.log(num_points), math.log(num_points - 1)
    log_qz = np.logaddexp(loo_joint, own_joint) - log_n
    log_qzj = np.logaddexp(loo_latent, own_latent) - log_n
    log_qz_loo = loo_joint - log_n1
    log_qzj_loo = loo_latent - log_n1

    ci_exact = -0.5 * logdet_corr
    per_sample = {
        "mi_joint": own_joint - log_qz,
        "mi_latent": own_latent - log_qzj,
        "total_correlation": log_qz - log_qzj.sum(axis=1),
        "conditional_independence_mc": own_joint - own_latent.sum(axis=1),
        "mi_joint_loo": own_joint - log_qz_loo,
        "mi_latent_loo": own_latent - log_qzj_loo,
        "total_correlation_loo": log_qz_loo - log_qzj_loo.sum(axis=1),
    }
    for suffix in ("", "_loo"):
        per_sample[f"mi_latent_sum{suffix}"] = per_sample[f"mi_latent{suffix}"].sum(axis=1)
        per_sample[f"decomposition_gap{suffix}"] = (per_sample[f"mi_latent_sum{suffix}"]
                                                    - per_sample[f"mi_joint{suffix}"])
    per_sample["identity_residual"] = (per_sample["decomposition_gap"]
                                       - per_sample["total_correlation"] + ci_exact)

    result: dict[str, Any] = {}
    for key, values in per_sample.items():
        per_point = values.reshape(num_points, num_samples, *values.shape[1:]).mean(axis=1)
        mean, se = _mean_and_se(per_point)
        result[key] = mean.tolist() if mean.ndim else float(mean)
        result[f"{key}_se"] = se.tolist() if se.ndim else float(se)
    result["conditional_independence"] = float(ci_exact)
    result["conditional_independence_se"] = 0.0
    result.update(num_points=num_points, num_samples=num_samples, num_latents=num_latent,
                  log_num_points=log_n)
    return dict(sorted(result.items()))


# ---------------------------------------------------------------------------
# The trained model's noise setting.
# ---------------------------------------------------------------------------


def resolve_noise_setting(noise: Any, train_config: Mapping[str, Any] | None) -> NoiseSetting:
    """The reparameterization noise of q(z|x) as the metric's ``noise`` binding names it.

    Args:
      noise: ``'auto'`` (read the trained model's operative config),
        ``'factorized'``, a sigma in [0, 1) (Eq 13) or a J x J correlation matrix.
      train_config: :func:`~splitenc_plugin._gin.read_operative_config`
        of the model's train.gin, or None if it was not found.

    Returns:
      The :class:`~splitenc_plugin.model.noise.NoiseSetting`.

    Raises:
      ConfigError: if the setting cannot be determined or is invalid.
    """
    if isinstance(noise, str) and noise == "auto":
        if train_config is None:
            raise ConfigError(
                "mi_decomposition.noise = 'auto' needs the trained model's operative config "
                f"({TRAIN_GIN} in the representation directory, which dlib_postprocess copies), "
                "and it was not found; bind mi_decomposition.noise = 'factorized', a sigma "
                "(e.g. 0.9) or a correlation matrix."
            )
        try:
            return NoiseSetting.from_operative_config(train_config)
        except ConfigError as e:
            raise ConfigError(f"The trained model's noise: {e} Bind mi_decomposition.noise "
                              "(a sigma or a correlation matrix).") from None
    if isinstance(noise, str):
        if noise == "factorized":
            return NoiseSetting.factorized()
        raise ConfigError(
            f"mi_decomposition.noise must be 'auto', 'factorized', a sigma in [0, 1) or a "
            f"correlation matrix; got {noise!r}.")
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        return NoiseSetting.correlated(sigma=noise)
    return NoiseSetting.correlated(correlation=noise)


def resolve_noise_correlation(noise: Any, train_config: Mapping[str, Any] | None,
                              num_latent: int) -> tuple[np.ndarray | None, str]:
    """The noise correlation Sigma of q(z|x) (None if factorized) and a description.

    Args:
      noise: As :func:`resolve_noise_setting`.
      train_config: As :func:`resolve_noise_setting`.
      num_latent: J.

    Returns:
      (Sigma or None, the setting's label such as ``"correlated sigma=0.9"``).

    Raises:
      ConfigError: if the setting cannot be determined or is invalid.
    """
    setting = resolve_noise_setting(noise, train_config)
    if setting.kind == "factorized":
        return None, setting.label
    return setting.covariance(num_latent), setting.label


def _find_train_config(artifact_dir: str | None) -> Path | None:
    """train.gin of the representation dir that dlib derived ``artifact_dir`` from.

    dlib's evaluate passes ``artifact_dir = <input_dir>/artifacts/<evaluation.name>``.
    """
    if not artifact_dir:
        return None
    path = Path(artifact_dir)
    for candidate in (path, *list(path.parents)[:3]):
        if (candidate / TRAIN_GIN).is_file():
            return candidate / TRAIN_GIN
    return None


# ---------------------------------------------------------------------------
# The dlib evaluation function.
# ---------------------------------------------------------------------------


@configurable("mi_decomposition", allowlist=[
    "num_points", "num_samples", "batch_size", "noise", "incompatible_representation"])
def mi_decomposition(ground_truth_data: Any, representation_function: Callable[[np.ndarray], np.ndarray],
                     random_state: np.random.RandomState, artifact_dir: str | None = None,
                     num_points: int = 10000, num_samples: int = 1, batch_size: int = 64,
                     noise: Any = "auto",
                     incompatible_representation: str = "error") -> dict[str, Any]:
    """dlib evaluation function: the terms of Theorem 1 (Eq 8) on N data points.

    Needs the ``mean_logvar_representation`` postprocessing (representation =
    [mean, logvar]). Samples ``num_points`` observations with
    ``ground_truth_data.sample_observations``, splits the representation into
    mu and logvar, takes Sigma from the trained model's operative config
    (``reparameterization.noise_fn``, ``correlated_noise.sigma`` /
    ``.correlation``; Eq 11 / 13) and runs :func:`estimate_mi_decomposition`.

    Args:
      ground_truth_data: dlib GroundTruthData.
      representation_function: images -> [batch, 2 J] array.
      random_state: numpy RandomState (seeded by ``evaluation.random_seed``);
        draws the data points, then the samples z.
      artifact_dir: ``<input_dir>/artifacts/<name>`` from dlib; used to find
        ``<input_dir>/results/gin/train.gin``.
      num_points: N, data points (the mixture size; sets the small-N bias).
      num_samples: M, samples z per data point.
      batch_size: Images per representation_function call.
      noise: ``'auto'`` (from the model's config), ``'factorized'``, a sigma,
        or a J x J correlation matrix.
      incompatible_representation: ``'error'`` (default) or ``'skip'``: what to
        do on a representation that is not [mean, logvar] (e.g. dlib's
        ``mean``); ``'skip'`` returns ``{"skipped": 1, "reason": ...}``, for
        study runners that evaluate every metric on every representation.

    Returns:
      The dict of :func:`estimate_mi_decomposition` plus ``noise`` (a
      description of Sigma) and ``skipped`` (0).

    Raises:
      ConfigError: on a representation that is not [mean, logvar] (unless
        skipped), or an unknown noise setting.
    """
    if incompatible_representation not in ("error", "skip"):
        raise ConfigError("mi_decomposition.incompatible_representation must be 'error' or "
                          f"'skip', got {incompatible_representation!r}.")
    if int(num_points) < 2:
        raise ConfigError(f"mi_decomposition.num_points must be >= 2, got {num_points}.")
    config_path = _find_train_config(artifact_dir)
    train_config = read_operative_config(config_path) if config_path else None
    num_latent = None
    if train_config is not None and isinstance(train_config.get(NUM_LATENT_KEY), int):
        num_latent = train_config[NUM_LATENT_KEY]

    batches = []
    remaining = int(num_points)
    while remaining > 0:
        count = min(remaining, int(batch_size))
        batches.append(np.asarray(representation_function(
            ground_truth_data.sample_observations(count, random_state)), dtype=np.float64))
        remaining -= count
        if len(batches) == 1:
            problem = _layout_problem(batches[0], num_latent)
            if problem:
                if incompatible_representation == "skip":
                    return {"skipped": 1, "reason": problem}
                raise ConfigError(problem)
    representation = np.concatenate(batches, axis=0)
    half = representation.shape[1] // 2
    correlation, description = resolve_noise_correlation(noise, train_config, half)
    result = estimate_mi_decomposition(representation[:, :half], representation[:, half:],
                                       correlation, num_samples, random_state)
    result["noise"] = description
    result["skipped"] = 0
    return result


def _layout_problem(batch: np.ndarray, num_latent: int | None) -> str | None:
    """Why ``batch`` is not a [mean, logvar] representation, or None."""
    fix = ("mi_decomposition needs q(z|x): postprocess with "
           "gin/postprocess/mean_logvar.gin (representation = [mean, logvar]) and "
           "evaluate that directory")
    if batch.ndim != 2:
        return f"{fix}; got a representation of shape {batch.shape}."
    width = batch.shape[1]
    if num_latent is not None:
        if width == 2 * num_latent:
            return None
        what = " (a mean-only representation such as dlib's mean or sampled)" \
            if width == num_latent else ""
        return (f"{fix}; this representation has {width} columns{what}, the model has "
                f"encoder.num_latent = {num_latent}, so [mean, logvar] has {2 * num_latent}.")
    if width % 2:
        return f"{fix}; this representation has an odd number of columns ({width})."
    return None

