"""Completeness: which planned runs have not finished, and whom they hold back.

A comparison gets no verdict while a planned run of either of its cells is
unfinished. Planned runs are the unfinished job directories found (their
``job.json`` names the grid point and steps) and, with ``--selections FILE``,
every job that file selects, even those never started (steps unknown). One
rule (:func:`finishes`) decides both the verdict hold-back
(:func:`missing_runs`) and the summary's "not finished yet" list
(:func:`unfinished_planned_runs`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.sweep.job import JOB_FILE

__all__ = ["PLAN_COLUMNS", "RUN_POINT", "finishes", "missing_runs", "planned_runs",
           "unfinished_planned_runs"]

# A run's grid point apart from its study and steps: what matches a planned
# run to a finished one (its steps may be unknown: a --selections file does
# not say them; the study does not matter: identical configs pool).
RUN_POINT = ["dataset", "model", "encoder", "sigma", "seed"]
PLAN_COLUMNS = ["study", *RUN_POINT, "steps"]


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


def finishes(planned_steps: pd.Series, finished_steps) -> pd.Series:
    """Whether a run finished at ``finished_steps`` finishes planned runs of ``planned_steps``.

    A planned run whose steps are known (an unfinished job directory) is
    finished only at that step count; one from a selections file (steps NaN)
    at any. The one rule for both the verdict hold-back and the summary's
    "not finished yet" list.
    """
    return planned_steps.isna() | (planned_steps == finished_steps)


def missing_runs(planned: pd.DataFrame | None, arm: pd.DataFrame, config: dict) -> int:
    """How many planned seeds of one comparison arm (``config``) have not finished.

    Args:
      planned: :func:`planned_runs` (None or empty: nothing is missing).
      arm: The arm's finished runs (their ``seed``).
      config: The arm's cell (its :data:`RUN_POINT` values but the seed, and
        ``steps``).
    """
    if planned is None or planned.empty:
        return 0
    match = np.ones(len(planned), dtype=bool)
    for column in RUN_POINT[:-1]:  # all but the seed
        match &= (planned[column] == config[column]).to_numpy()
    match &= finishes(planned["steps"], config["steps"]).to_numpy()
    return len(set(planned.loc[match, "seed"]) - set(arm["seed"]))


def unfinished_planned_runs(frame: pd.DataFrame, planned: pd.DataFrame) -> pd.DataFrame:
    """Planned runs with no finished run at their grid point (and steps, where known).

    The same match as the verdicts' hold-back (:func:`finishes`). A run
    planned both ways is listed once, with its steps.
    """
    planned = planned.drop_duplicates(subset=[*RUN_POINT, "steps"]).reset_index(drop=True)
    found = planned.reset_index().merge(
        frame[[*RUN_POINT, "steps"]].rename(columns={"steps": "finished_steps"}),
        on=RUN_POINT, how="inner")
    found = found[finishes(found["steps"], found["finished_steps"])]
    # A job both in the selections file (steps unknown) and started (steps
    # known) is listed once, with its steps. Keyed like the dedupe above and
    # the match: by grid point, whatever the study.
    left = planned.drop(index=found["index"].unique())
    known = left["steps"].notna().to_numpy()
    started = left.loc[known, RUN_POINT].drop_duplicates()
    also_started = left[RUN_POINT].merge(started, how="left", indicator=True)["_merge"]
    return left[known | (also_started != "both").to_numpy()]
