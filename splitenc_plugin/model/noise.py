"""Reparameterization noise for dlib's Gaussian encoders (paper Sec 4.1, 5.1).

dlib samples ``z = mu + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` in
``GaussianEncoderModel.sample_from_latent_distribution``. The compat layer
makes that method delegate to the gin configurable :func:`reparameterization`,
so the noise is chosen in gin::

    reparameterization.noise_fn = @factorized_noise   # default: dlib's own sampler
    reparameterization.noise_fn = @correlated_noise   # Eq 13
    correlated_noise.sigma = 0.9

Factorized noise is what makes the latents conditionally independent given x
(Sec 4.1); correlated noise, eps ~ N(0, Sigma) with
Sigma = (1 - sigma) I + sigma 11^T (Eq 13), deliberately violates that.

Every model that derives from dlib's GaussianEncoderModel (vae, annealed_vae,
factor_vae, dip_vae, beta_tc_vae) and the TF-Hub export's "reconstructions"
signature go through this one method. dlib's "sampled" postprocessing draws its
own factorized noise (an unseeded ``tf.random_normal``) from the exported mean /
log-variance and is not affected.

TensorFlow is imported inside the functions, so importing this module (and
``splitenc_plugin``) does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from splitenc_plugin._gin import configurable
from splitenc_plugin.errors import ConfigError

NoiseFn = Callable[..., object]


@configurable("factorized_noise")
def factorized_noise(z_mean):
    """eps ~ N(0, I): dlib's own noise, op for op (Eq 11).

    Args:
      z_mean: Tensor [batch, num_latent]; only its shape is used.

    Returns:
      Tensor [batch, num_latent] of independent standard normal draws, made by
      the same ``tf.random_normal(tf.shape(z_mean), 0, 1)`` call as dlib, so a
      graph seeded like dlib's draws the same values.
    """
    import tensorflow.compat.v1 as tf

    return tf.random_normal(tf.shape(z_mean), 0, 1)


def validate_sigma(sigma: float) -> float:
    """Returns sigma as a float if it is a valid Eq-13 correlation weight.

    Raises:
      ConfigError: unless 0 <= sigma < 1 (NaN included).
    """
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value < 1.0:  # False for NaN too
        raise ConfigError(
            f"correlated_noise.sigma must be a number in [0, 1) (Eq 13: "
            f"Sigma = (1 - sigma) I + sigma 11^T is singular at 1), got {sigma!r}. "
            "Fix the binding, e.g. correlated_noise.sigma = 0.9."
        )
    return value


def validate_correlation(correlation: Sequence[Sequence[float]] | np.ndarray,
                         num_latent: int | None = None) -> np.ndarray:
    """Checks a full noise correlation matrix and returns it as float64.

    Args:
      correlation: [J, J] matrix; must be symmetric positive definite with unit
        diagonal (a correlation matrix).
      num_latent: If given, J must equal it.

    Returns:
      The matrix as a float64 numpy array.

    Raises:
      ConfigError: naming ``correlated_noise.correlation`` and what is wrong.
    """
    name = "correlated_noise.correlation"
    try:
        matrix = np.asarray(correlation, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a square matrix of numbers: {e}") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        raise ConfigError(f"{name} must be a square J x J matrix, got shape {matrix.shape}.")
    if num_latent is not None and matrix.shape[0] != num_latent:
        raise ConfigError(
            f"{name} is {matrix.shape[0]} x {matrix.shape[0]} but the encoder has "
            f"{num_latent} latents (encoder.num_latent); make them agree."
        )
    problems = []
    if not np.all(np.isfinite(matrix)):
        problems.append("has non-finite entries")
    elif not np.allclose(matrix, matrix.T, atol=1e-8):
        problems.append("is not symmetric")
    elif not np.allclose(np.diag(matrix), 1.0, atol=1e-8):
        problems.append("does not have a unit diagonal")
    else:
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            problems.append("is not positive definite")
    if problems:
        raise ConfigError(
            f"{name} {problems[0]}; it must be a symmetric positive definite "
            "matrix with unit diagonal (a correlation matrix)."
        )
    return matrix


@configurable("correlated_noise", allowlist=["sigma", "correlation"])
def correlated_noise(z_mean, sigma: float | None = None,
                     correlation: Sequence[Sequence[float]] | None = None):
    """eps ~ N(0, Sigma): correlated reparameterization noise (Eq 13).

    With ``sigma``: Sigma = (1 - sigma) I + sigma 11^T, sampled exactly as
    eps = sqrt(1 - sigma) n + sqrt(sigma) n0 1, with n ~ N(0, I_J) and one
    scalar n0 ~ N(0, 1) per example (Cov = (1 - sigma) I + sigma 11^T). n is
    drawn first, exactly like dlib's noise.

    With ``correlation`` (a full J x J correlation matrix C): eps = n L^T with
    L the Cholesky factor of C.

    sigma = 0 builds ``factorized_noise``'s single draw and no n0. In a seeded
    TF1 graph every random op without its own seed takes the graph's count of
    such ops as its seed, so an extra draw here, even at weight 0, would reseed
    every later one (the decoder's and FactorVAE discriminator's initializers,
    FactorVAE's code shuffling). With this shortcut a sigma sweep's sigma = 0
    model is dlib's, value for value.

    Args:
      z_mean: Tensor [batch, num_latent]; only its shape is used.
      sigma: Correlation weight in [0, 1). Bind this or ``correlation``.
      correlation: J x J symmetric positive definite matrix with unit diagonal.

    Returns:
      Tensor [batch, num_latent] of correlated standard normal draws.

    Raises:
      ConfigError: if neither or both are bound, or a value is invalid.
    """
    _check_exactly_one(sigma, correlation)
    import tensorflow.compat.v1 as tf

    if sigma is not None:
        sigma = validate_sigma(sigma)
        if sigma == 0.0:
            return factorized_noise(z_mean)
        n = tf.random_normal(tf.shape(z_mean), 0, 1)
        n0 = tf.random_normal(tf.stack([tf.shape(z_mean)[0], 1]), 0, 1)
        return math.sqrt(1.0 - sigma) * n + math.sqrt(sigma) * n0
    num_latent = z_mean.shape[-1] if z_mean.shape.rank is not None else None
    num_latent = int(num_latent) if num_latent is not None else None
    matrix = validate_correlation(correlation, num_latent)
    cholesky = np.linalg.cholesky(matrix).astype(np.float32)
    n = tf.random_normal(tf.shape(z_mean), 0, 1)
    return tf.matmul(n, tf.constant(cholesky.T))


@configurable("reparameterization", allowlist=["noise_fn"])
def reparameterization(z_mean, z_logvar, noise_fn: NoiseFn = factorized_noise):
    """z = mu + exp(log_var / 2) * eps, with eps from ``noise_fn`` (Eq 11 / 13).

    Replaces dlib's ``GaussianEncoderModel.sample_from_latent_distribution``.
    The ops are created in dlib's order (scale first, then the noise), so with
    ``factorized_noise`` the graph and its seeded values are dlib's.

    Args:
      z_mean: Tensor [batch, num_latent], the encoder's means.
      z_logvar: Tensor [batch, num_latent], the encoder's log-variances.
      noise_fn: ``fn(z_mean) -> eps`` of the same shape.

    Returns:
      Tensor [batch, num_latent] named "sampled_latent_variable", as dlib's.
    """
    import tensorflow.compat.v1 as tf

    scale = tf.exp(z_logvar / 2)
    return tf.add(z_mean, scale * noise_fn(z_mean), name="sampled_latent_variable")


def _check_exactly_one(sigma: float | None, correlation: object | None) -> None:
    if (sigma is None) == (correlation is None):
        raise ConfigError(
            "correlated_noise needs exactly one of correlated_noise.sigma (Eq 13, "
            "e.g. 0.9) or correlated_noise.correlation (a J x J matrix); "
            f"got sigma={sigma!r}, correlation={'set' if correlation is not None else None}. "
            "To use a matrix with a config that binds sigma (fragments/correlated_noise.gin), "
            "also bind correlated_noise.sigma = None."
        )


def noise_covariance(sigma: float, num_latent: int) -> np.ndarray:
    """Sigma = (1 - sigma) I + sigma 11^T (Eq 13), as a numpy array."""
    sigma = validate_sigma(sigma)
    return (1.0 - sigma) * np.eye(num_latent) + sigma * np.ones((num_latent, num_latent))


def preflight() -> None:
    """Validates the bound noise settings without building a graph.

    Called by the compat layer before dlib loads its dataset, so that a bad
    ``correlated_noise`` binding fails in seconds, not after data loading.
    """
    import gin

    def bound(name: str) -> object | None:
        try:
            return gin.query_parameter(name)
        except ValueError:  # unbound (or only in a scope): the graph build decides
            return None

    sigma, correlation = bound("correlated_noise.sigma"), bound("correlated_noise.correlation")
    if sigma is not None:
        validate_sigma(sigma)
    if correlation is not None:
        num_latent = bound("encoder.num_latent")
        validate_correlation(correlation, num_latent if isinstance(num_latent, int) else None)
    noise_fn = bound("reparameterization.noise_fn")
    configurable = getattr(noise_fn, "configurable", None)  # a gin @reference
    if getattr(configurable, "name", None) == "correlated_noise":
        _check_exactly_one(sigma, correlation)
