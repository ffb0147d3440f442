"""Correlated-noise reparameterization (Sec 5.1, Eq 13) against closed-form answers."""

from __future__ import annotations

import json
import math

import disentanglement_lib.methods.shared.architectures  # noqa: F401 - registers encoder.*
import disentanglement_lib.methods.unsupervised.gaussian_encoder_model as gem
import gin
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from conftest import REPO, eq13_covariance

from splitenc_plugin.errors import ConfigError
from splitenc_plugin.model import noise

NUM_SAMPLES = 200_000
NUM_LATENT = 6


def _draw(bindings: list[str], batch: int = NUM_SAMPLES, seed: int = 1,
          logvar: float | list[float] = 0.0):
    """Samples z through dlib's (patched) sampler under the given gin bindings.

    ``logvar``: one log-variance for every latent, or one per latent.
    """
    gin.parse_config(bindings)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        mean = tf.zeros([batch, NUM_LATENT])
        log_var = tf.broadcast_to(tf.constant(logvar, tf.float32), [batch, NUM_LATENT])
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
    # z = mu + s * eps with s = exp(logvar / 2) per latent: Cov(z) = diag(s) Sigma diag(s).
    # Per-latent scales tell this from scaling before the mixing, z = mu + L (s * n),
    # whose off-diagonals would stay sigma (equal scales cannot tell the two apart).
    scale = np.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0])[:NUM_LATENT]
    z = _draw(["reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.5"],
              logvar=np.log(scale ** 2).tolist())
    expected = np.diag(scale) @ eq13_covariance(0.5, NUM_LATENT) @ np.diag(scale)
    assert np.max(np.abs(np.cov(z, rowvar=False) - expected)) < 0.05


@pytest.mark.parametrize("bindings", [
    [],  # the default is factorized noise
    ["reparameterization.noise_fn = @factorized_noise"],
    ["reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.0"],
])
def test_factorized_and_sigma_zero_reproduce_dlibs_sampler(bindings, clean_gin) -> None:
    ours = _draw(bindings, batch=64)
    assert np.array_equal(ours, _dlib_original(batch=64))


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "'high'", "'0.9'", "True"])
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
    # A correlation with no noise function selected: dlib's noise would train,
    # the experiment silently its own baseline.
    (["correlated_noise.sigma = 0.9"],
     r"correlated_noise\.sigma = 0\.9 is bound but reparameterization\.noise_fn is not"),
    ([f"correlated_noise.correlation = {IDENTITY}"],
     r"correlated_noise\.correlation = \.\.\. is bound but reparameterization\.noise_fn"),
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
    # sigma = 0 is no correlation; factorized noise chosen explicitly is a choice
    # (a sweep over the noise function).
    ["correlated_noise.sigma = 0.0"],
    ["reparameterization.noise_fn = @factorized_noise", "correlated_noise.sigma = 0.9"],
    # The noise function chosen in a scope only: where it applies, the call knows.
    ["s/reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.9"],
    # A macro is followed to its value.
    ["SIGMA = 0.9", "reparameterization.noise_fn = @correlated_noise",
     "correlated_noise.sigma = %SIGMA"],
])
def test_preflight_passes_valid_settings(bindings, clean_gin) -> None:
    gin.parse_config(bindings)
    noise.preflight()
    if bindings:  # and the graph build agrees
        _draw([], batch=2)


# --- NoiseSetting: one reading of a model's noise, from each record of its config ----------

CAMPAIGN = REPO / "docs" / "results" / "campaign" / "correlated_noise_study_v1"
# Job 30 of the committed campaign: corrnoise_factorvae.gin (sigma = 0.9); job 20: factorvae.gin.
CORRELATED_JOB, FACTORIZED_JOB = CAMPAIGN / "30", CAMPAIGN / "20"


def _train_config(job_dir) -> dict:
    return json.loads((job_dir / "model" / "results" / "json" / "train_config.json").read_text())


def test_setting_from_a_campaign_train_config_json() -> None:
    setting = noise.NoiseSetting.from_train_config(_train_config(CORRELATED_JOB))
    assert setting == noise.NoiseSetting("correlated", sigma=0.9)
    assert setting.sigma_or_nan == 0.9 and setting.label == "correlated sigma=0.9"
    factorized = noise.NoiseSetting.from_train_config(_train_config(FACTORIZED_JOB))
    assert factorized == noise.NoiseSetting.factorized()
    assert factorized.sigma == 0.0 and factorized.sigma_or_nan == 0.0
    assert factorized.label == "factorized"


def test_setting_from_dlibs_aggregate_json_with_prefixed_keys() -> None:
    path = CORRELATED_JOB / "metrics" / "mean" / "mig" / "results" / "aggregate" / "evaluation.json"
    record = json.loads(path.read_text())
    assert "train_config.correlated_noise.sigma" in record
    assert noise.NoiseSetting.from_train_config(record).sigma == 0.9


def test_setting_from_a_campaign_operative_config() -> None:
    train_gin = CORRELATED_JOB / "model" / "results" / "gin" / "train.gin"
    assert noise.NoiseSetting.from_operative_config(train_gin).sigma == 0.9
    assert noise.NoiseSetting.from_operative_config(
        FACTORIZED_JOB / "model" / "results" / "gin" / "train.gin").kind == "factorized"


