"""Recovery after pruning: BatchNorm recalibration (adaptive BN), short fine-tuning, and full recovery.

Adaptive BN re-estimates running mean/variance on a few training batches: after channels
are removed the statistics downstream shift, and this alone recovers much of the accuracy
(it is the per-trial accuracy proxy). Fine-tuning, when asked for, runs a few steps at a
small learning rate (1/10–1/100 of the original).

:func:`recover` is the longer recovery of the model that ships (``autoprune export
--finetune``): whole epochs over the training data at a small learning rate with a cosine
schedule, optionally distilling from the dense model. The study never runs it; its
accuracy is the proxy that recovery is expected to preserve the ranking of
(``benchmarks/proxy_spearman.py`` measures how well).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._scoped import torch_seeded
from ..exceptions import ConfigError
from ..inputs import Data, Inputs, call, count, rows

__all__ = ["recalibrate_bn", "finetune", "recover", "RecoverySettings"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _batches(X: Data, batch_size: int, n_batches: int, seed: int) -> list[Inputs]:
    order = np.random.default_rng(seed).permutation(count(X))
    return [rows(X, order[i : i + batch_size]) for i in range(0, min(count(X), batch_size * n_batches), batch_size)]


def recalibrate_bn(model: nn.Module, X: Data, batches: int = 8, batch_size: int = 64, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches`` batches of ``X``.

    Only BatchNorm layers switch to training mode (dropout stays off); statistics are a plain
    average over the batches (momentum None). Returns the number of BatchNorm layers reset.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    if not bns or batches == 0:
        return 0
    model.eval()
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        with torch.no_grad():
            for xb in _batches(X, batch_size, batches, seed):
                call(model, xb)
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.eval()
    return len(bns)


def finetune(model: nn.Module, task, X: Data, y: np.ndarray, steps: int, lr: float, batch_size: int = 64, seed: int = 0) -> float:
    """``steps`` of SGD with momentum on ``task.loss``; returns the mean loss of the last 10 steps.

    ``seed`` seeds the batches and the model's random ops (dropout): torch's global random
    state is seeded inside a fork, so the caller's is left as it was.
    """
    if steps <= 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    yt = torch.from_numpy(y)
    losses = []
    try:
        with torch_seeded(seed):
            model.train()
            for _ in range(steps):
                idx = torch.randint(0, len(yt), (batch_size,), generator=g)
                loss = task.loss(call(model, rows(X, idx.numpy())), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
    finally:
        model.eval()
    return float(np.mean(losses[-10:]))


@dataclasses.dataclass(frozen=True)
class RecoverySettings:
    """How an exported model is recovered; recorded in its plan so that ``apply`` repeats it.

    Args:
        epochs: Passes over the task's training data (>= 1).
        lr: Peak learning rate of AdamW (the built-in tasks train with AdamW at 3e-3-4e-3;
            recovery runs at 1/10-1/100 of that), decayed to 0 by a cosine over all steps.
        distill: Distil from the dense model (knowledge distillation) as well as the labels.
        temperature: Softening temperature of the distillation.
        alpha: Weight of the distillation term; ``1 - alpha`` weighs the task's loss.
        batch_size: Mini-batch size.
        seed: Seeds the shuffling and any random op of the model.
    """

    epochs: int
    lr: float
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.5
    batch_size: int = 128
    seed: int = 0

    OPTIMIZER = "AdamW (weight decay 0)"
    SCHEDULE = "cosine decay from lr to 0 over all steps"

    def __post_init__(self) -> None:
        checks = {
            "epochs": isinstance(self.epochs, int) and not isinstance(self.epochs, bool) and self.epochs >= 1,
            "lr": isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
            "distill": isinstance(self.distill, bool),
            "temperature": isinstance(self.temperature, (int, float)) and self.temperature > 0,
            "alpha": isinstance(self.alpha, (int, float)) and 0 <= self.alpha <= 1,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "seed": isinstance(self.seed, int),
        }
        bad = next((k for k, ok in checks.items() if not ok), None)
        if bad:
            allowed = {"epochs": "an integer >= 1", "lr": "a number > 0", "distill": "true or false", "temperature": "a number > 0",
                       "alpha": "a number in [0, 1]", "batch_size": "an integer >= 1", "seed": "an integer"}[bad]
            raise ConfigError(f"recovery.{bad} must be {allowed}, got {getattr(self, bad)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "optimizer": self.OPTIMIZER, "schedule": self.SCHEDULE}

    @classmethod
    def from_dict(cls, data: Any, label: str = "recovery") -> "RecoverySettings":
        """Settings from :meth:`to_dict`'s output (``optimizer`` and ``schedule`` must be this version's).

        Raises:
            ConfigError: not a mapping, an unknown key, a bad value, or another optimizer/schedule.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{label} must be a mapping, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"optimizer", "schedule"})
        if unknown:
            raise ConfigError(f"{label}: unknown key {unknown[0]} (known: {', '.join(sorted(fields | {'optimizer', 'schedule'}))})")
        for key, ours in (("optimizer", cls.OPTIMIZER), ("schedule", cls.SCHEDULE)):
            if data.get(key, ours) != ours:
                raise ConfigError(f"{label}.{key} must be {ours!r} (this version's), got {data[key]!r}")
        try:
            return cls(**{k: v for k, v in data.items() if k in fields})
        except TypeError as e:
            raise ConfigError(f"{label}: {e}") from None
        except ConfigError as e:  # name the key where it is: "plan.yaml: meta.recovery.epochs must be ..."
            raise ConfigError(str(e).replace("recovery.", f"{label}.", 1)) from None


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch (Hinton et al.)."""
    t = temperature
    return nn.functional.kl_div(
        nn.functional.log_softmax(student / t, dim=1), nn.functional.log_softmax(teacher / t, dim=1),
        reduction="batchmean", log_target=True,
    ) * (t * t)


def recover(model: nn.Module, task, epochs: int, lr: float, *, teacher: nn.Module | None = None, temperature: float = 4.0,
            alpha: float = 0.5, batch_size: int = 128, seed: int = 0) -> list[float]:
    """Train ``model`` in place on ``task.train_data()`` (never the validation or test split); returns each epoch's mean loss.

    AdamW at ``lr`` with cosine decay to 0 over all steps, shuffled epochs drawn from a seeded
    generator, torch's global RNG forked and seeded (the caller's is left as it was). BatchNorm
    layers train normally. The caller pins torch's thread count for reproducible bytes
    (:func:`autoprune.threads.torch_threads`). The model is left in eval mode.

    Args:
        model: The pruned float model.
        task: Supplies the training data and ``loss``.
        epochs: Passes over the training data.
        lr: Peak learning rate.
        teacher: The dense model to distil from (kept in eval mode, not trained); None: labels only.
        temperature: Distillation temperature.
        alpha: With a teacher, the loss is ``alpha * T^2 * KL + (1 - alpha) * task.loss``.
        batch_size: Mini-batch size.
        seed: Seeds shuffling and the model's random ops.
    """
    X, y = task.train_data()
    yt = torch.from_numpy(y)
    steps_per_epoch = -(-len(yt) // batch_size)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=0.0)
    if teacher is not None:
        teacher_was_training = teacher.training
        teacher.eval()
    losses = []
    try:
        with torch_seeded(seed):
            for _ in range(epochs):
                model.train()
                perm = torch.randperm(len(yt), generator=g)
                total = 0.0
                for b in range(0, len(yt), batch_size):
                    idx = perm[b : b + batch_size]
                    xb = rows(X, idx.numpy())
                    out = call(model, xb)
                    loss = task.loss(out, yt[idx])
                    if teacher is not None:
                        with torch.no_grad():
                            soft = call(teacher, xb)
                        loss = alpha * distillation_loss(out, soft, temperature) + (1 - alpha) * loss
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += loss.item()
                losses.append(total / steps_per_epoch)
    finally:
        model.eval()
        if teacher is not None and teacher_was_training:
            teacher.train()
    return losses
