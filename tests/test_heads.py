"""Attention that stores only a head count (no head size) prunes whole heads, and the count follows."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import autoprune
from autoprune.heads import head_size, set_heads
from autoprune.plan import LayerPlan, Plan

WIDTH, HEADS = 32, 4


class CountOnlyAttention(nn.Module):
    """Reshapes with its stored head count: with a stale count it would silently regroup channels into heads."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = HEADS
        self.q, self.k, self.v, self.o = (nn.Linear(WIDTH, WIDTH) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (p(x).view(B, T, self.num_heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return self.o((att @ v).transpose(1, 2).reshape(B, T, -1))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.attn, self.head = nn.Linear(6, WIDTH), CountOnlyAttention(), nn.Linear(WIDTH, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(self.embed(x)).mean(1))


def test_head_size_comes_from_a_declared_size_else_from_the_count():
    m = nn.Module()
    assert head_size(m, 64) == 1  # not attention
    m.num_attention_heads = 4
    assert head_size(m, 64) == 16
    m.attention_head_size = 8  # a declared size wins
    assert head_size(m, 64) == 8
    m.num_attention_heads, m.all_head_size = 8, 64
    assert set_heads(m, 24, 8) == 3 and (m.num_attention_heads, m.all_head_size) == (3, 24)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_a_module_with_only_a_head_count_loses_whole_heads_and_its_count_follows(ratio):
    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 5, 6)
    space = autoprune.discover(model, x, round_to=1)
    group = next(g for g in space.groups if g.attention == ("attn",))
    assert group.step == WIDTH // HEADS
    pruned = autoprune.compress.prune(model, Plan({group.name: LayerPlan(ratio=ratio)}), x, space=space)
    kept = round(HEADS * (1 - ratio))
    assert pruned.attn.num_heads == kept and pruned.attn.q.out_features == kept * group.step
    # the dense model with the dropped heads' values zeroed computes exactly what the pruned one does
    rows = [next(i for i, d in enumerate(model.attn.v.weight) if torch.equal(d, r)) for r in pruned.attn.v.weight]
    masked = copy.deepcopy(model)
    with torch.no_grad():
        dropped = [i for i in range(WIDTH) if i not in rows]
        masked.attn.v.weight[dropped] = 0
        masked.attn.v.bias[dropped] = 0
        xb = torch.randn(4, 5, 6)
        torch.testing.assert_close(pruned(xb), masked(xb), rtol=1e-4, atol=1e-5)
