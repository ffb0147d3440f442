#!/usr/bin/env python3
"""``make demo``: vanilla vs split-encoder FactorVAE on procedural dSprites, end to end.

1. Generates procedural dSprites into ``$DISENTANGLEMENT_LIB_DATA`` (the
   Makefile sets it to ``./data``) unless a valid file is already there.
2. Runs ``splitenc_reproduce`` on ``split_encoder_study_v1`` filtered to
   FactorVAE (gamma = 35) x {vanilla conv encoder, split encoder} x
   dsprites_full x seed 0 (models 0 and 10), with a short step budget instead
   of the paper's 300,000 steps: train -> dlib's postprocessing -> dlib's MIG on
   the mean and sampled representations, the MI decomposition and the
   per-factor MIG (the runner's default ``--metrics``).
3. Aggregates the two models: prints the summary table and the figure paths.

Sized for < 15 minutes on 2 CPU cores. The run is resumable: running the demo
again skips what is finished. Options: ``--steps N`` (default 2000, or
``$SPLITENC_DEMO_STEPS``), ``--output_directory DIR`` (default ``runs/demo``).
MIG after a few thousand steps says little about the paper's claims (those need
the full budget: see README "Reproducing the paper"); the demo shows the
pipeline working end to end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from splitenc_plugin.data import cli, registry
from splitenc_plugin.experiments import reproduce_and_aggregate, tool

REPO = Path(__file__).resolve().parents[1]
STUDY = "split_encoder_study_v1"
DEFAULT_STEPS = 2000  # global steps per model, unless $SPLITENC_DEMO_STEPS or --steps


def _ensure_dsprites(root: str) -> None:
    status = registry.check_dataset("dsprites_full", root)
    if status.ok:
        print(f"[demo] dSprites present: {status.path}", flush=True)
        return
    print(f"[demo] generating procedural dSprites into {root} ...", flush=True)
    code = cli.main(["dsprites", "--output_dir", root])
    if code:
        sys.exit(f"[demo] generating dSprites failed (exit {code})")


def main() -> int:
    """Runs the demo; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help=f"global steps per model (default {DEFAULT_STEPS}, or "
                             "$SPLITENC_DEMO_STEPS)")
    parser.add_argument("--output_directory", default=str(REPO / "runs" / "demo"))
    args = parser.parse_args()
    if args.steps is None:
        env = os.environ.get("SPLITENC_DEMO_STEPS", str(DEFAULT_STEPS))
        if not env.strip().isdigit() or int(env) < 1:
            parser.error(f"$SPLITENC_DEMO_STEPS must be a positive integer, got {env!r}")
        args.steps = int(env)
    if args.steps < 1:  # before generating data, not after
        parser.error(f"--steps must be a positive integer, got {args.steps}")

    start = time.time()
    root = os.environ.setdefault(registry.ENV_VAR, str(REPO / "data"))
    _ensure_dsprites(root)
    print(f"[demo] training FactorVAE (gamma=35) with the vanilla and the split encoder, "
          f"{args.steps} steps each, seed 0, then dlib's MIG, the MI decomposition and the "
          "per-factor MIG", flush=True)
    code = reproduce_and_aggregate("demo", [
        tool("splitenc_reproduce"), "--study", STUDY,
        "--output_directory", args.output_directory, "--datasets", "dsprites_full",
        "--models", "factor_vae", "--seeds", "0", "--steps", str(args.steps), "--workers", "1",
    ], args.output_directory, STUDY)
    if code == 0:
        print(f"[demo] done in {(time.time() - start) / 60:.1f} min", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
