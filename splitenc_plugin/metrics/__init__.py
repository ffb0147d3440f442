"""Disentanglement metrics the plugin adds to dlib's evaluation pipeline.

Importing this package registers their gin configurables (``factor_mig``, ``mi_decomposition``, ``mi_decomposition_study``); it
does not import TensorFlow or dlib, which the metrics import when they are
called. Importing it twice is harmless (:mod:`splitenc_plugin._gin`).
"""

from splitenc_plugin.metrics import factor_mig, mi_decomposition  # noqa: F401  (registers configurables)
