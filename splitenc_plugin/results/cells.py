"""What a cell is: the runs that pool, and what identifies one run across studies.

A cell (:data:`CELL`) is every run of one configuration on one data version
at one step count, its seeds pooled. The data fingerprint is part of it, so
runs made on two versions of a data set are never pooled, compared with each
other or drawn together. Identical configurations pool across studies
(:data:`POOLED_CELL`): e.g. the correlated-noise study's sigma = 0 FactorVAE
is the very run the split study's vanilla FactorVAE cell needs; a run present
in both studies counts once (:func:`count_once`).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["CELL", "POOLED_CELL", "POOLED_RUN", "count_once"]

# A cell: runs that pool. The data fingerprint is part of it, so runs made on two
# versions of a data set are never pooled, compared with each other or drawn together.
CELL = ["study", "dataset", "data_fingerprint", "model", "encoder", "sigma", "steps"]
# What identifies a run when identical configurations pool across studies.
POOLED_CELL = [c for c in CELL if c != "study"]
POOLED_RUN = [*POOLED_CELL, "seed"]


def count_once(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each pooled run once: the copy of the first study by name."""
    return frame.sort_values("study").drop_duplicates(subset=POOLED_RUN)
