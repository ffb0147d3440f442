"""MI-decomposition metric (Theorem 1, Eq 8) against closed forms, and through dlib's CLIs.

Known answers: a linear-Gaussian encoder q(z|x) = N(W x, D Sigma D) on
x ~ N(0, I), where I(z;x), I(z_j;x), TC(z) and the conditional-independence
term CI = -1/2 log det Sigma are closed-form
(:func:`splitenc_plugin.metrics.mi_decomposition.linear_gaussian_reference`).

Tolerance of the estimates (N = 2000 points, M = 1): 0.15 nats for I(z;x),
sum_j I(z_j;x), TC and the gap, 0.08 nats for each I(z_j;x). Measured on these
three cases over 8 seeds, the largest error was 0.11 nats (I(z;x), whose
estimate with the sample's own encoding in the mixture is biased low by
~0.04 nats at this N); the leave-one-out estimate must lie above the truth and
the standard one below it, within 3 standard errors.
"""

from __future__ import annotations

import json
import math

import gin
import numpy as np
import pytest
from conftest import GIN_DIR, assert_ok, run_script

from splitenc_plugin.errors import ConfigError
from splitenc_plugin.metrics import mi_decomposition as mid
from splitenc_plugin.model.noise import noise_covariance

J, D, N = 4, 6, 2000
LOGVAR = np.array([-1.0, -0.5, -1.5, 0.0])
MATRIX = np.array([[1, .3, 0, 0], [.3, 1, -.2, 0], [0, -.2, 1, .4], [0, 0, .4, 1.]])
NOISES = {"factorized": None, "sigma_0.5": noise_covariance(0.5, J), "matrix": MATRIX}
TOL, TOL_LATENT = 0.15, 0.08


def _weight() -> np.ndarray:
    rs = np.random.RandomState(0)
    weight = rs.randn(J, D) / math.sqrt(D)
    weight[:, :2] += 0.8 * rs.randn(J, 1)  # a shared input direction: TC > 0
    return weight


def _encode(weight: np.ndarray, num: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.RandomState]:
    rs = np.random.RandomState(seed)
    x = rs.randn(num, weight.shape[1])
    return x @ weight.T, np.tile(LOGVAR, (num, 1)), rs


def _half_logdet(sigma: float, num_latent: int) -> float:
    """-1/2 log det Sigma for Eq 13, from the issue's formula."""
    return -0.5 * ((num_latent - 1) * math.log(1 - sigma) + math.log(1 + (num_latent - 1) * sigma))


# --- closed forms ------------------------------------------------------------------------


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_reference_satisfies_theorem_1(noise) -> None:
    ref = mid.linear_gaussian_reference(_weight(), LOGVAR, NOISES[noise])
    assert ref["decomposition_gap"] == pytest.approx(
        ref["total_correlation"] - ref["conditional_independence"], abs=1e-12)
    # Large against the estimator's tolerance, so that an estimate of 0 fails.
    assert ref["total_correlation"] > 3 * TOL and ref["mi_joint"] > 1.0
    if noise == "sigma_0.5":
        assert ref["conditional_independence"] == pytest.approx(_half_logdet(0.5, J), abs=1e-12)
    if noise == "factorized":
        assert ref["conditional_independence"] == 0.0


