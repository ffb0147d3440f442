"""Facts about the TensorFlow runtime of this process, for kernel choices and provenance.

One fact so far: whether TF runs oneDNN kernels on the CPU. TF 2.15 does not
turn oneDNN on by default on every x86-64 CPU (it was off on an AVX2-only AMD
EPYC machine of this project until ``TF_ENABLE_ONEDNN_OPTS=1`` was set), and
it changes both what runs (the split encoder's grouped convolutions need it,
:mod:`splitenc_plugin.model.encoders`) and how fast (``bench.train_throughput
--onednn``). The job worker records it in ``done.json``; the benchmark reports
it per run.
"""

from __future__ import annotations

__all__ = ["onednn_enabled"]


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs oneDNN kernels (None: cannot tell).

    Imports TensorFlow. The answer is fixed when TF first asks (at start-up),
    by ``TF_ENABLE_ONEDNN_OPTS`` and the CPU.
    """
    try:
        # Private, but what TF itself consults; no public API says it.
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None
