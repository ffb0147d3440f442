"""Correlated-noise reparameterization (Sec 5.1, Eq 13) against closed-form answers."""

from __future__ import annotations

import math

import disentanglement_lib.methods.shared.architectures  # noqa: F401 - registers encoder.*
import disentanglement_lib.methods.unsupervised.gaussian_encoder_model as gem
import gin
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from conftest import eq13_covariance

from splitenc_plugin.errors import ConfigError
from splitenc_plugin.model import noise

NUM_SAMPLES = 200_000
NUM_LATENT = 6


def _draw(bindings: list[str], batch: int = NUM_SAMPLES, seed: int = 1, logvar: float = 0.0):
    """Samples z through dlib's (patched) sampler under the given gin bindings."""
    gin.parse_config(bindings)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        mean = tf.zeros([batch, NUM_LATENT])
        log_var = tf.fill([batch, NUM_LATENT], logvar)
        z = gem.GaussianEncoderModel.sample_from_latent_distribution(None, mean, log_var)
        with tf.Session() as sess:
            return sess.run(z)


def _dlib_original(seed: int = 1, batch: int = 64):
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        mean = tf.zeros([batch, NUM_LATENT])
        log_var = tf.fill([batch, NUM_LATENT], 0.0)
        original = gem.GaussianEncoderModel.sample_from_latent_distribution.__wrapped__
        z = original(None, mean, log_var)
        with tf.Session() as sess:
            return sess.run(z)


@pytest.mark.parametrize("sigma", [0.0, 0.3, 0.9])
def test_noise_covariance_helper_is_eq13(sigma: float) -> None:
    np.testing.assert_allclose(noise.noise_covariance(sigma, NUM_LATENT),
                               eq13_covariance(sigma, NUM_LATENT), rtol=0, atol=1e-15)


@pytest.mark.parametrize("sigma", [0.3, 0.9])
def test_correlation_matches_eq13(sigma: float, clean_gin) -> None:
    z = _draw(["reparameterization.noise_fn = @correlated_noise", f"correlated_noise.sigma = {sigma}"])
    empirical = np.cov(z, rowvar=False)
    expected = eq13_covariance(sigma, NUM_LATENT)
    assert np.max(np.abs(empirical - expected)) < 0.01


def test_full_correlation_matrix_is_sampled_through_cholesky(clean_gin) -> None:
    rng = np.random.RandomState(3)
    a = rng.normal(size=(NUM_LATENT, NUM_LATENT))
    cov = a @ a.T + NUM_LATENT * np.eye(NUM_LATENT)
    d = np.sqrt(np.diag(cov))
    corr = cov / np.outer(d, d)
    z = _draw(["reparameterization.noise_fn = @correlated_noise",
               f"correlated_noise.correlation = {corr.tolist()}"])
    assert np.max(np.abs(np.cov(z, rowvar=False) - corr)) < 0.01


def test_scale_is_exp_half_logvar(clean_gin) -> None:
    # Var(z) = exp(logvar) * Sigma: logvar = log 4 doubles the standard deviation.
    z = _draw(["reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.5"],
              logvar=math.log(4.0))
    assert np.max(np.abs(np.cov(z, rowvar=False) - 4.0 * eq13_covariance(0.5, NUM_LATENT))) < 0.05


@pytest.mark.parametrize("bindings", [
    [],  # the default is factorized noise
    ["reparameterization.noise_fn = @factorized_noise"],
    ["reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.0"],
])
def test_factorized_and_sigma_zero_reproduce_dlibs_sampler(bindings, clean_gin) -> None:
    ours = _draw(bindings, batch=64)
    assert np.array_equal(ours, _dlib_original(batch=64))


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "'high'"])
def test_invalid_sigma_names_the_binding(bad, clean_gin) -> None:
    value = "nan" if isinstance(bad, float) and math.isnan(bad) else bad
    binding = f"correlated_noise.sigma = {value}" if value != "nan" else None
    if binding is None:
        # gin cannot parse a NaN literal; validate the value a binding would carry.
        with pytest.raises(ConfigError, match=r"correlated_noise\.sigma"):
            noise.validate_sigma(float("nan"))
        return
    with pytest.raises(ConfigError, match=r"correlated_noise\.sigma"):
        _draw(["reparameterization.noise_fn = @correlated_noise", binding], batch=2)
    with pytest.raises(ConfigError, match=r"correlated_noise\.sigma"):
        noise.preflight()


