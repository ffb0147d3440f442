"""``splitenc_aggregate DIR``: results table, summary and the paper's figures.

Reads every finished job under ``DIR/<study>/<model_num>/`` (the layout of
``splitenc_reproduce`` and ``dlib_reproduce``) from the small JSON files dlib
writes — ``metrics/<rep>/mig/results/aggregate/evaluation.json`` holds the
model's operative training config, its training results and the MIG — so it
works on pruned jobs and on result files committed without checkpoints. It
writes, into ``DIR`` (or ``--output_dir``):

* ``results.csv`` — one row per model (:data:`COLUMNS`), with the data the
  model trained on (``data``, ``data_fingerprint``: what the job recorded in
  ``done.json["data"]``, or the documented legacy rule,
  :func:`splitenc_plugin.data.fingerprint.recorded_identity`), then one
  ``gap_<factor>`` column per factor of the jobs' per-factor MIG
  (:func:`load_factor_mig`, :func:`gap_column`);
* ``summary.md`` — the data versions present; per cell (:data:`CELL`: study,
  dataset, data fingerprint, model, encoder, sigma, steps — runs on two data
  versions never share a cell, a comparison or a figure): n, median / IQR /
  max MIG, median reconstruction loss; the differences of medians of each
  compared pair (``figures.comparison_pairs``, e.g. split - vanilla and
  sigma=0.9 - sigma=0), and the paper's claims judged on them by a fixed
  decision rule (:func:`claim_verdicts`), each verdict with its chance if the
  two cells' runs were exchangeable; the MI decomposition as intervals per
  cell and whether each quantity separates the compared cells
  (:func:`mi_intervals`, :func:`mi_separation`); the median gap per cell and
  factor (:func:`factor_gap_medians`); how many jobs have no learning curves;
* ``figures/*.png`` — MIG violins (Figs 2, 3, 5, 7), MIG vs reconstruction
  (Figs 4, 6, 8) and reconstructions + traversals of each cell's best-MIG
  model (Appendix C; made with dlib's ``visualize_model`` and
  :mod:`splitenc_plugin.results.traversals` from the job's ``visualizations/`` or, if
  absent, its TF-Hub module; traversals over each latent's fitted ±2σ range
  where the job has them, else dlib's [-1, 1] stills; each column labelled with
  the factor that latent is most informative about, :func:`latent_factor_labels`),
  per-run factor × latent normalised-MI heatmaps (:func:`factor_mi_panels`) and
  learning curves per cell (:func:`run_curves`, :func:`cell_curves`).

A job counts if it has ``done.json`` (splitenc_reproduce) or, for plain
dlib_reproduce output, MIG results for both representations; unfinished jobs
are listed and left out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.data.dsprites import LATENT_NAMES, LATENT_SIZES
from splitenc_plugin.data.fingerprint import recorded_identity
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.results.learning_curves import CURVES_FILE
from splitenc_plugin.results.traversals import (
    FITTED_DIR,
    latent_labels,
    most_informative_factors,
)
from splitenc_plugin.studies.grid import METRIC_REPRESENTATIONS, get_grid
from splitenc_plugin.sweep.job import CHECKPOINT_DIR, DONE_FILE, JOB_FILE, read_done

__all__ = ["CELL", "COLUMNS", "CURVE_QUANTITIES", "DISTINCT_IMAGES", "FACTOR_NAMES",
           "GAP_PREFIX", "MI_QUANTITIES", "PAPER_CLAIMS", "REPRESENTATIONS", "aggregate",
           "cell_curves", "claim_verdicts", "difference_table", "entropy_cap",
           "factor_gap_medians", "factor_mi_panels", "factor_names", "figure_runs",
           "gap_column", "gap_columns", "latent_factor_labels", "load_factor_mig",
           "load_results", "main", "mi_intervals", "mi_separation", "planned_runs",
           "run_curves", "summarize"]

REPRESENTATIONS = ("mean", "sampled")
# CSV column -> field of the MI-decomposition result (Theorem 1, Eq 8), in nats.
# The joint terms are plug-in lower / leave-one-out upper estimates; both are
# kept, with log N (the plug-in I(z;x)'s ceiling), so that a model whose
# I(z;x) nears log N shows its bracket rather than one capped number.
MI_FIELDS = {
    "mi_joint": "mi_joint",
    "mi_joint_loo": "mi_joint_loo",
    "mi_latent_sum": "mi_latent_sum",
    "mi_latent_sum_loo": "mi_latent_sum_loo",
    "mi_gap": "decomposition_gap",
    "mi_gap_loo": "decomposition_gap_loo",
    "mi_tc": "total_correlation",
    "mi_tc_loo": "total_correlation_loo",
    "mi_ci": "conditional_independence",
    "mi_log_n": "log_num_points",
}
# ``data`` / ``data_fingerprint``: the label and fingerprint of the data the run
# trained on (:func:`splitenc_plugin.data.fingerprint.recorded_identity`).
COLUMNS = [
    "study", "model_num", "dataset", "data", "data_fingerprint", "model", "encoder", "sigma",
    "seed", "steps",
    "global_step", *(f"mig_{rep}" for rep in REPRESENTATIONS), "reconstruction_loss",
    *MI_FIELDS, "training_time_s", "resumed_from_steps", "job_dir",
]
# A cell: runs that pool. The data fingerprint is part of it, so runs made on two
# versions of a data set are never pooled, compared with each other or drawn together.
CELL = ["study", "dataset", "data_fingerprint", "model", "encoder", "sigma", "steps"]
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
    done = read_done(job_dir) or {}
    resumed = done.get("resumed_from_steps", [])
    # What the job recorded, or (finished before data fingerprints) the legacy rule.
    data = recorded_identity(done)
    return {
        "study": study,
        "model_num": int(cfg.get("train_config.model.model_num", job_dir.name)),
        "dataset": _gin_value(cfg["train_config.dataset.name"]),
        "data": data["label"],
        "data_fingerprint": data["fingerprint"],
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
        # One gap_<factor> column per factor of the job's factor_mig (none without it).
        **_factor_gaps(job_dir, _gin_value(cfg["train_config.dataset.name"])),
    }


def load_results(directory: str | Path, study: str | None = None) -> tuple[pd.DataFrame,
                                                                            list[Path]]:
    """Reads every finished job under ``directory``.

    Args:
      directory: The runner's ``--output_directory``.
      study: Only this study (must be a plugin study); None: every study found.

    Returns:
      (one row per model with :data:`COLUMNS`, then one ``gap_<factor>``
      column (:func:`gap_column`) per factor of every job's factor_mig
      results, datasets by name, each dataset's factors in order (NaN for
      runs without factor_mig or of another dataset; no such column when no
      job has factor_mig); sorted by study and model_num; the unfinished job
      directories that were left out).

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
    gaps = dict.fromkeys(column for row in sorted(rows, key=lambda r: r["dataset"])
                         for column in row if column.startswith(GAP_PREFIX))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *gaps]).sort_values(["study", "model_num"])
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
    from splitenc_plugin.studies.grid import JobSpec
    from splitenc_plugin.sweep.runner import plan_selections, read_selections

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


