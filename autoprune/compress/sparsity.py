"""Unstructured and N:M (e.g. 2:4) weight sparsity, and the size a sparse format would store.

Channel pruning (the default) makes dense models smaller and faster on CPUs. Sparsity
keeps shapes and zeroes individual weights instead: it helps targets that store or compute
sparse weights (compressed storage, sparse tensor cores), not a dense CPU kernel, so the
dense ONNX bytes do not shrink. :func:`sparse_size` therefore *estimates* the stored size
in a sparse format and labels it ``estimated``; the ONNX file size stays ``measured``.

In a plan used with sparsity, ``ratio`` on a conv/linear layer is the fraction of its
weights set to zero (unstructured), or marks the layer as N:M sparse (any ratio > 0).
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from ..exceptions import ConfigError, PlanError
from ..metrics import Metric
from ..plan import Plan
from ..space import QUANTIZABLE, SearchSpace

__all__ = ["sparsify", "sparsity_amounts", "sparse_size", "parse_pattern"]


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """``"unstructured"`` -> None; ``"2:4"`` -> (2, 4): keep N of every M consecutive input weights."""
    if pattern == "unstructured":
        return None
    m = re.fullmatch(r"(\d+):(\d+)", pattern)
    if not m or not 0 < int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"sparsity pattern must be 'unstructured' or 'N:M' with 0 < N < M (e.g. '2:4'), got {pattern!r}")
    return int(m.group(1)), int(m.group(2))


def sparsity_amounts(plan: Plan, space: SearchSpace) -> dict[str, float]:
    """Per conv/linear layer, the fraction of weights to zero; checks the plan's keys.

    Raises:
        PlanError: a key names no layer, or a ratio is given to a layer that cannot be quantized/sparsified.
    """
    names = [q.name for q in space.layers] + [e.name for e in space.excluded] + [g.name for g in space.groups]
    unknown = plan.unmatched(names)
    if unknown:
        raise PlanError(f"plan: layers.{unknown[0]} names no layer of the model")
    return {q.name: plan.ratio(q.name) for q in space.layers if plan.ratio(q.name) > 0}


def _mask(w: torch.Tensor, amount: float, nm: tuple[int, int] | None) -> torch.Tensor:
    flat = w.detach().reshape(w.shape[0], -1).abs()
    if nm is None:
        k = int(round(amount * flat.numel()))
        mask = torch.ones(flat.numel(), dtype=torch.bool)
        if k > 0:  # stable sort: equal magnitudes drop in index order, so the result is deterministic
            mask[torch.argsort(flat.flatten(), stable=True)[:k]] = False
        return mask.view(w.shape)
    n, m = nm
    cols = flat.shape[1]
    pad = (-cols) % m
    padded = torch.cat([flat, torch.full((flat.shape[0], pad), float("inf"))], 1) if pad else flat
    blocks = padded.view(flat.shape[0], -1, m)
    order = torch.argsort(blocks, dim=2, stable=True, descending=True)
    keep = torch.zeros_like(blocks, dtype=torch.bool).scatter_(2, order[..., :n], True)
    if pad:  # padding slots count as kept only if real weights remain
        keep = keep.view(flat.shape[0], -1)[:, :cols]
    return keep.reshape(w.shape)


def sparsify(model: nn.Module, plan: Plan, space: SearchSpace, pattern: str = "unstructured") -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude weights of each planned layer set to zero.

    Args:
        model: The model (left untouched).
        plan: ``ratio`` per layer = fraction of weights zeroed (ignored for N:M, where it only selects layers).
        space: The model's search space (for the layer names).
        pattern: ``"unstructured"`` or ``"N:M"`` (e.g. ``"2:4"``: at most 2 non-zeros in every 4 inputs).

    Returns:
        The sparse model; shapes are unchanged.
    """
    nm = parse_pattern(pattern)
    amounts = sparsity_amounts(plan, space)
    out = copy.deepcopy(model).eval()
    modules = dict(out.named_modules())
    with torch.no_grad():
        for name, amount in amounts.items():
            w = modules[name].weight
            w.mul_(_mask(w, amount, nm))
    return out


def sparse_size(model: nn.Module, pattern: str = "unstructured", value_bits: int = 32) -> Metric:
    """Estimated stored size (kB) of ``model`` with sparse conv/linear weights in a compressed format.

    Unstructured layers: non-zero values plus a one-bit-per-weight bitmask. N:M layers: the
    N kept values of every M plus ceil(log2(M)) bits of index per kept value (2 bits for
    2:4, as sparse tensor cores store it). A layer is stored dense when that is smaller.
    Other parameters and buffers count as dense.
    """
    nm = parse_pattern(pattern)
    vb = value_bits / 8
    total = 0.0
    weights = set()
    for m in model.modules():
        if isinstance(m, QUANTIZABLE):
            w = m.weight.detach()
            weights.add(id(m.weight))
            nnz = int(torch.count_nonzero(w))
            if nm is None:
                sparse = nnz * vb + w.numel() / 8
            else:
                kept = w.numel() * nm[0] / nm[1]
                sparse = kept * vb + kept * max(1, (nm[1] - 1).bit_length()) / 8 if nnz <= kept else float("inf")
            total += min(w.numel() * vb, sparse)
    for p in model.parameters():
        if id(p) not in weights:
            total += p.numel() * vb
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    how = f"{pattern} sparse storage of conv/linear weights at {value_bits}-bit values (bitmask or N:M index metadata), other tensors dense"
    return Metric(total / 1024.0, "kB", "estimated", how)
