"""A tiny study end to end on the local pool, then splitenc_aggregate on it.

One run (module fixture) of split_encoder_study_v1 on dlib's dummy data, 3
steps: model 0 (FactorVAE, vanilla conv encoder, seed 0) and model 11
(FactorVAE, split encoder, seed 1), two local workers; then one aggregation.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_ok, run_script, shared_fixture_group
from PIL import Image

from splitenc_plugin.data.fingerprint import LEGACY_DSPRITES, recorded_identity
from splitenc_plugin.results.aggregate import COLUMNS
from splitenc_plugin.results.learning_curves import CURVES_FILE

STUDY = "split_encoder_study_v1"
REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = REPO / "docs" / "results" / "campaign"


def _frame(rows: list[dict]):
    """Hand-built runs as :func:`load_results` returns them: missing columns filled.

    Unless given, a run is on the legacy dSprites data and has no MI evaluation.
    """
    import pandas as pd

    defaults = {column: np.nan for column in COLUMNS}
    defaults.update(data=LEGACY_DSPRITES["label"],
                    data_fingerprint=LEGACY_DSPRITES["fingerprint"], resumed_from_steps="",
                    job_dir="")
    return pd.DataFrame([{**defaults, **row} for row in rows])


SHARED_FIXTURE = shared_fixture_group(__name__)  # the tests of ``tiny_run``


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("tiny_study")
    run = run_script("splitenc_reproduce", "--study", STUDY, "--output_directory", str(out),
                     "--datasets", "dummy_data", "--model_nums", "0", "11", "--steps", "3",
                     "--workers", "2", "--gin_bindings", "model.eval_steps = 5")
    assert_ok(run)
    agg = run_script("splitenc_aggregate", str(out))
    assert_ok(agg)
    return {"out": out, "run": run, "agg": agg}


@SHARED_FIXTURE
def test_local_run_has_dlib_reproduce_layout_and_progress(tiny_run) -> None:
    out, run = tiny_run["out"], tiny_run["run"]
    assert "2 job(s) selected, 0 already finished, 2 to run on 2 local worker(s)" in run.stdout
    # The progress bar (on by default) reached the end: the only check of it.
    assert "splitenc jobs: 100%" in run.stderr and "2/2" in run.stderr
    for num, encoder in ((0, "conv_encoder"), (11, "split_conv_encoder")):
        job = out / STUDY / str(num)
        for rel in ("model/tfhub/saved_model.pb", "model/results/json/train_results.json",
                    "postprocessed/mean/tfhub/saved_model.pb",
                    "postprocessed/sampled/results/aggregate/postprocess.json",
                    "metrics/mean/mig/results/json/evaluation_results.json",
                    "metrics/sampled/mig/results/json/evaluation_results.json",
                    ("metrics/mean_logvar/mi_decomposition_study/results/json/"
                     "evaluation_results.json"),
                    "job.log", "job.json", "done.json"):
            assert (job / rel).is_file(), rel
        # Only meaningful (representation, metric) pairs are evaluated.
        assert sorted(p.name for p in (job / "metrics").iterdir()) == [
            "mean", "mean_logvar", "sampled"]
        assert [p.name for p in (job / "metrics" / "mean_logvar").iterdir()] == [
            "mi_decomposition_study"]
        gin = (job / "model/results/gin/train.gin").read_text()
        assert f"encoder.encoder_fn = @{encoder}" in gin
        assert "model.training_steps = 3" in gin and "dataset.name = 'dummy_data'" in gin


@SHARED_FIXTURE
def test_rerun_skips_everything(tiny_run) -> None:
    out = tiny_run["out"]
    before = (out / STUDY / "0" / "done.json").read_text()
    again = run_script("splitenc_reproduce", "--study", STUDY, "--output_directory", str(out),
                       "--datasets", "dummy_data", "--model_nums", "0", "11", "--steps", "3",
                       "--gin_bindings", "model.eval_steps = 5")
    assert_ok(again)
    assert "2 already finished, 0 to run" in again.stdout and "nothing to do" in again.stdout
    assert (out / STUDY / "0" / "done.json").read_text() == before


@SHARED_FIXTURE
def test_results_csv_has_one_known_row_per_model(tiny_run) -> None:
    out = tiny_run["out"]
    with open(out / "results.csv") as f:
        reader = csv.DictReader(f)
        # The run's extra --gin_bindings after COLUMNS (part of its cell); then,
        # dummy_data's 10 factors having no names, one gap column each.
        assert reader.fieldnames == COLUMNS + ["model.eval_steps"] + [
            f"gap_factor_{k}" for k in range(10)]
        rows = list(reader)
    assert {r["model.eval_steps"] for r in rows} == {"5"}
    assert [(r["model_num"], r["encoder"], r["seed"]) for r in rows] == [
        ("0", "conv_encoder", "0"), ("11", "split_conv_encoder", "1")]
    for row in rows:
        assert (row["study"], row["dataset"], row["model"]) == (STUDY, "dummy_data", "factor_vae")
        assert float(row["sigma"]) == 0.0 and row["steps"] == "3"
        job = out / STUDY / row["model_num"]
        # The data identity the job recorded (or the documented rule for none).
        identity = recorded_identity(json.loads((job / "done.json").read_text()))
        assert (row["data"], row["data_fingerprint"]) == (identity["label"],
                                                          identity["fingerprint"])
        for rep in ("mean", "sampled"):
            result = json.loads((job / f"metrics/{rep}/mig/results/json/"
                                 "evaluation_results.json").read_text())
            assert float(row[f"mig_{rep}"]) == pytest.approx(result["discrete_mig"])
        train = json.loads((job / "model/results/json/train_results.json").read_text())
        assert float(row["reconstruction_loss"]) == pytest.approx(train["reconstruction_loss"])
        assert float(row["training_time_s"]) == pytest.approx(train["elapsed_time"])
        assert float(row["reconstruction_loss"]) > 0 and float(row["training_time_s"]) > 0
        mi = json.loads((job / "metrics/mean_logvar/mi_decomposition_study/results/json/"
                         "evaluation_results.json").read_text())
        assert float(row["mi_gap"]) == pytest.approx(mi["decomposition_gap"])
        assert float(row["mi_tc"]) == pytest.approx(mi["total_correlation"])
        assert float(row["mi_tc_loo"]) == pytest.approx(mi["total_correlation_loo"])
        # The bracket: plug-in I(z;x) <= log N, and below the leave-one-out one.
        assert float(row["mi_log_n"]) == pytest.approx(np.log(mi["num_points"]))
        assert float(row["mi_joint"]) <= float(row["mi_log_n"]) + 1e-9
        assert float(row["mi_joint"]) < float(row["mi_joint_loo"])
        assert float(row["mi_ci"]) == 0.0  # factorized noise: exactly conditionally independent
        factor_mig = json.loads((job / "metrics/mean/factor_mig/results/json/"
                                 "evaluation_results.json").read_text())
        assert [float(row[f"gap_factor_{k}"]) for k in range(10)] == pytest.approx(
            factor_mig["factor_gap"])


@SHARED_FIXTURE
def test_summary_has_cells_and_split_minus_vanilla(tiny_run) -> None:
    summary = (tiny_run["out"] / "summary.md").read_text()
    assert ("| study | dataset | data_fingerprint | model | encoder | sigma | steps | n | "
            "MIG median | MIG IQR |") in summary
    fingerprint = recorded_identity(json.loads(
        (tiny_run["out"] / STUDY / "0" / "done.json").read_text()))["fingerprint"]
    assert (f"| split_encoder_study_v1 | dummy_data | {fingerprint} | factor_vae | "
            "conv_encoder | 0 | 3 | 1 |") in summary
    assert "split encoder − vanilla encoder" in summary
    assert "Δ MIG median" in summary and "Δ recon. loss median" in summary
    assert "## Per cell" in tiny_run["agg"].stdout


@SHARED_FIXTURE
def test_figures_are_valid_pngs_with_content(tiny_run) -> None:
    fig_dir = tiny_run["out"] / "figures"
    names = {p.name for p in fig_dir.glob("*.png")}
    stem = f"{STUDY}_dummy_data"
    assert names == {f"{stem}_mig_violin.png", f"{stem}_mig_vs_recon.png",
                     f"{stem}_factor_mi.png", f"{stem}_learning_curves.png",
                     f"{stem}_appendix_c.png"}
    for name in names:
        path = fig_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert min(pixels.shape) >= 300 and pixels.std() > 5, name  # not blank
        assert str(path) in tiny_run["agg"].stdout
    # The jobs ran without --visualize: Appendix C made both kinds of traversals
    # from their TF-Hub modules (dlib's [-1, 1] stills and the fitted-range ones).
    for num in (0, 11):
        made = fig_dir / "visualizations" / f"{STUDY}-{num}"
        assert (made / "traversals" / "traversals0.jpg").is_file()
        assert (made / "traversals_fitted" / "traversals0.jpg").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["{root}", "--study", "nope"], "unknown study 'nope'"),
    (["{root}"], "no finished job under"),
    (["{root}/nope", "--output_dir", "{root}"], ("{root}/nope is not a directory; pass the "
     "--output_directory of splitenc_reproduce")),
])
def test_unknown_study_or_empty_directory_is_a_clear_error(tmp_path: Path, args,
                                                           message) -> None:
    proc = run_script("splitenc_aggregate", *(a.format(root=tmp_path) for a in args))
    assert proc.returncode == 2
    assert message.format(root=tmp_path) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results.csv").exists()


def test_split_minus_vanilla_pairs_identical_configs_across_studies() -> None:
    # The campaign's split FactorVAE runs (split study) have their vanilla
    # baseline in the correlated-noise study (sigma = 0): same config, same seeds.
    # A run present in both studies must count once.

    from splitenc_plugin.results.aggregate import summarize

    def row(study, encoder, sigma, seed, mig, recon):
        return {"study": study, "dataset": "dsprites_full", "model": "factor_vae",
                "encoder": encoder, "sigma": sigma, "steps": 100, "seed": seed,
                "mig_mean": mig, "mig_sampled": mig / 2, "reconstruction_loss": recon}

    frame = _frame([
        row("correlated_noise_study_v1", "conv_encoder", 0.0, 0, 0.10, 50.0),
        row("correlated_noise_study_v1", "conv_encoder", 0.0, 1, 0.20, 40.0),
        row("correlated_noise_study_v1", "conv_encoder", 0.9, 0, 0.02, 60.0),
        row("split_encoder_study_v1", "conv_encoder", 0.0, 1, 0.20, 40.0),  # same run again
        row("split_encoder_study_v1", "split_conv_encoder", 0.0, 0, 0.30, 30.0),
        row("split_encoder_study_v1", "split_conv_encoder", 0.0, 1, 0.50, 20.0),
    ])
    _, diffs = summarize(frame)
    by_comparison = {d["comparison"]: d for d in diffs.to_dict("records")}
    split = by_comparison["split encoder − vanilla encoder"]
    assert split["n"] == "2 vs 2"
    assert split["d_mig_median"] == pytest.approx(0.40 - 0.15)
    assert split["d_recon_median"] == pytest.approx(25.0 - 45.0)
    noise = by_comparison["σ = 0.9 (correlated) − σ = 0 (factorized)"]
    assert noise["n"] == "1 vs 2" and noise["d_mig_median"] == pytest.approx(0.02 - 0.15)
    # Separation, against hand counts: split beats vanilla in all 4 seed pairs
    # on MIG and loses all 4 on reconstruction loss; the exact two-sided
    # Mann-Whitney p of a complete 2-vs-2 separation is 2 / C(4, 2) = 1/3.
    assert split["p_mig_higher"] == 1.0 and split["p_recon_higher"] == 0.0
    assert split["p_mig_mwu"] == pytest.approx(1 / 3)
    assert split["p_recon_mwu"] == pytest.approx(1 / 3)
    assert split["mig_per_seed"] == "s0 0.3000, s1 0.5000 vs s0 0.1000, s1 0.2000"
    assert noise["p_mig_higher"] == 0.0 and math.isnan(noise["p_mig_mwu"])  # 1 run: no test
    # ... which the verdict's evidence says as the tables do, not as "nan".
    from splitenc_plugin.results.aggregate import claim_verdicts
    evidence = {v["comparison"]: v["evidence"] for v in claim_verdicts(diffs).to_dict("records")}
    assert "(MWU p —)" in evidence["σ = 0.9 (correlated) − σ = 0 (factorized)"]
    assert "(MWU p 0.33)" in evidence["split encoder − vanilla encoder"]
    # As summary.md shows them: configuration columns first, the compared one marked.
    from splitenc_plugin.results.aggregate import difference_table
    shown = difference_table(diffs).set_index("comparison")
    assert list(shown.columns[:5]) == ["dataset", "data_fingerprint", "model", "encoder",
                                       "sigma"]
    assert shown.loc["split encoder − vanilla encoder", "encoder"] == "compared"
    assert shown.loc["split encoder − vanilla encoder", "sigma"] == 0.0
    assert shown.loc["σ = 0.9 (correlated) − σ = 0 (factorized)", "sigma"] == "compared"
    assert shown.loc["σ = 0.9 (correlated) − σ = 0 (factorized)", "encoder"] == "conv_encoder"
    assert not any(c.startswith("_") for c in shown.columns)
    # The summary names the run counted once, with both copies' MIG.
    from splitenc_plugin.results.aggregate import pooled_duplicates
    frame.loc[3, "mig_mean"] = 0.21  # a copy that disagrees with the first
    assert pooled_duplicates(frame.assign(model_num=[20, 21, 30, 20, 10, 11])) == [
        ("factor_vae conv_encoder σ=0 seed 1 (100 steps) finished in 2 studies "
         "(correlated_noise_study_v1/21: MIG 0.2000; split_encoder_study_v1/20: MIG 0.2100): "
         "counted once, as correlated_noise_study_v1's")]
    _, diffs = summarize(frame)
    assert diffs.set_index("comparison").loc["split encoder − vanilla encoder",
                                             "d_mig_median"] == pytest.approx(0.40 - 0.15)

    verdicts = {(v["comparison"], v["claim"]): v["verdict"]
                for v in claim_verdicts(diffs).to_dict("records")}
    assert verdicts == {
        ("split encoder − vanilla encoder", "median MIG higher (Sec 5.2)"): "holds",
        ("split encoder − vanilla encoder", "maximum MIG higher (Sec 5.2)"): "holds",
        ("split encoder − vanilla encoder", "reconstruction loss lower (Sec 5.2)"): "holds",
        ("σ = 0.9 (correlated) − σ = 0 (factorized)", "MIG dramatically lower (Sec 5.1)"):
            "too few runs (< 2 per cell)",
    }


def test_a_study_figure_draws_its_cells_beside_their_pooled_partners() -> None:
    # The split study's FactorVAE split cell is drawn beside the vanilla runs
    # made in the correlated-noise study (sigma = 0), not beside its sigma =
    # 0.9 runs; the correlated-noise study's figure borrows no split runs.

    from splitenc_plugin.results.aggregate import figure_runs

    def row(study, num, encoder, sigma, seed, dataset="dsprites_full"):
        return {"study": study, "model_num": num, "dataset": dataset, "model": "factor_vae",
                "encoder": encoder, "sigma": sigma, "steps": 100, "seed": seed,
                "mig_mean": 0.1, "mig_sampled": 0.1, "reconstruction_loss": 50.0}

    noise, split = "correlated_noise_study_v1", "split_encoder_study_v1"
    frame = _frame([
        row(noise, 20, "conv_encoder", 0.0, 0), row(noise, 21, "conv_encoder", 0.0, 1),
        row(noise, 30, "conv_encoder", 0.9, 0),
        row(noise, 22, "conv_encoder", 0.0, 2, dataset="cars3d"),  # another dataset
        row(split, 1, "conv_encoder", 0.0, 1),  # the same run as noise/21: drawn once
        row(split, 10, "split_conv_encoder", 0.0, 0),
        row(split, 11, "split_conv_encoder", 0.0, 1),
    ])
    drawn = figure_runs(frame, split, "dsprites_full")
    assert sorted(zip(drawn["study"], drawn["model_num"])) == [
        (noise, 20), (split, 1), (split, 10), (split, 11)]
    drawn = figure_runs(frame, noise, "dsprites_full")
    assert sorted(drawn["model_num"]) == [20, 21, 30] and set(drawn["study"]) == {noise}
    # A study with no comparison of its own (e.g. a custom one) borrows nothing.
    custom = frame.assign(study=["custom"] * 3 + [noise] * 4)
    assert sorted(figure_runs(custom, "custom", "dsprites_full")["model_num"]) == [20, 21, 30]


def _noise_frame(mig_sigma0: list[float], mig_sigma09: list[float]):
    return _frame([
        {"study": "correlated_noise_study_v1", "dataset": "dsprites_full", "model": "vae",
         "encoder": "conv_encoder", "sigma": sigma, "steps": 100, "seed": seed,
         "mig_mean": mig, "mig_sampled": mig, "reconstruction_loss": 50.0}
        for sigma, migs in ((0.0, mig_sigma0), (0.9, mig_sigma09))
        for seed, mig in enumerate(migs)])


@pytest.mark.parametrize(("mig_sigma09", "verdict"), [
    # Baseline MIG 0.2, 0.3 (median 0.25) in every case; hand-counted pairs.
    ([0.05, 0.12], "holds"),  # all 4 pairs lower, median 0.085 <= 0.125
    ([0.15, 0.18], "direction holds, magnitude does not"),  # all lower, median 0.165
    ([0.10, 0.40], "inconclusive"),  # 2 of 4 pairs higher
    ([0.25, 0.35], "does not hold"),  # 3 of 4 pairs higher, median +0.05
])
def test_correlated_noise_claim_follows_the_decision_rule(mig_sigma09, verdict) -> None:
    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    _, diffs = summarize(_noise_frame([0.2, 0.3], mig_sigma09))
    [row] = claim_verdicts(diffs).to_dict("records")
    assert row["claim"] == "MIG dramatically lower (Sec 5.1)" and row["n"] == "2 vs 2"
    assert row["verdict"] == verdict, row["evidence"]


@pytest.mark.parametrize(("mig_sigma09", "every", "half"), [
    # Baseline MIG 0.2, 0.3 (median 0.25); both "direction holds, magnitude does
    # not", for opposite reasons.
    ([0.15, 0.18], "met", "missed"),  # all 4 pairs lower, median 0.165 > 0.125
    ([0.01, 0.21], "missed", "met"),  # 0.21 > 0.2: 3 of 4 lower; median 0.11 <= 0.125
])
def test_a_missed_dramatic_decline_says_which_condition_it_missed(mig_sigma09, every,
                                                                    half) -> None:
    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    _, diffs = summarize(_noise_frame([0.2, 0.3], mig_sigma09))
    [row] = claim_verdicts(diffs).to_dict("records")
    assert row["verdict"] == "direction holds, magnitude does not", row["evidence"]
    assert f"every variant run below every baseline run {every}" in row["evidence"]
    assert f"at most half the baseline's {half}" in row["evidence"]


def test_split_claims_that_fail_or_do_not_separate() -> None:

    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    def row(encoder, seed, mig, recon):
        return {"study": "split_encoder_study_v1", "dataset": "dsprites_full",
                "model": "beta_tc_vae", "encoder": encoder, "sigma": 0.0, "steps": 100,
                "seed": seed, "mig_mean": mig, "mig_sampled": mig, "reconstruction_loss": recon}

    # 3 vs 3. MIG: split 0.10, 0.15, 0.40 vs vanilla 0.20, 0.25, 0.30: 3 of 9 pairs
    # higher, median 0.15 < 0.25, but the best run is split's. Reconstruction: split
    # 50, 60, 70 vs 55, 65, 75: 3 of 9 pairs higher, median -5: not separated enough.
    frame = _frame([row("split_conv_encoder", i, m, r)
                          for i, (m, r) in enumerate([(0.10, 50), (0.15, 60), (0.40, 70)])]
                         + [row("conv_encoder", i, m, r)
                            for i, (m, r) in enumerate([(0.20, 55), (0.25, 65), (0.30, 75)])])
    _, diffs = summarize(frame)
    verdicts = {v["claim"]: v["verdict"] for v in claim_verdicts(diffs).to_dict("records")}
    assert verdicts == {"median MIG higher (Sec 5.2)": "inconclusive",  # P = 1/3
                        "maximum MIG higher (Sec 5.2)": "holds",
                        "reconstruction loss lower (Sec 5.2)": "inconclusive"}  # P = 1/3
    # Reversed beyond the threshold: split 0.05, 0.06, 0.07 -> 0 of 9 pairs higher.
    frame.loc[frame["encoder"] == "split_conv_encoder", "mig_mean"] = [0.05, 0.06, 0.07]
    _, diffs = summarize(frame)
    verdicts = {v["claim"]: v["verdict"] for v in claim_verdicts(diffs).to_dict("records")}
    assert verdicts["median MIG higher (Sec 5.2)"] == "does not hold"
    assert verdicts["maximum MIG higher (Sec 5.2)"] == "does not hold"


def _btc_frame(split: list[float], conv: list[float]):
    return _frame([
        {"study": "split_encoder_study_v1", "dataset": "dsprites_full", "model": "beta_tc_vae",
         "encoder": encoder, "sigma": 0.0, "steps": 100, "seed": seed, "mig_mean": mig,
         "mig_sampled": mig, "reconstruction_loss": 60.0 - 10 * mig}
        for encoder, migs in (("split_conv_encoder", split), ("conv_encoder", conv))
        for seed, mig in enumerate(migs)])


def test_no_verdict_until_every_planned_run_of_both_cells_has_finished(tmp_path: Path) -> None:
    # The campaign's rule: verdicts only with every seed of both cells finished.
    # Split 0.4, 0.5 vs conv 0.1, 0.2, 0.3 would "hold" on 2 vs 3 runs, but the
    # selection plans seeds 0-2 of both encoders: split seed 2 is missing.
    from splitenc_plugin.results.aggregate import (
        claim_verdicts,
        planned_runs,
        summarize,
    )

    selections = tmp_path / "grid.txt"
    selections.write_text("--study split_encoder_study_v1 --datasets dsprites_full "
                          "--models beta_tc_vae --seeds 0-2\n")
    planned = planned_runs(selections=selections)
    assert sorted(zip(planned["encoder"], planned["seed"])) == [
        (e, s) for e in ("conv_encoder", "split_conv_encoder") for s in (0, 1, 2)]
    assert planned["steps"].isna().all()  # a selections file does not say the steps
    frame = _btc_frame([0.4, 0.5], [0.1, 0.2, 0.3])
    _, diffs = summarize(frame, planned)
    verdicts = claim_verdicts(diffs).to_dict("records")
    assert [v["verdict"] for v in verdicts] == ["waiting for 1 unfinished run(s)"] * 3
    # The same runs without the plan are judged (the generic aggregator's rule) ...
    _, diffs = summarize(frame)
    assert {v["verdict"] for v in claim_verdicts(diffs).to_dict("records")} == {"holds"}
    # ... and with the missing seed finished, the plan no longer holds them back.
    _, diffs = summarize(_btc_frame([0.4, 0.5, 0.6], [0.1, 0.2, 0.3]), planned)
    [median, maximum, recon] = claim_verdicts(diffs).to_dict("records")
    assert (median["verdict"], maximum["verdict"], recon["verdict"]) == ("holds",) * 3
    # The exact Mann-Whitney p stands beside the verdict: 3 vs 3, fully separated.
    assert "P(MIG higher) 1.00 (MWU p 0.10)" in median["evidence"]
    assert "P(recon. higher) 0.00 (MWU p 0.10)" in median["evidence"]


def test_a_comparison_whose_arm_has_no_finished_run_is_said_to_wait(tmp_path: Path) -> None:
    # Campaign v2's P2 half-way: VAE sigma = 0 has seeds 0 and 1, sigma = 0.9
    # nothing; FactorVAE sigma = 0.9 nothing, its baseline being P1's three
    # vanilla-encoder runs of the capacity study. summarize has no row for
    # either pair (one arm is empty); waiting_comparisons names both.
    import pandas as pd

    from splitenc_plugin.results.aggregate import (
        planned_runs,
        summarize,
        waiting_comparisons,
    )

    selections = tmp_path / "grid.txt"
    selections.write_text(
        "--study split_encoder_capacity_study_v1 --datasets dsprites_full --models factor_vae "
        "--encoders conv_encoder --seeds 0-2\n"
        "--study correlated_noise_study_v1 --datasets dsprites_full --models vae --seeds 0-2\n"
        "--study correlated_noise_study_v1 --datasets dsprites_full --models factor_vae "
        "--sigmas 0.9 --seeds 0-2\n")
    planned = planned_runs(selections=selections)
    runs = [("split_encoder_capacity_study_v1", "factor_vae", seed) for seed in (0, 1, 2)]
    runs += [("correlated_noise_study_v1", "vae", seed) for seed in (0, 1)]
    frame = _frame([{"study": study, "dataset": "dsprites_full", "model": model,
                     "encoder": "conv_encoder", "sigma": 0.0, "steps": 100, "seed": seed,
                     "mig_mean": 0.1, "mig_sampled": 0.1, "reconstruction_loss": 50.0}
                    for study, model, seed in runs])
    _, diffs = summarize(frame, planned)
    assert diffs.empty  # no pair of cells with runs in both arms
    waiting = {(w["model"], w["comparison"]): (w["finished"], w["n_finished"], w["n_missing"],
                                               w["n_planned"], w["steps"])
               for w in waiting_comparisons(frame, planned)}
    sigma = "σ = 0.9 (correlated) − σ = 0 (factorized)"
    assert waiting == {("factor_vae", sigma): ("baseline", 3, 0, 3, 100),
                       ("vae", sigma): ("baseline", 2, 1, 3, 100)}
    # One sigma = 0.9 VAE run finished: the VAE pair has a row (its verdict
    # waits for the unfinished runs) and no longer waits here.
    frame = pd.concat([frame, frame.iloc[[3]].assign(sigma=0.9)], ignore_index=True)
    _, diffs = summarize(frame, planned)
    assert diffs["model"].tolist() == ["vae"]
    assert [(w["model"], w["n_planned"]) for w in waiting_comparisons(frame, planned)] \
        == [("factor_vae", 3)]
    # The same pairs whatever the float width of sigma, also where a cell's
    # only runs are the variant's (the VAE's one sigma = 0.9 run here).
    narrow = frame.astype({"sigma": "float32"})
    assert summarize(narrow, planned)[1]["model"].tolist() == ["vae"]
    only_variant = narrow[(narrow["model"] != "vae") | (narrow["sigma"] > 0)]
    assert {(w["model"], w["finished"], w["n_planned"])
            for w in waiting_comparisons(only_variant, planned)} \
        == {("factor_vae", "baseline", 3), ("vae", "variant", 3)}
    # Without a plan nothing is waiting; nor for a pair nobody planned (split
    # vs vanilla VAE), nor for a run planned at another step count.
    assert waiting_comparisons(frame, None) == []
    started = planned.assign(steps=5000.0)
    assert waiting_comparisons(frame, started) == []


def test_only_runs_known_to_be_planned_and_unfinished_make_a_comparison_wait(
        tmp_path: Path) -> None:
    import pandas as pd

    from splitenc_plugin.results.aggregate import (
        planned_runs,
        summarize,
        waiting_comparisons,
    )
    from splitenc_plugin.results.report import summary_notes

    selections = tmp_path / "grid.txt"
    selections.write_text(
        "--study correlated_noise_study_v1 --datasets dsprites_full --models vae --seeds 0-2\n")
    planned = planned_runs(selections=selections)

    def runs(cells, **extra):
        return _frame([{"study": "correlated_noise_study_v1", "dataset": "dsprites_full",
                        "model": "vae", "encoder": "conv_encoder", "sigma": sigma,
                        "steps": steps, "seed": seed, "mig_mean": 0.1, "mig_sampled": 0.1,
                        "reconstruction_loss": 50.0, **extra}
                       for sigma, steps in cells for seed in (0, 1, 2)])

    # A dlib study's beta-VAE cells (their own bindings): the plugin's plan is
    # not theirs, so nothing waits, once or three times.
    dlib = pd.concat([runs([(0.0, 300)], **{"study": "unsupervised_study_v1",
                                             "vae.beta": beta, "model.name": "beta_vae"})
                      for beta in ("1.0", "4.0", "16.0")], ignore_index=True)
    assert waiting_comparisons(dlib, planned) == []
    # The plan finished at 300 steps (a selections file names no steps); smoke
    # runs of sigma = 0 at 100 steps do not make sigma = 0.9 "planned" there.
    done = runs([(0.0, 300), (0.9, 300), (0.0, 100)])
    assert waiting_comparisons(done, planned) == []
    # Half-way, the note says so in the summary.
    half = runs([(0.0, 300)])
    [pair] = waiting_comparisons(half, planned)
    assert (pair["finished"], pair["n_finished"], pair["n_missing"], pair["n_planned"]) \
        == ("baseline", 3, 0, 3)
    cells, diffs = summarize(half, planned)
    notes = summary_notes(tmp_path, half, cells, [], planned, set(), {}, [], diffs)
    assert [n for n in notes if n.startswith("No comparison yet")] == [
        ("No comparison yet of σ = 0.9 (correlated) − σ = 0 (factorized) (vae conv_encoder, "
         f"dsprites_full, {pair['data']}, 300 steps): the baseline has 3 finished run(s), the "
         "variant none yet, 3 planned")]


def test_an_unfinished_job_directory_holds_back_its_comparison(tmp_path: Path) -> None:
    # Without a selections file, the runner's unfinished job dirs name their
    # grid point; one at another step count belongs to no compared cell.
    from splitenc_plugin.results.aggregate import (
        claim_verdicts,
        planned_runs,
        summarize,
    )
    from splitenc_plugin.sweep.plan import plan_jobs

    def unfinished(steps: int) -> Path:
        [job] = plan_jobs(STUDY, tmp_path / str(steps), steps=steps, datasets=["dsprites_full"],
                          models=["beta_tc_vae"], encoders=["split_conv_encoder"], seeds=[2])
        job.job_dir.mkdir(parents=True)
        (job.job_dir / "job.json").write_text(json.dumps({"spec": job.spec.to_dict()}))
        return job.job_dir

    dlib_style = tmp_path / "dlib" / STUDY / "5"  # no job.json: grid point unknown
    dlib_style.mkdir(parents=True)
    planned = planned_runs([unfinished(100), unfinished(5000), dlib_style])
    assert planned[["encoder", "seed", "steps"]].values.tolist() == [
        ["split_conv_encoder", 2, 100.0], ["split_conv_encoder", 2, 5000.0]]
    frame = _btc_frame([0.4, 0.5], [0.1, 0.2, 0.3])  # steps 100
    _, diffs = summarize(frame, planned)
    assert {v["verdict"] for v in claim_verdicts(diffs).to_dict("records")} \
        == {"waiting for 1 unfinished run(s)"}
    _, diffs = summarize(frame, planned[planned["steps"] == 5000])
    assert {v["verdict"] for v in claim_verdicts(diffs).to_dict("records")} == {"holds"}
    # The summary's "not finished yet" list matches the same way: split seed 2
    # is unfinished at 100 and 5000 steps, and a 100-step run finishes only
    # the first; a planned run of unknown steps is finished at any count.
    import pandas as pd

    from splitenc_plugin.results.aggregate import unfinished_planned_runs
    assert unfinished_planned_runs(frame, planned)["steps"].tolist() == [100.0, 5000.0]
    done = _btc_frame([0.4, 0.5, 0.6], [0.1, 0.2, 0.3])
    assert unfinished_planned_runs(done, planned)["steps"].tolist() == [5000.0]
    assert unfinished_planned_runs(done, planned.assign(steps=float("nan"))).empty
    # Planned twice (started: steps known; in a selections file: unknown): listed once.
    both = pd.concat([planned.assign(steps=float("nan")), planned], ignore_index=True)
    assert unfinished_planned_runs(frame, both)["steps"].tolist() == [100.0, 5000.0]
    # ... also when the selections file names it under another study (configs pool).
    both.loc[both["steps"].isna(), "study"] = "correlated_noise_study_v1"
    assert unfinished_planned_runs(frame, both)["steps"].tolist() == [100.0, 5000.0]


@SHARED_FIXTURE
def test_a_bad_selections_file_for_the_aggregator_is_one_clear_error(tiny_run,
                                                                      tmp_path: Path) -> None:
    bad = tmp_path / "grid.txt"
    bad.write_text(f"--study {STUDY} --models nope\n")
    proc = run_script("splitenc_aggregate", str(tiny_run["out"]), "--output_dir",
                      str(tmp_path / "agg"), "--no_visualize", "--selections", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"grid.txt, line 1: {STUDY} has no model nope" in proc.stderr
    assert not (tmp_path / "agg" / "results.csv").exists()


def test_cached_visualizations_of_a_redone_job_are_not_reused(tmp_path: Path) -> None:
    from splitenc_plugin.results.visualize import model_stamp, visualizations

    job = tmp_path / "runs" / STUDY / "0"
    job.mkdir(parents=True)
    (job / "done.json").write_text(json.dumps({"identity": {}, "finished_at": "first"}))
    cache = tmp_path / "cache"
    pictures = cache / f"{STUDY}-0"
    (pictures / "reconstructions").mkdir(parents=True)
    (pictures / "reconstructions" / "reconstructions.jpg").write_bytes(b"jpg")
    (pictures / "model_stamp.txt").write_text(model_stamp(job))
    assert visualizations([job], cache) == {job: pictures}
    # The job is redone (same directory, new model): the cached pictures show the old one.
    (job / "done.json").write_text(json.dumps({"identity": {}, "finished_at": "second"}))
    assert visualizations([job], cache) == {}  # no TF-Hub module to redo them from: left out


@SHARED_FIXTURE
def test_one_unreadable_module_does_not_cost_the_others_their_pictures(
        tiny_run, tmp_path: Path, capsys) -> None:
    from splitenc_plugin.results.visualize import visualizations

    broken = tmp_path / "runs" / STUDY / "7"
    (broken / "model" / "tfhub").mkdir(parents=True)
    (broken / "model" / "tfhub" / "saved_model.pb").write_bytes(b"not a saved model")
    (broken / "done.json").write_text(json.dumps({"identity": {}, "finished_at": "x"}))
    good = tiny_run["out"] / STUDY / "0"
    cache = tmp_path / "cache"
    found = visualizations([broken, good], cache)  # the broken model comes first
    assert found == {good: cache / f"{STUDY}-0"}
    assert (found[good] / "traversals" / "traversals0.jpg").is_file()
    assert (found[good] / "traversals_fitted" / "traversals0.jpg").is_file()
    warning = capsys.readouterr().err
    assert "visualizing some models failed" in warning and str(broken / "model") in warning


def _fake_dlib_job(root: Path, num: int, seed: int, mig: float, noise: dict,
                   study: str = "my_study") -> None:
    """A finished dlib_reproduce-style job: only the JSON the aggregator reads."""
    record = {"train_config.model.model_num": num,
              "train_config.dataset.name": "'dsprites_full'",
              "train_config.model.model": "@factor_vae()",
              "train_config.encoder.encoder_fn": "@conv_encoder",
              "train_config.model.random_seed": seed,
              "train_config.model.training_steps": 100,
              "train_results.global_step": 100,
              "train_results.reconstruction_loss": 60.0 + seed,
              "train_results.elapsed_time": 10.0,
              "evaluation_results.discrete_mig": mig,
              **noise}
    for rep in ("mean", "sampled"):
        path = root / study / str(num) / "metrics" / rep / "mig" / "results" / "aggregate"
        path.mkdir(parents=True)
        (path / "evaluation.json").write_text(json.dumps(record))


def test_a_full_correlation_matrix_model_is_its_own_cell_not_sigma_zero(tmp_path: Path) -> None:
    from splitenc_plugin.results.aggregate import load_results, summarize

    correlated = {"train_config.reparameterization.noise_fn": "@correlated_noise"}
    _fake_dlib_job(tmp_path, 0, 0, 0.30, {})  # dlib's factorized noise
    _fake_dlib_job(tmp_path, 1, 0, 0.10, {**correlated, "train_config.correlated_noise.sigma": 0.9})
    _fake_dlib_job(tmp_path, 2, 0, 0.20, {**correlated,
                                          "train_config.correlated_noise.sigma": "None"})
    frame, unfinished = load_results(tmp_path)
    assert unfinished == []
    assert frame["sigma"].tolist()[:2] == [0.0, 0.9] and math.isnan(frame["sigma"].iloc[2])
    cells, _ = summarize(frame)
    assert len(cells) == 3 and sorted(cells["mig_median"]) == [0.10, 0.20, 0.30]
    proc = run_script("splitenc_aggregate", str(tmp_path), "--no_visualize")
    assert_ok(proc)
    summary = (tmp_path / "summary.md").read_text()
    # Plain dlib_reproduce output has no done.json: its data is unrecorded.
    assert ("| my_study | dsprites_full | unrecorded | factor_vae | conv_encoder | matrix | 100 "
            "| 1 | 0.2000 |") in summary


def test_an_experiment_whose_jobs_did_not_all_finish_still_aggregates_the_rest(
        tmp_path: Path, capsys) -> None:
    # splitenc_reproduce exits 1 when a job failed (or runs elsewhere): the
    # finished jobs are still summarised, and the exit code stays 1.
    import shutil

    from splitenc_plugin.experiments import reproduce_and_aggregate

    _fake_dlib_job(tmp_path, 0, 0, 0.30, {}, study=STUDY)
    failing = [shutil.which("false")]  # stands in for a splitenc_reproduce that exits 1
    assert reproduce_and_aggregate("x", failing, str(tmp_path), STUDY) == 1
    assert (tmp_path / "summary.md").is_file()
    assert f"[x] summary: {tmp_path / 'summary.md'}" in capsys.readouterr().out


@pytest.mark.parametrize("code", [2, 3, 130])  # bad input, busy elsewhere, interrupted
def test_an_experiment_stopped_otherwise_is_not_aggregated(tmp_path: Path, code) -> None:
    import sys

    from splitenc_plugin.experiments import reproduce_and_aggregate

    _fake_dlib_job(tmp_path, 0, 0, 0.30, {}, study=STUDY)
    reproduce = [sys.executable, "-c", f"raise SystemExit({code})"]
    assert reproduce_and_aggregate("x", reproduce, str(tmp_path), STUDY) == code
    assert not (tmp_path / "summary.md").exists()


def test_appendix_c_has_one_panel_per_pooled_cell_named_by_its_own_study(tmp_path: Path) -> None:
    # The split study ran vanilla seed 1 itself; the correlated-noise study's
    # vanilla seed 0 (higher MIG) is borrowed. The vanilla cell is one cell:
    # one best model, named by the study that ran it. The jobs have no
    # visualizations, so each best model shows up as a note instead of a panel.
    from splitenc_plugin.results.aggregate import aggregate

    noise, split = "correlated_noise_study_v1", "split_encoder_study_v1"
    _fake_dlib_job(tmp_path, 20, 0, 0.30, {}, study=noise)
    _fake_dlib_job(tmp_path, 1, 1, 0.20, {}, study=split)
    _fake_dlib_job(tmp_path, 10, 0, 0.25,
                   {"train_config.encoder.encoder_fn": "@split_conv_encoder"}, study=split)
    summary = aggregate(tmp_path)["summary"].read_text()
    left_out = sorted(line.split(":")[0][2:] for line in summary.splitlines()
                      if line.endswith("left out of Appendix C"))
    assert left_out == [f"{noise}/20", f"{noise}/20", f"{split}/10"]  # noise/20 in both studies' figures


def _line_positions(counts: np.ndarray, least: int) -> np.ndarray:
    return np.nonzero(counts > least)[0]


@pytest.mark.parametrize("tiled", [True, False], ids=["dlib_tiles", "other_size"])
def test_appendix_c_draws_the_pair_grid_on_dlibs_reconstructions(tmp_path: Path, tiled) -> None:
    # dlib's reconstructions.jpg: 8 rows of 8 (input | output) pairs of 64 x 64
    # tiles, touching; all black here, as an empty dSprites background.
    from PIL import Image

    from splitenc_plugin.results.figures import appendix_c

    recon, traversal = tmp_path / "recon.png", tmp_path / "traversal.png"
    Image.fromarray(np.zeros((512, 1024) if tiled else (510, 1020), np.uint8)).save(recon)
    Image.fromarray(np.zeros((640, 640), np.uint8)).save(traversal)
    out = appendix_c([("cell", recon, traversal, "traversals")], "study", "dsprites_full",
                     tmp_path / "c.png")
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    grey = np.abs(pixels - 127).max(axis=-1) < 30  # the lines' mid grey on black
    columns, rows = grey.sum(axis=0), grey.sum(axis=1)
    vertical, horizontal = _line_positions(columns, 50), _line_positions(rows, 100)
    if not tiled:  # not dlib's tiling: left as it is
        assert len(vertical) == len(horizontal) == 0
        return
    # 15 lines between 16 tiles across, 7 between 8 rows, evenly spaced.
    assert len(vertical) == 15 and len(horizontal) == 7
    for lines in (vertical, horizontal):
        assert np.ptp(np.diff(lines)) <= 2
    assert np.diff(vertical).mean() == pytest.approx(np.diff(horizontal).mean(), abs=1)
    # Dotted inside a pair (odd tiles), solid between pairs: a third of the grey or less.
    inside, between = columns[vertical[0::2]], columns[vertical[1::2]]
    assert inside.max() < between.min() / 3


# ---------------------------------------------------------------------------
# Data identity: runs on two data versions are never pooled.
# ---------------------------------------------------------------------------

V2 = {"dataset": "dsprites_full", "fingerprint": "splitenc-dsprites-v2:0123456789abcdef",
      "label": "splitenc dSprites renderer v2 (01234567)", "files": {}}


def test_runs_on_two_data_versions_are_separate_cells_never_compared(tmp_path: Path) -> None:
    from splitenc_plugin.results.aggregate import (
        CELL,
        claim_verdicts,
        figure_runs,
        load_results,
        pooled_duplicates,
        summarize,
    )

    # Vanilla and split FactorVAE, seeds 0-1, each on the legacy data (no data
    # record in done.json) and again on v2: the same configurations and seeds.
    for num, encoder, seed, data, mig in [
            (0, "conv_encoder", 0, None, 0.10), (1, "conv_encoder", 1, None, 0.12),
            (10, "split_conv_encoder", 0, None, 0.30), (11, "split_conv_encoder", 1, None, 0.32),
            (20, "conv_encoder", 0, V2, 0.50), (21, "conv_encoder", 1, V2, 0.52),
            (30, "split_conv_encoder", 0, V2, 0.05), (31, "split_conv_encoder", 1, V2, 0.06)]:
        _fake_dlib_job(tmp_path, num, seed, mig,
                       {"train_config.encoder.encoder_fn": f"@{encoder}"}, study=STUDY)
        done = {"identity": {}, "spec": {"dataset": "dsprites_full"}}
        if data is not None:
            done["data"] = data
        (tmp_path / STUDY / str(num) / "done.json").write_text(json.dumps(done))
    frame, _ = load_results(tmp_path)
    assert "data_fingerprint" in CELL
    by_num = frame.set_index("model_num")
    assert by_num.loc[0, "data"] == LEGACY_DSPRITES["label"]
    assert by_num.loc[0, "data_fingerprint"] == "splitenc-dsprites-v1"
    assert (by_num.loc[20, "data"], by_num.loc[20, "data_fingerprint"]) == (
        V2["label"], V2["fingerprint"])
    cells, diffs = summarize(frame)
    assert len(cells) == 4 and set(cells["n"]) == {2}
    assert sorted(zip(cells["data_fingerprint"], cells["encoder"], cells["mig_median"])) == [
        ("splitenc-dsprites-v1", "conv_encoder", pytest.approx(0.11)),
        ("splitenc-dsprites-v1", "split_conv_encoder", pytest.approx(0.31)),
        ("splitenc-dsprites-v2:0123456789abcdef", "conv_encoder", pytest.approx(0.51)),
        ("splitenc-dsprites-v2:0123456789abcdef", "split_conv_encoder", pytest.approx(0.055))]
    # One comparison per data version, each within it: +0.20 on v1, -0.455 on v2.
    assert sorted(zip(diffs["data_fingerprint"], diffs["n"], diffs["d_mig_median"])) == [
        ("splitenc-dsprites-v1", "2 vs 2", pytest.approx(0.20)),
        ("splitenc-dsprites-v2:0123456789abcdef", "2 vs 2", pytest.approx(-0.455))]
    verdicts = claim_verdicts(diffs)
    median = verdicts[verdicts["claim"] == "median MIG higher (Sec 5.2)"]
    assert dict(zip(median["data_fingerprint"], median["verdict"])) == {
        "splitenc-dsprites-v1": "holds",
        "splitenc-dsprites-v2:0123456789abcdef": "does not hold"}
    # The same seed on two data versions is not one run counted twice.
    assert pooled_duplicates(frame.assign(study=["a"] * 4 + ["b"] * 4)) == []
    # A figure of one data version draws only its runs.
    drawn = figure_runs(frame, STUDY, "dsprites_full", V2["fingerprint"])
    assert sorted(drawn["model_num"]) == [20, 21, 30, 31]


def _share_higher(variant: list[float], baseline: list[float]) -> float:
    pairs = [(x > y) + 0.5 * (x == y) for x in variant for y in baseline]
    return sum(pairs) / len(pairs)


def _rule_higher(variant: list[float], baseline: list[float]) -> str:
    # The campaign README: medians and P(variant higher) >= 0.75 agree.
    d = statistics.median(variant) - statistics.median(baseline)
    p = _share_higher(variant, baseline)
    return "holds" if d > 0 and p >= 0.75 else "does not hold" if d < 0 and p <= 0.25 \
        else "inconclusive"


def _rule_lower(variant: list[float], baseline: list[float]) -> str:
    return _rule_higher([-x for x in variant], [-y for y in baseline])


def _rule_max_higher(variant: list[float], baseline: list[float]) -> str:
    d = max(variant) - max(baseline)
    return "holds" if d > 0 else "does not hold" if d < 0 else "inconclusive"


def _rule_dramatically_lower(variant: list[float], baseline: list[float]) -> str:
    if _share_higher(variant, baseline) == 0 and \
            statistics.median(variant) <= 0.5 * statistics.median(baseline):
        return "holds"
    lower = _rule_lower(variant, baseline)
    return "direction holds, magnitude does not" if lower == "holds" else lower


def _judged_with_chance(judge, variant: list[float], baseline: list[float]) -> tuple:
    """(verdict, how many relabellings give it, how many there are), by enumeration."""
    from itertools import combinations

    pooled, k = variant + baseline, len(variant)
    verdict = judge(variant, baseline)
    picks = list(combinations(range(len(pooled)), k))
    hits = sum(judge([pooled[i] for i in pick], [pooled[i] for i in range(len(pooled))
                                                 if i not in pick]) == verdict
               for pick in picks)
    return verdict, hits, len(picks)


def test_the_committed_campaign_aggregates_with_the_legacy_data_label(tmp_path: Path) -> None:
    # The campaign's done.json files have no data record: the documented legacy
    # rule names their data, and nothing in docs/results/campaign is rewritten.
    from splitenc_plugin.results.aggregate import (
        aggregate,
        claim_verdicts,
        load_results,
        summarize,
    )

    before = {p: p.stat().st_mtime_ns for p in CAMPAIGN.rglob("*") if p.is_file()}
    frame, unfinished = load_results(CAMPAIGN)
    assert len(frame) == 12 and unfinished == []
    assert list(frame.columns) == COLUMNS  # no factor_mig results: no gap columns
    assert set(frame["data"]) == {LEGACY_DSPRITES["label"]}
    assert set(frame["data_fingerprint"]) == {LEGACY_DSPRITES["fingerprint"]}
    _, diffs = summarize(frame)
    verdicts = {(v["model"], v["comparison"][:5], v["claim"]): (v["verdict"], v["chance_hits"],
                                                               v["relabellings"])
                for v in claim_verdicts(diffs).to_dict("records")}
    # Each verdict and its chance, judged again here from the runs' raw values
    # by the campaign README's rule (an independent implementation).
    runs = frame.drop_duplicates(["model", "encoder", "sigma", "seed"])

    def values(model: str, encoder: str, sigma: float, column: str) -> list[float]:
        cell = runs[(runs["model"] == model) & (runs["encoder"] == encoder)
                    & (runs["sigma"] == sigma)]
        return list(cell[column])

    expected = {}
    for model in ("beta_tc_vae", "factor_vae"):
        split = {c: values(model, "split_conv_encoder", 0.0, c)
                 for c in ("mig_mean", "reconstruction_loss")}
        conv = {c: values(model, "conv_encoder", 0.0, c) for c in split}
        for claim, column, judge in (
                ("median MIG higher (Sec 5.2)", "mig_mean", _rule_higher),
                ("maximum MIG higher (Sec 5.2)", "mig_mean", _rule_max_higher),
                ("reconstruction loss lower (Sec 5.2)", "reconstruction_loss", _rule_lower)):
            expected[(model, "split", claim)] = _judged_with_chance(
                judge, split[column], conv[column])
    expected[("factor_vae", "σ = 0", "MIG dramatically lower (Sec 5.1)")] = _judged_with_chance(
        # Sec 5.1: the correlated noise (sigma = 0.9) against the factorized.
        _rule_dramatically_lower, values("factor_vae", "conv_encoder", 0.9, "mig_mean"),
        values("factor_vae", "conv_encoder", 0.0, "mig_mean"))
    assert verdicts == expected
    result = aggregate(CAMPAIGN, tmp_path / "agg", visualize=False,
                       selections=CAMPAIGN / "selections.txt")
    summary = result["summary"].read_text()
    assert LEGACY_DSPRITES["label"] in summary and "## MI decomposition as intervals" in summary
    assert "Learning curves: 12 of 12 finished job(s) have no model/learning_curves.json" \
        in summary and "_No run has factor_mig results._" in summary
    assert not any("factor_mi" in p.name or "learning_curves" in p.name
                   for p in result["figures"])
    assert {p: p.stat().st_mtime_ns for p in CAMPAIGN.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------
# The chance of each verdict if variant and baseline runs were exchangeable.
# ---------------------------------------------------------------------------

def test_a_complete_2_vs_2_separation_has_chance_one_in_six() -> None:
    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    # Every sigma = 0.9 run below every sigma = 0 run (all 4 pairs) and half the
    # median: of the C(4, 2) = 6 labellings only the observed one does that.
    _, diffs = summarize(_noise_frame([0.2, 0.3], [0.05, 0.12]))
    [row] = claim_verdicts(diffs).to_dict("records")
    assert row["verdict"] == "holds"
    assert (row["chance_hits"], row["relabellings"]) == (1, 6)
    assert row["chance"] == pytest.approx(1 / 6) and row["chance_exact"]
    # Split higher in all 4 pairs: "median MIG higher" needs only 3 of 4 pairs
    # (P >= 0.75) and a higher median, which the labellings {1st, 2nd} and
    # {1st, 3rd} highest both give: 2 of 6. "Maximum MIG higher" holds whenever
    # the best run is the variant's: 3 of 6.
    _, diffs = summarize(_btc_frame([0.4, 0.5], [0.1, 0.2]))
    chances = {v["claim"]: (v["verdict"], v["chance"])
               for v in claim_verdicts(diffs).to_dict("records")}
    assert chances["median MIG higher (Sec 5.2)"] == ("holds", pytest.approx(2 / 6))
    assert chances["maximum MIG higher (Sec 5.2)"] == ("holds", pytest.approx(3 / 6))
    # No verdict, no chance.
    _, diffs = summarize(_noise_frame([0.2, 0.3], [0.05]))
    [row] = claim_verdicts(diffs).to_dict("records")
    assert row["verdict"].startswith("too few runs") and math.isnan(row["chance"])


def test_the_chance_of_a_3_vs_3_verdict_matches_an_enumeration_of_permutations() -> None:
    # Independently of the aggregator's enumeration (combinations): every
    # permutation of the 6 runs, the first 3 labelled split, judged by the
    # public summarize + claim_verdicts.
    from itertools import permutations

    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    split, conv = [0.30, 0.45, 0.50], [0.10, 0.35, 0.20]
    runs = split + conv
    _, diffs = summarize(_btc_frame(split, conv))
    observed = {v["claim"]: v for v in claim_verdicts(diffs).to_dict("records")}

    judged: dict[frozenset, dict[str, str]] = {}
    counts = dict.fromkeys(observed, 0)
    orders = list(permutations(range(6)))
    for order in orders:
        key = frozenset(order[:3])
        if key not in judged:
            _, d = summarize(_btc_frame([runs[i] for i in order[:3]],
                                        [runs[i] for i in order[3:]]))
            judged[key] = {v["claim"]: v["verdict"] for v in claim_verdicts(d).to_dict("records")}
        for claim in counts:
            counts[claim] += judged[key][claim] == observed[claim]["verdict"]
    assert len(orders) == 720
    for claim, row in observed.items():
        assert row["relabellings"] == 20 and row["chance_exact"]
        assert row["chance"] == pytest.approx(counts[claim] / 720), claim
    # And one count by hand: the split cell's best run (0.50) is the best of all
    # 6; the maximum-MIG claim holds on the labellings that give split the
    # best run: C(5, 2) = 10 of 20.
    assert observed["maximum MIG higher (Sec 5.2)"]["verdict"] == "holds"
    assert observed["maximum MIG higher (Sec 5.2)"]["chance"] == pytest.approx(10 / 20)


# ---------------------------------------------------------------------------
# The MI decomposition as intervals.
# ---------------------------------------------------------------------------

def _mi_row(encoder: str, seed: int, dataset: str = "dsprites_full", **mi) -> dict:
    values = {"mi_joint": 9.0, "mi_joint_loo": 20.0, "mi_latent_sum": 15.0,
              "mi_latent_sum_loo": 15.1, "mi_gap": 6.0, "mi_gap_loo": -5.0, "mi_tc": 6.0,
              "mi_tc_loo": -5.0, "mi_ci": 0.0, "mi_log_n": math.log(10_000), **mi}
    return {"study": STUDY, "dataset": dataset, "model": "factor_vae", "encoder": encoder,
            "sigma": 0.0, "steps": 100, "seed": seed, "mig_mean": 0.1 + seed,
            "mig_sampled": 0.1, "reconstruction_loss": 50.0, **values}


def test_mi_intervals_take_the_right_bounds_and_cap_them() -> None:
    from splitenc_plugin.results.aggregate import entropy_cap, mi_intervals

    h = math.log(737_280)
    assert entropy_cap("dsprites_full") == pytest.approx(h)
    assert entropy_cap("cars3d") == pytest.approx(math.log(183 * 4 * 24))
    assert entropy_cap("dummy_data") == math.inf
    frame = _frame([_mi_row("conv_encoder", 0),
                    _mi_row("conv_encoder", 0, dataset="dummy_data"),
                    _mi_row("conv_encoder", 0, mi_ci=9.0),
                    _mi_row("conv_encoder", 0, dataset="dummy_data", mi_ci=2.0,
                            mi_joint=9.0, mi_joint_loo=9.5)])
    got = mi_intervals(frame)
    # I(z;x): plug-in 9 (lower) .. leave-one-out 20 (upper), capped by H(x) <=
    # log 737,280 = 13.51 on dSprites (not by log N = 9.21); uncapped on dummy_data.
    assert got.loc[0, ["joint_lower", "joint_upper"]].tolist() == pytest.approx([9.0, h])
    assert got.loc[1, ["joint_lower", "joint_upper"]].tolist() == pytest.approx([9.0, 20.0])
    assert got.loc[0, ["latent_sum_lower", "latent_sum_upper"]].tolist() == pytest.approx(
        [15.0, 15.1])
    # Gap = Σ - I by interval arithmetic, not the recorded gap estimates (6 and
    # -5): [15 - 13.51, 15.1 - 9] on dSprites, where I(z;x) <= H lifts the
    # lower bound; [15 - 20, 6.1] raised to -CI = 0 (TC >= 0) on dummy_data.
    # With CI = 0, TC = gap.
    for q in ("gap", "tc"):
        assert got.loc[0, [f"{q}_lower", f"{q}_upper"]].tolist() == pytest.approx([15 - h, 6.1])
        assert got.loc[1, [f"{q}_lower", f"{q}_upper"]].tolist() == pytest.approx([0.0, 6.1])
    # TC = gap + CI: with CI = 9, [15 - 13.51 + 9, 6.1 + 9], whatever the
    # recorded TC estimates say.
    assert got.loc[2, ["gap_lower", "gap_upper"]].tolist() == pytest.approx([15 - h, 6.1])
    assert got.loc[2, ["tc_lower", "tc_upper"]].tolist() == pytest.approx([15 - h + 9, 15.1])
    assert got.loc[2, ["ci_lower", "ci_upper"]].tolist() == [9.0, 9.0]
    # Uncapped, tight brackets: gap [15 - 9.5, 15.1 - 9], TC that + 2.
    assert got.loc[3, ["gap_lower", "gap_upper"]].tolist() == pytest.approx([5.5, 6.1])
    assert got.loc[3, ["tc_lower", "tc_upper"]].tolist() == pytest.approx([7.5, 8.1])
    # No MI evaluation: no interval.
    assert np.isnan(mi_intervals(_frame([{**_mi_row("conv_encoder", 0), "mi_joint": np.nan,
                                           "mi_joint_loo": np.nan}]))["joint_lower"].iloc[0])


def test_swapped_mi_estimates_still_give_an_interval_in_order() -> None:
    from splitenc_plugin.results.aggregate import mi_intervals, summarize
    from splitenc_plugin.results.mi import mi_separation

    # Sampling noise can put the leave-one-out estimate below the plug-in one:
    # the interval is [5.5, 6.0] then, not the empty [6.0, 5.5].
    swapped = {"dataset": "dummy_data", "mi_joint": 6.0, "mi_joint_loo": 5.5,
               "mi_latent_sum": 7.6, "mi_latent_sum_loo": 7.5}
    got = mi_intervals(_frame([_mi_row("conv_encoder", 0, **swapped),
                               _mi_row("conv_encoder", 1, **{**swapped, "mi_joint": 5.5,
                                                              "mi_joint_loo": 6.0,
                                                              "mi_latent_sum": 7.5,
                                                              "mi_latent_sum_loo": 7.6})]))
    for row in (0, 1):  # the same interval whichever estimate is which
        assert got.loc[row, ["joint_lower", "joint_upper"]].tolist() == [5.5, 6.0]
        assert got.loc[row, ["latent_sum_lower", "latent_sum_upper"]].tolist() == [7.5, 7.6]
        assert got.loc[row, ["gap_lower", "gap_upper"]].tolist() == pytest.approx([1.5, 2.1])
    # Hence a baseline inside it is not "separated" from it.
    _, diffs = summarize(_frame([
        _mi_row("split_conv_encoder", 0, **swapped),
        _mi_row("conv_encoder", 0, **{**swapped, "mi_joint": 5.6, "mi_joint_loo": 5.7})]))
    [joint] = [r for r in mi_separation(diffs).to_dict("records") if r["quantity"] == "I(z;x)"]
    assert (joint["variant_lower"], joint["variant_upper"]) == (5.5, 6.0)
    assert not joint["separates"]


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_gap_and_tc_intervals_contain_the_closed_form_values(sigma: float) -> None:
    # Known answer: a linear-Gaussian encoder q(z|x) = N(W x, D Sigma D) on
    # x ~ N(0, I), whose gap and TC are closed-form. At N = 300 the estimator's
    # bias is large against its noise; the interval the aggregator derives
    # from the I(z;x) and sum_j I(z_j;x) brackets holds the truth in all 10
    # draws (the gap's own [loo, plug-in] estimates missed it in 2 of these 10
    # with factorized noise, 4 of 10 at N = 1,000).
    from splitenc_plugin.metrics import mi_decomposition as mid
    from splitenc_plugin.model.noise import noise_covariance
    from splitenc_plugin.results.aggregate import mi_intervals
    from splitenc_plugin.results.load import MI_FIELDS

    rs = np.random.RandomState(0)
    weight = rs.randn(4, 6) / math.sqrt(6)
    weight[:, :2] += 0.8 * rs.randn(4, 1)  # a shared input direction: TC > 0
    logvar = np.array([-1.0, -0.5, -1.5, 0.0])
    corr = noise_covariance(sigma, 4) if sigma else None
    truth = mid.linear_gaussian_reference(weight, logvar, corr)
    rows = []
    for seed in range(10):
        draw = np.random.RandomState(seed)
        means = draw.randn(300, 6) @ weight.T
        est = mid.estimate_mi_decomposition(means, np.tile(logvar, (300, 1)), corr,
                                            num_samples=1, random_state=draw)
        rows.append({**_mi_row("conv_encoder", seed, dataset="dummy_data"),
                     **{column: est[field] for column, field in MI_FIELDS.items()}})
    got = mi_intervals(_frame(rows))
    for quantity, key in (("gap", "decomposition_gap"), ("tc", "total_correlation")):
        assert (got[f"{quantity}_lower"] <= truth[key]).all(), quantity
        assert (got[f"{quantity}_upper"] >= truth[key]).all(), quantity
    np.testing.assert_allclose(got[["ci_lower", "ci_upper"]].to_numpy(),
                               truth["conditional_independence"], atol=1e-9)


def test_mi_intervals_near_zero_show_four_decimals_and_exact_zeros_two() -> None:
    # A 20-step model's MI is a few thousandths of a nat: at 2 decimals both
    # cells would read [0.00, 0.00]. An exact 0 (factorized noise's CI) stays 0.00.
    from splitenc_plugin.results.aggregate import summarize, summary_tables

    tiny = {"mi_joint": 0.0012, "mi_joint_loo": 0.0031, "mi_latent_sum": 0.0025,
            "mi_latent_sum_loo": 0.0047, "mi_ci": 0.0}
    frame = _frame([*(_mi_row("conv_encoder", seed, **tiny) for seed in (0, 1)),
                    *(_mi_row("split_conv_encoder", seed) for seed in (0, 1))])
    cells, diffs = summarize(frame)
    lines = summary_tables(frame, cells, diffs).splitlines()
    header = next(i for i, line in enumerate(lines) if "| log N |" in line)
    columns = [c.strip() for c in lines[header].split("|")]
    rows = {}
    for line in lines[header + 2:header + 4]:
        row = dict(zip(columns, (c.strip() for c in line.split("|")), strict=True))
        rows[row["encoder"]] = row
    vanilla, split = rows["conv_encoder"], rows["split_conv_encoder"]
    assert (vanilla["I(z;x)"], vanilla["Σ_j I(z_j;x)"]) == ("[0.0012, 0.0031]", "[0.0025, 0.0047]")
    assert vanilla["CI"] == split["CI"] == "[0.00, 0.00]"  # exactly 0
    assert split["Σ_j I(z_j;x)"] == "[15.00, 15.10]"  # far from 0: 2 decimals


def test_a_cell_interval_is_the_median_of_bounds_and_only_disjoint_ones_separate() -> None:
    from splitenc_plugin.results.aggregate import mi_separation, summarize

    frame = _frame([
        # Vanilla: latent sums [10, 10.2] and [12, 12.2] -> cell [11, 11.2].
        _mi_row("conv_encoder", 0, mi_latent_sum=10.0, mi_latent_sum_loo=10.2),
        _mi_row("conv_encoder", 1, mi_latent_sum=12.0, mi_latent_sum_loo=12.2),
        # Split: [13, 13.2] twice, I(z;x) [9, 13.51] in all four runs: TC = gap
        # [max(0, 13 - 13.51), 13.2 - 9] = [0, 4.2] vs vanilla's median of
        # [0, 1.2] and [0, 3.2], [0, 2.2].
        *(_mi_row("split_conv_encoder", seed, mi_latent_sum=13.0, mi_latent_sum_loo=13.2)
          for seed in (0, 1)),
    ])
    cells, diffs = summarize(frame)
    vanilla = cells[cells["encoder"] == "conv_encoder"].iloc[0]
    assert (vanilla["latent_sum_lower"], vanilla["latent_sum_upper"]) == pytest.approx(
        (11.0, 11.2))
    assert vanilla["mi_log_n"] == pytest.approx(math.log(10_000))
    rows = mi_separation(diffs).set_index("quantity")
    # Disjoint: [13, 13.2] vs [11, 11.2], overlap 0 < difference 2.
    assert rows.loc["Σ_j I(z_j;x)", "overlap"] == 0.0
    assert rows.loc["Σ_j I(z_j;x)", "difference"] == pytest.approx(2.0)
    assert rows.loc["Σ_j I(z_j;x)", "separates"]
    # TC: [0, 2.2] inside [0, 4.2]: overlap 2.2, midpoints 1 apart: cannot separate.
    assert (rows.loc["TC", "baseline_lower"], rows.loc["TC", "baseline_upper"]) == \
        pytest.approx((0.0, 2.2))
    assert (rows.loc["TC", "variant_lower"], rows.loc["TC", "variant_upper"]) == \
        pytest.approx((0.0, 4.2))
    assert rows.loc["TC", "overlap"] == pytest.approx(2.2)
    assert rows.loc["TC", "difference"] == pytest.approx(1.0)
    assert not rows.loc["TC", "separates"]
    # Identical intervals (I(z;x) capped at H in both): cannot separate.
    assert not rows.loc["I(z;x)", "separates"]

    # Partly overlapping: [11.5, 14] vs [10, 12]. The midpoints are 1.75 apart,
    # more than the overlap of 0.5, but both cells may be at 11.8: cannot separate.
    frame = _frame([
        *(_mi_row("conv_encoder", seed, mi_latent_sum=10.0, mi_latent_sum_loo=12.0)
          for seed in (0, 1)),
        *(_mi_row("split_conv_encoder", seed, mi_latent_sum=11.5, mi_latent_sum_loo=14.0)
          for seed in (0, 1))])
    row = mi_separation(summarize(frame)[1]).set_index("quantity").loc["Σ_j I(z_j;x)"]
    assert (row["overlap"], row["difference"]) == pytest.approx((0.5, 1.75))
    assert not row["separates"]


def test_capacity_study_compares_each_control_with_the_vanilla_encoder(tmp_path: Path) -> None:
    # split_encoder_capacity_study_v1: split, matched split and wide encoder, each
    # against the vanilla encoder, and the split against the wide encoder (same
    # capacity, unsplit); its vanilla and split runs pool with the split study's
    # identical ones (counted once), in the differences and the figures.
    from splitenc_plugin.results import figures
    from splitenc_plugin.results.aggregate import figure_runs, summarize

    capacity, split = "split_encoder_capacity_study_v1", "split_encoder_study_v1"

    def row(study, num, encoder, seed, mig):
        return {"study": study, "model_num": num, "dataset": "dsprites_full",
                "model": "factor_vae", "encoder": encoder, "sigma": 0.0, "steps": 100,
                "seed": seed, "mig_mean": mig, "mig_sampled": mig, "reconstruction_loss": 50.0}

    frame = _frame([
        row(split, 0, "conv_encoder", 0, 0.10),
        row(capacity, 1, "conv_encoder", 1, 0.20),
        row(split, 10, "split_conv_encoder", 0, 0.30),
        row(capacity, 10, "split_conv_encoder", 0, 0.30),  # the same run as split/10
        row(capacity, 20, "matched_split_conv_encoder", 0, 0.25),
        row(capacity, 30, "wide_conv_encoder", 0, 0.05),
    ])
    _, diffs = summarize(frame)
    by_comparison = {d["comparison"]: d for d in diffs.to_dict("records")}
    assert sorted(by_comparison) == ["matched split encoder − vanilla encoder",
                                     "split encoder − vanilla encoder",
                                     "split encoder − wide encoder",
                                     "wide encoder − vanilla encoder"]
    assert {d["n"] for c, d in by_comparison.items()
            if c.endswith("vanilla encoder")} == {"1 vs 2"}
    # The split study's split run and the capacity study's are one run.
    assert by_comparison["split encoder − wide encoder"]["n"] == "1 vs 1"
    assert by_comparison["split encoder − wide encoder"]["d_mig_median"] == \
        pytest.approx(0.30 - 0.05)
    assert by_comparison["split encoder − vanilla encoder"]["d_mig_median"] == \
        pytest.approx(0.30 - 0.15)
    assert by_comparison["matched split encoder − vanilla encoder"]["d_mig_median"] == \
        pytest.approx(0.25 - 0.15)
    assert by_comparison["wide encoder − vanilla encoder"]["d_mig_median"] == \
        pytest.approx(0.05 - 0.15)

    drawn = figure_runs(frame, capacity, "dsprites_full")
    assert sorted(zip(drawn["study"], drawn["model_num"])) == [
        (capacity, 1), (capacity, 10), (capacity, 20), (capacity, 30), (split, 0)]
    # The split study's figure borrows the capacity study's vanilla run, not its controls.
    assert sorted(zip(*(figure_runs(frame, split, "dsprites_full")[c]
                        for c in ("study", "model_num")))) == [(capacity, 1), (split, 0),
                                                               (split, 10)]
    for draw in (figures.mig_violins, figures.mig_vs_reconstruction):
        out = draw(drawn, capacity, "dsprites_full", tmp_path / f"{draw.__name__}.png")
        with Image.open(out) as image:
            assert image.size[0] > image.size[1]


def test_a_comparison_pooling_two_studies_names_the_runs_of_each() -> None:
    # Campaign v2: FactorVAE σ = 0.9 from the correlated-noise study against
    # σ = 0 from the capacity study's vanilla runs (the same configuration).
    from splitenc_plugin.results.compare import cross_study_comparisons, summarize

    def row(study, num, sigma, seed, mig):
        return {"study": study, "model_num": num, "dataset": "dsprites_full",
                "model": "factor_vae", "encoder": "conv_encoder", "sigma": sigma,
                "steps": 100, "seed": seed, "mig_mean": mig, "mig_sampled": mig,
                "reconstruction_loss": 50.0}

    noise, capacity = "correlated_noise_study_v1", "split_encoder_capacity_study_v1"
    frame = _frame([row(noise, 31, 0.9, 1, 0.02), row(noise, 30, 0.9, 0, 0.03),
                    row(capacity, 0, 0.0, 0, 0.13), row(capacity, 1, 0.0, 1, 0.12),
                    # A VAE pair within one study: no line.
                    {**row(noise, 0, 0.0, 0, 0.2), "model": "vae"},
                    {**row(noise, 10, 0.9, 0, 0.1), "model": "vae"}])
    assert cross_study_comparisons(summarize(frame)[1]) == [
        ("σ = 0.9 (correlated) − σ = 0 (factorized) (factor_vae, dsprites_full, 100 steps) "
         f"pools runs of two studies: variant {noise}/30, 31, baseline {capacity}/0, 1")]


def test_a_run_without_a_value_ranks_in_no_pair_and_decides_no_claim() -> None:
    # Split 0.4, 0.5, NaN vs conv 0.1, 0.2, 0.3: compared as a number the NaN
    # run would be lower than every conv run (P(higher) 6/9 instead of unknown).
    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    _, diffs = summarize(_btc_frame([0.4, 0.5, np.nan], [0.1, 0.2, 0.3]))
    assert np.isnan(diffs["p_mig_higher"].iloc[0])
    verdicts = claim_verdicts(diffs).set_index("claim")["verdict"]
    assert verdicts["median MIG higher (Sec 5.2)"] == "inconclusive"
    assert verdicts["maximum MIG higher (Sec 5.2)"] == "inconclusive"
    # The reconstruction loss (60 - 10 MIG) is NaN for that run too.
    assert verdicts["reconstruction loss lower (Sec 5.2)"] == "inconclusive"
    # Without the NaN the same runs give verdicts.
    _, diffs = summarize(_btc_frame([0.4, 0.5, 0.6], [0.1, 0.2, 0.3]))
    assert diffs["p_mig_higher"].iloc[0] == 1.0
    assert claim_verdicts(diffs).set_index("claim")["verdict"][
        "median MIG higher (Sec 5.2)"] == "holds"


def test_mann_whitney_p_is_exact_with_ties_and_the_classical_test_without() -> None:
    # Independent: U by counting pairs (ties half) over every relabelling.
    import itertools

    from scipy.stats import mannwhitneyu

    from splitenc_plugin.results.stats import mann_whitney_p

    def brute(v, b):
        pooled, k = [*v, *b], len(v)

        def u(group, rest):
            return sum((x > y) + 0.5 * (x == y) for x in group for y in rest)

        centre = k * len(b) / 2
        observed = abs(u(v, b) - centre)
        far = [abs(u([pooled[i] for i in pick],
                     [pooled[i] for i in range(len(pooled)) if i not in pick]) - centre)
               >= observed - 1e-9 for pick in itertools.combinations(range(len(pooled)), k)]
        return sum(far) / len(far)

    # Ties (e.g. runs collapsed at MIG 0): the classical exact test, which
    # assumes none, gives 0.4 and 0.7 here.
    for v, b in (([0.2, 0.2, 0.3], [0.1, 0.2, 0.2]), ([0.0, 0.0, 0.1], [0.0, 0.0, 0.0])):
        assert mann_whitney_p(np.array(v), np.array(b)) == pytest.approx(brute(v, b))
    assert mann_whitney_p(np.array([0.2, 0.2, 0.3]), np.array([0.1, 0.2, 0.2])) == \
        pytest.approx(0.6)
    rng = np.random.default_rng(3)
    for nv, nb in ((3, 3), (2, 4), (5, 4)):
        v, b = rng.normal(size=nv), rng.normal(size=nb)
        assert mann_whitney_p(v, b) == pytest.approx(
            mannwhitneyu(v, b, alternative="two-sided", method="exact").pvalue)
        assert mann_whitney_p(v, b) == pytest.approx(brute(v, b))
    assert np.isnan(mann_whitney_p(np.array([0.1]), np.array([0.2, 0.3])))
    # A run without a value (a diverged loss) gives no p, not 0.
    assert np.isnan(mann_whitney_p(np.array([0.1, 0.2, np.nan]), np.array([0.3, 0.4, 0.5])))
    # Large arms without ties: still the exact distribution (11 vs 11 separated:
    # 2 / C(22, 11)), not an estimate from random relabellings.
    assert mann_whitney_p(np.arange(11.0) + 100, np.arange(11.0)) == pytest.approx(
        2 / math.comb(22, 11))


def test_control_pairs_are_judged_by_the_same_rule_but_not_labelled_as_the_papers_claims(
        ) -> None:
    # "holds" on wide − vanilla must not read as support for the paper: the
    # capacity controls' verdicts name the control, the paper's pair its section.
    from splitenc_plugin.results.aggregate import claim_verdicts, summarize

    capacity = "split_encoder_capacity_study_v1"
    migs = {"conv_encoder": [0.10, 0.12], "split_conv_encoder": [0.30, 0.32],
            "matched_split_conv_encoder": [0.20, 0.22], "wide_conv_encoder": [0.40, 0.42]}
    frame = _frame([{"study": capacity, "model_num": 10 * i + seed, "dataset": "dsprites_full",
                     "model": "factor_vae", "encoder": encoder, "sigma": 0.0, "steps": 100,
                     "seed": seed, "mig_mean": mig, "mig_sampled": mig,
                     "reconstruction_loss": 50.0 - 10 * mig}
                    for i, (encoder, values) in enumerate(migs.items())
                    for seed, mig in enumerate(values)])
    verdicts = claim_verdicts(summarize(frame)[1])
    median = {row["comparison"]: (row["claim"], row["verdict"])
              for row in verdicts.to_dict("records") if row["claim"].startswith("median")}
    assert median == {
        "split encoder − vanilla encoder": ("median MIG higher (Sec 5.2)", "holds"),
        "matched split encoder − vanilla encoder":
            ("median MIG higher (control: split at the vanilla encoder's capacity)", "holds"),
        "wide encoder − vanilla encoder":
            ("median MIG higher (control: capacity alone, unsplit)", "holds"),
        # The wide encoder's runs are above the split one's in all 4 pairs.
        "split encoder − wide encoder": (
            "median MIG higher (control: split vs unsplit at the split encoder's capacity)",
            "does not hold")}
    assert not verdicts["claim"].str.contains("Sec 5.2").groupby(
        verdicts["comparison"]).any().drop("split encoder − vanilla encoder").any()


def test_small_cells_are_drawn_as_points_and_median_and_absent_ones_are_named(
        tmp_path: Path, monkeypatch) -> None:
    # A violin from 2 runs would draw a density the data do not have: cells of
    # fewer than VIOLIN_MIN_RUNS runs get a median bar; every slot says its n;
    # the scatter's legend lists only the cells with runs.
    import matplotlib.collections as mcoll

    from splitenc_plugin.results import figures

    drawn = []
    monkeypatch.setattr(figures.plt, "close", drawn.append)  # keep the figure to inspect
    capacity = "split_encoder_capacity_study_v1"
    conv = [0.10, 0.12, 0.14, 0.16, 0.18, 0.20]
    assert len(conv) >= figures.VIOLIN_MIN_RUNS > 2
    frame = _frame([
        *({"study": capacity, "model_num": seed, "dataset": "dsprites_full",
           "model": "factor_vae", "encoder": "conv_encoder", "sigma": 0.0, "steps": 100,
           "seed": seed, "mig_mean": mig, "reconstruction_loss": 50.0}
          for seed, mig in enumerate(conv)),
        *({"study": capacity, "model_num": 10 + seed, "dataset": "dsprites_full",
           "model": "factor_vae", "encoder": "split_conv_encoder", "sigma": 0.0, "steps": 100,
           "seed": seed, "mig_mean": mig, "reconstruction_loss": 40.0}
          for seed, mig in enumerate([0.30, 0.50])),
        {"study": capacity, "model_num": 20, "dataset": "dsprites_full", "model": "factor_vae",
         "encoder": "matched_split_conv_encoder", "sigma": 0.0, "steps": 100, "seed": 0,
         "mig_mean": 0.25, "reconstruction_loss": 45.0},
        # A second panel (shared y axis) with a higher MIG: no panel clips it.
        {"study": capacity, "model_num": 40, "dataset": "dsprites_full", "model": "beta_tc_vae",
         "encoder": "conv_encoder", "sigma": 0.0, "steps": 100, "seed": 0, "mig_mean": 0.9,
         "reconstruction_loss": 45.0}])

    figures.mig_violins(frame, capacity, "dsprites_full", tmp_path / "violin.png")
    ax, other = drawn.pop().axes
    assert ax.get_title() == "FactorVAE" and other.get_title() == "β-TCVAE"
    assert other.get_ylim()[1] > 0.9 and ax.get_ylim()[1] > 0.9
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "vanilla encoder\n(n=6)", "split encoder\n(n=2)", "matched split encoder\n(n=1)",
        "wide encoder\n(no runs)"]
    violins = [c for c in ax.collections if isinstance(c, mcoll.PolyCollection)]
    assert len(violins) == 1  # the vanilla cell's
    assert violins[0].get_paths()[0].vertices[:, 0].mean() == pytest.approx(0.0, abs=0.05)
    bars = [seg for c in ax.collections if isinstance(c, mcoll.LineCollection)
            for seg in c.get_segments()]
    # Median bars of the small cells, centred on their slots (x = 1, 2).
    assert sorted((round(seg[:, 0].mean(), 6), seg[0, 1]) for seg in bars) == [
        (1.0, pytest.approx(0.40)), (2.0, pytest.approx(0.25))]
    assert ax.get_ylim()[0] == 0.0

    # A run whose value the study's grid no longer has (sigma 0.5) has no slot:
    # left out, as seaborn leaves it, not an error.
    noise = _frame([{"study": "correlated_noise_study_v1", "model_num": i, "dataset": "dsprites_full",
                     "model": "vae", "encoder": "conv_encoder", "sigma": sigma, "steps": 100,
                     "seed": 0, "mig_mean": 0.1 + i / 10, "reconstruction_loss": 45.0}
                    for i, sigma in enumerate([0.0, 0.9, 0.5])])
    figures.mig_violins(noise, "correlated_noise_study_v1", "dsprites_full", tmp_path / "n.png")
    assert [t.get_text() for t in drawn.pop().axes[0].get_xticklabels()] == [
        "σ = 0 (factorized)\n(n=1)", "σ = 0.9 (correlated)\n(n=1)"]

    figures.mig_vs_reconstruction(frame, capacity, "dsprites_full", tmp_path / "scatter.png")
    ax = drawn.pop().axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "vanilla encoder (n=6)", "split encoder (n=2)", "matched split encoder (n=1)"]


def test_every_figure_draws_models_and_encoders_in_the_papers_order() -> None:
    # Not alphabetical: VAE, FactorVAE, β-TCVAE; baseline encoder first, then the
    # grid's order; other values (sigma) ascending.
    import pandas as pd

    from splitenc_plugin.results.figures import in_drawing_order

    cells = pd.DataFrame([(m, e, s) for m in ("beta_tc_vae", "factor_vae", "vae")
                          for e in ("wide_conv_encoder", "split_conv_encoder", "conv_encoder",
                                    "matched_split_conv_encoder") for s in (0.9, 0.0)],
                         columns=["model", "encoder", "sigma"])
    ordered = in_drawing_order(cells, ["model", "encoder", "sigma"])
    assert list(dict.fromkeys(ordered["model"])) == ["vae", "factor_vae", "beta_tc_vae"]
    assert list(dict.fromkeys(ordered["encoder"])) == [
        "conv_encoder", "split_conv_encoder", "matched_split_conv_encoder", "wide_conv_encoder"]
    assert list(ordered["sigma"][:2]) == [0.0, 0.9]


def test_a_contrast_that_is_not_a_new_pair_of_the_compared_axis_is_refused() -> None:
    # A grid's contrasts are checked where its comparison is derived, at import
    # of the aggregator: a misspelt value is never a comparison silently dropped.
    from splitenc_plugin.results.comparisons import study_comparison
    from splitenc_plugin.studies.grid import StudyGrid

    def grid(*contrasts):
        return StudyGrid("s", "", datasets=["dsprites_full"], models=["factor_vae"],
                         encoders=["conv_encoder", "split_conv_encoder", "wide_conv_encoder"],
                         sigmas=[0.0], seeds=[0], contrasts=contrasts)

    assert study_comparison(grid(("wide_conv_encoder", "split_conv_encoder"))).pairs == (
        ("conv_encoder", "split_conv_encoder"), ("conv_encoder", "wide_conv_encoder"),
        ("wide_conv_encoder", "split_conv_encoder"))
    for bad in (("matched_split_conv_encoder", "split_conv_encoder"),  # not in the grid
                ("wide_conv_encoder", "wide_conv_encoder"),  # itself
                ("conv_encoder", "split_conv_encoder"),  # already compared
                ("split_conv_encoder", "conv_encoder")):  # the same, reversed
        with pytest.raises(ValueError, match="contrast"):
            study_comparison(grid(bad))


def test_an_unreadable_marker_stops_the_aggregator_naming_the_job(tmp_path: Path) -> None:
    # Unreadable results are never "absent": the command stops and names the file.
    import shutil

    copy = tmp_path / "campaign"
    shutil.copytree(CAMPAIGN, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    marker = copy / "split_encoder_study_v1" / "10" / "done.json"
    text = marker.read_text()
    marker.write_text(f"<<<<<<< HEAD\n{text}=======\n{text}>>>>>>> theirs\n")
    proc = run_script("splitenc_aggregate", str(copy), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert str(marker) in proc.stderr and "merge-conflict markers" in proc.stderr
    assert not (tmp_path / "out" / "results.csv").exists()


def test_an_unfinished_jobs_damaged_spec_stops_the_aggregator(tmp_path: Path) -> None:
    # An unfinished job holds back its comparison's verdict; with an unreadable
    # job.json it would silently not, and the verdict would come too early.
    import shutil

    copy = tmp_path / "campaign"
    shutil.copytree(CAMPAIGN, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    spec = copy / "split_encoder_study_v1" / "99" / "job.json"
    spec.parent.mkdir()
    spec.write_text('{"schema": 1, "spec": {"stu')
    proc = run_script("splitenc_aggregate", str(copy), "--no_visualize",
                      "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(spec) in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "results.csv").exists()


MIG_RESULT = Path("metrics/mean/mig/results/aggregate/evaluation.json")
MI_RESULT = Path("metrics/mean_logvar/mi_decomposition_study/results/aggregate/evaluation.json")


@pytest.mark.parametrize(("result", "damage", "message"), [
    (MIG_RESULT, lambda path: path.write_text(path.read_text()[:200]),
     "cannot be read as dlib's result JSON"),
    (MIG_RESULT, lambda path: path.write_text("{}"), "lacks train_config.dataset.name"),
    (MIG_RESULT, lambda path: path.unlink(), "is missing"),
    (MI_RESULT, lambda path: path.write_text("[1, 2"), "cannot be read as dlib's result JSON"),
])
def test_an_unreadable_result_stops_the_aggregator_naming_the_file(
        tmp_path: Path, result, damage, message) -> None:
    # A damaged result of a finished job is never "absent" (the job would pass
    # for unfinished, or its MI for not evaluated): one error naming the file.
    import shutil

    copy = tmp_path / "campaign"
    shutil.copytree(CAMPAIGN, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    path = copy / "split_encoder_study_v1" / "10" / result
    damage(path)
    proc = run_script("splitenc_aggregate", str(copy), "--no_visualize",
                      "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path) in proc.stderr and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "results.csv").exists()


def test_an_output_dir_that_is_a_file_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("kept")
    proc = run_script("splitenc_aggregate", str(CAMPAIGN), "--no_visualize",
                      "--output_dir", str(target))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--output_dir {target} is a file" in proc.stderr
    assert target.read_text() == "kept"


def test_a_job_found_twice_is_refused_not_counted_twice(tmp_path: Path) -> None:
    # The same output directory given twice, or a copy of it: each job would
    # count as two runs of its cell.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(CAMPAIGN, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    for dirs in ((CAMPAIGN, CAMPAIGN), (CAMPAIGN, copy)):
        proc = run_script("splitenc_aggregate", *map(str, dirs), "--no_visualize",
                          "--output_dir", str(tmp_path / "out"))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "are the same job" in proc.stderr and "count twice" in proc.stderr
    assert not (tmp_path / "out" / "results.csv").exists()


# ---------------------------------------------------------------------------
# Per-factor MIG (factor_mig) and learning curves.
# ---------------------------------------------------------------------------

# Two hand-written factor_mig matrices (dSprites' 5 factors x 4 latents).
# MATRIX_A: z0 -> posX 0.80, z1 -> scale 0.60, z2 -> shape 0.30, z3 -> posY 0.70;
# gaps (best - second best per row): shape 0.20, scale 0.50, orientation 0.01,
# posX 0.70, posY 0.65.
MATRIX_A = [[0.10, 0.05, 0.30, 0.00],
            [0.02, 0.60, 0.10, 0.01],
            [0.05, 0.04, 0.03, 0.02],
            [0.80, 0.10, 0.00, 0.05],
            [0.00, 0.02, 0.05, 0.70]]
# MATRIX_B: z0 -> shape 0.50, z1 -> posX 0.60, z2 -> scale 0.40, z3 -> posY 0.50;
# gaps: shape 0.40, scale 0.30, orientation 0.03, posX 0.50, posY 0.45.
MATRIX_B = [[0.50, 0.10, 0.00, 0.02],
            [0.05, 0.00, 0.40, 0.10],
            [0.01, 0.04, 0.00, 0.01],
            [0.00, 0.60, 0.05, 0.10],
            [0.05, 0.00, 0.00, 0.50]]
GAPS_A = [0.20, 0.50, 0.01, 0.70, 0.65]
GAPS_B = [0.40, 0.30, 0.03, 0.50, 0.45]
DSPRITES_FACTORS = ["shape", "scale", "orientation", "posX", "posY"]


def _write_factor_mig(job: Path, matrix: list[list[float]], gaps: list[float]) -> None:
    """factor_mig's aggregate evaluation.json as dlib writes it (nested lists kept)."""
    best = np.argmax(matrix, axis=1)
    record = {"evaluation_results.mi_matrix": matrix,
              "evaluation_results.factor_gap": gaps,
              "evaluation_results.discrete_mig": float(np.mean(gaps)),
              "evaluation_results.best_latent": best.tolist(),
              "evaluation_results.best_normalized_mi": [row[j] for row, j in zip(matrix, best)]}
    path = job / "metrics" / "mean" / "factor_mig" / "results" / "aggregate"
    path.mkdir(parents=True)
    (path / "evaluation.json").write_text(json.dumps(record))


