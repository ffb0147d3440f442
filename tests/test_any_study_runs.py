"""Any dlib study through splitenc_reproduce, end to end: dlib's own with a fragment, a user's, bin/.

Each job trains 3 steps on dlib's in-memory ``dummy_data`` with
``model.eval_steps = 5`` and evaluates dlib's MIG only (``--metrics mig``).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, assert_ok, run_script, shared_fixture_group

from splitenc_plugin.results.aggregate import load_results

STUDY = "unsupervised_study_v1"
SPLIT = str(REPO / "gin" / "fragments" / "split_encoder.gin")
# dlib's unsupervised_study_v1 models 0 and 1: beta_vae (vae.beta = 1), seeds 0 and 1.
TINY = ("--study", STUDY, "--model_nums", "0-1", "--metrics", "mig", "--datasets", "dummy_data",
        "--steps", "3", "--gin_bindings", "model.eval_steps = 5", "--no_progress",
        "--workers", "2", "--threads_per_job", "1")


def _reproduce(out: Path, *args: str) -> object:
    return run_script("splitenc_reproduce", *TINY, "--output_directory", str(out), *args,
                      timeout=1200)


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``with_and_without``


@pytest.fixture(scope="module")
def with_and_without(tmp_path_factory) -> Path:
    """dlib's unsupervised_study_v1 models 0-1, plain and with the split-encoder fragment."""
    out = tmp_path_factory.mktemp("any_study")
    fragment = out / "split_encoder.gin"  # a copy the tests may change
    shutil.copy(SPLIT, fragment)
    assert_ok(_reproduce(out))
    assert_ok(_reproduce(out, "--gin_config", str(fragment)))
    return out


def _operative_encoder(job: Path) -> str:
    lines = (job / "model" / "results" / "gin" / "train.gin").read_text().splitlines()
    return next(line for line in lines if line.startswith("encoder.encoder_fn"))


@SHARED_FIXTURE
def test_dlibs_own_study_runs_with_the_split_encoder_dropped_in(with_and_without) -> None:
    for num in (0, 1):
        plain = with_and_without / STUDY / str(num)
        split = with_and_without / f"{STUDY}+split_encoder" / str(num)
        assert _operative_encoder(plain) == "encoder.encoder_fn = @conv_encoder"
        assert _operative_encoder(split) == "encoder.encoder_fn = @split_conv_encoder"
        for job in (plain, split):
            done = json.loads((job / "done.json").read_text())
            assert done["identity"]["study"] == STUDY and done["identity"]["model_num"] == num
            # dlib_reproduce's representations, with the one metric asked for.
            assert sorted(p.parent.parent.parent.parent.name
                          for p in job.glob("metrics/*/*/results/aggregate/evaluation.json")
                          ) == ["mean", "sampled"]
        assert "gin_configs" not in json.loads((plain / "done.json").read_text())["identity"]
        assert json.loads((split / "done.json").read_text())["identity"]["gin_configs"][0][
            "name"] == "split_encoder.gin"


@SHARED_FIXTURE
def test_the_same_command_finds_everything_finished(with_and_without) -> None:
    proc = _reproduce(with_and_without, "--gin_config",
                      str(with_and_without / "split_encoder.gin"), "--dry_run")
    assert_ok(proc)
    assert "2 job(s) selected, 2 already finished, 0 to run" in proc.stdout


