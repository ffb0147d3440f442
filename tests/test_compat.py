"""The import-time compat layer: what each patch promises, checked against known answers."""

from __future__ import annotations

import json

import pytest
from conftest import assert_ok, run_python, run_script


def _probe(code: str, env: dict | None = None) -> dict:
    proc = run_python(code + "\nimport json as _j; print('RESULT=' + _j.dumps(out))", env=env)
    assert_ok(proc)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])


def test_start_up_hook_is_dormant_until_dlib_is_imported() -> None:
    out = _probe(
        "import sys\n"
        "out = {'watcher': type(sys.meta_path[0]).__name__,\n"
        "       'loaded': sorted(m for m in ('tensorflow', 'gin', 'splitenc_plugin', 'numpy')\n"
        "                        if m in sys.modules)}"
    )
    assert out == {"watcher": "DlibImportWatcher", "loaded": []}


def test_import_splitenc_plugin_does_not_import_tensorflow() -> None:
    out = _probe(
        "import sys, splitenc_plugin\n"
        "out = {'tf': 'tensorflow' in sys.modules, 'dlib': 'disentanglement_lib' in sys.modules}"
    )
    assert out == {"tf": False, "dlib": False}


def test_the_aggregator_reads_jobs_without_tensorflow_or_the_compat_layer() -> None:
    out = _probe(
        "import sys, splitenc_plugin.results.aggregate\n"
        "out = sorted(m for m in ('tensorflow', 'disentanglement_lib', 'splitenc_plugin.compat',\n"
        "                         'splitenc_plugin.sweep.job') if m in sys.modules)"
    )
    assert out == []


def test_without_the_layer_dlib_fails_at_import_as_documented() -> None:
    proc = run_python("import disentanglement_lib.methods.unsupervised.train",
                      env={"SPLITENC_PLUGIN_DISABLE": "1"})
    assert proc.returncode != 0
    assert "unexpected keyword argument 'whitelist'" in proc.stderr


@pytest.mark.parametrize(("value", "stock"), [("true", True), ("OFF", False)])
def test_the_disable_switch_reads_the_words_every_switch_reads(value, stock) -> None:
    proc = run_python("import disentanglement_lib.methods.unsupervised.train",
                      env={"SPLITENC_PLUGIN_DISABLE": value})
    assert (proc.returncode != 0) == stock, proc.stderr
    assert ("unexpected keyword argument 'whitelist'" in proc.stderr) == stock


def test_a_bad_disable_switch_is_one_line_and_dlib_stays_patched() -> None:
    proc = run_python("import disentanglement_lib.methods.unsupervised.train",
                      env={"SPLITENC_PLUGIN_DISABLE": "maybe"})
    assert_ok(proc)
    lines = [line for line in proc.stderr.splitlines() if "SPLITENC_PLUGIN_DISABLE" in line]
    assert len(lines) == 1 and "'maybe'" in lines[0] and "1 (on) or 0 (off)" in lines[0]


@pytest.mark.parametrize(("switch", "value"), [
    ("SPLITENC_PLUGIN_FEATURES", "maybe"), ("SPLITENC_PLUGIN_FEATURES", "2"),
    ("SPLITENC_DETERMINISTIC", "maybe"),  # read before dlib imports TensorFlow
])
def test_a_bad_switch_stops_dlib_train_with_one_line(tmp_path, switch, value) -> None:
    proc = run_script("dlib_train", f"--model_dir={tmp_path / 'model'}",
                      "--gin_bindings=dataset.name = 'dummy_data'", env={switch: value})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        (f"error: ${switch}='{value}' is not a switch; set it to 1 (on) "
         "or 0 (off), or unset it")]
    assert not (tmp_path / "model").exists()


def test_splitenc_traceback_shows_the_traceback_of_a_user_error(tmp_path) -> None:
    proc = run_script("dlib_train", f"--model_dir={tmp_path / 'model'}",
                      "--gin_bindings=dataset.name = 'dummy_data'",
                      env={"SPLITENC_DETERMINISTIC": "maybe", "SPLITENC_TRACEBACK": "1"})
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "splitenc_plugin.errors.ConfigError: $SPLITENC_DETERMINISTIC='maybe' is not a switch")


@pytest.mark.parametrize(("value", "deterministic", "lean"), [
    (None, False, True), ("", False, True), (" On ", True, True), ("yes", True, True),
    ("FALSE", False, False), ("no", False, False), ("0", False, False)])