def figure_runs(frame: pd.DataFrame, study: str, dataset: str,
                data_fingerprint: str | None = None) -> pd.DataFrame:
    """The runs a study's figures on one dataset show: its own and their pooled partners.

    A cell of ``study`` is drawn beside the cell it is compared with (its
    baseline or variant in the study's comparison, e.g. the vanilla encoder
    for a split-encoder cell) even when that cell's runs were made in another
    study with the identical configuration, as :func:`summarize` pools them:
    e.g. the split study's FactorVAE runs beside the correlated-noise study's
    sigma = 0 FactorVAE. A run present in both studies is drawn once, as the
    study's own. Partners are matched on the whole pooled cell, data
    fingerprint included: a cell is never drawn beside runs on other data.

    Args:
      frame: :func:`load_results` rows of every study.
      study: The figure's study.
      dataset: The figure's dataset.
      data_fingerprint: Only the study's runs on this data version (None: all;
        :func:`aggregate` draws one figure set per version).

    Returns:
      Rows of ``frame``; borrowed rows keep their own ``study``.
    """
    from splitenc_plugin.results.figures import COMPARISONS

    own = frame[(frame["study"] == study) & (frame["dataset"] == dataset)]
    if data_fingerprint is not None:
        own = own[own["data_fingerprint"] == data_fingerprint]
    if study not in COMPARISONS or own.empty:
        return own
    column, base, variants, _ = COMPARISONS[study]
    config = _POOLED_CELL
    cells = own[config].drop_duplicates()
    # A variant's partner is the baseline; the baseline's are the variants.
    pairs = [(base, v) for v in variants] + [(v, base) for v in variants]
    partners = pd.concat([cells[cells[column] == value].assign(**{column: partner})
                          for value, partner in pairs]).drop_duplicates()
    others = frame[frame["study"] != study].merge(partners, on=config)
    own_runs = set(own[_POOLED_RUN].itertuples(index=False, name=None))
    others = _count_once(others)
    others = others[[run not in own_runs
                     for run in others[_POOLED_RUN].itertuples(index=False, name=None)]]
    return pd.concat([own, others], ignore_index=True)


def _iqr(values: pd.Series) -> float:
    return float(np.percentile(values, 75) - np.percentile(values, 25))


# ---------------------------------------------------------------------------
# The MI decomposition as intervals.
# ---------------------------------------------------------------------------

# How many distinct images each dataset's observations are drawn from, where
# that is a fixed, finite set: H(x) <= log of it bounds every I(.;x). Datasets
# whose observations are drawn afresh (random colour, noise or Scream patch;
# dummy_data's random pixels) have no such bound.
DISTINCT_IMAGES: dict[str, int] = {
    "dsprites_full": math.prod(LATENT_SIZES),  # 737,280
    "dsprites_noshape": math.prod(LATENT_SIZES),  # shape is drawn, not dropped
    "smallnorb": 48_600,
    "cars3d": 183 * 4 * 24,
    "shapes3d": 480_000,
    "mpi3d_toy": 460_800,
    "mpi3d_realistic": 460_800,
    "mpi3d_real": 1_036_800,
}

# Quantity -> (its label, the estimate that bounds it from below, from above).
# The plug-in estimate of I(z;x) (and of each I(z_j;x)) includes each sample's
# own encoding in the mixture q(z): a lower bound; the leave-one-out one an
# upper bound (README, MI-decomposition estimator). TC = E log q(z) - ... and
# the gap = sum_j I(z_j;x) - I(z;x) take q(z) with the other sign, so for them
# the leave-one-out estimate is the lower bound and the plug-in the upper one.
# CI = -1/2 log det Sigma is exact.
MI_QUANTITIES: dict[str, tuple[str, str, str]] = {
    "joint": ("I(z;x)", "mi_joint", "mi_joint_loo"),
    "latent_sum": ("Σ_j I(z_j;x)", "mi_latent_sum", "mi_latent_sum_loo"),
    "gap": ("gap", "mi_gap_loo", "mi_gap"),
    "tc": ("TC", "mi_tc_loo", "mi_tc"),
    "ci": ("CI", "mi_ci", "mi_ci"),
}


def entropy_cap(dataset: str) -> float:
    """log(number of distinct images) of a dataset, an upper bound on H(x) >= I(z;x).

    Returns:
      ``log(DISTINCT_IMAGES[dataset])`` (log 737,280 = 13.51 nats for
      dSprites); ``inf`` for a dataset not in :data:`DISTINCT_IMAGES`
      (dummy_data, and the dSprites variants that draw colour, noise or a
      Scream patch per image).
    """
    count = DISTINCT_IMAGES.get(dataset)
    return math.log(count) if count else math.inf


def _clip(values, low, high) -> np.ndarray:
    """``values`` clipped into [low, high]; NaN values stay NaN, NaN limits do not clip."""
    values = np.asarray(values, dtype=float)
    clipped = np.fmin(np.fmax(values, low), high)
    return np.where(np.isnan(values), np.nan, clipped)


