"""The job protocol (``progress.json``) and the training instrumentation that feeds it.

The runner's progress bar and the dry run's estimates come from the progress
file alone: these tests give jobs a log that says nothing useful (reworded,
old-format or no log at all) and still get the progress and the estimate.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GIN_DIR, assert_ok, run_python, run_script

from splitenc_plugin._io import write_json_atomic
from splitenc_plugin.sweep.display import job_status, running_state
from splitenc_plugin.sweep.job_files import JOB_FILE
from splitenc_plugin.sweep.lock import lock_path
from splitenc_plugin.sweep.plan import plan_jobs
from splitenc_plugin.sweep.progress import (
    PROGRESS_FILE,
    RATE_WINDOW,
    Progress,
    ProgressWriter,
    read_progress,
)

STUDY = "split_encoder_study_v1"
BINDINGS = ("model.eval_steps = 5",)


class _Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _job(tmp_path: Path, steps: int = 100):
    [job] = plan_jobs(STUDY, tmp_path, steps=steps, datasets=["dummy_data"],
                      models=["beta_tc_vae"], encoders=["conv_encoder"], seeds=[0],
                      gin_bindings=BINDINGS)  # model 20
    return job


# --------------------------------------------------------------------------
# The schema

def test_progress_round_trips_through_its_json_form(tmp_path) -> None:
    clock = _Clock()
    writer = ProgressWriter(tmp_path, total_steps=1000, attempt=1, clock=clock)
    for step in (100, 200):
        clock.now += 10
        writer.step(step)
    writer.phase("evaluate", "mean/mig")
    on_disk = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert on_disk["schema"] == 1 and on_disk["phase"] == "evaluate"
    assert on_disk["pid"] == os.getpid() and on_disk["attempt"] == 1
    assert Progress.from_dict(on_disk) == writer.progress == read_progress(tmp_path)
    assert writer.progress.recent_steps == ((1_000_010.0, 100), (1_000_020.0, 200))


@pytest.mark.parametrize("content", ["", "{", json.dumps({"schema": 99, "phase": "train"}),
                                     json.dumps({"schema": 1, "phase": "sleeping"}), "[]"])
def test_an_absent_or_foreign_progress_file_reads_as_unknown(tmp_path, content) -> None:
    assert read_progress(tmp_path) is None
    (tmp_path / PROGRESS_FILE).write_text(content)
    assert read_progress(tmp_path) is None


def test_the_rate_is_over_the_newest_reports_of_one_attempt(tmp_path) -> None:
    clock = _Clock()
    first = ProgressWriter(tmp_path, total_steps=100_000, attempt=1, clock=clock)
    assert first.progress.rate() is None and first.progress.seconds_left() is None
    clock.now += 100
    first.step(1000)  # slow start: 1000 steps in 100 s, then 10 steps/s ...
    assert first.progress.rate() is None  # one report
    for _ in range(RATE_WINDOW):
        clock.now += 100
        first.step(first.progress.step + 1000)
    # ... only the newest RATE_WINDOW reports count.
    assert len(first.progress.recent_steps) == RATE_WINDOW
    assert first.progress.rate() == pytest.approx(10.0)
    assert first.progress.seconds_left() == pytest.approx((100_000 - 11_000) / 10.0)

    # The job is killed and resumes from an older checkpoint: a new attempt
    # starts without the old reports, so its rate never spans two processes.
    clock.now += 3600
    resumed = ProgressWriter(tmp_path, total_steps=100_000, attempt=2, step=9000, clock=clock)
    assert resumed.progress.step == 9000 and resumed.progress.recent_steps == ()
    clock.now += 50
    resumed.step(10_000)
    assert read_progress(tmp_path).rate() is None
    clock.now += 80
    resumed.step(11_000)
    assert read_progress(tmp_path).rate() == pytest.approx(12.5)
    resumed.phase("postprocess", "mean")
    assert read_progress(tmp_path).seconds_left() is None  # not training any more


def test_one_stalled_interval_does_not_set_the_rate(tmp_path) -> None:
    clock = _Clock()
    writer = ProgressWriter(tmp_path, total_steps=100_000, attempt=1, clock=clock)
    for seconds in (100, 100, 1800, 100, 100):  # 1000 steps each; the third paused 30 min
        clock.now += seconds
        writer.step((writer.progress.step or 0) + 1000)
    # Intervals at 10, 0.56, 10 and 10 steps/s: the median is 10 (the window's mean, 1.9).
    assert read_progress(tmp_path).rate() == pytest.approx(10.0)
    clock.now += 100
    writer.step(writer.progress.step)  # a report without progress is no interval
    assert read_progress(tmp_path).rate() == pytest.approx(10.0)


# --------------------------------------------------------------------------
# The runner reads the progress file, never the log

def test_progress_bar_status_comes_from_the_progress_file(tmp_path) -> None:
    job = _job(tmp_path)
    job.job_dir.mkdir(parents=True)
    (job.job_dir / "job.log").write_text("[splitenc job 10:00:00] train step 99/100\n")
    assert job_status(job) is None  # an old-format log alone shows nothing
    clock = _Clock(1000.0)
    writer = ProgressWriter(job.job_dir, total_steps=100, attempt=1, clock=clock)
    writer.step(40)
    (job.job_dir / "job.log").write_text("the log now says something else entirely\n")
    assert job_status(job, since=2000.0) is None  # progress of an earlier run
    assert job_status(job, since=500.0) == "20: train 40/100"
    clock.now = 2500.0  # this run resumed it
    writer.step(60)
    assert job_status(job, since=2000.0) == "20: train 60/100"
    writer.phase("evaluate", "mean/mig")
    assert job_status(job, since=2000.0) == "20: evaluate mean/mig"


def _hold_lock(job_dir: Path) -> int:
    """Takes the job's lock as a runner running it elsewhere would."""
    path = lock_path(job_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _dry_run(out: Path, steps: int) -> str:
    proc = run_script("splitenc_reproduce", "--study", STUDY, "--datasets", "dummy_data",
                      "--model_nums", "20", "--steps", str(steps), "--gin_bindings", *BINDINGS,
                      "--output_directory", str(out), "--dry_run")
    assert_ok(proc)
    return proc.stdout


def test_dry_run_estimates_a_running_job_from_its_progress_file_alone(tmp_path) -> None:
    job = _job(tmp_path, steps=100_000)
    job.job_dir.mkdir(parents=True)
    write_json_atomic(job.job_dir / JOB_FILE, {"spec": job.spec.to_dict(), "options": {}})
    fd = _hold_lock(job.job_dir)
    try:
        # A job started by an older version: its log has the old progress
        # lines, but there is no progress file. It shows as running, no more.
        (job.job_dir / "job.log").write_text(
            "[splitenc job 05:50:00] train step 9000/100000\n"
            "[splitenc job 05:51:40] train step 10000/100000\n")
        assert running_state(job.job_dir) == "running"
        assert re.search(rf"{STUDY}/20 +running +dummy_data", _dry_run(tmp_path, 100_000))

        # A job whose log says nothing about its progress.
        (job.job_dir / "job.log").write_text("nothing to see here\n")
        clock = _Clock()
        writer = ProgressWriter(job.job_dir, total_steps=100_000, attempt=1, clock=clock)
        for step in (88_000, 89_000, 90_000):
            clock.now += 100
            writer.step(step)
        expected = "running (train 90000/100000, 10.0 steps/s, ~0h16m left)"
        assert running_state(job.job_dir) == expected
        assert re.search(rf"{STUDY}/20 +{re.escape(expected)} ", _dry_run(tmp_path, 100_000))
    finally:
        os.close(fd)


def test_a_job_with_a_silent_log_still_reports_progress_to_the_dry_run(tmp_path) -> None:
    # A real job, whose output goes nowhere (no job.log at all), held by
    # "another runner" (this test holds its lock).
    steps = 5000
    job = _job(tmp_path, steps=steps)
    job.job_dir.mkdir(parents=True)
    write_json_atomic(job.job_dir / JOB_FILE, {"spec": job.spec.to_dict(), "options": {}})
    fd = _hold_lock(job.job_dir)
    proc = subprocess.Popen([sys.executable, "-m", "splitenc_plugin.sweep.job", str(job.job_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        deadline = time.time() + 300
        while (progress := read_progress(job.job_dir)) is None or progress.rate() is None:
            assert proc.poll() is None and time.time() < deadline, "the job never reported"
            time.sleep(0.5)
        assert progress.phase == "train" and progress.pid == proc.pid
        assert progress.attempt == 1 and progress.total_steps == steps
        plan = _dry_run(tmp_path, steps)
        assert re.search(rf"{STUDY}/20 +running \(train \d+/{steps}, [\d.]+ steps/s, "
                         r"~\d+h\d\dm left\) ", plan), plan
        assert not (job.job_dir / "job.log").exists()
    finally:
        proc.kill()
        proc.wait(timeout=60)
        os.close(fd)


# --------------------------------------------------------------------------
# The compat layer's TPUEstimator.train patch (what feeds the progress file)

def test_instrumented_training_reports_steps_and_is_idempotent(tmp_path) -> None:
    code = (
        "import json, sys\n"
        "import tensorflow.compat.v1 as tf\n"
        "from disentanglement_lib.methods.unsupervised import train\n"
        "from splitenc_plugin.compat import instrument_estimator_train\n"
        "steps, dirs = [], []\n"
        "instrument_estimator_train(on_step=lambda s: None)\n"
        "wrapped = tf.estimator.tpu.TPUEstimator.train\n"
        "instrument_estimator_train(before_train=dirs.append, on_step=steps.append)\n"
        "same = tf.estimator.tpu.TPUEstimator.train is wrapped\n"
        f"train.train_with_gin({str(tmp_path / 'model')!r}, True,\n"
        f"    [{str(GIN_DIR / 'betatcvae.gin')!r}],\n"
        "    ['model.training_steps = 4', 'model.eval_steps = 1',\n"
        "     \"dataset.name = 'dummy_data'\"])\n"
        "print('OUT' + json.dumps({'steps': steps, 'dirs': dirs, 'same': same}))\n")
    proc = run_python(code)
    assert_ok(proc)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("OUT"))
    result = json.loads(line[3:])
    # beta-TCVAE: one global step per iteration, each reported as the iteration read
    # it (before its update); the last callbacks win; the class is wrapped once.
    assert result == {"steps": [0, 1, 2, 3], "dirs": [str(tmp_path / "model" / "tf_checkpoint")],
                      "same": True}