def test_switches_share_one_reading(monkeypatch, value, deterministic, lean) -> None:
    from splitenc_plugin.compat.determinism import DETERMINISTIC_ENV, deterministic_mode
    from splitenc_plugin.data import lean_data

    for name in (DETERMINISTIC_ENV, lean_data.ENV_VAR):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert deterministic_mode() is deterministic
    assert lean_data.enabled() is lean


def test_a_bad_switch_value_is_a_user_error_naming_it(monkeypatch) -> None:
    from splitenc_plugin.data import lean_data
    from splitenc_plugin.errors import SplitencUserError

    monkeypatch.setenv(lean_data.ENV_VAR, "2")
    with pytest.raises(SplitencUserError, match=r"\$SPLITENC_LEAN_DATA='2' is not a switch"):
        lean_data.enabled()


def test_dlib_modules_import_and_contrib_maps_to_tf_estimator() -> None:
    out = _probe(
        "import disentanglement_lib.methods.unsupervised.train\n"
        "import disentanglement_lib.utils.convolute_hub\n"
        "import disentanglement_lib.evaluation.abstract_reasoning.reason\n"
        "import tensorflow as tf\n"
        "from tensorflow.contrib import tpu, framework\n"
        "import tf_slim\n"
        "est = tf.compat.v1.estimator.tpu\n"
        "out = {\n"
        "  'tpu': [getattr(tpu, n) is getattr(est, n) for n in\n"
        "          ('TPUEstimator', 'TPUEstimatorSpec', 'RunConfig', 'TPUConfig')],\n"
        "  'framework': framework.assign_from_checkpoint_fn is tf_slim.assign_from_checkpoint_fn,\n"
        "  'eager': tf.executing_eagerly(),\n"
        "}"
    )
    assert out == {"tpu": [True] * 4, "framework": True, "eager": False}


def test_gin_accepts_dlibs_whitelist_and_enforces_it() -> None:
    out = _probe(
        "import disentanglement_lib\n"
        "import gin\n"
        "def f(a=1, b=2):\n"
        "    return a, b\n"
        "g = gin.configurable('compat_probe_fn', whitelist=['a'])(f)\n"
        "gin.bind_parameter('compat_probe_fn.a', 5)\n"
        "try:\n"
        "    gin.bind_parameter('compat_probe_fn.b', 7)\n"
        "    blocked = False\n"
        "except ValueError:\n"
        "    blocked = True\n"
        "out = {'call': list(g()), 'b_blocked': blocked}"
    )
    assert out == {"call": [5, 2], "b_blocked": True}


def test_pillow_names_restored_and_cars3d_thumbnail_matches_old_pillow() -> None:
    # Pillow 6 thumbnail((64, 64, 3)) of a square 128px image was a plain
    # LANCZOS resize to 64x64 (no reducing_gap): compare against exactly that.
    out = _probe(
        "import numpy as np, PIL.Image\n"
        "from disentanglement_lib.data.ground_truth import cars3d, norb\n"
        "img = np.random.RandomState(0).randint(0, 256, (128, 128, 3)).astype(np.uint8)\n"
        "pic = cars3d.PIL.Image.fromarray(img)\n"
        "pic.thumbnail((64, 64, 3), cars3d.PIL.Image.ANTIALIAS)\n"
        "ref = PIL.Image.fromarray(img).resize((64, 64), PIL.Image.Resampling.LANCZOS)\n"
        "out = {'antialias': int(PIL.Image.ANTIALIAS) == int(PIL.Image.Resampling.LANCZOS),\n"
        "       'norb_sees_it': norb.PIL.Image.ANTIALIAS == PIL.Image.Resampling.LANCZOS,\n"
        "       'shape': list(np.array(pic).shape),\n"
        "       'equal': bool(np.array_equal(np.array(pic), np.array(ref)))}"
    )
    assert out == {"antialias": True, "norb_sees_it": True, "shape": [64, 64, 3], "equal": True}


def test_save_animation_writes_uint8_gif_frames(tmp_path) -> None:
    gif = tmp_path / "anim.gif"
    out = _probe(
        "import numpy as np, imageio\n"
        "from disentanglement_lib.visualize import visualize_util\n"
        "frames = [np.full((8, 8, 3), v, dtype=np.float32) for v in (0.0, 0.5, 1.0)]\n"
        f"visualize_util.save_animation([frames, frames], {str(gif)!r}, fps=5)\n"
        f"read = imageio.mimread({str(gif)!r})\n"
        "centre = [int(np.asarray(f)[10, 10, 0]) for f in read]\n"
        "out = {'n': len(read), 'dtype': str(np.asarray(read[0]).dtype), 'centre': centre}"
    )
    # dlib pads frames with white (1.0); the centre pixel is a frame pixel:
    # 0.0 -> 0, 0.5 -> 127 (truncation, as dlib's save_image), 1.0 -> 255.
    assert out["n"] == 3 and out["dtype"] == "uint8"
    assert out["centre"] == [0, 127, 255]


