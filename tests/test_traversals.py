"""Fitted-range traversals (splitenc_plugin.results.traversals) against dlib's definitions.

Known answers: the interval is dlib's ``conf_interval_cycle`` one, recomputed
here by hand; the grid layout is checked with a generator that writes each code
into its image; and with dlib's [-1, 1] values the function reproduces dlib's
own ``traversals{i}.jpg`` pixel for pixel, from the same base codes (dlib's
random stream replayed) on a trained model.
"""

from __future__ import annotations

import math

import gin
import numpy as np
import pytest
from conftest import GIN_DIR, assert_ok, run_script, shared_fixture_group

from splitenc_plugin.results import traversals


def test_interval_is_dlibs_fitted_gaussian_plus_minus_two_sigma() -> None:
    rng = np.random.RandomState(0)
    means = rng.normal(size=(64, 3)) * [1.0, 4.0, 0.1] + [0.0, 2.0, -1.0]
    logvars = rng.normal(size=(64, 3)) - 2.0
    values = traversals.fitted_interval_values(means, logvars, num_values=5)
    assert values.shape == (5, 3)
    for j in range(3):
        column, logvar = list(means[:, j]), list(logvars[:, j])
        loc = sum(column) / 64
        variance = sum(math.exp(v) for v in logvar) / 64 + sum((m - loc) ** 2 for m in column) / 64
        low, high = loc - 2 * math.sqrt(variance), loc + 2 * math.sqrt(variance)
        np.testing.assert_allclose(values[:, j], [low + k * (high - low) / 4 for k in range(5)],
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("means", "logvars", "num_values", "problem"), [
    (np.zeros((4, 2)), np.zeros((4, 3)), 11, "num_points, num_latent"),
    (np.zeros(4), np.zeros(4), 11, "num_points, num_latent"),
    (np.zeros((4, 2)), np.zeros((4, 2)), 1, "at least 2"),
])
def test_interval_rejects_bad_shapes(means, logvars, num_values, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        traversals.fitted_interval_values(means, logvars, num_values)


def test_grid_columns_are_latents_and_rows_are_values() -> None:
    def write_code_into_image(codes: np.ndarray) -> np.ndarray:
        return codes[:, None, :, None]  # one 1 x J image per code: pixel (0, j) = z_j

    base = np.array([0.5, -0.25, 3.0])
    values = np.array([[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]])
    grid = traversals.traversal_grid(write_code_into_image, base, values)
    assert grid.shape == (2, 9, 1)
    for k in range(2):
        for j in range(3):
            expected = base.copy()
            expected[j] = values[k, j]
            np.testing.assert_array_equal(grid[k, 3 * j:3 * j + 3, 0], expected)
    with pytest.raises(ValueError, match="num_values, 3"):
        traversals.traversal_grid(write_code_into_image, base, values[:, :2])


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``trained_model``


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("traversals") / "model"
    assert_ok(run_script(
        "dlib_train", f"--gin_config={GIN_DIR / 'betatcvae.gin'}", f"--model_dir={model_dir}",
        "--gin_bindings=model.training_steps=3", "--gin_bindings=dataset.name='dummy_data'",
        "--gin_bindings=model.eval_steps=1", "--gin_bindings=encoder.num_latent=4",
    ))
    return model_dir


@SHARED_FIXTURE
def test_with_dlibs_values_it_draws_dlibs_own_traversals(trained_model, tmp_path, clean_gin,
                                                         monkeypatch) -> None:
    from disentanglement_lib.visualize import visualize_model
    from PIL import Image

    # Both dlib's visualize and ours call this dlib function with the base code.
    base_codes: list[np.ndarray] = []
    traverse = visualize_model.latent_traversal_1d_multi_dim

    def recording_traverse(generator_fn, latent_vector, *args, **kwargs):
        base_codes.append(np.array(latent_vector))
        return traverse(generator_fn, latent_vector, *args, **kwargs)

    monkeypatch.setattr(visualize_model, "latent_traversal_1d_multi_dim", recording_traverse)
    visualize_model.visualize(str(trained_model), str(tmp_path / "dlib"), num_animations=0,
                              num_points_irs=100)
    gin.clear_config()
    dlib_codes, base_codes[:] = list(base_codes), []

    def dlib_values(means, logvars, num_values=11):
        return np.tile(np.linspace(-1.0, 1.0, num_values)[:, None], (1, means.shape[1]))

    monkeypatch.setattr(traversals, "fitted_interval_values", dlib_values)
    written = traversals.visualize_fitted_traversals(trained_model, tmp_path / "ours")
    assert [p.name for p in written] == [f"traversals{i}.jpg" for i in range(4)]  # one per latent
    # The same inputs: image i starts from dlib's base code i (one call per latent).
    assert len(dlib_codes) == 4 and len(base_codes) == 4 * 4
    for i, code in enumerate(dlib_codes):
        for ours in base_codes[4 * i:4 * i + 4]:
            np.testing.assert_array_equal(ours, code)
    assert not np.array_equal(dlib_codes[0], dlib_codes[1])  # the comparison can fail
    for path in written:
        ours = np.asarray(Image.open(path))
        dlib = np.asarray(Image.open(tmp_path / "dlib" / "traversals" / path.name))
        np.testing.assert_array_equal(ours, dlib)


@SHARED_FIXTURE
def test_fitted_traversals_of_a_trained_model(trained_model, tmp_path, clean_gin,
                                             monkeypatch) -> None:
    from PIL import Image

    encoded = []  # the model's encodings that the range is fitted to
    fit = traversals.fitted_interval_values

    def recording_fit(means, logvars, num_values=11):
        encoded.append((np.array(means), np.array(logvars)))
        return fit(means, logvars, num_values)

    monkeypatch.setattr(traversals, "fitted_interval_values", recording_fit)
    written = traversals.visualize_fitted_traversals(trained_model, tmp_path, num_images=2)
    assert [p.name for p in written] == ["traversals0.jpg", "traversals1.jpg"]
    assert np.asarray(Image.open(written[0])).shape[:2] == (11 * 64, 4 * 64)
    values = np.loadtxt(tmp_path / "values.csv", delimiter=",")
    assert values.shape == (11, 4) and np.all(np.diff(values, axis=0) > 0)
    # values.csv holds the ±2σ range of the fitted Gaussian of those encodings
    # (the closed form is checked above), not dlib's fixed [-1, 1].
    (means, logvars), = encoded
    means, logvars = means.astype(np.float64), logvars.astype(np.float64)
    assert means.shape[1] == logvars.shape[1] == 4 and means.shape[0] > 1
    loc = means.mean(axis=0)
    scale = np.sqrt(np.exp(logvars).mean(axis=0) + means.var(axis=0))
    # values.csv has 6 significant digits.
    np.testing.assert_allclose(values[0], loc - 2 * scale, rtol=1e-5)
    np.testing.assert_allclose(values[-1], loc + 2 * scale, rtol=1e-5)
    assert not np.allclose(values, np.linspace(-1.0, 1.0, 11)[:, None])
