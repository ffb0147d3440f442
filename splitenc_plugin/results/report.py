"""``summary.md``: the notes, the per-cell and differences tables, the verdicts, MI and factors.

Pure text: every number comes from :mod:`.compare`, :mod:`.verdicts`,
:mod:`.mi` and :mod:`.factors`; this module only lays them out as markdown
(:func:`summary_tables` is also what ``splitenc_aggregate`` prints). A study
binding that every run shares (e.g. ``unsupervised_study_v1``'s
``decoder.decoder_fn``) is named once in the notes and left out of the
tables — except ``model.name`` and the models' regularisation strengths
(:data:`~.cells.REGULARISATION_STRENGTH`), which every table shows;
results.csv keeps every column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from splitenc_plugin.results.cells import (
    REGULARISATION_STRENGTH,
    binding_columns,
    cell_columns,
    describe_extras,
    extra_cell_columns,
)
from splitenc_plugin.results.compare import (
    cross_study_comparisons,
    difference_table,
    pooled_duplicates,
    waiting_comparisons,
)
from splitenc_plugin.results.curves import CURVES, FIRST_SUMMARY_BY
from splitenc_plugin.results.factors import factor_gap_medians
from splitenc_plugin.results.mi import MI_QUANTITIES, entropy_cap, mi_separation
from splitenc_plugin.results.plan import describe_planned, unfinished_planned_runs
from splitenc_plugin.results.verdicts import MIN_RUNS, SEPARATED, claim_verdicts

__all__ = ["markdown_table", "summary_notes", "summary_tables", "summary_text"]


def _fmt(column: str, value) -> str:
    if isinstance(value, float):
        if column == "sigma":
            return "matrix" if np.isnan(value) else f"{value:g}"
        # E.g. a Mann-Whitney p with one run in a cell: there is no test.
        return "—" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a markdown table (sigma as ``0.9`` / ``matrix``, other floats to 4 places)."""
    if table.empty:
        return "_none_\n"
    header = "| " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        cells = [_fmt(column, value) for column, value in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _shared_bindings(frame: pd.DataFrame) -> dict[str, str]:
    """Binding columns with one value in every run (for the plugin's studies,
    extra ``--gin_bindings`` every run was made with).

    ``model.name`` and the regularisation strengths are never counted: they
    name a dlib study's cells, even where a run has only one of them.
    """
    always = {"model.name", *REGULARISATION_STRENGTH.values()}
    return {c: frame[c].iloc[0] for c in binding_columns(frame)
            if c not in always and frame[c].nunique(dropna=False) == 1}


def _without(table: pd.DataFrame, shared: dict) -> pd.DataFrame:
    """``table`` without the columns of :func:`_shared_bindings`."""
    return table.drop(columns=[c for c in shared if c in table.columns])


def _data_notes(cells: pd.DataFrame) -> list[str]:
    """The summary's lines on data versions: which are present, which cells they split."""
    versions = cells.groupby(["data_fingerprint", "data"], sort=True)["n"].sum()
    lines = ["Data versions (a cell, comparison or figure never pools runs of two versions: "
             "the data fingerprint is part of every cell): "
             + "; ".join(f"{label} (`{fingerprint}`): {n} run(s)"
                         for (fingerprint, label), n in versions.items())]
    config = [c for c in cell_columns(cells) if c != "data_fingerprint"]
    split = cells.groupby(config, sort=True, dropna=False)["data"].agg(list)
    for key, labels in split.items():
        if len(labels) > 1:
            point = dict(zip(config, key))
            lines.append(f"Split by data version: {point['study']} {point['dataset']} "
                         f"{point['model']} {point['encoder']} σ={_fmt('sigma', point['sigma'])}"
                         f"{describe_extras(point, extra_cell_columns(cells))} "
                         f"({point['steps']} steps) on " + " and ".join(labels))
    return lines


def _verdict_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """:func:`~.verdicts.claim_verdicts` as summary.md shows them: the chance beside the verdict."""
    if verdicts.empty:
        return verdicts

    def chance(row) -> str:
        if np.isnan(row["chance"]):
            return "—"
        if row["chance_exact"]:
            return f"{row['chance_hits']} of {row['relabellings']} ({row['chance']:.3f})"
        return f"≈{row['chance']:.3f} ({row['relabellings']:,} random relabellings)"

    table = verdicts.drop(columns=["control", "chance", "chance_hits", "relabellings",
                                   "chance_exact"])
    table.insert(table.columns.get_loc("verdict") + 1, "chance if exchangeable",
                 verdicts.apply(chance, axis=1))
    return table


def _claims_heading(verdicts: pd.DataFrame) -> str:
    """The verdicts' heading; where capacity controls are judged, what their claims test."""
    if verdicts.empty or not verdicts["control"].any():
        return ("\n## The paper's claims at this budget\n\n'Inconclusive' is not 'as good "
                "as': no rule can show two cells equal from a few runs.\n\n")
    return ("\n## The paper's claims, and the capacity controls, at this budget\n\n"
            "Each claim says what it tests: the paper's section, or a capacity control (not "
            "in the paper: the same claim about another pair of encoders, judged by the same "
            "rule). 'Inconclusive' is not 'as good as': no rule can show two cells equal "
            "from a few runs.\n\n")


def _interval(lower: float, upper: float) -> str:
    """``[lower, upper]`` in nats: 2 decimals; 4 for a nonzero interval within ±0.1,
    which would read [0.00, 0.00] (an exact 0, e.g. factorized noise's CI, stays 0.00)."""
    if np.isnan(lower) or np.isnan(upper):
        return "—"
    decimals = 4 if 0 < max(abs(lower), abs(upper)) < 0.1 else 2
    return f"[{lower:.{decimals}f}, {upper:.{decimals}f}]"


def _mi_section(cells: pd.DataFrame, diffs: pd.DataFrame, shared: dict) -> str:
    """summary.md's MI-decomposition section: intervals per cell and per comparison."""
    table = _without(cells[[*cell_columns(cells), "n"]], shared)
    table["log N"] = cells["mi_log_n"]
    table["H(x) ≤"] = [f"{h:.2f}" if np.isfinite(h) else "—"
                       for h in cells["dataset"].map(entropy_cap)]
    for key, label in MI_QUANTITIES.items():
        table[label] = [_interval(lo, hi) for lo, hi in
                        zip(cells[f"{key}_lower"], cells[f"{key}_upper"])]
    text = ("\n## MI decomposition as intervals (nats)\n\n"
            "I(z;x) and Σ_j I(z_j;x) each lie between two estimates (README, "
            "MI-decomposition estimator): the plug-in (lower) and the leave-one-out "
            "(upper) value (the smaller first where sampling noise swapped them), "
            "clipped into what the quantity can be: 0 ≤ I(z;x) ≤ H(x) ≤ "
            "log(number of distinct images) (log 737,280 = 13.51 for dSprites; no bound "
            "for data sets drawn afresh, e.g. dummy_data). The gap = Σ_j I(z_j;x) − I(z;x) "
            "follows by interval arithmetic (lower: Σ's lower − I's upper; upper: Σ's upper "
            "− I's lower), raised to −CI where below it (TC ≥ 0); TC = gap + CI "
            "(Theorem 1), CI exact. "
            "log N caps the plug-in estimate, not I(z;x) itself (which can exceed it), so it "
            "is shown, not used to clip. A cell's interval: the median lower and the median "
            "upper bound of its runs. The intervals bracket the estimator's small-N bias, "
            "not its sampling noise (standard errors in each job's evaluation.json).\n\n"
            + markdown_table(table))
    if diffs.empty:
        return text
    separation = _without(mi_separation(diffs), shared)
    shown = separation[["dataset", "data_fingerprint", "model",
                        *(c for c in separation.columns if "." in c), "steps", "comparison",
                        "quantity"]].copy()
    shown["variant"] = [_interval(lo, hi) for lo, hi in
                        zip(separation["variant_lower"], separation["variant_upper"])]
    shown["baseline"] = [_interval(lo, hi) for lo, hi in
                         zip(separation["baseline_lower"], separation["baseline_upper"])]
    shown["overlap"] = separation["overlap"]
    shown["Δ midpoints"] = separation["difference"]
    shown["reading"] = ["separates" if sep else "—" if np.isnan(gap) else
                        "cannot separate them (intervals overlap)"
                        for sep, gap in zip(separation["separates"], separation["difference"])]
    return (text + "\n### Compared cells\n\nThe metric separates two cells only where "
            "their intervals are disjoint: where they share a point, both cells may have "
            "that value, however far apart the midpoints.\n\n" + markdown_table(shown))


def _factor_section(frame: pd.DataFrame, shared: dict) -> str:
    """summary.md's per-factor MIG tables: one per dataset and data version."""
    medians = _without(factor_gap_medians(frame), shared)
    text = ("\n## Per-factor MIG (factor_mig)\n\n"
            "Median over a cell's runs of each factor's gap: (I(z_j1; v_k) − I(z_j2; v_k)) / "
            "H(v_k), j1 and j2 the two latents most informative about factor v_k, on dlib's "
            "discretisation of the mean representation; the mean of a run's gaps is its "
            "MIG on factor_mig's own sample of points (dlib_reproduce, and the runner "
            "after it, seed each metric's evaluation apart), so it differs from the "
            "tables' MIG (the mig metric's sample) by sampling noise. "
            "n: the cell's runs with factor_mig results (runs without them are left "
            "out).\n\n")
    if medians.empty:
        return text + "_No run has factor_mig results._\n"
    shown = [c for c in cell_columns(medians) if c not in ("dataset", "data_fingerprint")]
    for (dataset, fingerprint), group in medians.groupby(["dataset", "data_fingerprint"],
                                                         sort=True):
        rows = [{**dict(zip([*shown, "n"], key)), **dict(zip(cell["factor"], cell["gap_median"]))}
                for key, cell in group.groupby([*shown, "n"], sort=True, dropna=False)]
        table = pd.DataFrame(rows, columns=[*shown, "n", *dict.fromkeys(group["factor"])])
        text += f"### {dataset} (`{fingerprint}`)\n\n" + markdown_table(table) + "\n"
    return text


def summary_tables(frame: pd.DataFrame, cells: pd.DataFrame, diffs: pd.DataFrame) -> str:
    """summary.md's tables (what ``splitenc_aggregate`` also prints).

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.
      cells, diffs: :func:`~splitenc_plugin.results.compare.summarize` of them.

    Returns:
      Markdown: per cell; the differences of medians; the paper's claims
      (:func:`~.verdicts.claim_verdicts`) with the decision rule and each
      verdict's chance if exchangeable; the MI decomposition as intervals;
      the per-factor MIG.
    """
    shared = _shared_bindings(frame)
    cell_table = _without(cells, shared)[[
        *cell_columns(_without(cells, shared)), "n", "mig_median", "mig_iqr", "mig_max",
        "mig_sampled_median", "recon_median"]].rename(
        columns={"mig_median": "MIG median", "mig_iqr": "MIG IQR", "mig_max": "MIG max",
                 "mig_sampled_median": "MIG (sampled) median",
                 "recon_median": "recon. loss median"})
    verdicts = _without(claim_verdicts(diffs), shared) if not diffs.empty else pd.DataFrame()
    diff_table = _without(difference_table(diffs), shared)
    return ("## Per cell (MIG of the mean representation unless noted)\n\n"
            + markdown_table(cell_table)
            + "\n## Differences of medians (variant − baseline)\n\n"
            + "P(… higher): share of (variant, baseline) run pairs where the variant's value "
              "is higher (ties count half; 0.5 = no separation). MWU p: exact two-sided "
              "Mann-Whitney p-value.\n\n" + markdown_table(diff_table)
            + _claims_heading(verdicts)
            + f"Decision rule: a claim about the median holds when the median difference "
              f"has the claimed sign and P(variant higher) is >= {SEPARATED} (or <= "
              f"{1 - SEPARATED:g} for 'lower'), does not hold when both point the other "
              "way, and is inconclusive otherwise; 'dramatically lower' needs every "
              "variant run below every baseline run and a median at most half the "
              "baseline's; no verdict while a planned run of either cell is unfinished, "
              f"nor with fewer than {MIN_RUNS} runs in a cell "
              "(docs/results/campaign/README.md).\n\n"
            + "Chance if exchangeable: of all C(n_v + n_b, n_v) ways to relabel the two "
              "cells' pooled runs into groups of the same sizes (the observed one "
              "included), how many give exactly this verdict by the same rule — the "
              "chance of this verdict if the variant changed nothing. E.g. 2 vs 2 runs: "
              "'median MIG higher' holds on 2 of the 6 (3 or 4 of the 4 pairs higher); "
              "the dramatic decline (all 4 pairs lower, median halved) on 1 of 6. "
              "3 vs 3: 'holds' (at least 7 of the 9 pairs) on 4 of 20; the dramatic "
              "decline (all 9 pairs lower and the median halved) on at most 1 of 20. A "
              "chance is the share giving exactly this verdict, not a p-value: 1 of 20 "
              "(0.050) for 'dramatically lower' holding at 3 vs 3 stands beside an exact "
              "two-sided Mann-Whitney p of 0.10 for the same separation (in the "
              "evidence).\n\n"
            + markdown_table(_verdict_table(verdicts))
            + _mi_section(cells, diffs, shared)
            + _factor_section(frame, shared))


def summary_notes(directory: str | Path, frame: pd.DataFrame, cells: pd.DataFrame,
                  unfinished: Sequence[Path], planned: pd.DataFrame,
                  no_curves: set[str], late_curves: Mapping[str, int],
                  figure_notes: Sequence[str], diffs: pd.DataFrame | None = None) -> list[str]:
    """The notes at the top of summary.md.

    Args:
      directory: The directory the jobs were read from (several: their paths
        joined by ", ").
      frame: The finished runs; ``cells`` their cells (:func:`~.compare.summarize`).
      unfinished: Job directories left out (:func:`~.load.load_results`).
      planned: :func:`~.plan.planned_runs`.
      no_curves: Finished jobs without learning curves.
      late_curves: Job directory -> first logged step, of finished jobs whose
        curves miss the start of training (:func:`~.curves.late_curves`).
      figure_notes: Lines from the figures (e.g. runs left out of Appendix C).
      diffs: :func:`~.compare.summarize`'s differences, for the comparisons
        that pool runs of two studies.

    Returns:
      One line per note: the runs read, the data versions, the study
      bindings all runs share (any dlib study), unfinished jobs,
      runs counted once across studies, comparisons whose arms pool runs of
      several studies, planned runs not finished yet, compared pairs with
      no row yet (:func:`~.compare.waiting_comparisons`), the learning
      curves' coverage, then ``figure_notes``.
    """
    notes = [f"{len(frame)} finished model(s) from {Path(directory)}.", *_data_notes(cells)]
    shared = _shared_bindings(frame)
    if shared:
        notes.append("Bindings every run shares (left out of the tables below; "
                      "results.csv has them): "
                      + "; ".join(f"{c} = {value}" for c, value in shared.items()))
    if unfinished:
        notes.append(f"{len(unfinished)} unfinished job(s) left out: "
                     + _some(str(p) for p in unfinished))
    notes += pooled_duplicates(frame)
    if diffs is not None:
        notes += cross_study_comparisons(diffs)
    waiting = unfinished_planned_runs(frame, planned)
    if len(waiting):
        notes.append(f"{len(waiting)} planned run(s) not finished yet: "
                     + ", ".join(describe_planned(run) for run in waiting.to_dict("records")))
    notes += [_describe_waiting(pair) for pair in waiting_comparisons(frame, planned)]
    notes.append(f"Learning curves: {len(no_curves)} of {len(frame)} finished job(s) have no "
                 f"{CURVES.as_posix()} (finished before learning curves were recorded, or "
                 "plain dlib_reproduce output) and are left out of the learning-curve figures"
                 + (": " + _some(no_curves) if no_curves else ""))
    if late_curves:
        notes.append(
            f"Learning curves: {len(late_curves)} job(s) have curves that start after step "
            f"{FIRST_SUMMARY_BY} (their early training summaries are gone, e.g. resumed "
            "before resumed jobs kept them), so their cells' curves pool fewer runs before "
            "that: " + _some(f"{job_dir} (from step {late_curves[job_dir]:,})"
                             for job_dir in late_curves))
    notes += figure_notes
    return notes


def _describe_waiting(pair: dict) -> str:
    """A compared pair with no row yet (:func:`~.compare.waiting_comparisons`) in a line."""
    # The cell's other treatment column: sigma for an encoder pair, encoder for a sigma pair.
    held = f"σ={_fmt('sigma', pair['sigma'])}" if "sigma" in pair else pair["encoder"]
    extras = describe_extras(pair, extra_cell_columns(pd.DataFrame([pair])))
    other = "baseline" if pair["finished"] == "variant" else "variant"
    missing = f", {pair['n_missing']} more planned" if pair["n_missing"] else ""
    return (f"No comparison yet of {pair['comparison']} ({pair['model']} {held}, "
            f"{pair['dataset']}, {pair['data']}, {pair['steps']} steps{extras}): the "
            f"{pair['finished']} has {pair['n_finished']} finished run(s){missing}, the "
            f"{other} none yet, {pair['n_planned']} planned")


def _some(texts: Iterable[str], most: int = 10) -> str:
    """The first ``most`` texts in natural order (``.../2`` before ``.../10``), then "…"."""
    ordered = sorted(texts, key=lambda t: [int(part) if part.isdigit() else part
                                           for part in re.split(r"(\d+)", t)])
    return ", ".join(ordered[:most]) + (", …" if len(ordered) > most else "")


def summary_text(notes: Sequence[str], tables: str, figures: Sequence[Path],
                 out: Path) -> str:
    """The whole summary.md: notes, tables (:func:`summary_tables`), figure paths relative to ``out``."""
    return ("# splitenc results summary\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"
            + tables + "\n## Figures\n\n"
            + "\n".join(f"- `{p.relative_to(out)}`" for p in figures) + "\n")
