"""The paper's figures from an aggregated results table (matplotlib + seaborn).

* :func:`mig_violins` — MIG violins per dataset, one panel per model, baseline
  first (Figs 2, 3, 5, 7): median (white dot), IQR (thick bar) and adjacent
  values (thin line) as the paper describes, with the raw points on top.
* :func:`mig_vs_reconstruction` — MIG against reconstruction loss, baseline as
  blue circles, the variant as red triangles (Figs 4, 6, 8); a study with more
  variants (the capacity controls) adds green squares and orange diamonds.
* :func:`appendix_c` — reconstructions and latent traversals of the best-MIG
  model of each cell (Appendix C, Figs 9-11), from images made by dlib's
  ``visualize_model`` and :mod:`splitenc_plugin.traversals`.

Every function writes one PNG and returns its path. Only the Agg backend is
used, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["COMPARISONS", "PAPER_FIGURES", "appendix_c", "comparison_pairs", "mig_violins",
           "mig_vs_reconstruction"]

_ENCODER_LABELS = {"conv_encoder": "vanilla encoder", "split_conv_encoder": "split encoder",
                   "matched_split_conv_encoder": "matched split encoder",
                   "wide_conv_encoder": "wide encoder"}

# Study -> (column compared, baseline value, variant values, labels): each
# variant is compared with the baseline.
COMPARISONS: dict[str, tuple[str, object, tuple, dict]] = {
    "split_encoder_study_v1": ("encoder", "conv_encoder", ("split_conv_encoder",),
                               _ENCODER_LABELS),
    "correlated_noise_study_v1": ("sigma", 0.0, (0.9,),
                                  {0.0: "σ = 0 (factorized)", 0.9: "σ = 0.9 (correlated)"}),
    "split_encoder_capacity_study_v1": (
        "encoder", "conv_encoder",
        ("split_conv_encoder", "matched_split_conv_encoder", "wide_conv_encoder"),
        _ENCODER_LABELS),
}


def comparison_pairs() -> list[tuple[str, object, object, dict]]:
    """Every (column, baseline, variant, labels) of :data:`COMPARISONS`, each once.

    A pair two studies share (e.g. split vs vanilla encoder, in the split and
    the capacity study) is listed once, with the first study's labels.
    """
    pairs: dict[tuple, tuple[str, object, object, dict]] = {}
    for column, base, variants, labels in COMPARISONS.values():
        for variant in variants:
            pairs.setdefault((column, base, variant), (column, base, variant, labels))
    return list(pairs.values())

# (study, dataset) -> (violin figure, scatter figure, appendix figure) of the paper.
PAPER_FIGURES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("correlated_noise_study_v1", "dsprites_full"): ("Fig 2", "", ""),
    ("split_encoder_study_v1", "dsprites_full"): ("Fig 3", "Fig 4", "Fig 9"),
    ("split_encoder_study_v1", "smallnorb"): ("Fig 5", "Fig 6", "Fig 10"),
    ("split_encoder_study_v1", "cars3d"): ("Fig 7", "Fig 8", "Fig 11"),
}

MODEL_LABELS = {"vae": "VAE", "factor_vae": "FactorVAE", "beta_tc_vae": "β-TCVAE"}
# Baseline, then the variants in COMPARISONS order.
_PALETTE = ["tab:blue", "tab:red", "tab:green", "tab:orange"]
_MARKERS = ["o", "^", "s", "D"]


def _comparison(study: str, frame: pd.DataFrame) -> tuple[str, list, dict]:
    """(column, ordered values: baseline first, labels) that split a study's cells."""
    if study in COMPARISONS:
        column, base, variants, labels = COMPARISONS[study]
        return column, [base, *variants], labels
    values = sorted(frame["encoder"].unique())
    return "encoder", values, {v: v for v in values}


def _title(study: str, dataset: str, kind: int, what: str, steps: Sequence[int]) -> str:
    paper = PAPER_FIGURES.get((study, dataset), ("", "", ""))[kind]
    step_note = ", ".join(f"{s:,}" for s in sorted(set(steps)))
    return f"{what} on {dataset} ({study}, {step_note} steps)" + (
        f" — cf. paper {paper}" if paper else "")


