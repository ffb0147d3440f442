"""One figure set per study, dataset and data version: which runs, which files.

For each (study, dataset, data version) of the results table this draws
(:mod:`.figures`) the MIG violins, MIG vs reconstruction, the per-run
factor × latent heatmaps (where jobs have factor_mig), the learning curves
(where jobs have them) and Appendix C — reconstructions and traversals of
each pooled cell's best-MIG model (:mod:`.visualize`), each traversal column
labelled with its most informative factor (:mod:`.factors`). A study's
figures show its cells beside their pooled partners from other studies
(:func:`~.compare.figure_runs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from splitenc_plugin.results.cells import (
    extra_cell_columns,
    extras_line,
    pooled_cell_columns,
)
from splitenc_plugin.results.compare import figure_runs
from splitenc_plugin.results.comparisons import ENCODER_LABELS
from splitenc_plugin.results.curves import cell_curves, late_curves, run_curves
from splitenc_plugin.results.factors import factor_mi_panels, latent_factor_labels
from splitenc_plugin.results.traversals import FITTED_DIR
from splitenc_plugin.results.visualize import visualizations

__all__ = ["FigureSets", "write_figures"]


@dataclass
class FigureSets:
    """What :func:`write_figures` wrote and what the summary says about it.

    Attributes:
      written: The PNG files, in drawing order.
      notes: Lines for the summary (best-MIG models left out of Appendix C).
      no_curves: Job directories of finished runs without learning curves.
      late_curves: Job directory -> first logged step, of runs whose curves
        miss the start of training (:func:`~.curves.late_curves`).
    """

    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    no_curves: set[str] = field(default_factory=set)
    late_curves: dict[str, int] = field(default_factory=dict)


def write_figures(frame: pd.DataFrame, fig_dir: Path, visualize: bool = True) -> FigureSets:
    """Draws every figure set of ``frame`` into ``fig_dir``.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.
      fig_dir: The output directory (exists).
      visualize: Also the Appendix C figures (runs dlib's ``visualize_model``
        for best-MIG models without pictures, :func:`~.visualize.visualizations`).

    Returns:
      The files written and the notes for the summary. File names:
      ``<study>_<dataset>_<kind>.png``; a (study, dataset) with runs on
      several data versions gets one set per version, its names ending in
      the data fingerprint.
    """
    from splitenc_plugin.results import figures

    sets = FigureSets()
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
        sets.written.append(figures.mig_violins(group, study_name, dataset,
                                                fig_dir / f"{stem}_mig_violin.png"))
        sets.written.append(figures.mig_vs_reconstruction(
            group, study_name, dataset, fig_dir / f"{stem}_mig_vs_recon.png"))
        heatmaps = factor_mi_panels(group)
        if heatmaps:
            sets.written.append(figures.factor_mi_heatmaps(heatmaps, study_name, dataset,
                                                           fig_dir / f"{stem}_factor_mi.png"))
        curves, missing = run_curves(group)
        sets.no_curves.update(missing)
        sets.late_curves.update(late_curves(curves))
        if not curves.empty:
            sets.written.append(figures.learning_curves(
                cell_curves(curves), study_name, dataset,
                fig_dir / f"{stem}_learning_curves.png"))
        if not visualize:
            continue
        appendix = _appendix_c(group, study_name, dataset, fig_dir, stem, sets.notes)
        if appendix is not None:
            sets.written.append(appendix)
    return sets


def _appendix_c(group: pd.DataFrame, study_name: str, dataset: str, fig_dir: Path,
                stem: str, notes: list[str]) -> Path | None:
    """Appendix C of one figure set: a panel per pooled cell's best-MIG model.

    A cell with runs in two studies gets one panel. Best models without
    pictures (pruned, no TF-Hub module) are left out, each with a line in
    ``notes``. Returns the figure, or None if no panel could be drawn.
    """
    from splitenc_plugin.results import figures

    pooled = pooled_cell_columns(group)
    best = figures.in_drawing_order(
        group.loc[group.groupby(pooled, dropna=False)["mig_mean"].idxmax()], pooled)
    # The fragments and bindings that tell this figure's cells apart.
    extras = [c for c in extra_cell_columns(group) if group[c].nunique(dropna=False) > 1]
    vis = visualizations([Path(p) for p in best["job_dir"]], fig_dir / "visualizations")
    panels, labels = [], []
    for _, row in best.iterrows():
        path = vis.get(Path(row["job_dir"]))
        run = f"{row['study']}/{row['model_num']}"
        model = f"model {row['model_num']}" if row["study"] == study_name else run
        # Two lines: a borrowed cell's "<study>/<num>" is too long for one.
        # Any dlib study: a line for the fragments and strength telling its cells apart.
        line = extras_line(row, extras)
        label = (f"{figures.MODEL_LABELS.get(row['model'], row['model'])}, "
                 f"{ENCODER_LABELS.get(row['encoder'], row['encoder'])}, σ={row['sigma']:g}"
                 + (f"\n{line}" if line else "") + f"\n{model} "
                 f"(seed {row['seed']}), MIG {row['mig_mean']:.3f}")
        if path is None:
            notes.append(f"{run}: no visualizations "
                         "and no TF-Hub module (pruned): left out of Appendix C")
            continue
        fitted = path / FITTED_DIR / "traversals0.jpg"
        traversal, caption = ((fitted, "latent traversals (column: latent, row: its fitted ±2σ range)")
                              if fitted.is_file() else
                              (path / "traversals" / "traversals0.jpg",
                               "latent traversals (column: latent, row: value in [-1, 1])"))
        panels.append((label, path / "reconstructions" / "reconstructions.jpg", traversal, caption))
        labels.append(latent_factor_labels(row["job_dir"], row["dataset"]))
    if not panels:
        return None
    return figures.appendix_c(panels, study_name, dataset, fig_dir / f"{stem}_appendix_c.png",
                              latent_labels=labels)
