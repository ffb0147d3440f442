"""Reading finished jobs into the results table (one row per model of ``results.csv``).

A job directory ``DIR/<study>/<model_num>/`` (``splitenc_reproduce``'s and
``dlib_reproduce``'s layout) is read from the small JSON files dlib writes —
``metrics/<rep>/mig/results/aggregate/evaluation.json`` holds the model's
operative training config, its training results and the MIG — so pruned jobs
and result files committed without checkpoints read the same. A job counts
if it has ``done.json`` (splitenc_reproduce) or, for plain dlib_reproduce
output, MIG results for both representations; unfinished jobs are returned
apart. An unreadable ``done.json`` is never taken for "unfinished": it stops
the reading (:class:`~splitenc_plugin.sweep.job_files.MarkerError`, exit 2 in the
CLI); so does a finished job without MIG for both representations
(:class:`NoMigError`, e.g. run with ``--metrics`` leaving MIG out).

Also here: the per-factor MIG of a job (``factor_mig``), which gives the
table its ``gap_<factor>`` columns (:func:`load_factor_mig`,
:func:`gap_column`); and, for a job of a study other than the plugin's grids
(dlib's ``unsupervised_study_v1``, a user's), with gin fragments layered on
or with extra ``--gin_bindings``, the columns that define its cell beyond
:data:`COLUMNS`: the fragments and the bindings (:func:`study_cell_values`,
:mod:`splitenc_plugin.results.cells`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin._gin import reference_name
from splitenc_plugin.data.dsprites import LATENT_NAMES
from splitenc_plugin.data.fingerprint import recorded_identity
from splitenc_plugin.errors import SplitencUserError
from splitenc_plugin.model.noise import NoiseSetting
from splitenc_plugin.results.cells import FRAGMENTS, NO_FRAGMENTS, RUN_BINDINGS
from splitenc_plugin.studies.grid import (
    GRIDS,
    METRIC_REPRESENTATIONS,
    UnknownStudyError,
    make_job_spec,
)
from splitenc_plugin.sweep.job_files import (
    DONE_FILE,
    JOB_FILE,
    RESULT_FIX,
    ResultFileError,
    metric_result,
    read_done,
    read_result,
)

__all__ = ["COLUMNS", "FACTOR_MIG", "FACTOR_NAMES", "GAP_PREFIX", "MI_FIELDS",
           "REPRESENTATIONS", "NoMigError", "factor_names", "gap_column", "gap_columns",
           "gin_value", "load_factor_mig", "load_results", "study_bindings",
           "study_cell_values"]

REPRESENTATIONS = METRIC_REPRESENTATIONS["mig"]  # dlib's MIG: both of its representations
MI_DECOMPOSITION = "mi_decomposition_study"  # the metric's config name
_MI_REP = METRIC_REPRESENTATIONS[MI_DECOMPOSITION][0]
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


def gin_value(value: object) -> str:
    """A gin value as dlib stores it in JSON -> text.

    ``"'dummy_data'"`` -> ``dummy_data``; a reference -> its bare configurable
    name (:func:`~splitenc_plugin._gin.reference_name`: ``'@vae()'`` -> ``vae``,
    ``@splitenc_plugin.model.encoders.split_conv_encoder`` ->
    ``split_conv_encoder``), so a cell does not depend on how a config spelled it.
    """
    text = str(value).strip().strip("'\"")
    return reference_name(text) if text.startswith("@") else text


def _mi_fields(job_dir: Path) -> dict:
    """The job's MI-decomposition numbers; NaN where it was not evaluated."""
    path = metric_result(job_dir, _MI_REP, MI_DECOMPOSITION)
    record = read_result(path) if path.is_file() else {}
    if record.get("evaluation_results.skipped"):
        record = {}
    return {column: float(record.get(f"evaluation_results.{field}", np.nan))
            for column, field in MI_FIELDS.items()}


def _sigma(cfg: dict) -> float:
    """Eq 13's sigma of a model (0 for dlib's factorized noise); NaN for a full matrix.

    Read by :class:`~splitenc_plugin.model.noise.NoiseSetting`, the one reader of
    a noise setting. A model trained with ``correlated_noise.correlation``
    records ``correlated_noise.sigma = None``: it forms its own cells (shown as
    "matrix") and takes part in no comparison.
    """
    return NoiseSetting.from_train_config(cfg).sigma_or_nan


