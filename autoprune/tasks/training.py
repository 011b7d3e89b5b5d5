"""Training the built-in tasks' base models: one seeded loop, shared by the digits task and the zoo.

AdamW with a one-cycle learning rate and cross-entropy, in shuffled mini-batches. Every random
draw comes from ``seed`` (a generator for shuffling and augmentation, a forked global RNG for
anything inside the model), and torch runs on :data:`~autoprune.threads.TRAINING_THREADS`
threads, so one seed trains one model on any machine (with the same instruction set); the
caller's RNG and thread count are left as they were.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from .._scoped import torch_seeded
from ..threads import TRAINING_THREADS, torch_threads

__all__ = ["fit", "accuracy"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def fit(net: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, augment: Augment | None = None,
        batch: int = 64, lr: float = 3e-3) -> None:
    """Train ``net`` in place on ``(X, y)``; it is left in eval mode.

    Args:
        net: A classifier producing logits.
        X, y: Training inputs and integer labels.
        epochs: Passes over the data.
        seed: Seeds shuffling, ``augment`` and any random op of the model.
        augment: ``augment(batch, generator) -> batch``, drawing only from ``generator``.
        batch: Mini-batch size.
        lr: Peak learning rate of the one-cycle schedule.
    """
    g = torch.Generator().manual_seed(seed)
    steps = epochs * ((len(y) + batch - 1) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    with torch_seeded(seed), torch_threads(TRAINING_THREADS):
        for _ in range(epochs):
            net.train()
            perm = torch.randperm(len(y), generator=g)
            for b in range(0, len(y), batch):
                idx = perm[b : b + batch]
                xb = X[idx] if augment is None else augment(X[idx], g)
                loss = nn.functional.cross_entropy(net(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    net.eval()


def accuracy(net: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``net`` (torch fp32) on ``(X, y)``."""
    with torch.no_grad():
        return float((net(torch.from_numpy(X)).argmax(1).numpy() == y).mean())
