"""The public ways into building: :func:`build` (``autoprune.build``), the one entry point, and two of its stages.

``build`` runs :func:`~autoprune.compress.build.build_artifact`, the function the study,
``export`` and ``apply`` run, so a user's script ships the bytes a study measured. It lives
here, not in :mod:`autoprune.compress.build` (the stages), so that no function shadows a module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..device import SUPPORTED_BITS
from ..inputs import Data, to_numpy
from ..plan import Plan
from ..space import SearchSpace, discover
from ..tasks.base import Task
from ..threads import torch_threads
from .build import Artifact, BuildSettings, PrunedModel, artifact_from_model, build_artifact
from .prune import prune_copy
from .quantize import check_runnable

__all__ = ["build", "prune", "to_onnx", "TrainingData"]

# Without a study's space, a plan is checked against what the model allows, not a search's limits:
# any ratio up to this, any bit-width a device profile may name (SUPPORTED_BITS).
_ANY_RATIO = 0.95


class TrainingData:
    """Training inputs (and labels) in place of a task: what a build reads from one.

    Args:
        X: Training inputs, ``(N, ...)``, or a dict of them keyed by the forward's argument
            names (``input_ids``, ``attention_mask``): BatchNorm re-estimation and activation
            calibration. Each keeps its dtype (token ids stay int64).
        y: Labels, needed only for fine-tuning (``BuildSettings.finetune_steps``), with the
            default task loss (cross-entropy).
    """

    def __init__(self, X: Data, y: np.ndarray | None = None) -> None:
        self.X = {k: np.asarray(v) for k, v in X.items()} if isinstance(X, Mapping) else np.asarray(X)
        self.y = None if y is None else np.asarray(y)

    def train_data(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.X, self.y

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return Task.loss(self, outputs, y)  # type: ignore[arg-type]  # the task default, one definition


def _training_data(data: Any, settings: BuildSettings) -> Any:
    """A task (anything with ``train_data()``) as it is; ``(X, y)`` or ``X`` as :class:`TrainingData`."""
    if not hasattr(data, "train_data"):
        data = TrainingData(*data) if isinstance(data, (tuple, list)) else TrainingData(data)
    if settings.finetune_steps and data.train_data()[1] is None:
        raise ValueError("BuildSettings.finetune_steps needs labels: pass a Task or (X, y) training data")
    return data


def _study_config(plan: Plan):
    """The study config an exported plan records (``meta.study_config``), or None."""
    if "study_config" not in plan.meta:
        return None
    from ..config import StudyConfig  # config imports this package: import when used

    return StudyConfig.from_dict(plan.meta["study_config"], "plan meta.study_config")


def _space(model: nn.Module, example_input: torch.Tensor, study=None) -> SearchSpace:
    """The space a plan is built in: the study's channel rounding and exclusions when known."""
    s = study.search if study is not None else None
    kw = {"round_to": s.round_to, "exclude": s.exclude} if s is not None else {}
    return discover(model, example_input, max_ratio=_ANY_RATIO, bits=SUPPORTED_BITS, **kw)


