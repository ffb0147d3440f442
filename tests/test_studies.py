"""The paper's studies: grids, job identities, and dlib_reproduce resolving them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GIN_DIR, REPO, assert_ok, run_python, run_script

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.study_grid import (
    DEFAULT_TRAINING_STEPS,
    GRIDS,
    MODEL_CONFIGS,
    UnknownStudyError,
    get_grid,
    make_job_spec,
)


def test_grid_sizes_and_axes_match_the_paper() -> None:
    noise, split = GRIDS["correlated_noise_study_v1"], GRIDS["split_encoder_study_v1"]
    assert len(noise) == 2 * 2 * 10  # {vae, factor_vae} x sigma {0, 0.9} x 10 seeds
    assert len(split) == 3 * 2 * 2 * 10  # 3 datasets x 2 models x 2 encoders x 10 seeds
    assert noise.axes["sigma"] == (0.0, 0.9) and noise.axes["dataset"] == ("dsprites_full",)
    assert split.axes["dataset"] == ("dsprites_full", "smallnorb", "cars3d")
    assert split.axes["model"] == ("factor_vae", "beta_tc_vae")
    assert [s.model_num for s in split.specs] == list(range(120))


@pytest.mark.parametrize(("study", "num", "expected"), [
    ("split_encoder_study_v1", 0, ("dsprites_full", "factor_vae", "conv_encoder", 0.0, 0,
                                   "factorvae.gin")),
    ("split_encoder_study_v1", 13, ("dsprites_full", "factor_vae", "split_conv_encoder", 0.0, 3,
                                    "split_factorvae.gin")),
    ("split_encoder_study_v1", 119, ("cars3d", "beta_tc_vae", "split_conv_encoder", 0.0, 9,
                                     "split_betatcvae.gin")),
    ("correlated_noise_study_v1", 15, ("dsprites_full", "vae", "conv_encoder", 0.9, 5,
                                       "corrnoise_vae.gin")),
    ("correlated_noise_study_v1", 20, ("dsprites_full", "factor_vae", "conv_encoder", 0.0, 0,
                                       "factorvae.gin")),
])
def test_model_nums_resolve_to_known_grid_points(study, num, expected) -> None:
    s = get_grid(study).spec(num)
    assert (s.dataset, s.model, s.encoder, s.sigma, s.seed, s.config) == expected
    assert s.bindings == [f"dataset.name = '{expected[0]}'", f"model.random_seed = {expected[4]}"]


def test_every_model_config_exists() -> None:
    for config in MODEL_CONFIGS.values():
        assert (GIN_DIR / config).is_file(), config


@pytest.mark.parametrize(("study", "filters", "expected_nums"), [
    # Evidence campaign part A: beta_tc_vae x {conv, split} x seeds 0-2 on dSprites.
    ("split_encoder_study_v1", {"dataset": ["dsprites_full"], "model": ["beta_tc_vae"],
                                    "seed": [0, 1, 2]}, [20, 21, 22, 30, 31, 32]),
    # Part B: factor_vae x sigma {0, 0.9} x seeds 0, 1.
    ("correlated_noise_study_v1", {"model": ["factor_vae"], "seed": [0, 1]}, [20, 21, 30, 31]),
    # Part C: factor_vae with the split encoder x seeds 0, 1 (on dSprites).
    ("split_encoder_study_v1", {"dataset": ["dsprites_full"], "model": ["factor_vae"],
                                    "encoder": ["split_conv_encoder"], "seed": [0, 1]}, [10, 11]),
])
def test_selection_expresses_the_campaign_parts(study, filters, expected_nums) -> None:
    assert [s.model_num for s in get_grid(study).select(**filters)] == expected_nums


def test_the_campaign_selections_file_is_the_issue_grid_in_order(tmp_path) -> None:
    # docs/results/campaign/selections.txt must plan exactly parts A, B, C above.
    plan = run_script("splitenc_reproduce", "--selections",
                      str(REPO / "docs" / "results" / "campaign" / "selections.txt"),
                      "--steps", "100000", "--output_directory", str(tmp_path), "--dry_run")
    assert_ok(plan)
    a, b, c = "split_encoder_study_v1", "correlated_noise_study_v1", "split_encoder_study_v1"
    expected = [f"{a}/{n}" for n in (20, 21, 22, 30, 31, 32)] \
        + [f"{b}/{n}" for n in (20, 21, 30, 31)] + [f"{c}/{n}" for n in (10, 11)]
    assert [line.split()[0] for line in plan.stdout.splitlines()[1:]] == expected


def test_the_campaign_command_skips_every_committed_finished_job() -> None:
    # Issue #8: a fresh clone's campaign command must skip the jobs whose small
    # result files are committed, and only those (their checkpoints are gone).
    campaign = REPO / "docs" / "results" / "campaign"
    plan = run_script("splitenc_reproduce", "--selections", str(campaign / "selections.txt"),
                      "--steps", "100000", "--prune_heavy", "--visualize",
                      "--output_directory", str(campaign), "--dry_run")
    assert_ok(plan)
    states = {line.split()[0]: line.split()[1] for line in plan.stdout.splitlines()[1:]}
    committed = {f"{d.parent.name}/{d.name}" for d in campaign.glob("*/*")
                 if (d / "done.json").is_file()}
    assert committed and committed <= set(states), committed - set(states)
    assert {key for key, state in states.items() if state == "finished"} == committed


def test_bad_names_are_one_clear_error() -> None:
    with pytest.raises(UnknownStudyError, match="correlated_noise_study_v1, split_encoder"):
        get_grid("nope")
    with pytest.raises(SplitencUserError, match="has no dataset shapes3d; its datasets are"):
        get_grid("split_encoder_study_v1").select(dataset=["shapes3d"])
    with pytest.raises(SplitencUserError, match="has no sigma 0.5"):
        get_grid("correlated_noise_study_v1").select(sigma=[0.5])


def test_job_identity_includes_the_step_count() -> None:
    full = make_job_spec("split_encoder_study_v1", 10)
    short = make_job_spec("split_encoder_study_v1", 10, steps=5)
    assert full.steps == DEFAULT_TRAINING_STEPS and short.steps == 5
    assert full.identity() != short.identity()
    assert short.bindings == ("model.name = 'split_factorvae'", "model.model_num = 10",
                              "dataset.name = 'dsprites_full'", "model.random_seed = 0",
                              "model.training_steps = 5")
    dummy = make_job_spec("split_encoder_study_v1", 10, steps=5, dataset="dummy_data")
    assert "dataset.name = 'dummy_data'" in dummy.bindings and dummy.dataset == "dummy_data"


def test_dlib_reproduce_only_print_resolves_split_encoder_study() -> None:
    proc = run_script("dlib_reproduce", "--study=split_encoder_study_v1", "--model_num=10",
                      "--only_print")
    assert_ok(proc)
    out = proc.stdout
    assert str(GIN_DIR / "split_factorvae.gin") in out
    assert "dataset.name = 'dsprites_full'" in out and "model.random_seed = 0" in out
    assert "postprocess_configs/mean.gin" in out and "postprocess_configs/sampled.gin" in out
    assert "metric_configs/mig.gin" in out
    assert str(GIN_DIR / "postprocess" / "mean_logvar.gin") in out
    assert str(GIN_DIR / "metrics" / "mi_decomposition_study.gin") in out


_OPERATIVE = """
import json
from pathlib import Path
import gin
from disentanglement_lib.config import reproduce
from disentanglement_lib.methods.unsupervised import train  # registers dlib's configurables
out = {}
for study, num in [("split_encoder_study_v1", 0), ("split_encoder_study_v1", 10),
                   ("correlated_noise_study_v1", 30)]:
    bindings, config = reproduce.STUDIES[study].get_model_config(num)
    gin.parse_config_files_and_bindings([config], bindings)
    q = lambda name: str(gin.query_parameter(name))
    row = {k: q(k) for k in ("dataset.name", "model.model", "encoder.encoder_fn",
                             "model.training_steps", "model.random_seed")}
    try:
        row["reparameterization.noise_fn"] = q("reparameterization.noise_fn")
    except ValueError:  # unbound: the default, dlib's factorized noise
        row["reparameterization.noise_fn"] = "default"
    row["factor_vae.gamma"] = gin.query_parameter("factor_vae.gamma")
    if "correlated" in row["reparameterization.noise_fn"]:
        row["correlated_noise.sigma"] = gin.query_parameter("correlated_noise.sigma")
    out[f"{study}/{num}"] = row
    gin.clear_config()
