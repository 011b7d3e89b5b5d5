"""A transformer encoder with separate q/k/v/o projections, so attention heads prune as whole heads.

Heads are reshaped with ``view(B, T, -1, head_dim)``: the head count follows the pruned
projection width, and the module's ``head_dim`` attribute tells :func:`autoprune.discover`
to prune the q/k/v/o group in whole heads (``head_dim`` channels at a time).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SelfAttention", "EncoderLayer", "TransformerEncoder"]


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q, k, v, o Linear layers.

    Attributes:
        head_dim: Channels per head; discovery prunes this module's q/k/v/o group in multiples of it.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.head_dim = dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k = self.k(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        att = torch.softmax((q @ k.transpose(-2, -1)) * self.head_dim**-0.5, dim=-1)
        return self.o((att @ v).transpose(1, 2).reshape(B, T, -1))


class EncoderLayer(nn.Module):
    """Pre-norm encoder layer: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU hidden layer."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class TransformerEncoder(nn.Module):
    """A ``(B, T, F)`` token sequence (an image's rows in the zoo task), learned positions, encoder layers, mean-pooled head.

    Args:
        tokens: Sequence length ``T``.
        features: Input features per token ``F``.
        dim: Model width.
        heads: Attention heads per layer.
        mlp: MLP hidden width.
        depth: Encoder layers.
        num_classes: Logits produced by the head.
    """

    def __init__(self, tokens: int = 16, features: int = 16, dim: int = 128, heads: int = 4, mlp: int = 256, depth: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(features, dim)
        # An Embedding, not a bare nn.Parameter: torch-pruning resizes Embedding weights by
        # type, while a bare parameter's channel dimension would only be guessed.
        self.pos = nn.Embedding(tokens, dim)
        self.register_buffer("positions", torch.arange(tokens), persistent=False)
        self.layers = nn.Sequential(*[EncoderLayer(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.embed(x) + self.pos(self.positions))
        return self.head(self.norm(x).mean(dim=1))
