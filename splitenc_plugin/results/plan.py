"""Completeness: which planned runs have not finished, and whom they hold back.

A comparison gets no verdict while a planned run of either of its cells is
unfinished. Planned runs are the unfinished job directories found (their
``job.json`` names the grid point and steps) and, with ``--selections FILE``,
every job that file selects, even those never started (steps unknown). One
rule (:func:`finishes`) decides both the verdict hold-back
(:func:`missing_runs`) and the summary's "not finished yet" list
(:func:`unfinished_planned_runs`).

A planned job of a study other than the plugin's grids, or with gin
fragments layered on, is matched by what its spec fixes — dataset, seed,
steps, the fragments and the study's bindings (:func:`~.load.study_cell_values`)
— while its model, encoder and sigma, read from the operative config once
it has run, are unknown (NaN) and match any. A job planned from a
selections file also knows neither its steps nor the run's extra
``--gin_bindings`` (a selections line carries neither): a binding column it
does not bind is unknown (NaN) and matches any value (:func:`_unknown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.results.cells import FRAGMENTS, NO_FRAGMENTS, describe_extras
from splitenc_plugin.results.load import study_cell_values
from splitenc_plugin.studies.grid import StudyGrid
from splitenc_plugin.sweep.job_files import read_job_spec

__all__ = ["PLAN_COLUMNS", "RUN_POINT", "describe_planned", "finishes", "missing_runs",
           "planned_runs", "unfinished_planned_runs"]

# A run's grid point apart from its study and steps: what matches a planned
# run to a finished one (its steps may be unknown: a --selections file does
# not say them; the study does not matter: identical configs pool).
RUN_POINT = list(StudyGrid.AXES)
PLAN_COLUMNS = ["study", *RUN_POINT, "steps"]
# Read from the operative config: unknown (NaN, matching any) for a planned
# job of another study or with fragments.
_OPERATIVE = ["model", "encoder", "sigma"]


def _extras(*frames: pd.DataFrame) -> list[str]:
    """The fragments and study-binding columns of any of ``frames``, in order."""
    return list(dict.fromkeys(c for frame in frames for c in frame.columns
                              if c == FRAGMENTS or "." in c))


def _default(column: str) -> str:
    """The value of an extra column for a run that does not have it."""
    return NO_FRAGMENTS if column == FRAGMENTS else ""


def _planned_row(spec_dict: dict) -> dict:
    """A planned run from a job spec (``job.json["spec"]``, :meth:`JobSpec.to_dict`)."""
    from splitenc_plugin.studies.grid import GRIDS, JobSpec

    spec = JobSpec.from_dict(spec_dict)
    row = {c: getattr(spec, c) for c in PLAN_COLUMNS}
    row["model_num"] = spec.model_num
    extras = study_cell_values(spec.study, spec_dict)
    # A grid's extra bindings cannot change model, encoder or sigma
    # (check_extra_bindings refuses them); a fragment or another study's
    # bindings can.
    if FRAGMENTS in extras or (extras and spec.study not in GRIDS):
        row.update(dict.fromkeys(_OPERATIVE, np.nan))
    row.update(extras)
    return row


def _open(planned: pd.DataFrame, column: str) -> pd.Series:
    """Which planned runs cannot know an extra cell column they do not have.

    A run planned from a selections file (steps NaN): it may have run with
    any extra ``--gin_bindings``, so a binding it does not bind is unknown
    (NaN, matching any value: :func:`_unknown`). The fragments are always
    known (a selections line names them), as is what a started job's
    ``job.json`` does not bind (known absent: :func:`_default`).
    """
    if column == FRAGMENTS:
        return pd.Series(False, index=planned.index)
    return planned["steps"].isna()


def _unknown(planned: pd.DataFrame, column: str) -> pd.Series:
    """Which planned runs match any value of ``column`` (NaN there; see :func:`_open`)."""
    return planned[column].isna()


def _with_columns(planned: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``planned`` with every extra column of ``columns``: NaN where unknown, else its default."""
    missing = {c: pd.Series(_default(c), index=planned.index, dtype=object).mask(
        _open(planned, c)) for c in columns if c not in planned}
    return planned.assign(**missing)


def planned_runs(unfinished: Sequence[Path] = (),
                 selections: str | Path | None = None) -> pd.DataFrame:
    """Runs that were planned but have not finished, for the completeness check.

    Args:
      unfinished: Job directories :func:`~splitenc_plugin.results.load.load_results`
        left out; those with a ``job.json`` (splitenc_reproduce) name their
        grid point and steps.
      selections: A ``splitenc_reproduce --selections`` file: every job it
        plans is expected, at whatever step count the compared cells have.

    Returns:
      One row per planned run with :data:`PLAN_COLUMNS` (``steps`` NaN where
      unknown), ``model_num`` and the extra cell columns of runs that have
      them (see the module doc); finished ones are still included (callers
      match them out).

    Raises:
      SplitencUserError: If the selections file is missing or invalid, or
        (MarkerError) an unfinished job's ``job.json`` cannot be read.
    """
    from splitenc_plugin.sweep.plan import plan_selections, read_selections

    rows = []
    for job_dir in unfinished:
        spec = read_job_spec(job_dir)  # a damaged job.json stops the command (MarkerError)
        if spec is not None:  # else a dlib_reproduce job dir: its grid point is unknown
            rows.append(_planned_row(spec.to_dict()))
    if selections is not None:
        jobs, _ = plan_selections(read_selections(selections), ".", steps=1)
        rows += [{**_planned_row(job.spec.to_dict()), "steps": np.nan} for job in jobs]
    extras = list(dict.fromkeys(c for row in rows for c in row if c == FRAGMENTS or "." in c))
    frame = pd.DataFrame(rows, columns=[*PLAN_COLUMNS, "model_num", *extras]).astype(
        {"steps": float})
    # Absent from a row: unknown (NaN) where the row cannot know it (_open),
    # else known absent (its default).
    for column in extras:
        fill = frame[column].isna() & ~_open(frame, column)
        frame.loc[fill, column] = _default(column)
    return frame