def study_bindings(bindings: Sequence[str]) -> dict[str, str]:
    """A job's binding columns: each binding of its study by name, its value as text.

    Args:
      bindings: The job's training bindings (``identity["bindings"]``:
        ``model.name = 'shared'``, ``model.model_num = 0``, the study's, then
        ``model.training_steps`` and any extra ``--gin_bindings``).

    Returns:
      Binding name -> value (:func:`gin_value`: ``'beta_vae'`` -> ``beta_vae``,
      ``@vae()`` -> ``vae``, ``1.0`` stays ``1.0``), the last binding of a
      name winning as in gin (in the place of its first), without the
      :data:`~splitenc_plugin.results.cells.RUN_BINDINGS`.
    """
    values: dict[str, str] = {}
    for binding in bindings:
        key, equals, value = str(binding).partition("=")
        key = key.strip()
        if equals and key not in RUN_BINDINGS:
            values[key] = gin_value(value)
    return values


def _fragments(record: Mapping) -> str | None:
    """The :data:`~.cells.FRAGMENTS` value of a job identity or spec; None without fragments.

    A finished job's identity lists ``{"name", "sha256"}`` per fragment; a
    job spec (``job.json``) their paths and, apart, ``gin_config_digests``.
    """
    configs = record.get("gin_configs") or []
    if not configs:
        return None
    if isinstance(configs[0], Mapping):
        pairs = [(config["name"], config["sha256"]) for config in configs]
    else:
        pairs = list(zip((Path(path).name for path in configs),
                         record.get("gin_config_digests") or [""] * len(configs)))
    return " + ".join(f"{name}@{digest[:12]}" for name, digest in pairs)


def study_cell_values(study: str, record: Mapping) -> dict[str, str]:
    """The cell columns a job has beyond :data:`COLUMNS` (:mod:`splitenc_plugin.results.cells`).

    Args:
      study: The job's study.
      record: Its ``done.json["identity"]`` (or ``job.json["spec"]``); empty
        for plain dlib_reproduce output.

    Returns:
      ``gin_configs`` (the layered fragments) if it has any, and
      :func:`study_bindings` of its ``bindings``: for a study other than the
      plugin's grids all of them; for a grid study only those its own job spec
      does not bind to the same value (:func:`~splitenc_plugin.studies.grid.make_job_spec`
      without extras: the grid's axes are :data:`COLUMNS` already), i.e. the
      job's extra ``--gin_bindings`` — ``factor_vae.gamma = 10.0`` is a cell
      of its own, never pooled with the study's γ = 35.
    """
    values = {}
    fragments = _fragments(record)
    if fragments is not None:
        values[FRAGMENTS] = fragments
    bindings = study_bindings(record.get("bindings") or ())
    if study in GRIDS and bindings:
        own = study_bindings(make_job_spec(study, int(record["model_num"])).bindings)
        bindings = {k: v for k, v in bindings.items() if own.get(k) != v}
    values.update(bindings)
    return values


class NoMigError(SplitencUserError):
    """A finished job has no MIG result for one of :data:`REPRESENTATIONS`.

    The aggregator compares dlib's MIG of the mean and the sampled
    representation; a job that finished without one of them (run with a
    ``--metrics`` selection that left MIG out, or of a study that does not
    postprocess both) has nothing to put in its row.
    """


# What a row reads from the MIG result of the mean representation (dlib's
# train config and results ride along in every evaluation.json); of the
# sampled one only its MIG.
_MIG_KEY = "evaluation_results.discrete_mig"
_ROW_KEYS = ("train_config.dataset.name", "train_config.model.model",
             "train_config.encoder.encoder_fn", "train_config.model.random_seed",
             "train_config.model.training_steps", "train_results.reconstruction_loss",
             "train_results.elapsed_time", _MIG_KEY)


