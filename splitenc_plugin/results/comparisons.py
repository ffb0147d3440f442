"""Which cells each study compares, derived from the study grids (one source).

A plugin study (:data:`splitenc_plugin.studies.grid.GRIDS`) varies exactly one
treatment axis — ``encoder`` or ``sigma``; its ``dataset``, ``model`` and
``seed`` axes are what a comparison is repeated over — and compares every
other value of it with its first (the baseline), plus the grid's
``contrasts``: ``split_encoder_study_v1`` the split with the vanilla encoder,
``correlated_noise_study_v1`` sigma = 0.9 with sigma = 0, the capacity study
each control with the vanilla encoder and the split with the wide encoder.
:data:`COMPARISONS` reads that from each grid, so a study whose values change
(say, sigma = 0.8) is compared on its new values; a grid that varies no
treatment axis, or more than one, an encoder without a label, or a contrast
of values the axis does not have, is an error at import, never a comparison
silently dropped.
"""

from __future__ import annotations

from typing import NamedTuple

from splitenc_plugin.studies.grid import GRIDS, StudyGrid

__all__ = ["COMPARED_AXES", "COMPARISONS", "ENCODER_LABELS", "Comparison", "comparison_pairs",
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


class Comparison(NamedTuple):
    """What one study compares.

    Attributes:
      column: The compared axis (a results column: ``encoder`` or ``sigma``).
      base: Its first value, the baseline.
      variants: Its other values, in grid order.
      labels: A label for each value.
      pairs: Every (baseline, variant) pair compared: each variant against
        ``base``, then the grid's contrasts.
    """

    column: str
    base: object
    variants: tuple
    labels: dict
    pairs: tuple[tuple[object, object], ...]


def study_comparison(grid: StudyGrid) -> Comparison:
    """What a study grid compares.

    Args:
      grid: A plugin study's grid.

    Returns:
      The one axis of :data:`COMPARED_AXES` with more than one value, its
      first value (the baseline), the others in grid order (the variants),
      a label for each value, and the (baseline, variant) pairs compared:
      each variant against the baseline, then ``grid.contrasts``.

    Raises:
      ValueError: If the grid varies no compared axis or several, has an
        encoder without a label in :data:`ENCODER_LABELS`, or a contrast
        whose values are not two different values of the compared axis or
        that repeats a pair, either way round.
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
    pairs = [(base, variant) for variant in variants]
    for baseline, variant in grid.contrasts:
        if {variant, baseline} - set(grid.axes[axis]) or variant == baseline \
                or {(baseline, variant), (variant, baseline)} & set(pairs):
            raise ValueError(f"study {grid.name}: contrast {variant!r} vs {baseline!r} is not a "
                             f"new pair of two different {axis} values of the study "
                             f"({', '.join(map(str, grid.axes[axis]))})")
        pairs.append((baseline, variant))
    return Comparison(axis, base, tuple(variants), labels, tuple(pairs))


# Study -> what it compares. Studies with one pair (the paper's two
# comparisons) come first, then those with more (the capacity controls);
# ties in grid-axis order (encoder before sigma).
COMPARISONS: dict[str, Comparison] = dict(sorted(
    ((name, study_comparison(grid)) for name, grid in GRIDS.items()),
    key=lambda item: (len(item[1].pairs), COMPARED_AXES.index(item[1].column))))


def comparison_pairs() -> list[tuple[str, object, object, dict]]:
    """Every (column, baseline, variant, labels) of :data:`COMPARISONS`, each once.

    A pair two studies share (e.g. split vs vanilla encoder, in the split and
    the capacity study) is listed once, with the first study's labels.
    """
    pairs: dict[tuple, tuple[str, object, object, dict]] = {}
    for comparison in COMPARISONS.values():
        for base, variant in comparison.pairs:
            pairs.setdefault((comparison.column, base, variant),
                             (comparison.column, base, variant, comparison.labels))
    return list(pairs.values())
