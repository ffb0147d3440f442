"""Import-time compatibility layer: disentanglement_lib 1.5 on Python 3.11 + TF 2.15.

dlib 1.5 was written for TensorFlow 1.14 / Python 3.7. The hook installed by
``splitenc_plugin.pth`` (see ``_splitenc_plugin_hook``) calls
:func:`before_exec` / :func:`after_exec` around the execution of the dlib
modules named in :data:`WATCHED_MODULES`, and nothing else. Each patch fixes one
documented incompatibility; dlib's source is never copied:

=====================================  ==========================================
dlib 1.5 expects                        what we provide (when, where)
=====================================  ==========================================
``gin.configurable(whitelist=...)``     accepted and forwarded as ``allowlist``
                                        (``blacklist`` -> ``denylist``); gin 0.5
                                        removed the old names.
``tensorflow.contrib.tpu``              a virtual module mapping ``TPUEstimator``,
                                        ``TPUEstimatorSpec``, ``RunConfig``,
                                        ``TPUConfig`` to
                                        ``tf.compat.v1.estimator.tpu``.
``tensorflow.contrib.framework``        ``assign_from_checkpoint_fn`` from tf-slim.
TF1 graph semantics                     ``tf.compat.v1.disable_v2_behavior()`` when
                                        dlib is imported (dlib's code and tests
                                        build graphs and sessions).
``PIL.Image.ANTIALIAS``                 restored as ``Resampling.LANCZOS`` (the
                                        same filter; Pillow 10 removed the name).
``Image.thumbnail((64, 64, 3))``        Cars3D passes a 3-tuple; modern Pillow
                                        wants (w, h). Images made by the Cars3D
                                        loader accept it, with the pre-Pillow-7
                                        exact resampling (``reducing_gap=None``).
``imageio.mimwrite`` of float frames    ``visualize_util.save_animation`` converts
                                        frames to uint8 first.
tfp 0.7, hub.Module                     pinned tfp 0.23 / tensorflow-hub 0.15
                                        (no patch needed).
=====================================  ==========================================

On top of compatibility, the same hook points let the plugin extend dlib:
missing datasets give one clear error before any graph is built, and errors
that derive from :class:`~splitenc_plugin.errors.SplitencUserError` print as one
line. Every patch of a dlib module is registered here, in one place, so
:data:`WATCHED_MODULES` is complete when this module has been imported; a
plugin feature's patch calls into the feature's own module lazily.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import types
from collections.abc import Callable

_ROOT = "disentanglement_lib"
_NORB = "disentanglement_lib.data.ground_truth.norb"
_CARS3D = "disentanglement_lib.data.ground_truth.cars3d"
_NAMED_DATA = "disentanglement_lib.data.ground_truth.named_data"
_VISUALIZE_UTIL = "disentanglement_lib.visualize.visualize_util"
_GAUSSIAN_ENCODER_MODEL = "disentanglement_lib.methods.unsupervised.gaussian_encoder_model"
_REPRODUCE = "disentanglement_lib.config.reproduce"
_TRAIN = "disentanglement_lib.methods.unsupervised.train"

Patch = Callable[[types.ModuleType], None]

_BEFORE: dict[str, list[Patch]] = {}
_AFTER: dict[str, list[Patch]] = {}


def before_import(module_name: str) -> Callable[[Patch], Patch]:
    """Registers ``patch(module)`` to run before ``module_name`` executes."""

    def register(patch: Patch) -> Patch:
        _BEFORE.setdefault(module_name, []).append(patch)
        return patch

    return register


def after_import(module_name: str) -> Callable[[Patch], Patch]:
    """Registers ``patch(module)`` to run right after ``module_name`` executes."""

    def register(patch: Patch) -> Patch:
        _AFTER.setdefault(module_name, []).append(patch)
        return patch

    return register


def before_exec(fullname: str, module: types.ModuleType) -> None:
    """Called by the import hook before a watched module's code runs."""
    for patch in _BEFORE.get(fullname, ()):
        patch(module)


def after_exec(fullname: str, module: types.ModuleType) -> None:
    """Called by the import hook after a watched module's code ran."""
    for patch in _AFTER.get(fullname, ()):
        patch(module)


def patch_loaded_modules() -> None:
    """Applies every patch to dlib modules that were imported before the hook.

    Only the post-import patches can still apply; a dlib imported without the
    pre-import patches has normally failed already.
    """
    for name in sorted(set(_BEFORE) | set(_AFTER)):
        module = sys.modules.get(name)
        if module is not None and not getattr(module, "_splitenc_patched", False):
            after_exec(name, module)


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


@before_import(_ROOT)
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