def build(model: nn.Module, plan: Plan, data: Any, example_input: torch.Tensor, settings: BuildSettings | None = None, *,
          space: SearchSpace | None = None, threads: int | None = None, out: str | os.PathLike | None = None) -> Artifact:
    """Build the deployable ONNX of ``plan`` applied to ``model``: the artifact a study measures.

    Prunes a copy of ``model`` (``model`` is left untouched), re-estimates BatchNorm,
    fine-tunes, sparsifies, exports and quantizes, all as ``settings`` say, through the same
    function the study, ``export`` and ``apply`` run
    (:func:`~autoprune.compress.build.build_artifact`). Deterministic on a fixed torch
    thread count: the same arguments give the same bytes. Layers planned below 8 bits are
    built as int8 stand-ins (:attr:`Artifact.standin_bits` lists them).

    An exported ``plan.yaml`` (``autoprune export``) records how its trial was built; what
    is not passed here is taken from it, so ``build(model, Plan.load(path), task, x)``
    rebuilds the trial's bytes (its ``meta.artifact_sha256``).

    Args:
        model: The dense model.
        plan: Per-layer ratios and bit-widths.
        data: The task (its ``train_data()``, and ``loss()`` for fine-tuning), or training
            data ``(X, y)`` (or ``X`` alone when not fine-tuning).
        example_input: An input of batch size 1: a tensor, or a dict of tensors passed as
            keyword arguments (e.g. a tokenizer's ``input_ids`` and ``attention_mask``); then
            the training data is a dict of arrays with the same keys.
        settings: How to build; default: the plan's ``meta.study_config.build``, else
            ``BuildSettings()``.
        space: The search space the plan was made in (its channel rounding and exclusions
            shape the result); default: discovered with the plan's ``meta.study_config.search``
            rounding and exclusions, else discover's defaults, with any ratio up to 0.95 and
            any bit-width allowed.
        threads: torch threads to build on (torch's float sums depend on the count); default:
            the plan's ``meta.build_threads``, else the current count.
        out: Also write the ONNX file here, atomically (with its external data file beside it
            for a model over 2 GB: :meth:`Artifact.save`).

    Raises:
        PlanError: the plan does not fit the model.
        UnsupportedLayerError: pruning would break the model (see :func:`prune`).
        CandidateError: a stage failed, the model's outputs are not finite, or a layer
            planned at 8 or 16 bits is not found in the exported graph.
    """
    study = _study_config(plan)
    if settings is None:
        settings = study.build if study is not None else BuildSettings()
    if space is None:
        space = _space(model, example_input, study)
    if threads is None:
        threads = plan.meta.get("build_threads")
    with torch_threads(threads):
        artifact = build_artifact(model, plan, space, _training_data(data, settings), example_input, settings)
    if out is not None:
        artifact.save(out)
    return artifact


def prune(model: nn.Module, plan: Plan, example_input: torch.Tensor, *, space: SearchSpace | None = None,
          importance: str = "magnitude") -> nn.Module:
    """A copy of ``model`` with the plan's channels removed, and nothing else done to it.

    This is :func:`build`'s first step alone: no BatchNorm re-estimation, fine-tuning,
    export or quantization (for those, and the artifact a study measured, use :func:`build`;
    its :attr:`Artifact.model` is the float model it exported).

    Raises:
        PlanError: the plan does not fit the model.
        UnsupportedLayerError: the pruned model would not run on ``example_input`` or would
            change its output shapes; the message names the channel groups to exclude.
    """
    space = space or _space(model, example_input)
    ratios, _ = space.resolve(plan)
    return prune_copy(model, ratios, space, example_input, importance=importance)[0]


def to_onnx(model: nn.Module, plan: Plan, example_input: torch.Tensor, path: str | os.PathLike,
            calibration_data: np.ndarray | None = None, *, space: SearchSpace | None = None,
            settings: BuildSettings | None = None) -> Artifact:
    """Write the ONNX of a model as it is (e.g. from :func:`prune`), at the plan's bit-widths.

    This is :func:`build`'s last stage alone (:func:`~autoprune.compress.build.artifact_from_model`):
    sparsity per ``settings``, export, int8 QDQ / float16 / fp32 per layer, with activation
    ranges calibrated as a build does (``settings.calibration_inputs(calibration_data)``).
    The plan's ratios are not applied; bit-widths below 8 are refused (no onnxruntime kernel).

    Args:
        model: The model to export.
        plan: Supplies each layer's bit-width.
        example_input: An input of batch size 1.
        path: Where to write; written atomically (:meth:`Artifact.save`).
        calibration_data: Training inputs for activation ranges (needed when any layer is 8-bit).
        space: The search space of ``model`` (discovered when omitted).
        settings: Build settings (default ``BuildSettings()``).

    Raises:
        PlanError: the plan does not fit the model, or has layers below 8 bits.
        ValueError: layers at 8 bits and no ``calibration_data``.
    """
    space = space or _space(model, example_input)
    bits = check_runnable(space.resolve_bits(plan))
    if calibration_data is None and 8 in bits.values():
        raise ValueError("calibration_data is required to quantize layers to 8 bits")
    X = calibration_data if calibration_data is not None else to_numpy(example_input)
    stage = PrunedModel(model.eval(), {}, {})
    artifact = artifact_from_model(stage, plan, space, TrainingData(X), example_input, settings or BuildSettings())
    artifact.save(path)
    return artifact
