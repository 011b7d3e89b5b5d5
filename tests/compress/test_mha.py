"""nn.MultiheadAttention prunes its width with every head losing the same positions, and its out_proj goes int8.

Torch-Pruning's pruner for ``nn.MultiheadAttention`` shrinks ``embed_dim`` (so ``head_dim``)
and keeps ``num_heads``; the channels kept must sit at the same offsets in every head, or
the remaining channels would be regrouped into heads they never belonged to.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import autoprune
from autoprune.compress import BuildSettings
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session

warnings.filterwarnings("ignore")

WIDTH, HEADS = 64, 4
X = torch.randn(1, 10, 8, generator=torch.Generator().manual_seed(0))


class Encoder(nn.Module):
    """Features -> nn.TransformerEncoder (two layers of nn.MultiheadAttention + MLP) -> mean-pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, WIDTH)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(WIDTH, HEADS, 128, batch_first=True), 2,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = Encoder()
    with torch.no_grad():  # the two layers start as copies: make every weight distinct
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def _rows(dense: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    return [next(i for i, d in enumerate(dense) if torch.equal(d, r)) for r in pruned]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_every_head_keeps_the_same_positions_and_the_module_its_head_count(ratio):
    model = _model()
    space = autoprune.discover(model, X)
    (stream,) = [g for g in space.groups if "encoder.layers.0.self_attn" in g.members]
    assert stream.groups == HEADS and "encoder.layers.1.self_attn" in stream.members
    pruned = autoprune.compress.prune(model, Plan({stream.name: LayerPlan(ratio=ratio)}), X, space=space)
    width = stream.kept(ratio, space.round_to)
    head_dim = WIDTH // HEADS
    for i in range(2):
        dense, mha = model.encoder.layers[i].self_attn, pruned.encoder.layers[i].self_attn
        assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (width, HEADS, width // HEADS)
        for part in range(3):  # q, k, v blocks of the fused projection: which dense channels each kept
            kept = _rows(dense.in_proj_bias[part * WIDTH:(part + 1) * WIDTH, None],
                         mha.in_proj_bias[part * width:(part + 1) * width, None])
            per_head = [[k - h * head_dim for k in kept if k // head_dim == h] for h in range(HEADS)]
            assert all(offsets == per_head[0] for offsets in per_head) and len(per_head[0]) == width // HEADS
    assert pruned(X).shape == model(X).shape == (1, 3)


def test_out_proj_is_quantized_to_int8_and_onnxruntime_runs_the_pruned_model():
    model = _model()
    space = autoprune.discover(model, X)
    layers = {q.name for q in space.layers}
    assert {"encoder.layers.0.self_attn.out_proj", "encoder.layers.1.self_attn.out_proj"} <= layers
    reasons = {e.name: e.reason for e in space.excluded if e.what == "quantize"}
    assert "in_proj_weight" in reasons["encoder.layers.0.self_attn"]
    data = np.random.default_rng(1).standard_normal((32, 10, 8)).astype(np.float32)
    plan = space.plan_from_params(space.params_for(0.5, 8))
    artifact = autoprune.build(model, plan, data, X, BuildSettings(bn_batches=1, calibration_samples=16), space=space)
    proto = onnx.load_from_string(artifact.onnx_bytes)
    dequantized = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm" and "self_attn" in n.name]
    assert len(gemms) == 2 and all(n.input[1] in dequantized for n in gemms)
    session = make_session(artifact.onnx_bytes)
    out = session.run(None, {session.get_inputs()[0].name: data[:4]})[0]
    with torch.no_grad():
        want = artifact.model(torch.from_numpy(data[:4])).numpy()
    assert out.shape == want.shape == (4, 3) and np.corrcoef(out.ravel(), want.ravel())[0, 1] > 0.95