def test_reference_on_a_hand_worked_two_latent_model() -> None:
    # x ~ N(0, I_2), mu = diag(a, b) x, noise variances v1, v2 with correlation rho:
    # K = [[a^2 + v1, rho sqrt(v1 v2)], [rho sqrt(v1 v2), b^2 + v2]], written out by hand.
    a, b, l1, l2 = 1.5, 0.7, -1.0, 0.3
    v1, v2 = math.exp(l1), math.exp(l2)
    k11, k22 = a * a + v1, b * b + v2
    for rho in (0.0, 0.6):
        ref = mid.linear_gaussian_reference(np.diag([a, b]), np.array([l1, l2]),
                                            np.array([[1.0, rho], [rho, 1.0]]))
        det_k = k11 * k22 - rho * rho * v1 * v2
        assert ref["mi_latent"] == pytest.approx([0.5 * math.log(k11 / v1),
                                                  0.5 * math.log(k22 / v2)], abs=1e-12)
        assert ref["mi_joint"] == pytest.approx(
            0.5 * math.log(det_k / (v1 * v2 * (1 - rho * rho))), abs=1e-12)
        assert ref["total_correlation"] == pytest.approx(
            -0.5 * math.log(1 - rho * rho * v1 * v2 / (k11 * k22)), abs=1e-12)
        assert ref["conditional_independence"] == pytest.approx(
            -0.5 * math.log(1 - rho * rho), abs=1e-12)
    # Factorized noise and orthogonal rows: independent latents, the joint MI is the sum.
    ref = mid.linear_gaussian_reference(np.diag([a, b]), np.array([l1, l2]))
    assert ref["total_correlation"] == pytest.approx(0.0, abs=1e-12)
    assert ref["mi_joint"] == pytest.approx(
        0.5 * math.log(1 + a * a / v1) + 0.5 * math.log(1 + b * b / v2), abs=1e-12)


# --- the estimator against the closed forms -----------------------------------------------


@pytest.mark.parametrize("noise", sorted(NOISES))
def test_estimates_match_closed_form(noise) -> None:
    weight, corr = _weight(), NOISES[noise]
    ref = mid.linear_gaussian_reference(weight, LOGVAR, corr)
    means, logvars, rs = _encode(weight, N, seed=1)
    est = mid.estimate_mi_decomposition(means, logvars, corr, num_samples=1, random_state=rs)
    for key in ("mi_joint", "mi_latent_sum", "total_correlation", "decomposition_gap"):
        assert est[key] == pytest.approx(ref[key], abs=TOL), key
    np.testing.assert_allclose(est["mi_latent"], ref["mi_latent"], atol=TOL_LATENT)
    # Own encoding in the mixture: biased low; leave-one-out: biased high.
    assert est["mi_joint"] - 3 * est["mi_joint_se"] <= ref["mi_joint"]
    assert est["mi_joint_loo"] + 3 * est["mi_joint_loo_se"] >= ref["mi_joint"]
    assert est["mi_joint"] <= est["log_num_points"]
    assert est["num_points"] == N and est["num_samples"] == 1 and est["num_latents"] == J
    # The identity of Eq 8 with the exact CI: residual within Monte-Carlo error.
    assert abs(est["identity_residual"]) <= 4 * est["identity_residual_se"] + 1e-9


def test_factorized_noise_gives_zero_ci() -> None:
    means, logvars, rs = _encode(_weight(), 500, seed=2)
    est = mid.estimate_mi_decomposition(means, logvars, None, num_samples=3, random_state=rs)
    assert est["conditional_independence"] == 0.0
    assert abs(est["conditional_independence_mc"]) < 1e-9
    assert abs(est["identity_residual"]) < 1e-9
    # Theorem 2 (Eq 12): with CI = 0 the gap is TC, sample by sample.
    assert est["decomposition_gap"] == pytest.approx(est["total_correlation"], abs=1e-9)


@pytest.mark.parametrize("sigma", [0.5, 0.9])
def test_correlated_noise_gives_minus_half_logdet(sigma) -> None:
    num_latent = 10
    rs = np.random.RandomState(3)
    means = rs.randn(800, num_latent) * 0.5
    logvars = rs.uniform(-2.0, 0.0, size=(800, num_latent))
    corr = noise_covariance(sigma, num_latent)
    est = mid.estimate_mi_decomposition(means, logvars, corr, num_samples=4, random_state=rs)
    assert est["conditional_independence"] == pytest.approx(_half_logdet(sigma, num_latent), abs=1e-10)
    assert abs(est["conditional_independence_mc"] - est["conditional_independence"]) \
        <= 4 * est["conditional_independence_mc_se"]
    assert abs(est["identity_residual"]) <= 4 * est["identity_residual_se"]


