"""Every shipped gin config: parses alone, and each full config runs through dlib's CLIs."""

from __future__ import annotations

import json
import math

import disentanglement_lib.methods.unsupervised.train  # noqa: F401  (registers dlib's names)
import gin
import pytest
from conftest import GIN_DIR, assert_ok, run_script

from splitenc_plugin.model.encoders import encoder_parameter_count
from splitenc_plugin.studies.grid import MODEL_CONFIGS, dlib_config_path

FULL_CONFIGS = sorted(p.name for p in GIN_DIR.glob("*.gin"))
ALL_GIN_FILES = sorted(GIN_DIR.rglob("*.gin"))

# The split the paper's split configs train (our reading of Sec 4.2 / Fig 1:
# dlib's four convs shared, a 256-unit dense layer per latent).
SPLIT = {"split_conv_encoder.num_shared_layers": 4, "split_conv_encoder.branch_width": 256}
# (config, binding, value) the paper's runs need, read back from the parsed config.
EXPECTED = {
    "vae.gin": {"vae.beta": 1.0},
    "factorvae.gin": {"factor_vae.gamma": 35.0},
    "betatcvae.gin": {"beta_tc_vae.beta": 6.0},
    "split_vae.gin": {"vae.beta": 1.0, **SPLIT},
    "split_factorvae.gin": {"factor_vae.gamma": 35.0, **SPLIT},
    "split_betatcvae.gin": {"beta_tc_vae.beta": 6.0, **SPLIT},
    "corrnoise_vae.gin": {"vae.beta": 1.0, "correlated_noise.sigma": 0.9},
    "corrnoise_factorvae.gin": {"factor_vae.gamma": 35.0, "correlated_noise.sigma": 0.9},
    # Capacity controls (split_encoder_capacity_study_v1).
    "matched_split_factorvae.gin": {"factor_vae.gamma": 35.0,
                                    "matched_split_conv_encoder.num_shared_layers": 4},
    "matched_split_betatcvae.gin": {"beta_tc_vae.beta": 6.0,
                                    "matched_split_conv_encoder.num_shared_layers": 4},
    "wide_factorvae.gin": {"factor_vae.gamma": 35.0},
    "wide_betatcvae.gin": {"beta_tc_vae.beta": 6.0},
}
# The configs whose export is also postprocessed to dlib's "sampled" representation
# (every config goes through "mean"): the paper's two main ones.
SAMPLED_TOO = ("split_factorvae.gin", "corrnoise_factorvae.gin")
# The encoder each full config trains: the one its study grid entry names.
ENCODER_OF = {config: encoder for (_, encoder, _), config in MODEL_CONFIGS.items()}
SHARED = {
    "model.batch_size": 64, "model.training_steps": 300000, "encoder.num_latent": 10,
    "vae/AdamOptimizer.learning_rate": 0.0001, "vae/AdamOptimizer.beta1": 0.9,
    "vae/AdamOptimizer.beta2": 0.999, "vae/AdamOptimizer.epsilon": 1e-08,
    "discriminator/AdamOptimizer.learning_rate": 0.0001,
    "discriminator/AdamOptimizer.beta1": 0.5, "discriminator/AdamOptimizer.beta2": 0.9,
    "dataset.name": "dsprites_full",
}


def test_the_set_of_full_configs_is_the_papers() -> None:
    assert FULL_CONFIGS == sorted(EXPECTED) == sorted(ENCODER_OF)
    assert set(SAMPLED_TOO) <= set(EXPECTED)  # a renamed config keeps its sampled check


