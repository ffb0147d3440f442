"""The plugin's user errors print as one line in every dlib process.

A :class:`~splitenc_plugin.errors.SplitencUserError` (a bad binding, a missing
dataset file, a bad ``SPLITENC_*`` switch) that reaches the top of a dlib
command prints ``error: <problem and fix>`` instead of a traceback
(``SPLITENC_TRACEBACK=1``: the traceback as well). Installed before dlib's
package executes, ahead of every other patch, because the first patches
already read switches (``SPLITENC_DETERMINISTIC`` before dlib imports
TensorFlow, ``SPLITENC_PLUGIN_FEATURES`` for each feature). Not a plugin
feature: errors of the always-on patches (e.g. the data-file check) are user
errors too, and an error that is not the plugin's prints as Python prints it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

from splitenc_plugin.compat.registry import ROOT, before_import
from splitenc_plugin.errors import SplitencUserError, env_switch

__all__ = ["TRACEBACK_ENV"]

#: Environment switch: a user error's traceback as well as its one line.
TRACEBACK_ENV = "SPLITENC_TRACEBACK"


def _print_user_errors(default_hook: Callable) -> Callable:
    def excepthook(exc_type, exc, tb):
        if issubclass(exc_type, SplitencUserError):
            try:
                traceback = env_switch(TRACEBACK_ENV, default=False)
            except ValueError as bad:  # the traceback, with the switch's own error first
                print(f"error: {bad}", file=sys.stderr)
                traceback = True
            if not traceback:
                print(f"error: {exc}", file=sys.stderr)
                return
        default_hook(exc_type, exc, tb)

    excepthook._splitenc_patched = True  # type: ignore[attr-defined]
    return excepthook


@before_import(ROOT)
def _user_errors_as_one_line(_: types.ModuleType) -> None:
    """Installs the one-line printer as ``sys.excepthook`` (once)."""
    if not getattr(sys.excepthook, "_splitenc_patched", False):
        sys.excepthook = _print_user_errors(sys.excepthook)