def _write_curves(job: Path, curves: dict) -> None:
    (job / "model").mkdir(parents=True, exist_ok=True)
    (job / "model" / CURVES_FILE).write_text(json.dumps(curves))


def _write_visualizations(job: Path, num_latents: int = 4) -> None:
    """Stand-ins for dlib visualize_model's pictures (the job ran with --visualize)."""
    rng = np.random.default_rng(0)
    for rel, shape in (("reconstructions/reconstructions.jpg", (128, 256)),
                       ("traversals/traversals0.jpg", (11 * 64, num_latents * 64))):
        path = job / "visualizations" / rel
        path.parent.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def factor_jobs(tmp_path: Path) -> Path:
    """Split study, FactorVAE on dsprites_full: vanilla seeds 0-1 (MATRIX_A, MATRIX_B)
    and split seeds 0-1 (MATRIX_A; seed 1, the best split run, has no factor_mig), each
    with visualizations; learning curves for all but split seed 1."""
    for num, encoder, seed, mig, matrix, gaps, curves in [
            (0, "conv_encoder", 0, 0.30, MATRIX_A, GAPS_A,
             {"steps": [1, 101, 201], "loss": [520.0, 70.0, 55.0],
              "reconstruction_loss": [500.0, 60.0, 50.0]}),
            (1, "conv_encoder", 1, 0.20, MATRIX_B, GAPS_B,
             {"steps": [1, 101, 201], "loss": [410.0, 75.0, 48.0],
              "reconstruction_loss": [400.0, 70.0, 40.0]}),
            (10, "split_conv_encoder", 0, 0.25, MATRIX_A, GAPS_A,
             {"steps": [101, 201], "loss": [90.0, None],  # resumed at 101; a null value
              "reconstruction_loss": [80.0, 45.0]}),
            (11, "split_conv_encoder", 1, 0.35, None, None, None)]:
        _fake_dlib_job(tmp_path, num, seed, mig,
                       {"train_config.encoder.encoder_fn": f"@{encoder}"}, study=STUDY)
        job = tmp_path / STUDY / str(num)
        if matrix is not None:
            _write_factor_mig(job, matrix, gaps)
        if curves is not None:
            _write_curves(job, curves)
        _write_visualizations(job)
    return tmp_path