def _naive(means, logvars, corr, num_samples, seed):
    """The estimator written out point by point (scipy densities, no chunking)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal, norm

    num, num_latent = means.shape
    rs = np.random.RandomState(seed)
    white = rs.standard_normal((num, num_samples, num_latent))  # the module's draw order
    eps = white @ np.linalg.cholesky(corr).T
    scale = np.exp(logvars / 2)
    terms = {k: [] for k in ("mi_joint", "mi_joint_loo", "total_correlation", "mi_latent_sum",
                             "conditional_independence_mc")}
    for n in range(num):
        for m in range(num_samples):
            z = means[n] + scale[n] * eps[n, m]
            joint = np.array([multivariate_normal.logpdf(z, means[k], corr * np.outer(scale[k], scale[k]))
                              for k in range(num)])
            latent = norm.logpdf(z[None], means, scale)  # [N, J]
            log_qz = logsumexp(joint) - math.log(num)
            log_qzj = logsumexp(latent, axis=0) - math.log(num)
            terms["mi_joint"].append(joint[n] - log_qz)
            terms["mi_joint_loo"].append(joint[n] - (logsumexp(np.delete(joint, n)) - math.log(num - 1)))
            terms["total_correlation"].append(log_qz - log_qzj.sum())
            terms["mi_latent_sum"].append((latent[n] - log_qzj).sum())
            terms["conditional_independence_mc"].append(joint[n] - latent[n].sum())
    return {k: float(np.mean(v)) for k, v in terms.items()}


@pytest.mark.parametrize("noise", ["factorized", "matrix"])
def test_vectorized_estimator_equals_naive_one(noise) -> None:
    corr = NOISES[noise]
    rs = np.random.RandomState(4)
    means, logvars = rs.randn(25, J), rs.uniform(-3, 1, size=(25, J))
    # A tiny memory budget forces one sample per chunk.
    est = mid.estimate_mi_decomposition(means, logvars, corr, num_samples=2,
                                        random_state=np.random.RandomState(5), max_chunk_bytes=1)
    naive = _naive(means, logvars, np.eye(J) if corr is None else corr, 2, seed=5)
    for key, value in naive.items():
        assert est[key] == pytest.approx(value, abs=1e-9), key


def test_chunking_does_not_change_the_result() -> None:
    means, logvars, _ = _encode(_weight(), 300, seed=6)
    one = mid.estimate_mi_decomposition(means, logvars, MATRIX, 2, np.random.RandomState(7),
                                        max_chunk_bytes=1)
    many = mid.estimate_mi_decomposition(means, logvars, MATRIX, 2, np.random.RandomState(7))
    for key, value in one.items():
        np.testing.assert_allclose(many[key], value, rtol=1e-10, atol=1e-12, err_msg=key)


def test_estimator_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        mid.estimate_mi_decomposition(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ConfigError, match=r"\[N, J\]"):
        mid.estimate_mi_decomposition(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ConfigError, match="non-finite"):
        mid.estimate_mi_decomposition(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="encoder has"):
        mid.estimate_mi_decomposition(np.zeros((5, 3)), np.zeros((5, 3)), MATRIX)


# --- the dlib evaluation function, without dlib ---------------------------------------------


class _GaussianData:
    """Stands in for dlib's GroundTruthData: x ~ N(0, I_D)."""

    def sample_observations(self, num, random_state):
        return random_state.randn(num, D)


def _representation(weight):
    return lambda x: np.concatenate([x @ weight.T, np.tile(LOGVAR, (len(x), 1))], axis=1)


def _model_dir(tmp_path, bindings: str):
    """A postprocessed-representation directory holding an operative train.gin."""
    gin_dir = tmp_path / "rep" / "results" / "gin"
    gin_dir.mkdir(parents=True)
    (gin_dir / "train.gin").write_text(f"import splitenc_plugin\n\n# Parameters for encoder:\n"
                                       f"encoder.num_latent = {J}\n{bindings}\n")
    return str(tmp_path / "rep" / "artifacts" / "mi_decomposition")


