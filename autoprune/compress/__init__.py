"""Building a candidate for real: prune channels, recover, export ONNX, quantize.

Public entry points::

    small = autoprune.compress(model, plan, example_input)            # new nn.Module
    autoprune.to_onnx(small, plan, example_input, "m.onnx", calib)  # fp32 / int8 QDQ per plan
"""

from __future__ import annotations

import copy
import os
import sys
import types

import numpy as np
import torch
from torch import nn

from .._schema import atomic_write_bytes
from ..plan import Plan
from ..space import SearchSpace, discover
from ..exceptions import PlanError
from .build import Artifact, BuildSettings, build_artifact
from .fp16 import convert_fp16
from .onnx_export import export_onnx, nodes_by_module
from .prune import prune_channels
from .quantize import quantize_int8
from .recover import finetune, recalibrate_bn

__all__ = ["compress", "to_onnx", "build_artifact", "Artifact", "BuildSettings", "prune_channels", "recalibrate_bn", "finetune", "quantize_onnx"]


def compress(
    model: nn.Module,
    plan: Plan,
    example_input: torch.Tensor,
    *,
    space: SearchSpace | None = None,
    calibration_data: np.ndarray | None = None,
    bn_batches: int = 8,
    importance: str = "magnitude",
) -> nn.Module:
    """A pruned copy of ``model`` as ``plan`` says; ``model`` itself is left untouched.

    Args:
        model: The dense model.
        plan: Per-layer ratios (bits are applied by :func:`to_onnx`).
        example_input: An input of batch size 1.
        space: The search space (discovered with defaults when omitted; pass the study's
            space so that ``round_to`` and exclusions match).
        calibration_data: Training inputs; when given, BatchNorm statistics are re-estimated
            on ``bn_batches`` batches of them (adaptive BN).
        bn_batches: Batches for the BatchNorm recalibration.
        importance: Channel importance criterion (``magnitude``, ``l1``, ``bn_scale``, ``lamp``, ``fpgm``).

    Raises:
        PlanError: the plan does not fit the model.
    """
    space = space or discover(model, example_input)
    ratios, _ = space.resolve(plan)
    pruned = copy.deepcopy(model).eval()
    prune_channels(pruned, ratios, space, example_input, importance=importance)
    if calibration_data is not None and any(ratios.values()):
        recalibrate_bn(pruned, calibration_data, batches=bn_batches)
    return pruned


def quantize_onnx(proto, plan: Plan, space: SearchSpace, calibration_data: np.ndarray | None):
    """Apply the plan's bit-widths to an exported fp32 graph: int8 QDQ where bits == 8, float16 where 16.

    Bit-widths below 8 have no onnxruntime kernels; they are simulated in torch
    (:mod:`autoprune.compress.simulate`) and refused here.
    """
    bits = space.resolve_bits(plan)
    low = sorted(layer for layer, b in bits.items() if b not in (8, 16, 32))
    if low:
        raise PlanError(
            f"plan: layers.{low[0]}.bits {bits[low[0]]} has no onnxruntime kernel; bit-widths below 8 are "
            "simulated in torch (autoprune.compress.simulate), not exported"
        )
    by_module = nodes_by_module(proto)
    want8 = [n for layer, b in bits.items() if b == 8 for n in by_module.get(layer, [])]
    want16 = [n for layer, b in bits.items() if b == 16 for n in by_module.get(layer, [])]
    others = [n for nodes in by_module.values() for n in nodes if n not in want8]
    if want8 and calibration_data is None:
        raise ValueError("calibration_data is required to quantize layers to 8 bits")
    if want8:
        proto = quantize_int8(proto, want8, others, calibration_data)
    return convert_fp16(proto, want16) if want16 else proto


def to_onnx(
    model: nn.Module,
    plan: Plan,
    example_input: torch.Tensor,
    path: str | os.PathLike,
    calibration_data: np.ndarray | None = None,
    *,
    space: SearchSpace | None = None,
) -> None:
    """Write the deployable ONNX of a (compressed) model: fp32, int8 QDQ and float16 layers per plan.

    Args:
        model: The model to export (typically the output of :func:`compress`).
        plan: Supplies each layer's bit-width.
        example_input: An input of batch size 1.
        path: Where to write; written atomically.
        calibration_data: Inputs for activation range calibration (needed when any layer is 8-bit).
        space: The search space of ``model`` (discovered when omitted, allowing bits 8, 16 and 32).
    """
    space = space or discover(model, example_input, max_ratio=0.0, bits=(8, 16, 32))
    proto = quantize_onnx(export_onnx(model, example_input), plan, space, calibration_data)
    atomic_write_bytes(path, proto.SerializeToString())


class _CallableModule(types.ModuleType):
    """``autoprune.compress(model, plan, x)`` calls :func:`compress`.

    Importing this subpackage binds ``autoprune.compress`` to the module object (the import
    system does that for every subpackage), which would shadow the top-level function;
    making the module callable keeps the public call working either way.
    """

    def __call__(self, *args, **kwargs) -> nn.Module:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
