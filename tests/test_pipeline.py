"""The vectorized input pipeline: same distribution as dlib's, the right images, the gin switch.

Runs on a small procedural dSprites subset (written to a temporary data root)
and on dlib's dummy_data, so nothing here needs the full 3 GB dataset.
"""

from __future__ import annotations

import types

import disentanglement_lib.data.ground_truth.dsprites as dlib_dsprites
import gin
import numpy as np
import pytest
import scipy.stats
import tensorflow.compat.v1 as tf
from conftest import GIN_DIR, assert_ok, run_python, run_script, shared_fixture_group
from disentanglement_lib.data.ground_truth import dummy_data

from splitenc_plugin import compat
from splitenc_plugin.data import dsprites
from splitenc_plugin.errors import ConfigError
from splitenc_plugin.model import pipeline

# Several values per factor, so that the chi-square tests have bins to compare.
SUBSET = {"scale": [0, 2, 5], "orientation": [0, 7, 13, 39], "posX": [0, 5, 17, 31],
          "posY": [1, 9, 30]}
NUM_BATCHES = 200
BATCH = 64
# Fixed seeds: the tests are deterministic; the threshold only says how
# unlikely a deviation this large would be under the null hypothesis.
P_MIN = 1e-3


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``subset_dsprites``


@pytest.fixture(scope="module")
def subset_dsprites(tmp_path_factory):
    """dlib's DSprites class reading a procedural subset file."""
    root = tmp_path_factory.mktemp("data")
    path = dsprites.generate_dsprites(str(root), subset=SUBSET)
    original = dlib_dsprites.DSPRITES_PATH
    dlib_dsprites.DSPRITES_PATH = path  # read by DSprites.__init__ at call time
    try:
        data = dlib_dsprites.DSprites(list(range(1, 6)))
    finally:
        dlib_dsprites.DSPRITES_PATH = original
    return data


def _dlib_generator_factors(data, count: int, seed: int) -> np.ndarray:
    """Factors exactly as dlib's generator draws them: ``sample(1, random_state)`` per image."""
    random_state = np.random.RandomState(seed)
    return np.concatenate([data.sample(1, random_state)[0] for _ in range(count)])


