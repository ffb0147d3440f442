"""factor_mig: MIG per factor, its known answers, dlib's MIG on the same points, and the studies."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import gin
import numpy as np
import pytest
from conftest import GIN_DIR, assert_ok, run_python
from disentanglement_lib.data.ground_truth import dummy_data
from disentanglement_lib.evaluation import evaluate  # noqa: F401  (registers dlib's metrics)
from disentanglement_lib.evaluation.metrics import mig

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.metrics.factor_mig import factor_mig, factor_mig_scores
from splitenc_plugin.studies.grid import (
    EVAL_CONFIGS,
    METRIC_REPRESENTATIONS,
    POSTPROCESS_CONFIGS,
    config_name,
    dlib_config_path,
    evaluation_pairs,
    make_job_spec,
)

REPO = Path(__file__).resolve().parents[1]
NUM_TRAIN = 3000


def _identity_discretizer(target, num_bins):
    del num_bins
    return target


@pytest.fixture
def identity_discretizer(clean_gin):
    """dlib's mig_test.py setting: the codes are already discrete."""
    gin.bind_parameter("discretizer.discretizer_fn", _identity_discretizer)
    gin.bind_parameter("discretizer.num_bins", 10)


@pytest.fixture
def mig_config(clean_gin):
    """Our shipped config, parsed: dlib's histogram discretizer with 20 bins."""
    gin.parse_config_file(str(GIN_DIR / "metrics" / "factor_mig.gin"))


def _scores(representation_function, seed: int = 0) -> dict:
    return factor_mig(dummy_data.IdentityObservationsData(), representation_function,
                      np.random.RandomState(seed), None, num_train=NUM_TRAIN)


def test_identity_representation_has_gap_one_for_every_factor(identity_discretizer) -> None:
    scores = _scores(lambda x: x)
    assert scores["num_factors"] == scores["num_latents"] == 10
    gaps = np.array(scores["factor_gap"])
    assert gaps.shape == (10,) and np.all(gaps > 0.97) and np.all(gaps <= 1.0)
    assert scores["discrete_mig"] == pytest.approx(gaps.mean(), abs=0)
    assert 0.97 < scores["discrete_mig"] <= 1.0
    assert scores["best_latent"] == list(range(10))
    np.testing.assert_allclose(scores["best_normalized_mi"], 1.0, atol=1e-12)
    matrix = np.array(scores["mi_matrix"])
    assert matrix.shape == (10, 10)  # [num_factors, num_latents]
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-12)
    assert np.all(matrix[~np.eye(10, dtype=bool)] < 0.03)
    np.testing.assert_allclose(scores["factor_entropy"], math.log(10), atol=0.01)


def test_a_factor_copied_into_two_latents_has_gap_zero(identity_discretizer) -> None:
    scores = _scores(lambda x: np.hstack([x, x[:, 3:4]]))  # latent 10 copies factor 3
    gaps = np.array(scores["factor_gap"])
    assert scores["num_latents"] == 11
    assert gaps[3] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.delete(gaps, 3) > 0.97)
    assert scores["best_latent"][3] in (3, 10)
    matrix = np.array(scores["mi_matrix"])
    assert matrix.shape == (10, 11)
    np.testing.assert_allclose(matrix[3, [3, 10]], 1.0, atol=1e-12)
    assert scores["discrete_mig"] == pytest.approx(gaps.mean(), abs=0)


def test_a_constant_representation_has_no_information(identity_discretizer) -> None:
    scores = _scores(np.zeros_like)
    np.testing.assert_allclose(scores["mi_matrix"], 0.0, atol=1e-12)
    assert scores["discrete_mig"] == pytest.approx(0.0, abs=1e-12)


def _mixed(x):
    """A noisy, entangled representation: MIG strictly between 0 and 1."""
    x = np.asarray(x, dtype=np.float64)
    mixing = np.random.RandomState(7).normal(size=(x.shape[1], 6))
    return x @ mixing + np.random.RandomState(int(x.sum()) % 2**31).normal(size=(len(x), 6))


