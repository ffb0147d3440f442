"""Fails the write of a job's learning curves, as a full disk would.

Put this directory first on ``PYTHONPATH``: Python imports ``sitecustomize``
at start-up, in the runner and in each job process; only moving a finished
``learning_curves.json`` into place raises (ENOSPC), every other file is
written as usual.
"""

import errno
import os

_replace = os.replace


def _no_room_for_curves(src, dst, *args, **kwargs):
    if os.fspath(dst).endswith("learning_curves.json"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
    return _replace(src, dst, *args, **kwargs)


os.replace = _no_room_for_curves
