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

What a model was trained with is one :class:`NoiseSetting`, read from the
active gin config (:meth:`NoiseSetting.from_gin`), from dlib's saved
``results/json/train_config.json`` (:meth:`NoiseSetting.from_train_config`) or
from an operative gin file such as ``results/gin/train.gin``
(:meth:`NoiseSetting.from_operative_config`); every reader of the setting (the
preflight check, the MI-decomposition metric, the aggregator) goes through it.

TensorFlow is imported inside the functions, so importing this module (and
``splitenc_plugin``) does not import it.
"""

from __future__ import annotations

import ast
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from splitenc_plugin._gin import (
    bound_in_a_scope,
    bound_value,
    configurable,
    read_operative_config,
    reference_name,
)
from splitenc_plugin.errors import ConfigError

NoiseFn = Callable[..., object]


if TYPE_CHECKING:  # annotations only: importing this module imports no TensorFlow
    import tensorflow as tf

__all__ = [
    "NoiseSetting",
    "correlated_noise",
    "factorized_noise",
    "noise_covariance",
    "preflight",
    "reparameterization",
    "validate_correlation",
    "validate_sigma",
]

# The gin names of the noise setting (dlib's operative config and train_config.json keys).
NOISE_FN_KEY = "reparameterization.noise_fn"
SIGMA_KEY = "correlated_noise.sigma"
CORRELATION_KEY = "correlated_noise.correlation"
NUM_LATENT_KEY = "encoder.num_latent"
_FACTORIZED, _CORRELATED = "factorized_noise", "correlated_noise"
# dlib's aggregated result JSONs prefix the training config's keys with this.
_TRAIN_CONFIG_PREFIX = "train_config."


@configurable("factorized_noise", allowlist=())  # nothing to bind
def factorized_noise(z_mean: tf.Tensor) -> tf.Tensor:
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
      ConfigError: unless sigma is a real number (not a bool or a string) with
        0 <= sigma < 1 (NaN included).
    """
    # A real number only: gin would also carry '0.9' (a string) or True into
    # the operative config, where every reader takes it for another value.
    real = isinstance(sigma, numbers.Real) and not isinstance(sigma, bool)
    value = float(sigma) if real else math.nan
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
def correlated_noise(z_mean: tf.Tensor, sigma: float | None = None,
                     correlation: Sequence[Sequence[float]] | None = None) -> tf.Tensor:
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
    num_latent = z_mean.shape[-1] if z_mean.shape.rank is not None else None
    num_latent = int(num_latent) if num_latent is not None else None
    setting = NoiseSetting.correlated(sigma=sigma, correlation=correlation, num_latent=num_latent)
    import tensorflow.compat.v1 as tf

    if setting.sigma is not None:
        if setting.sigma == 0.0:
            return factorized_noise(z_mean)
        n = tf.random_normal(tf.shape(z_mean), 0, 1)
        n0 = tf.random_normal(tf.stack([tf.shape(z_mean)[0], 1]), 0, 1)
        return math.sqrt(1.0 - setting.sigma) * n + math.sqrt(setting.sigma) * n0
    cholesky = np.linalg.cholesky(setting.covariance(num_latent)).astype(np.float32)
    n = tf.random_normal(tf.shape(z_mean), 0, 1)
    return tf.matmul(n, tf.constant(cholesky.T))


@configurable("reparameterization", allowlist=["noise_fn"])
def reparameterization(z_mean: tf.Tensor, z_logvar: tf.Tensor,
                       noise_fn: NoiseFn = factorized_noise) -> tf.Tensor:
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
    """Sigma = (1 - sigma) I + sigma 11^T (Eq 13), as a numpy array.

    Shorthand for ``NoiseSetting.correlated(sigma=sigma).covariance(num_latent)``.
    """
    return NoiseSetting.correlated(sigma=sigma).covariance(num_latent)