@pytest.mark.parametrize("path", ALL_GIN_FILES, ids=lambda p: str(p.relative_to(GIN_DIR)))
def test_gin_file_starts_with_import_and_parses_alone(path, clean_gin, tmp_path, monkeypatch) -> None:
    first = next(line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    assert first.strip() == "import splitenc_plugin"
    monkeypatch.chdir(tmp_path)  # includes must resolve from anywhere
    gin.parse_config_file(str(path))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_config_binds_the_papers_values(name, clean_gin) -> None:
    gin.parse_config_file(str(GIN_DIR / name))
    for key, value in {**SHARED, **EXPECTED[name]}.items():
        assert gin.query_parameter(key) == value, key
    encoder = gin.query_parameter("encoder.encoder_fn").selector.rsplit(".", 1)[-1]
    assert encoder == ENCODER_OF[name]
    if name.startswith("corrnoise_"):
        assert gin.query_parameter("reparameterization.noise_fn").selector.endswith("correlated_noise")


def test_local_files_never_replace_what_a_shipped_config_includes(
        clean_gin, tmp_path, monkeypatch) -> None:
    # A researcher's own factorvae.gin and fragments where they run a study.
    (tmp_path / "fragments").mkdir()
    (tmp_path / "factorvae.gin").write_text("factor_vae.gamma = 1.\n")
    (tmp_path / "fragments" / "split_encoder.gin").write_text("encoder.num_latent = 3\n")
    monkeypatch.chdir(tmp_path)
    gin.parse_config_file(str(GIN_DIR / "split_factorvae.gin"))
    assert gin.query_parameter("factor_vae.gamma") == 35.0
    assert gin.query_parameter("encoder.num_latent") == 10
    assert gin.query_parameter("encoder.encoder_fn").selector.endswith("split_conv_encoder")
    # Their own relative include still means their own file.
    gin.clear_config()
    gin.parse_config(["include 'factorvae.gin'"])
    assert gin.query_parameter("factor_vae.gamma") == 1.0


def test_dlib_shared_fragment_binds_exactly_dlibs_shared_settings(clean_gin) -> None:
    gin.parse_config_file(dlib_config_path("unsupervised_study_v1", "model_configs",
                                           "shared.gin"))
    dlibs = gin.config_str()
    gin.clear_config()
    gin.parse_config_file(str(GIN_DIR / "fragments" / "dlib_shared.gin"))
    assert gin.config_str() == "import splitenc_plugin\n\n" + dlibs
    assert "model.batch_size = 64" in dlibs


@pytest.mark.parametrize("path", ["splitenc_plugin/mine.gin", "splitenc_plugin/../mine.gin"])
def test_a_plugin_path_is_never_a_local_file(clean_gin, tmp_path, monkeypatch, path) -> None:
    # Missing from gin/, or outside it: an error naming the path, although a
    # local file of that name exists.
    (tmp_path / "splitenc_plugin").mkdir()
    for local in ("splitenc_plugin/mine.gin", "mine.gin"):
        (tmp_path / local).write_text("factor_vae.gamma = 1.\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=path.replace(".", r"\.")):
        gin.parse_config([f"include '{path}'"])


def test_a_dlib_config_path_is_the_local_file_where_one_exists(clean_gin, tmp_path,
                                                               monkeypatch) -> None:
    # In a dlib source checkout stock dlib reads the checkout's file; so do we.
    local = tmp_path / "disentanglement_lib" / "config" / "unsupervised_study_v1" / \
        "model_configs" / "shared.gin"
    local.parent.mkdir(parents=True)
    local.write_text("model.batch_size = 7\n")
    monkeypatch.chdir(tmp_path)
    gin.parse_config_file(str(GIN_DIR / "vae.gin"))
    assert gin.query_parameter("model.batch_size") == 7


def test_a_fragment_named_by_the_plugin_prefix_is_the_shipped_file(tmp_path,
                                                                   monkeypatch) -> None:
    from splitenc_plugin.studies.dlib_any import resolve_fragment

    (tmp_path / "splitenc_plugin" / "fragments").mkdir(parents=True)
    (tmp_path / "splitenc_plugin" / "fragments" / "split_encoder.gin").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_fragment("splitenc_plugin/fragments/split_encoder.gin") == \
        (GIN_DIR / "fragments" / "split_encoder.gin").resolve()


@pytest.mark.parametrize("name", ["matched_split_factorvae.gin", "matched_split_betatcvae.gin"])
def test_matched_split_config_is_at_the_vanilla_parameter_count(name, clean_gin) -> None:
    # The largest branch width whose encoder is no larger than dlib's conv_encoder.
    gin.parse_config_file(str(GIN_DIR / name))
    k = gin.query_parameter("encoder.num_latent")
    width = gin.query_parameter("matched_split_conv_encoder.branch_width")

    def count(w: int) -> int:
        return encoder_parameter_count("matched_split_conv_encoder", k, branch_width=w)

    assert count(width) <= encoder_parameter_count("conv_encoder", k) < count(width + 1)
    assert count(width) == encoder_parameter_count("matched_split_conv_encoder", k)  # the default


@pytest.mark.parametrize(("name", "split"), [("wide_factorvae.gin", "split_factorvae.gin"),
                                             ("wide_betatcvae.gin", "split_betatcvae.gin")])
def test_wide_config_is_at_the_split_parameter_count(name, split, clean_gin) -> None:
    # The e5 width whose (unsplit) encoder is closest in size to the shipped
    # split config's encoder (read from that config, not the code's defaults).
    gin.parse_config_file(str(GIN_DIR / split))
    split_count = encoder_parameter_count(
        "split_conv_encoder", gin.query_parameter("encoder.num_latent"),
        num_shared_layers=gin.query_parameter("split_conv_encoder.num_shared_layers"),
        branch_width=gin.query_parameter("split_conv_encoder.branch_width"))
    gin.clear_config()
    gin.parse_config_file(str(GIN_DIR / name))
    k = gin.query_parameter("encoder.num_latent")
    width = gin.query_parameter("wide_conv_encoder.dense_width")

    def gap(w: int) -> int:
        return abs(encoder_parameter_count("wide_conv_encoder", k, dense_width=w) - split_count)

    assert gap(width) < min(gap(width - 1), gap(width + 1))
    assert encoder_parameter_count("wide_conv_encoder", k, dense_width=width) == \
        encoder_parameter_count("wide_conv_encoder", k)  # the default


def _evaluate(rep_dir, out_dir) -> float:
    assert_ok(run_script(
        "dlib_evaluate", f"--input_dir={rep_dir}", f"--output_dir={out_dir}",
        f"--gin_config={dlib_config_path('unsupervised_study_v1', 'metric_configs', 'mig.gin')}",
        "--gin_bindings=mig.num_train=500",
    ))
    results = json.loads((out_dir / "results" / "json" / "evaluation_results.json").read_text())
    return results["discrete_mig"]


def _random_normal_ops(saved_model_pb) -> int:
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString(saved_model_pb.read_bytes())
    graph = model.meta_graphs[0].graph_def
    return sum(node.op == "RandomStandardNormal" for node in graph.node)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_config_trains_exports_postprocesses_and_evaluates(name, tmp_path) -> None:
    model_dir = tmp_path / "model"
    assert_ok(run_script(
        "dlib_train", f"--gin_config={GIN_DIR / name}", f"--model_dir={model_dir}",
        "--gin_bindings=model.training_steps=3", "--gin_bindings=dataset.name='dummy_data'",
        # dlib evaluates 1000 batches after training by default; one is enough here.
        "--gin_bindings=model.eval_steps=1",
    ))
    # The TF-Hub "reconstructions" signature samples z too: one normal draw for
    # factorized noise, two (n and the shared n0) for Eq 13's correlated noise.
    expected_draws = 2 if name.startswith("corrnoise_") else 1
    assert _random_normal_ops(model_dir / "tfhub" / "saved_model.pb") == expected_draws
    # dlib's postprocessing reads only the exported gaussian_encoder signature, the
    # same for every config: "sampled" (two more processes) only for SAMPLED_TOO.
    representations = ("mean", "sampled") if name in SAMPLED_TOO else ("mean",)
    for representation in representations:
        rep_dir = tmp_path / representation
        assert_ok(run_script(
            "dlib_postprocess", f"--model_dir={model_dir}", f"--output_dir={rep_dir}",
            f"--gin_config={dlib_config_path('unsupervised_study_v1', 'postprocess_configs', f'{representation}.gin')}",
        ))
        mig = _evaluate(rep_dir, tmp_path / f"mig_{representation}")
        assert math.isfinite(mig) and 0.0 <= mig <= 1.0


def test_done_when_command_verbatim(tmp_path) -> None:
    # The acceptance command, run from the repository root.
    proc = run_script(
        "dlib_train", "--gin_config=gin/split_factorvae.gin", f"--model_dir={tmp_path / 'D'}",
        "--gin_bindings=model.training_steps=5", "--gin_bindings=dataset.name='dummy_data'",
        # dlib evaluates 1000 batches after training by default (~2 minutes here).
        "--gin_bindings=model.eval_steps=1",
        cwd=GIN_DIR.parent,
    )
    assert_ok(proc)
    operative = (tmp_path / "D" / "results" / "gin" / "train.gin").read_text()
    assert "split_conv_encoder" in operative and "factor_vae.gamma = 35" in operative
