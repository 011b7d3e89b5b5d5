"""Attention heads as people write them: how wide a head is, and the head count to update after pruning.

An attention module with separate q/k/v projections (Hugging Face BERT, DistilBERT, ViT,
Whisper; :mod:`autoprune.zoo.transformer`) splits their outputs into heads of a fixed size.
Torch-Pruning couples q, k, v (and o's input) into one channel group; pruning that group is
only correct in whole heads, and the module's stored head count must follow, because some
forwards reshape with it (older Hugging Face code views to ``(…, num_attention_heads,
attention_head_size)``). Torch-Pruning's own Hugging Face examples do the same by hand
after pruning: ``num_attention_heads = pruned width // head size``, ``all_head_size = width``.

The head size is read from the attribute the library names it by (``head_dim``,
``attention_head_size``, ``head_size``), else derived from a head count (``num_heads``,
``num_attention_heads``, ``n_heads``, ``n_head``) and the projection width.
"""

from __future__ import annotations

from torch import nn

__all__ = ["SIZE_ATTRS", "COUNT_ATTRS", "WIDTH_ATTRS", "head_size", "set_heads"]

# Channels per head, as Hugging Face, timm and hand-written attention name it.
SIZE_ATTRS = ("head_dim", "attention_head_size", "head_size")
# Number of heads, as the same libraries name it.
COUNT_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head")
# Total width of the q/k/v projections (BERT's ``all_head_size``), kept equal to heads x size.
WIDTH_ATTRS = ("all_head_size",)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def head_size(module: nn.Module, width: int) -> int:
    """Channels per head of attention ``module`` whose q/k/v projections are ``width`` channels wide.

    Args:
        module: The module holding the q/k/v projections.
        width: Output channels of each projection.

    Returns:
        The declared head size when it divides ``width``, else ``width // count`` for a
        declared head count that divides it, else 1 (not an attention module: channels
        prune one at a time).
    """
    for attr in SIZE_ATTRS:
        value = getattr(module, attr, None)
        if _positive_int(value) and width % value == 0:
            return value
    for attr in COUNT_ATTRS:
        value = getattr(module, attr, None)
        if _positive_int(value) and width % value == 0:
            return width // value
    return 1


def set_heads(module: nn.Module, width: int, size: int) -> int:
    """Update ``module``'s head count (and total head width) to q/k/v projections now ``width`` wide.

    Args:
        module: The attention module whose projections were pruned in whole heads.
        width: Output channels of each projection after pruning, a multiple of ``size``.
        size: Channels per head (unchanged by pruning).

    Returns:
        The new head count.
    """
    heads = width // size
    for attr in COUNT_ATTRS:
        if _positive_int(getattr(module, attr, None)):
            setattr(module, attr, heads)
    for attr in WIDTH_ATTRS:
        if _positive_int(getattr(module, attr, None)):
            setattr(module, attr, width)
    return heads
