"""Split encoder: our batched branches vs the naive Python loop of per-factor layers.

Builds, in one process, a training step (forward, backward and an Adam update
of the encoder's variables, batch 64 of 64x64x1 images, 10 latents) for:

* dlib's ``conv_encoder`` (the vanilla baseline),
* ``split_conv_encoder`` (ours: every layer of the 10 branches is one op),
* ``looped_split_conv_encoder`` (the same architecture as 10 separate
  ``tf.layers`` branches created in a Python loop),

each at ``num_shared_layers`` = 4 (the default: only the dense layer and the
heads are per-branch) and 2 (conv layers e3, e4 per-branch too), and times
them interleaved (``--repeats`` rounds of ``--steps`` steps, median). Also
reports the graph size (ops) and the time to build the graph. Ratios: naive /
ours step time, and ours / vanilla step time next to the encoder FLOP ratio.

Usage (from the repository root)::

    .venv/bin/python -m bench.split_encoder            # 7 rounds x 20 steps
    .venv/bin/python -m bench.split_encoder --smoke
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import common

BATCH = 64
NUM_LATENT = 10
INPUT_SHAPE = (64, 64, 1)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One encoder implementation."""

    encoder: str  # conv_encoder | split_conv_encoder | looped_split_conv_encoder
    num_shared_layers: int | None = None

    @property
    def label(self) -> str:
        """The variant's row label: the encoder (and its shared layers)."""
        if self.num_shared_layers is None:
            return self.encoder
        return f"{self.encoder} (shared={self.num_shared_layers})"


@dataclasses.dataclass
class Built:
    """A built training step."""

    session: Any
    train_op: Any
    num_ops: int
    build_seconds: float


def _encoder_fn(variant: Variant):
    import functools

    from disentanglement_lib.methods.shared import architectures

    from splitenc_plugin.model import encoders

    if variant.encoder == "conv_encoder":
        return architectures.conv_encoder
    fn = getattr(encoders, variant.encoder)
    return functools.partial(fn, num_shared_layers=variant.num_shared_layers)


def build(variant: Variant, seed: int = 0) -> Built:
    """Builds the encoder's training step in its own graph and session."""
    import numpy as np
    import tensorflow.compat.v1 as tf

    start = time.perf_counter()
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        images = tf.constant(
            np.random.RandomState(seed).randint(0, 2, (BATCH, *INPUT_SHAPE)).astype(np.float32))
        with tf.variable_scope("encoder"):
            means, log_var = _encoder_fn(variant)(images, NUM_LATENT, is_training=True)
        # A KL-like loss: depends on every output of every branch.
        loss = tf.reduce_mean(tf.square(means) + tf.exp(log_var) - log_var)
        train_op = tf.train.AdamOptimizer(1e-4).minimize(loss)
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph)
    session.run(init)
    session.run(train_op)  # first run: graph optimisation, allocation
    return Built(session, train_op, len(graph.get_operations()), time.perf_counter() - start)


def variants(smoke: bool) -> list[Variant]:
    """The compared implementations."""
    shared_values = (4,) if smoke else (4, 2)
    out = [Variant("conv_encoder")]
    for shared in shared_values:
        out += [Variant("split_conv_encoder", shared), Variant("looped_split_conv_encoder", shared)]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=common.positive_int, default=20, help="training steps per measurement")
    args = parser.parse_args(argv)
    steps, repeats = (2, 1) if args.smoke else (args.steps, args.repeats or 7)

    import disentanglement_lib  # noqa: F401  (compat layer: TF1 behaviour)

    from splitenc_plugin.model.encoders import encoder_flops

    chosen = variants(args.smoke)
    built = {v: build(v) for v in chosen}

    def measure(variant: Variant) -> float:
        b = built[variant]
        b.session.run(b.train_op)  # re-warm caches after the other sessions ran
        start = time.perf_counter()
        for _ in range(steps):
            b.session.run(b.train_op)
        return (time.perf_counter() - start) / steps

    print(f"# {len(chosen)} variants x {repeats} rounds x {steps} steps", file=sys.stderr)
    samples = common.interleaved(chosen, repeats, measure)
    med = {v: common.median(samples[v]) for v in chosen}

    def macs(v: Variant) -> int:
        kind = "conv_encoder" if v.encoder == "conv_encoder" else "split_conv_encoder"
        return encoder_flops(kind, NUM_LATENT, INPUT_SHAPE, v.num_shared_layers)

    rows = [[v.label, macs(v), built[v].num_ops, built[v].build_seconds, med[v] * 1e3,
             common.spread([s * 1e3 for s in samples[v]])] for v in chosen]
    table = common.format_table(
        ["encoder", "MACs/example (fwd)", "graph ops", "build s", "ms/train step (median)",
         "ms range"], rows)
    vanilla = Variant("conv_encoder")
    ratio_rows, ratios = [], []
    for v in chosen:
        if v.encoder != "split_conv_encoder":
            continue
        naive = Variant("looped_split_conv_encoder", v.num_shared_layers)
        ratio_rows.append([f"naive loop / ours (shared={v.num_shared_layers})",
                           med[naive] / med[v], 1.0])
        ratio_rows.append([f"ours / vanilla conv_encoder (shared={v.num_shared_layers})",
                           med[v] / med[vanilla], macs(v) / macs(vanilla)])
        ratios.append({"shared": v.num_shared_layers, "naive_over_ours": med[naive] / med[v],
                       "ours_over_vanilla": med[v] / med[vanilla],
                       "flops_ours_over_vanilla": macs(v) / macs(vanilla)})
    ratio_table = common.format_table(["comparison", "step-time ratio", "FLOP ratio"], ratio_rows)
    print(f"Split encoder alone: training step (fwd + bwd + Adam) of the encoder, batch {BATCH}, "
          f"{NUM_LATENT} latents, median of {repeats} interleaved rounds x {steps} steps\n")
    print(table + "\n\n" + ratio_table)
    common.write_json(args.json, {
        "benchmark": "split_encoder", "steps": steps, "repeats": repeats,
        "rows": [{"variant": v.label, "macs": macs(v), "ops": built[v].num_ops,
                  "build_seconds": built[v].build_seconds, "ms_per_step": med[v] * 1e3,
                  "samples_ms": [s * 1e3 for s in samples[v]]} for v in chosen],
        "ratios": ratios})
    for b in built.values():
        b.session.close()


if __name__ == "__main__":
    main()