@pytest.mark.parametrize("representation", [lambda x: x, _mixed], ids=["identity", "mixed"])
def test_discrete_mig_equals_dlibs_mig_on_the_same_points(mig_config, representation) -> None:
    data = dummy_data.IdentityObservationsData()
    ours = factor_mig(data, representation, np.random.RandomState(3), None, num_train=NUM_TRAIN)
    theirs = mig.compute_mig(data, representation, np.random.RandomState(3), None,
                             num_train=NUM_TRAIN)
    assert ours["discrete_mig"] == theirs["discrete_mig"]
    assert ours["discrete_mig"] == np.mean(ours["factor_gap"])
    if representation is _mixed:
        assert 0.0 < ours["discrete_mig"] < 0.9


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(a; b) in nats from the joint histogram of two discrete codes."""
    pairs, joint = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    p_ab = joint / len(a)
    p_a = {v: np.mean(a == v) for v in np.unique(a)}
    p_b = {v: np.mean(b == v) for v in np.unique(b)}
    return float(sum(p * math.log(p / (p_a[x] * p_b[y]))
                     for p, (x, y) in zip(p_ab, pairs.T, strict=True)))


def _mig_by_hand(mus: np.ndarray, ys: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each factor's gap as Chen et al. define MIG, on dlib's equal-width histogram bins."""
    codes = [np.digitize(m, np.histogram(m, num_bins)[1][:-1]) for m in mus]
    gaps = []
    for y in ys:
        mi = sorted((_mutual_information(c, y) for c in codes), reverse=True)
        gaps.append((mi[0] - mi[1]) / _mutual_information(y, y))  # I(y; y) = H(y)
    return np.array(gaps)


def test_scores_on_given_codes_equal_an_independent_computation(mig_config) -> None:
    rng = np.random.RandomState(0)
    ys = rng.randint(4, size=(3, 2000))
    mus = np.vstack([ys + 0.3 * rng.normal(size=ys.shape), rng.normal(size=(2, 2000))])
    ours = factor_mig_scores(mus, ys)
    expected = _mig_by_hand(mus, ys)
    np.testing.assert_allclose(ours["factor_gap"], expected, rtol=1e-9)
    assert ours["discrete_mig"] == pytest.approx(expected.mean(), rel=1e-9)
    assert 0.3 < ours["discrete_mig"] < 1.0  # informative, not saturated: the test can fail
    assert ours["best_latent"] == [0, 1, 2]
    assert np.array(ours["mi_matrix"]).shape == (3, 5)


def test_a_single_latent_is_a_clear_error(mig_config) -> None:
    with pytest.raises(ValueError, match="at least 2 latents"):
        factor_mig_scores(np.zeros((1, 10)), np.zeros((2, 10)))


def test_the_config_has_exactly_dlibs_mig_settings(clean_gin) -> None:
    keys = ("dataset.name", "evaluation.random_seed", "discretizer.num_bins")
    gin.parse_config_file(dlib_config_path("unsupervised_study_v1", "metric_configs", "mig.gin"))
    dlib = {key: gin.query_parameter(key) for key in keys}
    dlib["num_train"] = gin.query_parameter("mig.num_train")
    dlib["discretizer"] = gin.query_parameter("discretizer.discretizer_fn").selector
    gin.clear_config()
    gin.parse_config_file(str(GIN_DIR / "metrics" / "factor_mig.gin"))
    ours = {key: gin.query_parameter(key) for key in keys}
    ours["num_train"] = gin.query_parameter("factor_mig.num_train")
    ours["discretizer"] = gin.query_parameter("discretizer.discretizer_fn").selector
    assert ours == dlib and dlib["discretizer.num_bins"] == 20
    assert gin.query_parameter("evaluation.evaluation_fn").selector.endswith("factor_mig")
    # mig.gin leaves batch_size at its default: ours must have the same one.
    batch = {name: inspect.signature(getattr(fn, "__wrapped__", fn)).parameters["batch_size"]
             .default for name, fn in (("dlib", mig.compute_mig), ("ours", factor_mig))}
    assert batch["dlib"] == batch["ours"] == 16


def test_import_registers_twice_safely_without_tensorflow() -> None:
    proc = run_python(
        "import importlib, sys\n"
        "import splitenc_plugin\n"
        "from splitenc_plugin.metrics import factor_mig as m\n"
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
        "importlib.reload(m)\n"
        "import gin\n"
        "gin.parse_config('evaluation.evaluation_fn = @factor_mig', skip_unknown=['evaluation'])\n"
        "print('OK')\n")
    assert_ok(proc)
    assert proc.stdout.strip().endswith("OK")


# --- The studies: factor_mig on the mean representation, seeds of existing pairs unchanged.

# The committed campaign's seeds (docs/results/campaign/*/*/metrics/*/*/results/
# json/*_config.json): postprocessing by representation, then evaluation pairs.
CAMPAIGN_POSTPROCESS_SEEDS = {"mean": 2357136044, "mean_logvar": 2546248239,
                              "sampled": 3071714933}
