"""Procedural dSprites generation: wall time and peak memory.

Runs :func:`splitenc_plugin.data.dsprites.generate_dsprites` (the full
737,280-image file, or a small subset with ``--smoke``) in a fresh subprocess
per repetition (:mod:`bench.dsprites_gen_child`) and reads that child's own
peak resident set size from ``os.wait4``. A baseline child that only imports
the same modules is measured in the same interleaved rounds, so the
generation's own time and memory are the difference.

Usage (from the repository root)::

    .venv/bin/python -m bench.dsprites_gen             # full file, 3 rounds
    .venv/bin/python -m bench.dsprites_gen --smoke     # a 3 x 2 x 2 x 4 x 4 subset
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence

from bench import common

SMOKE_SUBSET = {"scale": [0, 5], "orientation": [0, 10], "posX": [0, 10, 20, 31],
                "posY": [0, 10, 20, 31]}


def run_once(generate: bool, subset: dict | None) -> tuple[float, float, float]:
    """One child: (in-child seconds, child wall seconds, peak RSS MB).

    The child is :mod:`bench.dsprites_gen_child`: it imports the generator,
    then times ``generate_dsprites`` (nothing, if not ``generate``).
    """
    spec = json.dumps({"generate": generate, "subset": subset})
    with tempfile.TemporaryDirectory(prefix="bench_dsprites_") as tmp:
        code, out, err, wall, rss = common.run_with_peak_rss(
            [common.python(), "-m", "bench.dsprites_gen_child", "--worker", spec, tmp])
    common.check_ok(code, out, err, "dSprites generation")
    seconds = float(next(line.split()[1] for line in out.splitlines()
                         if line.startswith("SECONDS")))
    return seconds, wall, rss


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the benchmark (the module docstring's usage); prints its table."""
    parser = common.base_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args(argv)
    subset = SMOKE_SUBSET if args.smoke else None
    repeats = 1 if args.smoke else (args.repeats or 3)
    variants = ["imports only", "generate_dsprites"]
    raw: dict[str, list[tuple[float, float, float]]] = {v: [] for v in variants}

    def measure(variant: str) -> float:
        result = run_once(variant == "generate_dsprites", subset)
        raw[variant].append(result)
        print(f"#   {variant}: {result[0]:.1f} s, peak RSS {result[2]:.0f} MB",
              file=sys.stderr, flush=True)
        return result[0]

    common.interleaved(variants, repeats, measure)
    rows, payload = [], []
    for v in variants:
        seconds = common.median(r[0] for r in raw[v])
        wall = common.median(r[1] for r in raw[v])
        rss = max(r[2] for r in raw[v])
        rows.append([v, seconds, wall, rss, common.spread([r[0] for r in raw[v]])])
        payload.append({"variant": v, "seconds": seconds, "process_wall_seconds": wall,
                        "peak_rss_mb": rss, "raw": raw[v]})
    own = (payload[1]["peak_rss_mb"] - payload[0]["peak_rss_mb"])
    what = "a subset (smoke)" if args.smoke else "the full 737,280-image file"
    print(f"Procedural dSprites generation of {what}: fresh process per run, "
          f"median of {repeats} interleaved rounds\n")
    print(common.format_table(["run", "generation s (median)", "process wall s", "peak RSS MB",
                               "generation s range"], rows))
    print(f"\nGeneration's own peak memory (over the imports-only process): {own:.0f} MB")
    common.write_json(args.json, {"benchmark": "dsprites_gen", "repeats": repeats,
                                  "smoke": args.smoke, "rows": payload})


if __name__ == "__main__":
    main()