def finishes(planned_steps: pd.Series, finished_steps) -> pd.Series:
    """Whether a run finished at ``finished_steps`` finishes planned runs of ``planned_steps``.

    A planned run whose steps are known (an unfinished job directory) is
    finished only at that step count; one from a selections file (steps NaN)
    at any. The one rule for both the verdict hold-back and the summary's
    "not finished yet" list.
    """
    return planned_steps.isna() | (planned_steps == finished_steps)


def missing_runs(planned: pd.DataFrame | None, arm: pd.DataFrame, config: dict,
                 unknown_matches: bool = True) -> int:
    """How many planned seeds of one comparison arm (``config``) have not finished.

    Args:
      planned: :func:`planned_runs` (None or empty: nothing is missing).
      arm: The arm's finished runs (their ``seed``).
      config: The arm's cell (its :data:`RUN_POINT` values but the seed,
        ``steps`` and any extra cell columns).
      unknown_matches: Whether what a planned run does not know matches any
        value (the verdict hold-back: a run that may belong to the arm holds
        it back). False: only runs known to belong to the arm count — an
        unknown model, encoder or sigma matches nothing, and an unknown
        extra binding is read as the plan says it, unbound (a selections
        line binds none) — for saying that runs of the arm are planned.
    """
    if planned is None or planned.empty:
        return 0
    match = np.ones(len(planned), dtype=bool)
    for column in RUN_POINT[:-1]:  # all but the seed
        equal = (planned[column] == config[column]).to_numpy()
        if column in _OPERATIVE and unknown_matches:  # unknown until run: matches any
            equal |= planned[column].isna().to_numpy()
        match &= equal
    columns = list(dict.fromkeys([*_extras(planned),
                                  *(c for c in config if c == FRAGMENTS or "." in c)]))
    planned = _with_columns(planned, columns)
    for column in columns:
        value = config.get(column, _default(column))
        if unknown_matches:
            match &= ((planned[column] == value) | _unknown(planned, column)).to_numpy()
        else:
            match &= (planned[column].fillna(_default(column)) == value).to_numpy()
    match &= finishes(planned["steps"], config["steps"]).to_numpy()
    return len(set(planned.loc[match, "seed"]) - set(arm["seed"]))


def unfinished_planned_runs(frame: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Planned runs with no finished run at their grid point (and steps, where known).

    The same match as the verdicts' hold-back (:func:`finishes`). A run
    planned both ways is listed once, with its steps.
    """
    extras = _extras(planned, frame)
    frame = frame.assign(**{c: _default(c) for c in extras if c not in frame})
    planned = _with_columns(planned, extras)
    point = [*RUN_POINT, *extras]
    planned = planned.drop_duplicates(subset=[*point, "steps"]).reset_index(drop=True)
    finished = frame[[*point, "steps"]].rename(columns={"steps": "finished_steps"})
    # Each planned run matches on the columns it knows: a plugin grid's on
    # its whole grid point; one whose model, encoder and sigma are unknown
    # until run, or whose extra bindings are (_unknown), on the rest.
    open_columns = [*_OPERATIVE, *(c for c in extras if c != FRAGMENTS)]
    unknown = pd.DataFrame({c: planned["model"].isna() if c in _OPERATIVE
                            else _unknown(planned, c) for c in open_columns})
    found = []
    for pattern, part in planned.groupby([unknown[c] for c in open_columns], sort=False):
        drop = [c for c, open_ in zip(open_columns, pattern) if open_]
        found.append(part.reset_index().merge(
            finished.drop(columns=drop), on=[c for c in point if c not in drop], how="inner"))
    found = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        columns=["index", "steps", "finished_steps"])
    found = found[finishes(found["steps"], found["finished_steps"])]
    # A job both in the selections file (steps unknown) and started (steps
    # known) is listed once, with its steps. Keyed like the dedupe above and
    # the match: by grid point, whatever the study.
    left = planned.drop(index=found["index"].unique())
    known = left["steps"].notna().to_numpy()
    started = left.loc[known, point].drop_duplicates()
    also_started = left[point].merge(started, how="left", indicator=True)["_merge"]
    return left[known | (also_started != "both").to_numpy()]


def describe_planned(run: dict) -> str:
    """A planned run in a line of text: its study and grid point, or model number and bindings."""
    if pd.isna(run["model"]):
        extras = [c for c in run if c == FRAGMENTS or "." in c]
        return (f"{run['study']} model {run['model_num']}{describe_extras(run, extras)} "
                f"seed {run['seed']}")
    return f"{run['study']} {run['model']} {run['encoder']} σ={run['sigma']:g} seed {run['seed']}"
