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
``thumbnail((350, 274, 3))``            ScreamDSprites' opened image accepts it
                                        (as for Cars3D).
tfp 0.7, hub.Module                     pinned tfp 0.23 / tensorflow-hub 0.15
                                        (no patch needed).
=====================================  ==========================================

On top of compatibility, the same hook points let the plugin extend dlib
(patches marked :func:`plugin_feature`): noise routing through
``reparameterization``, the ``input_pipeline`` switch, preflight checks (plugin
settings, then missing datasets give one clear error before any graph is
built), the paper's studies in ``reproduce.STUDIES``, and one-line printing of
:class:`~splitenc_plugin.errors.SplitencUserError`. Each feature takes effect
only in a run whose gin config asks for the plugin
(:func:`splitenc_plugin._gin.plugin_in_use`: it imports ``splitenc_plugin`` or
binds one of its configurables; ``input_pipeline`` does nothing unless bound);
a stock dlib config runs, and records its operative config, as stock dlib.
``SPLITENC_PLUGIN_FEATURES=0`` installs none of the feature patches (compat
fixes only: what the tests compare stock configs against). The lean dSprites /
Shapes3D loaders (:mod:`splitenc_plugin.data.lean_data`) are a feature that applies to
stock configs too: they give dlib's observations and random stream exactly
(``SPLITENC_LEAN_DATA=0`` turns them off alone).

**Deterministic mode** (opt-in, ``SPLITENC_DETERMINISTIC=1``, or
``splitenc_reproduce --deterministic``): TensorFlow's op determinism, and
graph-level seeds for the two graphs dlib builds without one, each from its
own step's seed: the TF-Hub export of ``train`` (``model.random_seed``: the
``reconstructions`` signature's noise) and the module that ``postprocess``
convolutes (``postprocess.random_seed``: the ``sampled`` representation's
noise). Without the seeds op determinism stops dlib's export with "Random ops
require a seed". The same job then gives the same result JSONs every time.

Every patch of a dlib module is registered here, in one place, so
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
_CONVOLUTE_HUB = "disentanglement_lib.utils.convolute_hub"

#: Environment switch of deterministic mode (see the module docstring).
DETERMINISTIC_ENV = "SPLITENC_DETERMINISTIC"
# "0" installs only the compat fixes, none of the plugin's features.
_FEATURES_ENV = "SPLITENC_PLUGIN_FEATURES"
_TRUE = ("1", "true", "yes", "on")

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


def deterministic_mode() -> bool:
    """Whether this process runs dlib in deterministic mode (``SPLITENC_DETERMINISTIC=1``)."""
    return os.environ.get(DETERMINISTIC_ENV, "").strip().lower() in _TRUE


def plugin_feature(patch: Patch) -> Patch:
    """Marks a patch as a plugin feature: not installed under ``SPLITENC_PLUGIN_FEATURES=0``."""

    @functools.wraps(patch)
    def install_feature(module: types.ModuleType) -> None:
        if os.environ.get(_FEATURES_ENV, "1") != "0":
            patch(module)

    return install_feature


def _plugin_in_use() -> bool:
    from splitenc_plugin._gin import plugin_in_use

    return plugin_in_use()


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
        if module is not None:
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
# Deterministic mode (opt-in): op determinism, and seeds where dlib has none
# --------------------------------------------------------------------------
@before_import(_ROOT)
def _deterministic_ops(_: types.ModuleType) -> None:
    if deterministic_mode():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _bound_seed(parameter: str) -> int:
    """The value of the gin seed ``parameter``; 0 if it is not bound."""
    import gin

    try:
        seed = gin.query_parameter(parameter)
    except ValueError:
        return 0
    return seed if isinstance(seed, int) else 0


class _SeededHub:
    """``tensorflow_hub`` as one dlib module sees it: module graphs get a graph-level seed.

    dlib builds its TF-Hub modules in graphs of their own (``create_module_spec``)
    without a seed; their random ops (the export's ``reconstructions`` noise,
    the ``sampled`` representation's noise) then draw from fresh entropy, and
    under op determinism they refuse to run. Here each module graph is seeded
    with the value of the gin parameter ``seed_parameter`` first, so every
    random op in it gets a fixed op seed. Everything else is ``hub`` itself.
    """

    def __init__(self, hub: types.ModuleType, seed_parameter: str) -> None:
        self._hub = hub
        self._seed_parameter = seed_parameter

    def __getattr__(self, name: str):
        return getattr(self._hub, name)

    def create_module_spec(self, module_fn: Callable, *args, **kwargs):
        seed_parameter = self._seed_parameter

        @functools.wraps(module_fn)
        def seeded_module_fn(*fn_args, **fn_kwargs):
            import tensorflow.compat.v1 as tf

            tf.set_random_seed(_bound_seed(seed_parameter))
            return module_fn(*fn_args, **fn_kwargs)

        return self._hub.create_module_spec(seeded_module_fn, *args, **kwargs)


