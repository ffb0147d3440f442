"""One study job end to end (issue 21): learning curves, factor_mig results and their seeds.

A beta-TCVAE job (one global step per training step) on dlib's in-memory
``dummy_data``, 101 steps, so the estimator writes training summaries at two
steps (1 and 101); then dlib_evaluate verbatim with the shipped factor_mig
config.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import GIN_DIR, assert_ok, run_script, shared_fixture_group

from splitenc_plugin.results.learning_curves import CURVES_FILE
from splitenc_plugin.sweep.job import prune_heavy
from splitenc_plugin.sweep.job_files import CHECKPOINT_DIR

STUDY = "split_encoder_study_v1"
STEPS = 101
# Seeds of every (representation, metric) pair of a job: the committed
# campaign's three, then factor_mig's, drawn after them.
EVALUATION_SEEDS = {("mean", "mig"): 3626093760,
                    ("mean_logvar", "mi_decomposition_study"): 2588848963,
                    ("sampled", "mig"): 3684848379,
                    ("mean", "factor_mig"): 2340255427}
# The job evaluates these (the MI decomposition, ~25 s, runs in test_aggregate's
# tiny run); the others keep the seeds they have in the full run.
METRICS = ("mig", "factor_mig")
EVALUATED = {pair: seed for pair, seed in EVALUATION_SEEDS.items() if pair[1] in METRICS}


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``tiny_job``


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory) -> Path:
    """Model 20 (beta_tc_vae, conv_encoder, seed 0) trained on dummy_data, not pruned."""
    out = tmp_path_factory.mktemp("study")
    assert_ok(run_script("splitenc_reproduce", "--study", STUDY, "--output_directory", str(out),
                         "--datasets", "dummy_data", "--model_nums", "20",
                         "--steps", str(STEPS), "--gin_bindings", "model.eval_steps = 5",
                         "--metrics", *METRICS, "--no_progress"))
    return out / STUDY / "20"


@SHARED_FIXTURE
def test_the_job_writes_learning_curves_of_dlibs_training_summaries(tiny_job, tmp_path) -> None:
    curves = json.loads((tiny_job / "model" / CURVES_FILE).read_text())
    assert curves["steps"] == [1, STEPS]
    # beta-TCVAE is dlib's BaseVAE: it summarizes these; the estimator adds loss.
    assert set(curves) == {"steps", "loss", "reconstruction_loss", "elbo"}
    for tag in ("loss", "reconstruction_loss", "elbo"):
        assert len(curves[tag]) == 2 and all(math.isfinite(v) for v in curves[tag]), tag
    # dlib logs the ELBO itself, -(reconstruction_loss + KL), and KL >= 0.
    for elbo, recon in zip(curves["elbo"], curves["reconstruction_loss"]):
        assert -elbo >= recon * (1 - 1e-6) and recon > 0
    assert "learning curves written to model/learning_curves.json" in \
        (tiny_job / "job.log").read_text()
    # --prune_heavy deletes the event files; the curves stay (on a copy: the
    # other tests need the job's TF-Hub modules).
    copy = tmp_path / "job"
    shutil.copytree(tiny_job / "model", copy / "model")
    assert CHECKPOINT_DIR in prune_heavy(copy)
    assert not (copy / CHECKPOINT_DIR).exists() and (copy / "model" / CURVES_FILE).is_file()


@SHARED_FIXTURE
def test_the_job_writes_factor_mig_lists_with_the_pinned_seeds(tiny_job) -> None:
    done = json.loads((tiny_job / "done.json").read_text())
    assert sorted(done["results"]) == sorted(
        f"metrics/{rep}/{metric}/results/aggregate/evaluation.json"
        for rep, metric in EVALUATED)
    results = tiny_job / "metrics" / "mean" / "factor_mig" / "results"
    record = json.loads((results / "json" / "evaluation_results.json").read_text())
    aggregate = json.loads((results / "aggregate" / "evaluation.json").read_text())
    matrix = np.array(record["mi_matrix"])
    assert matrix.shape == (record["num_factors"], record["num_latents"]) == (10, 10)
    assert aggregate["evaluation_results.mi_matrix"] == record["mi_matrix"]
    for key in ("factor_gap", "best_latent", "best_normalized_mi", "factor_entropy"):
        assert len(aggregate[f"evaluation_results.{key}"]) == 10, key
    assert record["discrete_mig"] == pytest.approx(np.mean(record["factor_gap"]), abs=1e-15)
    for (rep, metric), seed in EVALUATED.items():
        config = tiny_job / "metrics" / rep / metric / "results" / "json" / "evaluation_config.json"
        assert int(json.loads(config.read_text())["evaluation.random_seed"]) == seed, (rep, metric)


@SHARED_FIXTURE
def test_dlib_evaluate_factor_mig_equals_dlibs_mig_with_the_same_seed(tiny_job, tmp_path) -> None:
    mig_json = tiny_job / "metrics" / "mean" / "mig" / "results" / "json"
    out = tmp_path / "factor_mig"
    assert_ok(run_script("dlib_evaluate", f"--input_dir={tiny_job / 'postprocessed' / 'mean'}",
                         f"--output_dir={out}",
                         f"--gin_config={GIN_DIR / 'metrics' / 'factor_mig.gin'}",
                         f"--gin_bindings=evaluation.random_seed = {EVALUATION_SEEDS['mean', 'mig']}"))
    ours = json.loads((out / "results" / "json" / "evaluation_results.json").read_text())
    theirs = json.loads((mig_json / "evaluation_results.json").read_text())
    assert ours["discrete_mig"] == theirs["discrete_mig"]