@before_import(_ROOT)
def _install_contrib_shim(_: types.ModuleType) -> None:
    if not any(isinstance(f, _ContribFinder) for f in sys.meta_path):
        sys.meta_path.append(_ContribFinder())


# --------------------------------------------------------------------------
# TF1 semantics
# --------------------------------------------------------------------------
@before_import(_ROOT)
def _use_tf1_behaviour(_: types.ModuleType) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import tensorflow as tf

    tf.compat.v1.disable_v2_behavior()


# --------------------------------------------------------------------------
# Pillow 10+
# --------------------------------------------------------------------------
@before_import(_NORB)
@before_import(_CARS3D)
def _restore_pil_antialias(_: types.ModuleType) -> None:
    import PIL.Image

    if not hasattr(PIL.Image, "ANTIALIAS"):
        PIL.Image.ANTIALIAS = PIL.Image.Resampling.LANCZOS


@after_import(_CARS3D)
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
@after_import(_VISUALIZE_UTIL)
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
# Plugin extensions on dlib's entry points
# --------------------------------------------------------------------------
@after_import(_NAMED_DATA)
def _preflight_before_data(module: types.ModuleType) -> None:
    """dlib's train/postprocess/evaluate all load their dataset first: check there.

    The checks (plugin settings, then the dataset's files) run before dlib
    reads any data or builds a graph, so bad input fails in seconds.
    """
    import gin

    original = module.get_named_ground_truth_data
    if getattr(original, "_splitenc_patched", False):
        return

    @functools.wraps(original)
    def get_named_ground_truth_data(*args, **kwargs):
        from splitenc_plugin import noise, pipeline
        from splitenc_plugin.data import registry

        noise.preflight()
        pipeline.preflight()
        name = args[0] if args else kwargs.get("name")
        if name is None:
            try:
                name = gin.query_parameter("dataset.name")
            except ValueError:
                name = None  # unbound or scoped: dlib raises its own error
        if isinstance(name, str) and name in registry.DATASETS:
            registry.require_dataset(name)
        return original(*args, **kwargs)

    get_named_ground_truth_data._splitenc_patched = True  # type: ignore[attr-defined]
    module.get_named_ground_truth_data = get_named_ground_truth_data


@after_import(_GAUSSIAN_ENCODER_MODEL)
def _sample_through_reparameterization(module: types.ModuleType) -> None:
    """Every dlib VAE samples z here; delegate to the gin-configurable noise."""
    cls = module.GaussianEncoderModel
    if getattr(cls.sample_from_latent_distribution, "_splitenc_patched", False):
        return

    def sample_from_latent_distribution(self, z_mean, z_logvar):
        """Samples z = mu + sigma * eps, eps from splitenc's `reparameterization`."""
        from splitenc_plugin import noise

        return noise.reparameterization(z_mean, z_logvar)

    sample_from_latent_distribution._splitenc_patched = True  # type: ignore[attr-defined]
    sample_from_latent_distribution.__wrapped__ = cls.sample_from_latent_distribution  # type: ignore[attr-defined]
    cls.sample_from_latent_distribution = sample_from_latent_distribution


@after_import(_TRAIN)
def _switchable_input_pipeline(module: types.ModuleType) -> None:
    """`input_pipeline.vectorized = True` switches dlib's training input to batches."""
    from splitenc_plugin import pipeline

    pipeline.install(module)


@after_import(_REPRODUCE)
def _register_studies(module: types.ModuleType) -> None:
    """Adds the paper's studies to dlib's STUDIES, so dlib_reproduce finds them."""
    from splitenc_plugin import studies

    module.STUDIES.update(studies.STUDIES)


def _print_user_errors(default_hook: Callable) -> Callable:
    def excepthook(exc_type, exc, tb):
        from splitenc_plugin.errors import SplitencUserError

        if issubclass(exc_type, SplitencUserError) and os.environ.get("SPLITENC_TRACEBACK") != "1":
            print(f"error: {exc}", file=sys.stderr)
            return
        default_hook(exc_type, exc, tb)

    excepthook._splitenc_patched = True  # type: ignore[attr-defined]
    return excepthook


@after_import(_ROOT)
def _register_plugin(_: types.ModuleType) -> None:
    if not getattr(sys.excepthook, "_splitenc_patched", False):
        sys.excepthook = _print_user_errors(sys.excepthook)
    # Registers the plugin's gin configurables, so that dlib's own scripts
    # (e.g. dlib_reproduce with our studies) see them without a gin import.
    importlib.import_module("splitenc_plugin")


# Every dlib patch is registered above, in this module, so this set is final.
WATCHED_MODULES = frozenset(_BEFORE) | frozenset(_AFTER)
