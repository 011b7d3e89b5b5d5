"""Which layers autoprune can prune and quantize, and what it says about the others.

Channel pruning physically resizes every parameter coupled to a group of channels. That
is only correct for module types torch-pruning knows how to resize (its registered
pruners), plus bare parameters used position by position (a class token, position
embeddings, a layer scale: :mod:`autoprune.unwrapped`). A module with its *own* parameters
used any other way (a GRU, a hand-written linear, a hand-written attention with fused
weights) would be resized along a guessed dimension or not at all: a silently wrong model.
:func:`check_supported` refuses such models with
:class:`~autoprune.exceptions.UnsupportedLayerError` naming the module and the fix
(``exclude:`` it); once excluded, every channel group coupled to it is left unpruned.

Some supported types are kept whole on purpose (``KEEP_WHOLE``): torch-pruning resizes
them, but not in a way that exports and quantizes cleanly here.
"""

from __future__ import annotations

import re
from typing import Collection, Sequence

import torch_pruning as tp
import yaml
from torch import nn

from .exceptions import UnsupportedLayerError

__all__ = ["PRUNABLE_TYPES", "KEEP_WHOLE", "check_supported", "matches", "exclude_hint"]

# Module types whose own parameters torch-pruning resizes correctly (its built-in pruners).
PRUNABLE_TYPES: tuple[type, ...] = (
    tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_BATCHNORM, tp.ops.TORCH_LAYERNORM,
    tp.ops.TORCH_GROUPNORM, tp.ops.TORCH_INSTANCENORM, tp.ops.TORCH_PRELU, tp.ops.TORCH_EMBED,
    tp.ops.TORCH_MHA, tp.ops.TORCH_LSTM,
)

# Supported by torch-pruning, but channel groups touching them are left unpruned, with this reason.
# (nn.MultiheadAttention is not among them: its width prunes with every head losing the same
# positions, see autoprune.space._slices.)
KEEP_WHOLE: dict[type, str] = {
    nn.LSTM: "nn.LSTM keeps its width (its gates are fused weights)",
}


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether module path ``name`` equals a pattern or fully matches a ``re:`` pattern."""
    return any(re.fullmatch(p[3:], name) if p.startswith("re:") else p == name for p in patterns)


def check_supported(model: nn.Module, exclude: Sequence[str] = (), resizable: Collection[str] = ()) -> dict[str, str]:
    """Modules that channel pruning must not touch, with the reason; raises for unsupported ones not excluded.

    Args:
        model: The model.
        exclude: Module paths or ``re:`` patterns the user keeps out of compression.
        resizable: Paths of custom modules whose own parameters Torch-Pruning resizes as bare
            parameters (class tokens, position embeddings, layer scales: see
            :func:`autoprune.unwrapped.resizable_owners`); they are accepted unless excluded.

    Returns:
        ``{module path: reason}`` for custom modules that are excluded and for ``KEEP_WHOLE`` types.

    Raises:
        UnsupportedLayerError: modules own parameters of a type torch-pruning cannot resize and
            are not excluded. One message names every such module, with the ``exclude`` list to
            paste; the error's ``modules`` lists them.
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
        elif name not in resizable:
            unsupported.append((name, type(m).__name__, own))
    if unsupported:
        listed = ", ".join(f"{_label(name)} ({kind}) with {own}" for name, kind, own in unsupported)
        it, has, its = ("it", "has", "its") if len(unsupported) == 1 else ("them", "have", "their")
        raise UnsupportedLayerError(
            f"{listed} {has} {its} own parameters that torch-pruning cannot resize, so pruning the channels coupled "
            f"to {it} would give a wrong model. Exclude {it}: {exclude_hint([n for n, _, _ in unsupported])}; channels "
            f"coupled to {it} are then left unpruned. Or use supported layers (Conv, Linear, BatchNorm, LayerNorm, "
            f"GroupNorm, Embedding, PReLU).",
            modules=[n for n, _, _ in unsupported],
        )
    return frozen


def _label(name: str) -> str:
    return f"module {name!r}" if name else "the model's root module ''"


def exclude_hint(names: Sequence[str]) -> str:
    """How to keep modules ``names`` out of compression, ready to paste: the study YAML key and ``discover``'s argument.

    The root module's path is the empty string: ``['']`` in both (a YAML flow list quotes it).
    """
    listed = yaml.safe_dump(list(names), default_flow_style=True, width=1 << 30).strip()
    return f"add `search: exclude: {listed}` to the study YAML (or discover(..., exclude={list(names)!r}))"


def _enclosing(name: str) -> list[str]:
    """``a.b.c`` -> ``[a.b.c, a.b, a]``: excluding a module excludes what it contains."""
    parts = name.split(".") if name else [""]
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
