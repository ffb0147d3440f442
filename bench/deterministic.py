"""Cost of deterministic mode: training steps/s with and without ``SPLITENC_DETERMINISTIC=1``.

Deterministic mode (``splitenc_reproduce --deterministic``, or
``SPLITENC_DETERMINISTIC=1`` for dlib's scripts; see
:mod:`splitenc_plugin.compat`) turns on TensorFlow's op determinism, which
replaces some multi-threaded kernels by deterministic ones, and seeds the
TF-Hub export and the ``sampled`` representation. This benchmark trains the
same configurations with dlib's ``train.train_with_gin`` in both modes, one
fresh subprocess per run (:func:`bench.train_throughput.run_worker`, so step
time is measured exactly as there: the mean over the iterations after the
first fifth), interleaved over ``--repeats`` rounds, and reports steps/s per
mode and the deterministic / default step-time ratio per configuration.

Usage (from the repository root)::

    .venv/bin/python -m bench.deterministic                 # 300 steps x 2 rounds
    .venv/bin/python -m bench.deterministic --steps 500 --repeats 3
    .venv/bin/python -m bench.deterministic --smoke         # a few steps on dummy_data
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from bench import common
from bench.train_throughput import Config, run_worker
from splitenc_plugin.compat import DETERMINISTIC_ENV

MODES = ("default", "deterministic")
# The VAE baseline, and the case: FactorVAE with the split encoder.
CONFIGS = (Config("vae", "conv_encoder"), Config("factor_vae", "split_conv_encoder"))


@dataclasses.dataclass(frozen=True)
class Run:
    """One measured variant: a configuration in a mode."""

    config: Config
    mode: str

    @property
    def label(self) -> str:
        """The variant's row label: config and mode."""
        return f"{self.config.label} {self.mode}"


def mode_env(mode: str) -> dict[str, str]:
    """The training subprocess's environment switch for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    return {DETERMINISTIC_ENV: "1" if mode == "deterministic" else "0"}


def measure(run: Run, steps: int, dataset: str) -> float:
    """Seconds per global step of one fresh training run."""
    (result,) = run_worker([run.config], steps, dataset, env=mode_env(run.mode))
    print(f"#   {run.label}: {result['seconds_per_step'] * 1e3:.1f} ms/step "
          f"(run {result['wall_seconds']:.0f} s)", file=sys.stderr, flush=True)
    return result["seconds_per_step"]


def report(configs: Sequence[Config], samples: dict[Run, list[float]]) -> tuple[str, dict]:
    """The side-by-side table (Markdown) and a JSON payload."""
    rows, payload_rows = [], []
    for config in configs:
        default, deterministic = (samples[Run(config, mode)] for mode in MODES)
        ms = {mode: common.median(samples[Run(config, mode)]) * 1e3 for mode in MODES}
        ratio = ms["deterministic"] / ms["default"]
        rows.append([config.model, config.encoder, 1e3 / ms["default"],
                     1e3 / ms["deterministic"], ratio,
                     common.spread([s * 1e3 for s in default]),
                     common.spread([s * 1e3 for s in deterministic])])
        payload_rows.append({**dataclasses.asdict(config),
                             "ms_per_step": ms, "deterministic_over_default": ratio,
                             "samples_ms": {"default": [s * 1e3 for s in default],
                                            "deterministic": [s * 1e3 for s in deterministic]}})
    table = common.format_table(
        ["model", "encoder", "steps/s (default)", "steps/s (deterministic)",
         "step-time ratio (deterministic / default)", "ms/step range (default)",
         "ms/step range (deterministic)"], rows)
    return table, {"rows": payload_rows}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=common.positive_int, default=300, help="global steps per run")
    parser.add_argument("--dataset", default="dsprites_full",
                        help="dataset.name (default: the paper's dsprites_full)")
    args = parser.parse_args(argv)
    configs = CONFIGS[:1] if args.smoke else CONFIGS
    if args.smoke:
        steps, dataset, repeats = 10, "dummy_data", 1
    else:
        steps, dataset, repeats = args.steps, args.dataset, args.repeats or 2
        common.check_datasets(parser, [dataset])
    runs = [Run(config, mode) for config in configs for mode in MODES]
    print(f"# {len(runs)} runs x {repeats} rounds, {steps} steps each, dataset {dataset} "
          "(one subprocess per run)", file=sys.stderr, flush=True)
    samples = common.interleaved(runs, repeats, lambda run: measure(run, steps, dataset))
    text, payload = report(configs, samples)
    print(f"Deterministic mode: dataset {dataset}, batch 64, {steps} global steps per run, "
          f"median of {repeats} interleaved run(s)\n")
    print(text)
    common.write_json(args.json, {"benchmark": "deterministic", "steps": steps,
                                  "dataset": dataset, "repeats": repeats, **payload})


if __name__ == "__main__":
    main()
