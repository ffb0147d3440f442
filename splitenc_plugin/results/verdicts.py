"""The paper's claims judged by a fixed decision rule, each with its chance if exchangeable.

The same claims are judged on the capacity study's control pairs, labelled
as controls (:data:`CONTROLS`), not as the paper's.

The rule (docs/results/campaign/README.md, fixed before the campaign had
results): a claim about the median holds when the median difference has the
paper's sign and P(variant higher) is at or beyond :data:`SEPARATED`, does
not hold when both point the other way, and is inconclusive otherwise;
"dramatically lower" needs every variant run below every baseline run and a
median at most half the baseline's; no verdict while a planned run of either
cell is unfinished, nor with fewer than :data:`MIN_RUNS` runs in a cell.
Beside each verdict: the share of relabellings of the two cells' pooled runs
on which the same judge gives the same verdict (:func:`claim_verdicts`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from splitenc_plugin.results.stats import (
    MAX_RELABELLINGS,
    STATISTICS,
    contrast,
    relabellings,
)

__all__ = ["CONTROLS", "MAX_RELABELLINGS", "MIN_RUNS", "PAPER_CLAIMS", "SEPARATED",
           "claim_verdicts", "claims_of"]

# The campaign's decision rule (docs/results/campaign/README.md, fixed before
# its results): P(variant higher) at or beyond 0.75 (or at or below 0.25) counts
# as a separation of two small samples; no verdict until every planned run of
# both cells has finished, nor with fewer than 2 runs per cell.
SEPARATED = 0.75
MIN_RUNS = 2


def _p_value(p: float) -> str:
    """A p-value for the evidence text: "—" where there is no test (one run in an arm)."""
    return "—" if math.isnan(p) else f"{p:.2f}"


def _directional(d_median: float, p_higher: float, higher: bool) -> str:
    """Verdict on "the variant's value is higher (lower)": medians and separation agree."""
    sign, p_claimed = (1, p_higher) if higher else (-1, 1 - p_higher)
    if p_claimed >= SEPARATED and sign * d_median > 0:
        return "holds"
    if p_claimed <= 1 - SEPARATED and sign * d_median < 0:
        return "does not hold"
    return "inconclusive"


def _median_mig_higher(d: dict) -> str:
    return _directional(d["d_mig_median"], d["p_mig_higher"], higher=True)


def _max_mig_higher(d: dict) -> str:
    return "holds" if d["_d_mig_max"] > 0 else \
        "does not hold" if d["_d_mig_max"] < 0 else "inconclusive"


def _recon_lower(d: dict) -> str:
    return _directional(d["d_recon_median"], d["p_recon_higher"], higher=False)


def _decline_met(d: dict) -> tuple[bool, bool]:
    """Sec 5.1's "dramatic decline", its two conditions: (every variant run below
    every baseline run, the variant's median MIG at most half the baseline's)."""
    return (d["p_mig_higher"] == 0,
            d["_mig_median_variant"] <= 0.5 * d["_mig_median_baseline"])


def _mig_dramatically_lower(d: dict) -> str:
    """Sec 5.1's "dramatic decline": both conditions of :func:`_decline_met`."""
    if all(_decline_met(d)):
        return "holds"
    verdict = _directional(d["d_mig_median"], d["p_mig_higher"], higher=False)
    return "direction holds, magnitude does not" if verdict == "holds" else verdict


def _decline_conditions(d: dict) -> str:
    """The dramatic decline's two conditions, each met or missed, for the evidence.

    "Direction holds, magnitude does not" (the rule's name, fixed before the
    campaign) says neither which condition was missed nor that the median may
    well have halved: this does.
    """
    every, half = ("met" if met else "missed" for met in _decline_met(d))
    return (f"; the dramatic decline's conditions: every variant run below every baseline "
            f"run {every} (P(MIG higher) {d['p_mig_higher']:.2f}), variant median at most "
            f"half the baseline's {half} ({d['_mig_median_variant']:.4f} vs "
            f"{d['_mig_median_baseline']:.4f})")


