"""The built-in model zoo: one small model per architecture family autoprune supports.

Each entry builds an untrained (seeded) model and knows its input shape, so tests and
demos run the whole chain — discover, compress, export, quantize — on every family::

    from autoprune import zoo
    model, x = zoo.build("resnet"), zoo.example_input("resnet")

Trained versions for studies are tasks: ``task: autoprune.zoo.tasks:make_task`` with
``task_options: {arch: resnet}`` (see :mod:`autoprune.zoo.tasks`). The support table is
``docs/zoo.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from .._scoped import torch_seeded
from ..exceptions import ConfigError
from .cnn import MLP, PlainCNN
from .concat import DenseNet, UNet
from .grouped import RegNet, ResNeXt
from .kws import KWSNet
from .mobilenet import MobileNetV2
from .resnet import ResNet
from .transformer import TransformerEncoder

__all__ = ["ZooEntry", "ZOO", "names", "build", "example_input", "register"]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A zoo architecture.

    Args:
        name: Registry name.
        factory: ``factory(**options) -> nn.Module``.
        input_shape: Input of batch size 1 the model is tested and trained with.
        description: One line for docs and reports.
    """

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    description: str


ZOO: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> None:
    """Add an architecture to the zoo (``zoo.build(entry.name)``)."""
    ZOO[entry.name] = entry


for _e in (
    ZooEntry("cnn", PlainCNN, (1, 1, 16, 16), "plain conv-BN-ReLU stack, max-pools, linear head"),
    ZooEntry("resnet", ResNet, (1, 1, 16, 16), "ResNet with basic and bottleneck blocks, 1x1 projection shortcuts"),
    ZooEntry("mobilenetv2", MobileNetV2, (1, 1, 16, 16), "MobileNetV2 inverted residuals with depthwise 3x3 convs"),
    ZooEntry("resnext", ResNeXt, (1, 1, 16, 16), "ResNeXt bottlenecks: grouped 3x3 convs (8 groups) between 1x1s, residual adds"),
    ZooEntry("regnet", RegNet, (1, 1, 16, 16), "RegNetY blocks: grouped 3x3 convs (8 channels per group), squeeze-excitation"),
    ZooEntry("densenet", DenseNet, (1, 1, 16, 16), "DenseNet-style dense blocks (concatenation skips) and transitions"),
    ZooEntry("unet", UNet, (1, 1, 16, 16), "two-level U-Net with concatenated skips, pooled into a classifier"),
    ZooEntry("transformer", TransformerEncoder, (1, 16, 16), "pre-norm transformer encoder, q/k/v/o per head, GELU MLP, LayerNorm"),
    ZooEntry("kws", KWSNet, (1, 16, 32), "keyword-spotting style Conv1d net over (bins, frames), depthwise-separable block"),
    ZooEntry("mlp", MLP, (1, 1, 8, 8), "multi-layer perceptron on flattened inputs"),
):
    register(_e)


def names() -> list[str]:
    return list(ZOO)


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise ConfigError(f"zoo: unknown architecture {name!r} (known: {names()})")
    return ZOO[name]


def build(name: str, seed: int = 0, **options) -> nn.Module:
    """An untrained ``name`` model in eval mode, initialised from ``seed`` (same seed, same weights)."""
    entry = _entry(name)
    with torch_seeded(seed):
        model = entry.factory(**options)
        # Non-trivial BatchNorm statistics and affine terms, so an untrained model exercises
        # BN folding in the exporter and channel importance has something to rank.
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                with torch.no_grad():
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def example_input(name: str, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random input of ``name``'s shape with ``batch`` rows."""
    shape = _entry(name).input_shape
    return torch.randn((batch, *shape[1:]), generator=torch.Generator().manual_seed(seed))
