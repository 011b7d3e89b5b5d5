"""Simulated low precision (2–8 bit weights and activations) in torch, for targets that run it.

onnxruntime has no kernels below 8 bits, so such plans cannot be measured here. This
module fake-quantizes instead: weights per output channel, symmetric, to ``bits``;
activations (each quantized layer's input) per tensor, asymmetric: to ``act_bits`` into
layers below 8 bits, to 8 bits into 8-bit layers (as onnxruntime's int8 kernels take them),
with ranges calibrated on training data by min-max or a percentile (onnxruntime's
convention, so that one setting means the same in the artifact and here). Optional QAT
fine-tunes through the rounding with a straight-through estimator. Every number computed
on such a model is ``simulated`` (see :func:`evaluate_simulated`).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..exceptions import ConfigError
from ..inputs import Data, Inputs, call, count, rows
from ..metrics import Metric
from ..plan import Plan
from ..space import SearchSpace

__all__ = ["SimulationSettings", "simulate", "fake_quant_weight", "evaluate_simulated"]


@dataclasses.dataclass(frozen=True)
class SimulationSettings:
    """How low precision is simulated.

    Args:
        act_bits: Bits of the activations into layers below 8 bits (None leaves them in
            float); 8-bit layers always take 8-bit activations.
        calibration: ``"minmax"`` or ``"percentile"`` activation ranges.
        percentile: For ``percentile``: the share of values kept inside the range,
            ``(100 - percentile) / 2`` % cut at each end (as onnxruntime calibrates).
        calibration_batches: Batches of 64 used to calibrate.
        qat_steps: Quantization-aware fine-tuning steps (0: post-training only).
        qat_lr: QAT learning rate.
        seed: Batch order seed.
    """

    act_bits: int | None = 8
    calibration: str = "minmax"
    percentile: float = 99.99
    calibration_batches: int = 4
    qat_steps: int = 0
    qat_lr: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration not in ("minmax", "percentile"):
            raise ConfigError(f"simulation: calibration must be 'minmax' or 'percentile', got {self.calibration!r}")
        if self.act_bits is not None and not 2 <= self.act_bits <= 16:
            raise ConfigError(f"simulation: act_bits must be in [2, 16] or null, got {self.act_bits!r}")
        if not 50.0 <= self.percentile <= 100.0:
            raise ConfigError(f"simulation: percentile must be in [50, 100], got {self.percentile!r}")

    def layer_act_bits(self, bits: int) -> int | None:
        """Activation bits into a layer with ``bits``-bit weights (None: float; only for bits < 16)."""
        return self.act_bits if bits < 8 else 8


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()  # straight-through: identity gradient


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` rounded to ``bits``-bit symmetric integers per output channel (dim 0), back in float."""
    qmax = 2 ** (bits - 1) - 1
    scale = w.detach().abs().reshape(w.shape[0], -1).amax(1).clamp_min(1e-12) / qmax
    scale = scale.view(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(_ste_round(w / scale), -qmax, qmax) * scale


class _WeightQuant(nn.Module):
    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant_weight(w, self.bits)


class _ActQuant:
    """Forward pre-hook: observes the input range while calibrating, fake-quantizes it afterwards."""

    def __init__(self, bits: int, settings: SimulationSettings) -> None:
        self.bits, self.settings = bits, settings
        self.samples: list[torch.Tensor] = []
        self.lo = self.hi = None

    def __call__(self, module, args):
        x = args[0]
        if self.lo is None:
            self.samples.append(x.detach().flatten()[:: max(1, x.numel() // 65536)])
            return None
        scale = max(self.hi - self.lo, 1e-12) / (2**self.bits - 1)
        zero = round(-self.lo / scale)
        q = torch.clamp(_ste_round(x / scale) + zero, 0, 2**self.bits - 1)
        return ((q - zero) * scale,) + tuple(args[1:])

    def freeze(self) -> None:
        x = torch.cat(self.samples) if self.samples else torch.zeros(1)
        if self.settings.calibration == "minmax":
            lo, hi = float(x.min()), float(x.max())
        else:
            cut = (100.0 - self.settings.percentile) / 2  # per end, as onnxruntime's percentile calibrator
            lo, hi = (float(v) for v in np.percentile(x.numpy(), [cut, 100.0 - cut]))
        self.lo, self.hi = min(lo, 0.0), max(hi, 0.0)  # zero stays exactly representable
        self.samples = []


def _batches(X: Data, n: int, seed: int, size: int = 64) -> list[Inputs]:
    order = np.random.default_rng(seed).permutation(count(X))
    return [rows(X, order[i : i + size]) for i in range(0, min(count(X), n * size), size)]


def simulate(model: nn.Module, plan: Plan, space: SearchSpace, calibration_data: np.ndarray,
             settings: SimulationSettings = SimulationSettings(), task=None, train_data=None) -> nn.Module:
    """A copy of ``model`` computing as the plan's bit-widths would (fake quantization).

    Layers with bits < 16 get weight fake quantization at their bits (16 and 32 are treated
    as exact) and their inputs fake-quantized with calibrated ranges: 8-bit layers' to 8
    bits, lower layers' to ``settings.act_bits`` (left in float when it is None).

    Args:
        model: The (pruned) model; left untouched.
        plan: Per-layer bits (2–8, 16 or 32).
        space: The model's search space (layer names, allowed bits).
        calibration_data: Inputs for activation range calibration.
        settings: How to simulate.
        task: Needed for QAT (``task.loss``).
        train_data: ``(X, y)`` for QAT.
    """
    bits = space.resolve_bits(plan)
    out = copy.deepcopy(model).eval()
    modules = dict(out.named_modules())
    hooks = []
    for name, b in bits.items():
        if b >= 16:
            continue
        parametrize.register_parametrization(modules[name], "weight", _WeightQuant(b))
        act_bits = settings.layer_act_bits(b)
        if act_bits is not None:
            hook = _ActQuant(act_bits, settings)
            modules[name].register_forward_pre_hook(hook)
            hooks.append(hook)
    with torch.no_grad():
        for xb in _batches(calibration_data, settings.calibration_batches, settings.seed):
            call(out, xb)
    for h in hooks:
        h.freeze()
    if settings.qat_steps:
        if task is None or train_data is None:
            raise ConfigError("simulation: qat_steps needs the task and its training data")
        from .recover import finetune

        finetune(out, task, train_data[0], train_data[1], settings.qat_steps, settings.qat_lr, seed=settings.seed)
    return out.eval()


def evaluate_simulated(model: nn.Module, X: np.ndarray, y: np.ndarray, task, bits_label: str = "") -> Metric:
    """``task.score`` of a simulated model on ``(X, y)``, labelled ``simulated``."""
    with torch.no_grad():
        outputs = torch.cat([call(model, rows(X, slice(i, i + 256))) for i in range(0, count(X), 256)]).numpy()
    return Metric(task.score(outputs, y), "", "simulated", f"torch fake quantization {bits_label}on the {len(y)}-sample eval split".strip())