def _gin_text(**bindings) -> str:
    """Bindings formatted by gin itself (as dlib writes train.gin)."""
    gin.clear_config()
    try:
        for key, value in bindings.items():
            gin.bind_parameter(key, value)
        return gin.config_str()
    finally:
        gin.clear_config()


@pytest.mark.parametrize("case", ["stock_dlib", "factorized", "sigma", "matrix"])
def test_metric_reads_the_noise_from_the_trained_models_config(case, tmp_path) -> None:
    corr = {"stock_dlib": None, "factorized": None, "sigma": noise_covariance(0.5, J),
            "matrix": MATRIX}[case]
    bindings = {
        "stock_dlib": "",
        "factorized": "reparameterization.noise_fn = @factorized_noise",
        "sigma": "reparameterization.noise_fn = @correlated_noise\ncorrelated_noise.correlation = None\n"
                 "correlated_noise.sigma = 0.5",
        "matrix": "reparameterization.noise_fn = @correlated_noise\ncorrelated_noise.sigma = None\n"
                  + _gin_text(**{"correlated_noise.correlation": MATRIX.tolist()}),
    }[case]
    artifact_dir = _model_dir(tmp_path, bindings)
    weight = _weight()
    result = mid.mi_decomposition(_GaussianData(), _representation(weight), np.random.RandomState(8),
                                  artifact_dir=artifact_dir, num_points=N, batch_size=128)
    ref = mid.linear_gaussian_reference(weight, LOGVAR, corr)
    assert result["noise"] == {"sigma": "correlated sigma=0.5", "matrix": "correlated matrix"}.get(
        case, "factorized")
    assert result["conditional_independence"] == pytest.approx(ref["conditional_independence"], abs=1e-10)
    assert result["num_points"] == N and result["skipped"] == 0
    for key in ("mi_joint", "mi_latent_sum", "total_correlation", "decomposition_gap"):
        assert result[key] == pytest.approx(ref[key], abs=TOL), key
    json.dumps(result)  # dlib stores it as JSON


def test_metric_on_a_mean_only_representation_errors_or_skips(tmp_path) -> None:
    artifact_dir = _model_dir(tmp_path, "")
    weight = _weight()

    def mean_only(x):
        return x @ weight.T

    with pytest.raises(ConfigError, match="mean_logvar.gin.*4 columns.*mean-only"):
        mid.mi_decomposition(_GaussianData(), mean_only, np.random.RandomState(0),
                             artifact_dir=artifact_dir, num_points=100)
    skipped = mid.mi_decomposition(_GaussianData(), mean_only, np.random.RandomState(0),
                                   artifact_dir=artifact_dir, num_points=100,
                                   incompatible_representation="skip")
    assert skipped["skipped"] == 1 and "mean_logvar.gin" in skipped["reason"]


def test_metric_without_a_train_config(tmp_path) -> None:
    rep = _representation(_weight())
    with pytest.raises(ConfigError, match="operative config"):
        mid.mi_decomposition(_GaussianData(), rep, np.random.RandomState(0),
                             artifact_dir=str(tmp_path / "artifacts"), num_points=100)
    result = mid.mi_decomposition(_GaussianData(), rep, np.random.RandomState(0), artifact_dir=None,
                                  num_points=100, noise=0.5)
    assert result["conditional_independence"] == pytest.approx(_half_logdet(0.5, J), abs=1e-12)
    with pytest.raises(ConfigError, match="odd number"):
        mid.mi_decomposition(_GaussianData(), lambda x: x[:, :3], np.random.RandomState(0),
                             num_points=10, noise="factorized")


def test_metric_rejects_an_unknown_noise_fn(tmp_path) -> None:
    artifact_dir = _model_dir(tmp_path, "reparameterization.noise_fn = @my_noise")
    with pytest.raises(ConfigError, match="@my_noise"):
        mid.mi_decomposition(_GaussianData(), _representation(_weight()), np.random.RandomState(0),
                             artifact_dir=artifact_dir, num_points=10)