CAMPAIGN_EVALUATION_SEEDS = {("mean", "mig"): 3626093760,
                             ("mean_logvar", "mi_decomposition_study"): 2588848963,
                             ("sampled", "mig"): 3684848379}


def job_seeds(postprocess_configs, eval_configs) -> tuple[dict, dict]:
    """The seeds job.run draws: RandomState(0), postprocessing by name, then the pairs."""
    state = np.random.RandomState(0)
    post = {config_name(c): state.randint(2**32)
            for c in sorted(postprocess_configs, key=config_name)}
    pairs = {(config_name(p), config_name(m)): state.randint(2**32)
             for p, m in evaluation_pairs(postprocess_configs, eval_configs)}
    return post, pairs


def test_factor_mig_is_evaluated_on_the_mean_representation_only() -> None:
    assert "plugin:metrics/factor_mig.gin" in EVAL_CONFIGS
    assert METRIC_REPRESENTATIONS["factor_mig"] == ("mean",)
    pairs = [(config_name(p), config_name(m))
             for p, m in evaluation_pairs(POSTPROCESS_CONFIGS, EVAL_CONFIGS)]
    assert pairs == [*CAMPAIGN_EVALUATION_SEEDS, ("mean", "factor_mig")]


def test_adding_factor_mig_keeps_every_existing_pairs_seed() -> None:
    post, pairs = job_seeds(POSTPROCESS_CONFIGS, EVAL_CONFIGS)
    assert post == CAMPAIGN_POSTPROCESS_SEEDS
    assert {k: v for k, v in pairs.items() if k in CAMPAIGN_EVALUATION_SEEDS} == \
        CAMPAIGN_EVALUATION_SEEDS
    # Without it (a job.json of the committed campaign), the same seeds.
    old_configs = tuple(c for c in EVAL_CONFIGS if config_name(c) != "factor_mig")
    assert job_seeds(POSTPROCESS_CONFIGS, old_configs) == (post, CAMPAIGN_EVALUATION_SEEDS)
    # The order of the configs given does not matter.
    assert job_seeds(POSTPROCESS_CONFIGS[::-1], EVAL_CONFIGS[::-1]) == (post, pairs)


def test_a_jobs_seeds_are_the_campaigns_and_metrics_never_move_them() -> None:
    spec = make_job_spec("split_encoder_study_v1", 0, steps=100)
    post, pairs = spec.pipeline_seeds()
    assert {config_name(c): seed for c, seed in post} == CAMPAIGN_POSTPROCESS_SEEDS
    named = {(config_name(p), config_name(m)): seed for p, m, seed in pairs}
    assert list(named) == [*CAMPAIGN_EVALUATION_SEEDS, ("mean", "factor_mig")]
    assert {k: named[k] for k in CAMPAIGN_EVALUATION_SEEDS} == CAMPAIGN_EVALUATION_SEEDS
    # --metrics mig: the two MIG pairs only, each with the full run's seed.
    only_mig = make_job_spec("split_encoder_study_v1", 0, steps=100, metrics=["mig"])
    assert only_mig.identity()["metrics"] == ["mig"] and "metrics" not in spec.identity()
    # Jobs restricted before the seeds were kept (identity without this key) are not these.
    assert only_mig.identity()["metric_seeds"] == "full_run"
    assert only_mig.pipeline_seeds() == (post, [p for p in pairs if config_name(p[1]) == "mig"])
    with pytest.raises(SplitencUserError, match="not a metric of split_encoder_study_v1 "
                       r"\(its metrics: factor_mig, mi_decomposition_study, mig\)"):
        make_job_spec("split_encoder_study_v1", 0, metrics=["mig", "dci"])


def test_campaign_results_used_the_pinned_seeds() -> None:
    configs = sorted((REPO / "docs" / "results" / "campaign").glob(
        "*/*/metrics/*/*/results/json/evaluation_config.json"))
    if not configs:
        pytest.skip("no committed campaign results in this checkout")
    for path in configs:
        rep, metric = path.parts[-5], path.parts[-4]
        seed = int(json.loads(path.read_text())["evaluation.random_seed"])
        assert seed == CAMPAIGN_EVALUATION_SEEDS[(rep, metric)], path


def test_dlib_reproduce_study_lists_factor_mig() -> None:
    from splitenc_plugin.studies.dlib_studies import STUDIES

    files = STUDIES["split_encoder_study_v1"].get_eval_config_files()
    assert str(GIN_DIR / "metrics" / "factor_mig.gin") in files
    assert all(Path(f).is_file() for f in files)
