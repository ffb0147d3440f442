"""What a cell is: the runs that pool, and what identifies one run across studies.

A cell (:data:`CELL`) is every run of one configuration on one data version
at one step count, its seeds pooled. The data fingerprint is part of it, so
runs made on two versions of a data set are never pooled, compared with each
other or drawn together. Identical configurations pool across studies
(:data:`POOLED_CELL`): e.g. the correlated-noise study's sigma = 0 FactorVAE
is the very run the split study's vanilla FactorVAE cell needs; a run present
in both studies counts once (:func:`count_once`).

**Any dlib study.** The plugin's own studies are grids over dataset, model,
encoder, sigma and seed, which :data:`CELL` names. A job of any other study
(dlib's ``unsupervised_study_v1``, a user's) records the study's bindings for
its model and the gin fragments layered over them (``done.json["identity"]``,
:func:`splitenc_plugin.results.load.study_cell_values`); its cell is then also
defined by

* :data:`FRAGMENTS` (``gin_configs``): the layered fragments, each as
  ``<file name>@<first 12 hex digits of its SHA-256>`` in layering order,
  joined by `` + `` (:data:`NO_FRAGMENTS` for none): two runs whose fragments
  differ in content never pool;
* one column per binding of the study, named by the binding (``vae.beta``,
  ``model.name``, ``dip_vae.dip_type``, ...; its value as the study wrote
  it, quotes, ``@`` and ``()`` stripped): every binding except those that
  name the run rather than its configuration or are a column already
  (:data:`RUN_BINDINGS`: ``model.model_num``, ``model.random_seed`` -> seed,
  ``model.training_steps`` -> steps, ``dataset.name``, ``model.model``,
  ``encoder.encoder_fn`` — read from the operative config, where a
  fragment's encoder wins). ``model.name`` is kept: ``dlib_reproduce``
  prepends the model config's file name as ``model.name`` and a study's own
  ``model.name`` binding overrides it (gin: last wins), so the column is
  the study's name of the model where it has one (``dip_vae_i`` and
  ``dip_vae_ii`` share ``model.model = @dip_vae()``) and the config's name
  otherwise — the prepended copy alone is what collapses.

A job of the plugin's own studies gets a binding column only for what its
study does not bind itself to that value: extra ``--gin_bindings`` (e.g.
``factor_vae.gamma = 10.0``), so such runs form cells of their own.

These columns are present only when some job has them, so the plugin's own
studies keep :data:`CELL` exactly (:func:`cell_columns`) unless run with
extra bindings. A run without a binding another run has reads ``""`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

__all__ = ["CELL", "FRAGMENTS", "NO_FRAGMENTS", "POOLED_CELL",
           "REGULARISATION_STRENGTH", "RUN_BINDINGS", "binding_columns", "cell_columns",
           "count_once", "describe_extras", "extra_cell_columns", "extras_line", "fragment_labels",
           "pooled_cell_columns", "pooled_run_columns", "strength_column", "strength_order"]

# A cell: runs that pool. The data fingerprint is part of it, so runs made on two
# versions of a data set are never pooled, compared with each other or drawn together.
CELL = ["study", "dataset", "data_fingerprint", "model", "encoder", "sigma", "steps"]
# What identifies a run when identical configurations pool across studies.
POOLED_CELL = [c for c in CELL if c != "study"]

# The layered gin fragments of a run (a column only when some job has them).
FRAGMENTS = "gin_configs"
NO_FRAGMENTS = "none"

# Bindings that are no cell column of their own: the run's number and seed,
# and what the table reads from the operative config (binding -> its column).
RUN_BINDINGS = {
    "model.model_num": "model_num",
    "model.random_seed": "seed",
    "model.training_steps": "steps",
    "dataset.name": "dataset",
    "model.model": "model",
    "encoder.encoder_fn": "encoder",
}

# dlib's models (model.model) -> the binding that sets their regularisation
# strength, the one hyperparameter Locatello et al.'s unsupervised_study_v1
# sweeps within each model.
REGULARISATION_STRENGTH = {
    "vae": "vae.beta",
    "annealed_vae": "annealed_vae.c_max",
    "factor_vae": "factor_vae.gamma",
    "dip_vae": "dip_vae.lambda_od",
    "beta_tc_vae": "beta_tc_vae.beta",
}


def binding_columns(frame: pd.DataFrame) -> list[str]:
    """The study-binding columns of a results frame (``vae.beta``, ...), in order."""
    return [c for c in frame.columns if "." in c]


def extra_cell_columns(frame: pd.DataFrame) -> list[str]:
    """The cell columns beyond :data:`CELL`: :data:`FRAGMENTS` and the binding columns."""
    return [c for c in frame.columns if c == FRAGMENTS or "." in c]


def cell_columns(frame: pd.DataFrame) -> list[str]:
    """:data:`CELL` plus the frame's :func:`extra_cell_columns` (none: exactly CELL)."""
    return [*CELL, *extra_cell_columns(frame)]