def test_factor_mig_gives_gap_columns_and_a_per_factor_table_of_median_gaps(
        factor_jobs: Path) -> None:
    from splitenc_plugin.results.aggregate import (
        aggregate,
        factor_gap_medians,
        load_results,
    )

    frame, _ = load_results(factor_jobs)
    gaps = [f"gap_{name}" for name in DSPRITES_FACTORS]
    assert list(frame.columns) == COLUMNS + gaps
    by_num = frame.set_index("model_num")
    assert by_num.loc[1, gaps].tolist() == pytest.approx(GAPS_B)
    assert by_num.loc[11, gaps].isna().all()  # no factor_mig: NaN

    medians = factor_gap_medians(frame)
    table = {(r.encoder, r.factor): (r.n, r.gap_median) for r in medians.itertuples()}
    assert [f for e, f in table if e == "conv_encoder"] == DSPRITES_FACTORS  # dlib's order
    assert [table["conv_encoder", f] for f in DSPRITES_FACTORS] == [
        (2, pytest.approx(0.30)), (2, pytest.approx(0.40)), (2, pytest.approx(0.02)),
        (2, pytest.approx(0.60)), (2, pytest.approx(0.55))]
    assert [table["split_conv_encoder", f] for f in DSPRITES_FACTORS] == [
        (1, pytest.approx(g)) for g in GAPS_A]  # seed 1 has no factor_mig: left out

    result = aggregate(factor_jobs, factor_jobs / "agg")
    summary = result["summary"].read_text()
    assert "## Per-factor MIG (factor_mig)" in summary and "### dsprites_full (`unrecorded`)" \
        in summary
    assert ("| study | model | encoder | sigma | steps | n | shape | scale | orientation | "
            "posX | posY |") in summary
    assert (f"| {STUDY} | factor_vae | conv_encoder | 0 | 100 | 2 | 0.3000 | 0.4000 | 0.0200 | "
            "0.6000 | 0.5500 |") in summary
    with open(result["csv"]) as f:
        assert csv.DictReader(f).fieldnames == COLUMNS + gaps
    stem = factor_jobs / "agg" / "figures" / f"{STUDY}_dsprites_full"
    for suffix in ("factor_mi", "learning_curves", "appendix_c"):
        path = Path(f"{stem}_{suffix}.png")
        assert path in result["figures"], suffix
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert min(pixels.shape) >= 300 and pixels.std() > 5, suffix
    assert ("Learning curves: 1 of 4 finished job(s) have no model/learning_curves.json"
            in summary and str(factor_jobs / STUDY / "11") in summary)
    assert f"{factor_jobs / STUDY / '10'} (from step 101)" in summary