# Judge -> what its verdict rests on beyond the shared evidence.
_CONDITIONS: dict[Callable[[dict], str], Callable[[dict], str]] = {
    _mig_dramatically_lower: _decline_conditions}


# Compared column -> the paper's section and its claims about the variant
# (Sec 5.1, 5.2), each with how it is judged from a row of summarize()'s
# differences.
PAPER_CLAIMS: dict[str, tuple[str, tuple[tuple[str, Callable[[dict], str]], ...]]] = {
    "encoder": ("Sec 5.2", (("median MIG higher", _median_mig_higher),
                            ("maximum MIG higher", _max_mig_higher),
                            ("reconstruction loss lower", _recon_lower))),
    "sigma": ("Sec 5.1", (("MIG dramatically lower", _mig_dramatically_lower),)),
}

# (compared column, baseline, variant) -> what the same claims test on a pair
# that is not the paper's own: the capacity study's controls (not in the
# paper). Their verdicts are labelled so, not by the paper's section: "holds"
# on wide - vanilla would otherwise read as support for the paper.
CONTROLS: dict[tuple[str, object, object], str] = {
    ("encoder", "conv_encoder", "matched_split_conv_encoder"):
        "control: split at the vanilla encoder's capacity",
    ("encoder", "wide_conv_encoder", "split_conv_encoder"):
        "control: split vs unsplit at the split encoder's capacity",
    ("encoder", "conv_encoder", "wide_conv_encoder"):
        "control: capacity alone, unsplit",
}


def claims_of(pair: tuple[str, object, object] | None) -> list[tuple[str, Callable[[dict], str]]]:
    """The claims judged on a compared pair, each labelled with what it tests.

    Args:
      pair: (compared column, baseline value, variant value), or None for a
        comparison no claim is about (e.g. a fragment that changed several
        things).

    Returns:
      (label, judge) per claim: the paper's (``"median MIG higher (Sec
      5.2)"``), or on a :data:`CONTROLS` pair the same judge labelled with
      the control (``"median MIG higher (control: capacity alone,
      unsplit)"``); none for a column the paper makes no claim about.
    """
    if pair is None or pair[0] not in PAPER_CLAIMS:
        return []
    section, claims = PAPER_CLAIMS[pair[0]]
    source = CONTROLS.get(pair, section)
    return [(f"{what} ({source})", judge) for what, judge in claims]


def _relabellings(variant: Mapping[str, np.ndarray],
                  baseline: Mapping[str, np.ndarray]) -> tuple[Iterator[dict], int, bool]:
    """Every split of the two arms' pooled runs into groups of the arms' sizes.

    Returns:
      (the :func:`~.stats.contrast` of each split, variant group first; how
      many; whether that is all of them — else
      :data:`~.stats.MAX_RELABELLINGS` random ones).
    """
    pooled = {c: np.concatenate([variant[c], baseline[c]]) for c in STATISTICS}
    size = len(pooled["mig_mean"])
    picks, exact = relabellings(size, len(variant["mig_mean"]))

    def contrasts() -> Iterator[dict]:
        for pick in picks:
            mask = np.zeros(size, dtype=bool)
            mask[pick] = True
            yield contrast({c: a[mask] for c, a in pooled.items()},
                           {c: a[~mask] for c, a in pooled.items()})

    return contrasts(), len(picks), exact


def _verdict_chances(judges: Sequence[Callable[[dict], str]], verdicts: Sequence[str],
                     variant: Mapping[str, np.ndarray],
                     baseline: Mapping[str, np.ndarray]) -> tuple[list[int], int, bool]:
    """How many relabellings of the runs each judge gives its verdict on.

    Returns:
      (per judge, the relabellings on which it returns exactly its observed
      verdict; how many relabellings; whether all were enumerated).
    """
    splits, total, exact = _relabellings(variant, baseline)
    hits = [0] * len(judges)
    for stats in splits:
        for i, (judge, verdict) in enumerate(zip(judges, verdicts)):
            hits[i] += judge(stats) == verdict
    return hits, total, exact


