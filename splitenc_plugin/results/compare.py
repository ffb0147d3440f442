"""Cells and the differences between compared cells.

:func:`summarize` turns the results table into per-cell statistics and, for
every pair of cells a study compares (:mod:`.comparisons`), the differences
of medians with their separation statistics (:mod:`.stats`), the MI
intervals of both cells (:mod:`.mi`) and what the decision rule needs
(:mod:`.verdicts`). Identical configurations pool across studies
(:mod:`.cells`): :func:`pooled_duplicates` names the runs counted once,
:func:`figure_runs` draws a study's cells beside their pooled partners.

Besides the plugin studies' comparisons, a study run with and without gin
fragments (any dlib study: same study, same model numbers, same data and
steps) is compared fragment against none, cell by cell (:func:`summarize`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from splitenc_plugin.results.cells import (
    CELL,
    FRAGMENTS,
    NO_FRAGMENTS,
    binding_columns,
    cell_columns,
    count_once,
    describe_extras,
    extra_cell_columns,
    fragment_labels,
    pooled_cell_columns,
    pooled_run_columns,
)
from splitenc_plugin.results.comparisons import COMPARISONS, comparison_pairs
from splitenc_plugin.results.mi import median_bounds, mi_intervals
from splitenc_plugin.results.plan import missing_runs, unfinished_planned_runs
from splitenc_plugin.results.stats import arm, contrast, mann_whitney_p

__all__ = ["DIFFERENCE_HEADERS", "cross_study_comparisons", "difference_table", "figure_runs",
           "per_seed", "pooled_duplicates", "summarize", "waiting_comparisons"]


def pooled_duplicates(frame: pd.DataFrame) -> list[str]:
    """One line per run present in more than one study, which summaries count once.

    The campaign's split FactorVAE cell takes its vanilla baseline from the
    correlated-noise study; if both studies ran that configuration, the
    comparison uses the first study's run (by name) and this says which, with
    both MIG values, so that a disagreement between the copies is visible.
    """
    lines = []
    run_columns = pooled_run_columns(frame)
    extras = extra_cell_columns(frame)
    for key, group in frame.groupby(run_columns, sort=True, dropna=False):
        if len(group) > 1:
            point = dict(zip(run_columns, key))
            group = group.sort_values("study")
            copies = "; ".join(f"{r.study}/{r.model_num}: MIG {r.mig_mean:.4f}"
                               for r in group.itertuples())
            kept = count_once(group)["study"].iloc[0]
            lines.append(f"{point['model']} {point['encoder']} σ={point['sigma']:g}"
                         f"{describe_extras(point, extras)} seed "
                         f"{point['seed']} ({point['steps']} steps) finished in {len(group)} "
                         f"studies ({copies}): counted once, as {kept}'s")
    return lines


def cross_study_comparisons(diffs: pd.DataFrame) -> list[str]:
    """One line per comparison whose arms pool runs of more than one study, naming them.

    E.g. campaign v2's FactorVAE σ = 0.9 − σ = 0: the variant from the
    correlated-noise study, the baseline from the capacity study's vanilla
    encoder runs (the same configuration). A table row has no study column,
    so this says where its runs came from.
    """
    lines = []
    for d in diffs.to_dict("records") if not diffs.empty else []:
        ids = d["_run_ids"]
        if len({study for side in ids.values() for study, _ in side}) < 2:
            continue

        def runs(side: list) -> str:
            nums: dict[str, list] = {}
            for study, num in side:
                nums.setdefault(study, []).append(num)
            return "; ".join(f"{study}/{', '.join(f'{num:g}' for num in sorted(n))}"
                             for study, n in sorted(nums.items()))

        lines.append(f"{d['comparison']} ({d['model']}, {d['dataset']}, {d['steps']} steps) "
                     f"pools runs of two studies: variant {runs(ids['v'])}, "
                     f"baseline {runs(ids['b'])}")
    return lines


def waiting_comparisons(frame: pd.DataFrame, planned: pd.DataFrame | None) -> list[dict]:
    """Compared pairs that have no row yet: one arm has finished runs, the other only planned ones.

    :func:`summarize` makes a row (and :mod:`.verdicts` a verdict, or "waiting
    for K unfinished run(s)") only for a pair of cells that both have finished
    runs. While a campaign runs, a pair whose other arm has not finished a
    single run would otherwise be absent without a word: e.g. campaign v2's
    FactorVAE σ = 0.9 − σ = 0 before its first σ = 0.9 run, its baseline
    being P1's three vanilla-encoder runs. Only runs known to be planned for
    the empty arm count (:func:`~.plan.missing_runs` with ``unknown_matches``
    False): a plugin grid's, with the cell's bindings as planned (a
    selections line binds none); a dlib study's or a fragment's job, whose
    encoder and sigma are read once it has run, never counts here, though it
    holds back verdicts. And only runs not finished anywhere count
    (:func:`~.plan.unfinished_planned_runs`: a run planned from a selections
    file is finished at any step count), so this never contradicts the
    summary's "not finished yet" list. A pair with no finished run in either
    arm has no data version or step count to name; its runs are in that list.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.
      planned: :func:`~splitenc_plugin.results.plan.planned_runs` (None or
        empty: nothing is waiting).

    Returns:
      One dict per such pair and pooled cell: the cell's configuration but
      the compared column (``model``, ``dataset``, ``data_fingerprint``,
      ``steps``, ...), its data label ``data``, ``comparison`` (as in
      :func:`summarize`'s rows), ``finished`` (the arm with runs:
      ``"variant"`` or ``"baseline"``), ``n_finished`` (its finished runs,
      counted once across studies), ``n_missing`` (its planned runs not
      finished yet) and ``n_planned`` (the other arm's, none finished).
    """
    if planned is None or planned.empty or frame.empty:
        return []
    labels = dict(zip(frame["data_fingerprint"], frame["data"]))
    unfinished = unfinished_planned_runs(frame, planned)
    waiting = []
    for column, base, variant, names, point, arms in _compared_arms(count_once(frame)):
        if arms[base].empty == arms[variant].empty:
            continue  # both arms finished (a summarize row); never both empty
        have, absent = (variant, base) if arms[base].empty else (base, variant)
        count = {value: missing_runs(unfinished, arms[value], {**point, column: value},
                                     unknown_matches=False) for value in (base, variant)}
        if count[absent]:
            waiting.append({
                **point, "data": labels[point["data_fingerprint"]],
                "comparison": f"{names[variant]} − {names[base]}",
                "finished": "variant" if have == variant else "baseline",
                "n_finished": len(arms[have]), "n_missing": count[have],
                "n_planned": count[absent]})
    return waiting


def _compared_arms(runs: pd.DataFrame):
    """Every pair of pooled cells a compared column sets apart, with each arm's runs.

    The one walk over :func:`~.comparisons.comparison_pairs` that both
    :func:`summarize` (both arms have runs) and :func:`waiting_comparisons`
    (one arm has) read.

    Args:
      runs: results rows, each pooled run once (:func:`~.cells.count_once`).

    Yields:
      ``(column, base, variant, names, point, arms)``: the compared column,
      its baseline and variant values and their display names, the pooled
      cell without ``column`` (``{column name: value}``), and ``arms``
      (``{base: runs, variant: runs}``), at least one of them non-empty.
    """
    config = pooled_cell_columns(runs)
    pooled = runs[config].drop_duplicates()
    for column, base, variant, names in comparison_pairs():
        others = [c for c in config if c != column]
        # dropna=False and _in_cell: a full-matrix NaN sigma is a value here too.
        for key, group in pooled.groupby(others, sort=True, dropna=False):
            # A Series ==, as in _in_cell, not set membership: a float32 sigma column
            # equals 0.9 there, while 0.9 is not in a set of its float32 values.
            if not any((group[column] == value).any() for value in (base, variant)):
                continue
            point = dict(zip(others, key))
            arms = {value: _in_cell(runs, {**point, column: value}) for value in (base, variant)}
            yield column, base, variant, names, point, arms


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
      frame: :func:`~splitenc_plugin.results.load.load_results` rows of every study.
      study: The figure's study.
      dataset: The figure's dataset.
      data_fingerprint: Only the study's runs on this data version (None: all;
        :func:`~splitenc_plugin.results.aggregate.aggregate` draws one figure
        set per version).

    Returns:
      Rows of ``frame``; borrowed rows keep their own ``study``.
    """
    own = frame[(frame["study"] == study) & (frame["dataset"] == dataset)]
    if data_fingerprint is not None:
        own = own[own["data_fingerprint"] == data_fingerprint]
    if study not in COMPARISONS or own.empty:
        return own
    comparison = COMPARISONS[study]
    column = comparison.column
    config = pooled_cell_columns(frame)
    run_columns = pooled_run_columns(frame)
    cells = own[config].drop_duplicates()
    # Each side of a compared pair is the other's partner.
    pairs = [*comparison.pairs, *((v, b) for b, v in comparison.pairs)]
    partners = pd.concat([cells[cells[column] == value].assign(**{column: partner})
                          for value, partner in pairs]).drop_duplicates()
    others = frame[frame["study"] != study].merge(partners, on=config)
    own_runs = set(own[run_columns].itertuples(index=False, name=None))
    others = count_once(others)
    others = others[[run not in own_runs
                     for run in others[run_columns].itertuples(index=False, name=None)]]
    return pd.concat([own, others], ignore_index=True)


def _iqr(values: pd.Series) -> float:
    return float(np.percentile(values, 75) - np.percentile(values, 25))


def per_seed(runs: pd.DataFrame) -> str:
    """'s0 0.1234, s1 0.2345': a cell's MIG (mean representation) by seed."""
    return ", ".join(f"s{seed} {mig:.4f}" for seed, mig in zip(runs["seed"], runs["mig_mean"]))


def _difference(point: dict, label: str, comparison: str, compared: str,
                claims: tuple[str, object, object] | None,
                runs: dict[str, pd.DataFrame], missing: int, bounds: list[str]) -> dict:
    """One row of :func:`summarize`'s differences: variant ``runs["v"]`` vs baseline ``runs["b"]``."""
    v, b = arm(runs["v"]), arm(runs["b"])
    stats = contrast(v, b)
    return {
        **point, "data": label,
        "comparison": comparison,
        "n": f"{stats['_n_variant']} vs {stats['_n_baseline']}",
        "d_mig_median": stats["d_mig_median"],
        "d_mig_sampled_median": stats["d_mig_sampled_median"],
        "d_recon_median": stats["d_recon_median"],
        "p_mig_higher": stats["p_mig_higher"],
        "p_mig_mwu": mann_whitney_p(v["mig_mean"], b["mig_mean"]),
        "p_recon_higher": stats["p_recon_higher"],
        "p_recon_mwu": mann_whitney_p(v["reconstruction_loss"], b["reconstruction_loss"]),
        "mig_per_seed": f"{per_seed(runs['v'])} vs {per_seed(runs['b'])}",
        # For claim_verdicts and mi_separation; not shown in the table.
        **{k: value for k, value in stats.items() if k.startswith("_")},
        "_compared": compared,
        "_claims": claims,  # (column, baseline, variant) the verdicts judge (None: no claim)
        "_missing": missing,
        "_variant_runs": v, "_baseline_runs": b,
        "_run_ids": {side: list(zip(runs[side]["study"], runs[side]["model_num"]))
                     for side in ("v", "b")},
        "_mi_variant": median_bounds(runs["v"][bounds]),
        "_mi_baseline": median_bounds(runs["b"][bounds]),
    }


def _same(a, b) -> bool:
    """Equality of two cell values, NaN equal to NaN (a full-matrix sigma)."""
    return (pd.isna(a) and pd.isna(b)) if pd.isna(a) or pd.isna(b) else a == b


def _in_cell(runs: pd.DataFrame, cell: dict) -> pd.DataFrame:
    """The runs of one cell (NaN matching NaN)."""
    match = np.ones(len(runs), dtype=bool)
    for column, value in cell.items():
        match &= (runs[column].isna() if pd.isna(value) else runs[column] == value).to_numpy()
    return runs[match]


# What a fragment may change in the operative config; the rest of a cell is
# the study's (its bindings, dataset, steps) and must match.
_FRAGMENT_EFFECTS = ("model", "encoder", "sigma")


def _fragment_differences(runs: pd.DataFrame, planned: pd.DataFrame | None,
                          labels: dict, bounds: list[str]) -> list[dict]:
    """Each cell run with gin fragments against the same study's cell run without.

    Cells pair through their runs: a run with fragments and a run without of
    the same study, model number, data version and steps (and the same study
    bindings) link their two cells. Whatever else differs between the cells
    is what the fragments changed in the operative config (e.g. the encoder:
    ``conv_encoder → split_conv_encoder``); where that is one of the plugin
    studies' comparisons, the paper's claims about it are judged
    (:mod:`.verdicts`).
    """
    config = pooled_cell_columns(runs)
    key = ["study", "model_num", "dataset", "data_fingerprint", "steps", *binding_columns(runs)]
    base = runs[runs[FRAGMENTS] == NO_FRAGMENTS]
    linked = runs[runs[FRAGMENTS] != NO_FRAGMENTS].merge(
        base, on=key, suffixes=("", "_base"))
    names = fragment_labels(runs[FRAGMENTS])
    paper = {(c, b, v) for c, b, v, _ in comparison_pairs()}
    pairs = {}
    for row in linked.to_dict("records"):
        variant = {c: row[c] for c in config}
        baseline = {c: row[f"{c}_base"] if f"{c}_base" in row else row[c] for c in config}
        pairs.setdefault(tuple(map(str, (*variant.values(), *baseline.values()))),
                         (variant, baseline))
    diffs = []
    for _, (variant, baseline) in sorted(pairs.items()):
        changed = [c for c in _FRAGMENT_EFFECTS if not _same(variant[c], baseline[c])]
        pair = (changed[0], baseline[changed[0]], variant[changed[0]]) if changed else None
        claims = pair if len(changed) == 1 and pair in paper else None
        point = {c: variant[c] for c in config}
        for c in changed:  # what the fragments changed: "baseline → variant"
            point[c] = (f"{_fmt_value(c, baseline[c])} → {_fmt_value(c, variant[c])}")
        cells = {"v": _in_cell(runs, variant), "b": _in_cell(runs, baseline)}
        missing = sum(missing_runs(planned, cells[side], cell)
                      for side, cell in (("v", variant), ("b", baseline)))
        diffs.append(_difference(
            point, labels[variant["data_fingerprint"]],
            f"{names[variant[FRAGMENTS]]} − {names[baseline[FRAGMENTS]]}", FRAGMENTS, claims,
            cells, missing, bounds))
    return diffs


def _fmt_value(column: str, value) -> str:
    if column == "sigma":
        return "matrix" if pd.isna(value) else f"{value:g}"
    return str(value)


def summarize(frame: pd.DataFrame,
              planned: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell statistics and the differences of medians between compared cells.

    Args:
      frame: :func:`~splitenc_plugin.results.load.load_results` rows.
      planned: :func:`~splitenc_plugin.results.plan.planned_runs`: a
        comparison with a planned run of either arm unfinished gets no
        verdict from :func:`~splitenc_plugin.results.verdicts.claim_verdicts`.

    Returns:
      (cells, differences). ``cells``: one row per cell
      (:func:`~.cells.cell_columns`: :data:`~.cells.CELL`, plus the
      fragments and study bindings where jobs have them) with the data label
      ``data``, n, ``mig_median`` / ``mig_iqr`` / ``mig_max`` (mean
      representation), ``mig_sampled_median``, ``recon_median``,
      ``mi_log_n`` (median) and each MI quantity's cell interval
      ``<q>_lower`` / ``<q>_upper`` (:func:`~.mi.mi_intervals`, median of
      each bound). ``differences``: for every pair of configurations that
      differ only in a compared column (:func:`~.comparisons.comparison_pairs`,
      e.g. encoder: split - vanilla; sigma: 0.9 - 0) on the same data
      version, the variant's medians minus the baseline's, pooling identical
      configurations across studies; then every cell run with gin fragments
      minus the same study's cell without (:func:`_fragment_differences`;
      the compared column ``gin_configs``, the columns the fragments changed
      shown as ``baseline → variant``).
    """
    labels = dict(zip(frame["data_fingerprint"], frame["data"]))
    frame = frame.join(mi_intervals(frame))
    cell = cell_columns(frame)
    # dropna=False: a full-matrix model's NaN sigma is a cell of its own.
    groups = frame.groupby(cell, sort=True, dropna=False)
    cells = groups.agg(
        n=("mig_mean", "size"), mig_median=("mig_mean", "median"),
        mig_iqr=("mig_mean", _iqr), mig_max=("mig_mean", "max"),
        mig_sampled_median=("mig_sampled", "median"),
        recon_median=("reconstruction_loss", "median"),
        mi_log_n=("mi_log_n", "median")).reset_index()
    bounds = [c for c in frame.columns if c.endswith(("_lower", "_upper"))]
    cells = cells.join(pd.DataFrame([median_bounds(group[bounds]) for _, group in groups]))
    cells.insert(CELL.index("data_fingerprint"), "data", cells["data_fingerprint"].map(labels))
    # Differences pool identical configurations across studies: e.g. the
    # correlated-noise study's sigma = 0 FactorVAE is the very run the split
    # study's vanilla FactorVAE cell needs (same gin config, seed and data).
    # A configuration run in both studies counts once.
    runs = count_once(frame).sort_values("seed")
    diffs = []
    for column, base, variant, names, point, arms in _compared_arms(runs):
        if arms[base].empty or arms[variant].empty:
            continue  # waiting for its first run in one arm (waiting_comparisons)
        diffs.append(_difference(
            point, labels[point["data_fingerprint"]],
            f"{names[variant]} − {names[base]}", column, (column, base, variant),
            {"v": arms[variant], "b": arms[base]},
            sum(missing_runs(planned, arms[value], {**point, column: value})
                for value in (base, variant)), bounds))
    if FRAGMENTS in frame.columns:
        diffs += _fragment_differences(runs, planned, labels, bounds)
    return cells, pd.DataFrame(diffs)


DIFFERENCE_HEADERS = {
    "d_mig_median": "Δ MIG median", "d_mig_sampled_median": "Δ MIG (sampled) median",
    "d_recon_median": "Δ recon. loss median", "p_mig_higher": "P(MIG higher)",
    "p_mig_mwu": "MWU p (MIG)", "p_recon_higher": "P(recon. higher)",
    "p_recon_mwu": "MWU p (recon.)", "mig_per_seed": "MIG per seed (variant vs baseline)"}


def difference_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize`'s differences as ``summary.md`` shows them.

    The configuration columns come first, in :func:`~.cells.cell_columns`
    order (the data version by its fingerprint; summary.md lists each with
    its label); the column a row compares (e.g. ``encoder`` for split -
    vanilla, ``gin_configs`` for a fragment) reads "compared" rather than
    being left empty (which would print as "nan", or as "matrix" for sigma).
    """
    if diffs.empty:
        return diffs
    table = diffs.astype(object)
    for index, compared in diffs["_compared"].items():
        table.loc[index, compared] = "compared"
    config = [c for c in cell_columns(table) if c in table.columns]
    rest = [c for c in table.columns
            if c not in config and c != "data" and not c.startswith("_")]
    return table[config + rest].rename(columns=DIFFERENCE_HEADERS)