def test_the_heatmap_shows_each_runs_matrix_with_latents_sorted_by_factor(
        factor_jobs: Path) -> None:
    from splitenc_plugin.results.aggregate import (
        factor_mi_panels,
        figure_runs,
        load_results,
    )

    frame, _ = load_results(factor_jobs)
    panels = factor_mi_panels(figure_runs(frame, STUDY, "dsprites_full"))
    assert [(p["cell"]["encoder"], [r["seed"] for r in p["runs"]]) for p in panels] == [
        ("conv_encoder", [0, 1]), ("split_conv_encoder", [0])]
    seed0, seed1 = panels[0]["runs"]
    # A: shape z2, scale z1, posX z0, posY z3. B: shape z0, scale z2, posX z1, posY z3.
    assert seed0["latents"].tolist() == [2, 1, 0, 3]
    assert seed1["latents"].tolist() == [0, 2, 1, 3]
    assert seed0["matrix"] == pytest.approx(np.array(MATRIX_A)[:, [2, 1, 0, 3]])
    assert seed1["matrix"] == pytest.approx(np.array(MATRIX_B)[:, [0, 2, 1, 3]])
    assert seed0["factor_names"] == DSPRITES_FACTORS
    assert seed1["mig"] == pytest.approx(np.mean(GAPS_B))


