"""Import-time compatibility layer: disentanglement_lib 1.5 on Python 3.11 + TF 2.15.

dlib 1.5 was written for TensorFlow 1.14 / Python 3.7. The hook installed by
``splitenc_plugin.pth`` (see ``_splitenc_plugin_hook``) calls
:func:`before_exec` / :func:`after_exec` around the execution of the dlib
modules named in :data:`WATCHED_MODULES`, and nothing else. Every patch of
dlib (or of the TF classes it drives) lives in this package, one module per
job:

==========================================  =====================================================
module                                      what it is for; when it applies
==========================================  =====================================================
:mod:`~splitenc_plugin.compat.registry`     the hook points: which patch runs around which
                                            dlib module's import (no patch of its own)
:mod:`~splitenc_plugin.compat.user_errors`  the plugin's user errors as one line, not a
                                            traceback; every dlib process
:mod:`~splitenc_plugin.compat.fixes`        making dlib run: TF2, gin 0.5, Pillow 10+,
                                            imageio (table below); every dlib process
:mod:`~splitenc_plugin.compat.data`         dlib's dataset loading: one-line errors for missing
                                            files, memory-lean loaders with dlib's pixels;
                                            every dlib process
:mod:`~splitenc_plugin.compat.determinism`  deterministic mode: op determinism and seeds
                                            where dlib has none; opt-in
                                            (``SPLITENC_DETERMINISTIC=1``), any config
:mod:`~splitenc_plugin.compat.features`     the plugin's features (noise routing,
                                            input-pipeline switch, preflight checks, the
                                            paper's studies); only in runs whose config asks
                                            for the plugin
:mod:`~splitenc_plugin.compat.instrument`   resumable, observable ``TPUEstimator.train``;
                                            only in a process that calls it
:mod:`~splitenc_plugin.compat.hookfile`     installs the start-up hook's ``.pth`` file
==========================================  =====================================================

The fixes (:mod:`~splitenc_plugin.compat.fixes`); dlib's source is never copied:

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

Fixes, data loading and deterministic mode apply to every dlib process; the
plugin's features take effect only in a run whose gin config asks for the
plugin (:func:`splitenc_plugin._gin.plugin_in_use`), so a stock dlib config
runs, and records its operative config, as stock dlib.
``SPLITENC_PLUGIN_FEATURES=0`` installs none of the feature patches (what the
tests compare stock configs against); ``SPLITENC_LEAN_DATA=0`` turns off the
lean loaders alone.

This package imports each of those modules, so that :data:`WATCHED_MODULES`
is complete once it has been imported, and exports what the hook, the job
worker, the runner and the benchmarks use.
"""

from __future__ import annotations

# Importing a module registers its patches, and for patches of one dlib module
# registration order is application order, hence this order: the one-line
# printer of user errors first (the next patches read switches), then the fixes
# (the TF1 switch before deterministic mode imports TensorFlow), and the data
# patches before the features (the plugin's preflight wraps named_data around
# the data-file check, so the settings are checked before the files).
# isort: off
from splitenc_plugin.compat import user_errors  # noqa: F401
from splitenc_plugin.compat import fixes  # noqa: F401
from splitenc_plugin.compat import determinism  # noqa: F401
from splitenc_plugin.compat import data  # noqa: F401
from splitenc_plugin.compat import features  # noqa: F401
# isort: on
from splitenc_plugin.compat.determinism import DETERMINISTIC_ENV, deterministic_mode
from splitenc_plugin.compat.features import patch_input_pipeline, plugin_feature
from splitenc_plugin.compat.instrument import instrument_estimator_train
from splitenc_plugin.compat.registry import (
    after_exec,
    after_import,
    before_exec,
    before_import,
    patch_loaded_modules,
    watched_modules,
)

__all__ = [
    "DETERMINISTIC_ENV",
    "WATCHED_MODULES",
    "after_exec",
    "after_import",
    "before_exec",
    "before_import",
    "deterministic_mode",
    "instrument_estimator_train",
    "patch_input_pipeline",
    "patch_loaded_modules",
    "plugin_feature",
]

#: Every dlib module a patch applies to (the hook hands only these to the layer).
WATCHED_MODULES = watched_modules()