def mi_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run, the interval [lower, upper] (nats) of each MI-decomposition quantity.

    Each quantity of :data:`MI_QUANTITIES` lies between its lower- and
    upper-bound estimates, each clipped into what the quantity can be at all
    (H = :func:`entropy_cap` of the run's dataset; Theorem 1: gap = Σ_j
    I(z_j;x) - I(z;x) and TC = gap + CI):

    * I(z;x) in [0, H];
    * Σ_j I(z_j;x) >= 0;
    * gap in [max(-CI, Σ_j I(z_j;x)'s lower bound - H), its upper bound];
    * TC in [max(0, Σ_j I(z_j;x)'s lower bound - H + CI), its upper bound + CI].

    log N (``mi_log_n``) caps the plug-in estimate, not the quantity: I(z;x)
    can exceed log N (README: 11.87 nats at log N = 9.21), so it is shown
    beside the intervals, not used to clip them.

    Args:
      frame: :func:`load_results` rows.

    Returns:
      Indexed like ``frame``: ``h_cap`` and, per quantity key ``q``,
      ``q_lower`` and ``q_upper`` (NaN where the run has no MI evaluation).
    """
    h_cap = frame["dataset"].map(entropy_cap).to_numpy(dtype=float)
    ci = frame["mi_ci"].to_numpy(dtype=float)
    # What each quantity can be at all, from H and the per-latent bracket.
    latent = _clip(frame["mi_latent_sum"], 0.0, np.inf), _clip(frame["mi_latent_sum_loo"],
                                                               0.0, np.inf)
    limits = {"joint": (0.0, h_cap), "latent_sum": (0.0, np.inf),
              "gap": (np.fmax(-ci, latent[0] - h_cap), latent[1]),
              "tc": (np.fmax(0.0, latent[0] - h_cap + ci), latent[1] + ci),
              "ci": (-np.inf, np.inf)}
    out = pd.DataFrame({"h_cap": h_cap}, index=frame.index)
    for key, (_, lower, upper) in MI_QUANTITIES.items():
        low, high = limits[key]
        out[f"{key}_lower"] = _clip(frame[lower], low, high)
        out[f"{key}_upper"] = _clip(frame[upper], low, high)
    return out


def _median_bounds(bounds: pd.DataFrame) -> dict[str, float]:
    """A cell's interval per quantity: the median lower and the median upper bound.

    If every run's interval holds its true value, these bound the median of
    the true values (the median is monotone). A run without an MI evaluation
    makes the cell's interval NaN.
    """
    return {column: float(np.median(bounds[column].to_numpy(dtype=float)))
            for column in bounds.columns if column.endswith(("_lower", "_upper"))}


def mi_separation(diffs: pd.DataFrame) -> pd.DataFrame:
    """Whether each MI-decomposition quantity separates the cells of each comparison.

    The two cells' intervals (:func:`summarize`'s medians of bounds) overlap
    by ``overlap`` (0 if disjoint); ``difference`` is the distance between
    their midpoints. Where the overlap is at least as wide as the difference
    the metric cannot separate the cells (``separates`` False).

    Args:
      diffs: The differences frame of :func:`summarize`.

    Returns:
      One row per (comparison, quantity): dataset, data_fingerprint, model, steps,
      comparison, quantity (label), variant_lower / variant_upper,
      baseline_lower / baseline_upper, overlap, difference, separates
      (NaN / False where an interval is unknown).
    """
    rows = []
    for d in diffs.to_dict("records"):
        for key, (label, _, _) in MI_QUANTITIES.items():
            v = d["_mi_variant"][f"{key}_lower"], d["_mi_variant"][f"{key}_upper"]
            b = d["_mi_baseline"][f"{key}_lower"], d["_mi_baseline"][f"{key}_upper"]
            overlap = max(0.0, min(v[1], b[1]) - max(v[0], b[0]))
            difference = abs((v[0] + v[1]) / 2 - (b[0] + b[1]) / 2)
            known = not np.isnan([*v, *b]).any()
            rows.append({
                "dataset": d["dataset"], "data_fingerprint": d["data_fingerprint"],
                "model": d["model"], "steps": d["steps"], "comparison": d["comparison"],
                "quantity": label,
                "variant_lower": v[0], "variant_upper": v[1],
                "baseline_lower": b[0], "baseline_upper": b[1],
                "overlap": overlap if known else np.nan,
                "difference": difference if known else np.nan,
                "separates": bool(known and overlap < difference),
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Cells and comparisons.
# ---------------------------------------------------------------------------

# The per-run values a comparison's statistics read.
_STATISTICS = ("mig_mean", "mig_sampled", "reconstruction_loss")


def _arm(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """One comparison arm's runs as :func:`_contrast` reads them."""
    return {column: runs[column].to_numpy(dtype=float) for column in _STATISTICS}


def _p_higher(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The share of (variant, baseline) pairs where the variant is higher, ties half.

    The Mann-Whitney U / (n1 n2).
    """
    return float(np.mean((variant[:, None] > baseline[None, :])
                         + 0.5 * (variant[:, None] == baseline[None, :])))


def _mwu(variant: np.ndarray, baseline: np.ndarray) -> float:
    """The exact two-sided Mann-Whitney p-value (NaN with fewer than 2 runs per arm).

    With 3 vs 3 runs the smallest possible p-value is 0.1: such samples
    cannot reach conventional significance.
    """
    from scipy.stats import mannwhitneyu

    if min(len(variant), len(baseline)) < 2:
        return np.nan
    return float(mannwhitneyu(variant, baseline, alternative="two-sided",
                              method="exact").pvalue)


def _contrast(variant: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray]) -> dict:
    """The statistics the decision rule reads, from two arms' runs (:func:`_arm`).

    The one computation of them: for the observed arms (:func:`summarize`)
    and for every relabelling of their runs (:func:`claim_verdicts`' chance).
    """
    median = {name: {c: float(np.median(arm[c])) for c in _STATISTICS}
              for name, arm in (("v", variant), ("b", baseline))}
    return {
        "d_mig_median": median["v"]["mig_mean"] - median["b"]["mig_mean"],
        "d_mig_sampled_median": median["v"]["mig_sampled"] - median["b"]["mig_sampled"],
        "d_recon_median": (median["v"]["reconstruction_loss"]
                           - median["b"]["reconstruction_loss"]),
        "p_mig_higher": _p_higher(variant["mig_mean"], baseline["mig_mean"]),
        "p_recon_higher": _p_higher(variant["reconstruction_loss"],
                                    baseline["reconstruction_loss"]),
        "_n_variant": len(variant["mig_mean"]), "_n_baseline": len(baseline["mig_mean"]),
        "_mig_median_variant": median["v"]["mig_mean"],
        "_mig_median_baseline": median["b"]["mig_mean"],
        "_d_mig_max": float(np.max(variant["mig_mean"]) - np.max(baseline["mig_mean"])),
    }


def summarize(frame: pd.DataFrame,
              planned: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell statistics and the differences of medians between compared cells.

    Args:
      frame: :func:`load_results` rows.
      planned: :func:`planned_runs`: a comparison with a planned run of
        either arm unfinished gets no verdict from :func:`claim_verdicts`.

    Returns:
      (cells, differences). ``cells``: one row per :data:`CELL` with the data
      label ``data``, n, ``mig_median`` / ``mig_iqr`` / ``mig_max`` (mean
      representation), ``mig_sampled_median``, ``recon_median``,
      ``mi_log_n`` (median) and each MI quantity's cell interval
      ``<q>_lower`` / ``<q>_upper`` (:func:`mi_intervals`, median of each
      bound). ``differences``: for every pair of configurations that differ
      only in a compared column (``figures.comparison_pairs``, e.g. encoder:
      split - vanilla; sigma: 0.9 - 0) on the same data version, the
      variant's medians minus the baseline's, pooling identical
      configurations across studies.
    """
    from splitenc_plugin.results.figures import comparison_pairs

    labels = dict(zip(frame["data_fingerprint"], frame["data"]))
    frame = frame.join(mi_intervals(frame))
    # dropna=False: a full-matrix model's NaN sigma is a cell of its own.
    groups = frame.groupby(CELL, sort=True, dropna=False)
    cells = groups.agg(
        n=("mig_mean", "size"), mig_median=("mig_mean", "median"),
        mig_iqr=("mig_mean", _iqr), mig_max=("mig_mean", "max"),
        mig_sampled_median=("mig_sampled", "median"),
        recon_median=("reconstruction_loss", "median"),
        mi_log_n=("mi_log_n", "median")).reset_index()
    bounds = [c for c in frame.columns if c.endswith(("_lower", "_upper"))]
    cells = cells.join(pd.DataFrame([_median_bounds(group[bounds]) for _, group in groups]))
    cells.insert(CELL.index("data_fingerprint"), "data", cells["data_fingerprint"].map(labels))
    # Differences pool identical configurations across studies: e.g. the
    # correlated-noise study's sigma = 0 FactorVAE is the very run the split
    # study's vanilla FactorVAE cell needs (same gin config, seed and data).
    # A configuration run in both studies counts once.
    config = _POOLED_CELL
    runs = _count_once(frame).sort_values("seed")
    pooled = runs[config].drop_duplicates()
    diffs = []
    for column, base, variant, names in comparison_pairs():
        others = [c for c in config if c != column]
        for key, group in pooled.groupby(others, sort=True):
            if not {base, variant} <= set(group[column]):
                continue
            point = dict(zip(others, key))
            arm = {value: runs[(runs[others] == pd.Series(point)).all(axis=1)
                               & (runs[column] == value)] for value in (base, variant)}
            v, b = _arm(arm[variant]), _arm(arm[base])
            stats = _contrast(v, b)
            diffs.append({
                **point, "data": labels[point["data_fingerprint"]],
                "comparison": f"{names[variant]} − {names[base]}",
                "n": f"{stats['_n_variant']} vs {stats['_n_baseline']}",
                "d_mig_median": stats["d_mig_median"],
                "d_mig_sampled_median": stats["d_mig_sampled_median"],
                "d_recon_median": stats["d_recon_median"],
                "p_mig_higher": stats["p_mig_higher"],
                "p_mig_mwu": _mwu(v["mig_mean"], b["mig_mean"]),
                "p_recon_higher": stats["p_recon_higher"],
                "p_recon_mwu": _mwu(v["reconstruction_loss"], b["reconstruction_loss"]),
                "mig_per_seed": f"{_per_seed(arm[variant])} vs {_per_seed(arm[base])}",
                # For claim_verdicts and mi_separation; not shown in the table.
                **{k: value for k, value in stats.items() if k.startswith("_")},
                "_compared": column,
                "_missing": sum(_missing(planned, arm[value], {**point, column: value})
                                for value in (base, variant)),
                "_variant_runs": v, "_baseline_runs": b,
                "_mi_variant": _median_bounds(arm[variant][bounds]),
                "_mi_baseline": _median_bounds(arm[base][bounds]),
            })
    return cells, pd.DataFrame(diffs)


_DIFFERENCE_HEADERS = {
    "d_mig_median": "Δ MIG median", "d_mig_sampled_median": "Δ MIG (sampled) median",
    "d_recon_median": "Δ recon. loss median", "p_mig_higher": "P(MIG higher)",
    "p_mig_mwu": "MWU p (MIG)", "p_recon_higher": "P(recon. higher)",
    "p_recon_mwu": "MWU p (recon.)", "mig_per_seed": "MIG per seed (variant vs baseline)"}


def difference_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize`'s differences as ``summary.md`` shows them.

    The configuration columns come first, in :data:`CELL` order (the data
    version by its fingerprint; summary.md lists each with its label); the
    column a row compares (e.g. ``encoder`` for split - vanilla) reads
    "compared" rather than being left empty (which would print as "nan", or as
    "matrix" for sigma).
    """
    if diffs.empty:
        return diffs
    table = diffs.astype(object)
    for index, compared in diffs["_compared"].items():
        table.loc[index, compared] = "compared"
    config = [c for c in CELL if c in table.columns]
    rest = [c for c in table.columns
            if c not in config and c != "data" and not c.startswith("_")]
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


# Beyond this many relabellings (C(n_variant + n_baseline, n_variant); 10 vs 10
# runs: 184,756) the chance is estimated from this many random ones (seeded).
MAX_RELABELLINGS = 200_000


def _relabellings(variant: Mapping[str, np.ndarray],
                  baseline: Mapping[str, np.ndarray]) -> tuple[Iterator[dict], int, bool]:
    """Every split of the two arms' pooled runs into groups of the arms' sizes.

    Returns:
      (the :func:`_contrast` of each split, variant group first; how many;
      whether that is all of them — else :data:`MAX_RELABELLINGS` random ones).
    """
    pooled = {c: np.concatenate([variant[c], baseline[c]]) for c in _STATISTICS}
    size, k = len(pooled["mig_mean"]), len(variant["mig_mean"])
    exact = math.comb(size, k) <= MAX_RELABELLINGS
    if exact:
        picks = itertools.combinations(range(size), k)
    else:
        rng = np.random.default_rng(0)
        picks = (rng.choice(size, k, replace=False) for _ in range(MAX_RELABELLINGS))

    def contrasts() -> Iterator[dict]:
        for pick in picks:
            mask = np.zeros(size, dtype=bool)
            mask[list(pick)] = True
            yield _contrast({c: a[mask] for c, a in pooled.items()},
                            {c: a[~mask] for c, a in pooled.items()})

    return contrasts(), math.comb(size, k) if exact else MAX_RELABELLINGS, exact


def _verdict_chances(judges: Sequence[Callable[[dict], str]], verdicts: Sequence[str],
                     variant: Mapping[str, np.ndarray],
                     baseline: Mapping[str, np.ndarray]) -> tuple[list[int], int, bool]:
    """How many relabellings of the runs each judge gives its verdict on.

    Returns:
      (per judge, the relabellings on which it returns exactly its observed
      verdict; how many relabellings; whether all were enumerated).
    """
    splits, total, exact = _relabellings(variant, baseline)
    hits = [0] * len(judges)
    for stats in splits:
        for i, (judge, verdict) in enumerate(zip(judges, verdicts)):
            hits[i] += judge(stats) == verdict
    return hits, total, exact


def claim_verdicts(diffs: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims judged on each comparison of :func:`summarize`.

    Beside each verdict, its chance if the variant's and the baseline's runs
    were exchangeable: of all the ways to relabel the two cells' pooled runs
    into groups of the same sizes (C(n_v + n_b, n_v), the observed labelling
    included), the share on which the same judge gives exactly the same
    verdict (not "this verdict or a more extreme one": the verdicts are
    categories). E.g. 2 vs 2 runs with the variant higher in all 4 pairs:
    "median MIG higher" holds on 1 of the 6 labellings, chance 1/6.

    Args:
      diffs: The differences frame of :func:`summarize`.

    Returns:
      One row per (comparison, claim): dataset, data_fingerprint, model, steps,
      comparison, n, claim, verdict, ``chance``, ``chance_hits``,
      ``relabellings`` (how many; random ones beyond
      :data:`MAX_RELABELLINGS`, ``chance_exact`` False) and the evidence the
      verdict rests on (with the exact Mann-Whitney p beside it). The verdict
      is "holds", "does not hold", "inconclusive" or "direction holds,
      magnitude does not" once every planned run of both cells has finished
      (the decision rule); else "waiting for K unfinished run(s)", or "too few
      runs" with fewer than :data:`MIN_RUNS` runs in a cell (chance NaN).
    """
    rows = []
    for d in diffs.to_dict("records"):
        missing = d.get("_missing", 0)
        claims = PAPER_CLAIMS.get(d["_compared"], ())
        judged = not missing and min(d["_n_variant"], d["_n_baseline"]) >= MIN_RUNS
        verdicts = [judge(d) for _, judge in claims] if judged else []
        hits, total, exact = _verdict_chances([judge for _, judge in claims], verdicts,
                                              d["_variant_runs"], d["_baseline_runs"]) \
            if judged else ([0] * len(claims), 0, True)
        for i, (claim, _) in enumerate(claims):
            if missing:
                verdict = f"waiting for {missing} unfinished run(s)"
            elif not judged:
                verdict = f"too few runs (< {MIN_RUNS} per cell)"
            else:
                verdict = verdicts[i]
            rows.append({
                "dataset": d["dataset"], "data_fingerprint": d["data_fingerprint"],
                "model": d["model"], "steps": d["steps"], "comparison": d["comparison"],
                "n": d["n"],
                "claim": claim, "verdict": verdict,
                "chance": hits[i] / total if judged else np.nan,
                "chance_hits": hits[i], "relabellings": total, "chance_exact": exact,
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


# ---------------------------------------------------------------------------
# Per-factor MIG (factor_mig) and learning curves.
# ---------------------------------------------------------------------------

FACTOR_MIG = "factor_mig"  # the metric's config name (gin/metrics/factor_mig.gin)
# The one representation factor_mig is evaluated on (the mean: the latents that
# Appendix C traverses).
_FACTOR_MIG_REP = METRIC_REPRESENTATIONS[FACTOR_MIG][0]
# dlib's factors of its dSprites family, named after dSprites' latents: dlib's
# named_data takes latents 1-5 (shape, scale, orientation, posX, posY) for
# dsprites_full and the colour, noise and Scream variants, and 2-5 for
# dsprites_noshape. Other datasets' factors are called "factor k".
FACTOR_NAMES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites"),
                    LATENT_NAMES[1:]),
    "dsprites_noshape": LATENT_NAMES[2:],
}
GAP_PREFIX = "gap_"  # results.csv: gap_<factor> = factor_mig's factor_gap of that factor


def factor_names(dataset: str, num_factors: int) -> list[str]:
    """The names of a dataset's ground-truth factors, in dlib's order.

    Args:
      dataset: dlib's dataset name.
      num_factors: How many factors the results have.

    Returns:
      :data:`FACTOR_NAMES` of the dataset if it has that many factors, else
      ``["factor 0", "factor 1", ...]``.
    """
    names = FACTOR_NAMES.get(dataset)
    if names is not None and len(names) == num_factors:
        return list(names)
    return [f"factor {k}" for k in range(num_factors)]


def gap_column(factor: str) -> str:
    """results.csv's column of a factor's gap: ``gap_posX``, ``gap_factor_3``."""
    return GAP_PREFIX + re.sub(r"\W+", "_", factor)


def gap_columns(frame: pd.DataFrame) -> list[str]:
    """The ``gap_<factor>`` columns of a :func:`load_results` frame, in order."""
    return [column for column in frame.columns if column.startswith(GAP_PREFIX)]


def load_factor_mig(job_dir: str | Path, dataset: str) -> dict | None:
    """A job's per-factor MIG (:mod:`splitenc_plugin.metrics.factor_mig`), if it has one.

    Reads ``JOB_DIR/metrics/mean/factor_mig/results/aggregate/evaluation.json``.

    Args:
      job_dir: The job directory.
      dataset: Its dataset (names the factors, :func:`factor_names`).

    Returns:
      None if the job has no factor_mig results; else ``mi_matrix``
      ([num_factors, num_latents] array of normalised MI), ``factor_gap``
      ([num_factors] array), ``discrete_mig`` and ``factor_names``.
    """
    path = Path(job_dir) / "metrics" / _FACTOR_MIG_REP / FACTOR_MIG / _EVAL
    if not str(job_dir) or not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("evaluation_results.skipped"):
        return None
    matrix = np.asarray(record["evaluation_results.mi_matrix"], dtype=float)
    return {"mi_matrix": matrix,
            "factor_gap": np.asarray(record["evaluation_results.factor_gap"], dtype=float),
            "discrete_mig": float(record["evaluation_results.discrete_mig"]),
            "factor_names": factor_names(dataset, matrix.shape[0])}


def _factor_gaps(job_dir: Path, dataset: str) -> dict[str, float]:
    """results.csv's ``gap_<factor>`` values of one job (empty without factor_mig)."""
    factors = load_factor_mig(job_dir, dataset)
    if factors is None:
        return {}
    return {gap_column(name): float(gap)
            for name, gap in zip(factors["factor_names"], factors["factor_gap"])}


def factor_gap_medians(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell and factor, the median of the runs' factor_mig gaps.

    Args:
      frame: :func:`load_results` rows (with their ``gap_<factor>`` columns).

    Returns:
      One row per (:data:`CELL`, factor) of every cell with a run that has
      factor_mig results: the CELL columns, ``factor`` (its name,
      :func:`factor_names`), ``n`` (the cell's runs with factor_mig) and
      ``gap_median``; the factors of a cell in dlib's order. Empty (same
      columns) when no run has factor_mig.
    """
    rows = []
    for key, group in frame.groupby(CELL, sort=True, dropna=False):
        columns = [c for c in gap_columns(group) if group[c].notna().any()]
        if not columns:
            continue
        names = factor_names(group["dataset"].iloc[0], len(columns))
        if [gap_column(name) for name in names] != columns:  # cannot happen via load_results
            names = [c.removeprefix(GAP_PREFIX) for c in columns]
        runs = group[group[columns].notna().all(axis=1)]
        for name, column in zip(names, columns):
            rows.append({**dict(zip(CELL, key)), "factor": name, "n": len(runs),
                         "gap_median": float(np.median(runs[column]))})
    return pd.DataFrame(rows, columns=[*CELL, "factor", "n", "gap_median"])


def _latent_order(mi_matrix: np.ndarray) -> np.ndarray:
    """Latents grouped by the factor each is most informative about, then by that MI, high first."""
    factor, mi = most_informative_factors(mi_matrix)
    return np.lexsort((-mi, factor))


def factor_mi_panels(runs: pd.DataFrame) -> list[dict]:
    """What the per-factor heatmap figure draws: each run's normalised MI matrix, per cell.

    Each run's own matrix, not a mean over a cell's runs: latent j of one run
    has nothing to do with latent j of another, so averaging would mix
    unrelated latents and blur the block structure. Each run's latents are
    sorted by the factor they are most informative about (dlib's factor
    order), then by that MI, highest first, so that a disentangled model
    shows a staircase of blocks. Cells are pooled as in the other figures
    (identical configurations across studies are one cell; each run is
    named by its own study).

    Args:
      runs: :func:`load_results` rows of one figure (:func:`figure_runs`).

    Returns:
      One dict per cell (by ``model``, ``encoder``, ``sigma``, ``steps``) with
      a run that has factor_mig results: ``cell`` (its pooled-cell values),
      ``runs`` (by seed): dicts of ``study``, ``model_num``, ``seed``,
      ``mig`` (factor_mig's discrete_mig), ``factor_names``, ``latents``
      (the original latent indices in drawing order) and ``matrix`` (the
      [num_factors, num_latents] normalised MI with its columns in that
      order).
    """
    panels = []
    for key, group in _count_once(runs).groupby(_POOLED_CELL, sort=True, dropna=False):
        drawn = []
        for run in group.sort_values(["seed", "study"]).to_dict("records"):
            factors = load_factor_mig(run["job_dir"], run["dataset"])
            if factors is None:
                continue
            order = _latent_order(factors["mi_matrix"])
            drawn.append({"study": run["study"], "model_num": int(run["model_num"]),
                          "seed": int(run["seed"]), "mig": factors["discrete_mig"],
                          "factor_names": factors["factor_names"], "latents": order,
                          "matrix": factors["mi_matrix"][:, order]})
        if drawn:
            panels.append({"cell": dict(zip(_POOLED_CELL, key)), "runs": drawn})
    return panels


def latent_factor_labels(job_dir: str | Path, dataset: str) -> list[str] | None:
    """Appendix C's label of each traversal column, from the same job's factor_mig.

    Returns:
      :func:`splitenc_plugin.results.traversals.latent_labels` (``"z<j>: <factor>
      <normalised MI>"``, the factor latent j is most informative about), or
      None if the job has no factor_mig results.
    """
    factors = load_factor_mig(job_dir, dataset)
    if factors is None:
        return None
    return latent_labels(factors["mi_matrix"], factors["factor_names"])


# Learning curves: JOB_DIR/model/learning_curves.json (the model directory
# holds the estimator's tf_checkpoint/, whose event files the curves are read from).
_CURVES = Path(CHECKPOINT_DIR).parent / CURVES_FILE
# Quantity -> its axis label. From the tags dlib logs in training
# (splitenc_plugin.results.learning_curves): dlib's elbo summary is -(reconstruction + KL)
# and the estimator's loss is reconstruction + regularizer, so KL and the
# regularizer are exact differences of logged values. FactorVAE logs no elbo:
# it has no KL curve.
CURVE_QUANTITIES: dict[str, str] = {
    "reconstruction_loss": "reconstruction loss",
    "kl": "KL = −elbo − reconstruction loss",
    "regularizer": "regulariser = loss − reconstruction loss",
}


def run_curves(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Every run's learning curves (:data:`CURVE_QUANTITIES`) from its learning_curves.json.

    Args:
      frame: :func:`load_results` rows.

    Returns:
      (one row per (run, logged step): the :data:`CELL` columns, ``seed``,
      ``model_num``, ``step`` and each quantity of :data:`CURVE_QUANTITIES`
      (NaN where a tag was not logged: ``kl`` for FactorVAE, which logs no
      elbo); the job directories of runs without learning_curves.json,
      which are left out).
    """
    columns = [*CELL, "seed", "model_num", "step", *CURVE_QUANTITIES]
    parts, missing = [], []
    for run in frame.to_dict("records"):
        path = Path(run["job_dir"]) / _CURVES
        if not run["job_dir"] or not path.is_file():
            missing.append(run["job_dir"])
            continue
        curves = json.loads(path.read_text())
        steps = curves["steps"]

        def tag(name: str, steps=steps, curves=curves) -> np.ndarray:
            values = curves.get(name, [None] * len(steps))
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        recon = tag("reconstruction_loss")
        parts.append(pd.DataFrame({
            **{c: [run[c]] * len(steps) for c in [*CELL, "seed", "model_num"]},
            "step": np.asarray(steps, dtype=int), "reconstruction_loss": recon,
            "kl": -tag("elbo") - recon, "regularizer": tag("loss") - recon}))
    curves = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return curves[columns], missing


def cell_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per cell and step, the median over seeds and the range of each quantity.

    Cells pool like the figures' (identical configurations across studies
    are one cell; a run in both studies counts once).

    Args:
      curves: :func:`run_curves` rows.

    Returns:
      One row per (cell: ``dataset``, ``data_fingerprint``, ``model``,
      ``encoder``, ``sigma``, ``steps``; ``step``): ``n`` (runs logged at that
      step) and per quantity ``q``: ``q_median``, ``q_low``, ``q_high``
      (min and max over the runs; NaN where not logged).
    """
    curves = curves.sort_values("study").drop_duplicates([*_POOLED_RUN, "step"])
    groups = curves.groupby([*_POOLED_CELL, "step"], sort=True, dropna=False)
    stats = {"n": ("seed", "size")}
    for quantity in CURVE_QUANTITIES:
        stats.update({f"{quantity}_median": (quantity, "median"),
                      f"{quantity}_low": (quantity, "min"),
                      f"{quantity}_high": (quantity, "max")})
    return groups.agg(**stats).reset_index()


def _factor_section(frame: pd.DataFrame) -> str:
    """summary.md's per-factor MIG tables: one per dataset and data version."""
    medians = factor_gap_medians(frame)
    text = ("\n## Per-factor MIG (factor_mig)\n\n"
            "Median over a cell's runs of each factor's gap: (I(z_j1; v_k) − I(z_j2; v_k)) / "
            "H(v_k), j1 and j2 the two latents most informative about factor v_k, on dlib's "
            "discretisation of the mean representation; the mean of a run's gaps is its "
            "MIG. n: the cell's runs with factor_mig results (runs without them are left "
            "out).\n\n")
    if medians.empty:
        return text + "_No run has factor_mig results._\n"
    shown = [c for c in CELL if c not in ("dataset", "data_fingerprint")]
    for (dataset, fingerprint), group in medians.groupby(["dataset", "data_fingerprint"],
                                                         sort=True):
        rows = [{**dict(zip([*shown, "n"], key)), **dict(zip(cell["factor"], cell["gap_median"]))}
                for key, cell in group.groupby([*shown, "n"], sort=True, dropna=False)]
        table = pd.DataFrame(rows, columns=[*shown, "n", *dict.fromkeys(group["factor"])])
        text += f"### {dataset} (`{fingerprint}`)\n\n" + _markdown(table) + "\n"
    return text


def _visualize(jobs: list[Path], cache: Path) -> dict[Path, Path]:
    """Visualization dirs (dlib visualize_model output) for jobs, making missing ones.

    Uses ``JOB/visualizations`` when the job made it (``--visualize``);
    otherwise runs dlib's ``visualize_model.visualize`` (without the GIF
    animations) and :func:`~splitenc_plugin.results.traversals.visualize_fitted_traversals`
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
                "from splitenc_plugin.results.traversals import FITTED_DIR, visualize_fitted_traversals\n"
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
    from splitenc_plugin.results import figures

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
    no_curves: set[str] = set()  # finished jobs without learning_curves.json
    # One figure set per study, dataset and data version; a (study, dataset)
    # with runs on several data versions names each set by its fingerprint.
    versions = frame[["study", "dataset", "data_fingerprint"]].drop_duplicates().sort_values(
        ["study", "dataset", "data_fingerprint"])
    several = versions.duplicated(["study", "dataset"], keep=False).to_numpy()
    for (study_name, dataset, fingerprint), named in zip(versions.itertuples(index=False),
                                                         several):
        group = figure_runs(frame, study_name, dataset, fingerprint)
        stem = f"{study_name}_{dataset}" + (
            "_" + re.sub(r"[^A-Za-z0-9.-]+", "-", fingerprint) if named else "")
        written.append(figures.mig_violins(group, study_name, dataset,
                                           fig_dir / f"{stem}_mig_violin.png"))
        written.append(figures.mig_vs_reconstruction(group, study_name, dataset,
                                                     fig_dir / f"{stem}_mig_vs_recon.png"))
        heatmaps = factor_mi_panels(group)
        if heatmaps:
            written.append(figures.factor_mi_heatmaps(heatmaps, study_name, dataset,
                                                      fig_dir / f"{stem}_factor_mi.png"))
        curves, missing = run_curves(group)
        no_curves.update(missing)
        if not curves.empty:
            written.append(figures.learning_curves(cell_curves(curves), study_name, dataset,
                                                   fig_dir / f"{stem}_learning_curves.png"))
        if not visualize:
            continue
        # Per pooled cell: a cell with runs in two studies gets one panel.
        best = group.loc[group.groupby(_POOLED_CELL, dropna=False)["mig_mean"].idxmax()]
        vis = _visualize([Path(p) for p in best["job_dir"]], fig_dir / "visualizations")
        panels, labels = [], []
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
            labels.append(latent_factor_labels(row["job_dir"], row["dataset"]))
        if panels:
            written.append(figures.appendix_c(panels, study_name, dataset,
                                              fig_dir / f"{stem}_appendix_c.png",
                                              latent_labels=labels))

    cell_table = cells[[*CELL, "n", "mig_median", "mig_iqr", "mig_max",
                        "mig_sampled_median", "recon_median"]].rename(
        columns={"mig_median": "MIG median", "mig_iqr": "MIG IQR", "mig_max": "MIG max",
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
               "(docs/results/campaign/README.md).\n\n"
             + "Chance if exchangeable: of all C(n_v + n_b, n_v) ways to relabel the two "
               "cells' pooled runs into groups of the same sizes (the observed one "
               "included), how many give exactly this verdict by the same rule — the "
               "chance of this verdict if the variant changed nothing. E.g. 2 vs 2 runs "
               "with the variant higher in all 4 pairs: 1 of 6.\n\n"
             + _markdown(_verdict_table(verdicts))
             + _mi_section(cells, diffs)
             + _factor_section(frame))
    notes = [f"{len(frame)} finished model(s) from {Path(directory)}.", *_data_notes(cells)]
    if unfinished:
        notes.append(f"{len(unfinished)} unfinished job(s) left out: "
                     + ", ".join(str(p) for p in unfinished[:10]))
    notes += pooled_duplicates(frame)
    waiting = unfinished_planned_runs(frame, planned)
    if len(waiting):
        notes.append(f"{len(waiting)} planned run(s) not finished yet: "
                     + ", ".join(f"{r.study} {r.model} {r.encoder} σ={r.sigma:g} seed {r.seed}"
                                 for r in waiting.itertuples()))
    notes.append(f"Learning curves: {len(no_curves)} of {len(frame)} finished job(s) have no "
                 f"{_CURVES.as_posix()} (finished before learning curves were recorded, or "
                 "plain dlib_reproduce output) and are left out of the learning-curve figures"
                 + (": " + ", ".join(sorted(no_curves)[:10]) if 0 < len(no_curves) <= 10 else ""))
    notes += appendix_notes
    summary = ("# splitenc results summary\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"
               + table + "\n## Figures\n\n"
               + "\n".join(f"- `{p.relative_to(out)}`" for p in written) + "\n")
    summary_path = out / "summary.md"
    summary_path.write_text(summary)
    return {"csv": csv_path, "summary": summary_path, "figures": written, "table": table,
            "frame": frame, "unfinished": unfinished}


def _data_notes(cells: pd.DataFrame) -> list[str]:
    """The summary's lines on data versions: which are present, which cells they split."""
    versions = cells.groupby(["data_fingerprint", "data"], sort=True)["n"].sum()
    lines = ["Data versions (a cell, comparison or figure never pools runs of two versions: "
             "the data fingerprint is part of every cell): "
             + "; ".join(f"{label} (`{fingerprint}`): {n} run(s)"
                         for (fingerprint, label), n in versions.items())]
    split = cells.groupby([c for c in CELL if c != "data_fingerprint"], sort=True,
                          dropna=False)["data"].agg(list)
    for key, labels in split.items():
        if len(labels) > 1:
            point = dict(zip([c for c in CELL if c != "data_fingerprint"], key))
            lines.append(f"Split by data version: {point['study']} {point['dataset']} "
                         f"{point['model']} {point['encoder']} σ={_fmt('sigma', point['sigma'])} "
                         f"({point['steps']} steps) on " + " and ".join(labels))
    return lines


def _verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """:func:`claim_verdicts` as summary.md shows it: the chance beside the verdict."""
    if verdicts.empty:
        return verdicts

    def chance(row) -> str:
        if np.isnan(row["chance"]):
            return "—"
        if row["chance_exact"]:
            return f"{row['chance_hits']} of {row['relabellings']} ({row['chance']:.3f})"
        return f"≈{row['chance']:.3f} ({row['relabellings']:,} random relabellings)"

    table = verdicts.drop(columns=["chance", "chance_hits", "relabellings", "chance_exact"])
    table.insert(table.columns.get_loc("verdict") + 1, "chance if exchangeable",
                 verdicts.apply(chance, axis=1))
    return table


def _interval(lower: float, upper: float) -> str:
    return "—" if np.isnan(lower) or np.isnan(upper) else f"[{lower:.2f}, {upper:.2f}]"


def _mi_section(cells: pd.DataFrame, diffs: pd.DataFrame) -> str:
    """summary.md's MI-decomposition section: intervals per cell and per comparison."""
    table = cells[[*CELL, "n"]].copy()
    table["log N"] = cells["mi_log_n"]
    table["H(x) ≤"] = [f"{h:.2f}" if np.isfinite(h) else "—"
                       for h in cells["dataset"].map(entropy_cap)]
    for key, (label, _, _) in MI_QUANTITIES.items():
        table[label] = [_interval(lo, hi) for lo, hi in
                        zip(cells[f"{key}_lower"], cells[f"{key}_upper"])]
    text = ("\n## MI decomposition as intervals (nats)\n\n"
            "Each quantity lies between two estimates (README, MI-decomposition "
            "estimator): I(z;x) and Σ_j I(z_j;x) between the plug-in (lower) and "
            "leave-one-out (upper) values, gap and TC the other way round; CI is exact. "
            "Each bound is clipped into what the quantity can be: I(z;x) ≤ H(x) ≤ "
            "log(number of distinct images) (log 737,280 = 13.51 for dSprites; no bound "
            "for data sets drawn afresh, e.g. dummy_data), TC ≥ 0, and by Theorem 1 (TC = gap "
            "+ CI) gap ≥ max(−CI, Σ_j I(z_j;x) − H(x)) and TC ≥ Σ_j I(z_j;x) − H(x) + CI. "
            "log N caps the plug-in estimate, not I(z;x) itself (which can exceed it), so it "
            "is shown, not used to clip. A cell's interval: the median lower and the median "
            "upper bound of its runs. The intervals bracket the estimator's small-N bias, "
            "not its sampling noise (standard errors in each job's evaluation.json).\n\n"
            + _markdown(table))
    if diffs.empty:
        return text
    separation = mi_separation(diffs)
    shown = separation[["dataset", "data_fingerprint", "model", "steps", "comparison",
                        "quantity"]].copy()
    shown["variant"] = [_interval(lo, hi) for lo, hi in
                        zip(separation["variant_lower"], separation["variant_upper"])]
    shown["baseline"] = [_interval(lo, hi) for lo, hi in
                         zip(separation["baseline_lower"], separation["baseline_upper"])]
    shown["overlap"] = separation["overlap"]
    shown["Δ midpoints"] = separation["difference"]
    shown["reading"] = ["separates" if sep else "—" if np.isnan(gap) else
                        "cannot separate them (overlap ≥ difference)"
                        for sep, gap in zip(separation["separates"], separation["difference"])]
    return (text + "\n### Compared cells\n\nWhere the two cells' intervals overlap by at "
            "least the distance between their midpoints, the metric cannot separate the "
            "cells.\n\n" + _markdown(shown))


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
