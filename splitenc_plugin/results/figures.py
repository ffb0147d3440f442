"""The paper's figures from an aggregated results table (matplotlib + seaborn).

* :func:`mig_violins` — MIG violins per dataset, one panel per model, baseline
  first (Figs 2, 3, 5, 7): median (white dot), IQR (thick bar) and adjacent
  values (thin line) as the paper describes, with the raw points on top; a
  cell of fewer than :data:`VIOLIN_MIN_RUNS` runs is drawn as its points and
  a median bar, and every slot says its number of runs. For
  any other dlib study (its runs carry the study's bindings), Locatello et
  al.'s layout: one panel per model (``model.name``), the model's
  regularisation strength on the x-axis (``vae.beta``, ``factor_vae.gamma``,
  ...: :func:`~splitenc_plugin.results.cells.strength_column`), runs with and
  without gin fragments side by side in colour.
* :func:`mig_vs_reconstruction` — MIG against reconstruction loss, baseline as
  blue circles, the variant as red triangles (Figs 4, 6, 8); a study with more
  variants (the capacity controls) adds green squares and orange diamonds.
* :func:`appendix_c` — reconstructions and latent traversals of the best-MIG
  model of each cell (Appendix C, Figs 9-11), from images made by dlib's
  ``visualize_model`` and :mod:`splitenc_plugin.results.traversals`; each traversal
  column labelled with the factor that latent is most informative about and
  that normalised MI, where the job has factor_mig results.
* :func:`factor_mi_heatmaps` — factor × latent normalised MI (dlib's MIG
  matrix, per factor), one heatmap per run, one row of them per cell, each
  run's latents sorted by the factor they inform most about.
* :func:`learning_curves` — reconstruction loss, KL and the regulariser against
  global step, one line per cell (median over seeds, min-max band), one row
  of panels per model.

Every figure draws models and encoders in the paper's order
(:func:`in_drawing_order`), so an encoder has one colour and one place in all
of them. Every function writes one PNG and returns its path. Only the Agg backend is
used, so no display is needed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch

from splitenc_plugin.results.cells import (
    FRAGMENTS,
    NO_FRAGMENTS,
    binding_columns,
    extra_cell_columns,
    extras_line,
    fragment_labels,
    strength_column,
    strength_order,
)
from splitenc_plugin.results.comparisons import (
    COMPARISONS,
    ENCODER_LABELS,
    comparison_pairs,
)
from splitenc_plugin.results.curves import CURVE_QUANTITIES

__all__ = ["COMPARISONS", "PAPER_FIGURES", "VIOLIN_MIN_RUNS", "appendix_c", "comparison_pairs",
           "factor_mi_heatmaps", "in_drawing_order", "learning_curves", "mig_violins",
           "mig_vs_reconstruction"]

# (study, dataset) -> (violin figure, scatter figure, appendix figure) of the paper.
PAPER_FIGURES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("correlated_noise_study_v1", "dsprites_full"): ("Fig 2", "", ""),
    ("split_encoder_study_v1", "dsprites_full"): ("Fig 3", "Fig 4", "Fig 9"),
    ("split_encoder_study_v1", "smallnorb"): ("Fig 5", "Fig 6", "Fig 10"),
    ("split_encoder_study_v1", "cars3d"): ("Fig 7", "Fig 8", "Fig 11"),
}

MODEL_LABELS = {"vae": "VAE", "factor_vae": "FactorVAE", "beta_tc_vae": "β-TCVAE"}
# dlib's names of its models (model.name in its studies), in the order of
# Locatello et al.'s unsupervised_study_v1.
MODEL_NAME_LABELS = {"beta_vae": "β-VAE", "factor_vae": "FactorVAE", "dip_vae_i": "DIP-VAE-I",
                     "dip_vae_ii": "DIP-VAE-II", "beta_tc_vae": "β-TCVAE",
                     "annealed_vae": "AnnealedVAE"}
# Baseline, then the variants in COMPARISONS order.
_PALETTE = ["tab:blue", "tab:red", "tab:green", "tab:orange"]
_MARKERS = ["o", "^", "s", "D"]
# Lines of one colour (one variant) at several regularisation strengths.
_LINESTYLES = ["-", "--", ":", "-."]
# A kernel density drawn from a handful of runs shows a shape the data do not
# have (the paper's violins pool 10 seeds; a campaign may have 2 or 3): a cell
# with fewer runs is drawn as its runs' points and a median tick.
VIOLIN_MIN_RUNS = 5
_WIDTH = 0.8  # of a category on the x-axis (seaborn's default, passed so the ticks match)
# dlib's losses are per image: the reconstruction loss sums the pixels'
# Bernoulli cross-entropies (natural log), the KL sums the latents'.
_LOSS_UNIT = "nats per image"

# dlib's visualize_model tiles its 64 (input | output) pairs 8 × 8
# (``num_pics = 64``; ``grid_save_images`` takes floor(sqrt(64)) rows), each
# pair one image wide twice: pairs per row and per column of reconstructions.jpg.
_RECONSTRUCTION_GRID = 8
# Models, then encoders, in the paper's order (baseline first) wherever cells
# are drawn; other values sorted.
_DRAWING_ORDER = {"model": list(MODEL_LABELS), "model.name": list(MODEL_NAME_LABELS),
                  "encoder": list(ENCODER_LABELS)}


def _rank(column: str, value) -> tuple:
    """Sort key of one cell value: :data:`_DRAWING_ORDER`, then numbers, then text."""
    known = _DRAWING_ORDER.get(column, [])
    if value in known:
        return (0, known.index(value), "")
    if isinstance(value, (int, float, np.number)) and not pd.isna(value):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def in_drawing_order(cells: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``cells`` sorted by ``columns`` in drawing order: models and encoders as the paper has them.

    Every figure draws its cells in this order (panels, rows, lines,
    legends), so an encoder has one place in all of them.
    """
    keys = [tuple(_rank(c, row[c]) for c in columns) for _, row in cells.iterrows()]
    return cells.iloc[sorted(range(len(cells)), key=keys.__getitem__)]