def test_a_traversal_label_names_the_latents_most_informative_factor(
        factor_jobs: Path, tmp_path: Path) -> None:
    from splitenc_plugin.results.aggregate import latent_factor_labels

    assert latent_factor_labels(factor_jobs / STUDY / "0", "dsprites_full") == [
        "z0: posX 0.80", "z1: scale 0.60", "z2: shape 0.30", "z3: posY 0.70"]
    assert latent_factor_labels(factor_jobs / STUDY / "1", "dsprites_full") == [
        "z0: shape 0.50", "z1: posX 0.60", "z2: scale 0.40", "z3: posY 0.50"]
    assert latent_factor_labels(factor_jobs / STUDY / "11", "dsprites_full") is None
    # A dataset without factor names (or dsprites_noshape's 4): "factor k".
    assert latent_factor_labels(factor_jobs / STUDY / "0", "smallnorb")[0] == "z0: factor 3 0.80"


def test_learning_curves_per_cell_are_the_medians_of_the_runs_curves(
        factor_jobs: Path, tmp_path: Path) -> None:
    from splitenc_plugin.results.aggregate import cell_curves, load_results, run_curves
    from splitenc_plugin.results.curves import late_curves

    frame, _ = load_results(factor_jobs)
    curves, missing = run_curves(frame)
    assert missing == [str(factor_jobs / STUDY / "11")]
    # The split seed 0's curves miss the training's first summary (step 1).
    assert late_curves(curves) == {str(factor_jobs / STUDY / "10"): 101}
    cells = cell_curves(curves).set_index(["encoder", "step"])
    conv = cells.loc["conv_encoder"]
    assert conv.index.tolist() == [1, 101, 201] and conv["n"].tolist() == [2, 2, 2]
    assert conv["reconstruction_loss_median"].tolist() == [450.0, 65.0, 45.0]
    assert conv["reconstruction_loss_low"].tolist() == [400.0, 60.0, 40.0]
    assert conv["reconstruction_loss_high"].tolist() == [500.0, 70.0, 50.0]
    # regulariser = loss - reconstruction loss: seed 0 20, 10, 5; seed 1 10, 5, 8.
    assert conv["regularizer_median"].tolist() == [15.0, 7.5, 6.5]
    assert conv["kl_median"].isna().all()  # FactorVAE logs no elbo
    split = cells.loc["split_conv_encoder"]
    assert split.index.tolist() == [101, 201]
    assert split["regularizer_median"].iloc[0] == 10.0 and np.isnan(
        split["regularizer_median"].iloc[1])

    # A beta-TCVAE logs elbo = -(reconstruction + KL): KL is derived from it.
    job = tmp_path / "btc"
    _write_curves(job, {"steps": [1, 101], "loss": [75.0, 62.0], "elbo": [-70.0, -56.0],
                        "reconstruction_loss": [60.0, 50.0]})
    btc = _frame([{"study": STUDY, "model_num": 20, "dataset": "dsprites_full",
                   "model": "beta_tc_vae", "encoder": "conv_encoder", "sigma": 0.0,
                   "steps": 101, "seed": 0, "job_dir": str(job)}])
    curves, missing = run_curves(btc)
    assert missing == [] and curves["kl"].tolist() == [10.0, 6.0]
    assert curves["regularizer"].tolist() == [15.0, 12.0]


