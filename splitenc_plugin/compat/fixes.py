"""The fixes that make dlib 1.5 run on Python 3.11, TF 2.15, gin 0.5 and Pillow 10+.

Each patch here fixes one documented incompatibility (the table in
:mod:`splitenc_plugin.compat`) and applies to every dlib process of the
environment, whatever its gin config; none changes what dlib computes or
records. dlib's source is never copied: names it expects are supplied, or
calls it makes are adapted, inside the one module that makes them.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import types
from collections.abc import Callable

from splitenc_plugin.compat.registry import (
    CARS3D,
    DSPRITES,
    NORB,
    ROOT,
    VISUALIZE_UTIL,
    after_import,
    before_import,
)

# --------------------------------------------------------------------------
# gin 0.5: whitelist/blacklist -> allowlist/denylist
# --------------------------------------------------------------------------
_GIN_RENAMES = {"whitelist": "allowlist", "blacklist": "denylist"}


def _accept_legacy_names(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for old, new in _GIN_RENAMES.items():
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
        return fn(*args, **kwargs)

    wrapper._splitenc_legacy_names = True  # type: ignore[attr-defined]
    return wrapper


@before_import(ROOT)
def _allow_legacy_gin_kwargs(_: types.ModuleType) -> None:
    import gin
    import gin.config

    for name in ("configurable", "external_configurable", "register"):
        for namespace in (gin, gin.config):
            fn = getattr(namespace, name)
            if not getattr(fn, "_splitenc_legacy_names", False):
                setattr(namespace, name, _accept_legacy_names(fn))


# --------------------------------------------------------------------------
# tensorflow.contrib.{tpu,framework}
# --------------------------------------------------------------------------
def _contrib_tpu() -> types.ModuleType:
    import tensorflow as tf

    module = types.ModuleType("tensorflow.contrib.tpu", "TF1 contrib.tpu names used by dlib.")
    tpu = tf.compat.v1.estimator.tpu
    for name in ("TPUEstimator", "TPUEstimatorSpec", "RunConfig", "TPUConfig"):
        setattr(module, name, getattr(tpu, name))
    return module


def _contrib_framework() -> types.ModuleType:
    from tf_slim.ops import variables as slim_variables

    module = types.ModuleType(
        "tensorflow.contrib.framework", "TF1 contrib.framework names used by dlib."
    )
    module.assign_from_checkpoint_fn = slim_variables.assign_from_checkpoint_fn
    return module


_CONTRIB_SUBMODULES: dict[str, Callable[[], types.ModuleType]] = {
    "tpu": _contrib_tpu,
    "framework": _contrib_framework,
}


class _ContribFinder:
    """Serves ``tensorflow.contrib`` and its two submodules that dlib uses."""

    _PACKAGE = "tensorflow.contrib"

    def find_spec(self, fullname, path=None, target=None):
        from importlib.machinery import ModuleSpec

        if fullname == self._PACKAGE:
            return ModuleSpec(fullname, self, is_package=True)
        prefix = self._PACKAGE + "."
        if fullname.startswith(prefix) and fullname[len(prefix):] in _CONTRIB_SUBMODULES:
            return ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        if spec.name == self._PACKAGE:
            module = types.ModuleType(spec.name, "Stand-in for TF1's tensorflow.contrib.")
            module.__path__ = []
            return module
        return _CONTRIB_SUBMODULES[spec.name.rsplit(".", 1)[1]]()

    def exec_module(self, module):
        # Make `tensorflow.contrib.tpu` reachable as an attribute of the package too.
        if module.__name__ != self._PACKAGE:
            parent = sys.modules[self._PACKAGE]
            setattr(parent, module.__name__.rsplit(".", 1)[1], module)


@before_import(ROOT)
def _install_contrib_shim(_: types.ModuleType) -> None:
    if not any(isinstance(f, _ContribFinder) for f in sys.meta_path):
        sys.meta_path.append(_ContribFinder())


# --------------------------------------------------------------------------
# TF1 semantics
# --------------------------------------------------------------------------
@before_import(ROOT)
def _use_tf1_behaviour(_: types.ModuleType) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import tensorflow as tf

    # TF logs that resource variables are deprecated: the very TF1 behaviour
    # dlib 1.5 needs. Said by every dlib process, it would bury their output
    # (and precede each one-line error), so it is not said.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        tf.compat.v1.disable_v2_behavior()
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------
# Pillow 10+
# --------------------------------------------------------------------------
@before_import(NORB)
@before_import(CARS3D)
def _restore_pil_antialias(_: types.ModuleType) -> None:
    import PIL.Image

    if not hasattr(PIL.Image, "ANTIALIAS"):
        PIL.Image.ANTIALIAS = PIL.Image.Resampling.LANCZOS


@after_import(CARS3D)
def _accept_three_tuple_thumbnail(module: types.ModuleType) -> None:
    import PIL.Image

    class _LegacyThumbnailImage(PIL.Image.Image):
        """An Image whose thumbnail() behaves like Pillow 6's for (w, h, c)."""

        def thumbnail(self, size, resample=PIL.Image.Resampling.BICUBIC, reducing_gap=None):
            super().thumbnail(tuple(size[:2]), resample, reducing_gap=reducing_gap)

    def fromarray(*args, **kwargs):
        image = PIL.Image.fromarray(*args, **kwargs)
        image.__class__ = _LegacyThumbnailImage
        return image

    # Scoped to the Cars3D module: it sees a PIL whose fromarray makes such
    # images; every other user of Pillow is untouched.
    image_ns = types.SimpleNamespace(fromarray=fromarray, ANTIALIAS=PIL.Image.Resampling.LANCZOS)
    module.PIL = types.SimpleNamespace(Image=image_ns)


# --------------------------------------------------------------------------
# imageio: GIF frames must be uint8
# --------------------------------------------------------------------------
@after_import(VISUALIZE_UTIL)
def _uint8_animation_frames(module: types.ModuleType) -> None:
    import imageio
    import numpy as np

    def to_uint8(frame):
        # dlib's frames are floats in [0, 1] (like save_image, which scales by 255).
        frame = np.asarray(frame)
        if frame.dtype == np.uint8:
            return frame
        return (np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)  # as save_image

    def mimwrite(uri, ims, *args, **kwargs):
        return imageio.mimwrite(uri, [to_uint8(im) for im in ims], *args, **kwargs)

    # Scoped: save_animation (the module's only imageio call) sees a mimwrite
    # that converts its frames; imageio itself is untouched.
    module.imageio = types.SimpleNamespace(mimwrite=mimwrite)


# --------------------------------------------------------------------------
# Pillow: ScreamDSprites' thumbnail
# --------------------------------------------------------------------------
@after_import(DSPRITES)
def _scream_three_tuple_thumbnail(module: types.ModuleType) -> None:
    """ScreamDSprites calls ``thumbnail((350, 274, 3))``: accepted as for Cars3D."""
    import PIL.Image

    def open_image(*args, **kwargs):
        image = PIL.Image.open(*args, **kwargs)
        cls = type(image)

        def thumbnail(self, size, resample=PIL.Image.Resampling.BICUBIC, reducing_gap=None):
            cls.thumbnail(self, tuple(size[:2]), resample, reducing_gap=reducing_gap)

        image.__class__ = type(f"_Legacy{cls.__name__}", (cls,), {"thumbnail": thumbnail})
        return image

    # Scoped to dlib's dsprites module (its only PIL call is Image.open).
    module.PIL = types.SimpleNamespace(Image=types.SimpleNamespace(open=open_image))