def _vectorized_factors(data, count: int, seed: int) -> np.ndarray:
    random_state = np.random.RandomState(seed)
    return np.concatenate([pipeline.sample_batch(data, BATCH, random_state)[0]
                           for _ in range(count // BATCH)])


def _histograms(factors: np.ndarray, sizes) -> list[np.ndarray]:
    return [np.bincount(factors[:, j], minlength=size) for j, size in enumerate(sizes)]


def _assert_same_distribution(data, sizes) -> None:
    count = NUM_BATCHES * BATCH
    ours = _histograms(_vectorized_factors(data, count, seed=1), sizes)
    dlibs = _histograms(_dlib_generator_factors(data, count, seed=2), sizes)
    for j, (a, b) in enumerate(zip(ours, dlibs)):
        assert a.sum() == b.sum() == count
        # Two-sample test (contingency table ours vs dlib's) and both against uniform.
        _, p_two_sample, _, _ = scipy.stats.chi2_contingency(np.stack([a, b]))
        assert p_two_sample > P_MIN, f"factor {j}: {a} vs dlib {b} (p={p_two_sample:.2g})"
        for name, hist in (("vectorized", a), ("dlib", b)):
            p_uniform = scipy.stats.chisquare(hist).pvalue
            assert p_uniform > P_MIN, f"factor {j} ({name}) not uniform: {hist}"


def test_importing_pipeline_does_not_import_tensorflow() -> None:
    proc = run_python("import sys, splitenc_plugin.model.pipeline\n"
                      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    assert_ok(proc)


@SHARED_FIXTURE
def test_dsprites_factor_distribution_matches_dlibs(subset_dsprites) -> None:
    sizes = [int(s) for s in subset_dsprites.factor_sizes[1:]]
    assert sizes == [3, 3, 4, 4, 3]
    _assert_same_distribution(subset_dsprites, sizes)


def test_dummy_data_factor_distribution_matches_dlibs() -> None:
    data = dummy_data.DummyData()
    _assert_same_distribution(data, data.factors_num_values)


@SHARED_FIXTURE
def test_the_chi_square_check_detects_a_biased_sampler(subset_dsprites) -> None:
    # Power check: a sampler that never draws a factor's last value must fail.
    class Biased:
        def sample(self, num, random_state):
            factors = subset_dsprites.sample_factors(num, random_state)
            factors[:, 2] = random_state.randint(3, size=num)  # orientation: 4 values
            return factors, None

    biased = Biased()
    random_state = np.random.RandomState(1)
    ours = np.concatenate([biased.sample(BATCH, random_state)[0] for _ in range(NUM_BATCHES)])
    dlibs = _dlib_generator_factors(subset_dsprites, NUM_BATCHES * BATCH, seed=2)
    table = np.stack([np.bincount(ours[:, 2], minlength=4), np.bincount(dlibs[:, 2], minlength=4)])
    assert scipy.stats.chi2_contingency(table)[1] < 1e-6


@SHARED_FIXTURE
def test_observations_are_the_images_of_the_drawn_factors(subset_dsprites) -> None:
    factors, observations = pipeline.sample_batch(subset_dsprites, 256, np.random.RandomState(3))
    assert observations.shape == (256, 64, 64, 1)
    # Independent reference: render the full-grid classes of the drawn subset classes.
    names = dsprites.LATENT_NAMES[1:]
    full = [np.asarray(SUBSET.get(name, range(size)))[factors[:, j]]
            for j, (name, size) in enumerate(zip(names, dsprites.LATENT_SIZES[1:]))]
    np.testing.assert_array_equal(observations[..., 0], dsprites.render(*full))
    # And dlib's own mapping factors -> observation, value for value.
    expected = subset_dsprites.sample_observations_from_factors(factors, np.random.RandomState(0))
    np.testing.assert_array_equal(observations.astype(np.float32), expected)


@SHARED_FIXTURE
@pytest.mark.parametrize("which", ["dsprites", "dummy"])
def test_sample_batch_is_dlibs_sample(subset_dsprites, which) -> None:
    # Same calls in the same order as dlib's sample(): same values for the same state.
    data = subset_dsprites if which == "dsprites" else dummy_data.DummyData()
    ours_f, ours_x = pipeline.sample_batch(data, 50, np.random.RandomState(7))
    dlib_f, dlib_x = data.sample(50, np.random.RandomState(7))
    np.testing.assert_array_equal(ours_f, dlib_f)
    np.testing.assert_array_equal(ours_x.astype(np.float32), np.asarray(dlib_x, np.float32))
    assert ours_x.dtype == (np.uint8 if which == "dsprites" else np.float32)


@SHARED_FIXTURE
@pytest.mark.parametrize("which", ["dsprites", "dummy"])
def test_tf_dataset_yields_the_sampled_batches(subset_dsprites, which) -> None:
    data = subset_dsprites if which == "dsprites" else dummy_data.DummyData()
    batch, per_call, count = 16, 4, 6
    expected = []
    for chunk in pipeline.vectorized_chunks(data, 11, batch, per_call):
        expected.extend(chunk.astype(np.float32))
        if len(expected) >= count:
            break
    with tf.Graph().as_default():
        dataset = pipeline.vectorized_dataset(data, 11, batch, prefetch_batches=2,
                                              num_batches=count, batches_per_call=per_call)
        assert dataset.element_spec.shape.as_list() == [batch, 64, 64, 1]
        assert dataset.element_spec.dtype == tf.float32
        next_batch = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session() as session:
            got = [session.run(next_batch) for _ in range(count)]
            with pytest.raises(tf.errors.OutOfRangeError):
                session.run(next_batch)  # take(num_batches), as dlib's evaluation
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# The gin switch and the hook into dlib's train module
# ---------------------------------------------------------------------------
def _fake_train_module() -> types.ModuleType:
    module = types.ModuleType("fake_train")
    module.calls = []

    def _make_input_fn(ground_truth_data, seed, num_batches=None):
        module.calls.append((ground_truth_data, seed, num_batches))
        return "dlib input_fn"

    module._make_input_fn = _make_input_fn
    return module


def test_switch_off_by_default_calls_dlibs_input_fn(clean_gin) -> None:
    module = _fake_train_module()
    compat.patch_input_pipeline(module)
    compat.patch_input_pipeline(module)  # idempotent
    data = object()
    assert module._make_input_fn(data, 5, num_batches=3) == "dlib input_fn"
    assert module._make_input_fn(data, 6) == "dlib input_fn"
    assert module.calls == [(data, 5, 3), (data, 6, None)]
    # Unbound, the configurable is not called: nothing extra in dlib's saved config.
    assert "input_pipeline" not in gin.operative_config_str()


def test_switch_off_explicitly_calls_dlibs_input_fn(clean_gin) -> None:
    gin.parse_config("input_pipeline.vectorized = False")
    module = _fake_train_module()
    compat.patch_input_pipeline(module)
    assert module._make_input_fn(object(), 5) == "dlib input_fn"


def test_switch_on_builds_the_vectorized_input_fn(clean_gin) -> None:
    gin.parse_config(["input_pipeline.vectorized = True", "input_pipeline.prefetch_batches = 2"])
    module = _fake_train_module()
    compat.patch_input_pipeline(module)
    data = dummy_data.DummyData()
    input_fn = module._make_input_fn(data, 5, num_batches=2)
    assert module.calls == []
    with tf.Graph().as_default():
        features = input_fn({"batch_size": 8})
        assert features.shape.as_list() == [8, 64, 64, 1]
        assert features.dtype == tf.float32
        with tf.Session() as session:
            session.run(features)
    assert "input_pipeline.vectorized = True" in gin.operative_config_str()


@pytest.mark.parametrize("binding", ["input_pipeline.vectorized = 'yes'",
                                     "input_pipeline.prefetch_batches = 0",
                                     "input_pipeline.prefetch_batches = 1.5"])
def test_invalid_bindings_raise_config_errors(clean_gin, binding) -> None:
    gin.parse_config(binding)
    with pytest.raises(ConfigError, match="input_pipeline"):
        pipeline.preflight()


def test_dlib_train_with_the_switch_on(tmp_path, clean_gin) -> None:
    """dlib's own train_with_gin, with the hook installed, trains on the vectorized pipeline."""
    from disentanglement_lib.methods.unsupervised import train

    compat.patch_input_pipeline(train)  # what the compat layer does at import
    model_dir = tmp_path / "model"
    train.train_with_gin(str(model_dir), gin_config_files=[str(GIN_DIR / "vae.gin")],
                         gin_bindings=["model.training_steps = 5", "model.eval_steps = 2",
                                       "dataset.name = 'dummy_data'",
                                       "input_pipeline.vectorized = True"])
    assert (model_dir / "tfhub" / "saved_model.pb").is_file()
    saved = (model_dir / "results" / "gin" / "train.gin").read_text()
    assert "input_pipeline.vectorized = True" in saved


def test_dlib_train_console_script_honours_the_switch(tmp_path) -> None:
    """Needs the compat hook that patches dlib's train module at import."""
    model_dir = tmp_path / "model"
    proc = run_script("dlib_train", f"--gin_config={GIN_DIR / 'vae.gin'}",
                      f"--model_dir={model_dir}", "--gin_bindings=model.training_steps=3",
                      "--gin_bindings=model.eval_steps=1",
                      "--gin_bindings=dataset.name='dummy_data'",
                      "--gin_bindings=input_pipeline.vectorized=True")
    assert_ok(proc)
    saved = (model_dir / "results" / "gin" / "train.gin").read_text()
    assert "input_pipeline.vectorized = True" in saved, "the compat hook is not installed"
