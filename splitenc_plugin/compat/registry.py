"""The hook points of the compat layer: which patch runs around which dlib module's import.

The start-up hook (``_splitenc_plugin_hook``) hands every module named in
:func:`watched_modules` to :func:`before_exec` / :func:`after_exec` around its
execution. The other modules of :mod:`splitenc_plugin.compat` register their
patches here with :func:`before_import` / :func:`after_import`, at their own
import; ``splitenc_plugin.compat`` imports all of them, so the registry is
complete once it has been imported. This module holds no patch itself.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

__all__ = [
    "CARS3D",
    "CONVOLUTE_HUB",
    "DSPRITES",
    "GAUSSIAN_ENCODER_MODEL",
    "NAMED_DATA",
    "NORB",
    "REPRODUCE",
    "ROOT",
    "SHAPES3D",
    "TRAIN",
    "VISUALIZE_UTIL",
    "Patch",
    "after_exec",
    "after_import",
    "before_exec",
    "before_import",
    "patch_loaded_modules",
    "watched_modules",
]

# The dlib modules the compat layer patches.
ROOT = "disentanglement_lib"
NORB = "disentanglement_lib.data.ground_truth.norb"
CARS3D = "disentanglement_lib.data.ground_truth.cars3d"
DSPRITES = "disentanglement_lib.data.ground_truth.dsprites"
SHAPES3D = "disentanglement_lib.data.ground_truth.shapes3d"
NAMED_DATA = "disentanglement_lib.data.ground_truth.named_data"
VISUALIZE_UTIL = "disentanglement_lib.visualize.visualize_util"
GAUSSIAN_ENCODER_MODEL = "disentanglement_lib.methods.unsupervised.gaussian_encoder_model"
REPRODUCE = "disentanglement_lib.config.reproduce"
TRAIN = "disentanglement_lib.methods.unsupervised.train"
CONVOLUTE_HUB = "disentanglement_lib.utils.convolute_hub"

Patch = Callable[[types.ModuleType], None]

_BEFORE: dict[str, list[Patch]] = {}
_AFTER: dict[str, list[Patch]] = {}


def _registrar(table: dict[str, list[Patch]], module_name: str) -> Callable[[Patch], Patch]:
    def register(patch: Patch) -> Patch:
        table.setdefault(module_name, []).append(patch)
        return patch

    return register


def before_import(module_name: str) -> Callable[[Patch], Patch]:
    """Registers ``patch(module)`` to run before ``module_name`` executes.

    Args:
      module_name: Full name of a dlib module.

    Returns:
      A decorator that registers the patch and returns it unchanged.
    """
    return _registrar(_BEFORE, module_name)


def after_import(module_name: str) -> Callable[[Patch], Patch]:
    """Registers ``patch(module)`` to run right after ``module_name`` executes.

    Patches of one module run in registration order.

    Args:
      module_name: Full name of a dlib module.

    Returns:
      A decorator that registers the patch and returns it unchanged.
    """
    return _registrar(_AFTER, module_name)


def before_exec(fullname: str, module: types.ModuleType) -> None:
    """Called by the import hook before a watched module's code runs."""
    for patch in _BEFORE.get(fullname, ()):
        patch(module)


def after_exec(fullname: str, module: types.ModuleType) -> None:
    """Called by the import hook after a watched module's code ran."""
    for patch in _AFTER.get(fullname, ()):
        patch(module)


def patch_loaded_modules() -> None:
    """Applies every patch to dlib modules that were imported before the hook.

    Only the post-import patches can still apply; a dlib imported without the
    pre-import patches has normally failed already.
    """
    for name in sorted(set(_BEFORE) | set(_AFTER)):
        module = sys.modules.get(name)
        if module is not None:
            after_exec(name, module)


def watched_modules() -> frozenset[str]:
    """The names of every module a registered patch applies to."""
    return frozenset(_BEFORE) | frozenset(_AFTER)