def mig_violins(frame: pd.DataFrame, study: str, dataset: str, out: Path,
                mig_column: str = "mig_mean") -> Path:
    """Violin plots of MIG per model: baseline then variant(s) (Figs 2, 3, 5, 7).

    Args:
      frame: Rows of one study and one dataset (see ``aggregate.COLUMNS``).
      study: Study name (chooses the compared column).
      dataset: Dataset name (for the title).
      out: PNG path to write.
      mig_column: Which representation's MIG to plot.

    Returns:
      ``out``.
    """
    column, order, labels = _comparison(study, frame)
    models = [m for m in MODEL_LABELS if m in set(frame["model"])] + sorted(
        set(frame["model"]) - set(MODEL_LABELS))
    panel_width = max(4.2, 1.6 * len(order))  # room for each violin's label
    fig, axes = plt.subplots(1, len(models), figsize=(panel_width * len(models), 4.2),
                             squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        data = frame[frame["model"] == model].copy()
        data["variant"] = data[column].map(labels)
        names = [labels[v] for v in order]
        sns.violinplot(data=data, x="variant", y=mig_column, order=names, hue="variant",
                       hue_order=names, palette=_PALETTE[:len(names)], inner="box", cut=0,
                       ax=ax, legend=False)
        sns.stripplot(data=data, x="variant", y=mig_column, order=names, color="black",
                      size=4, alpha=0.6, ax=ax)
        ax.set_title(MODEL_LABELS.get(model, model))
        ax.set_xlabel("")
        ax.set_ylabel("MIG" + (" (mean representation)" if mig_column == "mig_mean" else ""))
    fig.suptitle(_title(study, dataset, 0, "MIG", frame["steps"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")  # keep long suptitles whole
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
    models = [m for m in MODEL_LABELS if m in set(frame["model"])] + sorted(
        set(frame["model"]) - set(MODEL_LABELS))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.0), squeeze=False)
    for ax, model in zip(axes[0], models):
        data = frame[frame["model"] == model].copy()
        data["variant"] = data[column].map(labels)
        names = [labels[v] for v in order]
        sns.scatterplot(data=data, x="reconstruction_loss", y=mig_column, hue="variant",
                        style="variant", hue_order=names, style_order=names,
                        palette=_PALETTE[:len(names)], markers=_MARKERS[:len(names)], s=60,
                        ax=ax)
        ax.set_title(MODEL_LABELS.get(model, model))
        ax.set_xlabel("reconstruction loss")
        ax.set_ylabel("MIG")
        if ax.get_legend() is not None:
            ax.legend(title=None, fontsize=8)
    fig.suptitle(_title(study, dataset, 1, "MIG vs reconstruction", frame["steps"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120, bbox_inches="tight")  # keep long suptitles whole
    plt.close(fig)
    return out


def appendix_c(panels: Sequence[tuple[str, Path, Path, str]], study: str, dataset: str,
               out: Path) -> Path:
    """Reconstructions and traversals of the best-MIG model of each cell (Appendix C).

    Args:
      panels: (label, reconstructions image, traversal image, traversal caption)
        per cell; the images are dlib visualize_model's
        ``reconstructions/reconstructions.jpg`` and either
        ``traversals_fitted/traversals0.jpg`` (:mod:`splitenc_plugin.traversals`)
        or dlib's ``traversals/traversals0.jpg``, from the same input.
      study: Study name (title).
      dataset: Dataset name (title).
      out: PNG path to write.

    Returns:
      ``out``.
    """
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 4.6 * len(panels)), squeeze=False)
    for row, (label, recon, traversal, caption) in zip(axes, panels):
        for ax, path, what in zip(row, (recon, traversal),
                                  ("reconstructions (input | output)", caption)):
            ax.imshow(mpimg.imread(path), cmap="gray")
            ax.set_title(f"{label}\n{what}", fontsize=9)
            ax.axis("off")
    paper = PAPER_FIGURES.get((study, dataset), ("", "", ""))[2]
    fig.suptitle(f"Best-MIG model per cell on {dataset} ({study})"
                 + (f" — cf. paper {paper}" if paper else ""), fontsize=10)
    # Keep ~0.4 inch above the first row's titles for the suptitle.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
