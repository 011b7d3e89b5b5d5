"""Zoo tasks for studies: each zoo architecture trained briefly on the built-in digits data.

The digits images (8x8) are resized to each architecture's input — 16x16 images for the
CNNs, a 16-token sequence of 16 features (image rows) for the transformer, a 16x32
"spectrogram" (rows as bins, resized columns as frames) for the keyword-spotting net, the
raw 64 pixels for the MLP. This is a stand-in for real audio or text data: it exercises the
same layers and makes accuracy meaningful, nothing more. Study YAML::

    task: autoprune.zoo.tasks:make_task
    task_options: {arch: resnet}

Trained weights are cached next to the digits task's (``$AUTOPRUNE_CACHE``); training takes
seconds (a few epochs of AdamW).
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from ..exceptions import ConfigError
from ..tasks.base import Task
from ..tasks.cache import cache_dir, load_or_train
from ..tasks.training import accuracy, fit
from ..tasks.digits import _split
from . import ZOO, build

__all__ = ["ZooTask", "make_task", "to_input"]

WEIGHTS_VERSION = 1


def to_input(arch: str, X: np.ndarray) -> np.ndarray:
    """Digits images ``(N, 1, 8, 8)`` reshaped/resized to ``arch``'s input shape, float32."""
    shape = ZOO[arch].input_shape[1:]
    x = torch.from_numpy(X)
    if len(shape) == 3:  # (C, H, W) image
        x = nn.functional.interpolate(x, size=shape[1:], mode="bilinear", align_corners=False) if shape[1:] != (8, 8) else x
    else:  # (T, F) sequence / (bins, frames) features
        x = nn.functional.interpolate(x, size=shape, mode="bilinear", align_corners=False)[:, 0]
    return np.ascontiguousarray(x.numpy(), dtype=np.float32)


class ZooTask(Task):
    """Digits classification with a zoo architecture.

    Args:
        arch: Zoo architecture name (``autoprune.zoo.names()``).
        epochs: Training epochs.
        seed: Initialisation and training seed.
    """

    def __init__(self, arch: str = "resnet", epochs: int = 4, seed: int = 0) -> None:
        if arch not in ZOO:
            raise ConfigError(f"zoo task: option arch must be one of {list(ZOO)}, got {arch!r}")
        if not isinstance(epochs, int) or not 1 <= epochs <= 100:
            raise ConfigError(f"zoo task: option epochs must be an integer in [1, 100], got {epochs!r}")
        super().__init__(arch=arch, epochs=epochs, seed=seed)
        self.name = f"zoo-{arch}"
        self.arch, self.epochs, self.seed = arch, epochs, seed
        Xtr, ytr, Xev, yev = _split()
        self._train = (to_input(arch, Xtr), ytr)
        self._eval = (to_input(arch, Xev), yev)
        self._model: nn.Module | None = None

    def example_input(self) -> torch.Tensor:
        return torch.zeros(ZOO[self.arch].input_shape)

    def eval_data(self):
        return self._eval

    def train_data(self):
        return self._train

    def weights_path(self):
        return cache_dir() / f"zoo-{self.arch}-v{WEIGHTS_VERSION}-e{self.epochs}-s{self.seed}.pt"

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = load_or_train(build(self.arch, seed=self.seed), self.weights_path(), self.train)
        return self._model

    def train(self, net: nn.Module) -> float:
        """Train ``net`` in place (AdamW, one-cycle LR); returns held-out accuracy (torch fp32)."""
        X, y = (torch.from_numpy(a) for a in self._train)
        fit(net, X, y, self.epochs, self.seed)
        return accuracy(net, *self._eval)


def make_task(arch: str = "resnet", epochs: int = 4, seed: int = 0) -> ZooTask:
    """Factory for study YAML: ``task: autoprune.zoo.tasks:make_task``."""
    return ZooTask(arch=arch, epochs=epochs, seed=seed)
