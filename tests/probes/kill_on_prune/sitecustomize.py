"""Kills the process when it starts deleting a job's checkpoints (a walltime kill).

Put this directory first on ``PYTHONPATH``: Python imports ``sitecustomize``
at start-up, in the runner and in each job process; only a job pruning its
``model/tf_checkpoint`` (``--prune_heavy``) reaches the kill.
"""

import os
import shutil
import signal

_rmtree = shutil.rmtree


def _killed_at_checkpoints(path, *args, **kwargs):
    if os.fspath(path).endswith(os.path.join("model", "tf_checkpoint")):
        os.kill(os.getpid(), signal.SIGKILL)
    return _rmtree(path, *args, **kwargs)


shutil.rmtree = _killed_at_checkpoints
