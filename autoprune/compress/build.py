"""One candidate, end to end: plan -> pruned model -> ONNX -> quantized ONNX bytes, timed per stage."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from typing import Any

import numpy as np
import torch

from ..exceptions import CandidateError
from ..plan import Plan
from ..space import SearchSpace, layer_macs
from .onnx_export import export_onnx
from .prune import prune_channels
from .recover import finetune, recalibrate_bn

__all__ = ["BuildSettings", "Artifact", "build_artifact"]


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How a plan is turned into an artifact; recorded in every exported plan.

    Args:
        importance: Channel importance criterion.
        bn_batches: Batches for adaptive BatchNorm recalibration (0 disables it).
        finetune_steps: Fine-tuning steps after pruning (0 disables it).
        finetune_lr: Fine-tuning learning rate (1/10-1/100 of the original).
        calibration_samples: Training inputs used to calibrate int8 activation ranges.
        seed: Seed for batch selection.
    """

    importance: str = "magnitude"
    bn_batches: int = 8
    finetune_steps: int = 0
    finetune_lr: float = 3e-4
    calibration_samples: int = 256
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Artifact:
    """The bytes of one candidate's ONNX model and what went into making it."""

    onnx_bytes: bytes
    sha256: str
    macs: int
    channels: dict[str, tuple[int, int]]
    stage_seconds: dict[str, float]

    @property
    def size_bytes(self) -> int:
        return len(self.onnx_bytes)


def build_artifact(model: torch.nn.Module, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor, settings: BuildSettings) -> Artifact:
    """Build the deployable ONNX of ``plan`` applied to ``model`` (which is left untouched).

    Deterministic: the same model, plan, space, data and settings give the same bytes.

    Raises:
        PlanError: the plan does not fit the space.
        CandidateError: a stage failed or the model's outputs are not finite.
    """
    from . import quantize_onnx  # the package's plan-to-nodes mapping

    ratios, bits = space.resolve(plan)
    X, y = task.train_data()
    t: dict[str, float] = {}

    t0 = time.perf_counter()
    work = copy.deepcopy(model).eval()
    try:
        channels = prune_channels(work, ratios, space, example_input, importance=settings.importance)
    except Exception as e:
        raise CandidateError(f"pruning failed: {type(e).__name__}: {e}") from e
    t["prune"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if channels:
        recalibrate_bn(work, X, batches=settings.bn_batches, seed=settings.seed)
    t["bn_recalibration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if channels and settings.finetune_steps:
        finetune(work, task, X, y, settings.finetune_steps, settings.finetune_lr, seed=settings.seed)
        recalibrate_bn(work, X, batches=settings.bn_batches, seed=settings.seed)
    t["finetune"] = time.perf_counter() - t0

    with torch.no_grad():
        out = work(torch.from_numpy(X[:8]))
    if not torch.isfinite(out).all():
        raise CandidateError("pruned model produces non-finite outputs (NaN/inf)")
    macs = sum(layer_macs(work, example_input).values())

    t0 = time.perf_counter()
    proto = export_onnx(work, example_input)
    t["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calib = X[np.random.default_rng(settings.seed).permutation(len(X))[: settings.calibration_samples]]
    proto = quantize_onnx(proto, plan, space, calib if any(b == 8 for b in bits.values()) else None)
    t["quantize"] = time.perf_counter() - t0

    data = proto.SerializeToString()
    return Artifact(data, hashlib.sha256(data).hexdigest(), int(macs), channels, t)