def test_metric_configs_bind_the_metric(clean_gin) -> None:
    gin.parse_config_file(str(GIN_DIR / "metrics" / "mi_decomposition_study.gin"))
    assert gin.query_parameter("evaluation.evaluation_fn").selector.endswith("mi_decomposition")
    assert gin.query_parameter("mi_decomposition.num_points") == 10000
    assert gin.query_parameter("mi_decomposition.incompatible_representation") == "skip"
    gin.clear_config()
    gin.parse_config_file(str(GIN_DIR / "postprocess" / "mean_logvar.gin"))
    assert gin.query_parameter("postprocess.postprocess_fn").selector.endswith(
        "mean_logvar_representation")


def test_mean_logvar_representation_is_mean_columns_then_logvar_columns() -> None:
    # The metric reads columns 0..J-1 as mu(x) and J..2J-1 as log sigma^2(x);
    # swapped columns would pass every end-to-end check (they are all finite).
    import tensorflow.compat.v1 as tf

    transform, state = mid.mean_logvar_representation(None, None, None, None)
    mean = np.arange(6, dtype=np.float32).reshape(2, 3)
    logvar = -1.0 - np.arange(6, dtype=np.float32).reshape(2, 3)
    with tf.Graph().as_default(), tf.Session() as session:
        out = session.run(transform(tf.constant(mean), tf.constant(logvar)))
    assert state is None
    np.testing.assert_array_equal(out, np.concatenate([mean, logvar], axis=1))


# --- end to end through dlib's console scripts -----------------------------------------------


def test_dlib_evaluate_on_a_briefly_trained_correlated_noise_model(tmp_path) -> None:
    model_dir, rep_dir, out_dir = tmp_path / "model", tmp_path / "mean_logvar", tmp_path / "mi"
    assert_ok(run_script(
        "dlib_train", f"--gin_config={GIN_DIR / 'corrnoise_vae.gin'}", f"--model_dir={model_dir}",
        "--gin_bindings=model.training_steps=3", "--gin_bindings=model.eval_steps=1",
        "--gin_bindings=dataset.name='dummy_data'"))
    assert_ok(run_script("dlib_postprocess", f"--model_dir={model_dir}", f"--output_dir={rep_dir}",
                         f"--gin_config={GIN_DIR / 'postprocess' / 'mean_logvar.gin'}"))
    assert_ok(run_script("dlib_evaluate", f"--input_dir={rep_dir}", f"--output_dir={out_dir}",
                         f"--gin_config={GIN_DIR / 'metrics' / 'mi_decomposition.gin'}",
                         "--gin_bindings=mi_decomposition.num_points=500"))
    result = json.loads((out_dir / "results" / "json" / "evaluation_results.json").read_text())
    scalars = ["mi_joint", "mi_joint_loo", "mi_latent_sum", "mi_latent_sum_loo", "decomposition_gap",
               "decomposition_gap_loo", "total_correlation", "total_correlation_loo",
               "conditional_independence", "conditional_independence_mc", "identity_residual"]
    for key in scalars:
        assert math.isfinite(result[key]) and math.isfinite(result[f"{key}_se"]), key
    for key in ("mi_latent", "mi_latent_se", "mi_latent_loo", "mi_latent_loo_se"):
        assert len(result[key]) == 10, key
    assert result["num_points"] == 500 and result["num_samples"] == 1 and result["num_latents"] == 10
    assert result["log_num_points"] == pytest.approx(math.log(500))
    assert result["noise"] == "correlated sigma=0.9" and result["skipped"] == 0
    assert result["conditional_independence"] == pytest.approx(_half_logdet(0.9, 10), abs=1e-9)
    assert abs(result["identity_residual"]) <= 4 * result["identity_residual_se"]
    # The Monte-Carlo CI (from the trained model's own draws) against the closed form.
    assert abs(result["conditional_independence_mc"] - _half_logdet(0.9, 10)) \
        <= 4 * result["conditional_independence_mc_se"]
