"""Data tools for dlib's ground-truth datasets.

This subpackage generates the dSprites file dlib reads (a procedural
re-rendering, see :mod:`splitenc_plugin.data.dsprites`) and checks which dlib
datasets are present under ``$DISENTANGLEMENT_LIB_DATA``
(:mod:`splitenc_plugin.data.registry`). Nothing here imports TensorFlow or
dlib at import time.
"""
