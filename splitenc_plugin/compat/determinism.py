"""Deterministic mode (opt-in): the same job gives byte-identical result JSONs.

Switched on by ``SPLITENC_DETERMINISTIC=1`` (:data:`DETERMINISTIC_ENV`;
``splitenc_reproduce --deterministic`` sets it for its jobs), for any gin config:
TensorFlow's op determinism, and graph-level seeds for the two graphs dlib
builds without one, each from its own step's seed: the TF-Hub export of
``train`` (``model.random_seed``: the ``reconstructions`` signature's noise)
and the module that ``postprocess`` convolutes (``postprocess.random_seed``:
the ``sampled`` representation's noise). Without the seeds op determinism
stops dlib's export with "Random ops require a seed". Off (the default), none
of these patches changes anything.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

from splitenc_plugin.compat.registry import (
    CONVOLUTE_HUB,
    GAUSSIAN_ENCODER_MODEL,
    ROOT,
    after_import,
    before_import,
)
from splitenc_plugin.errors import env_switch

__all__ = ["DETERMINISTIC_ENV", "deterministic_mode"]

#: Environment switch of deterministic mode.
DETERMINISTIC_ENV = "SPLITENC_DETERMINISTIC"


def deterministic_mode() -> bool:
    """Whether this process runs dlib in deterministic mode (``SPLITENC_DETERMINISTIC=1``)."""
    return env_switch(DETERMINISTIC_ENV, default=False)


@before_import(ROOT)
def _deterministic_ops(_: types.ModuleType) -> None:
    if deterministic_mode():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _bound_seed(parameter: str) -> int:
    """The value of the gin seed ``parameter``; 0 if it is not bound."""
    from splitenc_plugin._gin import bound_value

    seed = bound_value(parameter)
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


@after_import(GAUSSIAN_ENCODER_MODEL)
def _seed_tf_hub_export(module: types.ModuleType) -> None:
    """Deterministic mode: ``export_as_tf_hub`` builds its graph seeded by ``model.random_seed``."""
    if deterministic_mode() and not isinstance(module.hub, _SeededHub):
        module.hub = _SeededHub(module.hub, "model.random_seed")


@after_import(CONVOLUTE_HUB)
def _seed_postprocessing(module: types.ModuleType) -> None:
    """Deterministic mode: ``postprocess``'s representation module is seeded by
    ``postprocess.random_seed`` (the ``sampled`` representation's noise)."""
    if deterministic_mode() and not isinstance(module.hub, _SeededHub):
        module.hub = _SeededHub(module.hub, "postprocess.random_seed")
