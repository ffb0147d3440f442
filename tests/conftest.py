"""Shared test helpers: running dlib's console scripts in the test venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from _splitenc_plugin_hook import env_flag
from splitenc_plugin.data.lean_data import CACHE_ENV
from splitenc_plugin.sweep.execute import thread_env

REPO = Path(__file__).resolve().parents[1]
GIN_DIR = REPO / "gin"
BIN_DIR = Path(sys.executable).parent


def run_script(name: str, *args: str, env: dict | None = None, cwd: str | Path | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs one of the venv's console scripts (e.g. dlib_train) verbatim."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([str(BIN_DIR / name), *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, check=False)


def eq13_covariance(sigma: float, num_latent: int) -> np.ndarray:
    """Sigma = (1 - sigma) I + sigma 11^T: the paper's Eq 13, written out for tests."""
    return (1.0 - sigma) * np.eye(num_latent) + sigma * np.ones((num_latent, num_latent))


def _run_interpreter(argv: list[str], env: dict | None, timeout: float,
                     cwd: str | Path | None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, check=False)


def run_python(code: str, env: dict | None = None, timeout: float = 600,
               cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter of the test venv (start-up hook active)."""
    return _run_interpreter(["-c", code], env, timeout, cwd)


def run_python_file(path: str | Path, *args: str, env: dict | None = None,
                    timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs a probe script (``tests/probes/``) in a fresh interpreter of the test venv."""
    return _run_interpreter([str(path), *args], env, timeout, cwd=None)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"


# Tests marked ``long`` take minutes of the 2 cores and re-check what the rest
# of the suite covers more cheaply: bench/'s smoke runs (the benchmarks' own
# output shape), dlib's longest unit-test modules (every dlib model and
# metric through the compat layer), the smoke runs of two bin/ scripts that wrap
# the same entry point as a third, and the Slurm retry (the Dask one checks the
# same runner logic). ``make test`` skips them; ``SPLITENC_ALL_TESTS=1 make test``
# runs everything, and CI (.ci/run) always does.
ALL_TESTS_ENV = "SPLITENC_ALL_TESTS"


# Thread limits a test sets around a runner whose jobs inherit its environment,
# so that a job's recorded limits of 1 can only come from --threads_per_job 1.
OTHER_THREADS = thread_env(3)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", f"long: minutes of CPU; skipped unless {ALL_TESTS_ENV}=1 (CI sets it)")
    if CACHE_ENV not in os.environ:
        # The tests' packed-data caches and verified-file markers live and die
        # with the run (and reach its subprocesses), not in the user's ~/.cache.
        config._splitenc_cache = tempfile.mkdtemp(prefix="splitenc-test-cache-")
        os.environ[CACHE_ENV] = config._splitenc_cache
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        # An xdist worker: its share of the cores as TensorFlow's threads, in the
        # variables ``splitenc_reproduce --threads_per_job`` sets, so the workers'
        # TF processes (their own and their subprocesses') do not oversubscribe the
        # cores, where TF's thread pools spin. Unless set already. (numpy is
        # imported above: OMP_NUM_THREADS reaches only the subprocesses.)
        share = max(1, (os.cpu_count() or 1) // workers)
        for name, value in thread_env(share).items():
            os.environ.setdefault(name, value)
    if config.getoption("dist", "no") == "loadgroup" and _xdist_ignores_groups():
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"pytest {pytest.__version__} with --dist loadgroup: this pytest-xdist ignores "
            "xdist groups (pytest-xdist #1386), so shared module fixtures are built on "
            "every worker and the run is slower; setup.py's test extra installs pytest<9.2"),
            stacklevel=2)


def pytest_unconfigure(config) -> None:
    cache = getattr(config, "_splitenc_cache", None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
        del os.environ[CACHE_ENV]


def _xdist_ignores_groups() -> bool:
    """pytest >= 9.2 with pytest-xdist <= 3.8 (pytest-xdist #1386; the newest release then)."""
    import xdist
    from packaging.version import Version

    return Version(pytest.__version__) >= Version("9.2.0.dev0") and \
        Version(xdist.__version__) < Version("3.9.0.dev0")


def pytest_collection_modifyitems(config, items) -> None:
    if env_flag(ALL_TESTS_ENV, default=False):  # the plugin's own switch reading
        return
    skip = pytest.mark.skip(reason=f"long test: {ALL_TESTS_ENV}=1 runs it (CI does)")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip)


def shared_fixture_group(module: str) -> pytest.MarkDecorator:
    """The mark of a module's tests that share one of its module-scoped fixtures.

    pytest-xdist's ``--dist loadgroup`` (``make test``) runs a group on one
    worker, so the fixture is built once, not once per worker that gets one of
    its tests. pytest 9.2 with pytest-xdist 3.8 ignores the groups
    (pytest-xdist issue #1386; checked 2026-12-03: a toy module's grouped tests
    ran on both workers under pytest 9.2.0, on one under 9.1.1), so setup.py's
    test extra caps pytest below 9.2 and ``pytest_configure`` warns under 9.2+.
    """
    return pytest.mark.xdist_group(module.removeprefix("test_"))


@pytest.fixture
def clean_gin():
    """Clears gin's bindings before and after a test, so no state leaks."""
    import gin

    gin.clear_config()
    yield
    gin.clear_config()
