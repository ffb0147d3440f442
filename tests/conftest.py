"""Shared test helpers: running dlib's console scripts in the test venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GIN_DIR = REPO / "gin"
BIN_DIR = Path(sys.executable).parent


def run_script(name: str, *args: str, env: dict | None = None, cwd: str | Path | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs one of the venv's console scripts (e.g. dlib_train) verbatim."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([str(BIN_DIR / name), *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, check=False)


def run_python(code: str, env: dict | None = None, timeout: float = 600,
               cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter of the test venv (start-up hook active)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, check=False)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"


@pytest.fixture
def clean_gin():
    """Clears gin's bindings before and after a test, so no state leaks."""
    import gin

    gin.clear_config()
    yield
    gin.clear_config()