def test_runs_logged_on_offset_step_grids_meet_in_the_same_bins(tmp_path: Path) -> None:
    # 2,000 training steps: bins of ceil(2000 / CURVE_BINS) = 10 steps. Seed 0
    # logs at 1, 101, 105 (two points in one bin: their mean), 201; seed 1 was
    # resumed at 100 and logs at 103 and 205 (the run's own grid).
    from splitenc_plugin.results.aggregate import cell_curves, run_curves
    from splitenc_plugin.results.curves import CURVE_BINS

    assert CURVE_BINS == 200
    rows = []
    for seed, curves in ((0, {"steps": [1, 101, 105, 201], "loss": [9.0, 5.0, 7.0, 3.0],
                              "reconstruction_loss": [8.0, 4.0, 6.0, 2.0]}),
                         (1, {"steps": [103, 205], "loss": [7.5, 2.0],
                              "reconstruction_loss": [7.0, 1.0]})):
        job = tmp_path / str(seed)
        _write_curves(job, curves)
        rows.append({"study": STUDY, "model_num": seed, "dataset": "dsprites_full",
                     "model": "factor_vae", "encoder": "conv_encoder", "sigma": 0.0,
                     "steps": 2000, "seed": seed, "job_dir": str(job)})
    cells = cell_curves(run_curves(_frame(rows))[0])
    assert cells["step"].tolist() == [10, 110, 210] and cells["n"].tolist() == [1, 2, 2]
    assert cells["reconstruction_loss_median"].tolist() == [8.0, 6.0, 1.5]  # (5 + 7) / 2
    assert cells["reconstruction_loss_low"].tolist() == [8.0, 5.0, 1.0]
    assert cells["reconstruction_loss_high"].tolist() == [8.0, 7.0, 2.0]
    assert cells["regularizer_median"].tolist() == [1.0, 0.75, 1.0]  # (1 + 0.5) / 2