def test_a_stock_dlib_train_config_is_factorized() -> None:
    assert noise.NoiseSetting.from_train_config({"encoder.num_latent": "10"}).sigma_or_nan == 0.0


def test_a_matrix_dlib_wrote_over_several_lines_is_nan_and_not_guessed() -> None:
    # gin writes a 10 x 10 matrix as "correlated_noise.correlation = \" plus lines;
    # dlib's train_config.json keeps the first line only.
    config = {"reparameterization.noise_fn": "@correlated_noise", "correlated_noise.sigma": "None",
              "correlated_noise.correlation": "\\", "encoder.num_latent": "10"}
    setting = noise.NoiseSetting.from_train_config(config)
    assert setting.kind == "correlated" and math.isnan(setting.sigma_or_nan)
    assert setting.label == "correlated matrix"
    with pytest.raises(ConfigError, match="train.gin"):
        setting.covariance(10)
    # A matrix short enough for one line is read.
    config.update({"correlated_noise.correlation": "[[1.0, 0.3], [0.3, 1.0]]",
                   "encoder.num_latent": "2"})
    setting = noise.NoiseSetting.from_train_config(config)
    np.testing.assert_array_equal(setting.covariance(2), [[1.0, 0.3], [0.3, 1.0]])
    assert math.isnan(setting.sigma_or_nan)


@pytest.mark.parametrize("sigma", [0.0, 0.3, 0.9])
def test_setting_covariance_is_eq13_in_closed_form(sigma: float) -> None:
    cov = noise.NoiseSetting.correlated(sigma=sigma).covariance(NUM_LATENT)
    np.testing.assert_allclose(cov, eq13_covariance(sigma, NUM_LATENT), rtol=0, atol=1e-15)
    # Eigenvalues: 1 - sigma (J - 1 times, orthogonal to 1) and 1 + (J - 1) sigma (along 1).
    expected = sorted([1 - sigma] * (NUM_LATENT - 1) + [1 + (NUM_LATENT - 1) * sigma])
    np.testing.assert_allclose(np.linalg.eigvalsh(cov), expected, atol=1e-12)
    np.testing.assert_array_equal(noise.NoiseSetting.factorized().covariance(NUM_LATENT),
                                  np.eye(NUM_LATENT))


@pytest.mark.parametrize("setting", [
    noise.NoiseSetting.factorized(),
    noise.NoiseSetting.correlated(sigma=0.9),
    noise.NoiseSetting.correlated(sigma=0.0),
    noise.NoiseSetting.correlated(correlation=eq13_covariance(0.4, NUM_LATENT)),
], ids=["factorized", "sigma_0.9", "sigma_0", "matrix"])
def test_setting_round_trips_through_gin(setting, clean_gin, tmp_path) -> None:
    gin.parse_config([*setting.gin_bindings(), f"encoder.num_latent = {NUM_LATENT}"])
    assert noise.NoiseSetting.from_gin() == setting
    # and through the operative config that dlib records after the graph build
    _draw([], batch=2)
    train_gin = tmp_path / "train.gin"
    train_gin.write_text(gin.operative_config_str())
    assert noise.NoiseSetting.from_operative_config(train_gin) == setting


def test_setting_rejects_what_gin_would(clean_gin) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        noise.NoiseSetting.correlated()
    with pytest.raises(ConfigError, match=r"correlated_noise\.sigma"):
        noise.NoiseSetting.correlated(sigma=1.0)
    with pytest.raises(ConfigError, match="@my_noise"):
        noise.NoiseSetting.from_train_config({"reparameterization.noise_fn": "@my_noise"})
    gin.parse_config(["reparameterization.noise_fn = @correlated_noise"])
    with pytest.raises(ConfigError, match="exactly one"):
        noise.NoiseSetting.from_gin()
    assert noise.NoiseSetting.correlated(sigma=0.9) != noise.NoiseSetting.correlated(sigma=0.5)
    hash(noise.NoiseSetting.correlated(correlation=np.eye(3)))  # frozen: usable as a key


# --- one source for the paper's sigma ---------------------------------------------------------


def test_the_shipped_fragment_binds_the_papers_sigma(clean_gin) -> None:
    from splitenc_plugin import gin_dir
    from splitenc_plugin.studies.grid import PAPER_SIGMA

    gin.parse_config_file(str(gin_dir() / "fragments" / "correlated_noise.gin"))
    assert gin.query_parameter("correlated_noise.sigma") == PAPER_SIGMA
    assert noise.NoiseSetting.from_gin() == noise.NoiseSetting.correlated(sigma=PAPER_SIGMA)


def test_each_study_config_trains_the_noise_its_grid_point_names(clean_gin) -> None:
    from splitenc_plugin import gin_dir
    from splitenc_plugin.studies.grid import MODEL_CONFIGS

    for (_, _, sigma), config in MODEL_CONFIGS.items():
        gin.clear_config()
        gin.parse_config_file(str(gin_dir() / config), skip_unknown=True)
        assert noise.NoiseSetting.from_gin().sigma_or_nan == sigma, config
