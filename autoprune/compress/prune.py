"""Structured channel pruning: physically remove channels, so the model really is smaller and faster.

torch-pruning's dependency graph resolves what else must shrink with each group (the next
layer's input channels, BatchNorm, residual partners). Channels are ranked by an importance
criterion (default: group L2 magnitude; see :mod:`autoprune.compress.importance`) and the
least important are removed.
"""

from __future__ import annotations

import copy
import gc
from typing import Callable

import torch
from torch import nn

from ..exceptions import UnsupportedLayerError
from ..heads import head_size, set_heads
from ..space import SearchSpace, keep_channels
from ..support import exclude_hint
from ..unwrapped import dependency_graph, fit_dims
from .check import forward_failure, output_shapes
from .importance import IMPORTANCE, make_importance

__all__ = ["prune_channels", "prune_copy", "pruning_failure", "IMPORTANCE", "make_importance"]

# Torch-Pruning's dependency graph lives in reference cycles and holds the traced autograd graph, and with
# it every weight the pruning replaced: above this size a model's copies and old weights are collected at
# once, not when Python's collector next runs (a 2.5 GB ViT-H/14 otherwise held three copies at a time).
COLLECT_ABOVE_BYTES = 64 * 2**20


def _collect(model: nn.Module) -> None:
    if sum(p.numel() * p.element_size() for p in model.parameters()) > COLLECT_ABOVE_BYTES:
        gc.collect()


def prune_channels(
    model: nn.Module,
    ratios: dict[str, float],
    space: SearchSpace,
    example_input: torch.Tensor,
    importance: str | Callable = "magnitude",
) -> dict[str, tuple[int, int]]:
    """Remove channels from ``model`` in place; returns ``{group: (channels_before, channels_after)}``.

    ``importance`` is a criterion's name in :data:`IMPORTANCE`, a ``module.path:factory``
    reference, or the criterion itself (``criterion(group) -> Tensor``).

    Groups are pruned in the space's order; within a group the ``n`` lowest-scoring channels
    go (ties broken by index, so the same plan always removes the same channels). Groups
    with ``step`` > 1 lose whole blocks (attention heads) ranked by summed scores, and the
    attention modules they belong to get their new head count. Groups
    with ``groups`` > 1 (grouped convolutions) lose the same positions in every slice,
    ranked by their scores averaged over the slices, as Torch-Pruning's pruners do.

    Raises:
        UnsupportedLayerError: the pruned model no longer runs on ``example_input``, or its
            outputs change shape (the message names the groups pruned; :func:`prune_copy`
            narrows them down to the ones that break it).
    """
    done, failure = _prune(model, ratios, space, example_input, importance)
    if failure:
        raise _broken(dict.fromkeys(done, failure), together=True)
    return done


def _prune(model: nn.Module, ratios: dict[str, float], space: SearchSpace, example_input: torch.Tensor,
           importance: str | Callable) -> tuple[dict[str, tuple[int, int]], str | None]:
    """:func:`prune_channels` without raising: the channel counts, and what is broken (None if nothing)."""
    todo = {g.name: g for g in space.groups if ratios.get(g.name, 0.0) > 0}
    if not todo:
        return {}, None
    expected = output_shapes(model, example_input)
    modules = dict(model.named_modules())
    imp = importance if callable(importance) else make_importance(importance)
    DG = dependency_graph(model, example_input)
    done = {}
    for name, g in todo.items():
        root = modules[name]
        pruner = DG.get_pruner_of_module(root)
        channels = pruner.get_out_channels(root)
        n_prune = channels - keep_channels(channels, ratios[name], space.round_to, g.step, g.groups)
        if n_prune <= 0:
            continue
        full = DG.get_pruning_group(root, pruner.prune_out_channels, list(range(channels)))
        fit_dims(full, channels, {})  # bare parameters (class token, layer scale) are cut along their channel dim
        with torch.no_grad():
            scores = imp(full)
        if scores is None:  # the criterion found no weights to score (e.g. bn_scale without BN)
            scores = torch.zeros(channels)
        sizes = {path: head_size(modules[path], channels) for path in g.attention}
        DG.get_pruning_group(root, pruner.prune_out_channels, _lowest(scores, n_prune, g.step, g.groups)).prune()
        for path, size in sizes.items():  # forwards that reshape with a stored head count need the new one
            set_heads(modules[path], channels - n_prune, size)
        done[name] = (channels, channels - n_prune)
    del DG
    _collect(model)  # the replaced weights, still held by the graph's trace
    return done, forward_failure(model, example_input, expected) if done else None


def _lowest(scores: torch.Tensor, n_prune: int, step: int, groups: int) -> list[int]:
    """Indices of the ``n_prune`` channels to remove: whole ``step`` blocks, the same positions in all ``groups`` slices."""
    size = len(scores) // groups
    blocks = scores.double().view(groups, size).mean(0).view(-1, step).sum(1)
    drop = torch.argsort(blocks, stable=True)[: n_prune // (groups * step)].tolist()
    return sorted(k * size + b * step + i for k in range(groups) for b in drop for i in range(step))


def _broken(failures: dict[str, str], together: bool = False) -> UnsupportedLayerError:
    """The error for ``{group: what breaks}``; ``together``: only the groups' combination breaks it."""
    groups = list(failures)
    if together or len(groups) == 1:
        which = f"channel group {groups[0]!r}" if len(groups) == 1 else f"channel groups {', '.join(map(repr, groups))} together"
        what = f"pruning {which} breaks the model: {next(iter(failures.values()))}"
    else:
        what = "pruning breaks the model: " + "; ".join(f"channel group {g!r}: {why}" for g, why in failures.items())
    return UnsupportedLayerError(
        f"{what}. Code that torch-pruning cannot see depends on those channels (a reshape to a fixed channel "
        f"count, a stored head count, an output taken outside autograd). Keep them unpruned: {exclude_hint(groups)}.",
        modules=groups,
    )


def pruning_failure(model: nn.Module, ratios: dict[str, float], space: SearchSpace, example_input: torch.Tensor,
                    importance: str | Callable = "magnitude") -> str | None:
    """What pruning ``ratios`` breaks in a copy of ``model``, or None when the copy runs with the dense output shapes.

    The answer is one line (:func:`~autoprune.compress.check.forward_failure`). ``model`` is left
    untouched; nothing is narrowed down to single groups (:func:`prune_copy` does that).
    """
    failure = _prune(copy.deepcopy(model).eval(), ratios, space, example_input, importance)[1]
    _collect(model)
    return failure


def prune_copy(model: nn.Module, ratios: dict[str, float], space: SearchSpace, example_input: torch.Tensor,
               importance: str | Callable = "magnitude") -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    """A pruned copy of ``model`` in eval mode (``model`` is left untouched) and :func:`prune_channels`' channel counts.

    Raises:
        UnsupportedLayerError: the pruned model would be broken. The message names the groups
            whose pruning breaks it (each tried alone on another copy; all of the plan's groups
            when only their combination does) and the ``exclude`` list that avoids it.
    """
    work = copy.deepcopy(model).eval()
    done, failure = _prune(work, ratios, space, example_input, importance)
    if failure is None:
        return work, done
    culprits = {}
    if len(done) > 1:  # find the groups that break it on their own
        for name in done:
            alone = _prune(copy.deepcopy(model).eval(), {name: ratios[name]}, space, example_input, importance)[1]
            _collect(model)
            if alone:
                culprits[name] = alone
    raise _broken(culprits) if culprits else _broken(dict.fromkeys(done, failure), together=True)
