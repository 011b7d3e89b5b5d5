"""Unstructured and N:M (e.g. 2:4) weight sparsity, and the size a sparse format would store.

Channel pruning (the default) makes dense models smaller and faster on CPUs. Sparsity
keeps shapes and zeroes individual weights instead: it helps targets that store or compute
sparse weights (compressed storage, sparse tensor cores), not a dense CPU kernel, so the
dense ONNX bytes do not shrink. :func:`sparse_size` therefore *estimates* the stored size
in a sparse format and labels it ``estimated``; the ONNX file size stays ``measured``.

In a plan used with sparsity, ``ratio`` on a conv/linear layer is the fraction of its
weights set to zero (unstructured), or marks the layer as N:M sparse (any ratio > 0).

In a study, ``build.sparsity`` (:func:`parse_setting`) sparsifies every searched layer of
every candidate after channel pruning, and :func:`packed_size` gives the candidate's stored
size: the measured ONNX bytes with each weight tensor re-counted as the target stores it
(sparse, and/or packed at a bit-width below the artifact's int8 stand-in).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..exceptions import PlanError
from ..metrics import Metric
from ..plan import LayerPlan, Plan
from ..space import QUANTIZABLE, SearchSpace
from .settings import SparsitySetting, parse_pattern, parse_setting

__all__ = ["sparsify", "sparsity_amounts", "sparse_size", "parse_pattern", "SparsitySetting", "parse_setting", "sparsify_layers", "packed_size"]

def sparsify_layers(model: nn.Module, space: SearchSpace, setting: SparsitySetting) -> nn.Module:
    """A copy of ``model`` with every quantizable layer of ``space`` sparsified as ``setting`` says."""
    plan = Plan({q.name: LayerPlan(ratio=setting.amount) for q in space.layers})
    return sparsify(model, plan, space, setting.pattern)


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


def _stored_bytes(w: torch.Tensor, value_bits: int, nm: tuple[int, int] | None | str) -> float:
    """Bytes of one weight tensor stored dense (``nm="dense"``), unstructured-sparse (None) or N:M, the smaller."""
    vb = value_bits / 8
    dense = w.numel() * vb
    if nm == "dense":
        return dense
    nnz = int(torch.count_nonzero(w))
    if nm is None:  # non-zero values + a one-bit-per-weight mask
        return min(dense, nnz * vb + w.numel() / 8)
    kept = w.numel() * nm[0] / nm[1]  # N values of every M + ceil(log2 M) bits of index each
    return min(dense, kept * vb + kept * max(1, (nm[1] - 1).bit_length()) / 8) if nnz <= kept else dense


def sparse_size(model: nn.Module, pattern: str = "unstructured", value_bits: int = 32) -> Metric:
    """Estimated stored size (kB) of ``model`` with sparse conv/linear weights in a compressed format.

    Unstructured layers: non-zero values plus a one-bit-per-weight bitmask. N:M layers: the
    N kept values of every M plus ceil(log2(M)) bits of index per kept value (2 bits for
    2:4, as sparse tensor cores store it). A layer is stored dense when that is smaller.
    Other parameters and buffers count as dense.
    """
    nm = parse_pattern(pattern)
    total = 0.0
    weights = set()
    for m in model.modules():
        if isinstance(m, QUANTIZABLE):
            weights.add(id(m.weight))
            total += _stored_bytes(m.weight.detach(), value_bits, nm)
    for p in model.parameters():
        if id(p) not in weights:
            total += p.numel() * value_bits / 8
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    how = f"{pattern} sparse storage of conv/linear weights at {value_bits}-bit values (bitmask or N:M index metadata), other tensors dense"
    return Metric(total / 1024.0, "kB", "estimated", how)


def packed_size(onnx_bytes: int, model: nn.Module, bits: dict[str, int], artifact_bits: dict[str, int],
                setting: SparsitySetting | None = None) -> Metric:
    """Estimated stored size (kB) of a candidate on its target, from the measured ONNX bytes.

    Each planned layer's weight tensor is counted in the ONNX at ``artifact_bits`` (8 for an
    int8 stand-in of a lower bit-width); it is re-counted at its target ``bits`` (packed
    b-bit values) and, with ``setting``, in its sparse format when that is smaller. Scales,
    biases and every other tensor stay as the ONNX file stores them.

    Args:
        onnx_bytes: Size of the artifact.
        model: The torch model the artifact was exported from (its weights give the non-zeros).
        bits: Per layer, the bit-width the target stores.
        artifact_bits: Per layer, the bit-width the artifact stores.
        setting: The study's sparsity, or None.
    """
    nm = "dense" if setting is None else parse_pattern(setting.pattern)
    modules = dict(model.named_modules())
    saved = 0.0
    for name, b in bits.items():
        w = modules[name].weight.detach()
        saved += w.numel() * artifact_bits[name] / 8 - _stored_bytes(w, b, nm)
    low = sorted({b for n, b in bits.items() if b < artifact_bits[n]})
    parts = ["ONNX bytes of the artifact"]
    if low:
        parts.append(f"with {'/'.join(map(str, low))}-bit layers' weights re-counted as packed values")
    if setting is not None:
        parts.append(f"{setting.pattern if setting.pattern != 'unstructured' else f'unstructured {setting.amount:g}'} sparse weight storage "
                     "(values + bitmask or N:M index bits, where smaller than dense)")
    return Metric((onnx_bytes - saved) / 1024.0, "kB", "estimated", ", ".join(parts))
