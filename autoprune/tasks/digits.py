"""The built-in ``digits`` task: the UCI handwritten digits (8x8, 1,797 images) and a CNN.

The data ships inside the package (``data/digits.csv.gz``, the copy scikit-learn distributes).
The CNN is deliberately wide — dense fp32 takes over 1 ms per image at batch 1 on one
x86 thread — so that channel pruning has real work to remove. The trained weights are
cached under ``$AUTOPRUNE_CACHE`` (default ``~/.cache/autoprune``) keyed by the options,
so a study trains at most once per machine (about a minute and a half on 2 cores).
"""

from __future__ import annotations

import gzip
import io
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._scoped import torch_seeded
from ..exceptions import ConfigError
from .base import Task
from .cache import cache_dir, load_or_train
from .training import accuracy, fit

__all__ = ["DigitsTask", "DigitsCNN", "load_digits"]

EVAL_FRACTION = 0.2
SPLIT_SEED = 0
WEIGHTS_VERSION = 2  # 2: the initial weights are seeded too (1 left them to the process's RNG)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as float32 ``(N, 1, 8, 8)`` scaled to [0, 1], and int64 labels."""
    raw = resources.files("autoprune.tasks").joinpath("data/digits.csv.gz").read_bytes()
    data = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",")
    X = (data[:, :-1] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return X, data[:, -1].astype(np.int64)


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_eval = int(round(EVAL_FRACTION * len(y)))
    ev, tr = np.sort(order[:n_eval]), np.sort(order[n_eval:])
    return X[tr], y[tr], X[ev], y[ev]


class DigitsCNN(nn.Module):
    """Five 3x3 conv blocks (conv, BN, ReLU), a max-pool after the third, global pooling, a linear head."""

    def __init__(self, widths: tuple[int, ...] = (96, 192, 192, 384, 384), num_classes: int = 10) -> None:
        super().__init__()
        chans = (1, *widths)
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(chans[i + 1]))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i == 3:
                x = self.pool(x)
        return self.fc(x.mean(dim=(2, 3)))


class DigitsTask(Task):
    """Handwritten digits classification with a wide CNN.

    Args:
        width: Multiplier on the CNN's channel widths (1.0 = 96/192/192/384/384). Tests use
            a small width to run fast.
        epochs: Training epochs for the dense model.
        seed: Training seed.
    """

    name = "digits"

    def __init__(self, width: float = 1.0, epochs: int = 12, seed: int = 0) -> None:
        if not isinstance(width, (int, float)) or not 0.05 <= width <= 4:
            raise ConfigError(f"digits task: option width must be a number in [0.05, 4], got {width!r}")
        if not isinstance(epochs, int) or not 1 <= epochs <= 200:
            raise ConfigError(f"digits task: option epochs must be an integer in [1, 200], got {epochs!r}")
        if not isinstance(seed, int):
            raise ConfigError(f"digits task: option seed must be an integer, got {seed!r}")
        super().__init__(width=width, epochs=epochs, seed=seed)
        self.widths = tuple(max(4, int(round(w * width))) for w in (96, 192, 192, 384, 384))
        self.epochs, self.seed = epochs, seed
        self._data = _split()
        self._model: nn.Module | None = None

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 1, 8, 8)

    def eval_data(self):
        return self._data[2], self._data[3]

    def train_data(self):
        return self._data[0], self._data[1]

    def weights_path(self) -> Path:
        w = "-".join(map(str, self.widths))
        return cache_dir() / f"digits-v{WEIGHTS_VERSION}-w{w}-e{self.epochs}-s{self.seed}.pt"

    def model(self) -> nn.Module:
        if self._model is None:
            with torch_seeded(self.seed):  # the initial weights too: one seed, one model (for one thread count)
                net = DigitsCNN(self.widths)
            self._model = load_or_train(net, self.weights_path(), self.train)
        return self._model

    def train(self, net: nn.Module, log=None) -> float:
        """Train ``net`` in place (AdamW, one-cycle LR, ±1 pixel shifts); returns held-out accuracy."""
        Xtr, ytr, Xev, yev = self._data
        t0 = time.perf_counter()
        fit(net, torch.from_numpy(Xtr), torch.from_numpy(ytr), self.epochs, self.seed, augment=_shift)
        acc = accuracy(net, Xev, yev)
        if log:
            log(f"trained digits CNN {self.widths}: {self.epochs} epochs in {time.perf_counter() - t0:.0f} s, "
                f"held-out accuracy {acc:.4f} (measured, torch fp32)")
        return acc


def _shift(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The batch rolled by -1, 0 or +1 pixels in each direction (one draw for the batch)."""
    shift = torch.randint(-1, 2, (2,), generator=g)
    return torch.roll(xb, (int(shift[0]), int(shift[1])), (2, 3))
