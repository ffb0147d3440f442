"""Opt-in instrumentation of dlib's training call, for the job worker and the benchmarks.

Nothing here is applied at import: a process that wants it calls
:func:`instrument_estimator_train` (the job worker,
:mod:`splitenc_plugin.sweep.job`, to resume from a checkpoint and write its
progress file; ``bench/train_throughput.py`` and ``bench/lean_data.py`` to
time steps). It wraps TensorFlow's ``TPUEstimator.train``, which dlib's
``train`` calls; dlib's modules are untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

__all__ = ["instrument_estimator_train"]

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

    Idempotent: the class is wrapped once; a later call replaces both
    callbacks (``instrument_estimator_train()`` keeps only ``max_steps``).

    Args:
      before_train: Called with the estimator's model directory before training.
      on_step: Called with the global step after every training iteration.
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
