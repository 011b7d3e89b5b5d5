"""Probe models for calibration: single kernels swept over the shapes pruned models take.

Each probe is a small torch module and its input: a convolution (plain, 1x1, depthwise,
grouped, 1-D) with its BatchNorm and ReLU (the runtime fuses them, as in real models), a
Linear over tokens, an attention block, pooling, a residual add, a concatenation, a
pre-activation BatchNorm and ReLU before a convolution (which run unfused). Channel
counts are swept over multiples of 8, over multiples of 4 that are not, and over counts that
are not even that (the vector block of a CPU is 8 or 16 floats; pruning with ``round_to: 1``
lands anywhere, three times in four off a multiple of 4, and onnxruntime on x86 runs a
convolution whose input channels are not a multiple of 4 without its blocked layout: a
kernel kind of its own, ``Conv/kxk``), kernels over 1/3/5,
strides over 1/2 and spatial sizes over 7-32. Every probe is built fp32 and int8 (QDQ),
exactly as an artifact is (:func:`autoprune.to_onnx`).

:func:`probes` yields them in a seeded order that cycles through the kinds, so a budget
that stops early still covers every kind. Needs torch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .._scoped import torch_seeded

__all__ = ["Probe", "probes", "KINDS"]

# A third of the counts off any multiple of 4 (up to calibration version 6 every count was a multiple of 4, so
# a convolution refused the blocked layout appeared in no probe: a pruned pre-activation net's fell back to
# another kind's costs).
_CHANNELS = (8, 10, 12, 15, 16, 20, 23, 24, 30, 32, 40, 45, 48, 56, 61, 64, 72, 90, 96, 128, 150, 160)
_SIZES = (7, 8, 14, 16, 28, 32)


@dataclasses.dataclass(frozen=True)
class Probe:
    """A probe model.

    Attributes:
        name: Unique, e.g. ``conv-c24-o40-k3-s1-hw14``.
        kind: The probe kind (a key of :data:`KINDS`).
        module: The torch module (eval mode).
        example_input: Its input, batch 1.
    """

    name: str
    kind: str
    module: nn.Module
    example_input: torch.Tensor


def _bn_relu(conv: nn.Module, channels: int, dims: int = 2) -> nn.Sequential:
    bn = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    return nn.Sequential(conv, bn, nn.ReLU())


def _conv(rng: np.random.Generator) -> Probe:
    cin, cout = (int(rng.choice(_CHANNELS)) for _ in range(2))
    k, s, hw = int(rng.choice((1, 3, 3, 5))), int(rng.choice((1, 1, 2))), int(rng.choice(_SIZES))
    m = _bn_relu(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), cout)
    return Probe(f"conv-c{cin}-o{cout}-k{k}-s{s}-hw{hw}", "conv", m, torch.randn(1, cin, hw, hw))


def _depthwise(rng: np.random.Generator) -> Probe:
    c = int(rng.choice(_CHANNELS)) * int(rng.choice((1, 2, 4)))
    k, s, hw = int(rng.choice((3, 3, 5))), int(rng.choice((1, 1, 2))), int(rng.choice(_SIZES))
    m = _bn_relu(nn.Conv2d(c, c, k, s, k // 2, groups=c, bias=False), c)
    return Probe(f"dw-c{c}-k{k}-s{s}-hw{hw}", "depthwise", m, torch.randn(1, c, hw, hw))


def _grouped(rng: np.random.Generator) -> Probe:
    # Channels per group aligned and not (pruning a grouped conv keeps whole groups' worth of channels
    # per group, so a pruned ResNeXt runs 3, 5, 6 ... channels in each of its groups).
    width = int(rng.choice((3, 4, 5, 6, 7, 8, 12, 16, 20, 24)))
    groups = int(rng.choice((2, 4, 8, 16)))
    c, s, hw = width * groups, int(rng.choice((1, 1, 2))), int(rng.choice(_SIZES))
    m = _bn_relu(nn.Conv2d(c, c, 3, s, 1, groups=groups, bias=False), c)
    return Probe(f"grp-c{c}-g{groups}-s{s}-hw{hw}", "grouped", m, torch.randn(1, c, hw, hw))


def _conv1d(rng: np.random.Generator) -> Probe:
    cin, cout = (int(rng.choice(_CHANNELS)) for _ in range(2))
    k, frames = int(rng.choice((1, 3, 5))), int(rng.choice((16, 32, 49, 64)))
    m = _bn_relu(nn.Conv1d(cin, cout, k, 1, k // 2, bias=False), cout, dims=1)
    return Probe(f"conv1d-c{cin}-o{cout}-k{k}-t{frames}", "conv1d", m, torch.randn(1, cin, frames))


def _linear(rng: np.random.Generator) -> Probe:
    din, dout = (int(rng.choice(_CHANNELS)) * int(rng.choice((1, 2, 4))) for _ in range(2))
    tokens = int(rng.choice((1, 1, 8, 16, 49)))
    m = nn.Sequential(nn.Linear(din, dout), nn.GELU() if rng.random() < 0.5 else nn.ReLU())
    shape = (1, din) if tokens == 1 else (1, tokens, din)
    return Probe(f"linear-i{din}-o{dout}-t{tokens}", "linear", m, torch.randn(*shape))


class _Attention(nn.Module):
    """The zoo's pre-norm encoder layer (q/k/v/o per head, GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        from ..zoo.transformer import EncoderLayer

        self.layer = EncoderLayer(dim, heads, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def _attention(rng: np.random.Generator) -> Probe:
    heads = int(rng.choice((1, 2, 4)))
    dim = heads * int(rng.choice((8, 16, 24, 32)))
    mlp, tokens = dim * int(rng.choice((1, 2, 4))), int(rng.choice((8, 16, 32)))
    return Probe(f"attn-d{dim}-h{heads}-m{mlp}-t{tokens}", "attention", _Attention(dim, heads, mlp), torch.randn(1, tokens, dim))


class _Pool(nn.Module):
    def __init__(self, c: int, cout: int, kind: str) -> None:
        super().__init__()
        self.conv = _bn_relu(nn.Conv2d(c, cout, 1, bias=False), cout)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.kind == "max":
            return nn.functional.max_pool2d(x, 2)
        if self.kind == "avg":
            return nn.functional.avg_pool2d(x, 2)
        return x.mean((2, 3))


def _pool(rng: np.random.Generator) -> Probe:
    c, cout, hw = int(rng.choice(_CHANNELS)), int(rng.choice(_CHANNELS)), int(rng.choice((8, 14, 16, 28, 32)))
    kind = str(rng.choice(("max", "avg", "global")))
    return Probe(f"pool-{kind}-c{c}-o{cout}-hw{hw}", "pool", _Pool(c, cout, kind), torch.randn(1, c, hw, hw))


class _Merge(nn.Module):
    """Two conv branches merged by an add (a residual) or a concatenation (a dense skip)."""

    def __init__(self, c: int, a: int, b: int, how: str) -> None:
        super().__init__()
        self.a = _bn_relu(nn.Conv2d(c, a, 3, 1, 1, bias=False), a)
        self.b = nn.Sequential(nn.Conv2d(c, b, 1, bias=False), nn.BatchNorm2d(b))
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "add":
            return torch.relu(self.a(x) + self.b(x))
        return torch.cat([self.a(x), self.b(x), x], 1)


def _merge(rng: np.random.Generator) -> Probe:
    c, hw = int(rng.choice(_CHANNELS)), int(rng.choice(_SIZES))
    how = str(rng.choice(("add", "cat")))
    a = int(rng.choice(_CHANNELS))
    b = a if how == "add" else int(rng.choice(_CHANNELS))
    return Probe(f"{how}-c{c}-a{a}-b{b}-hw{hw}", how, _Merge(c, a, b, how), torch.randn(1, c, hw, hw))


def _preact(rng: np.random.Generator) -> Probe:
    """BatchNorm and ReLU *before* a convolution (pre-activation, as DenseNet and pre-act ResNets): nothing
    folds them into the convolution before, so they run as kernels of their own."""
    cin, cout = (int(rng.choice(_CHANNELS)) for _ in range(2))
    k, hw = int(rng.choice((1, 3))), int(rng.choice(_SIZES))
    m = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, k, 1, k // 2, bias=False))
    return Probe(f"preact-c{cin}-o{cout}-k{k}-hw{hw}", "preact", m, torch.randn(1, cin, hw, hw))


KINDS: dict[str, Callable[[np.random.Generator], Probe]] = {
    "conv": _conv, "depthwise": _depthwise, "grouped": _grouped, "conv1d": _conv1d, "linear": _linear,
    "attention": _attention, "pool": _pool, "merge": _merge, "preact": _preact,
}


def probes(seed: int = 0, kinds: tuple[str, ...] | None = None) -> Iterator[Probe]:
    """Probes without end, cycling through ``kinds`` (all by default), each drawn from a seeded generator.

    Names repeat rarely; a caller that needs unique ones skips names it has seen.
    """
    rng = np.random.default_rng(seed)
    chosen = kinds or tuple(KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown probe kind {unknown[0]!r} (known: {', '.join(KINDS)})")
    i = 0
    while True:
        for kind in chosen:
            i += 1
            with torch_seeded(seed * 1_000_003 + i):  # weights and inputs from a fork: torch's own state is left alone
                p = KINDS[kind](rng)
            yield dataclasses.replace(p, module=p.module.eval())
