"""Multiply-accumulates per layer, counted on one forward pass: what pruning and quantization save.

Conv and Linear layers count their own products; ``nn.MultiheadAttention`` runs its
projections as functional calls, so it is counted from its own output.
"""

from __future__ import annotations

import torch
from torch import nn

from .inputs import Inputs, call

__all__ = ["layer_macs"]


def layer_macs(model: nn.Module, example_input: Inputs) -> dict[str, int]:
    """Multiply-accumulates of each conv / linear module (and ``nn.MultiheadAttention`` projection) for one forward pass of ``example_input``."""
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            def hook(mod, inp, out, name=name):
                k = int(torch.tensor(mod.kernel_size).prod())
                macs[name] = macs.get(name, 0) + out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(m, nn.Linear):
            def hook(mod, inp, out, name=name):
                macs[name] = macs.get(name, 0) + out.numel() * mod.in_features
        elif isinstance(m, nn.MultiheadAttention):
            # its projections run as functional calls, not as modules: the q/k/v projection
            # counts for the module itself, out_proj for out_proj (whose own hook never fires)
            def hook(mod, inp, out, name=name):
                elements = out[0].numel()
                macs[name] = macs.get(name, 0) + 3 * elements * mod.embed_dim
                macs[f"{name}.out_proj"] = macs.get(f"{name}.out_proj", 0) + elements * mod.embed_dim
        else:
            continue
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            call(model, example_input)
    finally:
        for h in hooks:
            h.remove()
    return macs
