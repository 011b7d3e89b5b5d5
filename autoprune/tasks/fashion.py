"""The built-in ``fashion`` task: Fashion-MNIST (Zalando, 70,000 28x28 greyscale images, 10 classes).

The data are the original IDX files, read from a directory on disk, never downloaded:
Debian's package ``dataset-fashion-mnist`` installs them in :data:`DEFAULT_DIR`; the task
option ``data_dir`` or the environment variable ``AUTOPRUNE_FASHION_MNIST`` names another.

Splits, as a careful ML engineer expects them:

* ``train_data()``: 55,000 of the 60,000 training images (training, BatchNorm statistics,
  calibration, fine-tuning);
* ``eval_data()``: the other 5,000, the **validation** split (fixed seed) the search selects
  on (``eval_samples`` takes a fixed subset of it, for speed);
* ``test_data()``: the official 10,000 test images, never used to select; autoprune reports
  accuracy on them for exported and confirmed artifacts only.

Two models of the sizes deployed on small devices, not widened on purpose (``arch``):
``resnet`` (basic blocks, 24/48/96 channels, 45 MMACs, ~1.1 ms fp32 per image on one x86
thread) and ``mobilenetv2`` (inverted residuals, 23 MMACs, ~0.75 ms). Both trained models
ship with the package (8 epochs each: ``data/fashion-resnet-v1.pt``, 92.75 % test accuracy;
``data/fashion-mobilenetv2-v1.pt``, 92.55 %); ``python -m autoprune.tasks.fashion --arch
resnet`` (or ``mobilenetv2``) reproduces them (same seed, same bytes on a machine with the
same instruction set; about 70 and 50 minutes on 2 busy cores). Other ``epochs``/``seed``
options train into the cache on first use.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._schema import atomic_write_bytes
from .._scoped import torch_seeded
from ..exceptions import ConfigError
from ..zoo.mobilenet import MobileNetV2
from ..zoo.resnet import ResNet
from .base import Task
from .cache import cache_dir, load_or_train
from .idx import IDXError, read_idx
from .training import accuracy, fit

__all__ = ["FashionTask", "load_fashion", "ARCHS", "DEFAULT_DIR", "FILES", "ENV"]

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV = "AUTOPRUNE_FASHION_MNIST"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
N_TRAIN, N_TEST, VAL_SIZE, SPLIT_SEED = 60_000, 10_000, 5_000, 0
WEIGHTS_VERSION = 1

# Architectures: (factory, shipped training recipe). Widths are those of small deployed CNNs.
ARCHS = {
    "resnet": lambda: ResNet(stages=(("basic", 24, 2, 1), ("basic", 48, 2, 2), ("basic", 96, 2, 2)), stem=24),
    "mobilenetv2": lambda: MobileNetV2(stages=((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 1), (6, 96, 2, 1)),
                                       stem=32, last=384),
}
SHIPPED = {"resnet": {"epochs": 8, "seed": 0}, "mobilenetv2": {"epochs": 8, "seed": 0}}


def data_dir(option: str | os.PathLike | None = None) -> Path:
    """The directory holding the four IDX files: the option, else ``$AUTOPRUNE_FASHION_MNIST``, else Debian's."""
    return Path(option or os.environ.get(ENV) or DEFAULT_DIR)


