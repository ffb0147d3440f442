"""Still latent traversals over each latent's fitted ±2σ range, for Appendix C.

dlib's ``visualize_model`` writes still traversals (``traversals/traversals{i}.jpg``)
that set every latent to the same values, ``linspace(-1, 1, 11)``, whatever its
spread: a latent whose codes spread far beyond [-1, 1] barely moves there, and
one whose codes fill a narrow band is decoded outside it. dlib itself
covers each latent's own range only in its GIF animations: its
``conf_interval_cycle{i}.gif`` cycles latent j linearly through loc_j ± 2·scale_j
of a Gaussian fitted to the 64 encoded inputs (loc = mean of the means,
scale² = mean variance + variance of the means). These are heavy and cycle
rather than sort, so :func:`visualize_fitted_traversals` writes the same range as
still images in dlib's layout: the same 64 inputs and base codes as dlib's stills
(its random stream replayed), one column per latent, one row per value from
loc_j − 2·scale_j to loc_j + 2·scale_j.

Appendix C labels each traversal column (latent) with the factor it is most
informative about and that normalised MI (:func:`most_informative_factors`,
:func:`latent_labels`), from the same job's per-factor MIG matrix
(:mod:`splitenc_plugin.metrics.factor_mig`, on the mean representation, whose
latents are the traversals' columns).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["FITTED_DIR", "fitted_interval_values", "latent_labels", "most_informative_factors",
           "traversal_grid", "visualize_fitted_traversals"]

FITTED_DIR = "traversals_fitted"  # beside dlib's visualizations/traversals/
NUM_PICS = 64  # dlib visualize_model's num_pics
NUM_VALUES = 11  # dlib's default traversal grid has 11 values


def fitted_interval_values(means: np.ndarray, logvars: np.ndarray,
                           num_values: int = NUM_VALUES) -> np.ndarray:
    """Per-latent grids over dlib's fitted-Gaussian ±2σ interval.

    Args:
      means: [num_points, num_latent] encoder means.
      logvars: [num_points, num_latent] encoder log-variances.
      num_values: Values per latent (at least 2).

    Returns:
      [num_values, num_latent]: column j is ``linspace(loc_j - 2 s_j,
      loc_j + 2 s_j, num_values)`` with loc_j the mean of ``means[:, j]`` and
      s_j² = mean(exp(logvars[:, j])) + var(means[:, j]), the interval of
      dlib's ``conf_interval_cycle`` animation.
    """
    if means.shape != logvars.shape or means.ndim != 2:
        raise ValueError(f"means and logvars must both be [num_points, num_latent]; "
                         f"got {means.shape} and {logvars.shape}")
    if num_values < 2:
        raise ValueError(f"num_values must be at least 2, got {num_values}")
    loc = means.mean(axis=0)
    scale = np.sqrt(np.exp(logvars).mean(axis=0) + means.var(axis=0))
    return np.linspace(loc - 2.0 * scale, loc + 2.0 * scale, num_values)


def most_informative_factors(mi_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each latent, the factor it is most informative about and that MI.

    Args:
      mi_matrix: [num_factors, num_latents] normalised MI (factor_mig's
        ``mi_matrix``: row k = factor k, column j = latent j).

    Returns:
      ([num_latents] factor index, the lowest on ties; [num_latents] its
      normalised MI with that factor).
    """
    mi_matrix = np.asarray(mi_matrix, dtype=float)
    if mi_matrix.ndim != 2:
        raise ValueError(f"mi_matrix must be [num_factors, num_latents], got {mi_matrix.shape}")
    factor = np.argmax(mi_matrix, axis=0)
    return factor, mi_matrix[factor, np.arange(mi_matrix.shape[1])]


def latent_labels(mi_matrix: np.ndarray, factor_names: list[str] | tuple[str, ...]) -> list[str]:
    """One label per traversal column: ``"z<j>: <factor> <MI>"`` (MI to 2 decimals).

    Args:
      mi_matrix: As :func:`most_informative_factors`.
      factor_names: Name of each factor (row of ``mi_matrix``).

    Returns:
      E.g. ``["z0: posX 0.81", "z1: shape 0.05", ...]``, one per latent.
    """
    factor, mi = most_informative_factors(mi_matrix)
    if len(factor_names) != np.shape(mi_matrix)[0]:
        raise ValueError(f"{len(factor_names)} factor names for a matrix of "
                         f"{np.shape(mi_matrix)[0]} factors")
    return [f"z{j}: {factor_names[k]} {value:.2f}" for j, (k, value) in enumerate(zip(factor, mi))]


