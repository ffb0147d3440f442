"""Start-up hook that applies splitenc_plugin's compat layer when dlib is imported.

The package installs ``splitenc_plugin.pth`` into site-packages; Python executes
its single line at interpreter start-up, which calls :func:`install`. That puts
a :class:`DlibImportWatcher` at the front of ``sys.meta_path``. The watcher
stays dormant until a watched module (``disentanglement_lib`` or one of the
submodules the compat layer patches) is imported; only then does it import
``splitenc_plugin.compat``, so an interpreter that never touches dlib pays for
nothing and never imports TensorFlow because of us.

This module is deliberately standard-library only and lives outside the
``splitenc_plugin`` package, so that start-up does not import the package (and
gin) in every Python process of the environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Sequence

# Set SPLITENC_PLUGIN_DISABLE=1 to get stock (broken-on-TF2) dlib, e.g. to show
# what the compat layer fixes.
_DISABLE_ENV = "SPLITENC_PLUGIN_DISABLE"
_ROOT = "disentanglement_lib"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_flag(name: str, default: bool) -> bool:
    """Reads an on/off environment switch, e.g. ``SPLITENC_LEAN_DATA``.

    The one parser of every ``SPLITENC_*`` switch (here, because this module
    may import only the standard library).

    Args:
      name: The environment variable.
      default: Its value when unset or empty.

    Returns:
      True for 1/true/yes/on, False for 0/false/no/off (any case, spaces ignored).

    Raises:
      ValueError: For any other value, naming the variable and what it takes.
    """
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ValueError(f"${name}={os.environ[name]!r} is not a switch; set it to 1 (on) or 0 "
                     "(off), or unset it")


class _PatchingLoader(importlib.abc.Loader):
    """Wraps a module's real loader and runs the compat hooks around exec."""

    def __init__(self, inner: importlib.abc.Loader, fullname: str) -> None:
        self._inner = inner
        self._fullname = fullname

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        from splitenc_plugin import compat

        compat.before_exec(self._fullname, module)
        # Hand the module back to its real loader: pkg_resources and others
        # dispatch on the loader's type (dlib lists its configs through it).
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        compat.after_exec(self._fullname, module)

    def __getattr__(self, name: str):
        # get_source / get_code / is_package etc. used by tracebacks and pkgutil.
        return getattr(self._inner, name)


class DlibImportWatcher(importlib.abc.MetaPathFinder):
    """Meta-path finder that hands watched dlib modules to the compat layer."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def _watched(self, fullname: str) -> bool:
        if fullname != _ROOT and not fullname.startswith(_ROOT + "."):
            return False
        if fullname == _ROOT:
            return True
        from splitenc_plugin import compat

        return fullname in compat.WATCHED_MODULES

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self._busy or not self._watched(fullname):
            return None
        self._busy.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, fullname)
        return spec


def installed_watcher() -> DlibImportWatcher | None:
    """Returns the watcher on ``sys.meta_path``, or None."""
    for finder in sys.meta_path:
        # Compare by name too: a reloaded hook module defines a new class.
        if type(finder).__name__ == DlibImportWatcher.__name__:
            return finder  # type: ignore[return-value]
    return None


def install() -> None:
    """Puts the watcher first on ``sys.meta_path``; a second call is a no-op."""
    if installed_watcher() is not None:
        return
    try:
        disabled = env_flag(_DISABLE_ENV, default=False)
    except ValueError as exc:  # at interpreter start-up: one line, then carry on patched
        print(f"splitenc_plugin: {exc}; patching dlib as usual", file=sys.stderr)
        disabled = False
    if disabled:
        return
    if _ROOT in sys.modules:
        # dlib was imported before us (unusual: e.g. a .pth ordering quirk);
        # patch the already-loaded modules instead of watching for them.
        from splitenc_plugin import compat

        compat.patch_loaded_modules()
    sys.meta_path.insert(0, DlibImportWatcher())