# ---------------------------------------------------------------------------
# Any dlib study (issue 23): cells from the study's bindings, fragments paired.
# ---------------------------------------------------------------------------

DLIB_STUDY = "unsupervised_study_v1"
SPLIT_FRAGMENT = {"name": "split_encoder.gin", "sha256": "ab" * 32}


def _fake_study_job(root: Path, num: int, seed: int, mig: float, recon: float, *,
                    name: str = "beta_vae", model: str = "vae",
                    strength: tuple[str, float] = ("vae.beta", 1.0),
                    fixed: tuple[str, ...] = (), fragments: tuple[dict, ...] = ()) -> Path:
    """A finished job of a dlib study as splitenc_reproduce records it.

    ``done.json["identity"]`` holds what dlib_reproduce binds (``model.name``
    of the config file and ``model.model_num`` prepended, then the study's
    bindings for the model, then the steps) and the layered fragments; the
    operative config has the encoder the fragments chose. With fragments the
    job lives in ``<study>+<fragment>/`` beside the plain study's.
    """
    encoder = "split_conv_encoder" if fragments else "conv_encoder"
    bindings = ["model.name = 'shared'", f"model.model_num = {num}",
                "dataset.name = 'dsprites_full'", "encoder.encoder_fn = @conv_encoder",
                "decoder.decoder_fn = @deconv_decoder", f"model.name = '{name}'",
                f"{strength[0]} = {strength[1]}", *fixed, f"model.model = @{model}()",
                f"model.random_seed = {seed}", "model.training_steps = 100"]
    record = {"train_config.model.model_num": str(num),
              "train_config.dataset.name": "'dsprites_full'",
              "train_config.model.model": f"@{model}()",
              "train_config.encoder.encoder_fn": f"@{encoder}",
              "train_config.model.random_seed": str(seed),
              "train_config.model.training_steps": "100",
              "train_results.global_step": 100, "train_results.reconstruction_loss": recon,
              "train_results.elapsed_time": 10.0, "evaluation_results.discrete_mig": mig}
    study_dir = "+".join([DLIB_STUDY, *(f["name"].removesuffix(".gin") for f in fragments)])
    job = root / study_dir / str(num)
    for rep in ("mean", "sampled"):
        path = job / "metrics" / rep / "mig" / "results" / "aggregate"
        path.mkdir(parents=True)
        (path / "evaluation.json").write_text(json.dumps(record))
    identity = {"study": DLIB_STUDY, "model_num": num, "steps": 100, "bindings": bindings,
                "config": "dlib-config:unsupervised_study_v1/model_configs/shared.gin"}
    if fragments:
        identity["gin_configs"] = list(fragments)
    (job / "done.json").write_text(json.dumps({"identity": identity, "finished_at": "x"}))
    return job


def test_a_dlib_study_aggregates_into_cells_with_its_hyperparameter_column(
        tmp_path: Path) -> None:
    from splitenc_plugin.results.aggregate import aggregate, load_results, summarize
    from splitenc_plugin.results.cells import strength_column

    # unsupervised_study_v1's numbering: 50 seeds per (model, strength).
    # beta_vae beta 1 (models 0, 1) and beta 2 (50, 51); dip_vae_i and
    # dip_vae_ii (models 1000, 1500), which share model.model = @dip_vae().
    for num, seed, beta, mig in [(0, 0, 1.0, 0.10), (1, 1, 1.0, 0.20),
                                 (50, 0, 2.0, 0.30), (51, 1, 2.0, 0.50)]:
        _fake_study_job(tmp_path, num, seed, mig, 50.0 - 10 * mig, strength=("vae.beta", beta))
    for num, name, kind in [(1000, "dip_vae_i", "i"), (1500, "dip_vae_ii", "ii")]:
        _fake_study_job(tmp_path, num, 0, 0.15, 45.0, name=name, model="dip_vae",
                        strength=("dip_vae.lambda_od", 1.0),
                        fixed=(f"dip_vae.dip_type = '{kind}'",))

    frame, _ = load_results(tmp_path)
    # The study's bindings are columns, after COLUMNS: model.name (the study's,
    # not the prepended config name), the fixed decoder, each model's own;
    # not what names the run or is a column already (model_num, seed, steps,
    # dataset, model, encoder). No fragments: no gin_configs column.
    assert list(frame.columns) == [*COLUMNS, "model.name", "decoder.decoder_fn", "vae.beta",
                                   "dip_vae.lambda_od", "dip_vae.dip_type"]
    by_num = frame.set_index("model_num")
    assert by_num.loc[50, ["model", "encoder", "seed", "model.name", "vae.beta",
                           "dip_vae.lambda_od"]].tolist() == [
        "vae", "conv_encoder", 0, "beta_vae", "2.0", ""]
    assert by_num.loc[1500, ["model", "model.name", "dip_vae.dip_type"]].tolist() == [
        "dip_vae", "dip_vae_ii", "ii"]

    cells, diffs = summarize(frame)
    assert diffs.empty  # nothing compared: no plugin comparison, no fragment
    table = {(c["model.name"], c["vae.beta"], c["dip_vae.lambda_od"]): (c["n"], c["mig_median"])
             for c in cells.to_dict("records")}
    assert table == {("beta_vae", "1.0", ""): (2, pytest.approx(0.15)),
                     ("beta_vae", "2.0", ""): (2, pytest.approx(0.40)),
                     ("dip_vae_i", "", "1.0"): (1, pytest.approx(0.15)),
                     ("dip_vae_ii", "", "1.0"): (1, pytest.approx(0.15))}
    # The violins' x-axis per model: its regularisation strength.
    assert strength_column(frame[frame["model"] == "vae"]) == "vae.beta"
    assert strength_column(frame[frame["model.name"] == "dip_vae_i"]) == "dip_vae.lambda_od"

    result = aggregate(tmp_path, tmp_path / "agg", visualize=False)
    summary = result["summary"].read_text()
    assert ("Bindings every run shares (left out of the tables below; results.csv has "
            "them): decoder.decoder_fn = deconv_decoder") in summary
    assert ("| study | dataset | data_fingerprint | model | encoder | sigma | steps | model.name "
            "| vae.beta | dip_vae.lambda_od | dip_vae.dip_type | n | MIG median |") in summary
    assert (f"| {DLIB_STUDY} | dsprites_full | unrecorded | vae | conv_encoder | 0 | 100 | "
            "beta_vae | 2.0 |  |  | 2 | 0.4000 |") in summary
    with open(result["csv"]) as f:
        assert csv.DictReader(f).fieldnames == list(frame.columns)
    violin = tmp_path / "agg" / "figures" / f"{DLIB_STUDY}_dsprites_full_mig_violin.png"
    assert violin in result["figures"]
    with Image.open(violin) as image:  # one panel per model: beta_vae, DIP-VAE-I, -II
        assert image.size[0] > 2 * image.size[1]