def load_fashion(directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)``: images float32 ``(N, 1, 28, 28)`` in [0, 1], labels int64.

    Raises:
        ConfigError: a file is missing or corrupt; the one line says which four files to put where.
    """
    d = data_dir(directory)
    try:
        arrays = {}
        for key, name in FILES.items():
            images = key.endswith("images")
            arrays[key] = read_idx(d / name, 3 if images else 1, (28, 28) if images else ())
        for part, n in (("train", N_TRAIN), ("test", N_TEST)):
            ni, nl = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
            if ni != n or nl != n:
                raise IDXError(f"{d / FILES[part + '_images']}: {ni} images and {nl} labels, expected {n} of each")
            if arrays[f"{part}_labels"].max() > 9:
                raise IDXError(f"{d / FILES[part + '_labels']}: labels must be 0-9, found {int(arrays[part + '_labels'].max())}")
    except IDXError as e:
        raise ConfigError(
            f"fashion-mnist: {e}; put {', '.join(FILES.values())} in {d} (Debian: apt-get install dataset-fashion-mnist) "
            f"or name their directory with task option data_dir or ${ENV}"
        ) from None

    def images(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / 255.0)[:, None]

    return (images(arrays["train_images"]), arrays["train_labels"].astype(np.int64),
            images(arrays["test_images"]), arrays["test_labels"].astype(np.int64))


def split_indices(n: int = N_TRAIN, val_size: int = VAL_SIZE, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, validation)`` indices into the training images: disjoint, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


class FashionTask(Task):
    """Fashion-MNIST classification with a small ResNet or MobileNetV2.

    Args:
        arch: ``resnet`` or ``mobilenetv2``.
        epochs, seed: Training recipe; the shipped weights are used when they match.
        eval_samples: Validation images the search evaluates on (a fixed subset; all 5,000 by default).
        data_dir: Directory of the four IDX files (default: ``$AUTOPRUNE_FASHION_MNIST`` or
            Debian's ``/usr/share/datasets/fashion-mnist``).
    """

    def __init__(self, arch: str = "resnet", epochs: int | None = None, seed: int = 0,
                 eval_samples: int = VAL_SIZE, data_dir: str | None = None) -> None:
        if arch not in ARCHS:
            raise ConfigError(f"fashion task: option arch must be one of {list(ARCHS)}, got {arch!r}")
        epochs = SHIPPED[arch]["epochs"] if epochs is None else epochs
        if not isinstance(epochs, int) or not 1 <= epochs <= 200:
            raise ConfigError(f"fashion task: option epochs must be an integer in [1, 200], got {epochs!r}")
        if not isinstance(seed, int):
            raise ConfigError(f"fashion task: option seed must be an integer, got {seed!r}")
        if not isinstance(eval_samples, int) or not 100 <= eval_samples <= VAL_SIZE:
            raise ConfigError(f"fashion task: option eval_samples must be an integer in [100, {VAL_SIZE}], got {eval_samples!r}")
        options = {"arch": arch, "epochs": epochs, "seed": seed, "eval_samples": eval_samples}
        if data_dir is not None:
            options["data_dir"] = str(data_dir)
        super().__init__(**options)
        self.name = f"fashion-{arch}"
        self.arch, self.epochs, self.seed, self.eval_samples = arch, epochs, seed, eval_samples
        Xtr, ytr, Xte, yte = load_fashion(data_dir)
        tr, va = split_indices()
        self._train = (Xtr[tr], ytr[tr])
        self._val = (Xtr[va], ytr[va])
        self._test = (Xte, yte)
        self._model: nn.Module | None = None

    @property
    def eval_description(self) -> str:
        n = self.eval_samples
        part = "all" if n == VAL_SIZE else f"a fixed subset of {n} of the"
        return f"validation split ({part} {VAL_SIZE} images held out of Fashion-MNIST's training set, seed {SPLIT_SEED})"

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 1, 28, 28)

    def eval_data(self):
        X, y = self._val
        return X[: self.eval_samples], y[: self.eval_samples]

    def validation_data(self):
        """All 5,000 validation images (``eval_data`` may be a subset)."""
        return self._val

    def train_data(self):
        return self._train

    def test_data(self):
        return self._test

    def shipped_weights(self) -> Path | None:
        """The weights that ship with the package for these options, if any."""
        if SHIPPED[self.arch] != {"epochs": self.epochs, "seed": self.seed}:
            return None
        path = resources.files("autoprune.tasks").joinpath(f"data/fashion-{self.arch}-v{WEIGHTS_VERSION}.pt")
        return Path(str(path)) if path.is_file() else None

    def weights_path(self) -> Path:
        return self.shipped_weights() or cache_dir() / f"fashion-{self.arch}-v{WEIGHTS_VERSION}-e{self.epochs}-s{self.seed}.pt"

    def initial_model(self) -> nn.Module:
        """The untrained model, initialised from ``seed``."""
        with torch_seeded(self.seed):
            return ARCHS[self.arch]().eval()

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = load_or_train(self.initial_model(), self.weights_path(), self.train)
        return self._model

    def train(self, net: nn.Module, log=None) -> float:
        """Train ``net`` in place (AdamW, one-cycle LR, flips and ±2-pixel shifts); returns validation accuracy."""
        X, y = (torch.from_numpy(a) for a in self._train)
        t0 = time.perf_counter()
        net.to(memory_format=torch.channels_last)  # faster depthwise/conv backward on CPU; same math
        fit(net, X, y, self.epochs, self.seed, augment=_flip_shift, batch=128, lr=4e-3)
        net.to(memory_format=torch.contiguous_format)
        acc = accuracy(net, *self._val)
        if log:
            log(f"trained fashion {self.arch}: {self.epochs} epochs in {time.perf_counter() - t0:.0f} s, "
                f"validation accuracy {acc:.4f} (measured, torch fp32)")
        return acc


def _flip_shift(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2; the batch rolled by -2..2 pixels each way."""
    flip = torch.rand(len(xb), generator=g) < 0.5
    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
    shift = torch.randint(-2, 3, (2,), generator=g)
    return torch.roll(xb, (int(shift[0]), int(shift[1])), (2, 3))


def main(argv: list[str] | None = None) -> int:
    """Reproduce the shipped weights: ``python -m autoprune.tasks.fashion --arch resnet [--out FILE]``."""
    p = argparse.ArgumentParser(prog="python -m autoprune.tasks.fashion", description=main.__doc__)
    p.add_argument("--arch", choices=list(ARCHS), required=True)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="weights file (default: the package's data/fashion-<arch>-v1.pt)")
    args = p.parse_args(argv)
    task = FashionTask(args.arch, args.epochs, args.seed)
    net = task.initial_model()
    task.train(net, log=print)
    test = accuracy(net, *task.test_data())
    print(f"test accuracy {test:.4f} (measured, torch fp32, official 10,000-image test split)")
    out = Path(args.out) if args.out else Path(__file__).parent / "data" / f"fashion-{args.arch}-v{WEIGHTS_VERSION}.pt"
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
