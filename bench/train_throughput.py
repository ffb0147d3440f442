"""Training throughput of dlib's own training loop: models x encoders (x input pipeline).

Runs dlib's ``train.train_with_gin`` with the shipped configs (the paper's
settings: batch 64, 10 latents, Adam, ``gin/{vae,factorvae,betatcvae}.gin`` and
their ``split_*`` twins) for a reduced number of steps, one fresh subprocess
per run, interleaving the configurations over ``--repeats`` rounds, and
reports the median time per global step with the analytic FLOPs of a step
(:mod:`bench.flops`: whole model, and encoder only). Ratios printed:

* each encoder / vanilla step time next to its whole-model FLOP ratio, per
  model (split: the paper's; the capacity controls with ``--models
  factor_vae,beta_tc_vae --encoders ...,matched_split_conv_encoder,wide_conv_encoder``,
  the models they have configs for; target: time ratio <= FLOP ratio x 1.05);
* vectorized / dlib input pipeline step time for the VAE with the vanilla
  encoder (``input_pipeline.vectorized = True``; target: <= 1);
* with ``--onednn``: every configuration with TF's oneDNN switched off and
  on (``TF_ENABLE_ONEDNN_OPTS=0``/``1`` in the run's subprocess), on / off
  step time per configuration. TF 2.15 does not turn oneDNN on by default on
  every x86-64 CPU, and without it the split encoder's per-branch convs take
  their fallback (:mod:`splitenc_plugin.model.encoders`); the ``oneDNN``
  column says what each run's TF actually had.

Step time excludes start-up: the compat layer's
:func:`~splitenc_plugin.compat.instrument_estimator_train` (the same patch the
job worker uses) reports every training iteration, whose time is recorded; the
step time is the mean over the
iterations after the first fifth (warm-up), which includes dlib's periodic
summaries (every 100 steps), as real training does. FactorVAE advances the
global step twice per iteration, so its time per global step is half its
time per iteration (its ``steps/s`` are global steps, like TF's log).

Usage (from the repository root)::

    .venv/bin/python -m bench.train_throughput                 # full: 500 steps x 3 rounds
    .venv/bin/python -m bench.train_throughput --steps 1000 --repeats 5
    .venv/bin/python -m bench.train_throughput --smoke         # a few steps, one process
    .venv/bin/python -m bench.train_throughput --models factor_vae --no-pipeline --onednn
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

from bench import common, flops
from splitenc_plugin.compat import instrument_estimator_train
from splitenc_plugin.compat.runtime import onednn_enabled

MODELS = ("vae", "factor_vae", "beta_tc_vae")
ENCODERS = ("conv_encoder", "split_conv_encoder")
# Input pipeline -> the gin bindings that select it.
PIPELINE_BINDINGS = {"dlib": (), "vectorized": ("input_pipeline.vectorized = True",)}
_RESULT_PREFIX = "RESULT "
#: ``DIR:N``: wait at the first training iteration until N processes have
#: reached theirs (each leaves a file in DIR), so that processes run side by
#: side (``bench.job_parallelism``) time the same window, whatever their
#: start-up times.
START_BARRIER_ENV = "SPLITENC_BENCH_START_BARRIER"
BARRIER_TIMEOUT = 600.0  # seconds to wait for the other processes' start-up
# How a run's oneDNN state reads in labels and tables (None: TF's default / unknown).
_ONEDNN_NAMES = {True: "on", False: "off", None: "unknown"}


def _wait_for_the_others() -> None:
    """The start barrier of :data:`START_BARRIER_ENV` (nothing when unset)."""
    spec = os.environ.get(START_BARRIER_ENV)
    if not spec:
        return
    directory, count = spec.rsplit(":", 1)
    open(os.path.join(directory, str(os.getpid())), "w").close()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(os.listdir(directory)) < int(count):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the other processes did not start within {BARRIER_TIMEOUT} s")
        time.sleep(0.005)


@dataclasses.dataclass(frozen=True)
class Config:
    """One training configuration."""

    model: str
    encoder: str
    pipeline: str = "dlib"
    # TF_ENABLE_ONEDNN_OPTS of the run: None leaves TF's default for this CPU.
    onednn: bool | None = None

    @property
    def label(self) -> str:
        """The variant's row label: model/encoder/pipeline (and oneDNN switch)."""
        switch = "" if self.onednn is None else f"/onednn={_ONEDNN_NAMES[self.onednn]}"
        return f"{self.model}/{self.encoder}/{self.pipeline}{switch}"

    @property
    def env(self) -> dict[str, str]:
        """The subprocess environment this configuration sets."""
        return {} if self.onednn is None else {"TF_ENABLE_ONEDNN_OPTS": str(int(self.onednn))}

    @property
    def setup(self) -> tuple[tuple[str, str], ...]:
        """What one subprocess must share: :attr:`env`, hashable."""
        return tuple(sorted(self.env.items()))


