"""dlib 1.5's own unit tests, run unmodified through the compat layer.

Each module runs as ``python -m disentanglement_lib.<module>`` in a fresh
interpreter (so the start-up hook is exercised exactly as for dlib's scripts)
and must end in OK. The longest modules run in shards (absltest's own
``TEST_TOTAL_SHARDS``/``TEST_SHARD_INDEX`` protocol), so that pytest-xdist can
spread them over its workers; each shard must run at least one test, and the
module must say (the protocol's status file) that it ran only its shard.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    "evaluation.abstract_reasoning.reason_test",
    "evaluation.abstract_reasoning.relational_layers_test",
    "evaluation.metrics.irs_test",
    "evaluation.metrics.fairness_test",
    "evaluation.metrics.strong_downstream_task_test",
    "evaluation.metrics.unified_scores_test",
    "utils.convolute_hub_test",
    "visualize.dendrogram_test",
    "visualize.visualize_dataset_test",
    "visualize.visualize_model_test",
    "visualize.visualize_scores_test",
]


# Shards of the modules that take minutes (12-13 parameterized tests each, every
# one training a model); the others run whole. The sharded ones, and the
# modules that fit classifiers for minutes, are ``long`` tests
# (SPLITENC_ALL_TESTS=1, as CI runs them; see conftest.py).
SHARDS = {"methods.unsupervised.train_test": 3, "evaluation.evaluate_test": 3,
          "evaluation.metrics.dci_test": 2}
LONG = {*SHARDS, "evaluation.metrics.fairness_test",
        "evaluation.metrics.strong_downstream_task_test",
        "evaluation.metrics.unified_scores_test"}


def test_every_dlib_test_module_is_run() -> None:
    import disentanglement_lib

    root = Path(disentanglement_lib.__file__).parent
    found = {".".join(p.relative_to(root).with_suffix("").parts)
             for p in root.rglob("*_test.py")}
    assert found == set(DLIB_TEST_MODULES)


@pytest.mark.parametrize(("module", "shard"), [
    pytest.param(module, shard, marks=[pytest.mark.long] if module in LONG else [])
    for module in DLIB_TEST_MODULES for shard in range(SHARDS.get(module, 1))])
def test_dlib_module_passes(module: str, shard: int, tmp_path) -> None:
    total = SHARDS.get(module, 1)
    status = tmp_path / "shard_status"  # absltest creates it when it honours sharding
    sharding = {"TEST_TOTAL_SHARDS": str(total), "TEST_SHARD_INDEX": str(shard),
                "TEST_SHARD_STATUS_FILE": str(status)} if total > 1 else {}
    proc = subprocess.run(
        [sys.executable, "-m", f"disentanglement_lib.{module}"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TEST_TMPDIR": str(tmp_path),
             **sharding},
    )
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    ran = re.search(r"^Ran (\d+) tests? in ", proc.stderr, re.MULTILINE)
    assert proc.returncode == 0 and last.startswith("OK") and ran and int(ran.group(1)) > 0, (
        f"{module} shard {shard + 1}/{total}: exit {proc.returncode}, last line {last!r}\n"
        f"{proc.stderr[-5000:]}"
    )
    assert total == 1 or status.is_file(), f"{module} ran without honouring its shard"