def _suptitle(fig: plt.Figure, text: str, fontsize: float = 10) -> None:
    """A figure title wrapped to the figure's width (a narrow figure is not widened by it)."""
    # ~0.55 em per character of the default sans-serif font.
    chars = max(40, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in text.split("\n")),
                 fontsize=fontsize)


def _cell_points(ax: plt.Axes, data: pd.DataFrame, x: str, order: Sequence,
                 hue_order: Sequence[str], colours: dict, mig_column: str,
                 dodge: bool) -> pd.Series:
    """One x position per value of ``x``, one cell per variant there: violin or median tick.

    A cell of at least :data:`VIOLIN_MIN_RUNS` runs gets a violin (median,
    IQR and adjacent values inside, as in the paper); a smaller cell a tick
    at its median in its colour. Every run is a black point on top.

    Returns:
      The runs per (x value, variant).
    """
    # Only runs with a slot (a value of ``order``, a shown variant), as
    # seaborn draws them: e.g. an empty strength binding has none.
    data = data[data[x].isin(order) & data["variant"].isin(hue_order)]
    counts = data.groupby([x, "variant"]).size()
    size = pd.Series([counts[key] for key in zip(data[x], data["variant"])], index=data.index)
    violins = data[size >= VIOLIN_MIN_RUNS]
    if not violins.empty:
        sns.violinplot(data=violins, x=x, y=mig_column, order=order, hue="variant",
                       hue_order=hue_order, palette=colours, inner="box", cut=0,
                       width=_WIDTH, dodge=dodge, ax=ax, legend=False)
    # seaborn jitters the points with numpy's global generator: a fixed seed draws
    # the same figure on every run, and the caller's stream is left as it was.
    caller_state = np.random.get_state()
    np.random.seed(0)
    try:
        sns.stripplot(data=data, x=x, y=mig_column, order=order, hue="variant",
                      hue_order=hue_order, palette=dict.fromkeys(hue_order, "black"),
                      dodge=dodge, size=4, alpha=0.6, ax=ax, legend=False)
    finally:
        np.random.set_state(caller_state)
    slot = _WIDTH / len(hue_order) if dodge else _WIDTH
    for (value, name), n in counts.items():
        if n >= VIOLIN_MIN_RUNS:
            continue
        centre = order.index(value) + (
            (hue_order.index(name) + 0.5) * slot - _WIDTH / 2 if dodge else 0.0)
        median = data.loc[(data[x] == value) & (data["variant"] == name), mig_column].median()
        ax.hlines(median, centre - 0.35 * slot, centre + 0.35 * slot, colors=colours[name],
                  lw=2.5, zorder=3)
    return counts


