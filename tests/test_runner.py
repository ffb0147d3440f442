"""splitenc_reproduce: Dask, interruption/resume, locking, failing jobs, input validation.

Every run trains 3 steps on dlib's in-memory ``dummy_data`` (the runner's
test-only dataset override) with ``model.eval_steps = 5`` and evaluates dlib's
MIG only (``--metrics mig``: the MI decomposition alone costs ~25 s a job), so
one job costs ~20 s of which most is TensorFlow start-up. The local end-to-end
run of a tiny study, with every metric, lives in test_aggregate.py, which
aggregates it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    BIN_DIR,
    OTHER_THREADS,
    assert_ok,
    run_script,
    shared_fixture_group,
)

from splitenc_plugin._io import write_json_atomic
from splitenc_plugin.results.aggregate import aggregate, load_results
from splitenc_plugin.results.learning_curves import CURVES_FILE, EVENT_GLOB
from splitenc_plugin.studies.grid import config_name, make_job_spec
from splitenc_plugin.sweep.cli import build_parser
from splitenc_plugin.sweep.display import state_text
from splitenc_plugin.sweep.execute import (
    RunStatus,
    execute_job,
    terminate_children,
    thread_env,
)
from splitenc_plugin.sweep.job import attempt_events, prepare_resume, prune_heavy
from splitenc_plugin.sweep.job_files import (
    ATTEMPT_EVENTS_DIR,
    CHECKPOINT_DIR,
    DATA_FILE,
    DONE_FILE,
    JOB_FILE,
    LOG_FILE,
    RESUMES_FILE,
)
from splitenc_plugin.sweep.plan import JobState, JobStatus, RunPlan, plan_jobs
from splitenc_plugin.sweep.progress import read_progress
from splitenc_plugin.sweep.runner import Runner

STUDY = "split_encoder_study_v1"
# Model 0: factor_vae + conv_encoder, seed 0; model 1: the same with seed 1;
# model 10: factor_vae + split_conv_encoder, seed 0 (on the first dataset).
TINY = ("--study", STUDY, "--datasets", "dummy_data", "--models", "factor_vae", "--steps", "3",
        "--gin_bindings", "model.eval_steps = 5", "--metrics", "mig", "--no_progress")


def _reproduce(out: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_script("splitenc_reproduce", *TINY, "--output_directory", str(out), *args,
                      **kwargs)


def _runner(*args: str) -> Runner:
    """The run ``splitenc_reproduce ARGS`` would do (its options parsed as the command does)."""
    return Runner.from_args(build_parser().parse_args(list(args)))


def _plan(out: Path, *args: str) -> RunPlan:
    """What ``splitenc_reproduce *TINY --output_directory OUT ARGS --dry_run`` lists, as data."""
    return _runner(*TINY, "--output_directory", str(out), *args).plan(require_datasets=False)


def _hashes(directory: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under directory."""
    return {str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                            p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_tiny_study_on_a_dask_local_cluster_with_pruning(tmp_path, monkeypatch) -> None:
    distributed = pytest.importorskip("distributed")
    # The in-process Dask worker starts the jobs with this process's environment:
    # oneDNN switched off there is the known answer done.json must record.
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        # Other thread limits around the runner (its jobs inherit them): a "1" in
        # done.json can only come from --threads_per_job.
        proc = _reproduce(tmp_path, "--seeds", "0", "1", "--encoders", "conv_encoder",
                          "--scheduler", cluster.scheduler_address, "--prune_heavy",
                          "--threads_per_job", "1", env=OTHER_THREADS)
    assert_ok(proc)
    assert f"Dask scheduler {cluster.scheduler_address}" in proc.stdout
    assert "2 job(s) finished now, 0 earlier, 0 failed" in proc.stdout
    for num in (0, 1):
        job = tmp_path / STUDY / str(num)
        done = json.loads((job / DONE_FILE).read_text())
        assert done["identity"]["steps"] == 3 and done["identity"]["model_num"] == num
        assert done["spec"]["seed"] == num and done["spec"]["dataset"] == "dummy_data"
        assert done["thread_env"] == thread_env(1) == {
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
        assert done["onednn"] is False  # what TF ran (TF_ENABLE_ONEDNN_OPTS=0)
        assert done["onednn_by_attempt"] == [False]
        # Pruned: no checkpoints or TF-Hub modules; everything the aggregator reads stays.
        assert sorted(done["pruned"]) == sorted(["model/tf_checkpoint", "model/tfhub",
                                                 "postprocessed/mean/tfhub",
                                                 "postprocessed/mean_logvar/tfhub",
                                                 "postprocessed/sampled/tfhub"])
        assert not list(job.rglob("tfhub")) and not (job / CHECKPOINT_DIR).exists()
        # --metrics mig: MIG only, each with the seed of the full run's job
        # (pinned against the committed campaign in test_factor_mig.py).
        assert done["results"] == [f"metrics/{rep}/mig/results/aggregate/evaluation.json"
                                   for rep in ("mean", "sampled")]
        assert sorted(p.name for p in (job / "metrics").iterdir()) == ["mean", "sampled"]
        full = make_job_spec(STUDY, num, steps=3)
        full_seeds = {(config_name(p), config_name(m)): seed
                      for p, m, seed in full.pipeline_seeds()[1]}
        for rep in ("mean", "sampled"):
            used = json.loads((job / "metrics" / rep / "mig" / "results" / "json"
                               / "evaluation_config.json").read_text())
            assert int(used["evaluation.random_seed"]) == full_seeds[(rep, "mig")]
        assert "model.training_steps = 3" in (job / "model/results/gin/train.gin").read_text()
    # Pruned finished jobs still count as finished: the same command does nothing.
    again = _reproduce(tmp_path, "--seeds", "0", "1", "--encoders", "conv_encoder")
    assert_ok(again)
    assert "nothing to do" in again.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_interrupting_a_run_stops_its_jobs_on_dask_workers(tmp_path) -> None:
    # Worker processes of their own: the job is not a child of the runner, and
    # cancelling its Dask future would not stop it.
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        args = [str(BIN_DIR / "splitenc_reproduce"), "--study", STUDY, "--datasets",
                "dummy_data", "--model_nums", "0", "--steps", "1000000", "--no_progress",
                "--threads_per_job", "1", "--output_directory", str(tmp_path),
                "--scheduler", cluster.scheduler_address]
        runner = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, text=True)
        job_pid = None
        try:
            job_dir, deadline = tmp_path / STUDY / "0", time.time() + 300
            while not _training(job_dir):
                assert runner.poll() is None and time.time() < deadline, "the job never trained"
                time.sleep(0.5)
            job_pid = json.loads((tmp_path / STUDY / ".0.lock").read_text())["pid"]
            assert _alive(job_pid)
            # SIGTERM (a batch system's stop; the runner treats it as Ctrl-C): a
            # pytest-xdist worker starts its children with SIGINT ignored, and
            # Python then keeps it ignored.
            runner.send_signal(signal.SIGTERM)
            output = runner.communicate(timeout=300)[0]
            # The runner exits only after the workers have stopped its job.
            assert not _alive(job_pid), "the job kept running after the run was stopped"
        finally:
            if runner.poll() is None:
                runner.kill()
            if job_pid is not None and _alive(job_pid):
                os.kill(job_pid, signal.SIGKILL)
    assert runner.returncode == 130, output
    assert "stopped 1 job(s) on the Dask workers" in output
    assert "interrupted; the same command resumes" in output
    assert not (tmp_path / STUDY / "0" / DONE_FILE).exists()


def test_interrupted_run_resumes_without_touching_finished_jobs(tmp_path) -> None:
    args = [str(BIN_DIR / "splitenc_reproduce"), *TINY, "--output_directory", str(tmp_path),
            "--seeds", "0", "1", "--encoders", "conv_encoder", "--workers", "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first, second = tmp_path / STUDY / "0", tmp_path / STUDY / "1"
    # Own session: killing its process group is a hard crash of the runner and its jobs.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (first / DONE_FILE).exists() and proc.poll() is None:
            assert time.time() < deadline, "the first job never finished"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert (first / DONE_FILE).exists() and not (second / DONE_FILE).exists()
    before = _hashes(first)

    resumed = run_script(*args[0:1], *args[1:])
    assert_ok(resumed)
    assert "2 job(s) selected, 1 already finished, 1 to run" in resumed.stdout
    assert "1 job(s) finished now, 1 earlier, 0 failed" in resumed.stdout
    assert _hashes(first) == before  # same bytes, same mtimes: not re-run, not touched
    done = json.loads((second / DONE_FILE).read_text())
    assert done["identity"]["model_num"] == 1 and done["identity"]["steps"] == 3

    # A finished job of another step count is never taken for (or replaced by) this one.
    other = _reproduce(tmp_path, "--seeds", "0", "--encoders", "conv_encoder", "--steps", "5")
    assert other.returncode == 2
    assert "do not match this run" in other.stderr and "steps: finished 3, asked 5" in other.stderr
    assert _hashes(first) == before


def test_a_broken_binding_fails_its_job_alone(tmp_path) -> None:
    # Bound for every job, but only the split encoder (model 10) reads it.
    proc = _reproduce(tmp_path, "--seeds", "0", "--workers", "2",
                      "--gin_bindings", "split_conv_encoder.num_shared_layers = 9")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    log = tmp_path / STUDY / "10" / "job.log"
    # A configuration error is the job's exit 2 (one line in its log), not a traceback.
    assert f"{STUDY}/10: exit 2; log: {log}" in proc.stderr
    assert "1 job(s) finished now, 0 earlier, 1 failed" in proc.stdout
    assert "num_shared_layers" in log.read_text()
    assert (tmp_path / STUDY / "0" / DONE_FILE).exists()
    assert not (tmp_path / STUDY / "10" / DONE_FILE).exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--study", "nope"], "unknown study 'nope'"),
    (["--study", STUDY, "--steps", "0"], "--steps must be a positive integer"),
    (["--study", STUDY, "--datasets", "mnist"], "has no dataset mnist"),
    (["--study", STUDY, "--models", "vae"], "has no model vae"),
    (["--study", STUDY, "--datasets", "dsprites_full", "--model_nums", "50"],
     "matches none of the 120 models"),
    (["--study", STUDY, "--workers", "0"], "--workers must be >= 1"),
    (["--study", STUDY, "--threads_per_job", "0"], "--threads_per_job must be >= 1"),
    (["--study", STUDY, "--datasets", "smallnorb"], "dataset 'smallnorb' is missing"),
    # Grid parameters have their own options: as bindings they would be recorded
    # as one grid point and train another.
    (["--study", STUDY, "--gin_bindings", "model.training_steps = 5000"],
     "sets model.training_steps, which each job of a study fixes (use --steps)"),
    (["--study", STUDY, "--gin_bindings", "train/dataset.name = 'cars3d'"],
     "sets dataset.name, which each job of a study fixes (use --datasets)"),
    (["--study", STUDY, "--gin_bindings", "model.eval_steps = 5",
      "--gin_bindings", "correlated_noise.sigma = 0.5"], "(use --sigmas)"),
    (["--study", STUDY, "--gin_bindings", "model.eval_steps = [5"], "does not parse as gin"),
    (["--study", STUDY, "--gin_bindings", "model.eval_steps"], "does not parse as gin"),
    (["--study", STUDY, "--seeds", "3-1"], "--seeds 3-1 runs backwards"),
    ([], "give --study (and filters) or --selections FILE"),
    (["--study", STUDY, "--max_jobs", "0"], "--max_jobs must be >= 1"),
    (["--study", STUDY, "--model_nums", "x"], "--model_nums takes integers or ranges"),
    (["--study", STUDY, "--sigmas", "x"], "--sigmas takes numbers"),
    (["--study", STUDY, "--model_nums", "500"], f"{STUDY} has models 0..119, not [500]"),
    (["--study", STUDY, "--datasets", "dummy_data", "dsprites_full"],
     "--datasets dummy_data (test data) cannot be combined with other datasets"),
    # A dlib study is sliced by --model_nums and --where, not the plugin's grid axes.
    (["--study", "unsupervised_study_v1", "--seeds", "0"],
     "--seeds filter the plugin's grids; select a dlib study's models with --model_nums"),
    (["--study", "unsupervised_study_v1", "--datasets", "dsprites_full"],
     "--datasets on a dlib study only takes dummy_data"),
    (["--study", STUDY, "--scheduler", "not an address"],
     "--scheduler 'not an address' is not a Dask scheduler address"),
    # An unknown metric is named before the selection is checked.
    (["--study", STUDY, "--model_nums", "500", "--metrics", "mig", "dci"],
     ("--metrics dci: not a metric of split_encoder_study_v1 (its metrics: factor_mig, "
      "mi_decomposition_study, mig)")),
])
def test_bad_input_is_one_clear_error_before_any_job(tmp_path, args, message) -> None:
    empty_root = tmp_path / "data"
    empty_root.mkdir()
    out = tmp_path / "out"
    proc = run_script("splitenc_reproduce", *args, "--output_directory", str(out),
                      env={"DISENTANGLEMENT_LIB_DATA": str(empty_root)})
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_bad_switch_is_one_error_before_any_job(tmp_path) -> None:
    # Each job would inherit it and fail in turn.
    out = tmp_path / "out"
    proc = run_script("splitenc_reproduce", "--study", STUDY, "--datasets", "dummy_data",
                      "--model_nums", "0", "--output_directory", str(out),
                      env={"SPLITENC_LEAN_DATA": "maybe"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "$SPLITENC_LEAN_DATA='maybe' is not a switch" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("study", [STUDY, "unsupervised_study_v1"])
def test_a_fragment_gin_cannot_parse_is_one_error_before_any_job(tmp_path, study) -> None:
    # Found at planning, for a plugin study and a dlib study alike, not by
    # each job in turn (a plugin study's jobs would all start and fail).
    fragment = tmp_path / "bad.gin"
    fragment.write_text("import splitenc_plugin\nencoder.encoder_fn = (\n")
    out = tmp_path / "out"
    proc = run_script("splitenc_reproduce", "--study", study, "--model_nums", "0",
                      "--gin_config", str(fragment), "--output_directory", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--gin_config {fragment} does not parse as gin" in proc.stderr
    assert not out.exists()


def test_an_unknown_study_is_the_only_line_on_stderr(tmp_path) -> None:
    # Naming dlib's studies imports dlib, hence TensorFlow; TF's deprecation
    # notice about the TF1 behaviour dlib needs is not printed before the error.
    proc = run_script("splitenc_reproduce", "--study", "nope", "--output_directory",
                      str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("splitenc_reproduce: error: unknown study 'nope'"), \
        proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_an_output_directory_that_is_a_file_is_one_error(tmp_path) -> None:
    # One line for the run, not one "done.json cannot be read" per job.
    target = tmp_path / "afile"
    target.write_text("kept")
    proc = run_script("splitenc_reproduce", "--study", STUDY, "--output_directory", str(target),
                      "--dry_run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--output_directory {target} is a file" in proc.stderr
    assert target.read_text() == "kept"


def test_a_selections_file_is_one_queue_in_file_order(tmp_path) -> None:
    selections = tmp_path / "grid.txt"
    selections.write_text(
        "# model 1 is in both lines: it runs once, with the first line\n"
        f"--study {STUDY} --datasets dummy_data --models factor_vae --seeds 1  # models 1, 11\n"
        "\n"
        f"--study {STUDY} --datasets dummy_data --models factor_vae --encoders conv_encoder "
        "--seeds 0-1\n")  # models 0, 1
    runner = _runner("--selections", str(selections), "--steps", "3",
                     "--output_directory", str(tmp_path / "out"), "--max_jobs", "2")
    plan = runner.plan(require_datasets=False)
    assert runner.label == f"{selections} (2 selection(s))"
    # 3 jobs selected, none finished, 2 to run; file order before model_num
    # order: model 0 comes from the second line.
    listed = [(state.job.spec.model_num, state.status) for state in plan.states]
    assert listed == [(1, JobStatus.TO_RUN), (11, JobStatus.TO_RUN), (0, JobStatus.LATER)]
    assert [job.spec.model_num for job in plan.queue] == [1, 11] and not plan.finished
    assert not (tmp_path / "out").exists()


def _checkpointed_at(job, step: int) -> None:
    """Makes ``job``'s directory look like an interrupted attempt with a checkpoint at ``step``."""
    checkpoint = job.job_dir / CHECKPOINT_DIR
    checkpoint.mkdir(parents=True)
    write_json_atomic(job.job_dir / JOB_FILE, {"spec": job.spec.to_dict(), "options": {}})
    for suffix in ("index", "data-00000-of-00001"):
        (checkpoint / f"model.ckpt-{step}.{suffix}").write_bytes(b"")


def test_a_checkpoint_never_moves_a_job_ahead_of_an_earlier_selection(tmp_path) -> None:
    selections = tmp_path / "grid.txt"
    selections.write_text(
        f"--study {STUDY} --datasets dummy_data --models factor_vae --seeds 1\n"  # models 1, 11
        f"--study {STUDY} --datasets dummy_data --models factor_vae --encoders conv_encoder "
        "--seeds 0\n")  # model 0
    runner = _runner("--selections", str(selections), "--steps", "3",
                     "--output_directory", str(tmp_path / "out"), "--max_jobs", "2")
    jobs = {state.job.spec.model_num: state.job for state in runner.plan(require_datasets=False).states}
    _checkpointed_at(jobs[0], 2)
    plan = runner.plan(require_datasets=False)
    # The second line's resumable job waits for the first line's fresh jobs.
    assert [job.spec.model_num for job in plan.queue] == [1, 11]
    assert plan.state(jobs[0].key) == JobState(jobs[0], JobStatus.LATER, resume_step=2)
    # Within a line, a job that can resume goes before lower-numbered fresh ones.
    _checkpointed_at(jobs[11], 2)
    plan = runner.plan(require_datasets=False)
    assert [job.spec.model_num for job in plan.queue] == [11, 1]
    assert plan.state(jobs[11].key).status is JobStatus.RESUMABLE


def test_the_dry_run_names_each_state_of_a_job(tmp_path) -> None:
    [job] = plan_jobs(STUDY, tmp_path, steps=3, datasets=["dummy_data"], model_nums=[0])
    shown = {status: state_text(JobState(job, status)) for status in (
        JobStatus.FINISHED, JobStatus.TO_RUN, JobStatus.LATER, JobStatus.RUNNING)}
    # A running job without a progress file (started by an older version): no more than that.
    assert shown == {JobStatus.FINISHED: "finished", JobStatus.TO_RUN: "to run",
                     JobStatus.LATER: "later", JobStatus.RUNNING: "running"}
    assert state_text(JobState(job, JobStatus.RESUMABLE, resume_step=4)) == "resume from 4"


@pytest.mark.parametrize(("lines", "extra", "message"), [
    ([f"--study {STUDY} --datasets dummy_data", f"--study {STUDY} --bogus 1"], [],
     "grid.txt, line 2: unrecognized arguments: --bogus 1"),
    (["--datasets dummy_data"], [], "grid.txt, line 1: the following arguments are required"),
    (["# nothing but a comment"], [], "has no selection lines"),
    ([f"--study {STUDY} --models vae"], [], f"grid.txt, line 1: {STUDY} has no model vae"),
    ([f"--study {STUDY}"], ["--study", STUDY, "--seeds", "0"],
     "--selections replaces --study, --seeds: put them in the file's lines instead"),
    # Named by the flags one types, not argparse's names (wheres, gin_configs).
    ([f"--study {STUDY}"], ["--where", "model.random_seed = 0", "--gin_config", "x.gin"],
     "--selections replaces --where, --gin_config: put them in the file's lines instead"),
    # An execution option in the file: where it goes instead.
    ([f"--study {STUDY} --steps 100"], [],
     ("grid.txt, line 1: unrecognized arguments: --steps 100 (a line holds --study and the "
      "selection filters")),
    (None, [], "cannot read --selections file"),
    # One directory, two jobs: the second line would be dropped without a word.
    ([f"--study {STUDY} --datasets dummy_data --model_nums 0 --metrics mig",
      f"--study {STUDY} --datasets dummy_data --model_nums 0 1"], [],
     "grid.txt, lines 1 and 2 name"),
])
def test_a_bad_selections_file_is_one_clear_error(tmp_path, lines, extra, message) -> None:
    selections = tmp_path / "grid.txt"
    if lines is not None:
        selections.write_text("\n".join(lines) + "\n")
    proc = run_script("splitenc_reproduce", "--selections", str(selections), *extra,
                      "--output_directory", str(tmp_path / "out"), "--dry_run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_runner_outwaits_a_momentary_probe_of_a_jobs_lock(tmp_path) -> None:
    # A dry run probes a job's lock by taking it for an instant; a runner that
    # meets the probe must not skip the (free) job as busy.
    import fcntl
    import threading

    from splitenc_plugin.sweep.lock import LOCK_PATIENCE_S, job_lock, lock_path

    job_dir = tmp_path / STUDY / "20"
    with job_lock(job_dir) as probe:
        assert probe is not None
        with job_lock(job_dir) as other:
            assert other is None  # held: no patience, no lock
        release = threading.Timer(0.2, lambda: fcntl.flock(probe, fcntl.LOCK_UN))
        release.start()
        with job_lock(job_dir, patience=LOCK_PATIENCE_S) as fd:
            release.join()
            assert fd is not None and lock_path(job_dir).exists()


def _train_step(job: Path) -> int:
    return json.loads((job / "model/results/json/train_results.json").read_text())["global_step"]


def test_unfinished_job_resumes_training_from_its_checkpoint(tmp_path) -> None:
    # beta-TCVAE (model 20): one optimizer, so one global step per training step.
    # A finished 4-step job provides a real checkpoint at global step 4 and the
    # record of the attempt that wrote it (oneDNN off) ...
    btc = ("--models", "beta_tc_vae", "--seeds", "0", "--encoders", "conv_encoder")
    off, on = {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert_ok(_reproduce(tmp_path / "a", *btc, "--steps", "4", env=off))
    source = tmp_path / "a" / STUDY / "20"
    assert _train_step(source) == 4  # max_steps on a fresh estimator == dlib's steps
    # ... which becomes the state of an interrupted 8-step job of the same model.
    [job] = plan_jobs(STUDY, tmp_path / "b", steps=8, datasets=["dummy_data"],
                      models=["beta_tc_vae"], encoders=["conv_encoder"], seeds=[0],
                      gin_bindings=["model.eval_steps = 5"], metrics=["mig"])  # as TINY
    job.job_dir.mkdir(parents=True)
    write_json_atomic(job.job_dir / JOB_FILE, {"spec": job.spec.to_dict(), "options": {}})
    shutil.copytree(source / CHECKPOINT_DIR, job.job_dir / CHECKPOINT_DIR)
    shutil.copy(source / RESUMES_FILE, job.job_dir / RESUMES_FILE)
    stale = job.job_dir / "postprocessed" / "mean" / "half-written"
    stale.parent.mkdir(parents=True)
    stale.write_text("from the interrupted attempt")
    (job.job_dir / "job.log").write_text("the interrupted attempt's log\n")

    plan = _plan(tmp_path / "b", *btc, "--steps", "8")
    assert plan.state(job.key) == JobState(job, JobStatus.RESUMABLE, resume_step=4)
    # With --max_jobs, a job that can resume goes before lower-numbered fresh ones.
    ahead = _plan(tmp_path / "b", *btc, "--models", "factor_vae", "beta_tc_vae",
                  "--steps", "8", "--max_jobs", "1")  # models 0 and 20
    assert ahead.state(job.key).status is JobStatus.RESUMABLE
    assert ahead.state(job.key).resume_step == 4 and list(ahead.queue) == [job]
    assert ahead.state(f"{STUDY}/0").status is JobStatus.LATER
    proc = _reproduce(tmp_path / "b", *btc, "--steps", "8", env=on)  # resumed with oneDNN on
    assert_ok(proc)
    assert "1 job(s) finished now, 0 earlier, 0 failed" in proc.stdout
    assert f"finished: {STUDY}/20" in proc.stderr and "resumed from step 4" in proc.stderr
    done = json.loads((job.job_dir / DONE_FILE).read_text())
    assert done["resumed_from_steps"] == [4] and done["identity"]["steps"] == 8
    # Each attempt's kernels: TF's switch decides (x86-64 builds have oneDNN;
    # test_compat checks the switch itself).
    assert done["onednn_by_attempt"] == [False, True]
    assert _train_step(job.job_dir) == 8 and not stale.exists()
    assert not (job.job_dir / "resume_checkpoint").exists()
    # The learning curves join the attempts: the first one's summaries up to
    # the step the second resumed from (here all of them), then the second's.
    first = json.loads((source / "model" / CURVES_FILE).read_text())
    joined = json.loads((job.job_dir / "model" / CURVES_FILE).read_text())
    k = len(first["steps"])
    assert k and max(first["steps"]) <= 4 and len(joined["steps"]) > k
    assert {tag: values[:k] for tag, values in joined.items()} == first
    assert min(joined["steps"][k:]) > 4
    # The log is appended to, for humans.
    assert (job.job_dir / "job.log").read_text().startswith("the interrupted attempt's log")
    # Only the remaining steps ran: the second attempt reported no step below 4.
    progress = read_progress(job.job_dir)
    assert progress.attempt == 2 and progress.phase == "done" and progress.total_steps == 8
    steps = [step for _, step in progress.recent_steps]
    assert steps and min(steps) >= 4
    row = load_results(tmp_path / "b")[0].iloc[0]
    assert row["resumed_from_steps"] == "4" and math.isnan(row["training_time_s"])


def _interrupted_attempt(job: Path, events: str, checkpoint: int | None = None) -> None:
    """The estimator directory an attempt leaves: its event file and maybe a checkpoint."""
    live = job / CHECKPOINT_DIR
    live.mkdir(parents=True, exist_ok=True)
    (live / f"events.out.tfevents.{events}.vm").write_text(events)
    if checkpoint is not None:
        (live / f"model.ckpt-{checkpoint}.index").write_text("index")
        (live / f"model.ckpt-{checkpoint}.data-00000-of-00001").write_text("data")


def test_a_resume_keeps_each_interrupted_attempts_summaries_once(tmp_path) -> None:
    job = tmp_path / "job"
    _interrupted_attempt(job, "first", checkpoint=250)
    (job / "postprocessed").mkdir()
    assert prepare_resume(job) == 250
    kept_250 = job / ATTEMPT_EVENTS_DIR / "250"
    assert attempt_events(job) == [(kept_250, 250)]
    assert [p.read_text() for p in kept_250.iterdir()] == ["first"]
    assert not (job / "model").exists() and not (job / "postprocessed").exists()
    # An attempt that saved no checkpoint of its own: none of its summaries
    # (all after 250) count, and none are kept.
    _interrupted_attempt(job, "second")
    assert prepare_resume(job) == 250 and attempt_events(job) == [(kept_250, 250)]
    assert [p.read_text() for p in kept_250.iterdir()] == ["first"]
    _interrupted_attempt(job, "third", checkpoint=400)
    assert prepare_resume(job) == 400
    assert [step for _, step in attempt_events(job)] == [250, 400]
    # A crash after keeping, before clearing: the retry keeps nothing twice.
    _interrupted_attempt(job, "third", checkpoint=400)
    assert prepare_resume(job) == 400
    assert sorted(p.name for p in (job / ATTEMPT_EVENTS_DIR).iterdir()) == ["250", "400"]
    # --prune_heavy deletes them with the checkpoints (the curves are written by then).
    assert ATTEMPT_EVENTS_DIR in prune_heavy(job) and attempt_events(job) == []

    # A job without any checkpoint starts afresh: earlier summaries mean nothing.
    fresh = tmp_path / "fresh"
    (fresh / ATTEMPT_EVENTS_DIR / "100").mkdir(parents=True)
    _interrupted_attempt(fresh, "lost")
    assert prepare_resume(fresh) is None and attempt_events(fresh) == []
    assert not (fresh / ATTEMPT_EVENTS_DIR).exists()


def test_a_running_job_is_never_touched_by_a_second_runner(tmp_path) -> None:
    args = [str(BIN_DIR / "splitenc_reproduce"), *TINY, "--output_directory", str(tmp_path),
            "--seeds", "0", "--encoders", "conv_encoder", "--steps", "1000000"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    job = tmp_path / STUDY / "0"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not _training(job):
            assert time.time() < deadline and proc.poll() is None, "the job never started"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # the runner dies, its job lives on
        proc.wait(timeout=30)
        job_pid = json.loads((tmp_path / STUDY / ".0.lock").read_text())["pid"]
        os.kill(job_pid, 0)  # still running
        before = (job / JOB_FILE).stat().st_mtime_ns

        plan = _runner(*args[1:]).plan(require_datasets=False)
        state = plan.state(f"{STUDY}/0")
        assert state.status is JobStatus.RUNNING and not plan.queue
        # The plan shows how far the running job is, from its progress file.
        assert re.match(r"running \(train \d+/1000000[,)]", state_text(state)), state_text(state)
        # A job running elsewhere takes no --max_jobs slot: the next job gets it.
        fill = _runner(*args[1:], "--seeds", "0", "1", "--max_jobs", "1").plan(
            require_datasets=False)
        assert [job.key for job in fill.running] == [f"{STUDY}/0"]
        assert [job.key for job in fill.queue] == [f"{STUDY}/1"]
        assert fill.state(f"{STUDY}/1").status is JobStatus.TO_RUN and not fill.later
        # A runner that planned before the job started still finds it busy at its lock.
        [planned] = plan_jobs(STUDY, tmp_path, steps=1000000, datasets=["dummy_data"],
                              models=["factor_vae"], encoders=["conv_encoder"], seeds=[0],
                              gin_bindings=["model.eval_steps = 5"], metrics=["mig"])
        outcome = execute_job(planned.to_dict())
        assert outcome.status is RunStatus.BUSY and f"pid {job_pid} on " in outcome.error
        second = run_script(*args[0:1], *args[1:])
        assert second.returncode == 3, second.stdout + second.stderr  # EXIT_BUSY
        assert "1 job(s) are being run by another process and were left alone" in second.stderr
        assert f"pid {job_pid} on " in second.stderr
        assert (job / JOB_FILE).stat().st_mtime_ns == before
        assert read_progress(job).pid == job_pid and _training(job)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def _training(job_dir: Path) -> bool:
    """Whether the job's progress file reports a training step."""
    progress = read_progress(job_dir)
    return progress is not None and progress.phase == "train" and progress.step is not None


def test_no_job_of_a_stopped_run_starts_and_its_directory_is_untouched(tmp_path) -> None:
    # A job whose thread took its lock just as the run was stopped (Ctrl-C,
    # SIGTERM; on Dask a retry waiting for its release) must not start.
    [stopped, other] = [
        plan_jobs(STUDY, tmp_path, steps=3, datasets=["dummy_data"], models=["factor_vae"],
                  encoders=["conv_encoder"], seeds=[seed], metrics=["mig"],
                  gin_bindings=["model.eval_steps = 5"])[0]
        for seed in (0, 1)]
    _interrupted_attempt(stopped.job_dir, "first", checkpoint=2)  # a resumable directory
    before = _hashes(stopped.job_dir)
    run_id = f"test-run-{time.time_ns()}"
    assert terminate_children(run_id) == 0  # nothing of it runs yet
    outcome = execute_job(stopped.to_dict(), run_id=run_id)
    assert outcome.status is RunStatus.FAILED and outcome.error.startswith("not started")
    assert _hashes(stopped.job_dir) == before and not (stopped.job_dir / LOG_FILE).exists()
    # Another run in the same process (a Dask worker serves several) is not stopped.
    assert execute_job(other.to_dict(), run_id=f"{run_id}-other").status is RunStatus.DONE


def test_a_job_killed_while_pruning_is_finished_not_trained_again(tmp_path) -> None:
    # Killed (SIGKILL, as by a walltime) the moment --prune_heavy starts
    # deleting its checkpoints: done.json is written by then, so the job is
    # finished with heavy files left over, never cleared and trained again.
    probe = Path(__file__).parent / "probes" / "kill_on_prune"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, (str(probe),
                                                       os.environ.get("PYTHONPATH"))))}
    killed = _reproduce(tmp_path, "--seeds", "0", "--encoders", "conv_encoder",
                        "--prune_heavy", env=env)
    assert killed.returncode == 1  # the job process died
    job = tmp_path / STUDY / "0"
    done = json.loads((job / DONE_FILE).read_text())
    assert CHECKPOINT_DIR in done["pruned"] and (job / CHECKPOINT_DIR).is_dir()
    before = _hashes(job)
    again = _reproduce(tmp_path, "--seeds", "0", "--encoders", "conv_encoder", "--prune_heavy")
    assert_ok(again)
    assert "nothing to do" in again.stdout and _hashes(job) == before


def test_a_job_whose_learning_curves_failed_keeps_their_event_files(tmp_path) -> None:
    # learning_curves.json cannot be written (the probe fails its move into
    # place, as a full disk would): the model is finished all the same, but
    # --prune_heavy keeps the event files, the curves' only source.
    probe = Path(__file__).parent / "probes" / "curves_write_fails"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, (str(probe),
                                                       os.environ.get("PYTHONPATH"))))}
    proc = _reproduce(tmp_path, "--seeds", "0", "--encoders", "conv_encoder", "--prune_heavy",
                      env=env)
    assert_ok(proc)
    job = tmp_path / STUDY / "0"
    assert json.loads((job / DONE_FILE).read_text())["pruned"] == []
    assert not (job / "model" / CURVES_FILE).exists()
    assert list((job / CHECKPOINT_DIR).glob(EVENT_GLOB))  # (pruned otherwise: the Dask test)


def test_pruned_visualized_job_keeps_what_appendix_c_needs(tmp_path) -> None:
    proc = _reproduce(tmp_path, "--seeds", "0", "--encoders", "conv_encoder", "--visualize",
                      "--prune_heavy")
    assert_ok(proc)
    job = tmp_path / STUDY / "0"
    pruned = json.loads((job / DONE_FILE).read_text())["pruned"]
    assert {"visualizations/animated_traversals",
            "visualizations/interventional_effects", "model/tfhub"} <= set(pruned)
    kept = job / "visualizations"
    assert (kept / "reconstructions" / "reconstructions.jpg").is_file()
    assert len(list((kept / "traversals").glob("traversals*.jpg"))) == 10  # one per latent
    assert len(list((kept / "traversals_fitted").glob("traversals*.jpg"))) == 10
    assert np.loadtxt(kept / "traversals_fitted" / "values.csv", delimiter=",").shape == (11, 10)
    assert not list(job.rglob("*.gif")) and not list(job.rglob("tfhub"))
    result = aggregate(tmp_path, tmp_path / "agg")
    assert tmp_path / "agg" / "figures" / f"{STUDY}_dummy_data_appendix_c.png" in \
        result["figures"]
    assert "left out of Appendix C" not in result["summary"].read_text()


# --------------------------------------------------------------------------
# Finished results are never deleted: broken markers and other data stop the command.

SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``finished_job``


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory) -> Path:
    """An output directory holding one finished tiny job (model 0), trained once."""
    out = tmp_path_factory.mktemp("finished")
    assert_ok(_reproduce(out, "--seeds", "0", "--encoders", "conv_encoder"))
    return out


def _conflicted(text: str) -> str:
    return f"<<<<<<< HEAD\n{text}=======\n{text}>>>>>>> theirs\n"


@SHARED_FIXTURE
@pytest.mark.parametrize(("name", "damage", "message"), [
    (DONE_FILE, _conflicted, "merge-conflict markers"),
    (DONE_FILE, lambda text: text[: len(text) // 2], "is not valid JSON"),
    (DONE_FILE, lambda text: json.dumps({"status": "done", "spec": {}}), "no 'identity'"),
    # Not UTF-8 (a binary merge, another tool's encoding): the same one error.
    (DONE_FILE, lambda text: text.encode().replace(b"identity", b"identit\xff"),
     "is not valid JSON"),
    # A finished job's result, cut off: the job is not "finished" (nor rerun).
    ("metrics/mean/mig/results/aggregate/evaluation.json", lambda text: text[: len(text) // 2],
     "cannot be read as dlib's result JSON"),
])
def test_a_broken_marker_stops_the_command_and_nothing_is_deleted(
        finished_job, tmp_path, name, damage, message) -> None:
    out = tmp_path / "out"
    shutil.copytree(finished_job, out)
    marker = out / STUDY / "0" / name
    damaged = damage(marker.read_text())
    marker.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    before = _hashes(out)
    for extra in ((), ("--dry_run",)):
        proc = _reproduce(out, "--seeds", "0", "--encoders", "conv_encoder", *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert str(marker) in proc.stderr and message in proc.stderr
        assert "train step" not in proc.stdout + proc.stderr
        assert _hashes(out) == before


@SHARED_FIXTURE
def test_an_unfinished_job_of_an_older_schema_keeps_its_checkpoint(finished_job,
                                                                    tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(finished_job, out)
    job = out / STUDY / "0"
    (job / DONE_FILE).unlink()
    # An older job.json: its spec lacks fields this version's JobSpec requires.
    (job / JOB_FILE).write_text(json.dumps({"spec": {"study": STUDY, "model_num": 0}}))
    before = _hashes(out)
    proc = _reproduce(out, "--seeds", "0", "--encoders", "conv_encoder")
    assert proc.returncode == 2 and "another schema" in proc.stderr, proc.stderr
    assert _hashes(out) == before


@SHARED_FIXTURE
@pytest.mark.parametrize(("name", "damage", "message"), [
    (DATA_FILE, lambda record: json.dumps({**record, "fingerprint": "other-data:1234",
                                           "label": "some other data (1234)"}),
     "started training on some other data (1234)"),
    (DATA_FILE, lambda record: json.dumps(record)[:10], "is not valid JSON"),
    (RESUMES_FILE, lambda record: json.dumps(record)[:10], "is not valid JSON"),
])
def test_a_checkpoint_that_cannot_resume_here_stops_the_command_before_any_job(
        finished_job, tmp_path, name, damage, message) -> None:
    # An unfinished job of this identity with a checkpoint (resumable), whose
    # data record says other data or cannot be read: refused at planning,
    # like a finished job on other data, before any job (or TF) starts.
    out = tmp_path / "out"
    shutil.copytree(finished_job, out)
    job = out / STUDY / "0"
    (job / DONE_FILE).unlink()
    assert _plan(out, "--seeds", "0", "--encoders", "conv_encoder").state(
        f"{STUDY}/0").status is JobStatus.RESUMABLE
    record = job / name
    record.write_text(damage(json.loads(record.read_text())))
    before = _hashes(out)
    for extra in ((), ("--dry_run",)):
        proc = _reproduce(out, "--seeds", "0", "--encoders", "conv_encoder", *extra)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert message in proc.stderr and str(job) in proc.stderr, proc.stderr
        assert "train step" not in proc.stdout + proc.stderr and _hashes(out) == before


@SHARED_FIXTURE
def test_a_job_finished_on_other_data_is_refused_naming_both(finished_job, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(finished_job, out)
    done_path = out / STUDY / "0" / DONE_FILE
    done = json.loads(done_path.read_text())
    # The job recorded the data it trained on.
    assert done["data"]["fingerprint"] == "dummy_data"
    done["data"] = {"dataset": "dummy_data", "fingerprint": "other-data:1234",
                    "label": "some other data (1234)", "files": {}}
    write_json_atomic(done_path, done)
    before = _hashes(out)
    proc = _reproduce(out, "--seeds", "0", "--encoders", "conv_encoder", "--dry_run")
    assert proc.returncode == 2
    assert "some other data (1234)" in proc.stderr and "dlib dummy_data" in proc.stderr
    assert _hashes(out) == before