def pooled_cell_columns(frame: pd.DataFrame) -> list[str]:
    """A cell across studies: :func:`cell_columns` without ``study``."""
    return [c for c in cell_columns(frame) if c != "study"]


def pooled_run_columns(frame: pd.DataFrame) -> list[str]:
    """A run across studies: :func:`pooled_cell_columns` and ``seed``."""
    return [*pooled_cell_columns(frame), "seed"]


def count_once(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each pooled run once: the copy of the first study by name."""
    return frame.sort_values("study").drop_duplicates(subset=pooled_run_columns(frame))


def describe_extras(point: Mapping, columns: Sequence[str]) -> str:
    """' (vae.beta=1.0, gin_configs=none)': a cell's extra columns for a line of text.

    Empty when there are none (the plugin's studies) or all are empty.
    """
    shown = [f"{c}={point[c]}" for c in columns if c in point and point[c] != ""]
    return f" ({', '.join(shown)})" if shown else ""


def extras_line(point: Mapping, columns: Sequence[str]) -> str:
    """'+ split_encoder.gin, vae.beta=1.0': a cell's extra columns for a figure label.

    The fragments by :func:`fragment_labels`, the bindings as ``name=value``;
    empty when there are none.
    """
    parts = [fragment_labels([point[c]])[point[c]] if c == FRAGMENTS else f"{c}={point[c]}"
             for c in columns if c in point and point[c] != ""]
    return ", ".join(parts)


def fragment_labels(values: Iterable[str]) -> dict[str, str]:
    """Each :data:`FRAGMENTS` value's label in comparisons and legends.

    ``"no fragment"`` for :data:`NO_FRAGMENTS`, else ``"+ "`` and the
    fragments' file names (``"+ split_encoder.gin"``); where two values have
    the same file names (a fragment whose content changed), their digests
    too.
    """
    values = list(dict.fromkeys(values))

    def names(value: str) -> str:
        return " + ".join(part.rsplit("@", 1)[0] for part in value.split(" + "))

    counts = pd.Series([names(v) for v in values]).value_counts()
    return {v: "no fragment" if v == NO_FRAGMENTS
            else "+ " + (names(v) if counts[names(v)] == 1 else v) for v in values}


def _numeric(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def strength_column(runs: pd.DataFrame) -> str | None:
    """The binding that sets the regularisation strength of one model's runs.

    Args:
      runs: Rows of one model (one panel) with the study's binding columns.

    Returns:
      :data:`REGULARISATION_STRENGTH` of the runs' ``model`` where the study
      binds it (``vae.beta`` for dlib's beta_vae, ``dip_vae.lambda_od`` for
      both DIP-VAEs); otherwise the one binding column (``model.name`` aside)
      with more than one value among the runs; None if there is no such
      column, or several.
    """
    bindings = [c for c in binding_columns(runs) if c != "model.name"]
    present = [c for c in bindings if (runs[c] != "").any()]
    models = set(runs["model"])
    if len(models) == 1:
        known = REGULARISATION_STRENGTH.get(next(iter(models)))
        if known in present:
            return known
    varying = [c for c in present if runs[c].nunique() > 1]
    return varying[0] if len(varying) == 1 else None


def strength_order(values: Iterable[object]) -> list:
    """The strength values in ascending numeric order (text order if not all numbers)."""
    values = [v for v in dict.fromkeys(values) if v != ""]
    if all(_numeric(v) is not None for v in values):
        return sorted(values, key=_numeric)
    return sorted(values, key=str)