def test_hook_install_twice_is_a_no_op() -> None:
    out = _probe(
        "import sys, _splitenc_plugin_hook as h\n"
        "h.install(); h.install()\n"
        "out = {'watchers': sum(type(f).__name__ == 'DlibImportWatcher' for f in sys.meta_path)}"
    )
    assert out == {"watchers": 1}


def test_dlib_loaders_keep_their_real_loader_for_pkg_resources() -> None:
    # dlib lists its own configs with pkg_resources, which dispatches on loader type.
    out = _probe(
        "from disentanglement_lib.utils import resources\n"
        "names = resources.get_files_in_folder('config/unsupervised_study_v1/metric_configs/')\n"
        "out = {'mig': any(n.endswith('mig.gin') for n in names)}"
    )
    assert out == {"mig": True}


def test_plugin_import_twice_registers_once() -> None:
    # disent-style: re-importing the plugin (reload) must neither raise nor
    # duplicate anything; gin keeps resolving our names to one configurable.
    # In a fresh process: a reload replaces the modules' classes, which would
    # leak into every later test of this worker (instances made before it
    # would no longer compare equal to those made after).
    out = _probe(
        "import importlib\n"
        "import gin\n"
        "import splitenc_plugin\n"
        "from splitenc_plugin.model import encoders, noise\n"
        "readers_before = len(gin.config._FILE_READERS)\n"
        "for module in (noise, encoders, splitenc_plugin):\n"
        "    importlib.reload(module)\n"
        "gin.parse_config(['reparameterization.noise_fn = @correlated_noise',\n"
        "                  'correlated_noise.sigma = 0.5'])\n"
        "out = {'readers_added': len(gin.config._FILE_READERS) - readers_before,\n"
        "       'sigma': gin.query_parameter('correlated_noise.sigma')}"
    )
    assert out == {"readers_added": 0, "sigma": 0.5}


def test_user_errors_print_one_line_before_any_graph_is_built(tmp_path) -> None:
    from conftest import GIN_DIR, run_script

    proc = run_script(
        "dlib_train", f"--gin_config={GIN_DIR / 'corrnoise_vae.gin'}", f"--model_dir={tmp_path / 'm'}",
        "--gin_bindings=dataset.name='smallnorb'", env={"DISENTANGLEMENT_LIB_DATA": str(tmp_path)},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "smallnorb" in errors[0] and "dlib_download_data" in errors[0]
    assert not (tmp_path / "m").exists()  # nothing was built
    proc = run_script(
        "dlib_train", f"--gin_config={GIN_DIR / 'corrnoise_vae.gin'}", f"--model_dir={tmp_path / 'n'}",
        "--gin_bindings=dataset.name='dummy_data'", "--gin_bindings=correlated_noise.sigma=1.0",
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "correlated_noise.sigma" in errors[0]
    assert "Path not found" not in proc.stderr  # our includes resolve quietly


def test_onednn_state_follows_tf_enable_onednn_opts() -> None:
    # TF's own switch decides, read by a fresh TF at start-up (x86-64 builds have oneDNN).
    probe = ("from splitenc_plugin.compat.runtime import onednn_enabled\n"
             "out = {'onednn': onednn_enabled()}")
    assert _probe(probe, env={"TF_ENABLE_ONEDNN_OPTS": "1"}) == {"onednn": True}
    assert _probe(probe, env={"TF_ENABLE_ONEDNN_OPTS": "0"}) == {"onednn": False}


@pytest.mark.parametrize("binding", [
    "factorized_noise.z_mean = 1",  # nothing of it is bindable
    "mean_logvar_representation.save_path = 'x'",  # dlib passes all four arguments
    "correlated_noise.z_mean = 1",  # outside its allowlist (sigma, correlation)
])
def test_plugin_configurables_bind_only_what_they_allow(clean_gin, binding) -> None:
    import gin

    import splitenc_plugin  # noqa: F401  (registers the configurables)

    with pytest.raises(ValueError, match="denylisted|in its allowlist"):
        gin.parse_config(binding)
