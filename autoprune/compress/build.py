"""One candidate, end to end: plan -> pruned model -> ONNX -> quantized ONNX bytes, timed per stage.

onnxruntime runs 8, 16 and 32 bits here. A layer planned below 8 bits (for a target that
runs it) is built as int8 QDQ, the closest runnable artifact: the *int8 stand-in*. The
artifact records those layers in :attr:`Artifact.standin_bits` so that the study measures
latency on the stand-in (and says so) and simulates accuracy in torch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from typing import Any

import numpy as np
import torch

from ..exceptions import CandidateError
from ..plan import LayerPlan, Plan
from ..space import SearchSpace, layer_macs
from .onnx_export import export_onnx
from .prune import prune_channels
from .quantize import Calibration
from .recover import finetune, recalibrate_bn
from .sparsity import parse_setting, sparsify_layers

__all__ = ["BuildSettings", "Artifact", "build_artifact", "RUNNABLE_BITS", "int8_standin"]

# Bit-widths with onnxruntime kernels here; any other planned bit-width gets an int8 stand-in.
RUNNABLE_BITS = (8, 16, 32)


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How a plan is turned into an artifact; recorded in every exported plan.

    Args:
        importance: Channel importance criterion.
        bn_batches: Batches for adaptive BatchNorm recalibration (0 disables it).
        finetune_steps: Fine-tuning steps after pruning (0 disables it).
        finetune_lr: Fine-tuning learning rate (1/10-1/100 of the original).
        calibration_samples: Training inputs used to calibrate activation ranges (the int8
            artifact's and the simulation's: the same inputs).
        seed: Seed for batch selection.
        sparsity: ``"none"``, ``"unstructured:<ratio>"`` or ``"N:M"``: weights zeroed in every
            searched layer after channel pruning (see :func:`~autoprune.compress.sparsity.parse_setting`).
        qat_steps: Quantization-aware fine-tuning steps (straight-through estimator) in the
            torch simulation of plans with layers below 8 bits; int8 artifacts are unaffected.
        activation_bits: Bit-width of the activations into layers below 8 bits, in the
            simulation (2-16; None leaves them in float). 8-bit layers always take 8-bit
            activations, as the int8 artifact runs them.
        calibration: How activation ranges are found, for the int8 artifact (onnxruntime)
            and the simulation alike: ``"minmax"`` or ``"percentile"``.
        calibration_percentile: For ``percentile``: the share of values kept inside the
            range, ``(100 - it) / 2`` % cut at each end (onnxruntime's convention).
    """

    importance: str = "magnitude"
    bn_batches: int = 8
    finetune_steps: int = 0
    finetune_lr: float = 3e-4
    calibration_samples: int = 256
    seed: int = 0
    sparsity: str = "none"
    qat_steps: int = 0
    activation_bits: int | None = 8
    calibration: str = "minmax"
    calibration_percentile: float = 99.99

    def calibration_inputs(self, X: np.ndarray) -> np.ndarray:
        """The ``calibration_samples`` training inputs both the artifact and the simulation calibrate on."""
        return X[np.random.default_rng(self.seed).permutation(len(X))[: self.calibration_samples]]


@dataclasses.dataclass(frozen=True)
class Artifact:
    """The bytes of one candidate's ONNX model and what went into making it.

    Attributes:
        standin_bits: Layers built as int8 in place of their planned bit-width (below 8),
            with that bit-width; empty when the artifact is the plan itself.
        model: The torch model that was exported (pruned, recovered, sparsified, float);
            the starting point of the simulation of ``standin_bits`` layers.
    """

    onnx_bytes: bytes
    sha256: str
    macs: int
    channels: dict[str, tuple[int, int]]
    stage_seconds: dict[str, float]
    standin_bits: dict[str, int] = dataclasses.field(default_factory=dict)
    model: torch.nn.Module | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def size_bytes(self) -> int:
        return len(self.onnx_bytes)


def int8_standin(space: SearchSpace, bits: dict[str, int]) -> tuple[Plan, SearchSpace]:
    """The plan (and a space allowing it) that builds layers below 8 bits as int8, the rest as planned."""
    layers = tuple(dataclasses.replace(q, bits=tuple(sorted({*q.bits, 8}))) for q in space.layers)
    plan = Plan({name: LayerPlan(bits=b if b in RUNNABLE_BITS else 8) for name, b in bits.items()})
    return plan, dataclasses.replace(space, layers=layers)


def build_artifact(model: torch.nn.Module, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor, settings: BuildSettings) -> Artifact:
    """Build the deployable ONNX of ``plan`` applied to ``model`` (which is left untouched).

    Deterministic: the same model, plan, space, data and settings give the same bytes.
    Layers planned below 8 bits are built as int8 (see :func:`int8_standin`).

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

    sparsity = parse_setting(settings.sparsity)
    if sparsity is not None:
        t0 = time.perf_counter()
        work = sparsify_layers(work, space, sparsity)
        t["sparsify"] = time.perf_counter() - t0

    with torch.no_grad():
        out = work(torch.from_numpy(X[:8]))
    if not torch.isfinite(out).all():
        raise CandidateError("pruned model produces non-finite outputs (NaN/inf)")
    macs = sum(layer_macs(work, example_input).values())

    t0 = time.perf_counter()
    proto = export_onnx(work, example_input)
    t["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calib = Calibration(settings.calibration_inputs(X), settings.calibration, settings.calibration_percentile)
    standin = {name: b for name, b in bits.items() if b not in RUNNABLE_BITS}
    qplan, qspace = int8_standin(space, bits) if standin else (plan, space)
    proto = quantize_onnx(proto, qplan, qspace, calib if any(b <= 8 for b in bits.values()) else None)
    t["quantize"] = time.perf_counter() - t0

    data = proto.SerializeToString()
    return Artifact(data, hashlib.sha256(data).hexdigest(), int(macs), channels, t, standin, work)
