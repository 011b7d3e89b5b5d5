"""One candidate, end to end: plan -> pruned model -> ONNX -> quantized ONNX bytes, timed per stage.

onnxruntime runs 8, 16 and 32 bits here. A layer planned below 8 bits (for a target that
runs it) is built as int8 QDQ, the closest runnable artifact: the *int8 stand-in*. The
artifact records those layers in :attr:`Artifact.standin_bits` so that the study measures
latency on the stand-in (and says so) and simulates accuracy in torch; the artifact's
metadata carries their planned weight and activation bits (:mod:`autoprune.costmodel.planned`),
so that a modelled target costs them at those bits.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..costmodel.planned import record_planned_bits
from ..exceptions import CandidateError, UnsupportedLayerError
from ..inputs import call, rows
from ..plan import LayerPlan, Plan
from ..space import SearchSpace, layer_macs
from .check import output_tensors
from .external import ExternalData, serialize, write_files
from .onnx_export import export_onnx, take_layer_nodes
from .prune import prune_copy
from .quantize import Calibration
from .recover import RecoverySettings, finetune, recalibrate_bn, recover
from .settings import BuildSettings, parse_setting
from .sparsity import sparsify_layers

__all__ = [
    "BuildSettings", "Artifact", "build_artifact", "RUNNABLE_BITS", "int8_standin",
    "PrunedModel", "prune_plan", "recover_pruned", "build_pruned_model", "artifact_from_model",
    "RecoveredBuild", "build_recovered",
]

# Bit-widths with onnxruntime kernels here; any other planned bit-width gets an int8 stand-in.
RUNNABLE_BITS = (8, 16, 32)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """The bytes of one candidate's ONNX model and what went into making it.

    Attributes:
        onnx_bytes: The ONNX file's bytes (the graph alone when ``external_data`` is set).
        sha256: Of ``onnx_bytes`` followed by ``external_data``'s bytes, if any.
        standin_bits: Layers built as int8 in place of their planned bit-width (below 8),
            with that bit-width; empty when the artifact is the plan itself.
        model: The torch model that was exported (pruned, recovered, sparsified, float);
            the starting point of the simulation of ``standin_bits`` layers.
        external_data: The weights of a model over protobuf's 2 GB limit, a file the graph
            refers to by name (:mod:`autoprune.compress.external`); None: ``onnx_bytes`` is
            the whole model. Either way :meth:`save` writes what onnxruntime loads.
    """

    onnx_bytes: bytes
    sha256: str
    macs: int
    channels: dict[str, tuple[int, int]]
    stage_seconds: dict[str, float]
    standin_bits: dict[str, int] = dataclasses.field(default_factory=dict)
    model: torch.nn.Module | None = dataclasses.field(default=None, compare=False, repr=False)
    external_data: ExternalData | None = dataclasses.field(default=None, repr=False)

    @property
    def size_bytes(self) -> int:
        """Bytes of the ONNX file, and of its external data file if any."""
        return len(self.onnx_bytes) + (len(self.external_data.data) if self.external_data else 0)

    def save(self, path: str | os.PathLike) -> list[Path]:
        """Write the model to ``path``, its external data (if any) beside it, each atomically; returns the files.

        onnxruntime (``InferenceSession(path)``) and ``onnx.load(path)`` read it back as it is.
        """
        return write_files(path, self.onnx_bytes, self.external_data)


def int8_standin(space: SearchSpace, bits: dict[str, int]) -> tuple[Plan, SearchSpace]:
    """The plan (and a space allowing it) that builds layers below 8 bits as int8, the rest as planned."""
    layers = tuple(dataclasses.replace(q, bits=tuple(sorted({*q.bits, 8}))) for q in space.layers)
    plan = Plan({name: LayerPlan(bits=b if b in RUNNABLE_BITS else 8) for name, b in bits.items()})
    return plan, dataclasses.replace(space, layers=layers)


@dataclasses.dataclass
class PrunedModel:
    """The float model of a plan before it is exported: pruned, BatchNorm recalibrated, fine-tuned as the settings say.

    Attributes:
        model: The pruned torch model (eval mode); :func:`artifact_from_model` does not modify it.
        channels: ``{group: (channels before, channels after)}`` of the pruned channel groups.
        stage_seconds: Seconds per stage so far.
    """

    model: torch.nn.Module
    channels: dict[str, tuple[int, int]]
    stage_seconds: dict[str, float]


def prune_plan(model: torch.nn.Module, plan: Plan, space: SearchSpace, example_input: torch.Tensor,
               settings: BuildSettings) -> PrunedModel:
    """The first step of :func:`build_pruned_model`: a copy of ``model`` with the plan's channels removed, nothing trained.

    Its graph is the artifact's graph (what a cost model prices); :func:`recover_pruned`
    then recalibrates and fine-tunes it in place.

    Raises:
        PlanError: the plan does not fit the space.
        UnsupportedLayerError: the pruned model would not run on ``example_input`` or would
            change its output shapes (the message names the channel groups to exclude).
        CandidateError: pruning failed.
    """
    ratios, _ = space.resolve(plan)
    t0 = time.perf_counter()
    try:
        work, channels = prune_copy(model, ratios, space, example_input, importance=settings.importance)
    except UnsupportedLayerError:
        raise  # never a broken model: the user excludes the groups it names
    except Exception as e:
        raise CandidateError(f"pruning failed: {type(e).__name__}: {e}") from e
    return PrunedModel(work, channels, {"prune": time.perf_counter() - t0})


def recover_pruned(pruned: PrunedModel, task: Any, settings: BuildSettings) -> PrunedModel:
    """The second step of :func:`build_pruned_model`: recalibrate BatchNorm and fine-tune ``pruned.model`` in place.

    Returns ``pruned`` with the seconds of those stages added.
    """
    X, y = task.train_data()
    work, channels, t = pruned.model, pruned.channels, dict(pruned.stage_seconds)

    t0 = time.perf_counter()
    if channels:
        recalibrate_bn(work, X, batches=settings.bn_batches, seed=settings.seed)
    t["bn_recalibration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if channels and settings.finetune_steps:
        finetune(work, task, X, y, settings.finetune_steps, settings.finetune_lr, seed=settings.seed)
        recalibrate_bn(work, X, batches=settings.bn_batches, seed=settings.seed)
    t["finetune"] = time.perf_counter() - t0
    return PrunedModel(work, channels, t)


def build_pruned_model(model: torch.nn.Module, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor,
                       settings: BuildSettings) -> PrunedModel:
    """The first stage of :func:`build_artifact`: prune a copy of ``model``, recalibrate BatchNorm, fine-tune.

    The same as :func:`prune_plan` followed by :func:`recover_pruned`.

    Raises:
        PlanError: the plan does not fit the space.
        UnsupportedLayerError: the pruned model would not run on ``example_input`` or would
            change its output shapes (the message names the channel groups to exclude).
        CandidateError: pruning failed.
    """
    return recover_pruned(prune_plan(model, plan, space, example_input, settings), task, settings)


def artifact_from_model(pruned: PrunedModel, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor,
                        settings: BuildSettings) -> Artifact:
    """The second stage of :func:`build_artifact`: sparsify (per the settings), export ONNX, quantize per the plan.

    ``pruned.model`` is left as it is (a sparsified copy is exported), so one pruned model can
    be packaged before and after recovery with the same plan and calibration.

    Raises:
        CandidateError: the model's outputs are not finite, or a stage failed.
    """
    from . import quantize_onnx  # the package's plan-to-nodes mapping

    bits = space.resolve_bits(plan)
    X, _ = task.train_data()
    t = dict(pruned.stage_seconds)
    work = pruned.model

    sparsity = parse_setting(settings.sparsity)
    if sparsity is not None:
        t0 = time.perf_counter()
        work = sparsify_layers(work, space, sparsity)
        t["sparsify"] = time.perf_counter() - t0

    with torch.no_grad():
        out = output_tensors(call(work, rows(X, slice(0, 8))))
    if not all(torch.isfinite(t).all() for t in out if t.is_floating_point()):
        raise CandidateError("pruned model produces non-finite outputs (NaN/inf)")
    macs = sum(layer_macs(work, example_input).values())

    t0 = time.perf_counter()
    proto = export_onnx(work, example_input)
    t["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calib = Calibration(settings.calibration_inputs(X), settings.calibration, settings.calibration_percentile)
    standin = {name: b for name, b in bits.items() if b not in RUNNABLE_BITS}
    qplan, qspace = int8_standin(space, bits) if standin else (plan, space)
    layer_nodes = take_layer_nodes(proto)[0] if standin else {}
    proto = quantize_onnx(proto, qplan, qspace, calib if any(b <= 8 for b in bits.values()) else None)
    # The stand-in's planned bits travel in its metadata, for targets that run them (autoprune.costmodel).
    record_planned_bits(proto, layer_nodes, standin, settings.activation_bits)
    t["quantize"] = time.perf_counter() - t0

    data, weights = serialize(proto)
    sha = hashlib.sha256(data)
    if weights is not None:
        sha.update(weights.data)
    return Artifact(data, sha.hexdigest(), int(macs), pruned.channels, t, standin, work, weights)


def build_artifact(model: torch.nn.Module, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor, settings: BuildSettings,
                   pruned: PrunedModel | None = None) -> Artifact:
    """Build the deployable ONNX of ``plan`` applied to ``model`` (which is left untouched).

    Deterministic: the same model, plan, space, data and settings give the same bytes.
    Layers planned below 8 bits are built as int8 (see :func:`int8_standin`). The two stages,
    :func:`build_pruned_model` and :func:`artifact_from_model`, are what :func:`build_recovered`
    runs with recovery in between.

    Args:
        pruned: This plan's :func:`prune_plan` of ``model``, made already (a study's screen
            made it to price the plan before training it); it is recovered in place. The
            bytes are the same as without it.

    Raises:
        PlanError: the plan does not fit the space.
        UnsupportedLayerError: pruning would break the model (see :func:`build_pruned_model`).
        CandidateError: a stage failed or the model's outputs are not finite.
    """
    if pruned is None:
        pruned = prune_plan(model, plan, space, example_input, settings)
    return artifact_from_model(recover_pruned(pruned, task, settings), plan, space, task, example_input, settings)


@dataclasses.dataclass(frozen=True)
class RecoveredBuild:
    """A plan built twice from one pruned model: as the study builds it, and after recovery.

    Attributes:
        unrecovered: The artifact the study measured (same bytes as :func:`build_artifact`).
        recovered: The artifact of the recovered model, same plan and calibration.
        losses: Mean training loss of each recovery epoch.
        seconds: Seconds spent in recovery.
    """

    unrecovered: Artifact
    recovered: Artifact
    losses: list[float]
    seconds: float


def build_recovered(model: torch.nn.Module, plan: Plan, space: SearchSpace, task: Any, example_input: torch.Tensor,
                    settings: BuildSettings, recovery: RecoverySettings, recovery_task: Any = None) -> RecoveredBuild:
    """Build ``plan`` as the study does, then recover the pruned float model and package it again.

    Recovery (:func:`~autoprune.compress.recover.recover`) trains a copy of the pruned model on
    the task's training data, distilling from ``model`` (the dense one) when ``recovery.distill``;
    the recovered model then goes through the same sparsity, ONNX and quantization stage with
    the same plan and calibration inputs. Deterministic on a fixed torch thread count (the
    caller pins it): the same arguments give the same bytes. ``recovery_task`` (default:
    ``task``) supplies recovery's training data, e.g. a fixed subset of ``task``'s.
    """
    pruned = build_pruned_model(model, plan, space, task, example_input, settings)
    unrecovered = artifact_from_model(pruned, plan, space, task, example_input, settings)
    student = copy.deepcopy(pruned.model)
    t0 = time.perf_counter()
    losses = recover(student, recovery_task or task, recovery.epochs, recovery.lr, teacher=model if recovery.distill else None,
                     temperature=recovery.temperature, alpha=recovery.alpha, batch_size=recovery.batch_size, seed=recovery.seed)
    seconds = time.perf_counter() - t0
    stages = {**pruned.stage_seconds, "recover": seconds}
    recovered = artifact_from_model(PrunedModel(student, pruned.channels, stages), plan, space, task, example_input, settings)
    return RecoveredBuild(unrecovered, recovered, losses, seconds)
