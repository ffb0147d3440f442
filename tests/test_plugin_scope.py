"""The plugin changes only runs that ask for it; the compat fixes apply to every dlib run.

A stock dlib config (dlib's own ``unsupervised_study_v1`` VAE config, which never
imports ``splitenc_plugin``) trained with the plugin installed must record the
same operative gin config as stock dlib. The reference is a process with only
the compat fixes (``SPLITENC_PLUGIN_FEATURES=0``: none of the plugin's feature
patches installed; dlib cannot run on this Python without the fixes at all).
The data patches (the data-file check and the lean loaders, which give dlib's
pixels) are fixes: they apply with and without the features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import GIN_DIR, assert_ok, run_python, run_python_file, run_script

from splitenc_plugin.data import dsprites
from splitenc_plugin.studies.grid import dlib_config_path

STOCK_CONFIG = dlib_config_path("unsupervised_study_v1", "model_configs", "shared.gin")
TINY = ["dataset.name = 'dummy_data'", "model.training_steps = 2", "model.eval_steps = 1"]


def _operative_config(model_dir: Path) -> str:
    return (model_dir / "results" / "gin" / "train.gin").read_text()


def test_stock_config_records_stock_dlibs_operative_config(tmp_path) -> None:
    # Reference: compat fixes only, through dlib's own console script.
    reference_dir = tmp_path / "reference"
    assert_ok(run_script("dlib_train", f"--model_dir={reference_dir}",
                         f"--gin_config={STOCK_CONFIG}",
                         *(f"--gin_bindings={b}" for b in TINY),
                         env={"SPLITENC_PLUGIN_FEATURES": "0"}))
    reference = _operative_config(reference_dir)
    assert "model.model = @vae()" in reference
    assert "splitenc" not in reference and "reparameterization" not in reference

    # With the plugin's features, in one process: a plugin config first (it
    # imports splitenc_plugin), then the stock config; and the stock config
    # through dlib's console script in a fresh process.
    plugin_dir, stock_after_plugin_dir = tmp_path / "plugin", tmp_path / "stock_after_plugin"
    assert_ok(run_python(
        "from disentanglement_lib.methods.unsupervised import train\n"
        f"bindings = {TINY!r}\n"
        f"train.train_with_gin({str(plugin_dir)!r}, False, [{str(GIN_DIR / 'vae.gin')!r}], "
        "bindings)\n"
        f"train.train_with_gin({str(stock_after_plugin_dir)!r}, False, [{STOCK_CONFIG!r}], "
        "bindings)\n"))
    stock_dir = tmp_path / "stock"
    assert_ok(run_script("dlib_train", f"--model_dir={stock_dir}", f"--gin_config={STOCK_CONFIG}",
                         *(f"--gin_bindings={b}" for b in TINY)))

    assert _operative_config(stock_dir) == reference
    assert _operative_config(stock_after_plugin_dir) == reference
    # The config that asks for the plugin gets its noise routing.
    plugin = _operative_config(plugin_dir)
    assert "import splitenc_plugin" in plugin
    assert "# Parameters for reparameterization:" in plugin
    assert "# Parameters for factorized_noise:" in plugin


def test_plugin_binding_without_import_still_routes_the_noise(tmp_path) -> None:
    # A stock config plus a binding of a plugin configurable asks for the plugin.
    model_dir = tmp_path / "model"
    assert_ok(run_script("dlib_train", f"--model_dir={model_dir}", f"--gin_config={STOCK_CONFIG}",
                         *(f"--gin_bindings={b}" for b in TINY),
                         "--gin_bindings=reparameterization.noise_fn = @correlated_noise",
                         "--gin_bindings=correlated_noise.sigma = 0.5"))
    config = _operative_config(model_dir)
    assert "reparameterization.noise_fn = @correlated_noise" in config
    assert "correlated_noise.sigma = 0.5" in config
    results = json.loads((model_dir / "results" / "json" / "train_results.json").read_text())
    assert results["global_step"] == 2


PROBE = Path(__file__).parent / "probes" / "plugin_scope.py"


def _stock_first_batch(seed: int) -> np.ndarray:
    """dlib's generator: one ``sample_observations(1, random_state)`` per image."""
    random_state = np.random.RandomState(seed)
    images = []
    for _ in range(64):
        random_state.randint(5, size=(1, 10))  # DummyData.sample_factors
        images.append(random_state.random_sample(size=(1, 64, 64, 1))[0])
    return np.asarray(images, np.float32)


def _vectorized_first_batch(seed: int) -> np.ndarray:
    """The vectorized pipeline: 8 batches of 64 drawn in one ``sample(512, random_state)``."""
    random_state = np.random.RandomState(seed)
    random_state.randint(5, size=(512, 10))
    return random_state.random_sample(size=(512, 64, 64, 1))[:64].astype(np.float32)


@pytest.fixture(scope="module")
def dsprites_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scope_data")
    dsprites.generate_dsprites(str(root), subset={
        "shape": [0], "scale": [0], "orientation": [0], "posX": [0, 31], "posY": [0]})
    return root


@pytest.mark.parametrize("features", ["1", "0"])
def test_data_patches_are_fixes_and_features_follow_their_switch(
        tmp_path, dsprites_root, features) -> None:
    batch_file = tmp_path / "batch.npy"
    proc = run_python_file(PROBE, str(batch_file),
                           env={"SPLITENC_PLUGIN_FEATURES": features,
                                "DISENTANGLEMENT_LIB_DATA": str(dsprites_root),
                                "SPLITENC_DATA_CACHE": "0"})
    assert_ok(proc)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")][-1]
    out = json.loads(line[len("RESULT="):])
    on = features == "1"
    # Fixes, either way: lean (bit-packed) dSprites, and a missing dataset is the
    # plugin's one-line error naming its files instead of dlib's traceback.
    assert out["lean"] is True
    assert out["missing_data"] == "DatasetUnavailableError"
    # Preflight: a bad plugin setting is caught before the data files are looked at.
    for bad in ("bad_sigma_then_missing_data", "bad_encoder_then_missing_data"):
        assert out[bad] == ("ConfigError" if on else "DatasetUnavailableError")
    # Noise routing: dlib's VAE samples Eq 13's noise (corr = sigma = 0.9) or its own.
    correlation = np.asarray(out["noise_correlation"])
    np.testing.assert_allclose(correlation, 0.9 if on else 0.0, atol=0.03)
    # The input-pipeline switch: the vectorized stream, or dlib's per-image one.
    expected = _vectorized_first_batch(7) if on else _stock_first_batch(7)
    np.testing.assert_array_equal(np.load(batch_file), expected)
