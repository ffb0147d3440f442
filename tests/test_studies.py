"""The paper's studies: grids, job identities, and dlib_reproduce resolving them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GIN_DIR, REPO, assert_ok, run_python, run_script

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.grid import (
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
    capacity = GRIDS["split_encoder_capacity_study_v1"]
    assert len(capacity) == 3 * 2 * 4 * 10  # split's grid x 4 encoders
    assert capacity.axes["encoder"] == ("conv_encoder", "split_conv_encoder",
                                        "matched_split_conv_encoder", "wide_conv_encoder")
    assert {axis: capacity.axes[axis] for axis in ("dataset", "model", "sigma", "seed")} == \
        {axis: split.axes[axis] for axis in ("dataset", "model", "sigma", "seed")}
    assert [s.model_num for s in capacity.specs] == list(range(240))


# split_encoder_capacity_study_v1: dataset x model x encoder x seed, last fastest:
# model_num = ((dataset * 2 + model) * 4 + encoder) * 10 + seed.
@pytest.mark.parametrize(("num", "expected"), [
    (0, ("dsprites_full", "factor_vae", "conv_encoder", 0, "factorvae.gin")),
    (13, ("dsprites_full", "factor_vae", "split_conv_encoder", 3, "split_factorvae.gin")),
    (25, ("dsprites_full", "factor_vae", "matched_split_conv_encoder", 5,
          "matched_split_factorvae.gin")),
    (39, ("dsprites_full", "factor_vae", "wide_conv_encoder", 9, "wide_factorvae.gin")),
    (40, ("dsprites_full", "beta_tc_vae", "conv_encoder", 0, "betatcvae.gin")),
    (61, ("dsprites_full", "beta_tc_vae", "matched_split_conv_encoder", 1,
          "matched_split_betatcvae.gin")),
    (80, ("smallnorb", "factor_vae", "conv_encoder", 0, "factorvae.gin")),
    (239, ("cars3d", "beta_tc_vae", "wide_conv_encoder", 9, "wide_betatcvae.gin")),
])
def test_capacity_study_model_numbers(num, expected) -> None:
    s = get_grid("split_encoder_capacity_study_v1").spec(num)
    assert (s.dataset, s.model, s.encoder, s.seed, s.config) == expected and s.sigma == 0.0


def test_capacity_study_shares_the_split_studys_runs() -> None:
    # Its vanilla and split models are the split study's (same config and
    # bindings), so the aggregator pools them instead of counting them twice.
    split = {(s.config, tuple(s.bindings)) for s in get_grid("split_encoder_study_v1").specs}
    capacity = get_grid("split_encoder_capacity_study_v1").select(
        encoder=["conv_encoder", "split_conv_encoder"])
    assert {(s.config, tuple(s.bindings)) for s in capacity} == split


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
    ("correlated_noise_study_v1", 0, ("dsprites_full", "vae", "conv_encoder", 0.0, 0, "vae.gin")),
    ("correlated_noise_study_v1", 39, ("dsprites_full", "factor_vae", "conv_encoder", 0.9, 9,
                                       "corrnoise_factorvae.gin")),
    ("split_encoder_study_v1", 22, ("dsprites_full", "beta_tc_vae", "conv_encoder", 0.0, 2,
                                    "betatcvae.gin")),
    ("split_encoder_study_v1", 57, ("smallnorb", "factor_vae", "split_conv_encoder", 0.0, 7,
                                    "split_factorvae.gin")),
    ("split_encoder_study_v1", 85, ("cars3d", "factor_vae", "conv_encoder", 0.0, 5,
                                    "factorvae.gin")),
])
def test_model_nums_resolve_to_known_grid_points(study, num, expected) -> None:
    # A model number names a finished run on disk (runs/<study>/<model_num>):
    # adding a study or a config must never renumber the existing studies.
    assert len(get_grid("correlated_noise_study_v1")) == 40
    assert len(get_grid("split_encoder_study_v1")) == 120
    s = get_grid(study).spec(num)
    assert (s.dataset, s.model, s.encoder, s.sigma, s.seed, s.config) == expected
    assert s.bindings == [f"dataset.name = '{expected[0]}'", f"model.random_seed = {expected[4]}"]


def test_every_model_config_exists() -> None:
    for config in MODEL_CONFIGS.values():
        assert (GIN_DIR / config).is_file(), config


def test_axis_values_are_what_the_studies_select_from() -> None:
    # The command line's help lists axis_values: each axis's values over every
    # model of every plugin study, once each. Every encoder and sigma with a
    # shipped config is among them (split_vae.gin, a VAE with the split
    # encoder, is shipped for dlib_train but in no study).
    from splitenc_plugin.studies.grid import GRIDS, axis_values

    for axis in ("model", "encoder", "sigma"):
        values = [getattr(s, axis) for grid in GRIDS.values() for s in grid.specs]
        assert sorted(axis_values(axis), key=str) == sorted(set(values), key=str)
        assert len(axis_values(axis)) == len(set(axis_values(axis)))
    assert set(axis_values("encoder")) == {key[1] for key in MODEL_CONFIGS}
    assert set(axis_values("sigma")) == {key[2] for key in MODEL_CONFIGS}
    assert "matched_split_conv_encoder" in axis_values("encoder")


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


CAMPAIGNS = {
    # directory -> the data its runs were made on (fingerprint prefix)
    "campaign": "splitenc-dsprites-v1",
    "campaign_v2": "splitenc-dsprites-v2",
}


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_the_campaign_command_skips_every_committed_finished_job(name, tmp_path) -> None:
    # Issues #8 and #21: a fresh clone's campaign command must skip the jobs
    # whose small result files are committed, and only those (their
    # checkpoints are gone). With no data present, nothing can be compared or
    # trained: the dry run just reports the committed jobs.
    campaign = REPO / "docs" / "results" / name
    plan = run_script("splitenc_reproduce", "--selections", str(campaign / "selections.txt"),
                      "--steps", "100000", "--prune_heavy", "--visualize",
                      "--output_directory", str(campaign), "--dry_run",
                      env={"DISENTANGLEMENT_LIB_DATA": str(tmp_path)})
    assert_ok(plan)
    states = {line.split()[0]: line.split()[1] for line in plan.stdout.splitlines()[1:]}
    committed = {f"{d.parent.name}/{d.name}" for d in campaign.glob("*/*")
                 if (d / "done.json").is_file()}
    assert committed <= set(states), committed - set(states)
    assert {key for key, state in states.items() if state == "finished"} == committed


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_committed_campaign_jobs_count_only_for_their_own_data(name) -> None:
    # The first campaign carries no data record (renderer v1 by rule); the
    # second records renderer v2. On the other renderer's data neither counts
    # as finished, and the error names both.
    from splitenc_plugin.sweep.plan import (
        JobMismatchError,
        check_finished,
        plan_selections,
        read_selections,
    )

    campaign = REPO / "docs" / "results" / name
    jobs, _ = plan_selections(read_selections(campaign / "selections.txt"), campaign,
                              steps=100000, visualize=True, prune_heavy=True)
    committed = [job for job in jobs if (job.job_dir / "done.json").is_file()]
    if not committed:
        pytest.skip(f"no finished job committed in {name} yet")
    own = CAMPAIGNS[name]
    other = next(prefix for prefix in CAMPAIGNS.values() if prefix != own)
    records = {json.loads((job.job_dir / "done.json").read_text()).get("data", {})
               .get("fingerprint", own) for job in committed}
    assert {r.split(":")[0] for r in records} == {own}
    data = {"dsprites_full": {"fingerprint": f"{other}:0", "label": "the other renderer"}}
    with pytest.raises(JobMismatchError, match="the data is now the other renderer"):
        check_finished(committed, data)
    if own == "splitenc-dsprites-v1":
        finished, pending = check_finished(
            committed, {"dsprites_full": {"fingerprint": own, "label": "v1"}})
        assert finished == committed and not pending


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


@pytest.mark.parametrize(("num", "config", "dataset", "seed"), [
    (25, "matched_split_factorvae.gin", "dsprites_full", 5),
    (239, "wide_betatcvae.gin", "cars3d", 9),
])
def test_dlib_reproduce_only_print_resolves_capacity_study(num, config, dataset, seed) -> None:
    proc = run_script("dlib_reproduce", "--study=split_encoder_capacity_study_v1",
                      f"--model_num={num}", "--only_print")
    assert_ok(proc)
    out = proc.stdout
    assert str(GIN_DIR / config) in out
    assert f"dataset.name = '{dataset}'" in out and f"model.random_seed = {seed}" in out
    assert "postprocess_configs/mean.gin" in out and "metric_configs/mig.gin" in out


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
                   ("correlated_noise_study_v1", 30), ("split_encoder_capacity_study_v1", 25),
                   ("split_encoder_capacity_study_v1", 239)]:
    bindings, config = reproduce.STUDIES[study].get_model_config(num)
    gin.parse_config_files_and_bindings([config], bindings)
    q = lambda name: str(gin.query_parameter(name))
    row = {k: q(k) for k in ("dataset.name", "model.model", "encoder.encoder_fn",
                             "model.training_steps", "model.random_seed")}
    try:
        row["reparameterization.noise_fn"] = q("reparameterization.noise_fn")
    except ValueError:  # unbound: the default, dlib's factorized noise
        row["reparameterization.noise_fn"] = "default"
    for weight in ("factor_vae.gamma", "beta_tc_vae.beta"):
        try:
            row[weight] = gin.query_parameter(weight)
        except ValueError:  # the other model's weight: unbound
            row[weight] = None
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
    matched = result["split_encoder_capacity_study_v1/25"]  # dSprites FactorVAE, seed 5
    assert matched["encoder.encoder_fn"] == "@matched_split_conv_encoder"
    assert matched["model.model"] == "@factor_vae()" and matched["factor_vae.gamma"] == 35.0
    assert matched["model.random_seed"] == "5" and matched["dataset.name"] == "dsprites_full"
    wide = result["split_encoder_capacity_study_v1/239"]  # Cars3D beta-TCVAE, seed 9
    assert wide["encoder.encoder_fn"] == "@wide_conv_encoder"
    assert wide["model.model"] == "@beta_tc_vae()" and wide["beta_tc_vae.beta"] == 6.0
    assert wide["model.random_seed"] == "9" and wide["dataset.name"] == "cars3d"
    for row in (matched, wide):
        assert row["reparameterization.noise_fn"] == "default"
        assert row["model.training_steps"] == str(DEFAULT_TRAINING_STEPS)


_CONFIG_PATHS = """
import json, sys
from splitenc_plugin.studies.grid import EVAL_CONFIGS, POSTPROCESS_CONFIGS, config_file
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
