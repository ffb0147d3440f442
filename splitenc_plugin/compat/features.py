"""Where the plugin's features enter dlib; each acts only in a run that asks for the plugin.

A run asks for the plugin when its gin config imports ``splitenc_plugin`` or
binds or references one of its configurables
(:func:`splitenc_plugin._gin.plugin_in_use`, which follows gin's current
config: one process can train a plugin config and then a stock one). Then:

* **noise routing**: every dlib VAE's ``sample_from_latent_distribution``
  samples through the gin configurable ``reparameterization``
  (:mod:`splitenc_plugin.model.noise`);
* **the input-pipeline switch**: ``input_pipeline.vectorized = True`` builds
  the training input with :mod:`splitenc_plugin.model.pipeline`
  (:func:`patch_input_pipeline`; unbound, dlib's own input function runs);
* **preflight checks**: bad plugin settings (noise, encoder, pipeline) stop the run
  in seconds, before dlib loads data or builds a graph.

Otherwise dlib's own code runs, and a stock config records the operative
config stock dlib records. Two additions do not depend on the config, since
they change nothing a stock config does: the paper's studies are added to
dlib's ``reproduce.STUDIES`` (new names only), and importing dlib registers
the plugin's configurables.

``SPLITENC_PLUGIN_FEATURES=0`` installs none of these patches (the fixes of
:mod:`~splitenc_plugin.compat.fixes`, :mod:`~splitenc_plugin.compat.data`
and :mod:`~splitenc_plugin.compat.determinism` still apply): what the tests
compare stock configs against. (User errors print as one line either way:
:mod:`~splitenc_plugin.compat.user_errors`.) Each patch calls into its feature's own module
lazily.
"""

from __future__ import annotations

import functools
import importlib
import types

from splitenc_plugin.compat.registry import (
    GAUSSIAN_ENCODER_MODEL,
    NAMED_DATA,
    REPRODUCE,
    ROOT,
    TRAIN,
    Patch,
    after_import,
)
from splitenc_plugin.errors import env_switch

__all__ = ["FEATURES_ENV", "patch_input_pipeline", "plugin_feature"]

#: "0" installs only the fixes, none of the plugin's feature patches.
FEATURES_ENV = "SPLITENC_PLUGIN_FEATURES"


def plugin_feature(patch: Patch) -> Patch:
    """Marks a patch as a plugin feature: not installed under ``SPLITENC_PLUGIN_FEATURES=0``."""

    @functools.wraps(patch)
    def install_feature(module: types.ModuleType) -> None:
        if env_switch(FEATURES_ENV, default=True):
            patch(module)

    return install_feature


def _plugin_in_use() -> bool:
    from splitenc_plugin._gin import plugin_in_use

    return plugin_in_use()


@after_import(NAMED_DATA)
@plugin_feature
def _preflight_before_data(module: types.ModuleType) -> None:
    """Checks the plugin's settings where dlib's train/postprocess/evaluate load their data.

    Runs before the data-file check of :mod:`splitenc_plugin.compat.data`
    (this wrapper is installed around it) and before dlib reads any data or
    builds a graph, so bad input fails in seconds.
    """
    original = module.get_named_ground_truth_data
    if getattr(original, "_splitenc_preflight", False):
        return

    @functools.wraps(original)
    def get_named_ground_truth_data(*args, **kwargs):
        if _plugin_in_use():
            from splitenc_plugin.model import encoders, noise, pipeline

            noise.preflight()
            encoders.preflight()
            pipeline.preflight()
        return original(*args, **kwargs)

    get_named_ground_truth_data._splitenc_preflight = True  # type: ignore[attr-defined]
    module.get_named_ground_truth_data = get_named_ground_truth_data


@after_import(GAUSSIAN_ENCODER_MODEL)
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


@after_import(TRAIN)
@plugin_feature
def _switchable_input_pipeline(module: types.ModuleType) -> None:
    """`input_pipeline.vectorized = True` switches dlib's training input to batches.

    Unbound (every config that does not bind it) it calls dlib's own input function.
    """
    patch_input_pipeline(module)


def patch_input_pipeline(train_module: types.ModuleType) -> None:
    """Routes dlib's ``train._make_input_fn`` through the ``input_pipeline`` switch.

    Applied by the compat layer right after
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


@after_import(REPRODUCE)
@plugin_feature
def _register_studies(module: types.ModuleType) -> None:
    """Adds the paper's studies to dlib's STUDIES, so dlib_reproduce finds them."""
    from splitenc_plugin.studies import dlib_studies as studies

    module.STUDIES.update(studies.STUDIES)


@after_import(ROOT)
@plugin_feature
def _register_plugin(_: types.ModuleType) -> None:
    """Registers the plugin's gin configurables when dlib is imported.

    Registering them lets dlib's own scripts (e.g. dlib_reproduce with our
    studies) see them without a gin ``import splitenc_plugin``; it does not
    make a config ask for the plugin.
    """
    importlib.import_module("splitenc_plugin")