# ---------------------------------------------------------------------------
# The noise setting of a model, read from any record of its config.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseSetting:
    """The reparameterization noise a model samples with (Eq 11 or Eq 13).

    Construct it with :meth:`factorized`, :meth:`correlated` or one of the
    readers (:meth:`from_gin`, :meth:`from_train_config`,
    :meth:`from_operative_config`); the values are validated on construction.

    Attributes:
      kind: ``"factorized"`` (``@factorized_noise``, dlib's noise, Eq 11) or
        ``"correlated"`` (``@correlated_noise``, Eq 13 or a full matrix).
      sigma: Eq 13's correlation weight in [0, 1): 0.0 for factorized noise
        (its covariance is Eq 13's at sigma = 0); None for a full matrix.
      correlation: The full J x J correlation matrix as a tuple of rows, for
        ``correlated_noise.correlation``; None otherwise, and None too for a
        matrix whose values the record does not hold (dlib's
        ``train_config.json`` keeps only the first line of a gin value, and gin
        writes a matrix over several lines): then only ``sigma_or_nan`` and
        ``label`` are known, and :meth:`covariance` raises.
    """

    kind: Literal["factorized", "correlated"]
    sigma: float | None = 0.0
    correlation: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.kind == "factorized":
            if self.sigma != 0.0 or self.correlation is not None:
                raise ConfigError("factorized noise has sigma = 0.0 and no correlation matrix; "
                                  f"got sigma={self.sigma!r}, correlation={self.correlation!r}.")
            object.__setattr__(self, "sigma", 0.0)
            return
        if self.kind != "correlated":
            raise ConfigError(f"NoiseSetting.kind must be 'factorized' or 'correlated', "
                              f"got {self.kind!r}.")
        if self.sigma is not None and self.correlation is not None:
            _check_exactly_one(self.sigma, self.correlation)
        if self.sigma is not None:
            object.__setattr__(self, "sigma", validate_sigma(self.sigma))
        if self.correlation is not None:
            matrix = validate_correlation(self.correlation)
            object.__setattr__(self, "correlation",
                               tuple(tuple(float(x) for x in row) for row in matrix))

    # -- constructors ---------------------------------------------------------

    @classmethod
    def factorized(cls) -> NoiseSetting:
        """dlib's factorized noise, eps ~ N(0, I) (Eq 11)."""
        return cls("factorized")

    @classmethod
    def correlated(cls, sigma: float | None = None,
                   correlation: Sequence[Sequence[float]] | np.ndarray | None = None,
                   num_latent: int | None = None) -> NoiseSetting:
        """``@correlated_noise`` with exactly one of ``sigma`` (Eq 13) and ``correlation``.

        Args:
          sigma: Correlation weight in [0, 1).
          correlation: J x J symmetric positive definite matrix with unit diagonal.
          num_latent: If given, J must equal it.

        Raises:
          ConfigError: if neither or both are given, or a value is invalid
            (naming the ``correlated_noise`` binding).
        """
        _check_exactly_one(sigma, correlation)
        if correlation is not None:
            correlation = validate_correlation(correlation, num_latent)
        return cls("correlated", sigma=sigma, correlation=correlation)

    @classmethod
    def from_gin(cls) -> NoiseSetting:
        """The setting of the active gin config (what the next graph build would use).

        Reads the unscoped bindings of ``reparameterization.noise_fn``
        (unbound: factorized, its default), ``correlated_noise.sigma`` /
        ``.correlation``, and ``encoder.num_latent`` to check a matrix's size.

        Raises:
          ConfigError: on invalid values, or a noise function other than the
            plugin's two.
        """
        return cls._from_values(bound_value(NOISE_FN_KEY), bound_value(SIGMA_KEY),
                                bound_value(CORRELATION_KEY), bound_value(NUM_LATENT_KEY),
                                source="the active gin config")

    @classmethod
    def from_train_config(cls, config: Mapping[str, Any]) -> NoiseSetting:
        """The setting recorded in dlib's saved training config.

        Args:
          config: dlib's ``results/json/train_config.json`` as a dict (keys
            such as ``"reparameterization.noise_fn"``, values as dlib writes
            them: ``"@correlated_noise"``, ``"0.9"``, ``"None"``), or a dlib
            aggregate JSON (``results/aggregate/*.json``), whose keys carry a
            ``"train_config."`` prefix. A config without the noise keys (a
            stock dlib model, or one trained before they were bound) is
            factorized.

        Returns:
          The setting; ``sigma`` is 0.0 for factorized noise, and a full matrix
          gives ``sigma_or_nan`` NaN (its values only if gin wrote it on one line).

        Raises:
          ConfigError: on invalid values, or a noise function other than the
            plugin's two.
        """
        def value(key: str) -> Any:
            text = config.get(key, config.get(_TRAIN_CONFIG_PREFIX + key))
            return _parse_json_value(text)

        return cls._from_values(value(NOISE_FN_KEY), value(SIGMA_KEY), value(CORRELATION_KEY),
                                value(NUM_LATENT_KEY), source="train_config.json",
                                matrix_may_be_missing=True)

    @classmethod
    def from_operative_config(cls, config: str | os.PathLike | Mapping[str, Any]) -> NoiseSetting:
        """The setting recorded in an operative gin config (e.g. ``results/gin/train.gin``).

        Args:
          config: Path of the gin file, or its
            :func:`~splitenc_plugin._gin.read_operative_config` dict.

        Raises:
          ConfigError: on invalid values, or a noise function other than the
            plugin's two.
        """
        bindings = config if isinstance(config, Mapping) else read_operative_config(config)
        return cls._from_values(bindings.get(NOISE_FN_KEY), bindings.get(SIGMA_KEY),
                                bindings.get(CORRELATION_KEY), bindings.get(NUM_LATENT_KEY),
                                source="the operative gin config")

    @classmethod
    def _from_values(cls, noise_fn: Any, sigma: Any, correlation: Any, num_latent: Any,
                     source: str, matrix_may_be_missing: bool = False) -> NoiseSetting:
        name = reference_name(noise_fn)
        if name is None or name == _FACTORIZED:
            return cls.factorized()
        if name != _CORRELATED:
            raise ConfigError(
                f"{source} binds {NOISE_FN_KEY} = @{name}, which is not one of the plugin's "
                f"noise functions (@{_FACTORIZED}, @{_CORRELATED}); its correlation is unknown.")
        # dlib's train_config.json keeps only a matrix's first line (or no
        # key at all): a trained model with sigma None had a matrix.
        if matrix_may_be_missing and sigma is None and correlation in (_UNREADABLE, None):
            return cls("correlated", sigma=None, correlation=None)
        if correlation is _UNREADABLE:
            correlation = None
        return cls.correlated(sigma=sigma, correlation=correlation,
                              num_latent=num_latent if isinstance(num_latent, int) else None)

    # -- what it means --------------------------------------------------------

    @property
    def sigma_or_nan(self) -> float:
        """Eq 13's sigma: 0.0 for factorized noise, NaN for a full matrix."""
        return math.nan if self.sigma is None else self.sigma

    @property
    def label(self) -> str:
        """``"factorized"``, ``"correlated sigma=0.9"`` or ``"correlated matrix"``."""
        if self.kind == "factorized":
            return "factorized"
        return "correlated matrix" if self.sigma is None else f"correlated sigma={self.sigma:g}"

    def covariance(self, num_latent: int | None) -> np.ndarray:
        """The noise covariance Sigma of eps (a correlation matrix), float64 [J, J].

        Identity for factorized noise (Eq 11), (1 - sigma) I + sigma 11^T for
        Eq 13, the matrix itself for a full correlation.

        Args:
          num_latent: J; a full matrix must have this size. May be None only
            for a full matrix (its own size is used).

        Raises:
          ConfigError: if a full matrix does not have J rows, or its values
            were not recorded.
        """
        if self.correlation is not None:
            return validate_correlation(self.correlation, num_latent)
        if self.sigma is None:
            raise ConfigError(
                "this noise setting is a full correlation matrix whose values the record does "
                "not hold (dlib's train_config.json keeps only a gin value's first line); "
                "read it from the model's results/gin/train.gin (NoiseSetting."
                "from_operative_config).")
        if num_latent is None:
            raise ConfigError("the covariance of Eq 13 needs the number of latents "
                              "(encoder.num_latent).")
        return ((1.0 - self.sigma) * np.eye(num_latent)
                + self.sigma * np.ones((num_latent, num_latent)))

    def gin_bindings(self) -> tuple[str, ...]:
        """Gin bindings that select this setting (parse them to train with it).

        Raises:
          ConfigError: for a full matrix whose values were not recorded.
        """
        if self.kind == "factorized":
            return (f"{NOISE_FN_KEY} = @{_FACTORIZED}",)
        if self.sigma is None and self.correlation is None:
            self.covariance(None)  # raises: the matrix is unknown
        correlation = None if self.correlation is None else [list(row) for row in self.correlation]
        return (f"{NOISE_FN_KEY} = @{_CORRELATED}",
                f"{SIGMA_KEY} = {self.sigma!r}",
                f"{CORRELATION_KEY} = {correlation!r}")


