"""Observes each compat patch through public entry points, in the process it runs in.

Run by ``tests/test_plugin_scope.py`` in a fresh interpreter with
``SPLITENC_PLUGIN_FEATURES`` set either way. Prints ``RESULT=<json>`` and saves
the first training batch of dlib's ``train._make_input_fn`` (DummyData, seed 7,
batch 64) to the path given as its one argument.
"""

from __future__ import annotations

import json
import sys

import gin
import numpy as np
import tensorflow.compat.v1 as tf
from disentanglement_lib.data.ground_truth import dsprites, dummy_data, named_data
from disentanglement_lib.methods.unsupervised import train, vae

import splitenc_plugin  # noqa: F401  registers the configurables, with or without features
from splitenc_plugin.data import lean_data


def load_error(name: str) -> str | None:
    """The class name of the error dlib's dataset loader raises for ``name``."""
    try:
        named_data.get_named_ground_truth_data(name)
    except Exception as exc:  # noqa: BLE001  whichever error it is, is the observation
        return type(exc).__name__
    return None


def configure(*bindings: str) -> None:
    gin.clear_config()
    gin.parse_config(list(bindings))


def noise_correlation() -> list[float]:
    """Off-diagonal correlations of dlib's VAE samples at mean 0, log-variance 0."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        zeros = tf.zeros([20000, 10])
        z = sess.run(vae.BetaVAE(beta=1.0).sample_from_latent_distribution(zeros, zeros))
    return np.corrcoef(z.T)[np.triu_indices(10, 1)].tolist()


def first_training_batch() -> np.ndarray:
    with tf.Graph().as_default(), tf.Session() as sess:
        return sess.run(train._make_input_fn(dummy_data.DummyData(), 7)({"batch_size": 64}))


def main(batch_path: str) -> None:
    out = {"lean": isinstance(dsprites.DSprites().images, lean_data.PackedBinaryImages),
           "missing_data": load_error("cars3d")}
    configure("reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 1.5")
    out["bad_sigma_then_missing_data"] = load_error("cars3d")
    configure("encoder.encoder_fn = @split_conv_encoder", "encoder.num_latent = 10",
              "split_conv_encoder.num_shared_layers = 7")
    out["bad_encoder_then_missing_data"] = load_error("cars3d")
    configure("reparameterization.noise_fn = @correlated_noise", "correlated_noise.sigma = 0.9")
    out["noise_correlation"] = noise_correlation()
    configure("input_pipeline.vectorized = True")
    np.save(batch_path, first_training_batch())
    print("RESULT=" + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
