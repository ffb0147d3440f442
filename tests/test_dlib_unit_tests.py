"""dlib 1.5's own unit tests, run unmodified through the compat layer.

Each module runs as ``python -m disentanglement_lib.<module>`` in a fresh
interpreter (so the start-up hook is exercised exactly as for dlib's scripts)
and must end in OK.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

DLIB_TEST_MODULES = [
    "methods.shared.architectures_test",
    "methods.shared.optimizers_test",
    "methods.unsupervised.vae_test",
    "methods.unsupervised.train_test",
    "postprocessing.postprocess_test",
    "evaluation.evaluate_test",
    "evaluation.metrics.mig_test",
    "evaluation.metrics.sap_score_test",
    "evaluation.metrics.dci_test",
    "evaluation.metrics.factor_vae_test",
    "evaluation.metrics.beta_vae_test",
    "evaluation.metrics.modularity_explicitness_test",
    "evaluation.metrics.unsupervised_metrics_test",
    "evaluation.metrics.utils_test",
    "utils.results_test",
    "data.ground_truth.util_test",
    "visualize.visualize_util_test",
]


@pytest.mark.parametrize("module", DLIB_TEST_MODULES)
def test_dlib_module_passes(module: str, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"disentanglement_lib.{module}"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TEST_TMPDIR": str(tmp_path)},
    )
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    assert proc.returncode == 0 and last.startswith("OK"), (
        f"{module}: exit {proc.returncode}, last line {last!r}\n{proc.stderr[-5000:]}"
    )