@SHARED_FIXTURE
def test_a_changed_fragment_makes_its_finished_jobs_in_the_way(with_and_without,
                                                               tmp_path) -> None:
    changed = tmp_path / "split_encoder.gin"
    changed.write_text((with_and_without / "split_encoder.gin").read_text().replace(
        "branch_width = 256", "branch_width = 128"))
    proc = _reproduce(with_and_without, "--gin_config", str(changed), "--dry_run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{STUDY}+split_encoder/0" in proc.stderr and "gin_configs" in proc.stderr


@SHARED_FIXTURE
def test_a_dlib_study_and_its_fragment_aggregate_into_paired_cells(with_and_without) -> None:
    from splitenc_plugin.results.aggregate import summarize

    frame, unfinished = load_results(with_and_without)
    assert len(frame) == 4 and len(unfinished) == 0
    # Cells carry the study's own hyperparameter (beta_vae's vae.beta) and the fragment.
    assert "vae.beta" in frame.columns and set(frame["vae.beta"]) == {"1.0"}
    assert sorted(frame["encoder"]) == ["conv_encoder"] * 2 + ["split_conv_encoder"] * 2
    split = frame["gin_configs"] != "none"
    assert set(frame.loc[split, "encoder"]) == {"split_conv_encoder"}
    assert sorted(frame.loc[split, "seed"]) == sorted(frame.loc[~split, "seed"]) == [0, 1]
    cells, diffs = summarize(frame)
    assert len(cells) == 2 and set(cells["n"]) == {2}
    # The plain and the fragment runs of the same models pair in the differences table,
    # with the difference of the medians of their MIG.
    row, = diffs.to_dict("records")
    assert row["n"] == "2 vs 2"
    assert row["d_mig_median"] == pytest.approx(
        frame.loc[split, "mig_mean"].median() - frame.loc[~split, "mig_mean"].median())


def test_a_users_study_registers_through_study_module_runs_and_aggregates(tmp_path) -> None:
    (tmp_path / "my_lab_studies.py").write_text(textwrap.dedent("""
        from disentanglement_lib.config import reproduce, study
        from splitenc_plugin import gin_dir
        from splitenc_plugin.studies.grid import dlib_config_path

        class OneVae(study.Study):
            def get_model_config(self, model_num=0):
                if model_num >= 1:
                    raise IndexError(model_num)
                return (["dataset.name = 'dsprites_full'", "model.random_seed = 3"],
                        str(gin_dir() / "vae.gin"))
            def get_postprocess_config_files(self):
                return [dlib_config_path("unsupervised_study_v1", "postprocess_configs", name)
                        for name in ("mean.gin", "sampled.gin")]
            def get_eval_config_files(self):
                return [dlib_config_path("unsupervised_study_v1", "metric_configs", "mig.gin")]

        reproduce.STUDIES["my_lab_study"] = OneVae()
    """))
    out = tmp_path / "out"
    env = {"PYTHONPATH": str(tmp_path)}
    proc = run_script("splitenc_reproduce", "--study", "my_lab_study", "--study_module",
                      "my_lab_studies", "--datasets", "dummy_data", "--steps", "3",
                      "--gin_bindings", "model.eval_steps = 5", "--no_progress",
                      "--output_directory", str(out), env=env, timeout=900)
    assert_ok(proc)
    done = json.loads((out / "my_lab_study" / "0" / "done.json").read_text())
    assert done["spec"]["seed"] == 3 and done["identity"]["config"] == "plugin:vae.gin"
    proc = run_script("splitenc_aggregate", str(out), "--no_visualize", env=env)
    assert_ok(proc)
    frame, _ = load_results(out)
    assert list(frame["study"]) == ["my_lab_study"] and list(frame["seed"]) == [3]


# The smoke runs evaluate MIG only (passed through to splitenc_reproduce), which
# halves their cost; every metric goes through the runner and the aggregator in
# test_aggregate's tiny run. sec5_1 and sec5_2, thin wrappers over the same entry
# point as capacity_control, are long tests (CI runs them).
@pytest.mark.parametrize("script", [
    pytest.param("sec5_1_correlated_noise", marks=pytest.mark.long),
    pytest.param("sec5_2_split_encoder", marks=pytest.mark.long),
    "capacity_control"])
def test_each_experiment_script_runs_end_to_end_in_smoke_mode(script, tmp_path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "bin" / f"{script}.py"), "--smoke",
                           "--output_directory", str(out), "--workers", "2",
                           "--threads_per_job", "1", "--gin_bindings", "model.eval_steps = 5",
                           "--metrics", "mig"],
                          capture_output=True, text=True, timeout=1500, check=False)
    assert_ok(proc)
    assert f"[{script}] summary: {out / 'summary.md'}" in proc.stdout
    assert (out / "summary.md").is_file() and (out / "results.csv").is_file()
    assert len(load_results(out)[0]) == 2


def test_an_experiment_scripts_dry_run_plans_and_stops(tmp_path) -> None:
    # --dry_run shows the jobs (here the capacity study's 240, each "to run")
    # and neither trains nor aggregates: no job directory, no summary.
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "bin" / "capacity_control.py"),
                           "--dry_run", "--output_directory", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert_ok(proc)
    jobs = [line for line in map(str.strip, proc.stdout.splitlines())
            if line.startswith("split_encoder_capacity_study_v1/")]
    assert len(jobs) == 240 and all("to run" in line for line in jobs)
    assert not (out / "summary.md").exists() and not list(out.rglob("job.json"))


def test_a_renamed_experiment_script_says_which_scripts_there_are(tmp_path, capsys) -> None:
    from splitenc_plugin.experiments import main

    assert main("capacity-control", ["--dry_run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("capacity-control: error: not an experiment's script")
    assert "bin/capacity_control.py" in error


def test_a_smoke_run_goes_to_its_own_directory_not_the_real_runs(tmp_path) -> None:
    import subprocess
    import sys

    def planned_output(*args: str) -> str:
        proc = subprocess.run([sys.executable, str(REPO / "bin" / "capacity_control.py"),
                               "--dry_run", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, check=False)
        assert_ok(proc)
        return proc.stdout.splitlines()[0].rsplit("output in ", 1)[1]

    study = "split_encoder_capacity_study_v1"
    assert planned_output() == f"runs/{study}/{study}"
    assert planned_output("--smoke") == f"runs/{study}_smoke/{study}"


@pytest.mark.parametrize(("script", "args", "env", "message"), [
    # The script's study is fixed: another would be trained, then not aggregated.
    ("capacity_control.py", ["--study", "split_encoder_study_v1"], {},
     "this script runs split_encoder_capacity_study_v1"),
    ("sec5_2_split_encoder.py", ["--selections=mine.txt"], {},
     "this script runs split_encoder_study_v1"),
    ("sec5_1_correlated_noise.py", ["--smoke", "--steps", "1000"], {},
     "--smoke runs 5 steps per model"),
    # 0 is refused by the runner, not read as "the paper's 300,000 steps".
    ("capacity_control.py", ["--steps", "0"], {}, "--steps must be a positive integer, got 0"),
    ("demo.py", [], {"SPLITENC_DEMO_STEPS": "abc"}, "$SPLITENC_DEMO_STEPS must be a positive"),
    ("demo.py", [], {"SPLITENC_DEMO_STEPS": "0"}, "$SPLITENC_DEMO_STEPS must be a positive"),
    ("demo.py", ["--steps", "0"], {}, "--steps must be a positive integer, got 0"),
])
def test_a_bin_script_refuses_bad_input_before_any_work(tmp_path, script, args, env,
                                                        message) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "bin" / script), *args,
                           "--output_directory", str(out)],
                          env={**os.environ, "DISENTANGLEMENT_LIB_DATA": str(tmp_path / "data"),
                               **env},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not out.exists() and not (tmp_path / "data").exists()
