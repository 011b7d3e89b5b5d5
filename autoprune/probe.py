"""The discovery probe: each channel group is pruned alone, by one step, on a copy; groups that break the model go.

Torch-Pruning resizes what its dependency graph sees. Code it cannot see still breaks:
the Hugging Face Whisper encoder adds its position table by weight (``embed_positions.weight``,
no module call), so pruning the residual width breaks the sum; a reshape to a stored
channel count breaks the same way. Compressing such a plan raises
:class:`~autoprune.exceptions.UnsupportedLayerError` naming the group (never a broken
model); the probe finds those groups before the search starts, so a study searches the
rest and needs no hand-written ``exclude``. A probe costs one dependency-graph trace and
two forwards on the example input when nothing breaks, and about 2 log2(groups) more per
group that breaks; the result is deterministic (the same channels are removed every time).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from .compress.prune import pruning_failure
from .inputs import Inputs
from .space import ChannelGroup, Excluded, SearchSpace

__all__ = ["probe", "one_step"]


def one_step(group: ChannelGroup, space: SearchSpace) -> float | None:
    """The smallest ratio on ``space``'s grid that removes channels from ``group`` (None: none up to its cap does)."""
    steps = round(group.max_ratio / space.ratio_step)
    for k in range(1, steps + 1):
        ratio = round(k * space.ratio_step, 10)
        if group.kept(ratio, space.round_to) < group.channels:
            return ratio
    return None


def _failure(model: nn.Module, example_input: Inputs, space: SearchSpace, ratios: dict[str, float]) -> str | None:
    try:
        return pruning_failure(model, ratios, space, example_input)
    except Exception as e:  # Torch-Pruning itself failing to cut a group is as much a break
        return f"Torch-Pruning fails to cut it: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _culprits(model: nn.Module, example_input: Inputs, space: SearchSpace, steps: dict[str, float],
              failure: str) -> dict[str, str]:
    """``{group: what breaks}`` of the groups in ``steps`` that break the model alone; pruning all of ``steps`` fails with ``failure``.

    Found by halving: a half that runs holds no culprit, a half that fails is halved again, so
    one culprit among n groups costs about 2 log2(n) pruned copies instead of n (a 2.5-GB
    ViT-H/14 has 65 groups). A failing set none of whose halves fails alone breaks the model
    only in combination and is left in.
    """
    if len(steps) == 1:
        return dict.fromkeys(steps, failure)
    names = list(steps)
    found: dict[str, str] = {}
    for half in (names[:len(names) // 2], names[len(names) // 2:]):
        part = {n: steps[n] for n in half}
        why = _failure(model, example_input, space, part)
        if why is not None:
            found.update(_culprits(model, example_input, space, part, why))
    return found


def probe(model: nn.Module, example_input: Inputs, space: SearchSpace) -> SearchSpace:
    """``space`` without the channel groups whose pruning alone breaks ``model``, each excluded with the reason.

    Every group is first pruned by one step (:func:`one_step`) all at once, on one copy: when
    that model runs, nothing breaks and ``space`` is returned as it is (one dependency-graph
    trace in all). Otherwise the groups are halved, each half pruned on a copy of its own,
    down to the single groups that break the model (:func:`_culprits`). Groups that break the
    model only in combination are left in (pruning such a plan raises
    :class:`~autoprune.exceptions.UnsupportedLayerError` naming them).

    Args:
        model: The dense model ``space`` was discovered on (not modified).
        example_input: The input it was discovered with.
        space: Its search space.

    Returns:
        ``space`` itself when no group breaks the model alone, else a copy whose ``excluded``
        names each broken group with what breaks.
    """
    steps = {g.name: ratio for g in space.groups if (ratio := one_step(g, space)) is not None}
    failure = _failure(model, example_input, space, steps) if steps else None
    if failure is None:
        return space
    broken = _culprits(model, example_input, space, steps, failure)
    if not broken:
        return space
    found = tuple(Excluded(name, "prune", f"pruning it alone breaks the model (found by the discovery probe): {why}")
                  for name, why in broken.items())
    return dataclasses.replace(space, groups=tuple(g for g in space.groups if g.name not in broken),
                               excluded=space.excluded + found)