def _colours(count: int) -> list[str]:
    return [_PALETTE[i % len(_PALETTE)] for i in range(count)]


def _markers(count: int) -> list[str]:
    return [_MARKERS[i % len(_MARKERS)] for i in range(count)]


def _comparison(study: str, frame: pd.DataFrame) -> tuple[str, list, dict]:
    """(column, ordered values: baseline first, labels) that split a study's cells.

    A plugin study's compared column (:data:`COMPARISONS`); else, where runs
    have gin fragments, the fragments (none first); else the encoder.
    """
    if study in COMPARISONS:
        comparison = COMPARISONS[study]
        return comparison.column, [comparison.base, *comparison.variants], comparison.labels
    if FRAGMENTS in frame.columns:
        values = sorted(set(frame[FRAGMENTS]), key=lambda v: (v != NO_FRAGMENTS, v))
        return FRAGMENTS, values, fragment_labels(values)
    values = sorted(frame["encoder"].unique(), key=lambda v: _rank("encoder", v))
    return "encoder", values, {v: v for v in values}


def _model_key(frame: pd.DataFrame) -> str:
    """The column whose values get a panel each: ``model.name`` for any dlib study, else ``model``.

    dlib's studies name their models by ``model.name`` (``dip_vae_i`` and
    ``dip_vae_ii`` share ``model.model = @dip_vae()``).
    """
    if "model.name" in frame.columns and (frame["model.name"] != "").all():
        return "model.name"
    return "model"


def _models(frame: pd.DataFrame, key: str) -> list[str]:
    """The panels' models in order: the known ones first (paper / Locatello), then by name."""
    known = MODEL_NAME_LABELS if key == "model.name" else MODEL_LABELS
    present = set(frame[key])
    return [m for m in known if m in present] + sorted(present - set(known))


def _model_label(key: str, model: str) -> str:
    return (MODEL_NAME_LABELS if key == "model.name" else MODEL_LABELS).get(model, model)


def _title(study: str, dataset: str, kind: int, what: str, steps: Sequence[int]) -> str:
    paper = PAPER_FIGURES.get((study, dataset), ("", "", ""))[kind]
    step_note = ", ".join(f"{s:,}" for s in sorted(set(steps)))
    return f"{what} on {dataset} ({study}, {step_note} steps)" + (
        f" — cf. paper {paper}" if paper else "")


def mig_violins(frame: pd.DataFrame, study: str, dataset: str, out: Path,
                mig_column: str = "mig_mean") -> Path:
    """Violin plots of MIG per model: baseline then variant(s) (Figs 2, 3, 5, 7).

    Args:
      frame: Rows of one study and one dataset (see ``load.COLUMNS``).
      study: Study name (chooses the compared column).
      dataset: Dataset name (for the title).
      out: PNG path to write.
      mig_column: Which representation's MIG to plot.

    Returns:
      ``out``.
    """
    if study not in COMPARISONS and any((frame[c] != "").any()
                                        for c in binding_columns(frame)):
        return _strength_violins(frame, study, dataset, out, mig_column)
    column, order, labels = _comparison(study, frame)
    models = [m for m in MODEL_LABELS if m in set(frame["model"])] + sorted(
        set(frame["model"]) - set(MODEL_LABELS))
    panel_width = max(4.2, 1.6 * len(order))  # room for each violin's label
    fig, axes = plt.subplots(1, len(models), figsize=(panel_width * len(models), 4.2),
                             squeeze=False, sharey=True)
    names = [labels[v] for v in order]
    colours = dict(zip(names, _colours(len(names))))
    for ax, model in zip(axes[0], models):
        data = frame[frame["model"] == model].copy()
        data["variant"] = data[column].map(labels)
        counts = _cell_points(ax, data, "variant", names, names, colours, mig_column,
                              dodge=False)
        ax.set_xticks(range(len(names)))
        ax.set_xlim(-0.5, len(names) - 0.5)  # a slot for a cell without runs, too
        ax.set_xticklabels([f"{name}\n(n={counts[name, name]})" if (name, name) in counts
                            else f"{name}\n(no runs)" for name in names])
        ax.set_title(MODEL_LABELS.get(model, model))
        ax.set_xlabel("")
        ax.set_ylabel(_mig_label(mig_column))
    # MIG is in [0, 1]: differences at their true scale. Once all panels are
    # drawn: the axes are shared, and a panel's own top would clip the others.
    axes[0][0].set_ylim(bottom=0.0)
    _suptitle(fig, _title(study, dataset, 0, "MIG", frame["steps"])
              + f"; violins for cells of ≥ {VIOLIN_MIN_RUNS} runs, else the median (bar)")
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def _mig_label(mig_column: str) -> str:
    return "MIG" + (" (mean representation)" if mig_column == "mig_mean" else "")


