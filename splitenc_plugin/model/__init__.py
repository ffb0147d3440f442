"""The model pieces dlib's models take through gin: what runs inside ``dlib_train``.

* :mod:`.encoders` — the Split Encoder (Sec 4.2, Fig 1) and the capacity controls,
  as drop-in ``encoder.encoder_fn`` values, with their layer table;
* :mod:`.noise` — the reparameterization noise (Eq 11, Eq 13) and
  :class:`~.noise.NoiseSetting`, the one reader of a model's noise setting;
* :mod:`.pipeline` — the vectorized input pipeline switch.

Importing this package registers their gin configurables; it does not import
TensorFlow (the configurables do when they are called).
"""

from splitenc_plugin.model import encoders, noise, pipeline  # noqa: F401  (registers configurables)
