"""Disentanglement metrics the plugin adds to dlib's evaluation pipeline.

Importing this package registers their gin configurables: ``factor_mig``
(dlib's MIG matrix and each factor's gap), ``mi_decomposition`` (the terms
of Theorem 1, Eq 8; bound by ``gin/metrics/mi_decomposition_study.gin``) and
``mean_logvar_representation`` (the representation it reads; bound by
``gin/postprocess/mean_logvar.gin``).
It does not import TensorFlow or dlib, which the metrics import when they are
called. Importing it twice is harmless (:mod:`splitenc_plugin._gin`).
"""

from splitenc_plugin.metrics import factor_mig, mi_decomposition  # noqa: F401  (registers configurables)