@after_import(_GAUSSIAN_ENCODER_MODEL)
def _seed_tf_hub_export(module: types.ModuleType) -> None:
    """Deterministic mode: ``export_as_tf_hub`` builds its graph seeded by ``model.random_seed``."""
    if deterministic_mode() and not isinstance(module.hub, _SeededHub):
        module.hub = _SeededHub(module.hub, "model.random_seed")


@after_import(_CONVOLUTE_HUB)
def _seed_postprocessing(module: types.ModuleType) -> None:
    """Deterministic mode: ``postprocess``'s representation module is seeded by
    ``postprocess.random_seed`` (the ``sampled`` representation's noise)."""
    if deterministic_mode() and not isinstance(module.hub, _SeededHub):
        module.hub = _SeededHub(module.hub, "postprocess.random_seed")


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
@plugin_feature
def _preflight_before_data(module: types.ModuleType) -> None:
    """dlib's train/postprocess/evaluate all load their dataset first: check there.

    The checks (plugin settings, only in runs whose config asks for the
    plugin; then the dataset's files, in every run) run before dlib reads any
    data or builds a graph, so bad input fails in seconds.
    """
    import gin

    original = module.get_named_ground_truth_data
    if getattr(original, "_splitenc_patched", False):
        return

    @functools.wraps(original)
    def get_named_ground_truth_data(*args, **kwargs):
        from splitenc_plugin.data import registry

        if _plugin_in_use():
            from splitenc_plugin.model import noise, pipeline

            noise.preflight()
            pipeline.preflight()
        # The data check runs in every dlib process: it changes no result and no
        # operative config, only turns dlib's tracebacks on a missing or damaged
        # file into one line naming the file and the fix (a compat fix).
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
@plugin_feature
def _sample_through_reparameterization(module: types.ModuleType) -> None:
    """Every dlib VAE samples z here; delegate to the gin-configurable noise.

    Only when the config asks for the plugin; otherwise dlib's own method runs
    (and ``reparameterization`` stays out of the operative config).
    """
    cls = module.GaussianEncoderModel
    if getattr(cls.sample_from_latent_distribution, "_splitenc_patched", False):
        return
    original = cls.sample_from_latent_distribution

    def sample_from_latent_distribution(self, z_mean, z_logvar):
        """Samples z = mu + sigma * eps, eps from splitenc's `reparameterization`."""
        if not _plugin_in_use():
            return original(self, z_mean, z_logvar)
        from splitenc_plugin.model import noise

        return noise.reparameterization(z_mean, z_logvar)

    sample_from_latent_distribution._splitenc_patched = True  # type: ignore[attr-defined]
    sample_from_latent_distribution.__wrapped__ = original  # type: ignore[attr-defined]
    cls.sample_from_latent_distribution = sample_from_latent_distribution


@after_import(_TRAIN)
@plugin_feature
def _switchable_input_pipeline(module: types.ModuleType) -> None:
    """`input_pipeline.vectorized = True` switches dlib's training input to batches.

    Unbound (every config that does not bind it) it calls dlib's own input function.
    """
    patch_input_pipeline(module)


@after_import(_REPRODUCE)
@plugin_feature
def _register_studies(module: types.ModuleType) -> None:
    """Adds the paper's studies to dlib's STUDIES, so dlib_reproduce finds them."""
    from splitenc_plugin.studies import dlib_studies as studies

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
@plugin_feature
def _register_plugin(_: types.ModuleType) -> None:
    if not getattr(sys.excepthook, "_splitenc_patched", False):
        sys.excepthook = _print_user_errors(sys.excepthook)
    # Registers the plugin's gin configurables, so that dlib's own scripts
    # (e.g. dlib_reproduce with our studies) see them without a gin import.
    importlib.import_module("splitenc_plugin")


@after_import("disentanglement_lib.data.ground_truth.dsprites")
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


@after_import("disentanglement_lib.data.ground_truth.dsprites")
@after_import("disentanglement_lib.data.ground_truth.shapes3d")
@plugin_feature
def _lean_datasets(module: types.ModuleType) -> None:
    """dSprites bit-packed, Shapes3D uint8, loaded once (``SPLITENC_LEAN_DATA=0``: dlib's own)."""
    from splitenc_plugin.data import lean_data

    lean_data.install(module)


