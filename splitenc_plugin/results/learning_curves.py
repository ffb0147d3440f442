"""Learning curves from the training summaries that dlib's estimator already writes.

dlib trains with a ``TPUEstimator`` whose directory, ``<model_dir>/tf_checkpoint``,
receives TF event files: every 100 steps (``RunConfig.save_summary_steps``'s
default, and at the first step) the model's ``tf.summary.scalar`` values and
the estimator's ``loss``; every step the throughput (``global_step/sec``,
``examples/sec``). What dlib 1.5's models summarize in training:

* ``vae``, ``beta_tc_vae`` (dlib's ``BaseVAE.model_fn``): ``reconstruction_loss``
  and ``elbo``, the evidence lower bound -(reconstruction_loss + KL) (negative);
* ``factor_vae``: ``reconstruction_loss`` only (its discriminator loss, KL and
  regularizer are not summarized in training);
* all: ``loss`` (the optimized loss: reconstruction + regularizer).

TF1 makes these names unique in the graph, so the files call them
``reconstruction_loss_1``, ``elbo_1``, ``loss_1``; :func:`read_learning_curves`
drops such a ``_<n>`` suffix when the bare name is not itself a tag.

``<model_dir>/learning_curves.json`` (:data:`CURVES_FILE`) is one JSON object::

    {"steps": [1, 101, 201, ...],            # ascending global steps
     "<tag>": [v_1, v_101, v_201, ...],      # one value per step, aligned
     ...}

``null`` marks a step at which the tag was not logged, or a non-finite value.
Values are float32 (the summaries' precision). Only the training event files
are read (the directory's top level, not ``eval/``, whose one point after
training is dlib's ``train_results``), and the throughput tags are left out
(:data:`THROUGHPUT_TAGS`). If an event file was written again for a step (a
restarted estimator), the newest value wins; a truncated or corrupt record (a
killed run) ends that file's reading. A study job resumed from a checkpoint
(:mod:`splitenc_plugin.sweep.job`) trains in a fresh estimator directory; it keeps
each earlier attempt's event files, and its curves join the attempts: an earlier
attempt's points count up to the step the next attempt resumed from (what it
logged after that checkpoint was training the model no longer carries).

The event files are among what ``--prune_heavy`` deletes, so a job calls
:func:`write_learning_curves` right after training. TensorFlow is imported
only when event files are read.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from splitenc_plugin._io import atomic_path

__all__ = ["CURVES_FILE", "EVENT_GLOB", "THROUGHPUT_TAGS", "read_learning_curves",
           "write_learning_curves"]

CURVES_FILE = "learning_curves.json"
EVENT_GLOB = "events.out.tfevents.*"
# Written by the estimator's StepCounterHook every step: speed, not learning.
THROUGHPUT_TAGS = ("global_step/sec", "examples/sec")
_UNIQUIFIED = re.compile(r"^(.+)_\d+$")


def _scalar(value) -> float | None:
    """A summary value as a float32-precision Python float, or None if not a scalar."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        number = value.simple_value
    elif kind == "tensor":
        import tensorflow as tf

        array = tf.make_ndarray(value.tensor)
        if array.ndim or not np.issubdtype(array.dtype, np.number):
            return None
        number = array.item()
    else:
        return None
    # float32's shortest repr, so the JSON is no longer than the data is precise.
    return float(str(np.float32(number)))


def _clean_tags(tags: set[str]) -> dict[str, str]:
    """Tag in the event files -> name in the curves (``loss_1`` -> ``loss``)."""
    names = {}
    for tag in tags:
        match = _UNIQUIFIED.match(tag)
        names[tag] = match.group(1) if match and match.group(1) not in tags else tag
    if len(set(names.values())) < len(names):  # two tags would merge: keep them all as written
        return {tag: tag for tag in tags}
    return names


def _read_points(files: list[Path], exclude: tuple[str, ...], until: int | None,
                 points: dict[str, dict[int, tuple[float, float]]]) -> None:
    """Adds the scalars of one attempt's event files to ``points``.

    Args:
      files: The event files of an estimator directory, sorted.
      exclude: Tags to leave out.
      until: Only steps up to this one (None: all).
      points: tag -> step -> (wall time, value); the newest write of a step wins.
    """
    import tensorflow.compat.v1 as tf

    for path in files:
        try:
            for event in tf.train.summary_iterator(str(path)):
                if until is not None and event.step > until:
                    continue
                for value in event.summary.value:
                    if value.tag in exclude:
                        continue
                    number = _scalar(value)
                    if number is None:
                        continue
                    series = points.setdefault(value.tag, {})
                    old = series.get(int(event.step))
                    if old is None or event.wall_time >= old[0]:
                        series[int(event.step)] = (event.wall_time, number)
        except tf.errors.DataLossError:
            pass  # a truncated last record: keep what was read


def read_learning_curves(event_dir: str | os.PathLike,
                         exclude: tuple[str, ...] = THROUGHPUT_TAGS,
                         earlier: Sequence[tuple[str | os.PathLike, int]] = (),
                         ) -> dict[str, list] | None:
    """The scalar summaries of a training's event files: ``event_dir``'s and earlier attempts'.

    Only the directories' top-level event files are read (not ``eval/``).

    Args:
      event_dir: An estimator directory, e.g. ``<model_dir>/tf_checkpoint``.
      exclude: Tags (as written in the files) to leave out.
      earlier: The event directories of the same training's earlier attempts,
        in order, each with the global step up to which its points count (the
        step the next attempt resumed from).

    Returns:
      ``{"steps": [...], "<tag>": [...]}`` as described in the module
      docstring, or None if the directories have no event file or their
      files hold no scalar summary.
    """
    sources = [(sorted(Path(directory).glob(EVENT_GLOB)), until)
               for directory, until in [*((d, int(u)) for d, u in earlier), (event_dir, None)]]
    if not any(files for files, _ in sources):
        return None  # without importing TensorFlow
    points: dict[str, dict[int, tuple[float, float]]] = {}
    for files, until in sources:
        _read_points(files, exclude, until, points)
    if not points:
        return None
    names = _clean_tags(set(points))
    steps = sorted({step for series in points.values() for step in series})
    curves: dict[str, list] = {"steps": steps}
    for tag, series in sorted(points.items()):
        curves[names[tag]] = [series[s][1] if s in series and math.isfinite(series[s][1])
                              else None for s in steps]
    return curves


def write_learning_curves(model_dir: str | os.PathLike,
                          earlier: Sequence[tuple[str | os.PathLike, int]] = (),
                          ) -> Path | None:
    """Writes ``<model_dir>/learning_curves.json`` from ``tf_checkpoint`` and ``earlier``.

    Args:
      model_dir: A dlib model directory (``dlib_train --model_dir``).
      earlier: Earlier attempts' event directories and the step up to which
        each counts (see :func:`read_learning_curves`).

    Returns:
      The written file, or None (nothing written) if there is no training
      event file with scalar summaries.
    """
    model_dir = Path(model_dir)
    curves = read_learning_curves(model_dir / "tf_checkpoint", earlier=earlier)
    if curves is None:
        return None
    path = model_dir / CURVES_FILE
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(curves, f, allow_nan=False)
        f.write("\n")
    return path