def test_a_finished_job_without_mig_stops_the_aggregator_not_read_as_unfinished(
        tmp_path: Path) -> None:
    import shutil

    from splitenc_plugin.results.load import NoMigError, load_results

    _fake_study_job(tmp_path, 0, 0, 0.10, 50.0)
    # Run with --metrics that left MIG of the sampled representation out.
    job = _fake_study_job(tmp_path, 1, 1, 0.20, 48.0)
    shutil.rmtree(job / "metrics" / "sampled" / "mig")
    (job / "metrics" / "mean" / "beta_vae_sklearn").mkdir()
    with pytest.raises(NoMigError, match="sampled"):
        load_results(tmp_path)
    proc = run_script("splitenc_aggregate", str(tmp_path), "--no_visualize")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(job) in proc.stderr and "mean/beta_vae_sklearn" in proc.stderr
    assert "--metrics" in proc.stderr and "--study" in proc.stderr
    assert not (tmp_path / "summary.md").exists()


def test_a_study_with_and_without_a_fragment_pairs_in_the_differences_table(
        tmp_path: Path) -> None:
    import shutil

    from splitenc_plugin.results.aggregate import (
        aggregate,
        claim_verdicts,
        difference_table,
        load_results,
        planned_runs,
        summarize,
    )

    # The same models (0, 1: beta 1; 50, 51: beta 2), run plain (in
    # unsupervised_study_v1/) and with split_encoder.gin (beside it, in
    # unsupervised_study_v1+split_encoder/). With the fragment every run's MIG
    # is 0.25 higher and its reconstruction loss 10 lower.
    runs = tmp_path / "runs"
    for num, seed, beta, mig, recon in [(0, 0, 1.0, 0.10, 50.0), (1, 1, 1.0, 0.20, 40.0),
                                        (50, 0, 2.0, 0.30, 45.0), (51, 1, 2.0, 0.40, 35.0)]:
        _fake_study_job(runs, num, seed, mig, recon, strength=("vae.beta", beta))
        _fake_study_job(runs, num, seed, mig + 0.25, recon - 10.0,
                        strength=("vae.beta", beta), fragments=(SPLIT_FRAGMENT,))

    frame, _ = load_results(runs)
    assert list(frame.columns) == [*COLUMNS, "gin_configs", "model.name",
                                   "decoder.decoder_fn", "vae.beta"]
    fragment = "split_encoder.gin@" + "ab" * 6
    assert set(frame["study"]) == {DLIB_STUDY}  # the job's study, not its directory
    assert sorted(set(frame["gin_configs"])) == ["none", fragment]
    cells, diffs = summarize(frame)
    assert len(cells) == 4 and set(cells["n"]) == {2}
    rows = {d["vae.beta"]: d for d in diffs.to_dict("records")}
    assert sorted(rows) == ["1.0", "2.0"]
    for beta, (split_seeds, plain_seeds) in {
            "1.0": ("s0 0.3500, s1 0.4500", "s0 0.1000, s1 0.2000"),
            "2.0": ("s0 0.5500, s1 0.6500", "s0 0.3000, s1 0.4000")}.items():
        row = rows[beta]
        assert row["comparison"] == "+ split_encoder.gin − no fragment" and row["n"] == "2 vs 2"
        assert row["d_mig_median"] == pytest.approx(0.25)
        assert row["d_recon_median"] == pytest.approx(-10.0)
        assert row["p_mig_higher"] == 1.0 and row["p_mig_mwu"] == pytest.approx(1 / 3)
        # split 40, 30 vs plain 50, 40 (beta 1): 1 of 4 pairs higher, one tie (half).
        assert row["p_recon_higher"] == pytest.approx(0.125)
        assert row["mig_per_seed"] == f"{split_seeds} vs {plain_seeds}"
    shown = difference_table(diffs).set_index("vae.beta")
    assert shown.loc["1.0", "gin_configs"] == "compared"
    assert shown.loc["1.0", "encoder"] == "conv_encoder → split_conv_encoder"  # the fragment's doing
    assert shown.loc["1.0", "model.name"] == "beta_vae"

    # The fragment changed the encoder from vanilla to split: the paper's split
    # claims are judged, with their chances (2 vs 2: as in the plugin's studies).
    verdicts = {(v["vae.beta"], v["claim"]): (v["verdict"], v["chance_hits"], v["relabellings"])
                for v in claim_verdicts(diffs).to_dict("records")}
    assert verdicts == {
        (beta, claim): result for beta in ("1.0", "2.0") for claim, result in [
            ("median MIG higher (Sec 5.2)", ("holds", 2, 6)),
            ("maximum MIG higher (Sec 5.2)", ("holds", 3, 6)),
            ("reconstruction loss lower (Sec 5.2)", ("holds", 2, 6))]}

    # The same runs in two output directories (plain, split) pair the same way.
    plain, split = tmp_path / "plain", tmp_path / "split"
    shutil.copytree(runs / DLIB_STUDY, plain / DLIB_STUDY)
    shutil.copytree(runs / f"{DLIB_STUDY}+split_encoder", split / f"{DLIB_STUDY}+split_encoder")
    _, apart = summarize(load_results([plain, split])[0])
    assert apart[["vae.beta", "comparison", "d_mig_median"]].values.tolist() == \
        diffs[["vae.beta", "comparison", "d_mig_median"]].values.tolist()
    proc = run_script("splitenc_aggregate", str(plain), str(split), "--no_visualize")
    assert proc.returncode == 2 and "pass --output_dir" in proc.stderr

    # A planned run with the fragment (model 52: beta 2, seed 2) holds back
    # the beta-2 comparison only.
    unfinished = runs / f"{DLIB_STUDY}+split_encoder" / "52"
    unfinished.mkdir()
    (unfinished / "job.json").write_text(json.dumps({"spec": {
        "study": DLIB_STUDY, "model_num": 52, "config": "dlib-config:x.gin", "steps": 100,
        "bindings": ["model.name = 'shared'", "model.model_num = 52",
                     "dataset.name = 'dsprites_full'", "encoder.encoder_fn = @conv_encoder",
                     "decoder.decoder_fn = @deconv_decoder", "model.name = 'beta_vae'",
                     "vae.beta = 2.0", "model.model = @vae()", "model.random_seed = 2",
                     "model.training_steps = 100"],
        "dataset": "dsprites_full", "model": "beta_vae", "encoder": "split_conv_encoder",
        "sigma": 0.0, "seed": 2, "gin_configs": ["/anywhere/split_encoder.gin"],
        "gin_config_digests": ["ab" * 32]}}))
    frame, left_out = load_results(runs)
    assert left_out == [unfinished]
    _, diffs = summarize(frame, planned_runs(left_out))
    waiting = {v["vae.beta"]: v["verdict"] for v in claim_verdicts(diffs).to_dict("records")}
    assert waiting == {"1.0": "holds", "2.0": "waiting for 1 unfinished run(s)"}

    # The same fragment name with other content is another cell, never pooled.
    _fake_study_job(runs, 2, 2, 0.9, 20.0, strength=("vae.beta", 1.0),
                    fragments=({"name": "split_encoder.gin", "sha256": "cd" * 32},))
    cells, diffs = summarize(load_results(runs)[0])
    assert sorted(zip(cells["gin_configs"], cells["vae.beta"], cells["n"])) == [
        ("none", "1.0", 2), ("none", "2.0", 2), (fragment, "1.0", 2), (fragment, "2.0", 2),
        ("split_encoder.gin@" + "cd" * 6, "1.0", 1)]
    # Two contents of one fragment name: the labels carry the digests. The
    # other content's cell (model 2) has no run without the fragment: no pair.
    assert diffs["comparison"].tolist() == [f"+ {fragment} − no fragment"] * 2

    # --study takes the study's runs with and without fragments.
    proc = run_script("splitenc_aggregate", str(runs), "--study", DLIB_STUDY, "--no_visualize",
                      "--output_dir", str(tmp_path / "agg"))
    assert_ok(proc)
    summary = (tmp_path / "agg" / "summary.md").read_text()
    assert "9 finished model(s)" in summary and f"+ {fragment} − no fragment" in summary
    assert sorted(p.name for p in (tmp_path / "agg" / "figures").iterdir()) == [
        f"{DLIB_STUDY}_dsprites_full_mig_violin.png",
        f"{DLIB_STUDY}_dsprites_full_mig_vs_recon.png"]
    result = aggregate([plain, split], tmp_path / "agg2", visualize=False)
    assert f"from {plain}, {split}." in result["summary"].read_text()


@pytest.mark.parametrize(("recorded", "text"), [
    ("'dummy_data'", "dummy_data"), ("1.0", "1.0"), ("@vae()", "vae"),
    ("'@conv_encoder'", "conv_encoder"),
    # However a config spelled the reference, the run joins the same cell.
    ("'@splitenc_plugin.model.encoders.split_conv_encoder'", "split_conv_encoder"),
    ("@splitenc_plugin.model.noise.correlated_noise()", "correlated_noise"),
])
def test_recorded_gin_values_read_as_their_cell_values(recorded, text) -> None:
    from splitenc_plugin.results.load import gin_value

    assert gin_value(recorded) == text


def test_the_figures_are_the_same_on_every_run(tmp_path: Path) -> None:
    # seaborn's jitter draws from numpy's global generator: seeded, so that a
    # committed figure regenerated from the same results does not change.
    import numpy as np

    from splitenc_plugin.results.aggregate import aggregate

    outputs = []
    for run in ("a", "b"):
        np.random.seed(len(outputs))  # the caller's generator state must not matter
        result = aggregate(CAMPAIGN, tmp_path / run, visualize=False)
        outputs.append({path.name: path.read_bytes() for path in result["figures"]})
    assert outputs[0] == outputs[1] and any("violin" in name for name in outputs[0])


def test_full_matrix_cells_are_compared_across_encoders_like_any_other() -> None:
    from splitenc_plugin.results.aggregate import summarize

    # A full correlation matrix (sigma NaN, "matrix") is a value of the cell:
    # split vs vanilla under it is compared like under sigma = 0.
    def row(encoder, seed, mig, sigma):
        return {"study": STUDY, "dataset": "dsprites_full", "model": "factor_vae",
                "encoder": encoder, "sigma": sigma, "steps": 100, "seed": seed,
                "mig_mean": mig, "mig_sampled": mig, "reconstruction_loss": 50.0}

    frame = _frame([row(encoder, seed, mig + shift, sigma)
                    for sigma, shift in ((np.nan, 0.0), (0.0, 0.5))
                    for encoder, migs in (("conv_encoder", (0.1, 0.2)),
                                          ("split_conv_encoder", (0.3, 0.5)))
                    for seed, mig in enumerate(migs)])
    _, diffs = summarize(frame)
    got = {("matrix" if math.isnan(d["sigma"]) else d["sigma"]): d["d_mig_median"]
           for d in diffs.to_dict("records") if d["comparison"] == "split encoder − vanilla encoder"}
    assert got == {"matrix": pytest.approx(0.4 - 0.15), 0.0: pytest.approx(0.4 - 0.15)}


def test_extra_gin_bindings_make_a_plugin_study_run_a_cell_of_its_own(tmp_path: Path) -> None:
    import shutil

    from splitenc_plugin.results.aggregate import load_results, summarize

    # Two committed seeds of campaign v2's vanilla FactorVAE; one copy is
    # relabelled as run with `--gin_bindings "factor_vae.gamma = 10.0"`, and
    # one with a binding its study makes itself (no new cell).
    study = "split_encoder_capacity_study_v1"
    source = Path(__file__).resolve().parents[1] / "docs/results/campaign_v2" / study
    for num, extra in ((0, None), (1, "factor_vae.gamma = 10.0"),
                       (2, "model.name = 'factorvae'")):
        job = tmp_path / study / str(num)
        shutil.copytree(source / str(num), job)
        if extra:
            done = json.loads((job / "done.json").read_text())
            done["identity"]["bindings"].append(extra)
            (job / "done.json").write_text(json.dumps(done))
    frame, _ = load_results(tmp_path)
    assert list(frame.columns[len(COLUMNS):len(COLUMNS) + 1]) == ["factor_vae.gamma"]
    assert frame.set_index("model_num")["factor_vae.gamma"].to_dict() == {0: "", 1: "10.0",
                                                                          2: ""}
    cells, _ = summarize(frame)
    assert sorted(zip(cells["factor_vae.gamma"], cells["n"])) == [("", 2), ("10.0", 1)]


def test_runs_made_with_extra_bindings_are_held_back_by_their_plan(tmp_path: Path) -> None:
    # Runs made with `--gin_bindings "model.eval_steps = 5"` (a cell column of
    # their own) against a plan that cannot know it: a selections line carries
    # no bindings, so the plan's runs match any value there; a started job's
    # job.json does know it, and its grid point.
    from splitenc_plugin.results.aggregate import (
        claim_verdicts,
        planned_runs,
        summarize,
        unfinished_planned_runs,
    )
    from splitenc_plugin.sweep.plan import plan_jobs

    frame = _btc_frame([0.4, 0.5], [0.1, 0.2, 0.3]).assign(**{"model.eval_steps": "5"})
    selections = tmp_path / "grid.txt"
    selections.write_text("--study split_encoder_study_v1 --datasets dsprites_full "
                          "--models beta_tc_vae --seeds 0-2\n")
    [job] = plan_jobs(STUDY, tmp_path / "out", steps=100, datasets=["dsprites_full"],
                      models=["beta_tc_vae"], encoders=["split_conv_encoder"], seeds=[2],
                      gin_bindings=["model.eval_steps = 5"])
    job.job_dir.mkdir(parents=True)
    (job.job_dir / "job.json").write_text(json.dumps({"spec": job.spec.to_dict()}))
    for planned in (planned_runs(selections=selections), planned_runs([job.job_dir])):
        _, diffs = summarize(frame, planned)
        assert {v["verdict"] for v in claim_verdicts(diffs).to_dict("records")} == {
            "waiting for 1 unfinished run(s)"}
        left = unfinished_planned_runs(frame, planned)
        assert left[["encoder", "seed"]].values.tolist() == [["split_conv_encoder", 2]]
    # The started job, run with other bindings, is not one of these cells' runs.
    other = planned_runs([job.job_dir]).assign(**{"model.eval_steps": "7"})
    _, diffs = summarize(frame, other)
    assert {v["verdict"] for v in claim_verdicts(diffs).to_dict("records")} == {"holds"}
