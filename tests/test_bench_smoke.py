"""Every benchmark in bench/ runs in smoke mode and prints a well-formed table.

Smoke mode runs a handful of steps, so the benchmarks never rot; still, the
runs take several minutes of 2 cores in all, so they are ``long`` tests
(``SPLITENC_ALL_TESTS=1``; CI runs them, see conftest.py). Nothing here looks at timings: only
at the shape of the output (tables with the expected columns and rows, numbers
where numbers belong, a JSON file with the same results).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_ok


def _run_bench(name: str, tmp_path) -> tuple[str, dict]:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", "--smoke", "--json", str(out)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
                          check=False)
    assert_ok(proc)
    return proc.stdout, json.loads(out.read_text())


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table in text: (headers, rows)."""
    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            headers = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            tables.append((headers, rows))
        else:
            i += 1
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _check_table(table, headers: list[str], num_rows: int, numeric: list[str]) -> None:
    got_headers, rows = table
    assert got_headers == headers
    assert len(rows) == num_rows
    for row in rows:
        assert len(row) == len(headers), row
        for column in numeric:
            value = _number(row[headers.index(column)])
            assert math.isfinite(value) and value >= 0, (column, row)


@pytest.mark.parametrize(("args", "message"), [
    (["bench.train_throughput", "--encoders", "conv_encoder,wide_conv_encoder"],
     "no shipped config trains vae/wide_conv_encoder"),
    (["bench.job_parallelism", "--encoder", "conv_encodr"],
     "no shipped config trains beta_tc_vae/conv_encodr"),
    (["bench.split_encoder", "--repeats", "0"], "--repeats: must be a positive integer"),
    (["bench.deterministic", "--steps", "0"], "--steps: must be a positive integer"),
    (["bench.job_parallelism"], "dataset 'dsprites_full' is missing"),
    (["bench.dsprites_gen", "--json", "{existing}"], "exists; move it away"),
    (["bench.input_pipeline", "--json", "{missing}/out.json"], "does not exist; create it"),
])
def test_a_benchmark_refuses_bad_input_before_measuring(tmp_path, args, message) -> None:
    existing = tmp_path / "earlier.json"
    existing.write_text("{}")
    paths = {"existing": existing, "missing": tmp_path / "nowhere"}
    proc = subprocess.run([sys.executable, "-m", *(a.format(**paths) for a in args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
                          env={**os.environ, "DISENTANGLEMENT_LIB_DATA": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert existing.read_text() == "{}"


def test_side_by_side_throughput_counts_only_the_common_window() -> None:
    from bench.job_parallelism import steps_per_second_together

    # A: an iteration every 0.1 s over [0, 8], then alone and faster (0.05 s) to
    # 10; B (FactorVAE: 2 global steps per iteration): every 0.2 s over [2, 8].
    a = [*np.arange(0, 8.0001, 0.1), *np.arange(8.05, 10.0001, 0.05)]
    b = list(np.arange(2, 8.0001, 0.2))
    run = [{"steady_epochs": a, "global_steps_per_iteration": 1},
           {"steady_epochs": b, "global_steps_per_iteration": 2}]
    assert steps_per_second_together(run) == pytest.approx(10 + 10)
    assert steps_per_second_together(run[:1]) == pytest.approx(
        (len(a) - 1) / 10)  # alone: its whole window
    with pytest.raises(RuntimeError, match="hardly overlap"):
        steps_per_second_together([run[0], {**run[1], "steady_epochs": [11.0, 12.0]}])


@pytest.mark.long
def test_train_throughput_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("train_throughput", tmp_path)
    tables = _tables(stdout)
    assert len(tables) == 2, stdout
    _check_table(tables[0], ["model", "encoder", "pipeline", "oneDNN", "GFLOP/step (model)",
                             "GFLOP/step (encoder)", "ms/step (median)", "steps/s",
                             "ms/step range"], 3,
                 ["GFLOP/step (model)", "GFLOP/step (encoder)", "ms/step (median)", "steps/s"])
    _check_table(tables[1], ["comparison", "step-time ratio", "FLOP ratio (whole model)",
                             "FLOP ratio (encoder)", "target"], 2,
                 ["step-time ratio", "FLOP ratio (whole model)"])
    assert {(r["encoder"], r["pipeline"]) for r in payload["rows"]} == {
        ("conv_encoder", "dlib"), ("split_conv_encoder", "dlib"), ("conv_encoder", "vectorized")}
    # What each run's TF had, read inside the run: one answer for one machine.
    assert len({r["onednn_enabled"] for r in payload["rows"]}) == 1
    assert payload["rows"][0]["onednn_enabled"] in {"on", "off"}


def test_train_throughput_onednn_axis_pairs_off_and_on_runs() -> None:
    from bench.train_throughput import Config, build_configs, by_setup, report

    configs = build_configs(["factor_vae"], ["conv_encoder", "split_conv_encoder"],
                            compare_pipelines=False, compare_onednn=True)
    assert [(c.encoder, c.onednn) for c in configs] == [
        ("conv_encoder", False), ("conv_encoder", True),
        ("split_conv_encoder", False), ("split_conv_encoder", True)]
    # One subprocess per TF set-up: the switch is read once, at TF's start.
    assert [[c.env for c in group] for group in by_setup(configs)] == [
        [{"TF_ENABLE_ONEDNN_OPTS": "0"}] * 2, [{"TF_ENABLE_ONEDNN_OPTS": "1"}] * 2]
    seconds = {("conv_encoder", False): 0.08, ("conv_encoder", True): 0.06,
               ("split_conv_encoder", False): 0.12, ("split_conv_encoder", True): 0.066}
    samples = {c: [seconds[c.encoder, c.onednn]] for c in configs}
    _, payload = report(configs, samples,
                        onednn={c: [c.onednn] for c in configs})
    ratios = {r["what"]: r["time"] for r in payload["ratios"]}
    assert ratios == pytest.approx({
        "factor_vae split/vanilla (oneDNN off)": 0.12 / 0.08,
        "factor_vae split/vanilla (oneDNN on)": 0.066 / 0.06,
        "factor_vae/conv_encoder/dlib/onednn=on oneDNN on/off": 0.06 / 0.08,
        "factor_vae/split_conv_encoder/dlib/onednn=on oneDNN on/off": 0.066 / 0.12})
    assert {r["onednn_enabled"] for r in payload["rows"]} == {"on", "off"}
    assert Config("vae", "conv_encoder").env == {}  # TF's own default


def test_train_throughput_compares_every_encoder_with_the_vanilla_one() -> None:
    # The capacity controls get their own ratio rows, each against the
    # conv_encoder of the same model, with the analytic FLOP ratio beside it.
    from bench import flops
    from bench.train_throughput import build_configs, report

    encoders = ["conv_encoder", "split_conv_encoder", "matched_split_conv_encoder",
                "wide_conv_encoder"]
    configs = build_configs(["factor_vae"], encoders, compare_pipelines=False)
    seconds = dict(zip(encoders, (0.080, 0.090, 0.100, 0.120)))
    _, payload = report(configs, {c: [seconds[c.encoder]] for c in configs})
    ratios = {r["what"]: (r["time"], r["model_flops"]) for r in payload["ratios"]}
    assert set(ratios) == {"factor_vae split/vanilla", "factor_vae matched_split/vanilla",
                           "factor_vae wide/vanilla"}
    vanilla = flops.step_gflops("factor_vae", "conv_encoder")[0]
    for name, encoder in (("split", "split_conv_encoder"),
                          ("matched_split", "matched_split_conv_encoder"),
                          ("wide", "wide_conv_encoder")):
        assert ratios[f"factor_vae {name}/vanilla"] == pytest.approx(
            (seconds[encoder] / seconds["conv_encoder"],
             flops.step_gflops("factor_vae", encoder)[0] / vanilla))


@pytest.mark.long
def test_split_encoder_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("split_encoder", tmp_path)
    tables = _tables(stdout)
    assert len(tables) == 2, stdout
    _check_table(tables[0], ["encoder", "MACs/example (fwd)", "graph ops", "build s",
                             "ms/train step (median)", "ms range"], 3,
                 ["MACs/example (fwd)", "graph ops", "build s", "ms/train step (median)"])
    _check_table(tables[1], ["comparison", "step-time ratio", "FLOP ratio"], 2,
                 ["step-time ratio", "FLOP ratio"])
    ops = {r["variant"]: r["ops"] for r in payload["rows"]}
    # The naive loop builds many more ops than the batched branches.
    assert ops["looped_split_conv_encoder (shared=4)"] > 2 * ops["split_conv_encoder (shared=4)"]


@pytest.mark.long
def test_input_pipeline_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("input_pipeline", tmp_path)
    (table,) = _tables(stdout)
    _check_table(table, ["dataset", "pipeline", "batches/s (median)", "ms/batch", "images/s",
                         "batches/s range", "speed vs dlib"], 2,
                 ["batches/s (median)", "ms/batch", "images/s", "speed vs dlib"])
    assert [r["pipeline"] for r in payload["rows"]] == ["dlib", "vectorized"]


@pytest.mark.long
def test_dsprites_gen_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("dsprites_gen", tmp_path)
    (table,) = _tables(stdout)
    _check_table(table, ["run", "generation s (median)", "process wall s", "peak RSS MB",
                         "generation s range"], 2,
                 ["generation s (median)", "process wall s", "peak RSS MB"])
    assert all(r["peak_rss_mb"] > 10 for r in payload["rows"])


@pytest.mark.long
def test_mig_eval_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("mig_eval", tmp_path)
    (table,) = _tables(stdout)
    _check_table(table, ["model (VAE)", "dlib_evaluate wall s (median)", "dlib elapsed_time s",
                         "peak RSS MB", "wall s range"], 2,
                 ["dlib_evaluate wall s (median)", "dlib elapsed_time s", "peak RSS MB"])
    assert "split / vanilla evaluation time:" in stdout
    assert payload["ratio"] > 0


@pytest.mark.long
def test_job_parallelism_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("job_parallelism", tmp_path)
    (table,) = _tables(stdout)
    _check_table(table, ["layout", "processes", "total steps/s (median)", "ratio to 1 job",
                         "steps/s per process", "cores per process", "total steps/s range"], 3,
                 ["total steps/s (median)", "ratio to 1 job", "steps/s per process",
                  "cores per process"])
    layouts = {row["layout"]: row for row in payload["layouts"]}
    assert [len(run) for run in layouts["2 jobs x 1 thread"]["runs"]] == [2]
    assert layouts["1 job"]["ratio_to_1_job"] == 1.0


@pytest.mark.long
def test_deterministic_smoke(tmp_path) -> None:
    stdout, payload = _run_bench("deterministic", tmp_path)
    tables = _tables(stdout)
    assert len(tables) == 1, stdout
    _check_table(tables[0], ["model", "encoder", "steps/s (default)", "steps/s (deterministic)",
                             "step-time ratio (deterministic / default)",
                             "ms/step range (default)", "ms/step range (deterministic)"], 1,
                 ["steps/s (default)", "steps/s (deterministic)",
                  "step-time ratio (deterministic / default)"])
    assert set(payload["rows"][0]["ms_per_step"]) == {"default", "deterministic"}


@pytest.mark.long
def test_lean_data_smoke(tmp_path) -> None:
    out = tmp_path / "lean_data.json"
    # Nine short dlib processes (3 loader variants x train/evaluate, Shapes3D): longer
    # than the other smoke runs.
    proc = subprocess.run([sys.executable, "-m", "bench.lean_data", "--smoke", "--json",
                           str(out)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=900,
                          check=False)
    assert_ok(proc)
    payload = json.loads(out.read_text())
    tables = _tables(proc.stdout)
    assert len(tables) == 4, proc.stdout
    numeric = ["peak RSS MB", "of which file-backed MB", "start-up s (to 1st step)", "wall s"]
    # Evaluations have no training step: their start-up cell is "-".
    _check_table(tables[0], ["job", "loaders"] + numeric, 6,
                 [c for c in numeric if not c.startswith("start-up")])
    assert all(_number(row[4]) > 0 for row in tables[0][1][:3])
    _check_table(tables[2], ["images", "loaders"] + numeric, 2, numeric)
    assert payload["mig_identical"] is True
    assert {r["variant"] for r in payload["rows"]} == {"stock", "lean (cold)", "lean"}