@pytest.mark.parametrize("matrix,problem", [
    ([[1.0, 0.9], [0.9, 1.0]], f"is 2 x 2 but the encoder has {NUM_LATENT} latents"),
    # symmetric and positive definite (eigenvalues 0.5 and 0.5 + 1.5 J), diagonal 2
    ((0.5 * np.eye(NUM_LATENT) + 1.5 * np.ones((NUM_LATENT, NUM_LATENT))).tolist(),
     "does not have a unit diagonal"),
    ((np.eye(NUM_LATENT) + np.triu(np.full((NUM_LATENT, NUM_LATENT), 0.5), 1)).tolist(),
     "is not symmetric"),
    # unit diagonal, symmetric, but eigenvalue 1 + 5 * (-0.5) < 0: not PSD
    ((1.5 * np.eye(NUM_LATENT) - 0.5 * np.ones((NUM_LATENT, NUM_LATENT))).tolist(),
     "is not positive definite"),
])
def test_invalid_correlation_matrix_names_the_binding(matrix, problem, clean_gin) -> None:
    with pytest.raises(ConfigError, match=rf"^correlated_noise\.correlation {problem}"):
        _draw(["reparameterization.noise_fn = @correlated_noise",
               f"correlated_noise.correlation = {matrix}"], batch=2)


def test_correlated_noise_needs_exactly_one_setting(clean_gin) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        _draw(["reparameterization.noise_fn = @correlated_noise"], batch=2)


IDENTITY = np.eye(NUM_LATENT).tolist()


@pytest.mark.parametrize(("bindings", "message"), [
    # Neither setting, with the correlated sampler selected.
    (["reparameterization.noise_fn = @correlated_noise"], "exactly one"),
    # A matrix on top of the shipped fragment's sigma = 0.9: the fix is named.
    (["include 'fragments/correlated_noise.gin'",
      f"correlated_noise.correlation = {IDENTITY}"], r"correlated_noise\.sigma = None"),
    # A matrix that does not match encoder.num_latent (the only place it is known
    # before the graph is built).
    (["reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = None",
      f"encoder.num_latent = {NUM_LATENT + 4}", f"correlated_noise.correlation = {IDENTITY}"],
     rf"is {NUM_LATENT} x {NUM_LATENT} but the encoder has {NUM_LATENT + 4} latents"),
])
def test_preflight_catches_what_the_graph_build_would(bindings, message, clean_gin) -> None:
    gin.parse_config(bindings)
    with pytest.raises(ConfigError, match=message):
        noise.preflight()


@pytest.mark.parametrize("bindings", [
    [],  # dlib's factorized noise: nothing to check
    ["include 'fragments/correlated_noise.gin'", f"encoder.num_latent = {NUM_LATENT}"],
    ["reparameterization.noise_fn = @correlated_noise", f"encoder.num_latent = {NUM_LATENT}",
     f"correlated_noise.correlation = {IDENTITY}"],
])
def test_preflight_passes_valid_settings(bindings, clean_gin) -> None:
    gin.parse_config(bindings)
    noise.preflight()
    if bindings:  # and the graph build agrees
        _draw([], batch=2)


def test_every_dlib_vae_samples_through_the_hook() -> None:
    from disentanglement_lib.methods.unsupervised import vae

    for cls in (vae.BetaVAE, vae.AnnealedVAE, vae.FactorVAE, vae.DIPVAE, vae.BetaTCVAE):
        assert getattr(cls.sample_from_latent_distribution, "_splitenc_patched", False), cls