# A train_config.json value that is not a Python literal (e.g. the "\\" that
# dlib keeps of a matrix gin wrote over several lines).
_UNREADABLE = object()


def _parse_json_value(text: Any) -> Any:
    """A gin value as dlib's train_config.json stores it (text) -> Python value.

    ``None``/missing -> None, ``"0.9"`` -> 0.9, ``"@correlated_noise"`` ->
    ``"@correlated_noise"`` (a reference stays text); a value that is not a
    Python literal -> ``_UNREADABLE``.
    """
    if not isinstance(text, str):
        return text
    text = text.strip()
    if text.startswith("@"):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _UNREADABLE


def preflight() -> None:
    """Validates the bound noise settings without building a graph.

    Called by the compat layer before dlib loads its dataset, so that a bad
    ``correlated_noise`` binding fails in seconds, not after data loading.
    Bound ``correlated_noise`` values are checked even when another noise
    function is selected; the selected setting is then read as
    :meth:`NoiseSetting.from_gin` reads it (a noise function of the user's own
    is left to the graph build).

    A correlation (``correlated_noise.sigma`` other than 0, or
    ``correlated_noise.correlation``) bound while ``reparameterization.noise_fn``
    is unbound (in every scope) is an error: the model would train with dlib's factorized
    noise and ignore it, the Sec 5.1 baseline in place of the experiment.
    Bound beside an explicit ``@factorized_noise`` it is a choice (a sweep
    over the noise function), and left alone.

    Raises:
      ConfigError: naming the binding and the fix.
    """
    # Unbound (or only in a scope): None, and the graph build decides.
    sigma, correlation = bound_value(SIGMA_KEY), bound_value(CORRELATION_KEY)
    if sigma is not None:
        validate_sigma(sigma)
    if correlation is not None:
        num_latent = bound_value(NUM_LATENT_KEY)
        validate_correlation(correlation, num_latent if isinstance(num_latent, int) else None)
    selected = reference_name(bound_value(NOISE_FN_KEY))
    unselected = selected is None and not bound_in_a_scope(NOISE_FN_KEY)
    if unselected and (correlation is not None or (sigma is not None and sigma != 0)):
        binding = (f"{CORRELATION_KEY} = ..." if correlation is not None
                   else f"{SIGMA_KEY} = {sigma!r}")
        raise ConfigError(
            f"{binding} is bound but {NOISE_FN_KEY} is not, so the model would train with "
            f"dlib's factorized noise and ignore it. Bind {NOISE_FN_KEY} = @{_CORRELATED} "
            "(or include 'splitenc_plugin/fragments/correlated_noise.gin'), or drop the "
            "binding.")
    if selected in (None, _FACTORIZED, _CORRELATED):
        NoiseSetting.from_gin()