def traversal_grid(generator_fn: Callable[[np.ndarray], np.ndarray], base_code: np.ndarray,
                   values: np.ndarray) -> np.ndarray:
    """One image: column j decodes ``base_code`` with latent j set to ``values[:, j]``.

    Built with dlib's ``latent_traversal_1d_multi_dim`` one latent at a time, so
    the layout is that of dlib's still traversals (rows: values, columns: latents).

    Args:
      generator_fn: [n, num_latent] codes -> [n, height, width, channels] images.
      base_code: [num_latent] code the traversals start from.
      values: [num_values, num_latent] values per latent.

    Returns:
      [num_values * height, num_latent * width, channels] image.
    """
    from disentanglement_lib.visualize import visualize_model

    if values.ndim != 2 or values.shape[1] != base_code.shape[0]:
        raise ValueError(f"values must be [num_values, {base_code.shape[0]}], got {values.shape}")
    columns = [visualize_model.latent_traversal_1d_multi_dim(
        generator_fn, base_code, np.array([j]), values[:, j]) for j in range(base_code.shape[0])]
    return np.concatenate(columns, axis=1)


def visualize_fitted_traversals(model_dir: str | os.PathLike, output_dir: str | os.PathLike,
                                num_images: int | None = None) -> list[Path]:
    """Writes ``output_dir/traversals{i}.jpg`` over each latent's fitted ±2σ range.

    Uses the model's TF-Hub module (``model_dir/tfhub``) and its operative
    ``results/gin/train.gin`` (dataset, decoder activation), like dlib's
    ``visualize_model.visualize``, and replays its random stream, so image i
    starts from the same input as dlib's ``traversals/traversals{i}.jpg``.

    Args:
      model_dir: A trained dlib model directory.
      output_dir: Directory to write into (created; existing files replaced).
      num_images: How many base inputs; default num_latent, as dlib's stills.

    Returns:
      The written paths.
    """
    import tensorflow_hub as hub
    from disentanglement_lib.data.ground_truth import named_data
    from disentanglement_lib.visualize import visualize_model, visualize_util

    from splitenc_plugin._gin import TRAIN_GIN, read_operative_config
    from splitenc_plugin.model.noise import NUM_LATENT_KEY

    activations = {"logits": visualize_model.sigmoid, "tanh": visualize_model.tanh}
    # The model's operative config, read as every reader of a trained model's
    # settings reads it (the noise setting included: NoiseSetting.from_operative_config).
    train_config = read_operative_config(Path(model_dir) / TRAIN_GIN)
    activation_name = train_config["reconstruction_loss.activation"]
    if activation_name not in activations:
        raise ValueError(f"decoder activation {activation_name!r} is not one dlib visualizes "
                         f"({', '.join(map(repr, activations))})")
    activation = activations[activation_name]
    num_latent = int(train_config[NUM_LATENT_KEY])
    num_images = num_latent if num_images is None else num_images
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = named_data.get_named_ground_truth_data(train_config["dataset.name"])
    # dlib's visualize draws, in order: 64 inputs for the reconstructions, 64
    # prior codes for the samples, then the 64 inputs whose means start the
    # traversals. Replaying the first two gives the same traversal inputs.
    random_state = np.random.RandomState(0)
    dataset.sample_observations(NUM_PICS, random_state)
    random_state.normal(0, 1, [NUM_PICS, num_latent])
    images = dataset.sample_observations(NUM_PICS, random_state)
    written = []
    with hub.eval_function_for_module(os.path.join(model_dir, "tfhub")) as module:
        encoded = module({"images": images}, signature="gaussian_encoder", as_dict=True)

        def decode(codes: np.ndarray) -> np.ndarray:
            return activation(module({"latent_vectors": codes}, signature="decoder",
                                     as_dict=True)["images"])

        values = fitted_interval_values(encoded["mean"], encoded["logvar"])
        for i in range(min(num_images, NUM_PICS)):
            path = output_dir / f"traversals{i}.jpg"
            visualize_util.grid_save_images([traversal_grid(decode, encoded["mean"][i], values)],
                                            str(path))
            written.append(path)
    np.savetxt(output_dir / "values.csv", values, delimiter=",", fmt="%.6g",
               header="rows: traversal values (top to bottom); columns: latents", comments="# ")
    return written
