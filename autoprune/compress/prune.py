"""Structured channel pruning: physically remove channels, so the model really is smaller and faster.

torch-pruning's dependency graph resolves what else must shrink with each group (the next
layer's input channels, BatchNorm, residual partners). Channels are ranked by an importance
criterion (default: group L2 magnitude) and the least important are removed.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from ..exceptions import ConfigError
from ..space import SearchSpace, keep_channels

__all__ = ["prune_channels", "IMPORTANCE", "make_importance"]

IMPORTANCE: dict[str, Callable[[], tp.importance.Importance]] = {
    "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "bn_scale": lambda: tp.importance.BNScaleImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(p=2),
    "fpgm": lambda: tp.importance.FPGMImportance(p=2),
}


def make_importance(name: str) -> tp.importance.Importance:
    if name not in IMPORTANCE:
        raise ConfigError(f"importance {name!r} is unknown (known: {sorted(IMPORTANCE)})")
    return IMPORTANCE[name]()


def prune_channels(
    model: nn.Module,
    ratios: dict[str, float],
    space: SearchSpace,
    example_input: torch.Tensor,
    importance: str = "magnitude",
) -> dict[str, tuple[int, int]]:
    """Remove channels from ``model`` in place; returns ``{group: (channels_before, channels_after)}``.

    Groups are pruned in the space's order; within a group the ``n`` lowest-scoring channels
    go (ties broken by index, so the same plan always removes the same channels). Groups
    with ``step`` > 1 lose whole blocks (attention heads) ranked by summed scores.
    """
    todo = {g.name: g for g in space.groups if ratios.get(g.name, 0.0) > 0}
    if not todo:
        return {}
    modules = dict(model.named_modules())
    imp = make_importance(importance)
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    done = {}
    for name, g in todo.items():
        root = modules[name]
        pruner = DG.get_pruner_of_module(root)
        channels = pruner.get_out_channels(root)
        n_prune = channels - keep_channels(channels, ratios[name], space.round_to, g.step)
        if n_prune <= 0:
            continue
        full = DG.get_pruning_group(root, pruner.prune_out_channels, list(range(channels)))
        with torch.no_grad():
            scores = imp(full)
        if scores is None:  # the criterion found no weights to score (e.g. bn_scale without BN)
            scores = torch.zeros(channels)
        if g.step > 1:  # whole heads: rank heads by their summed channel scores
            heads = torch.argsort(scores.double().view(-1, g.step).sum(1), stable=True)[: n_prune // g.step]
            idxs = sorted(int(h) * g.step + i for h in heads.tolist() for i in range(g.step))
        else:
            order = torch.argsort(scores.double(), stable=True)
            idxs = sorted(order[:n_prune].tolist())
        DG.get_pruning_group(root, pruner.prune_out_channels, idxs).prune()
        done[name] = (channels, channels - n_prune)
    return done
