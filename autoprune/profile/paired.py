"""Timing against a reference measured next to it: savings that a drifting machine shifts alike.

Many artifacts are timed in interleaved rounds (:func:`~autoprune.profile.rounds.measure_rounds`)
with the reference (the dense artifact) timed again after every :data:`BLOCK` of them; each
artifact's saving is then the reference's nearest timings minus its own, round by round, so a
machine that drifts over a round (one shared core, another tenant) shifts both sides of the
difference alike instead of every saving at once. Nothing here imports torch.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .rounds import trimmed_mean

__all__ = ["REF", "BLOCK", "with_references", "paired_savings", "coefficient_of_variation"]

REF = "dense"  # key of the dense int8 artifact among the timed ones
BLOCK = 4  # pruned artifacts timed between two timings of the dense one


def with_references(models: dict[Any, Path]) -> dict[tuple, Path]:
    """The timing order: the dense artifact first, then after every :data:`BLOCK` pruned ones.

    Each pruned artifact's saving is measured against the dense timings next to it in the
    same round, so a machine that drifts over a round (one shared core, another tenant)
    shifts both sides of the difference alike instead of every group's saving at once.
    """
    pruned = [k for k in models if k != REF]
    order: dict[tuple, Path] = {(REF, 0): models[REF]}
    for i, key in enumerate(pruned, 1):
        order[("pruned", key)] = models[key]
        if i % BLOCK == 0 or i == len(pruned):
            order[(REF, len(order))] = models[REF]
    return order


def paired_savings(order: list[tuple], medians: dict[tuple, list[float]]) -> dict[Any, float]:
    """``{pruned key: trimmed mean over rounds of (mean of the nearest surviving dense timings before and after it) - its median}``."""
    refs = [i for i, k in enumerate(order) if k[0] == REF and k in medians]
    out = {}
    for i, key in enumerate(order):
        if key[0] == REF or key not in medians or not refs:
            continue
        before = [j for j in refs if j < i][-1:]
        after = [j for j in refs if j > i][:1]
        near = [order[j] for j in before + after]
        out[key[1]] = trimmed_mean([statistics.fmean(medians[r][k] for r in near) - v for k, v in enumerate(medians[key])])
    return out


def coefficient_of_variation(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if mean > 0 else None