def _strength_violins(frame: pd.DataFrame, study: str, dataset: str, out: Path,
                      mig_column: str) -> Path:
    """:func:`mig_violins` for any dlib study: per model, MIG against regularisation strength.

    One panel per model (:func:`_model_key`), the x-axis the model's
    regularisation strength (:func:`~splitenc_plugin.results.cells.strength_column`;
    one unlabelled position if the runs have none), one violin per variant
    (:func:`_comparison`: with and without gin fragments) at each strength,
    baseline blue, variants red, green, orange, the raw points on top.
    """
    column, order, labels = _comparison(study, frame)
    names = [labels[v] for v in order]
    key = _model_key(frame)
    panels = []
    for model in _models(frame, key):
        data = frame[frame[key] == model].copy()
        strength = strength_column(data)
        data["x"] = data[strength] if strength else ""
        data["variant"] = data[column].map(labels)
        panels.append((model, data, strength, strength_order(data["x"]) if strength else [""]))
    widths = [max(3.6, 0.5 * len(xs) * len(names) + 1.4) for *_, xs in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths), 4.4), squeeze=False,
                             sharey=True, gridspec_kw={"width_ratios": widths})
    colours = dict(zip(names, _colours(len(names))))
    for ax, (model, data, strength, xs) in zip(axes[0], panels):
        shown = [name for name in names if name in set(data["variant"])]
        _cell_points(ax, data, "x", xs, shown, colours, mig_column, dodge=len(shown) > 1)
        ax.set_title(_model_label(key, model))
        ax.set_xlabel(strength or "")
        ax.set_ylabel(_mig_label(mig_column))
    axes[0][0].set_ylim(bottom=0.0)  # as in mig_violins: after all (shared) panels
    if len(names) > 1:  # one legend for all panels (a panel may lack a variant)
        axes[0][0].legend(handles=[Patch(facecolor=colours[name], label=name) for name in names],
                          fontsize=8)
    _suptitle(fig, _title(study, dataset, 0, "MIG by regularisation strength", frame["steps"])
              + f"; violins for cells of ≥ {VIOLIN_MIN_RUNS} runs, else the median (bar)")
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def mig_vs_reconstruction(frame: pd.DataFrame, study: str, dataset: str, out: Path,
                          mig_column: str = "mig_mean") -> Path:
    """MIG vs reconstruction loss, baseline blue circles, variant red triangles (Figs 4, 6, 8).

    Args: as :func:`mig_violins`.

    Returns:
      ``out``.
    """
    column, order, labels = _comparison(study, frame)
    key = _model_key(frame)
    models = _models(frame, key)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.0), squeeze=False)
    names = [labels[v] for v in order]
    colours = dict(zip(names, _colours(len(names))))
    markers = dict(zip(names, _markers(len(names))))
    for ax, model in zip(axes[0], models):
        data = frame[frame[key] == model].copy()
        data["variant"] = data[column].map(labels)
        counts = data["variant"].value_counts()
        shown = [name for name in names if name in counts]  # the legend: cells with runs
        sns.scatterplot(data=data, x="reconstruction_loss", y=mig_column, hue="variant",
                        style="variant", hue_order=shown, style_order=shown,
                        palette={name: colours[name] for name in shown},
                        markers={name: markers[name] for name in shown}, s=60, ax=ax)
        ax.set_title(_model_label(key, model))
        ax.set_xlabel(f"reconstruction loss ({_LOSS_UNIT})")
        ax.set_ylabel(_mig_label(mig_column))
        if ax.get_legend() is not None:
            handles, texts = ax.get_legend_handles_labels()
            ax.legend(handles, [f"{text} (n={counts[text]})" for text in texts], title=None,
                      fontsize=8)
    _suptitle(fig, _title(study, dataset, 1, "MIG vs reconstruction", frame["steps"]))
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def appendix_c(panels: Sequence[tuple[str, Path, Path, str]], study: str, dataset: str,
               out: Path, latent_labels: Sequence[Sequence[str] | None] | None = None) -> Path:
    """Reconstructions and traversals of the best-MIG model of each cell (Appendix C).

    Args:
      panels: (label, reconstructions image, traversal image, traversal caption)
        per cell; the images are dlib visualize_model's
        ``reconstructions/reconstructions.jpg`` and either
        ``traversals_fitted/traversals0.jpg`` (:mod:`splitenc_plugin.results.traversals`)
        or dlib's ``traversals/traversals0.jpg``, from the same input.
      study: Study name (title).
      dataset: Dataset name (title).
      out: PNG path to write.
      latent_labels: Per panel, None or one label per traversal column
        (latent), e.g. ``factors.latent_factor_labels``; written under the
        columns (the traversal image's columns have equal widths).

    Returns:
      ``out``.
    """
    labels = list(latent_labels) if latent_labels is not None else [None] * len(panels)
    label_room = 1.2 if any(labels) else 0.0  # inches under a row for its column labels
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, (4.6 + label_room) * len(panels)),
                             squeeze=False)
    for row, (label, recon, traversal, caption), names in zip(axes, panels, labels):
        # The cell's label once, over the row's first panel.
        images = [mpimg.imread(path) for path in (recon, traversal)]
        for ax, image, what in zip(row, images,
                                   (f"{label}\nreconstructions (input | output)", caption)):
            ax.imshow(image, cmap="gray")
            ax.set_title(what, fontsize=9)
            ax.axis("off")
        _mark_pairs(row[0], *images[0].shape[:2])
        if names:
            ax = row[1]
            ax.axis("on")
            width = images[1].shape[1]
            ax.set_xticks([(j + 0.5) * width / len(names) for j in range(len(names))])
            ax.set_xticklabels(names, rotation=90, fontsize=7)
            ax.set_yticks([])
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
    paper = PAPER_FIGURES.get((study, dataset), ("", "", ""))[2]
    _suptitle(fig, f"Best-MIG model per cell on {dataset} ({study})"
              + (f" — cf. paper {paper}" if paper else "")
              + ("\ntraversal columns: latent, the factor it is most informative about and "
                 "that normalised MI (factor_mig)" if any(labels) else ""))
    # Keep ~0.4 inch (two lines: 0.6) above the first row's titles for the suptitle.
    top = (0.6 if any(labels) else 0.4) / fig.get_figheight()
    fig.tight_layout(rect=(0, label_room / fig.get_figheight(), 1, 1 - top))
    if label_room:
        # tight_layout leaves no room for the column labels of an image axes: add it.
        pars = fig.subplotpars
        rows = len(panels)
        axes_height = (pars.top - pars.bottom) * fig.get_figheight() / (
            rows + (rows - 1) * pars.hspace)
        fig.subplots_adjust(hspace=pars.hspace + label_room / axes_height)
    # ~4 inches per panel at 130 dpi: ~520 of the images' 640 pixels across.
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def _mark_pairs(ax: plt.Axes, height: int, width: int) -> None:
    """Draws the pair grid over dlib's reconstructions image, whose tiles touch.

    On black dSprites backgrounds nothing shows where one (input | output) pair
    ends: solid lines between pairs, dotted ones between input and output. An
    image not tiled as dlib's (size not a multiple of the grid) is left as it is.
    """
    rows, pairs = _RECONSTRUCTION_GRID, _RECONSTRUCTION_GRID
    if height % rows or width % (2 * pairs):
        return
    tile = width // (2 * pairs)
    style = {"color": "tab:gray", "linewidth": 0.6}
    for k in range(1, 2 * pairs):
        ax.axvline(k * tile - 0.5, linestyle="-" if k % 2 == 0 else ":", **style)
    for k in range(1, rows):
        ax.axhline(k * height // rows - 0.5, linestyle="-", **style)


def factor_mi_heatmaps(panels: Sequence[dict], study: str, dataset: str, out: Path) -> Path:
    """Factor × latent normalised MI of each run, one row of heatmaps per cell.

    Args:
      panels: ``factors.factor_mi_panels``: per cell, its runs' matrices
        with their latents already in drawing order.
      study: Study name (title).
      dataset: Dataset name (title).
      out: PNG path to write.

    Returns:
      ``out``.
    """
    num_cols = max(len(panel["runs"]) for panel in panels)
    num_latents = max(run["matrix"].shape[1] for panel in panels for run in panel["runs"])
    num_factors = max(run["matrix"].shape[0] for panel in panels for run in panel["runs"])
    # The fragments and bindings that tell the cells apart (any dlib study),
    # in a third title line.
    extras = [c for c in extra_cell_columns(pd.DataFrame([p["cell"] for p in panels]))
              if len({str(p["cell"][c]) for p in panels}) > 1]
    width = 0.42 * num_latents + 1.6
    height = 0.32 * num_factors + 1.5 + (0.2 if extras else 0.0)
    fig, axes = plt.subplots(len(panels), num_cols, squeeze=False, layout="constrained",
                             figsize=(width * num_cols + 0.8, height * len(panels) + 0.5))
    image = None
    ranks = [tuple(_rank(c, p["cell"][c]) for c in ("model", "encoder", "sigma")) for p in panels]
    panels = [panels[i] for i in sorted(range(len(panels)), key=ranks.__getitem__)]
    for row, panel in zip(axes, panels):
        cell = panel["cell"]
        sigma = "matrix" if pd.isna(cell["sigma"]) else f"{cell['sigma']:g}"
        name = (f"{MODEL_LABELS.get(cell['model'], cell['model'])}, "
                f"{ENCODER_LABELS.get(cell['encoder'], cell['encoder'])}, σ={sigma}")
        line = extras_line(cell, extras)  # any dlib study: fragments, strength
        name += f"\n{line}" if line else ""
        for ax, run in zip(row, panel["runs"]):
            matrix = run["matrix"]
            image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            for (k, j), value in np.ndenumerate(matrix):
                ax.text(j, k, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                        color="black" if value > 0.6 else "white")
            ax.set_xticks(range(matrix.shape[1]))
            ax.set_xticklabels([f"z{j}" for j in run["latents"]], fontsize=7)
            ax.set_yticks(range(matrix.shape[0]))
            ax.set_yticklabels(run["factor_names"], fontsize=7)
            ax.set_title(f"{name}\n{run['study']}/{run['model_num']} (seed {run['seed']}), "
                         f"MIG {run['mig']:.3f} (from this matrix)", fontsize=8)
        for ax in row[len(panel["runs"]):]:
            ax.axis("off")
    _suptitle(fig, f"Normalised MI I(z_j; v_k) / H(v_k) per run on {dataset} ({study})\n"
              "latents sorted by their most informative factor")
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.03, pad=0.01, label="normalised MI")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