# --------------------------------------------------------------------------
# Named patches, applied where they are called (idempotent)
# --------------------------------------------------------------------------
def patch_input_pipeline(train_module: types.ModuleType) -> None:
    """Routes dlib's ``train._make_input_fn`` through the ``input_pipeline`` switch.

    Applied by :func:`_switchable_input_pipeline` right after
    ``disentanglement_lib.methods.unsupervised.train`` is imported. dlib's
    ``train`` looks ``_make_input_fn`` up at call time, so replacing the module
    attribute is enough. With the switch off (or unbound) the wrapper calls
    dlib's original with the same arguments; with
    ``input_pipeline.vectorized = True`` it builds
    :func:`splitenc_plugin.model.pipeline.make_input_fn` instead. Idempotent.

    Args:
      train_module: The ``disentanglement_lib.methods.unsupervised.train`` module
        (or a stand-in with a ``_make_input_fn``).
    """
    original = train_module._make_input_fn
    if getattr(original, "_splitenc_patched", False):
        return

    @functools.wraps(original)
    def _make_input_fn(ground_truth_data, seed, num_batches=None):
        from splitenc_plugin.model import pipeline

        vectorized, prefetch_batches = pipeline.active_settings()
        if not vectorized:
            return original(ground_truth_data, seed, num_batches=num_batches)
        return pipeline.make_input_fn(ground_truth_data, seed, num_batches, prefetch_batches)

    _make_input_fn._splitenc_patched = True  # type: ignore[attr-defined]
    train_module._make_input_fn = _make_input_fn


# What the wrapper of TPUEstimator.train calls (set by instrument_estimator_train).
_TRAINING_CALLBACKS: dict[str, Callable | None] = {"before_train": None, "on_step": None}


def instrument_estimator_train(*, before_train: Callable[[str], None] | None = None,
                               on_step: Callable[[int], None] | None = None) -> None:
    """Makes this process's ``TPUEstimator.train`` resumable and observable.

    dlib's ``train`` calls ``TPUEstimator.train(input_fn=..., steps=N)`` without
    hooks. Once this has been called (in this process only: TF's class is
    wrapped, dlib's modules are untouched), every such call

    * gets ``max_steps=N`` in place of ``steps=N``: training stops at global
      step N, which for a fresh estimator directory is exactly ``steps=N``,
      and for one holding a checkpoint trains the remaining steps;
    * first calls ``before_train(model_dir)``, if given (the job worker copies
      the checkpoint it resumes from into the estimator directory there);
    * calls ``on_step(global_step)`` after every training iteration, if given,
      with the global step as that iteration read it (before its own update:
      0, 1, ... for a fresh model; FactorVAE advances it twice per iteration).

    Used by the job worker (:mod:`splitenc_plugin.sweep.job`: resuming, the progress
    file) and ``bench/train_throughput.py`` (step times). Idempotent: the class
    is wrapped once; a later call replaces both callbacks
    (``instrument_estimator_train()`` keeps only ``max_steps``).
    """
    import tensorflow.compat.v1 as tf

    _TRAINING_CALLBACKS.update(before_train=before_train, on_step=on_step)
    estimator_cls = tf.estimator.tpu.TPUEstimator
    if getattr(estimator_cls.train, "_splitenc_patched", False):
        return
    original = estimator_cls.train

    class _StepHook(tf.train.SessionRunHook):
        """Calls ``report(global_step)`` after every training iteration."""

        def __init__(self, report: Callable[[int], None]) -> None:
            self._report = report

        def begin(self):
            self._step = tf.train.get_global_step()

        def before_run(self, run_context):
            return tf.train.SessionRunArgs(self._step)

        def after_run(self, run_context, run_values):
            self._report(int(run_values.results))

    @functools.wraps(original)
    def train(self, input_fn, hooks=None, steps=None, max_steps=None, **kwargs):
        before, report = _TRAINING_CALLBACKS["before_train"], _TRAINING_CALLBACKS["on_step"]
        if before is not None:
            before(self.model_dir)
        if report is not None:
            hooks = [*(hooks or []), _StepHook(report)]
        return original(self, input_fn, hooks, max_steps=max_steps or steps, **kwargs)

    train._splitenc_patched = True  # type: ignore[attr-defined]
    estimator_cls.train = train


# Every dlib patch is registered above, in this module, so this set is final.
WATCHED_MODULES = frozenset(_BEFORE) | frozenset(_AFTER)