print("RESULT" + json.dumps(out))
"""


def test_dlib_studies_resolve_the_right_operative_config() -> None:
    proc = run_python(_OPERATIVE)
    assert_ok(proc)
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    vanilla, split = result["split_encoder_study_v1/0"], result["split_encoder_study_v1/10"]
    assert vanilla["encoder.encoder_fn"] == "@conv_encoder"
    assert split["encoder.encoder_fn"] == "@split_conv_encoder"
    for row in (vanilla, split):
        assert row["model.model"] == "@factor_vae()" and row["factor_vae.gamma"] == 35.0
        assert row["dataset.name"] == "dsprites_full" and row["model.random_seed"] == "0"
        assert row["model.training_steps"] == str(DEFAULT_TRAINING_STEPS)
        assert row["reparameterization.noise_fn"] == "default"
    noisy = result["correlated_noise_study_v1/30"]  # factor_vae, sigma 0.9, seed 0
    assert noisy["reparameterization.noise_fn"] == "@correlated_noise"
    assert noisy["correlated_noise.sigma"] == 0.9 and noisy["model.model"] == "@factor_vae()"


_CONFIG_PATHS = """
import json, sys
from splitenc_plugin.study_grid import EVAL_CONFIGS, POSTPROCESS_CONFIGS, config_file
ours = {ref: config_file(ref) for ref in POSTPROCESS_CONFIGS + EVAL_CONFIGS}
imported_dlib = "disentanglement_lib" in sys.modules
from disentanglement_lib.utils import resources
theirs = {ref: resources.get_file("config/unsupervised_study_v1/" + ref.split(":", 1)[1])
          for ref in ours if ref.startswith("dlib:")}
print("RESULT" + json.dumps({"ours": ours, "theirs": theirs, "imported_dlib": imported_dlib}))
"""


def test_config_paths_equal_dlibs_own_resolution_without_importing_dlib() -> None:
    proc = run_python(_CONFIG_PATHS)
    assert_ok(proc)
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert not result["imported_dlib"]
    assert result["theirs"] and all(result["ours"][ref] == path
                                    for ref, path in result["theirs"].items())
    for ref, path in result["ours"].items():
        assert Path(path).is_file(), ref
        if ref.startswith("plugin:"):
            assert Path(path) == GIN_DIR / ref.split(":", 1)[1]