# The y axes of the learning curves show the medians after the initial transient.
_TRANSIENT = 0.02  # share of the steps left out of the y range


def _curve_limits(values: np.ndarray, steps: np.ndarray) -> tuple[float, float] | None:
    """y limits covering the medians after the first :data:`_TRANSIENT` of the steps."""
    late = values[(steps > _TRANSIENT * np.nanmax(steps)) & np.isfinite(values)]
    if late.size == 0:
        return None
    low, high = float(late.min()), float(late.max())
    pad = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
    return low - pad, high + pad


def learning_curves(cells: pd.DataFrame, study: str, dataset: str, out: Path) -> Path:
    """Reconstruction loss, KL and regulariser against global step, one line per cell.

    One row of panels per model, one column per quantity of
    ``curves.CURVE_QUANTITIES``; each cell's line is the median over its
    seeds of their means in each bin of steps (``curves.cell_curves``), with
    a light band from the lowest to the highest seed. The y axes cover the
    medians after the first 2 % of the steps (the first summaries, at step 1,
    are far above the rest), in nats per image. A quantity that no model
    of the figure logs has no column (KL, where all are FactorVAE, which
    logs no elbo); a panel whose quantity only the row's model does not log
    says so.

    Args:
      cells: ``curves.cell_curves`` of one study's figure runs.
      study: Study name (colours: baseline blue, variants as in the other
        figures).
      dataset: Dataset name (title).
      out: PNG path to write.

    Returns:
      ``out``.
    """
    column, order, labels = _comparison(study, cells)
    model_key = _model_key(cells)
    models = _models(cells, model_key)
    # A quantity no model of the figure logs gets no column.
    quantities = {q: what for q, what in CURVE_QUANTITIES.items()
                  if np.isfinite(cells[f"{q}_median"].to_numpy(dtype=float)).any()}
    fig, axes = plt.subplots(len(models), len(quantities),
                             figsize=(4.6 * len(quantities), 3.4 * len(models)),
                             squeeze=False, layout="constrained")
    # Any dlib study: one line per variant and regularisation strength (the
    # bindings that vary within a model), in the variant's colour.
    varying = [c for c in extra_cell_columns(cells) if c not in (column, model_key)
               and cells.groupby(model_key)[c].nunique().max() > 1]
    keys = ["encoder", "sigma", "steps", *(c for c in [column, *varying]
                                           if c not in ("encoder", "sigma", "steps"))]
    for row, model in zip(axes, models):
        data = cells[cells[model_key] == model]
        lines = sorted(data.groupby(keys, sort=True, dropna=False),
                       key=lambda line: tuple(map(_rank, keys, line[0])))
        strengths = list(dict.fromkeys(tuple(point[len(keys) - len(varying):])
                                       for point, _ in lines))
        several_steps = data["steps"].nunique() > 1
        for ax, (quantity, what) in zip(row, quantities.items()):
            limits = []
            for i, (key, line) in enumerate(lines):
                point = dict(zip(keys, key))
                value = point[column]
                index = order.index(value) if value in order else len(order) + i
                label = labels.get(value, str(value)) + "".join(
                    f", {c}={point[c]}" for c in varying) + (
                    f", {point['steps']:,} steps" if several_steps else "")
                label += f" (n={int(line['n'].max())})"
                style = _LINESTYLES[strengths.index(key[len(keys) - len(varying):])
                                    % len(_LINESTYLES)]
                steps = line["step"].to_numpy(dtype=float)
                median = line[f"{quantity}_median"].to_numpy(dtype=float)
                if not np.isfinite(median).any():
                    continue
                color = _PALETTE[index % len(_PALETTE)]
                ax.plot(steps, median, color=color, lw=1.2, label=label,
                        marker="." if len(steps) < 30 else None,  # few points: show them
                        **({"linestyle": style} if varying else {}))
                ax.fill_between(steps, line[f"{quantity}_low"], line[f"{quantity}_high"],
                                color=color, alpha=0.18, lw=0)
                limits.append(_curve_limits(median, steps))
            limits = [lim for lim in limits if lim is not None]
            if limits:
                ax.set_ylim(min(lim[0] for lim in limits), max(lim[1] for lim in limits))
                ax.set_ylabel(_LOSS_UNIT)
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, f"not logged by {_model_label(model_key, model)}",
                        ha="center", va="center", transform=ax.transAxes, fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"{_model_label(model_key, model)}: {what}", fontsize=9)
            ax.set_xlabel("global step")
    step_note = ", ".join(f"{s:,}" for s in sorted(set(cells["steps"])))
    _suptitle(fig, f"Learning curves on {dataset} ({study}, {step_note} steps): median over "
              "seeds, band from lowest to highest")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
