"""End to end through dlib's console scripts, verbatim: train -> postprocess -> evaluate."""

from __future__ import annotations

import json
import math

from conftest import assert_ok, run_script

from splitenc_plugin.studies.grid import dlib_config_path


def test_dlib_train_postprocess_evaluate_mig_on_dummy_data(tmp_path) -> None:
    model_dir, rep_dir, eval_dir = (tmp_path / d for d in ("model", "representation", "mig"))
    assert_ok(run_script(
        "dlib_train", f"--model_dir={model_dir}",
        f"--gin_config={dlib_config_path('unsupervised_study_v1', 'model_configs', 'shared.gin')}",
        "--gin_bindings=dataset.name='dummy_data'",
        "--gin_bindings=model.training_steps=3",
        "--gin_bindings=model.eval_steps=1",  # dlib's default evaluates 1000 batches
    ))
    assert (model_dir / "tfhub" / "saved_model.pb").exists()
    assert_ok(run_script(
        "dlib_postprocess", f"--model_dir={model_dir}", f"--output_dir={rep_dir}",
        f"--gin_config={dlib_config_path('unsupervised_study_v1', 'postprocess_configs', 'mean.gin')}",
    ))
    assert_ok(run_script(
        "dlib_evaluate", f"--input_dir={rep_dir}", f"--output_dir={eval_dir}",
        f"--gin_config={dlib_config_path('unsupervised_study_v1', 'metric_configs', 'mig.gin')}",
        "--gin_bindings=mig.num_train=1000",
    ))
    results = json.loads((eval_dir / "results" / "json" / "evaluation_results.json").read_text())
    mig = results["discrete_mig"]
    assert math.isfinite(mig) and 0.0 <= mig <= 1.0


def test_dlib_train_help_works() -> None:
    proc = run_script("dlib_train", "--help")
    # absl prints the usage and exits with 1 for --help, by design.
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr
    assert "--gin_config" in proc.stdout and "--model_dir" in proc.stdout
