"""Shared helpers of the benchmarks: interleaving, medians, tables, subprocesses."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def interleaved(variants: Sequence[Hashable], repeats: int,
                measure: Callable[[Hashable], float]) -> dict[Hashable, list[float]]:
    """Runs ``measure(v)`` for every variant, ``repeats`` rounds, interleaved.

    Round r measures all variants, in an order rotated by r, so that slow
    drifts of the machine's load hit every variant alike.

    Returns:
      Variant -> its measurements, in round order.
    """
    results: dict[Hashable, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        shift = r % len(variants) if variants else 0
        for variant in [*variants[shift:], *variants[:shift]]:
            results[variant].append(measure(variant))
    return results


def median(values: Iterable[float]) -> float:
    """Median of the values (NaN if there are none)."""
    values = list(values)
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the measurements, as a short string (noise indicator)."""
    if not values:
        return "-"
    return f"{min(values):.3g}-{max(values):.3g}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats get 3 significant digits (ratios 2 decimals)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "-"
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in text]
    return "\n".join(lines)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 would silently mean "the default")."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def new_json_file(text: str) -> Path:
    """argparse type of ``--json``: a new file in an existing directory, checked before
    any measuring, so that a run's results are neither lost at its end nor written over
    earlier ones (e.g. the committed ``docs/results/bench/*.json``)."""
    path = Path(text)
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text} exists; move it away or name a new file "
                                         "(results are never overwritten)")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {path.parent} does not exist; create it "
                                         "first")
    return path


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="a handful of steps: checks that the table is produced")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="interleaved repetitions per variant (median reported)")
    parser.add_argument("--json", type=new_json_file, default=None,
                        help="also write the results (rows and raw measurements) to this new "
                             "file")
    return parser


def check_datasets(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Stops with one parser error unless dlib can load every dataset (before measuring)."""
    from splitenc_plugin.data import registry
    from splitenc_plugin.errors import SplitencUserError

    for name in names:
        try:
            registry.require_dataset(name)
        except SplitencUserError as exc:
            parser.error(str(exc))


def check_shipped(parser: argparse.ArgumentParser, models: Iterable[str],
                  encoders: Iterable[str]) -> None:
    """Stops with one parser error unless a shipped config trains every model x encoder."""
    from splitenc_plugin.studies.grid import MODEL_CONFIGS

    trains = {(m, e) for m, e, sigma in MODEL_CONFIGS if sigma == 0.0}
    missing = [(m, e) for m in models for e in encoders if (m, e) not in trains]
    if missing:
        shipped = "; ".join(f"{m}: {', '.join(sorted(e for n, e in trains if n == m)) or 'none'}"
                            for m in dict.fromkeys(m for m, _ in missing))
        parser.error(f"no shipped config trains {', '.join(f'{m}/{e}' for m, e in missing)}; "
                     f"the shipped configs train {shipped}")


def write_json(path: Path | None, payload: dict) -> None:
    """Writes the results if ``--json`` was given (a new file: :func:`new_json_file`).

    Whole or not at all: an interrupted write leaves no half file that would
    block the next run's ``--json`` of the same name, and a file that appeared
    meanwhile is not written over (``FileExistsError``).
    """
    if path is None:
        return
    text = json.dumps(payload, indent=2, default=str)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for benchmark subprocesses: quiet TF, the repository importable."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_with_peak_rss(args: Sequence[str], env: dict[str, str] | None = None,
                      timeout: float = 3600) -> tuple[int, str, str, float, float]:
    """Runs a command to completion; returns (exit code, stdout, stderr, wall s, peak RSS MB).

    Output goes to temporary files and the child is reaped with ``os.wait4``,
    which gives the child's own peak RSS.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(args), stdout=out, stderr=err, text=True,
                                env=env or subprocess_env())
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise subprocess.TimeoutExpired(list(args), timeout)
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in kilobytes on Linux.
        return proc.returncode, out.read(), err.read(), wall, usage.ru_maxrss / 1024.0


def check_ok(code: int, stdout: str, stderr: str, what: str) -> None:
    """Raises with the child's output tail if it failed."""
    if code != 0:
        raise RuntimeError(f"{what} failed with exit {code}\n--- stdout\n{stdout[-3000:]}\n"
                           f"--- stderr\n{stderr[-6000:]}")


def shipped_config(model: str, encoder: str, sigma: float = 0.0) -> str:
    """Path of the shipped gin config that trains ``(model, encoder, sigma)``.

    Read from the studies' map (:data:`splitenc_plugin.studies.grid.MODEL_CONFIGS`),
    located as the studies locate it (:func:`splitenc_plugin.studies.grid.config_file`).

    Raises:
      ValueError: if no shipped config trains that combination.
    """
    from splitenc_plugin.studies.grid import MODEL_CONFIGS, config_file

    try:
        name = MODEL_CONFIGS[(model, encoder, float(sigma))]
    except KeyError:
        raise ValueError(f"no shipped config trains {model!r} with encoder {encoder!r} and "
                         f"sigma {sigma!r}") from None
    return config_file(f"plugin:{name}")


def python() -> str:
    """The interpreter running the benchmark (the venv's)."""
    return sys.executable