def gin_files(config: Config) -> list[str]:
    """The shipped gin config of a configuration (factorized noise), as the studies use it."""
    return [common.shipped_config(config.model, config.encoder)]


def gin_bindings(config: Config, steps: int, dataset: str) -> list[str]:
    """Bindings on top of the shipped config: short run, one eval batch."""
    if config.pipeline not in PIPELINE_BINDINGS:
        raise ValueError(f"unknown pipeline {config.pipeline!r}")
    return [f"model.training_steps = {steps}", "model.eval_steps = 1",
            f"dataset.name = '{dataset}'", *PIPELINE_BINDINGS[config.pipeline]]


# ---------------------------------------------------------------------------
# Worker (runs inside the subprocess)
# ---------------------------------------------------------------------------
def _train_and_time(config: Config, steps: int, dataset: str, model_dir: str) -> dict:
    """Trains one configuration with dlib's train_with_gin; returns its timings."""
    # The compat layer installs the input_pipeline switch when dlib's train is imported.
    from disentanglement_lib.methods.unsupervised import train

    times: list[float] = []
    cpu_times: list[float] = []  # CPU seconds of the whole process (all threads)
    epochs: list[float] = []  # wall-clock seconds, comparable across processes

    def record(_: int) -> None:
        if not times:
            _wait_for_the_others()
        times.append(time.perf_counter())
        cpu_times.append(time.process_time())
        epochs.append(time.time())

    instrument_estimator_train(on_step=record)
    start = time.perf_counter()
    try:
        train.train_with_gin(model_dir, overwrite=True, gin_config_files=gin_files(config),
                             gin_bindings=gin_bindings(config, steps, dataset))
    finally:
        instrument_estimator_train()
    wall = time.perf_counter() - start
    iterations = len(times)
    warmup = max(1, iterations // 5)
    if iterations - 1 - warmup < 1:
        raise RuntimeError(f"{config.label}: only {iterations} iterations timed; use more steps")
    per_iteration = (times[-1] - times[warmup]) / (iterations - 1 - warmup)
    per_step = per_iteration / flops.GLOBAL_STEPS_PER_ITERATION[config.model]
    cores = (cpu_times[-1] - cpu_times[warmup]) / (times[-1] - times[warmup])
    return {"config": dataclasses.asdict(config), "iterations": iterations,
            "seconds_per_step": per_step, "cores_used": cores, "wall_seconds": wall,
            "onednn_enabled": onednn_enabled(),
            # The timed (post-warm-up) iterations' wall-clock times, so that
            # processes run side by side can be timed over their common window.
            "steady_epochs": epochs[warmup:],
            "global_steps_per_iteration": flops.GLOBAL_STEPS_PER_ITERATION[config.model]}


def worker(spec: str) -> None:
    """Entry point of the subprocess: trains each configuration in ``spec`` in turn."""
    import gin

    job = json.loads(spec)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for index, raw in enumerate(job["configs"]):
            config = Config(**raw)
            gin.clear_config()
            result = _train_and_time(config, job["steps"], job["dataset"],
                                     os.path.join(tmp, f"model_{index}"))
            print(_RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------
def run_worker(configs: Sequence[Config], steps: int, dataset: str,
               env: dict[str, str] | None = None) -> list[dict]:
    """Runs a fresh subprocess training ``configs`` in turn; returns their results.

    Args:
      configs: Configurations to train, in turn, in the one subprocess; they
        must agree on :attr:`Config.env` (one process, one TF set-up).
      steps: Global steps per configuration.
      dataset: ``dataset.name``.
      env: Extra environment variables of the subprocess (e.g. TF threads).
    """
    setups = {c.setup for c in configs}
    if len(setups) > 1:
        raise ValueError(f"one subprocess cannot run configs of different set-ups: {setups}")
    env = {**(env or {}), **dict(setups.pop())} if setups else env
    spec = json.dumps({"configs": [dataclasses.asdict(c) for c in configs], "steps": steps,
                       "dataset": dataset})
    code, out, err, _, _ = common.run_with_peak_rss(
        [common.python(), "-m", "bench.train_throughput", "--worker", spec],
        env=common.subprocess_env(env))
    common.check_ok(code, out, err, f"training {[c.label for c in configs]}")
    return [json.loads(line[len(_RESULT_PREFIX):]) for line in out.splitlines()
            if line.startswith(_RESULT_PREFIX)]


def by_setup(configs: Sequence[Config]) -> list[list[Config]]:
    """``configs`` grouped by :attr:`Config.env`, in order: one subprocess per group."""
    groups: dict[tuple, list[Config]] = {}
    for config in configs:
        groups.setdefault(config.setup, []).append(config)
    return list(groups.values())


def build_configs(models: Sequence[str], encoders: Sequence[str],
                  compare_pipelines: bool, compare_onednn: bool = False) -> list[Config]:
    """Every model x encoder with dlib's pipeline, plus VAE/conv with the vectorized one.

    With ``compare_onednn``, each of those twice: oneDNN off, then on.
    """
    configs = [Config(m, e) for m in models for e in encoders]
    if compare_pipelines:
        configs.append(Config(models[0], encoders[0], "vectorized"))
    if compare_onednn:
        configs = [dataclasses.replace(c, onednn=on) for c in configs for on in (False, True)]
    return configs


def _onednn_label(states: Sequence[bool | None]) -> str:
    """What the runs of one configuration had: on, off, unknown, or mixed."""
    return "/".join(sorted({_ONEDNN_NAMES[s] for s in states}))


def report(configs: Sequence[Config], samples: dict[Config, list[float]],
           batch_size: int = 64,
           onednn: dict[Config, list[bool | None]] | None = None) -> tuple[str, dict]:
    """The results table and the ratio table (Markdown) and a JSON payload.

    ``onednn``: per configuration, whether each run's TF had oneDNN on.
    """
    rows, payload_rows = [], []
    med = {c: common.median(samples[c]) for c in configs}
    for c in configs:
        model_gflop, encoder_gflop = flops.step_gflops(c.model, c.encoder, batch_size)
        ms = med[c] * 1e3
        had = _onednn_label((onednn or {}).get(c, [None]))
        rows.append([c.model, c.encoder, c.pipeline, had, model_gflop, encoder_gflop, ms,
                     1e3 / ms, common.spread([s * 1e3 for s in samples[c]])])
        payload_rows.append({**dataclasses.asdict(c), "onednn_enabled": had,
                             "model_gflop_per_step": model_gflop,
                             "encoder_gflop_per_step": encoder_gflop, "ms_per_step": ms,
                             "samples_ms": [s * 1e3 for s in samples[c]]})
    table = common.format_table(
        ["model", "encoder", "pipeline", "oneDNN", "GFLOP/step (model)", "GFLOP/step (encoder)",
         "ms/step (median)", "steps/s", "ms/step range"], rows)

    ratio_rows, payload_ratios = [], []
    # Every other encoder against dlib's conv_encoder of the same set-up ("split",
    # "matched_split", "wide": the encoder's name without "_conv_encoder").
    for other in configs:
        vanilla = dataclasses.replace(other, encoder="conv_encoder")
        if other.encoder == vanilla.encoder or other.pipeline != "dlib" or vanilla not in med:
            continue
        name = other.encoder.removesuffix("_conv_encoder")
        time_ratio = med[other] / med[vanilla]
        (other_model, other_encoder), (base_model, base_encoder) = (
            flops.step_gflops(c.model, c.encoder) for c in (other, vanilla))
        model_ratio, encoder_ratio = other_model / base_model, other_encoder / base_encoder
        met = "yes" if time_ratio <= model_ratio * 1.05 else "no"
        switch = "" if vanilla.onednn is None else f" (oneDNN {_ONEDNN_NAMES[vanilla.onednn]})"
        ratio_rows.append([f"{vanilla.model}: {name} / vanilla{switch}", time_ratio, model_ratio,
                           encoder_ratio, f"<= {model_ratio * 1.05:.3f}: {met}"])
        payload_ratios.append({"what": f"{vanilla.model} {name}/vanilla{switch}",
                               "time": time_ratio, "model_flops": model_ratio,
                               "encoder_flops": encoder_ratio})
    for fast in configs:
        if fast.pipeline != "vectorized":
            continue
        slow = dataclasses.replace(fast, pipeline="dlib")
        if slow in med:
            time_ratio = med[fast] / med[slow]
            ratio_rows.append([f"{fast.model}/{fast.encoder}: vectorized / dlib pipeline",
                               time_ratio, 1.0, 1.0, f"<= 1: {'yes' if time_ratio <= 1 else 'no'}"])
            payload_ratios.append({"what": f"{fast.model} vectorized/dlib", "time": time_ratio})
    for on in configs:
        if on.onednn is not True:
            continue
        off = dataclasses.replace(on, onednn=False)
        if off in med:
            time_ratio = med[on] / med[off]
            ratio_rows.append([f"{on.model}/{on.encoder}/{on.pipeline}: oneDNN on / off",
                               time_ratio, 1.0, 1.0, "none (measured)"])
            payload_ratios.append({"what": f"{on.label} oneDNN on/off", "time": time_ratio})
    ratios = common.format_table(
        ["comparison", "step-time ratio", "FLOP ratio (whole model)", "FLOP ratio (encoder)",
         "target"], ratio_rows)
    return table + "\n\n" + ratios, {"rows": payload_rows, "ratios": payload_ratios}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # the child process's entry
    parser.add_argument("--steps", type=common.positive_int, default=500, help="global steps per run")
    parser.add_argument("--dataset", default="dsprites_full",
                        help="dataset.name (default: the paper's dsprites_full)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--no-pipeline", action="store_true",
                        help="skip the vectorized-pipeline configuration")
    parser.add_argument("--onednn", action="store_true",
                        help="run every configuration with TF's oneDNN off and on "
                             "(TF_ENABLE_ONEDNN_OPTS=0/1) and report on / off")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    models, encoders = args.models.split(","), args.encoders.split(",")
    common.check_shipped(parser, models, encoders)
    if args.smoke and args.models == parser.get_default("models"):
        models = models[:1]  # the smoke run checks the table, not every model
    configs = build_configs(models, encoders, not args.no_pipeline, args.onednn)
    onednn: dict[Config, list[bool | None]] = {c: [] for c in configs}
    if args.smoke:
        steps, dataset, repeats = 10, "dummy_data", 1
        results = [r for group in by_setup(configs) for r in run_worker(group, steps, dataset)]
        samples = {Config(**r["config"]): [r["seconds_per_step"]] for r in results}
        for r in results:
            onednn[Config(**r["config"])].append(r["onednn_enabled"])
    else:
        steps, dataset, repeats = args.steps, args.dataset, args.repeats or 3
        common.check_datasets(parser, [dataset])
        print(f"# {len(configs)} configurations x {repeats} rounds, {steps} steps each, "
              f"dataset {dataset} (one subprocess per run)", file=sys.stderr, flush=True)

        def measure(config: Config) -> float:
            (result,) = run_worker([config], steps, dataset)
            onednn[config].append(result["onednn_enabled"])
            print(f"#   {config.label}: {result['seconds_per_step'] * 1e3:.1f} ms/step "
                  f"(run {result['wall_seconds']:.0f} s)", file=sys.stderr, flush=True)
            return result["seconds_per_step"]

        samples = common.interleaved(configs, repeats, measure)
    text, payload = report(configs, samples, onednn=onednn)
    print(f"Training throughput: dataset {dataset}, batch 64, {steps} global steps per run, "
          f"median of {repeats} interleaved run(s)\n")
    print(text)
    common.write_json(args.json, {"benchmark": "train_throughput", "steps": steps,
                                  "dataset": dataset, "repeats": repeats, **payload})


if __name__ == "__main__":
    main()
