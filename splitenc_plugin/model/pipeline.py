"""A vectorized input pipeline for dlib's training, switched on with one gin binding.

dlib's ``train.py`` feeds the estimator through
``util.tf_data_set_from_ground_truth_data``: a ``tf.data.Dataset.from_generator``
whose generator yields *one* image per Python call
(``ground_truth_data.sample_observations(1, random_state)[0]``), batched by
``.batch(batch_size, drop_remainder=True)`` (``.take(num_batches)`` for the
evaluation pass), with no prefetching. That costs ~180 µs of Python per
image (``bench/input_pipeline.py``: 11.6 ms per batch of 64 on dSprites), ~19%
of a CPU training step, and the bottleneck on a GPU, where a step of dlib's
small conv nets takes a few milliseconds.

With ::

    input_pipeline.vectorized = True

the same dataset object is asked for many examples per Python call instead
(``sample(n, random_state)``: ``sample_factors`` draws every factor of the
``n`` examples with one numpy call per factor, then
``sample_observations_from_factors`` gathers or renders the observations;
``n`` = 8 batches of 64), the chunk is cast to float32 and split into batches
inside tf.data, and ``prefetch`` overlaps all that with the training step.
For dlib's plain ``DSprites`` (``dsprites_full``, ``dsprites_noshape``) the
chunk crosses into TensorFlow as the stored uint8 pixels and is cast there,
which gives the same float32 values with 4x fewer bytes through Python.

Every dlib dataset draws the examples of a batch independently and
identically (factors uniform
over their values, then the observation for those factors), so the sampling
distribution is exactly dlib's. The *random stream* is not: batched draws
consume the numpy ``RandomState`` in a different order than per-image draws,
so a run with the switch on is not bit-identical to stock dlib (same seed,
different images in each batch). With the switch off (the default, and
whenever the binding is absent) dlib's own ``_make_input_fn`` runs,
untouched, and nothing of this module shows up in the operative gin config.

The switch is applied by the compat layer
(:func:`splitenc_plugin.compat.patch_input_pipeline`, right after
``disentanglement_lib.methods.unsupervised.train`` is imported), which asks
:func:`active_settings` at every call. The switch covers both input functions
that ``train`` builds (training and the ``model.eval_steps`` evaluation pass).

TensorFlow is imported inside the functions, so importing this module (and
``splitenc_plugin``) does not import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import gin
import numpy as np

from splitenc_plugin._gin import check_int_binding, configurable
from splitenc_plugin.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing this module imports no TensorFlow
    import tensorflow as tf

__all__ = [
    "DEFAULT_PREFETCH_BATCHES",
    "active_settings",
    "input_pipeline",
    "make_input_fn",
    "preflight",
    "sample_batch",
    "vectorized_chunks",
    "vectorized_dataset",
]

#: Batches the vectorized pipeline prepares ahead of the training step.
DEFAULT_PREFETCH_BATCHES = 4

# Examples drawn per Python call (8 batches of dlib's 64): amortises the
# from_generator call and tensor conversion, a few MB per call.
_EXAMPLES_PER_CALL = 512

_GIN_NAME = "input_pipeline"
_PARAMETERS = ("vectorized", "prefetch_batches")


@configurable(_GIN_NAME, allowlist=list(_PARAMETERS))
def input_pipeline(vectorized: bool = False,
                   prefetch_batches: int = DEFAULT_PREFETCH_BATCHES) -> tuple[bool, int]:
    """Settings of dlib's training input pipeline (gin: ``input_pipeline.*``).

    Args:
      vectorized: False (default): dlib's own per-image generator pipeline.
        True: draw whole batches with numpy and prefetch them (same sampling
        distribution, different random stream; see the module docstring).
      prefetch_batches: Batches prepared ahead by the vectorized pipeline
        (>= 1); unused when ``vectorized`` is False.

    Returns:
      The validated ``(vectorized, prefetch_batches)``.

    Raises:
      ConfigError: ``vectorized`` is not a boolean, or ``prefetch_batches`` is
        not an integer >= 1.
    """
    if not isinstance(vectorized, (bool, np.bool_)):
        raise ConfigError(
            f"{_GIN_NAME}.vectorized must be True or False, got {vectorized!r}. "
            f"Fix the binding, e.g. {_GIN_NAME}.vectorized = True.")
    return bool(vectorized), check_int_binding(prefetch_batches, f"{_GIN_NAME}.prefetch_batches",
                                               1, None, str(DEFAULT_PREFETCH_BATCHES))


def _is_bound() -> bool:
    """Whether any ``input_pipeline`` parameter is bound in the current gin config."""
    for parameter in _PARAMETERS:
        try:
            gin.query_parameter(f"{_GIN_NAME}.{parameter}")
        except ValueError:
            continue
        return True
    return False


def active_settings() -> tuple[bool, int]:
    """The active ``(vectorized, prefetch_batches)``; dlib's pipeline unless bound.

    The configurable is only called when bound, so that an unconfigured run
    records nothing extra in dlib's saved operative config.
    """
    if not _is_bound():
        return False, DEFAULT_PREFETCH_BATCHES
    return input_pipeline()


def preflight() -> None:
    """Validates the ``input_pipeline`` bindings (raises :class:`ConfigError`)."""
    active_settings()


def _observation_shape(ground_truth_data: Any) -> list[int]:
    return [int(d) for d in np.atleast_1d(ground_truth_data.observation_shape)]


def _is_plain_dsprites(ground_truth_data: Any) -> bool:
    """Whether the data is dlib's ``DSprites`` itself (dsprites_full / _noshape), no subclass."""
    from disentanglement_lib.data.ground_truth import dsprites

    return type(ground_truth_data) is dsprites.DSprites


