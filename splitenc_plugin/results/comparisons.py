"""Which cells each study compares, derived from the study grids (one source).

A plugin study (:data:`splitenc_plugin.studies.grid.GRIDS`) varies exactly one
treatment axis — ``encoder`` or ``sigma``; its ``dataset``, ``model`` and
``seed`` axes are what a comparison is repeated over — and compares every
other value of it with its first (the baseline): ``split_encoder_study_v1``
the split with the vanilla encoder, ``correlated_noise_study_v1`` sigma =
0.9 with sigma = 0, the capacity study each control with the vanilla encoder.
:data:`COMPARISONS` reads that from each grid's ``axes``, so a study whose
values change (say, sigma = 0.8) is compared on its new values; a grid that
varies no treatment axis, or more than one, or an encoder without a label,
is an error at import, never a comparison silently dropped.
"""

from __future__ import annotations

from splitenc_plugin.studies.grid import GRIDS, StudyGrid

__all__ = ["COMPARED_AXES", "COMPARISONS", "ENCODER_LABELS", "comparison_pairs",
           "study_comparison"]

# The axes a study can compare; the others (dataset, model, seed) are what a
# comparison is repeated over. In the grids' axis order.
COMPARED_AXES = tuple(axis for axis in StudyGrid.AXES if axis in ("encoder", "sigma"))

ENCODER_LABELS = {"conv_encoder": "vanilla encoder", "split_conv_encoder": "split encoder",
                  "matched_split_conv_encoder": "matched split encoder",
                  "wide_conv_encoder": "wide encoder"}


def _sigma_label(sigma: float) -> str:
    """'σ = 0 (factorized)' (dlib's noise, Eq 11), 'σ = 0.9 (correlated)' (Eq 13)."""
    return f"σ = {sigma:g} ({'factorized' if sigma == 0 else 'correlated'})"


def study_comparison(grid: StudyGrid) -> tuple[str, object, tuple, dict]:
    """(compared axis, baseline value, variant values, labels) of a study grid.

    Args:
      grid: A plugin study's grid.

    Returns:
      The one axis of :data:`COMPARED_AXES` with more than one value, its
      first value (the baseline), the others in grid order (the variants),
      and a label for each value.

    Raises:
      ValueError: If the grid varies no compared axis or several, or has an
        encoder without a label in :data:`ENCODER_LABELS`.
    """
    varied = [axis for axis in COMPARED_AXES if len(grid.axes[axis]) > 1]
    if len(varied) != 1:
        raise ValueError(
            f"study {grid.name} varies {', '.join(varied) or 'none'} of the compared axes "
            f"({', '.join(COMPARED_AXES)}); the aggregator compares exactly one per study")
    [axis] = varied
    base, *variants = grid.axes[axis]
    if axis == "sigma":
        labels = {value: _sigma_label(value) for value in grid.axes[axis]}
    else:
        unlabelled = [value for value in grid.axes[axis] if value not in ENCODER_LABELS]
        if unlabelled:
            raise ValueError(f"study {grid.name}: encoder(s) {', '.join(unlabelled)} have no "
                             "label in splitenc_plugin.results.comparisons.ENCODER_LABELS")
        labels = ENCODER_LABELS
    return axis, base, tuple(variants), labels


# Study -> (column compared, baseline value, variant values, labels): each
# variant is compared with the baseline. Studies with one variant (the
# paper's two comparisons) come first, then those with more (the capacity
# controls); ties in grid-axis order (encoder before sigma).
COMPARISONS: dict[str, tuple[str, object, tuple, dict]] = dict(sorted(
    ((name, study_comparison(grid)) for name, grid in GRIDS.items()),
    key=lambda item: (len(item[1][2]), COMPARED_AXES.index(item[1][0]))))


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
