"""Cheap recovery after pruning: BatchNorm recalibration (adaptive BN) and short fine-tuning.

Adaptive BN re-estimates running mean/variance on a few training batches: after channels
are removed the statistics downstream shift, and this alone recovers much of the accuracy
(it is the per-trial accuracy proxy). Fine-tuning, when asked for, runs a few steps at a
small learning rate (1/10–1/100 of the original).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["recalibrate_bn", "finetune"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _batches(X: np.ndarray, batch_size: int, n_batches: int, seed: int) -> list[torch.Tensor]:
    order = np.random.default_rng(seed).permutation(len(X))
    return [torch.from_numpy(X[order[i : i + batch_size]]) for i in range(0, min(len(X), batch_size * n_batches), batch_size)]


def recalibrate_bn(model: nn.Module, X: np.ndarray, batches: int = 8, batch_size: int = 64, seed: int = 0) -> int:
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
                model(xb)
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.eval()
    return len(bns)


def finetune(model: nn.Module, task, X: np.ndarray, y: np.ndarray, steps: int, lr: float, batch_size: int = 64, seed: int = 0) -> float:
    """``steps`` of SGD with momentum on ``task.loss``; returns the mean loss of the last 10 steps."""
    if steps <= 0:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(Xt), (batch_size,), generator=g)
        loss = task.loss(model(Xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return float(np.mean(losses[-10:]))
