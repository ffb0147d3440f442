"""``splitenc_aggregate DIR``: results table, summary and the paper's figures.

Reads every finished job under ``DIR/<study>/<model_num>/`` (the layout of
``splitenc_reproduce`` and ``dlib_reproduce``) from the small JSON files dlib
writes — ``metrics/<rep>/mig/results/aggregate/evaluation.json`` holds the
model's operative training config, its training results and the MIG — so it
works on pruned jobs and on result files committed without checkpoints. It
writes, into ``DIR`` (or ``--output_dir``):

* ``results.csv`` — one row per model (:data:`COLUMNS`);
* ``summary.md`` — per cell (study, dataset, model, encoder, sigma, steps): n,
  median / IQR / max MIG, median reconstruction loss; and the differences of
  medians split - vanilla (split_encoder_study_v1) and sigma=0.9 - sigma=0
  (correlated_noise_study_v1), and the paper's claims judged on them by a
  fixed decision rule (:func:`claim_verdicts`);
* ``figures/*.png`` — MIG violins (Figs 2, 3, 5, 7), MIG vs reconstruction
  (Figs 4, 6, 8) and reconstructions + traversals of each cell's best-MIG
  model (Appendix C; made with dlib's ``visualize_model`` and
  :mod:`splitenc_plugin.traversals` from the job's ``visualizations/`` or, if
  absent, its TF-Hub module; traversals over each latent's fitted ±2σ range
  where the job has them, else dlib's [-1, 1] stills).

A job counts if it has ``done.json`` (splitenc_reproduce) or, for plain
dlib_reproduce output, MIG results for both representations; unfinished jobs
are listed and left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.job import DONE_FILE, JOB_FILE, read_done
from splitenc_plugin.study_grid import get_grid
from splitenc_plugin.traversals import FITTED_DIR

__all__ = ["COLUMNS", "PAPER_CLAIMS", "REPRESENTATIONS", "aggregate", "claim_verdicts",
           "difference_table", "figure_runs", "load_results", "main", "planned_runs", "summarize"]

REPRESENTATIONS = ("mean", "sampled")
# CSV column -> field of the MI-decomposition result (Theorem 1, Eq 8), in nats.
# The joint terms are plug-in lower / leave-one-out upper estimates; both are
# kept, with log N (the plug-in I(z;x)'s ceiling), so that a model whose
# I(z;x) nears log N shows its bracket rather than one capped number.
MI_FIELDS = {
    "mi_joint": "mi_joint",
    "mi_joint_loo": "mi_joint_loo",
    "mi_latent_sum": "mi_latent_sum",
    "mi_gap": "decomposition_gap",
    "mi_gap_loo": "decomposition_gap_loo",
    "mi_tc": "total_correlation",
    "mi_tc_loo": "total_correlation_loo",
    "mi_ci": "conditional_independence",
    "mi_log_n": "log_num_points",
}
COLUMNS = [
    "study", "model_num", "dataset", "model", "encoder", "sigma", "seed", "steps",
    "global_step", *(f"mig_{rep}" for rep in REPRESENTATIONS), "reconstruction_loss",
    *MI_FIELDS, "training_time_s", "resumed_from_steps", "job_dir",
]
CELL = ["study", "dataset", "model", "encoder", "sigma", "steps"]
_EVAL = Path("results") / "aggregate" / "evaluation.json"


def _gin_value(value) -> str:
    """A gin value as dlib stores it in JSON (``"'dummy_data'"``, ``'@vae()'``) -> text."""
    return str(value).strip().strip("'\"").removeprefix("@").removesuffix("()")


def _mi_fields(job_dir: Path) -> dict:
    """The job's MI-decomposition numbers; NaN where it was not evaluated."""
    path = job_dir / "metrics" / "mean_logvar" / "mi_decomposition_study" / _EVAL
    record = json.loads(path.read_text()) if path.is_file() else {}
    if record.get("evaluation_results.skipped"):
        record = {}
    return {column: float(record.get(f"evaluation_results.{field}", np.nan))
            for column, field in MI_FIELDS.items()}


def _sigma(cfg: dict) -> float:
    """Eq 13's sigma of a model (0 for dlib's factorized noise); NaN for a full matrix.

    A model trained with ``correlated_noise.correlation`` records
    ``correlated_noise.sigma = None``: it forms its own cells (shown as
    "matrix") and takes part in no comparison.
    """
    noise = _gin_value(cfg.get("train_config.reparameterization.noise_fn", "factorized_noise"))
    if noise != "correlated_noise":
        return 0.0
    try:
        return float(_gin_value(cfg.get("train_config.correlated_noise.sigma", "None")))
    except ValueError:
        return np.nan


