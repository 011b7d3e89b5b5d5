"""Which layers autoprune can prune and quantize, and what it says about the others.

Channel pruning physically resizes every parameter coupled to a group of channels. That
is only correct for module types torch-pruning knows how to resize (its registered
pruners). A module with its *own* parameters of any other type (a custom scale, a GRU, a
hand-written attention with fused weights) would be resized along a guessed dimension or
not at all: a silently wrong model. :func:`check_supported` refuses such models with
:class:`~autoprune.exceptions.UnsupportedLayerError` naming the module and the fix
(``exclude:`` it); once excluded, every channel group coupled to it is left unpruned.

Some supported types are kept whole on purpose (``KEEP_WHOLE``): torch-pruning resizes
them, but not in a way that exports and quantizes cleanly here.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch_pruning as tp
from torch import nn

from .exceptions import UnsupportedLayerError

__all__ = ["PRUNABLE_TYPES", "KEEP_WHOLE", "check_supported", "matches"]

# Module types whose own parameters torch-pruning resizes correctly (its built-in pruners).
PRUNABLE_TYPES: tuple[type, ...] = (
    tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_BATCHNORM, tp.ops.TORCH_LAYERNORM,
    tp.ops.TORCH_GROUPNORM, tp.ops.TORCH_INSTANCENORM, tp.ops.TORCH_PRELU, tp.ops.TORCH_EMBED,
    tp.ops.TORCH_MHA, tp.ops.TORCH_LSTM,
)

# Supported by torch-pruning, but channel groups touching them are left unpruned, with this reason.
KEEP_WHOLE: dict[type, str] = {
    nn.MultiheadAttention: (
        "nn.MultiheadAttention keeps its width (its heads are fused weights); write attention with separate "
        "q/k/v/o nn.Linear and a head_dim attribute to prune whole heads (see autoprune.zoo.transformer)"
    ),
    nn.LSTM: "nn.LSTM keeps its width (its gates are fused weights)",
}


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether module path ``name`` equals a pattern or fully matches a ``re:`` pattern."""
    return any(re.fullmatch(p[3:], name) if p.startswith("re:") else p == name for p in patterns)


def check_supported(model: nn.Module, exclude: Sequence[str] = ()) -> dict[str, str]:
    """Modules that channel pruning must not touch, with the reason; raises for unsupported ones not excluded.

    Args:
        model: The model.
        exclude: Module paths or ``re:`` patterns the user keeps out of compression.

    Returns:
        ``{module path: reason}`` for custom modules that are excluded and for ``KEEP_WHOLE`` types.

    Raises:
        UnsupportedLayerError: a module owns parameters of a type torch-pruning cannot resize and
            is not excluded. The message names the module and how to exclude it.
    """
    frozen: dict[str, str] = {}
    unsupported = []
    for name, m in model.named_modules():
        whole = next((why for t, why in KEEP_WHOLE.items() if isinstance(m, t)), None)
        if whole is not None:
            frozen[name] = whole
            continue
        own = [p for p, _ in m.named_parameters(recurse=False)]
        if not own or isinstance(m, PRUNABLE_TYPES):
            continue
        if any(matches(n, exclude) for n in _enclosing(name)):
            frozen[name] = f"custom module {type(m).__name__} with its own parameters, excluded by configuration"
        else:
            unsupported.append((name, type(m).__name__, own))
    if unsupported:
        name, kind, own = unsupported[0]
        label = repr(name) if name else "the model's root module ''"
        others = f" (and {len(unsupported) - 1} more: {', '.join(repr(u[0]) for u in unsupported[1:4])})" if len(unsupported) > 1 else ""
        key = name or "''"
        raise UnsupportedLayerError(
            f"module {label} ({kind}) has its own parameters {own} that torch-pruning cannot resize, so pruning the "
            f"channels coupled to it would give a wrong model{others}. Exclude it: add it to `search: exclude: [{key}]` "
            f"in the study YAML (or discover(..., exclude=[{key!r}])); channels coupled to it are then left unpruned. "
            f"Or use supported layers (Conv, Linear, BatchNorm, LayerNorm, GroupNorm, Embedding, PReLU)."
        )
    return frozen


def _enclosing(name: str) -> list[str]:
    """``a.b.c`` -> ``[a.b.c, a.b, a]``: excluding a module excludes what it contains."""
    parts = name.split(".") if name else [""]
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
