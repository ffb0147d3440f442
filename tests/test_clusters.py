"""splitenc_reproduce on clusters: ``--cluster slurm`` on a real local Slurm, and jobs that survive their worker.

The Slurm tests start a single-node Slurm on this machine (tests/slurm_cluster.py)
and skip, with one line saying how to enable them, where Slurm is not
installed; ``.ci/run`` installs it. Every job trains a few steps on dlib's
in-memory ``dummy_data`` and evaluates dlib's MIG only (``--metrics mig``).
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import BIN_DIR, OTHER_THREADS, assert_ok, run_script
from slurm_cluster import LocalSlurm, missing

from splitenc_plugin.sweep.clusters import wait_for_release
from splitenc_plugin.sweep.execute import thread_env
from splitenc_plugin.sweep.job_files import resumable_step
from splitenc_plugin.sweep.lock import job_lock, lock_path
from splitenc_plugin.sweep.progress import read_progress

STUDY = "split_encoder_study_v1"
# Models 0 and 1: factor_vae + conv_encoder, seeds 0 and 1 (dummy data).
TWO_JOBS = ("--study", STUDY, "--datasets", "dummy_data", "--models", "factor_vae",
            "--encoders", "conv_encoder", "--seeds", "0", "1",
            "--gin_bindings", "model.eval_steps = 5", "--metrics", "mig", "--no_progress",
            "--threads_per_job", "1")
# Small batch jobs, so that they fit beside whatever else runs on the test machine.
SLURM = ("--cluster", "slurm", "--cluster_cores", "1", "--cluster_memory", "2GB",
         "--cluster_walltime", "00:30:00", "--cluster_interface", "lo")


def _hashes(directory: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                            p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _start(out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN_DIR / "splitenc_reproduce"), *TWO_JOBS, "--output_directory", str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def _training_with_checkpoint(job: Path) -> bool:
    progress = read_progress(job)
    return progress is not None and progress.phase == "train" and progress.step is not None \
        and resumable_step(job) is not None


def _wait(condition, what: str, runner: subprocess.Popen, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while not condition():
        if runner.poll() is not None or time.time() > deadline:
            runner.kill()
            raise AssertionError(f"{what} never happened:\n{runner.communicate()[0]}")
        time.sleep(0.3)


# --------------------------------------------------------------------------
# Bad cluster options: one clear error, nothing submitted (no Slurm needed)

@pytest.fixture
def fake_batch_system(tmp_path) -> tuple[dict, Path]:
    """A PATH whose sbatch/qsub only record that they were called (and reject the job)."""
    bin_dir, calls = tmp_path / "fakebin", tmp_path / "submitted"
    bin_dir.mkdir()
    for name in ("sbatch", "qsub"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n"
                          "echo 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n")
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, calls


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "slurm", "--cluster_cores", "0"], "--cluster_cores must be >= 1"),
    (["--cluster", "slurm", "--cluster_jobs", "0"], "--cluster_jobs must be >= 1"),
    (["--cluster", "slurm", "--cluster_memory", "lots"], "--cluster_memory must be a size"),
    (["--cluster", "slurm", "--cluster_walltime", "25h"],
     "--cluster_walltime must be HH:MM:SS or D-HH:MM:SS for slurm"),
    (["--cluster", "pbs", "--cluster_walltime", "1-00:00:00"],
     "--cluster_walltime must be HH:MM:SS for pbs"),
    (["--cluster", "slurm", "--cluster_queue", "gpu; rm -rf /"], "--cluster_queue must be"),
    (["--cluster", "slurm", "--cluster_directive", ""], "--cluster_directive takes one"),
    (["--cluster", "slurm", "--cluster_interface", "nope0"], "is not a network interface"),
    (["--cluster", "slurm", "--retries", "-1"], "--retries must be >= 0"),
    (["--cluster", "slurm", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
    (["--cluster_cores", "4"], "--cluster_cores needs --cluster slurm or --cluster pbs"),
    (["--cluster", "slurm", "--study", "nope"], "unknown study 'nope'"),
])
def test_bad_cluster_options_fail_before_any_submission(tmp_path, fake_batch_system, args,
                                                        message) -> None:
    env, calls = fake_batch_system
    out = tmp_path / "out"
    proc = run_script("splitenc_reproduce", *TWO_JOBS, *args, "--output_directory", str(out),
                      env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not calls.exists(), "a batch job was submitted"
    assert not out.exists()


def test_a_missing_submit_command_or_a_rejected_batch_job_is_one_clear_error(
        tmp_path, fake_batch_system) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_script("splitenc_reproduce", *TWO_JOBS, "--cluster", "slurm",
                      "--output_directory", str(tmp_path / "a"), env={"PATH": str(empty)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "submits batch jobs with sbatch, which is not on PATH" in proc.stderr
    env, calls = fake_batch_system
    proc = run_script("splitenc_reproduce", *TWO_JOBS, "--cluster", "slurm",
                      "--cluster_queue", "nope", "--output_directory", str(tmp_path / "b"),
                      env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "could not start the slurm cluster: sbatch rejects its batch job" in proc.stderr
    assert "invalid partition specified: nope" in proc.stderr and "Traceback" not in proc.stderr
    assert len(calls.read_text().splitlines()) == 1  # the one rejected submission
    assert not list((tmp_path / "b").rglob("job.json"))  # no job started


# --------------------------------------------------------------------------
# The job's lock, as clusters uses it (no Dask needed)

def test_a_retry_waits_for_its_lost_copy_to_release_the_jobs_lock(tmp_path) -> None:
    # clusters takes the job's lock through the lock module's public context
    # manager: a retry starts only once the lost copy's process has ended.
    job_dir = tmp_path / STUDY / "0"
    with job_lock(job_dir) as lost_copy:
        assert lost_copy is not None and lock_path(job_dir).is_file()
        assert not wait_for_release(job_dir, timeout=0.2)  # still held
        released = threading.Event()

        def end_lost_copy() -> None:
            released.set()  # before the unlock: a wait that returns earlier did not wait
            fcntl.flock(lost_copy, fcntl.LOCK_UN)

        release = threading.Timer(0.5, end_lost_copy)
        release.start()
        assert wait_for_release(job_dir, timeout=30)
        assert released.is_set()
        release.join()
    with job_lock(job_dir) as fd:  # wait_for_release holds the lock for an instant only
        assert fd is not None


def test_the_sweep_modules_import_no_private_names_of_each_other() -> None:
    # e.g. clusters takes the lock and subclasses the Dask pool by their public names.
    sweep = Path(__file__).resolve().parents[1] / "splitenc_plugin" / "sweep"
    private = [(path.name, node.module, alias.name)
               for path in sorted(sweep.glob("*.py"))
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ImportFrom)
               and (node.module or "").startswith("splitenc_plugin")
               for alias in node.names
               if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, private


# --------------------------------------------------------------------------
# A job lost with its worker is retried on another worker (Dask LocalCluster)

def test_a_job_lost_with_its_worker_resumes_on_another_worker(tmp_path) -> None:
    distributed = pytest.importorskip("distributed")
    import psutil

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        runner = _start(tmp_path, "--model_nums", "0", "--steps", "150",
                        "--scheduler", cluster.scheduler_address)
        job = tmp_path / STUDY / "0"
        _wait(lambda: _training_with_checkpoint(job), "training with a checkpoint", runner)
        # The worker's machine is lost: the worker and its job die together.
        job_pid = json.loads((tmp_path / STUDY / ".0.lock").read_text())["pid"]
        worker = psutil.Process(job_pid).parent()
        worker.send_signal(signal.SIGKILL)
        os.kill(job_pid, signal.SIGKILL)
        output = runner.communicate(timeout=600)[0]
    assert runner.returncode == 0, output
    assert "1 job(s) finished now, 0 earlier, 0 failed" in output
    assert f"{STUDY}/0: done on attempt 2" in output  # the summary names the retried job
    done = json.loads((job / "done.json").read_text())
    assert len(done["resumed_from_steps"]) == 1  # resumed from its checkpoint, once
    assert not (tmp_path / STUDY / ".0.attempts").exists()


# --------------------------------------------------------------------------
# A real single-node Slurm

@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node Slurm; its clients find it through ``slurm.env``."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _no_slurm_jobs_left(slurm: LocalSlurm) -> bool:
    deadline = time.time() + 60
    while slurm.jobs() and time.time() < deadline:
        time.sleep(1)
    return not slurm.jobs()


@pytest.mark.xdist_group("slurm")
def test_the_local_slurm_runs_a_batch_job(slurm, tmp_path) -> None:
    out = tmp_path / "hostname.txt"
    slurm.run("sbatch", "--wait", f"--output={out}", "--wrap", "hostname")
    assert out.read_text().strip() == slurm.node


@pytest.mark.xdist_group("slurm")
def test_tiny_study_end_to_end_through_cluster_slurm(slurm, tmp_path) -> None:
    proc = run_script("splitenc_reproduce", *TWO_JOBS, *SLURM, "--steps", "3",
                      "--cluster_jobs", "2", "--cluster_queue", slurm.partition,
                      # Other thread limits where sbatch is called (Slurm exports them):
                      # a "1" in done.json can only come from --threads_per_job.
                      "--output_directory", str(tmp_path), env={**slurm.env, **OTHER_THREADS})
    assert_ok(proc)
    assert "up to 2 Slurm batch job(s) (1 cores, 2GB, 00:30:00 each)" in proc.stdout
    assert "Dask dashboard at http" in proc.stdout
    assert "2 job(s) finished now, 0 earlier, 0 failed" in proc.stdout
    for num in (0, 1):
        done = json.loads((tmp_path / STUDY / str(num) / "done.json").read_text())
        assert done["identity"]["steps"] == 3
        assert done["thread_env"] == thread_env(1)
    # The workers ran as Slurm jobs, whose output went to the log directory.
    assert list((tmp_path / "cluster_logs").glob("splitenc-*.err"))
    assert _no_slurm_jobs_left(slurm), slurm.jobs()


# Long (CI runs it): the runner's retry and resume of a lost job is checked more
# cheaply on Dask above; Slurm resubmission and untouched finished results only here.
@pytest.mark.long
@pytest.mark.xdist_group("slurm")
def test_a_cancelled_slurm_job_is_retried_and_finished_results_are_untouched(
        slurm, tmp_path) -> None:
    # One batch job at a time: when it is cancelled, the runner must submit another.
    runner = _start(tmp_path, *SLURM, "--steps", "150", "--cluster_jobs", "1",
                    "--cluster_queue", slurm.partition, env=slurm.env)
    jobs = [tmp_path / STUDY / str(num) for num in (0, 1)]

    def one_finished_one_training() -> bool:
        return any((j / "done.json").exists() for j in jobs) and \
            any(_training_with_checkpoint(j) for j in jobs if not (j / "done.json").exists())

    _wait(one_finished_one_training, "one job finished and the other training", runner,
          timeout=900)
    finished = next(j for j in jobs if (j / "done.json").exists())
    training = next(j for j in jobs if j is not finished)
    before = _hashes(finished)
    [batch_job] = slurm.jobs()
    slurm.run("scancel", batch_job["id"])
    output = runner.communicate(timeout=900)[0]
    assert runner.returncode == 0, output
    assert "2 job(s) finished now, 0 earlier, 0 failed" in output
    assert f"{STUDY}/{training.name}: done on attempt 2" in output
    assert len(json.loads((training / "done.json").read_text())["resumed_from_steps"]) == 1
    assert _hashes(finished) == before
    assert _no_slurm_jobs_left(slurm), slurm.jobs()
