"""A built wheel carries what an installed (non-editable) plugin needs.

The checkout keeps the gin configs at the top level (``gin/``); a wheel must
carry them inside the package, where :func:`splitenc_plugin.gin_dir` finds them,
and the start-up hook's ``.pth`` at its top.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import GIN_DIR, REPO, run_python

# What the build reads (as in an sdist, MANIFEST.in): copied so that building
# leaves no build/ directory in the checkout.
BUILD_INPUTS = ("setup.py", "MANIFEST.in", "splitenc_plugin.pth", "_splitenc_plugin_hook.py",
                "splitenc_plugin", "gin")


def test_wheel_carries_the_gin_configs_and_gin_dir_finds_them(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--quiet", str(source), "-w", str(wheels)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("splitenc_plugin-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    shipped = {f"splitenc_plugin/gin/{p.relative_to(GIN_DIR).as_posix()}"
               for p in GIN_DIR.rglob("*.gin")}
    assert len(shipped) >= 10 and shipped <= names
    assert {"splitenc_plugin.pth", "_splitenc_plugin_hook.py"} <= names
    # The wheel's .pth line is the one editable installs write, and its version
    # is the package's own.
    import splitenc_plugin
    from splitenc_plugin.compat.hookfile import PTH_LINE

    assert (tmp_path / "installed" / "splitenc_plugin.pth").read_text() == PTH_LINE
    assert wheel.name.startswith(f"splitenc_plugin-{splitenc_plugin.__version__}-")

    # Imported from the unpacked wheel (a pure-Python install is its files), and
    # away from the checkout, the package serves its own copy of the configs.
    installed = tmp_path / "installed"
    # A config named without gin/ parses with its includes (dlib's configurables
    # are not registered here, so they are skipped: no TensorFlow needed).
    proc = run_python("import gin, splitenc_plugin\n"
                      "print(splitenc_plugin.__file__)\n"
                      "print(splitenc_plugin.gin_dir())\n"
                      "gin.parse_config_file('split_factorvae.gin', skip_unknown=True)\n",
                      env={"PYTHONPATH": str(installed)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module_file, gin_dir = proc.stdout.split()
    assert Path(module_file).is_relative_to(installed)
    assert Path(gin_dir) == installed / "splitenc_plugin" / "gin"
    assert (Path(gin_dir) / "split_factorvae.gin").read_text() == \
        (GIN_DIR / "split_factorvae.gin").read_text()
