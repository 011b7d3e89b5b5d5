"""Bare parameters: tensors a module adds to or multiplies with the channels, outside any Conv/Linear/norm layer.

ViT's class token and position embeddings (Hugging Face ``ViTEmbeddings.cls_token`` /
``position_embeddings``, torchvision's ``class_token`` / ``pos_embedding``) and ConvNeXt's
layer scale (``layer_scale``, ``gamma``, ``layer_scale_parameter``) are plain
``nn.Parameter`` s of a custom module. Torch-Pruning resizes them as *unwrapped parameters*
(``unwrapped_parameters=[(param, dim)]``): it follows them through the autograd graph into
the channel group they are added to, and cuts them along one dimension. Left to itself it
cuts the last non-singleton dimension, a guess. Here the dimension is the one whose size
is the group's channel count, and a parameter qualifies only when

- every use of it is elementwise arithmetic or a concatenation (``+ - * /``, ``torch.cat``),
  reached through shape-only ops (expand, view, unsqueeze): what those compute per channel
  stays correct when channels go; a parameter used in a matrix product or an indexing
  (a hand-written linear, a relative position table) does not qualify, and its module
  is refused as before (:func:`autoprune.support.check_supported`);
- exactly one of its dimensions has the group's channel count. With several (a 17 x 17
  position table in a 17-channel group) which one follows the channels is ambiguous; with
  none (a parameter concatenated to part of the channels) none does: that group stays
  unpruned, with the reason, while the rest is searched.

The pruned model is still run afterwards (:mod:`autoprune.compress.check`): a parameter
that fits these rules but is used in a way they do not see is an error, never a result.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch_pruning as tp
from torch import nn

from .support import PRUNABLE_TYPES

__all__ = ["ARITHMETIC", "SHAPE_ONLY", "dependency_graph", "resizable_owners", "fit_dims"]

# Autograd nodes (name prefixes) that combine a parameter with the channels position by position.
ARITHMETIC = ("AddBackward", "SubBackward", "RsubBackward", "MulBackward", "DivBackward", "CatBackward")
# Autograd nodes that only broadcast or reshape a parameter on its way to the arithmetic.
SHAPE_ONLY = ("ExpandBackward", "ViewBackward", "UnsafeViewBackward", "ReshapeAliasBackward", "UnsqueezeBackward",
              "SqueezeBackward", "RepeatBackward")


def dependency_graph(model: nn.Module, example_input: Any) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model``, traced on ``example_input``.

    Torch-Pruning warns that it will cut each bare parameter's last non-singleton dimension;
    :func:`fit_dims` chooses the dimension instead, so that warning is silenced here (only it).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected", category=UserWarning)
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)


def _resizable_uses(node: Any) -> bool:
    """Whether every path from a parameter's node reaches arithmetic through shape-only ops."""
    stack, seen = list(node.outputs), set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        op = n.grad_fn.name() if n.grad_fn is not None and hasattr(n.grad_fn, "name") else type(n.module).__name__
        if op.startswith(SHAPE_ONLY):
            stack.extend(n.outputs)
        elif not op.startswith(ARITHMETIC):
            return False
    return True


def resizable_owners(model: nn.Module, DG: tp.DependencyGraph) -> set[str]:
    """Paths of the custom modules whose own parameters Torch-Pruning can resize as bare parameters.

    Args:
        model: The model ``DG`` was built on.
        DG: Its dependency graph (which traced every parameter outside Torch-Pruning's layer types).

    Returns:
        The paths of modules of no type Torch-Pruning knows (:data:`autoprune.support.PRUNABLE_TYPES`)
        whose every own parameter is used only position by position (see the module docstring),
        or not at all in the traced forward.
    """
    found = set()
    for path, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if own and not isinstance(m, PRUNABLE_TYPES) and all(
                p not in DG.module2node or _resizable_uses(DG.module2node[p]) for p in own):
            found.add(path)
    return found


def fit_dims(group: Any, channels: int, names: dict[Any, str]) -> str | None:
    """Point every bare parameter of ``group`` at its one dimension of ``channels`` entries.

    Sets the dimension Torch-Pruning cuts (its node's ``pruning_dim``, which Torch-Pruning
    itself sets from ``unwrapped_parameters`` after tracing); pruning the group then resizes
    the parameter along it.

    Args:
        group: A Torch-Pruning group (``DG.get_pruning_group``) of ``channels`` channels.
        channels: The group's channel count.
        names: ``{parameter: path}`` for messages.

    Returns:
        None, or why the group cannot be pruned: a bare parameter with no dimension, or
        several dimensions, of ``channels`` entries.
    """
    for dep, _ in group:
        if dep.target.type != tp.ops.OPTYPE.PARAMETER:
            continue
        param = dep.target.module
        dims = [d for d, size in enumerate(param.shape) if size == channels]
        if len(dims) != 1:
            why = (f"its dimensions {dims} all have the group's {channels} channels, so which one to cut is ambiguous"
                   if dims else f"none of its dimensions has the group's {channels} channels, so it cannot follow them")
            return f"coupled to parameter {names.get(param, '?')} of shape {tuple(param.shape)}: {why}"
        dep.target.pruning_dim = dims[0]
    return None
