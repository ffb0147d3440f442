"""Data tools for dlib's ground-truth datasets.

* :mod:`~splitenc_plugin.data.dsprites`: the procedural dSprites file dlib
  reads (:mod:`~splitenc_plugin.data.dsprites_fidelity`: its fit to real pixels);
* :mod:`~splitenc_plugin.data.shapes3d`: DeepMind's 3dshapes.h5 converted to
  the npz dlib reads;
* :mod:`~splitenc_plugin.data.registry`: which dlib datasets are present,
  missing or malformed under ``$DISENTANGLEMENT_LIB_DATA``;
* :mod:`~splitenc_plugin.data.lean_data`: memory-lean loaders with dlib's
  pixels and random draws;
* :mod:`~splitenc_plugin.data.fingerprint`: which data a run trained on;
* :mod:`~splitenc_plugin.data.cli`: the ``splitenc_data`` command.

Nothing here imports TensorFlow or dlib at import time.
"""