def _row(study: str, job_dir: Path) -> dict | None:
    evals = {rep: metric_result(job_dir, rep, "mig") for rep in REPRESENTATIONS}
    missing = [rep for rep, path in evals.items() if not path.is_file()]
    lost = [str(evals[rep]) for rep in missing if evals[rep].parent.parent.is_dir()]
    if lost and (job_dir / DONE_FILE).exists():
        raise ResultFileError(
            f"{job_dir} finished and evaluated MIG, but {', '.join(lost)} is missing; "
            + RESULT_FIX)
    if missing and (job_dir / DONE_FILE).exists():
        evaluated = sorted(f"{p.parent.name}/{p.name}" for p in job_dir.glob("metrics/*/*")
                           if p.is_dir())
        raise NoMigError(
            f"{job_dir} finished without dlib's MIG of the {' and '.join(missing)} "
            f"representation (it evaluated: {', '.join(evaluated) or 'nothing'}); "
            "splitenc_aggregate compares MIG of the mean and sampled representations. "
            "Aggregate only studies that evaluated it (--study NAME), or run the study "
            "with MIG (splitenc_reproduce without --metrics, or --metrics mig ...) into "
            "another --output_directory")
    if missing:
        return None
    records = {rep: read_result(path, _ROW_KEYS if rep == "mean" else (_MIG_KEY,))
               for rep, path in evals.items()}
    cfg = records["mean"]
    done = read_done(job_dir) or {}
    resumed = done.get("resumed_from_steps", [])
    # What the job recorded, or (finished before data fingerprints) the legacy rule.
    data = recorded_identity(done)
    identity = done.get("identity") or {}
    # The job's own study: a run with fragments lives in <study>+<fragment>/.
    study = identity.get("study") or study
    return {
        "study": study,
        "model_num": int(cfg.get("train_config.model.model_num", job_dir.name)),
        "dataset": gin_value(cfg["train_config.dataset.name"]),
        "data": data["label"],
        "data_fingerprint": data["fingerprint"],
        "model": gin_value(cfg["train_config.model.model"]),
        "encoder": gin_value(cfg["train_config.encoder.encoder_fn"]),
        "sigma": _sigma(cfg),
        "seed": int(cfg["train_config.model.random_seed"]),
        "steps": int(cfg["train_config.model.training_steps"]),
        "global_step": int(cfg.get("train_results.global_step", -1)),
        **{f"mig_{rep}": float(records[rep][_MIG_KEY]) for rep in REPRESENTATIONS},
        "reconstruction_loss": float(cfg["train_results.reconstruction_loss"]),
        **_mi_fields(job_dir),
        # dlib times one training call: for a resumed job, only the last attempt.
        "training_time_s": float(cfg["train_results.elapsed_time"]) if not resumed else np.nan,
        "resumed_from_steps": " ".join(str(step) for step in resumed),
        "job_dir": str(job_dir),
        # The fragments and the study's bindings (none for the plugin's plain jobs).
        **study_cell_values(study, identity),
        # One gap_<factor> column per factor of the job's factor_mig (none without it).
        **_factor_gaps(job_dir, gin_value(cfg["train_config.dataset.name"])),
    }


def _check_once(seen: dict[str, Path], job_dir: Path, row: Mapping) -> None:
    """Records a finished job; one found twice (a copy, a directory given twice) is an error.

    The same job would count as two runs of its cell. Jobs are the same when
    their study, model number, ``done.json`` identity (config, steps,
    bindings, fragments) and data are; plain dlib_reproduce output has no
    identity and is not checked.
    """
    done = read_done(job_dir)
    if not done or "identity" not in done:
        return
    key = json.dumps([row["study"], row["model_num"], done["identity"], row["data_fingerprint"]],
                     sort_keys=True, default=str)
    if key in seen:
        raise SplitencUserError(
            f"{job_dir} and {seen[key]} are the same job ({row['study']}/{row['model_num']}: "
            "the same identity and data), so it would count twice; aggregate the output "
            "directories that hold it once (a directory given twice, or a copy)")
    seen[key] = job_dir


def _study_dirs(root: Path, study: str | None) -> list[Path]:
    """The study directories under an output directory: all, or those of ``study``.

    A study run with gin fragments lives beside the plain one, in
    ``<study>+<fragment>[+<fragment>...]/`` (``splitenc_reproduce``).
    """
    return sorted(p for p in root.iterdir() if p.is_dir() and (
        study is None or p.name == study or p.name.startswith(f"{study}+")))


