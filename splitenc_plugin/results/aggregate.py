"""``splitenc_aggregate DIR``: results table, summary and the paper's figures — the public API.

:func:`aggregate` reads every finished job under ``DIR/<study>/<model_num>/``
(or under several such directories, e.g. a study run with and without a gin
fragment, whose jobs cannot share directories) and writes, into ``DIR`` (or
``--output_dir``):

* ``results.csv`` — one row per model (:data:`COLUMNS`; for any dlib study
  also its layered fragments and bindings, :mod:`.cells`; then one
  ``gap_<factor>`` column per factor of the jobs' per-factor MIG);
* ``summary.md`` — the data versions present; per cell (:data:`CELL`) n,
  median / IQR / max MIG, median reconstruction loss; the differences of
  medians of each compared pair (a plugin study's comparison, or a study with
  a fragment against the same study without) and the paper's claims judged
  on them by a fixed decision rule, each verdict with its chance if
  exchangeable; the MI decomposition as intervals; the median gap per cell
  and factor;
* ``figures/*.png`` — MIG violins (Figs 2, 3, 5, 7; for any dlib study
  Locatello et al.'s layout: per model, MIG against its regularisation
  strength), MIG vs reconstruction (Figs 4, 6, 8), Appendix C, per-run
  factor × latent heatmaps and learning curves per cell.

The work is done by one module per job, all under ``splitenc_plugin.results``:

========================== ===================================================
:mod:`.load`               finished jobs -> the results table (+ factor_mig)
:mod:`.cells`              what a cell is (any dlib study: + bindings, fragments)
:mod:`.comparisons`        which cells each study compares (from the grids)
:mod:`.plan`               planned runs not finished yet (verdict hold-back)
:mod:`.stats`              one comparison's statistics
:mod:`.mi`                 the MI decomposition as intervals
:mod:`.compare`            per-cell statistics and differences (``summarize``)
:mod:`.verdicts`           the decision rule and each verdict's chance
:mod:`.factors`            per-factor MIG across runs
:mod:`.curves`             learning curves per run and cell
:mod:`.report`             summary.md
:mod:`.figure_sets`        which figures, of which runs
:mod:`.figures`            drawing (matplotlib)
:mod:`.visualize`          dlib visualize_model for Appendix C (subprocess)
:mod:`.cli`                ``splitenc_aggregate``'s command line
========================== ===================================================

This module re-exports their public names, so ``from
splitenc_plugin.results.aggregate import summarize`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from splitenc_plugin.errors import SplitencUserError, refuse_file_as_directory
from splitenc_plugin.results.cells import CELL
from splitenc_plugin.results.cli import main
from splitenc_plugin.results.compare import (
    difference_table,
    figure_runs,
    pooled_duplicates,
    summarize,
    waiting_comparisons,
)
from splitenc_plugin.results.curves import CURVE_QUANTITIES, cell_curves, run_curves
from splitenc_plugin.results.factors import (
    factor_gap_medians,
    factor_mi_panels,
    latent_factor_labels,
)
from splitenc_plugin.results.figure_sets import write_figures
from splitenc_plugin.results.load import (
    COLUMNS,
    FACTOR_NAMES,
    GAP_PREFIX,
    REPRESENTATIONS,
    factor_names,
    gap_column,
    gap_columns,
    load_factor_mig,
    load_results,
)
from splitenc_plugin.results.mi import (
    DISTINCT_IMAGES,
    MI_QUANTITIES,
    entropy_cap,
    mi_intervals,
    mi_separation,
)
from splitenc_plugin.results.plan import (
    PLAN_COLUMNS,
    planned_runs,
    unfinished_planned_runs,
)
from splitenc_plugin.results.report import summary_notes, summary_tables, summary_text
from splitenc_plugin.results.verdicts import (
    MIN_RUNS,
    PAPER_CLAIMS,
    SEPARATED,
    claim_verdicts,
)

__all__ = ["CELL", "COLUMNS", "CURVE_QUANTITIES", "DISTINCT_IMAGES", "FACTOR_NAMES",
           "GAP_PREFIX", "MIN_RUNS", "MI_QUANTITIES", "PAPER_CLAIMS", "PLAN_COLUMNS",
           "REPRESENTATIONS", "SEPARATED", "aggregate", "cell_curves", "claim_verdicts",
           "difference_table", "entropy_cap", "factor_gap_medians", "factor_mi_panels",
           "factor_names", "figure_runs", "gap_column", "gap_columns", "latent_factor_labels",
           "load_factor_mig", "load_results", "main", "mi_intervals", "mi_separation",
           "planned_runs", "pooled_duplicates", "run_curves", "summarize",
           "unfinished_planned_runs", "waiting_comparisons"]


def aggregate(directory: str | Path | Sequence[str | Path],
              output_dir: str | Path | None = None,
              study: str | None = None, visualize: bool = True,
              selections: str | Path | None = None) -> dict:
    """Writes results.csv, summary.md and figures/*.png for the jobs under ``directory``.

    Args:
      directory: The runner's ``--output_directory``, or several read together
        (e.g. a study run with and without a gin fragment, which cannot share
        job directories).
      output_dir: Where to write (default: ``directory``; required with
        several).
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

    Raises:
      SplitencUserError: Before anything is written: no such directory or
        study, no finished job, an unreadable ``done.json`` (naming it) or
        selections file.
    """
    several = not isinstance(directory, (str, Path))
    if several and output_dir is None:
        raise SplitencUserError("several directories to aggregate: pass --output_dir, where "
                                "results.csv, summary.md and figures/ go")
    if output_dir is not None:
        refuse_file_as_directory(output_dir, "--output_dir",
                                 "for results.csv, summary.md and figures/")
    frame, unfinished = load_results(directory, study)
    planned = planned_runs(unfinished, selections)
    if study is not None:
        planned = planned[planned["study"] == study]
    cells, diffs = summarize(frame, planned)

    out = Path(output_dir) if output_dir is not None else Path(directory)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    frame.to_csv(csv_path, index=False)
    drawn = write_figures(frame, fig_dir, visualize=visualize)
    table = summary_tables(frame, cells, diffs)
    where = ", ".join(str(Path(d)) for d in directory) if several else directory
    notes = summary_notes(where, frame, cells, unfinished, planned, drawn.no_curves,
                          drawn.late_curves, drawn.notes, diffs)
    summary_path = out / "summary.md"
    summary_path.write_text(summary_text(notes, table, drawn.written, out))
    return {"csv": csv_path, "summary": summary_path, "figures": drawn.written,
            "table": table, "frame": frame, "unfinished": unfinished}