def sample_batch(ground_truth_data: Any, num: int,
                 random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``num`` examples as the vectorized pipeline does: factors and observations.

    This is dlib's ``ground_truth_data.sample(num, random_state)`` (uniform
    factors, then their observations), with one exception that changes no
    value: for dlib's plain ``DSprites`` the observations stay uint8 (the
    stored 0/1 pixels, ``[num, 64, 64, 1]``) and are cast to float32 in the
    TF graph, which cuts the bytes crossing Python -> TensorFlow by 4. The
    random draws are the same calls in the same order as ``sample``, so both
    forms give the same values for the same ``random_state``.

    Args:
      ground_truth_data: A dlib ``GroundTruthData``.
      num: Number of examples.
      random_state: numpy ``RandomState``; advanced in place.

    Returns:
      ``(factors, observations)``: factors ``[num, num_factors]`` as dlib's
      ``sample_factors`` returns them; observations ``[num, *observation_shape]``,
      uint8 for plain DSprites, float32 otherwise.
    """
    shape = (num, *_observation_shape(ground_truth_data))
    if _is_plain_dsprites(ground_truth_data):
        # DSprites.sample -> sample_factors, then
        # sample_observations_from_factors_no_color without its float cast.
        factors = ground_truth_data.sample_factors(num, random_state)
        all_factors = ground_truth_data.state_space.sample_all_factors(factors, random_state)
        indices = np.array(np.dot(all_factors, ground_truth_data.factor_bases), dtype=np.int64)
        return factors, ground_truth_data.images[indices].reshape(shape)
    factors, observations = ground_truth_data.sample(num, random_state)
    return factors, np.asarray(observations, dtype=np.float32).reshape(shape)


def _batches_per_call(batch_size: int) -> int:
    """Batches drawn per Python call: enough to amortise tf.data's per-call cost."""
    return max(1, _EXAMPLES_PER_CALL // batch_size)


def vectorized_chunks(ground_truth_data: Any, random_seed: int, batch_size: int,
                      batches_per_call: int = 1) -> Iterator[np.ndarray]:
    """Endless arrays ``[batches_per_call, batch_size, *observation_shape]`` of observations.

    Each chunk is the observations of :func:`sample_batch` for
    ``batches_per_call * batch_size`` examples, split into batches.

    Args:
      ground_truth_data: A dlib ``GroundTruthData``.
      random_seed: Seed of the numpy ``RandomState`` (created when iteration
        starts, like dlib's generator, so the stream restarts identically).
      batch_size: Examples per batch.
      batches_per_call: Batches per yielded chunk.

    Yields:
      uint8 (plain DSprites) or float32 arrays.
    """
    random_state = np.random.RandomState(random_seed)
    shape = (batches_per_call, batch_size, *_observation_shape(ground_truth_data))
    while True:
        _, observations = sample_batch(ground_truth_data, batches_per_call * batch_size,
                                       random_state)
        yield observations.reshape(shape)


def vectorized_dataset(ground_truth_data: Any, random_seed: int, batch_size: int,
                       prefetch_batches: int = DEFAULT_PREFETCH_BATCHES,
                       num_batches: int | None = None,
                       batches_per_call: int | None = None) -> tf.data.Dataset:
    """The vectorized pipeline as a ``tf.data.Dataset`` of whole batches.

    A ``from_generator`` over :func:`vectorized_chunks` (one Python call per
    ``batches_per_call`` batches), cast to float32 in the graph (when the
    chunk is uint8), split into batches, optionally cut to ``num_batches``,
    and prefetched.

    Args:
      ground_truth_data: A dlib ``GroundTruthData``.
      random_seed: Seed of the numpy stream.
      batch_size: Examples per batch (the static batch dimension).
      prefetch_batches: Batches prepared ahead.
      num_batches: If given, the dataset ends after that many batches (as
        dlib's ``.take(num_batches)`` for evaluation).
      batches_per_call: Batches drawn per Python call; default: as many as
        fit in ~512 examples.

    Returns:
      A dataset of float32 tensors ``[batch_size, *observation_shape]``.
    """
    import tensorflow.compat.v1 as tf

    if batches_per_call is None:
        batches_per_call = _batches_per_call(batch_size)
    dtype = tf.uint8 if _is_plain_dsprites(ground_truth_data) else tf.float32
    shape = [batches_per_call, batch_size, *_observation_shape(ground_truth_data)]
    dataset = tf.data.Dataset.from_generator(
        functools.partial(vectorized_chunks, ground_truth_data, random_seed, batch_size,
                          batches_per_call),
        dtype, output_shapes=shape)
    # One cast per chunk (a no-op for float32 chunks), then its batches; this
    # was the fastest of unbatch / map-per-batch / flat_map variants measured.
    dataset = dataset.flat_map(
        lambda chunk: tf.data.Dataset.from_tensor_slices(tf.cast(chunk, tf.float32)))
    if num_batches is not None:
        dataset = dataset.take(num_batches)
    return dataset.prefetch(prefetch_batches)


def make_input_fn(ground_truth_data: Any, seed: int, num_batches: int | None = None,
                  prefetch_batches: int = DEFAULT_PREFETCH_BATCHES) -> Callable[[dict], Any]:
    """A TPUEstimator input function like dlib's ``train._make_input_fn``, vectorized.

    Args:
      ground_truth_data: A dlib ``GroundTruthData``.
      seed: Seed of the numpy stream.
      num_batches: Optional number of batches (evaluation).
      prefetch_batches: Batches prepared ahead.

    Returns:
      ``load_dataset(params)`` returning the next batch tensor, as dlib's.
    """

    def load_dataset(params: dict) -> Any:
        """TPUEstimator compatible input function."""
        dataset = vectorized_dataset(ground_truth_data, seed, params["batch_size"],
                                     prefetch_batches, num_batches)
        return dataset.make_one_shot_iterator().get_next()

    return load_dataset