def _row(study: str, job_dir: Path) -> dict | None:
    evals = {rep: job_dir / "metrics" / rep / "mig" / _EVAL for rep in REPRESENTATIONS}
    if not all(path.is_file() for path in evals.values()):
        return None
    records = {rep: json.loads(path.read_text()) for rep, path in evals.items()}
    cfg = records["mean"]
    resumed = (read_done(job_dir) or {}).get("resumed_from_steps", [])
    return {
        "study": study,
        "model_num": int(cfg.get("train_config.model.model_num", job_dir.name)),
        "dataset": _gin_value(cfg["train_config.dataset.name"]),
        "model": _gin_value(cfg["train_config.model.model"]),
        "encoder": _gin_value(cfg["train_config.encoder.encoder_fn"]),
        "sigma": _sigma(cfg),
        "seed": int(cfg["train_config.model.random_seed"]),
        "steps": int(cfg["train_config.model.training_steps"]),
        "global_step": int(cfg.get("train_results.global_step", -1)),
        **{f"mig_{rep}": float(records[rep]["evaluation_results.discrete_mig"])
           for rep in REPRESENTATIONS},
        "reconstruction_loss": float(cfg["train_results.reconstruction_loss"]),
        **_mi_fields(job_dir),
        # dlib times one training call: for a resumed job, only the last attempt.
        "training_time_s": float(cfg["train_results.elapsed_time"]) if not resumed else np.nan,
        "resumed_from_steps": " ".join(str(step) for step in resumed),
        "job_dir": str(job_dir),
    }


def load_results(directory: str | Path, study: str | None = None) -> tuple[pd.DataFrame,
                                                                            list[Path]]:
    """Reads every finished job under ``directory``.

    Args:
      directory: The runner's ``--output_directory``.
      study: Only this study (must be a plugin study); None: every study found.

    Returns:
      (one row per model with :data:`COLUMNS`, sorted by study and model_num;
      the unfinished job directories that were left out).

    Raises:
      SplitencUserError: If the directory does not exist, the study is
        unknown, or no finished job is found.
    """
    directory = Path(directory)
    if study is not None:
        get_grid(study)  # raises UnknownStudyError with the list of studies
    if not directory.is_dir():
        raise SplitencUserError(f"{directory} is not a directory; pass the --output_directory "
                                "of splitenc_reproduce (or dlib_reproduce)")
    rows, unfinished = [], []
    study_dirs = [directory / study] if study else sorted(p for p in directory.iterdir()
                                                          if p.is_dir())
    for study_dir in study_dirs:
        job_dirs = [p for p in study_dir.glob("*") if p.is_dir() and p.name.isdigit()] \
            if study_dir.is_dir() else []
        for job_dir in sorted(job_dirs, key=lambda p: int(p.name)):
            managed = (job_dir / JOB_FILE).exists() or (job_dir / DONE_FILE).exists()
            row = _row(study_dir.name, job_dir)
            if row is None or (managed and not (job_dir / DONE_FILE).exists()):
                unfinished.append(job_dir)
            else:
                rows.append(row)
    if not rows:
        what = f"of study {study} " if study else ""
        raise SplitencUserError(
            f"no finished job {what}under {directory} (expected DIR/<study>/<model_num>/"
            "metrics/mean/mig/...); run splitenc_reproduce --output_directory DIR first"
            + (f" ({len(unfinished)} unfinished job dirs found)" if unfinished else ""))
    frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(["study", "model_num"])
    return frame.reset_index(drop=True), unfinished


# A run's grid point apart from its study and steps: what matches a planned
# run to a finished one (its steps may be unknown: a --selections file does
# not say them; the study does not matter: identical configs pool).
_RUN_POINT = ["dataset", "model", "encoder", "sigma", "seed"]
PLAN_COLUMNS = ["study", *_RUN_POINT, "steps"]


