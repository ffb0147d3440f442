"""Places ``splitenc_plugin.pth`` in site-packages for editable installs.

A regular install (``pip install .`` or a wheel) already puts the file at the
top of site-packages (see ``setup.py``). Editable installs (``pip install -e``)
do not copy extra top-level files, so ``make`` runs ``python -m
splitenc_plugin.compat.hookfile`` after installing. The file's line is inert if the
plugin is later uninstalled (it checks that the hook module exists first).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from splitenc_plugin._io import atomic_path

PTH_NAME = "splitenc_plugin.pth"
PTH_LINE = (
    'import importlib.util; importlib.util.find_spec("_splitenc_plugin_hook") '
    'and __import__("_splitenc_plugin_hook").install()\n'
)


def install_pth(site_packages: str | None = None) -> Path:
    """Writes the start-up hook's .pth file (atomically) and returns its path."""
    target = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    if not target.exists() or target.read_text() != PTH_LINE:
        with atomic_path(target) as tmp:
            Path(tmp).write_text(PTH_LINE)
    return target


if __name__ == "__main__":
    print(f"start-up hook: {install_pth()}")
