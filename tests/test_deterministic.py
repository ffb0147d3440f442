"""Deterministic mode: the same job twice gives the same result JSONs.

``splitenc_reproduce --deterministic`` (``SPLITENC_DETERMINISTIC=1`` for dlib's
own scripts) makes a job repeat exactly: training, the TF-Hub export, the
``sampled`` representation and the metrics on it. Without it, dlib's sampled
representation draws fresh noise in every process (the README's caveat).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import BIN_DIR, assert_ok, run_python, run_script

from splitenc_plugin.studies.grid import dlib_config_path

STUDY = "correlated_noise_study_v1"
MODEL_NUM = 10  # VAE with correlated noise, sigma = 0.9, seed 0
# What legitimately differs between two runs of the same computation.
VOLATILE = {"elapsed_time", "uuid"}


def _result_jsons(job_dir: Path) -> dict[str, dict]:
    """Every results/json file of the job (train, postprocess, metrics), without timings."""
    found = {}
    for path in sorted(job_dir.glob("**/results/json/*.json")):
        values = json.loads(path.read_text())
        found[str(path.relative_to(job_dir))] = {k: v for k, v in values.items()
                                                 if k not in VOLATILE}
    return found


def _run_twice(out: Path, *options: str) -> None:
    """Two runners on two output directories, side by side."""
    procs = [subprocess.Popen(
        [str(BIN_DIR / "splitenc_reproduce"), "--study", STUDY, "--output_directory",
         str(out / name), "--datasets", "dummy_data", "--model_nums", str(MODEL_NUM),
         "--steps", "5", "--gin_bindings", "model.eval_steps = 2", "--no_progress", *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, output[-4000:]


def test_deterministic_job_twice_gives_identical_result_jsons(tmp_path) -> None:
    _run_twice(tmp_path, "--deterministic")
    a, b = (tmp_path / name / STUDY / str(MODEL_NUM) for name in ("a", "b"))
    results_a, results_b = _result_jsons(a), _result_jsons(b)
    names = set(results_a)
    assert "model/results/json/train_results.json" in names
    assert "postprocessed/sampled/results/json/postprocess_results.json" in names
    assert {"metrics/mean/mig/results/json/evaluation_results.json",
            "metrics/sampled/mig/results/json/evaluation_results.json"} <= names
    assert results_a == results_b
    for job_dir in (a, b):
        assert json.loads((job_dir / "done.json").read_text())["deterministic"] is True

    # The sampled representation: the same draws in every process in this
    # mode; dlib's own (unseeded) draws differ from process to process.
    plain = tmp_path / "plain_sampled"
    assert_ok(run_script(
        "dlib_postprocess", f"--model_dir={a / 'model'}", f"--output_dir={plain}",
        f"--gin_config={dlib_config_path('unsupervised_study_v1', 'postprocess_configs', 'sampled.gin')}",
        "--gin_bindings=postprocess.random_seed = 7"))
    draws = {name: [_represent(module) for _ in range(2)]
             for name, module in (("deterministic", a / "postprocessed/sampled/tfhub"),
                                  ("plain", plain / "tfhub"))}
    assert draws["deterministic"][0] == draws["deterministic"][1]
    assert draws["plain"][0] != draws["plain"][1]


def _represent(module: Path) -> list[float]:
    """The representation of a fixed batch, computed in a fresh process."""
    proc = run_python(
        "import numpy as np, tensorflow_hub as hub, json\n"
        "import disentanglement_lib  # the compat layer (TF1 graph mode)\n"
        "images = np.random.RandomState(0).rand(4, 64, 64, 1).astype(np.float32)\n"
        f"with hub.eval_function_for_module({str(module)!r}) as f:\n"
        "    out = f(dict(images=images), signature='representation', as_dict=True)\n"
        "print('RESULT=' + json.dumps(np.asarray(out['default']).ravel().tolist()))\n",
        env={"SPLITENC_DETERMINISTIC": "0"})
    assert_ok(proc)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")][-1]
    return json.loads(line[len("RESULT="):])

