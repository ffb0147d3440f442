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

import pytest
from conftest import GIN_DIR, assert_ok, run_python, run_script

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


_INSTALLED = (
    "import json\n"
    "from disentanglement_lib.data.ground_truth import dsprites, named_data, shapes3d\n"
    "from disentanglement_lib.methods.unsupervised import gaussian_encoder_model as gem, train\n"
    "def marked(fn, name='_splitenc_patched'):\n"
    "    return getattr(fn, name, False)\n"
    "load = named_data.get_named_ground_truth_data\n"
    "out = {'lean': marked(dsprites.DSprites.__init__) and marked(shapes3d.Shapes3D.__init__),\n"
    "       'data_check': marked(load, '_splitenc_data_check'),\n"
    "       'preflight': marked(load, '_splitenc_preflight'),\n"
    "       'noise': marked(gem.GaussianEncoderModel.sample_from_latent_distribution),\n"
    "       'pipeline': marked(train._make_input_fn)}\n"
    "print('RESULT=' + json.dumps(out))\n"
)


@pytest.mark.parametrize("features", ["1", "0"])
def test_data_patches_are_fixes_and_features_follow_their_switch(features) -> None:
    proc = run_python(_INSTALLED, env={"SPLITENC_PLUGIN_FEATURES": features})
    assert_ok(proc)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")][-1]
    on = features == "1"
    assert json.loads(line[len("RESULT="):]) == {
        "lean": True, "data_check": True, "preflight": on, "noise": on, "pipeline": on}
