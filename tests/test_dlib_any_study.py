"""Any dlib study as the runner's jobs: dlib_reproduce's bindings, --where, fragments, user studies.

Known answers come from dlib itself: its study objects, its sweep's
``get_config()`` and the order of ``dlib_reproduce``'s loops.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.studies.dlib_any import (
    StudyError,
    get_study,
    import_study_modules,
    study_job_specs,
)
from splitenc_plugin.studies.grid import (
    JobSpec,
    config_file,
    config_name,
    evaluation_pairs,
)

REPO = Path(__file__).resolve().parents[1]
SPLIT_FRAGMENT = str(REPO / "gin" / "fragments" / "split_encoder.gin")


@pytest.fixture(scope="module")
def unsupervised():
    from disentanglement_lib.config import reproduce
    from disentanglement_lib.config.unsupervised_study_v1 import sweep

    return reproduce.STUDIES["unsupervised_study_v1"], sweep


def test_a_dlib_study_model_gets_dlib_reproduces_bindings_and_config(unsupervised) -> None:
    study, _ = unsupervised
    spec, = study_job_specs("unsupervised_study_v1", steps=7, model_nums=[123])
    bindings, config = study.get_model_config(123)
    # dlib_reproduce: model.name from the config file's name, model.model_num, the study's.
    expected = [f"model.name = '{os.path.basename(config).replace('.gin', '')}'",
                "model.model_num = 123", *bindings, "model.training_steps = 7"]
    assert list(spec.bindings) == expected
    assert os.path.samefile(spec.config_path(), config)
    assert sorted(config_file(c) for c in spec.eval_configs) == sorted(
        study.get_eval_config_files())
    assert sorted(config_file(c) for c in spec.postprocess_configs) == sorted(
        study.get_postprocess_config_files())
    # The identity names dlib's file by a reference, not by where dlib is installed.
    assert spec.identity()["config"] == "dlib-config:unsupervised_study_v1/model_configs/shared.gin"


def test_evaluation_pairs_of_a_dlib_study_follow_dlib_reproduces_seed_order(unsupervised) -> None:
    study, _ = unsupervised
    spec, = study_job_specs("unsupervised_study_v1", model_nums=[0])
    pairs = [(os.path.basename(config_file(p)), os.path.basename(config_file(m)))
             for p, m in evaluation_pairs(spec.postprocess_configs, spec.eval_configs,
                                          spec.all_pairs)]
    # dlib_reproduce: for config in sorted(post files): for metric in sorted(eval files).
    expected = [(os.path.basename(p), os.path.basename(m))
                for p in sorted(study.get_postprocess_config_files())
                for m in sorted(study.get_eval_config_files())]
    assert pairs == expected


def test_where_selects_exactly_the_models_whose_bindings_match(unsupervised) -> None:
    _, sweep = unsupervised
    configs = sweep.get_config()
    expected = [i for i, c in enumerate(configs[:700])
                if c["model.name"] == "factor_vae" and c["factor_vae.gamma"] == 10.0]
    specs = study_job_specs("unsupervised_study_v1", model_nums=range(700),
                            where=["model.name='factor_vae'", "factor_vae.gamma = 10."])
    assert [s.model_num for s in specs] == expected and expected
    # A reference compares by what it names, whatever the spacing.
    assert [s.model_num for s in study_job_specs(
        "unsupervised_study_v1", model_nums=range(700),
        where=["model.model=@factor_vae()"])] == [
        i for i, c in enumerate(configs[:700]) if c["model.model"] == "@factor_vae()"]


def test_a_fragment_is_layered_after_the_studys_bindings_and_is_in_the_identity(tmp_path) -> None:
    spec, = study_job_specs("unsupervised_study_v1", model_nums=[0], steps=3,
                            gin_configs=[SPLIT_FRAGMENT], extra_bindings=["vae.beta = 2."])
    bindings = spec.training_bindings()
    # The study binds encoder.encoder_fn = @conv_encoder; the fragment comes after it.
    assert bindings.index("encoder.encoder_fn = @conv_encoder") < bindings.index(
        f"include '{SPLIT_FRAGMENT}'") < bindings.index("vae.beta = 2.")
    assert spec.encoder == "split_conv_encoder"
    # Same content elsewhere: same identity; other content: another identity.
    copy = tmp_path / "split_encoder.gin"
    copy.write_text(Path(SPLIT_FRAGMENT).read_text())
    moved, = study_job_specs("unsupervised_study_v1", model_nums=[0], steps=3,
                             gin_configs=[str(copy)], extra_bindings=["vae.beta = 2."])
    assert moved.identity() == spec.identity()
    copy.write_text(Path(SPLIT_FRAGMENT).read_text().replace("256", "128"))
    changed, = study_job_specs("unsupervised_study_v1", model_nums=[0], steps=3,
                               gin_configs=[str(copy)], extra_bindings=["vae.beta = 2."])
    assert changed.identity() != spec.identity()
    # The spec survives its JSON round trip (job.json).
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_a_job_without_fragments_keeps_the_identity_it_always_had() -> None:
    from splitenc_plugin.studies.grid import make_job_spec

    spec = make_job_spec("split_encoder_study_v1", 10, steps=100)
    assert set(spec.identity()) == {"study", "model_num", "config", "bindings", "steps"}


def test_a_user_study_registers_through_its_module(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_studies.py").write_text(textwrap.dedent("""
        from disentanglement_lib.config import reproduce, study
        from splitenc_plugin import gin_dir

        class TwoSeeds(study.Study):
            def get_model_config(self, model_num=0):
                if model_num >= 2:
                    raise IndexError(model_num)
                return ([f"model.random_seed = {model_num}"], str(gin_dir() / "vae.gin"))
            def get_postprocess_config_files(self):
                return [reproduce.__file__.replace("reproduce.py",
                        "unsupervised_study_v1/postprocess_configs/mean.gin")]
            def get_eval_config_files(self):
                return [reproduce.__file__.replace("reproduce.py",
                        "unsupervised_study_v1/metric_configs/mig.gin")]

        reproduce.STUDIES["two_seeds_study"] = TwoSeeds()
    """))
    from disentanglement_lib.config import reproduce

    # Undone after the test: the registered study and the imported module.
    monkeypatch.setattr(reproduce, "STUDIES", dict(reproduce.STUDIES))
    monkeypatch.delitem(sys.modules, "my_studies", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    import_study_modules(["my_studies"])
    assert get_study("two_seeds_study") is not None
    specs = study_job_specs("two_seeds_study", steps=4)
    assert [(s.model_num, s.seed, s.config) for s in specs] == [
        (0, 0, "plugin:vae.gin"), (1, 1, "plugin:vae.gin")]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"study_name": "no_such_study"}, StudyError, "registered studies: "),
    ({"study_name": "unsupervised_study_v1", "model_nums": [10 ** 6]}, StudyError,
     "does not exist"),
    ({"study_name": "unsupervised_study_v1", "model_nums": [0], "where": ["model.name"]},
     StudyError, "--where"),
    # gin's tokenizer error too, not only its parser's.
    ({"study_name": "unsupervised_study_v1", "model_nums": [0],
      "where": ["dataset.name = ("]}, StudyError,
     r"--where 'dataset.name = \(' does not parse as gin"),
    # --metrics is checked by the one validator of every kind of study.
    ({"study_name": "unsupervised_study_v1", "model_nums": [0], "metrics": ["nope"]},
     SplitencUserError, "not a metric of unsupervised_study_v1"),
    ({"study_name": "unsupervised_study_v1", "model_nums": [0], "metrics": []},
     SplitencUserError, "--metrics needs at least one name"),
    ({"study_name": "unsupervised_study_v1", "model_nums": [0], "gin_configs": ["nope.gin"]},
     StudyError, "--gin_config 'nope.gin' is not a file"),
])
def test_bad_selections_are_one_clear_error(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        study_job_specs(**kwargs)


def test_a_study_module_that_does_not_import_is_named() -> None:
    with pytest.raises(StudyError, match="--study_module 'no_such_module_xyz'"):
        import_study_modules(["no_such_module_xyz"])


def test_metrics_restrict_the_evaluated_pairs_keep_their_seeds_and_enter_the_identity() -> None:
    full, = study_job_specs("unsupervised_study_v1", model_nums=[0])
    spec, = study_job_specs("unsupervised_study_v1", model_nums=[0], metrics=["mig"])
    assert spec.identity()["metrics"] == ["mig"] and "metrics" not in full.identity()
    post, pairs = spec.pipeline_seeds()
    full_post, full_pairs = full.pipeline_seeds()
    # MIG on each representation, with the seed dlib_reproduce's full run gives it.
    assert [(config_name(p), config_name(m)) for p, m, _ in pairs] == [
        (config_name(p), "mig") for p, _ in full_post]
    assert pairs == [pair for pair in full_pairs if config_name(pair[1]) == "mig"]
    assert post == full_post and len(full_pairs) == len(post) * len(full.eval_configs)
    # Naming every metric is no restriction: the full run's jobs.
    names = [config_name(m) for m in full.eval_configs]
    every, = study_job_specs("unsupervised_study_v1", model_nums=[0], metrics=names)
    assert every.identity() == full.identity()