def planned_runs(unfinished: Sequence[Path] = (),
                 selections: str | Path | None = None) -> pd.DataFrame:
    """Runs that were planned but have not finished, for the completeness check.

    Args:
      unfinished: Job directories :func:`load_results` left out; those with
        a ``job.json`` (splitenc_reproduce) name their grid point and steps.
      selections: A ``splitenc_reproduce --selections`` file: every job it
        plans is expected, at whatever step count the compared cells have.

    Returns:
      One row per planned run with :data:`PLAN_COLUMNS` (``steps`` NaN where
      unknown); finished ones are still included (callers match them out).

    Raises:
      SplitencUserError: If the selections file is missing or invalid.
    """
    from splitenc_plugin.runner import plan_selections, read_selections
    from splitenc_plugin.study_grid import JobSpec

    rows = []
    for job_dir in unfinished:
        try:
            spec = JobSpec.from_dict(json.loads((job_dir / JOB_FILE).read_text())["spec"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a dlib_reproduce job dir: its grid point is unknown
        rows.append({c: getattr(spec, c) for c in PLAN_COLUMNS})
    if selections is not None:
        jobs, _ = plan_selections(read_selections(selections), ".", steps=1)
        rows += [{**{c: getattr(job.spec, c) for c in PLAN_COLUMNS}, "steps": np.nan}
                 for job in jobs]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS).astype({"steps": float})


def _finishes(planned_steps: pd.Series, finished_steps) -> pd.Series:
    """Whether a run finished at ``finished_steps`` finishes planned runs of ``planned_steps``.

    A planned run whose steps are known (an unfinished job directory) is
    finished only at that step count; one from a selections file (steps NaN)
    at any. The one rule for both the verdict hold-back and the summary's
    "not finished yet" list.
    """
    return planned_steps.isna() | (planned_steps == finished_steps)


def _missing(planned: pd.DataFrame | None, arm: pd.DataFrame, config: dict) -> int:
    """How many planned seeds of one comparison arm (``config``) have not finished."""
    if planned is None or planned.empty:
        return 0
    match = np.ones(len(planned), dtype=bool)
    for column in _RUN_POINT[:-1]:  # all but the seed
        match &= (planned[column] == config[column]).to_numpy()
    match &= _finishes(planned["steps"], config["steps"]).to_numpy()
    return len(set(planned.loc[match, "seed"]) - set(arm["seed"]))


def unfinished_planned_runs(frame: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Planned runs with no finished run at their grid point (and steps, where known).

    The same match as the hold-back of :func:`summarize` (:func:`_finishes`).
    A run planned both ways is listed once, with its steps.
    """
    planned = planned.drop_duplicates(subset=[*_RUN_POINT, "steps"]).reset_index(drop=True)
    found = planned.reset_index().merge(
        frame[[*_RUN_POINT, "steps"]].rename(columns={"steps": "finished_steps"}),
        on=_RUN_POINT, how="inner")
    found = found[_finishes(found["steps"], found["finished_steps"])]
    # A job both in the selections file (steps unknown) and started (steps
    # known) is listed once, with its steps. Keyed like the dedupe above and
    # the match: by grid point, whatever the study.
    left = planned.drop(index=found["index"].unique())
    known = left["steps"].notna().to_numpy()
    started = left.loc[known, _RUN_POINT].drop_duplicates()
    also_started = left[_RUN_POINT].merge(started, how="left", indicator=True)["_merge"]
    return left[known | (also_started != "both").to_numpy()]


# What identifies a run when identical configurations pool across studies.
_POOLED_CELL = [c for c in CELL if c != "study"]
_POOLED_RUN = [*_POOLED_CELL, "seed"]


def _count_once(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each pooled run once: the copy of the first study by name."""
    return frame.sort_values("study").drop_duplicates(subset=_POOLED_RUN)


def pooled_duplicates(frame: pd.DataFrame) -> list[str]:
    """One line per run present in more than one study, which summaries count once.

    The campaign's split FactorVAE cell takes its vanilla baseline from the
    correlated-noise study; if both studies ran that configuration, the
    comparison uses the first study's run (by name) and this says which, with
    both MIG values, so that a disagreement between the copies is visible.
    """
    lines = []
    for key, group in frame.groupby(_POOLED_RUN, sort=True, dropna=False):
        if len(group) > 1:
            point = dict(zip(_POOLED_RUN, key))
            group = group.sort_values("study")
            copies = "; ".join(f"{r.study}/{r.model_num}: MIG {r.mig_mean:.4f}"
                               for r in group.itertuples())
            kept = _count_once(group)["study"].iloc[0]
            lines.append(f"{point['model']} {point['encoder']} σ={point['sigma']:g} seed "
                         f"{point['seed']} ({point['steps']} steps) finished in {len(group)} "
                         f"studies ({copies}): counted once, as {kept}'s")
    return lines


def figure_runs(frame: pd.DataFrame, study: str, dataset: str) -> pd.DataFrame:
    """The runs a study's figures on one dataset show: its own and their pooled partners.

    A cell of ``study`` is drawn beside the cell it is compared with (its
    baseline or variant in the study's comparison, e.g. the vanilla encoder
    for a split-encoder cell) even when that cell's runs were made in another
    study with the identical configuration, as :func:`summarize` pools them:
    e.g. the split study's FactorVAE runs beside the correlated-noise study's
    sigma = 0 FactorVAE. A run present in both studies is drawn once, as the
    study's own.

    Args:
      frame: :func:`load_results` rows of every study.
      study: The figure's study.
      dataset: The figure's dataset.

    Returns:
      Rows of ``frame``; borrowed rows keep their own ``study``.
    """
    from splitenc_plugin.figures import COMPARISONS

    own = frame[(frame["study"] == study) & (frame["dataset"] == dataset)]
    if study not in COMPARISONS or own.empty:
        return own
    column, base, variant, _ = COMPARISONS[study]
    config = _POOLED_CELL
    partners = own[own[column].isin([base, variant])][config].drop_duplicates()
    partners[column] = partners[column].map({base: variant, variant: base})
    others = frame[frame["study"] != study].merge(partners, on=config)
    own_runs = set(own[_POOLED_RUN].itertuples(index=False, name=None))
    others = _count_once(others)
    others = others[[run not in own_runs
                     for run in others[_POOLED_RUN].itertuples(index=False, name=None)]]
    return pd.concat([own, others], ignore_index=True)


def _iqr(values: pd.Series) -> float:
    return float(np.percentile(values, 75) - np.percentile(values, 25))


def summarize(frame: pd.DataFrame,
              planned: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell statistics and the differences of medians between compared cells.

    Args:
      frame: :func:`load_results` rows.
      planned: :func:`planned_runs`: a comparison with a planned run of
        either arm unfinished gets no verdict from :func:`claim_verdicts`.

    Returns:
      (cells, differences). ``cells``: one row per :data:`CELL` with n,
      ``mig_median`` / ``mig_iqr`` / ``mig_max`` (mean representation),
      ``mig_sampled_median`` and ``recon_median``. ``differences``: for every
      pair of configurations that differ only in a compared column (encoder:
      split - vanilla; sigma: 0.9 - 0), the variant's medians minus the
      baseline's, pooling identical configurations across studies.
    """
    from splitenc_plugin.figures import COMPARISONS

    # dropna=False: a full-matrix model's NaN sigma is a cell of its own.
    cells = frame.groupby(CELL, sort=True, dropna=False).agg(
        n=("mig_mean", "size"), mig_median=("mig_mean", "median"),
        mig_iqr=("mig_mean", _iqr), mig_max=("mig_mean", "max"),
        mig_sampled_median=("mig_sampled", "median"),
        recon_median=("reconstruction_loss", "median")).reset_index()
    # Differences pool identical configurations across studies: e.g. the
    # correlated-noise study's sigma = 0 FactorVAE is the very run the split
    # study's vanilla FactorVAE cell needs (same gin config, seed and data).
    # A configuration run in both studies counts once.
    config = _POOLED_CELL
    runs = _count_once(frame).sort_values("seed")
    pooled = runs.groupby(config, sort=True, dropna=False).agg(
        n=("mig_mean", "size"), mig_median=("mig_mean", "median"),
        mig_max=("mig_mean", "max"), mig_sampled_median=("mig_sampled", "median"),
        recon_median=("reconstruction_loss", "median")).reset_index()
    diffs = []
    for column, base, variant, labels in COMPARISONS.values():
        others = [c for c in config if c != column]
        for key, group in pooled.groupby(others, sort=True):
            by_value = {row[column]: row for _, row in group.iterrows()}
            if base in by_value and variant in by_value:
                b, v = by_value[base], by_value[variant]
                arm = {value: runs[(runs[others] == pd.Series(dict(zip(others, key)))).all(axis=1)
                                   & (runs[column] == value)] for value in (base, variant)}
                diffs.append({
                    **dict(zip(others, key)),
                    "comparison": f"{labels[variant]} − {labels[base]}",
                    "n": f"{v['n']} vs {b['n']}",
                    "d_mig_median": v["mig_median"] - b["mig_median"],
                    "d_mig_sampled_median": v["mig_sampled_median"] - b["mig_sampled_median"],
                    "d_recon_median": v["recon_median"] - b["recon_median"],
                    **_separation(arm[variant]["mig_mean"], arm[base]["mig_mean"], "mig"),
                    **_separation(arm[variant]["reconstruction_loss"],
                                  arm[base]["reconstruction_loss"], "recon"),
                    "mig_per_seed": f"{_per_seed(arm[variant])} vs {_per_seed(arm[base])}",
                    # For claim_verdicts; not shown in the differences table.
                    "_compared": column, "_n_variant": v["n"], "_n_baseline": b["n"],
                    "_missing": sum(_missing(planned, arm[value], {
                        **dict(zip(others, key)), column: value}) for value in (base, variant)),
                    "_mig_median_variant": v["mig_median"],
                    "_mig_median_baseline": b["mig_median"],
                    "_d_mig_max": v["mig_max"] - b["mig_max"],
                })
    return cells, pd.DataFrame(diffs)


_DIFFERENCE_HEADERS = {
    "d_mig_median": "Δ MIG median", "d_mig_sampled_median": "Δ MIG (sampled) median",
    "d_recon_median": "Δ recon. loss median", "p_mig_higher": "P(MIG higher)",
    "p_mig_mwu": "MWU p (MIG)", "p_recon_higher": "P(recon. higher)",
    "p_recon_mwu": "MWU p (recon.)", "mig_per_seed": "MIG per seed (variant vs baseline)"}


def difference_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize`'s differences as ``summary.md`` shows them.

    The configuration columns come first, in :data:`CELL` order; the column a
    row compares (e.g. ``encoder`` for split - vanilla) reads "compared" rather
    than being left empty (which would print as "nan", or as "matrix" for sigma).
    """
    if diffs.empty:
        return diffs
    table = diffs.astype(object)
    for index, compared in diffs["_compared"].items():
        table.loc[index, compared] = "compared"
    config = [c for c in CELL if c in table.columns]
    rest = [c for c in table.columns if c not in config and not c.startswith("_")]
    return table[config + rest].rename(columns=_DIFFERENCE_HEADERS)


# The campaign's decision rule (docs/results/campaign/README.md, fixed before
# its results): P(variant higher) at or beyond 0.75 (or at or below 0.25) counts
# as a separation of two small samples; no verdict until every planned run of
# both cells has finished, nor with fewer than 2 runs per cell.
SEPARATED = 0.75
MIN_RUNS = 2


def _directional(d_median: float, p_higher: float, higher: bool) -> str:
    """Verdict on "the variant's value is higher (lower)": medians and separation agree."""
    sign, p_claimed = (1, p_higher) if higher else (-1, 1 - p_higher)
    if p_claimed >= SEPARATED and sign * d_median > 0:
        return "holds"
    if p_claimed <= 1 - SEPARATED and sign * d_median < 0:
        return "does not hold"
    return "inconclusive"


def _median_mig_higher(d: dict) -> str:
    return _directional(d["d_mig_median"], d["p_mig_higher"], higher=True)


def _max_mig_higher(d: dict) -> str:
    return "holds" if d["_d_mig_max"] > 0 else \
        "does not hold" if d["_d_mig_max"] < 0 else "inconclusive"


def _recon_lower(d: dict) -> str:
    return _directional(d["d_recon_median"], d["p_recon_higher"], higher=False)


def _mig_dramatically_lower(d: dict) -> str:
    """Sec 5.1's "dramatic decline": every variant run below every baseline run
    and the variant's median MIG at most half the baseline's."""
    if d["p_mig_higher"] == 0 and \
            d["_mig_median_variant"] <= 0.5 * d["_mig_median_baseline"]:
        return "holds"
    verdict = _directional(d["d_mig_median"], d["p_mig_higher"], higher=False)
    return "direction holds, magnitude does not" if verdict == "holds" else verdict


# Compared column -> the paper's claims about the variant (Sec 5.1, 5.2) and
# how each is judged from a row of summarize()'s differences.
PAPER_CLAIMS: dict[str, tuple[tuple[str, Callable[[dict], str]], ...]] = {
    "encoder": (("median MIG higher (Sec 5.2)", _median_mig_higher),
                ("maximum MIG higher (Sec 5.2)", _max_mig_higher),
                ("reconstruction loss lower (Sec 5.2)", _recon_lower)),
    "sigma": (("MIG dramatically lower (Sec 5.1)", _mig_dramatically_lower),),
}


def claim_verdicts(diffs: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims judged on each comparison of :func:`summarize`.

    Args:
      diffs: The differences frame of :func:`summarize`.

    Returns:
      One row per (comparison, claim): dataset, model, steps, comparison, n,
      claim, verdict and the evidence it rests on (with the exact
      Mann-Whitney p beside it). The verdict is "holds", "does not hold",
      "inconclusive" or "direction holds, magnitude does not" once every
      planned run of both cells has finished (the decision rule); else
      "waiting for K unfinished run(s)", or "too few runs" with fewer than
      :data:`MIN_RUNS` runs in a cell.
    """
    rows = []
    for d in diffs.to_dict("records"):
        missing = d.get("_missing", 0)
        for claim, judge in PAPER_CLAIMS.get(d["_compared"], ()):
            if missing:
                verdict = f"waiting for {missing} unfinished run(s)"
            elif min(d["_n_variant"], d["_n_baseline"]) < MIN_RUNS:
                verdict = f"too few runs (< {MIN_RUNS} per cell)"
            else:
                verdict = judge(d)
            rows.append({
                "dataset": d["dataset"], "model": d["model"], "steps": d["steps"],
                "comparison": d["comparison"], "n": d["n"], "claim": claim,
                "verdict": verdict,
                "evidence": (f"Δ median MIG {d['d_mig_median']:+.4f}, P(MIG higher) "
                             f"{d['p_mig_higher']:.2f} (MWU p {d['p_mig_mwu']:.2f}), "
                             f"Δ max MIG {d['_d_mig_max']:+.4f}, "
                             f"Δ median recon. {d['d_recon_median']:+.2f}, "
                             f"P(recon. higher) {d['p_recon_higher']:.2f} "
                             f"(MWU p {d['p_recon_mwu']:.2f})"),
            })
    return pd.DataFrame(rows)


def _per_seed(runs: pd.DataFrame) -> str:
    """'s0 0.1234, s1 0.2345': a cell's MIG (mean representation) by seed."""
    return ", ".join(f"s{seed} {mig:.4f}" for seed, mig in zip(runs["seed"], runs["mig_mean"]))


def _separation(variant: pd.Series, baseline: pd.Series, name: str) -> dict[str, float]:
    """How cleanly two small samples separate: P(variant > baseline) and an exact test.

    Returns:
      ``p_<name>_higher``: the share of (variant, baseline) pairs where the
      variant is higher, ties counting half (the Mann-Whitney U / (n1 n2));
      ``p_<name>_mwu``: the exact two-sided Mann-Whitney p-value (NaN with
      fewer than 2 runs per arm). With 3 vs 3 runs the smallest possible
      p-value is 0.1: such samples cannot reach conventional significance.
    """
    from scipy.stats import mannwhitneyu

    v, b = np.asarray(variant, dtype=float), np.asarray(baseline, dtype=float)
    higher = float(np.mean((v[:, None] > b[None, :]) + 0.5 * (v[:, None] == b[None, :])))
    p_value = float(mannwhitneyu(v, b, alternative="two-sided", method="exact").pvalue) \
        if min(len(v), len(b)) >= 2 else np.nan
    return {f"p_{name}_higher": higher, f"p_{name}_mwu": p_value}


def _fmt(column: str, value) -> str:
    if isinstance(value, float):
        if column == "sigma":
            return "matrix" if np.isnan(value) else f"{value:g}"
        # E.g. a Mann-Whitney p with one run in a cell: there is no test.
        return "—" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def _markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_none_\n"
    header = "| " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        cells = [_fmt(column, value) for column, value in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _visualize(jobs: list[Path], cache: Path) -> dict[Path, Path]:
    """Visualization dirs (dlib visualize_model output) for jobs, making missing ones.

    Uses ``JOB/visualizations`` when the job made it (``--visualize``);
    otherwise runs dlib's ``visualize_model.visualize`` (without the GIF
    animations) and :func:`~splitenc_plugin.traversals.visualize_fitted_traversals`
    on the job's TF-Hub module into ``cache``, in one subprocess.
    Jobs with neither (pruned) are left out.
    """
    found, todo = {}, []
    for job in jobs:
        cached = cache / f"{job.parent.name}-{job.name}"
        if (job / "visualizations" / "reconstructions" / "reconstructions.jpg").is_file():
            found[job] = job / "visualizations"
        elif ((cached / "reconstructions" / "reconstructions.jpg").is_file()
              and _read_text(cached / _CACHE_STAMP) == _model_stamp(job)):
            found[job] = cached
        elif (job / "model" / "tfhub").is_dir():
            todo.append(job)
    if todo:
        # One model's failure (e.g. a corrupt module) must not cost the others
        # their pictures, nor a fitted-traversal failure the model's dlib stills.
        code = ("import os, shutil, sys, traceback\n"
                "from disentanglement_lib.visualize import visualize_model\n"
                "from splitenc_plugin.traversals import FITTED_DIR, visualize_fitted_traversals\n"
                "args, failed = sys.argv[1:], False\n"
                "for model_dir, out in zip(args[::2], args[1::2]):\n"
                "    shutil.rmtree(out, ignore_errors=True)\n"
                "    for make in (lambda: visualize_model.visualize(\n"
                "                     model_dir, out, num_animations=0),\n"
                "                 lambda: visualize_fitted_traversals(\n"
                "                     model_dir, os.path.join(out, FITTED_DIR))):\n"
                "        try:\n"
                "            make()\n"
                "        except Exception:\n"
                "            failed = True\n"
                "            print(f'{model_dir}:', traceback.format_exc(limit=3),\n"
                "                  file=sys.stderr)\n"
                "            break\n"
                "sys.exit(1 if failed else 0)\n")
        args = []
        for job in todo:
            args += [str(job / "model"), str(cache / f"{job.parent.name}-{job.name}")]
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            print("warning: visualizing some models failed (Appendix C leaves them out "
                  f"or shows dlib's [-1, 1] traversals):\n{proc.stderr[-3000:]}",
                  file=sys.stderr)
        for job in todo:
            out = cache / f"{job.parent.name}-{job.name}"
            if (out / "reconstructions" / "reconstructions.jpg").is_file():
                (out / _CACHE_STAMP).write_text(_model_stamp(job))
                found[job] = out
    return found


# Which model a cached visualization was made from: a job redone since (same
# directory, new model) must not reuse the old model's pictures.
_CACHE_STAMP = "model_stamp.txt"


def _model_stamp(job: Path) -> str:
    """Identifies the model a job directory holds: its completion time and TF-Hub module."""
    done = read_done(job) or {}
    try:
        module = (job / "model" / "tfhub" / "saved_model.pb").stat().st_mtime_ns
    except OSError:
        module = None
    return f"{done.get('finished_at')} {module}"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def aggregate(directory: str | Path, output_dir: str | Path | None = None,
              study: str | None = None, visualize: bool = True,
              selections: str | Path | None = None) -> dict:
    """Writes results.csv, summary.md and figures/*.png for the jobs under ``directory``.

    Args:
      directory: The runner's ``--output_directory``.
      output_dir: Where to write (default: ``directory``).
      study: Only this study (None: all found).
      visualize: Also make the Appendix C figures (runs dlib visualize_model
        for best-MIG models that have no visualizations yet).
      selections: The ``--selections`` file the runs were made with: its
        jobs that have not finished (even those never started) hold back the
        verdicts of the comparisons they belong to. Without it, only the
        unfinished job directories found do.

    Returns:
      A dict with ``csv``, ``summary`` (paths), ``figures`` (list of paths),
      ``table`` (the summary markdown), ``frame`` and ``unfinished``.
    """
    from splitenc_plugin import figures

    frame, unfinished = load_results(directory, study)
    planned = planned_runs(unfinished, selections)
    if study is not None:
        planned = planned[planned["study"] == study]
    out = Path(output_dir) if output_dir is not None else Path(directory)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    frame.to_csv(csv_path, index=False)

    cells, diffs = summarize(frame, planned)
    written: list[Path] = []
    appendix_notes = []
    for study_name, dataset in frame[["study", "dataset"]].drop_duplicates().sort_values(
            ["study", "dataset"]).itertuples(index=False):
        group = figure_runs(frame, study_name, dataset)
        stem = f"{study_name}_{dataset}"
        written.append(figures.mig_violins(group, study_name, dataset,
                                           fig_dir / f"{stem}_mig_violin.png"))
        written.append(figures.mig_vs_reconstruction(group, study_name, dataset,
                                                     fig_dir / f"{stem}_mig_vs_recon.png"))
        if not visualize:
            continue
        # Per pooled cell: a cell with runs in two studies gets one panel.
        best = group.loc[group.groupby(_POOLED_CELL, dropna=False)["mig_mean"].idxmax()]
        vis = _visualize([Path(p) for p in best["job_dir"]], fig_dir / "visualizations")
        panels = []
        for _, row in best.iterrows():
            path = vis.get(Path(row["job_dir"]))
            run = f"{row['study']}/{row['model_num']}"
            model = f"model {row['model_num']}" if row["study"] == study_name else run
            # Two lines: a borrowed cell's "<study>/<num>" is too long for one.
            label = (f"{row['model']}, {row['encoder']}, σ={row['sigma']:g}\n{model} "
                     f"(seed {row['seed']}), MIG {row['mig_mean']:.3f}")
            if path is None:
                appendix_notes.append(f"{run}: no visualizations "
                                      "and no TF-Hub module (pruned): left out of Appendix C")
                continue
            fitted = path / FITTED_DIR / "traversals0.jpg"
            traversal, caption = ((fitted, "latent traversals (column: latent, row: its fitted ±2σ range)")
                                  if fitted.is_file() else
                                  (path / "traversals" / "traversals0.jpg",
                                   "latent traversals (column: latent, row: value in [-1, 1])"))
            panels.append((label, path / "reconstructions" / "reconstructions.jpg", traversal, caption))
        if panels:
            written.append(figures.appendix_c(panels, study_name, dataset,
                                              fig_dir / f"{stem}_appendix_c.png"))

    cell_table = cells.rename(columns={"mig_median": "MIG median", "mig_iqr": "MIG IQR",
                                       "mig_max": "MIG max",
                                       "mig_sampled_median": "MIG (sampled) median",
                                       "recon_median": "recon. loss median"})
    verdicts = claim_verdicts(diffs) if not diffs.empty else pd.DataFrame()
    diff_table = difference_table(diffs)
    table = ("## Per cell (MIG of the mean representation unless noted)\n\n"
             + _markdown(cell_table)
             + "\n## Differences of medians (variant − baseline)\n\n"
             + "P(… higher): share of (variant, baseline) run pairs where the variant's value "
               "is higher (ties count half; 0.5 = no separation). MWU p: exact two-sided "
               "Mann-Whitney p-value.\n\n" + _markdown(diff_table)
             + "\n## The paper's claims at this budget\n\n"
             + f"Decision rule: a claim about the median holds when the median difference "
               f"has the paper's sign and P(variant higher) is >= {SEPARATED} (or <= "
               f"{1 - SEPARATED:g} for 'lower'), does not hold when both point the other "
               "way, and is inconclusive otherwise; 'dramatically lower' needs every "
               "variant run below every baseline run and a median at most half the "
               "baseline's; no verdict while a planned run of either cell is unfinished, "
               f"nor with fewer than {MIN_RUNS} runs in a cell "
               "(docs/results/campaign/README.md).\n\n" + _markdown(verdicts))
    notes = [f"{len(frame)} finished model(s) from {Path(directory)}."]
    if unfinished:
        notes.append(f"{len(unfinished)} unfinished job(s) left out: "
                     + ", ".join(str(p) for p in unfinished[:10]))
    notes += pooled_duplicates(frame)
    waiting = unfinished_planned_runs(frame, planned)
    if len(waiting):
        notes.append(f"{len(waiting)} planned run(s) not finished yet: "
                     + ", ".join(f"{r.study} {r.model} {r.encoder} σ={r.sigma:g} seed {r.seed}"
                                 for r in waiting.itertuples()))
    notes += appendix_notes
    summary = ("# splitenc results summary\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"
               + table + "\n## Figures\n\n"
               + "\n".join(f"- `{p.relative_to(out)}`" for p in written) + "\n")
    summary_path = out / "summary.md"
    summary_path.write_text(summary)
    return {"csv": csv_path, "summary": summary_path, "figures": written, "table": table,
            "frame": frame, "unfinished": unfinished}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``splitenc_aggregate``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="splitenc_aggregate",
        description="Aggregate splitenc_reproduce / dlib_reproduce results: results.csv, "
                    "summary.md and the paper's figures.")
    parser.add_argument("directory", help="the --output_directory of splitenc_reproduce")
    parser.add_argument("--output_dir", help="where to write (default: DIRECTORY)")
    parser.add_argument("--study", help="only this study (default: every study found)")
    parser.add_argument("--no_visualize", action="store_true",
                        help="skip the Appendix C reconstructions/traversals figures")
    parser.add_argument("--selections", metavar="FILE",
                        help="the --selections file of splitenc_reproduce: no verdict on a "
                             "comparison until all of its planned jobs have finished")
    args = parser.parse_args(argv)
    try:
        result = aggregate(args.directory, args.output_dir, args.study,
                           visualize=not args.no_visualize, selections=args.selections)
    except SplitencUserError as exc:
        print(f"splitenc_aggregate: error: {exc}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"wrote {result['csv']}\nwrote {result['summary']}")
    for path in result["figures"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
