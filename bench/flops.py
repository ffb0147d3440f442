"""Analytic FLOPs of one dlib training step, whole model (encoder, decoder, discriminator).

What is counted (multiply-adds of conv / transposed-conv / dense kernels;
biases, activations, losses and the optimizer's element-wise updates are not):

* encoder: :func:`splitenc_plugin.model.encoders.encoder_flops` (dlib ``conv_encoder``,
  ``split_conv_encoder`` or another kind of ``encoders.ENCODER_KINDS``);
* decoder: dlib's ``deconv_decoder`` (dense 256, dense 1024, four 4x4 stride-2
  transposed convs 64, 32, 32, C); a transposed conv costs
  ``H_in * W_in * k * k * C_in * C_out``;
* FactorVAE discriminator: dlib's ``fc_discriminator`` (six dense layers of
  1000 units, 2 logits) on the latent codes.

A training step runs the forward pass and the backward pass; the backward
pass computes the weight gradient and the input gradient of every layer,
each as many multiply-adds as the forward pass, so a trained layer costs
~3x its forward multiply-adds. For FactorVAE one iteration (= 2 global
steps in dlib) runs the discriminator forward on z and on the permuted z
(2x), back-propagates the VAE's TC term through it to z (input gradients
only: 1x) and trains it on both paths (4x): 7x its forward cost. The
beta-TCVAE estimator is O(batch^2 * latents) per batch, negligible here.
One multiply-add = 2 FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence

from splitenc_plugin.model.encoders import encoder_flops

#: Training steps cost ~3x the forward multiply-adds (forward, dW, dX).
TRAIN_MULTIPLIER = 3
#: FactorVAE's discriminator per iteration: 2 forward + 1 (TC back to z) + 4 (its training).
DISCRIMINATOR_MULTIPLIER = 7
#: Global steps per training iteration (dlib's FactorVAE increments it twice).
GLOBAL_STEPS_PER_ITERATION = {"vae": 1, "beta_tc_vae": 1, "factor_vae": 2}


def decoder_macs(num_latent: int = 10, output_shape: Sequence[int] = (64, 64, 1)) -> int:
    """Forward multiply-adds per example of dlib's ``deconv_decoder``."""
    channels = output_shape[2]
    macs = num_latent * 256 + 256 * 1024
    side, c_in = 4, 64
    for c_out in (64, 32, 32, channels):
        macs += side * side * 4 * 4 * c_in * c_out
        side, c_in = side * 2, c_out
    return macs


def discriminator_macs(num_latent: int = 10) -> int:
    """Forward multiply-adds per example of dlib's ``fc_discriminator``."""
    return num_latent * 1000 + 5 * 1000 * 1000 + 1000 * 2


def iteration_macs(model: str, encoder: str, num_latent: int = 10,
                   input_shape: Sequence[int] = (64, 64, 1)) -> dict[str, int]:
    """Multiply-adds per example of one training iteration, by part.

    Args:
      model: "vae", "beta_tc_vae" or "factor_vae".
      encoder: An encoder kind of :func:`splitenc_plugin.model.encoders.encoder_flops`.
      num_latent: Latent factors.
      input_shape: Image shape.

    Returns:
      ``{"encoder": ..., "decoder": ..., "discriminator": ..., "total": ...}``.
    """
    if model not in GLOBAL_STEPS_PER_ITERATION:
        raise ValueError(f"unknown model {model!r}")
    parts = {
        "encoder": TRAIN_MULTIPLIER * encoder_flops(encoder, num_latent, tuple(input_shape)),
        "decoder": TRAIN_MULTIPLIER * decoder_macs(num_latent, input_shape),
        "discriminator": (DISCRIMINATOR_MULTIPLIER * discriminator_macs(num_latent)
                          if model == "factor_vae" else 0),
    }
    parts["total"] = sum(parts.values())
    return parts


def step_gflops(model: str, encoder: str, batch_size: int = 64, num_latent: int = 10,
                input_shape: Sequence[int] = (64, 64, 1)) -> tuple[float, float]:
    """(whole-model GFLOPs, encoder-only GFLOPs) per dlib *global* step."""
    parts = iteration_macs(model, encoder, num_latent, input_shape)
    per_step = 2 * batch_size / GLOBAL_STEPS_PER_ITERATION[model] / 1e9
    return parts["total"] * per_step, parts["encoder"] * per_step