def load_results(directory: str | Path | Sequence[str | Path],
                 study: str | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Reads every finished job under ``directory``.

    Args:
      directory: The runner's ``--output_directory`` (or several, read
        together): jobs in ``DIR/<study>/<model_num>/``, those of a study run
        with gin fragments in ``DIR/<study>+<fragment>.../<model_num>/``; a
        job's study is the one its ``done.json`` records (else its
        directory's name).
      study: Only this study, with or without fragments (a plugin study, or
        one found in a directory); None: every study found.

    Returns:
      (one row per model with :data:`COLUMNS`; then, where some job has
      them, ``gin_configs`` (:data:`NO_FRAGMENTS` for runs without) and one
      column per study binding (``""`` for runs without it), see
      :mod:`splitenc_plugin.results.cells`; then one ``gap_<factor>``
      column (:func:`gap_column`) per factor of every job's factor_mig
      results, datasets by name, each dataset's factors in order (NaN for
      runs without factor_mig or of another dataset; no such column when no
      job has factor_mig); sorted by study and model_num (stable: several
      directories in the order given); the unfinished job directories that
      were left out).

    Raises:
      SplitencUserError: If a directory does not exist, the study is
        unknown, or no finished job is found.
      MarkerError: If a job's ``done.json`` is unreadable (a
        :class:`SplitencUserError` naming the file).
      NoMigError: If a finished job has no MIG result for the mean or the
        sampled representation (a :class:`SplitencUserError` naming the job,
        what it evaluated and the fix): never taken for "unfinished".
      ResultFileError: If a finished job's result JSON is unreadable, lacks
        what a row needs, or its MIG result is missing beside the metric's
        other files (never taken for absent).
    """
    directories = ([Path(directory)] if isinstance(directory, (str, Path))
                   else [Path(d) for d in directory])
    where = ", ".join(map(str, directories))
    if study is not None and study not in GRIDS and not any(
            _study_dirs(d, study) for d in directories if d.is_dir()):
        raise UnknownStudyError(
            f"unknown study {study!r}: not one of the plugin's studies ({', '.join(GRIDS)}) "
            f"and no {study}/ under {where}")
    for path in directories:
        if not path.is_dir():
            raise SplitencUserError(f"{path} is not a directory; pass the --output_directory "
                                    "of splitenc_reproduce (or dlib_reproduce)")
    rows, unfinished = [], []
    seen: dict[str, Path] = {}  # a finished job's identity and data -> where it was found
    for root in directories:
        for study_dir in _study_dirs(root, study):
            job_dirs = [p for p in study_dir.glob("*") if p.is_dir() and p.name.isdigit()]
            for job_dir in sorted(job_dirs, key=lambda p: int(p.name)):
                managed = (job_dir / JOB_FILE).exists() or (job_dir / DONE_FILE).exists()
                row = _row(study_dir.name, job_dir)
                if row is None or (managed and not (job_dir / DONE_FILE).exists()):
                    unfinished.append(job_dir)
                elif study is None or row["study"] == study:
                    _check_once(seen, job_dir, row)
                    rows.append(row)
    if not rows:
        what = f"of study {study} " if study else ""
        raise SplitencUserError(
            f"no finished job {what}under {where} (expected DIR/<study>/<model_num>/"
            "metrics/mean/mig/...); run splitenc_reproduce --output_directory DIR first"
            + (f" ({len(unfinished)} unfinished job dirs found)" if unfinished else ""))
    extras = dict.fromkeys([FRAGMENTS] if any(FRAGMENTS in row for row in rows) else [])
    extras.update(dict.fromkeys(column for row in rows for column in row if "." in column))
    gaps = dict.fromkeys(column for row in sorted(rows, key=lambda r: r["dataset"])
                         for column in row if column.startswith(GAP_PREFIX))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *extras, *gaps])
    frame = frame.fillna({column: NO_FRAGMENTS if column == FRAGMENTS else ""
                          for column in extras})
    frame = frame.sort_values(["study", "model_num"], kind="stable")
    return frame.reset_index(drop=True), unfinished


# ---------------------------------------------------------------------------
# Per-factor MIG (factor_mig) of a job.
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
    path = metric_result(job_dir, _FACTOR_MIG_REP, FACTOR_MIG)
    if not str(job_dir) or not path.is_file():
        return None
    record = read_result(path, [f"evaluation_results.{key}" for key in
                                ("mi_matrix", "factor_gap", "discrete_mig")])
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