def claim_verdicts(diffs: pd.DataFrame) -> pd.DataFrame:
    """The paper's claims judged on each comparison of :func:`~.compare.summarize`.

    Beside each verdict, its chance if the variant's and the baseline's runs
    were exchangeable: of all the ways to relabel the two cells' pooled runs
    into groups of the same sizes (C(n_v + n_b, n_v), the observed labelling
    included), the share on which the same judge gives exactly the same
    verdict (not "this verdict or a more extreme one": the verdicts are
    categories). E.g. 2 vs 2 runs with the variant higher in all 4 pairs:
    "median MIG higher" (at least 3 of the 4 pairs and a higher median)
    holds on 2 of the 6 labellings, chance 2/6; "maximum MIG higher" on 3
    of 6; the dramatic decline (every pair lower, median halved) on 1 of 6.

    Args:
      diffs: The differences frame of :func:`~.compare.summarize`.

    Returns:
      One row per (comparison, claim): dataset, data_fingerprint, model, the
      study's bindings where the cells have them (``vae.beta``, ...), steps,
      comparison, n, claim, ``control`` (a :data:`CONTROLS` pair, not the
      paper's), verdict, ``chance``, ``chance_hits``,
      ``relabellings`` (how many; random ones beyond
      :data:`MAX_RELABELLINGS`, ``chance_exact`` False) and the evidence the
      verdict rests on (with the exact Mann-Whitney p beside it). The verdict
      is "holds", "does not hold", "inconclusive" or "direction holds,
      magnitude does not" once every planned run of both cells has finished
      (the decision rule); else "waiting for K unfinished run(s)", or "too few
      runs" with fewer than :data:`MIN_RUNS` runs in a cell (chance NaN).
    """
    rows = []
    for d in diffs.to_dict("records"):
        missing = d.get("_missing", 0)
        # The claims about what the comparison changes: its compared pair, or
        # for a fragment the one column it changed (None: no claim).
        claims = claims_of(d["_claims"])
        judged = not missing and min(d["_n_variant"], d["_n_baseline"]) >= MIN_RUNS
        verdicts = [judge(d) for _, judge in claims] if judged else []
        hits, total, exact = _verdict_chances([judge for _, judge in claims], verdicts,
                                              d["_variant_runs"], d["_baseline_runs"]) \
            if judged else ([0] * len(claims), 0, True)
        for i, (claim, judge) in enumerate(claims):
            if missing:
                verdict = f"waiting for {missing} unfinished run(s)"
            elif not judged:
                verdict = f"too few runs (< {MIN_RUNS} per cell)"
            else:
                verdict = verdicts[i]
            rows.append({
                "dataset": d["dataset"], "data_fingerprint": d["data_fingerprint"],
                "model": d["model"], **{c: d[c] for c in d if "." in c},
                "steps": d["steps"], "comparison": d["comparison"],
                "n": d["n"],
                "claim": claim, "control": d["_claims"] in CONTROLS, "verdict": verdict,
                "chance": hits[i] / total if judged else np.nan,
                "chance_hits": hits[i], "relabellings": total, "chance_exact": exact,
                "evidence": (f"Δ median MIG {d['d_mig_median']:+.4f}, P(MIG higher) "
                             f"{d['p_mig_higher']:.2f} (MWU p {_p_value(d['p_mig_mwu'])}), "
                             f"Δ max MIG {d['_d_mig_max']:+.4f}, "
                             f"Δ median recon. {d['d_recon_median']:+.2f}, "
                             f"P(recon. higher) {d['p_recon_higher']:.2f} "
                             f"(MWU p {_p_value(d['p_recon_mwu'])})"
                             + (_CONDITIONS[judge](d) if judge in _CONDITIONS else "")),
            })
    return pd.DataFrame(rows)
