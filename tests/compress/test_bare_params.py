"""Bare parameters (class token, position embeddings, layer scale) are resized with the channels: no exclude needed.

Hugging Face ViT and ConvNeXt are built from the library's own classes with tiny configs and
random weights (no download); torchvision-style blocks (``class_token`` / ``pos_embedding``,
``layer_scale`` of shape (C, 1, 1)) are written out here, since torchvision does not import
beside the pinned torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import transformers
from torch import nn

import autoprune
from autoprune.compress import BuildSettings
from autoprune.compress.prune import prune_copy
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session

warnings.filterwarnings("ignore")

WIDTH = 64
SETTINGS = BuildSettings(bn_batches=1, calibration_samples=16)


def _images(batch: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32))


def _hf_vit() -> nn.Module:
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
        patch_size=8, num_labels=10)).eval()


def _rows(dense: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    """Which rows of ``dense`` the rows of ``pruned`` are (pruning copies the kept rows exactly)."""
    return [next(i for i, d in enumerate(dense) if torch.equal(d, r)) for r in pruned]


def _residual(space, member: str):
    return next(g for g in space.groups if member in g.members)


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_hf_vit_prunes_its_embedding_width_with_the_class_token_and_position_embeddings(ratio):
    model, x = _hf_vit(), _images(1, 0)
    space = autoprune.discover(model, x)  # no exclude
    assert not [e for e in space.excluded if e.what == "prune" and e.name != "classifier"]
    residual = _residual(space, "vit.embeddings.patch_embeddings.projection")
    assert residual.channels == WIDTH and "vit.layernorm" in residual.members
    pruned, done = prune_copy(model, {g.name: ratio for g in space.groups}, space, x)
    kept = int(WIDTH * (1 - ratio))
    assert done[residual.name] == (WIDTH, kept)
    dense_e, e = model.vit.embeddings, pruned.vit.embeddings
    assert e.patch_embeddings.projection.out_channels == kept
    assert e.cls_token.shape == (1, 1, kept) and e.position_embeddings.shape == (1, 17, kept)
    # the same channels go everywhere: the token and table keep the projection's surviving channels
    idx = _rows(dense_e.patch_embeddings.projection.weight, e.patch_embeddings.projection.weight)
    assert torch.equal(e.cls_token, dense_e.cls_token[..., idx])
    assert torch.equal(e.position_embeddings, dense_e.position_embeddings[..., idx])
    assert torch.equal(pruned.vit.layernorm.weight, model.vit.layernorm.weight[idx])
    assert pruned.classifier.in_features == kept
    xb = _images(3, 1)
    with torch.no_grad():
        assert pruned(xb).logits.shape == model(xb).logits.shape == (3, 10)


def test_hf_vit_without_exclude_builds_an_int8_onnx_model_with_a_narrower_residual_that_onnxruntime_runs():
    model, x = _hf_vit(), _images(1, 0)
    space = autoprune.discover(model, x)
    X = _images(32, 2).numpy()
    artifact = autoprune.build(model, space.plan_from_params(space.params_for(0.5, 8)), X, x, SETTINGS, space=space)
    assert artifact.model.vit.embeddings.cls_token.shape == (1, 1, WIDTH // 2)
    assert artifact.macs < sum(autoprune.space.layer_macs(model, x).values()) * 0.4  # every width halved
    proto = onnx.load_from_string(artifact.onnx_bytes)
    onnx.checker.check_model(proto)
    assert any(n.op_type == "DequantizeLinear" for n in proto.graph.node)
    session = make_session(artifact.onnx_bytes)
    out = session.run(None, {session.get_inputs()[0].name: X[:4]})[0]
    with torch.no_grad():
        want = artifact.model(torch.from_numpy(X[:4])).logits.numpy()
    assert out.shape == want.shape == (4, 10)
    assert np.corrcoef(out.ravel(), want.ravel())[0, 1] > 0.9  # int8 follows the pruned model


def test_hf_convnext_prunes_the_residual_width_with_its_layer_scales():
    torch.manual_seed(0)
    model = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], image_size=32, num_labels=3,
        layer_scale_init_value=0.5)).eval()
    x = _images(1, 0)
    space = autoprune.discover(model, x)
    block = "convnext.encoder.stages.0.layers.0"
    residual = _residual(space, "convnext.embeddings.patch_embeddings")
    assert residual.channels == 16 and f"{block}.pwconv2" in residual.members
    pruned, done = prune_copy(model, {g.name: 0.5 for g in space.groups}, space, x)
    dense_b, b = model.get_submodule(block), pruned.get_submodule(block)
    idx = _rows(dense_b.dwconv.weight, b.dwconv.weight)  # depthwise: its rows are the residual's channels
    assert len(idx) == 8 and torch.equal(b.layer_scale_parameter, dense_b.layer_scale_parameter[idx])
    assert pruned.get_submodule("convnext.encoder.stages.1.layers.0").layer_scale_parameter.shape == (16,)
    assert pruned(x).logits.shape == (1, 3)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: depthwise conv, channels-last MLP, ``layer_scale`` of shape (C, 1, 1)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw, self.norm = nn.Conv2d(c, c, 7, padding=3, groups=c), nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.layer_scale = nn.Parameter(torch.linspace(0.1, 1.0, c).view(c, 1, 1))

    def forward(self, x):
        y = self.fc2(nn.functional.gelu(self.fc1(self.norm(self.dw(x).permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class TorchvisionStyle(nn.Module):
    """torchvision's ViT embedding (``class_token``, ``pos_embedding``) and a ConvNeXt stage, on one residual each."""

    def __init__(self, c: int = 32, tokens: int = 16) -> None:
        super().__init__()
        self.stem, self.block = nn.Conv2d(3, c, 4, stride=4), CNBlock(c)
        self.patch = nn.Conv2d(c, c, 2, stride=2)
        self.class_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos_embedding = nn.Parameter(torch.randn(1, tokens + 1, c))
        self.norm, self.mlp1, self.mlp2 = nn.LayerNorm(c), nn.Linear(c, 2 * c), nn.Linear(2 * c, c)
        self.head = nn.Linear(c, 4)

    def forward(self, x):
        x = self.patch(self.block(self.stem(x))).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        x = x + self.mlp2(torch.relu(self.mlp1(self.norm(x))))
        return self.head(x[:, 0])


def test_torchvision_style_class_token_position_embedding_and_layer_scale_are_resized():
    torch.manual_seed(0)
    model, x = TorchvisionStyle().eval(), _images(1, 0)
    space = autoprune.discover(model, x)
    assert [g.name for g in space.groups] == ["stem", "block.fc1", "mlp1", "mlp2"]  # mlp2: the token residual
    assert [e.name for e in space.excluded if e.what == "prune"] == ["head"]
    pruned, done = prune_copy(model, {g.name: 0.5 for g in space.groups}, space, x)
    assert pruned.block.layer_scale.shape == (16, 1, 1) and pruned.block.dw.groups == 16
    assert pruned.class_token.shape == (1, 1, 16) and pruned.pos_embedding.shape == (1, 17, 16)
    idx = _rows(model.head.weight.T, pruned.head.weight.T)
    assert torch.equal(pruned.pos_embedding, model.pos_embedding[..., idx])
    idx = _rows(model.stem.weight, pruned.stem.weight)
    assert torch.equal(pruned.block.layer_scale, model.block.layer_scale[idx])
    assert pruned(_images(2, 1)).shape == (2, 4)


class SquareTable(TorchvisionStyle):
    """A position table with as many tokens as channels (16 x 16): which dimension follows the channels is ambiguous."""

    def __init__(self) -> None:
        super().__init__(c=17)
        self.stem, self.block, self.patch = nn.Conv2d(3, 32, 4, stride=4), CNBlock(32), nn.Conv2d(32, 17, 2, stride=2)


def test_an_ambiguous_bare_parameter_leaves_only_its_group_unpruned_with_the_reason():
    torch.manual_seed(0)
    model, x = SquareTable().eval(), _images(1, 0)
    space = autoprune.discover(model, x, round_to=1)
    reasons = {e.name: e.reason for e in space.excluded if e.what == "prune"}
    (why,) = [r for r in reasons.values() if "pos_embedding" in r]
    assert "shape (1, 17, 17)" in why and "dimensions [1, 2] all have the group's 17 channels" in why
    assert "mlp1" in {g.name for g in space.groups} and "block.fc1" in {g.name for g in space.groups}
    pruned, _ = prune_copy(model, {g.name: 0.5 for g in space.groups}, space, x)
    assert pruned.pos_embedding.shape == (1, 17, 17) and pruned.mlp1.out_features < 34
    assert pruned(x).shape == (1, 4)


class ChannelScale(nn.Module):
    """A custom per-channel gain (C, 1, 1): ``tests/test_space.py``'s custom module, once refused."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, c).view(c, 1, 1))

    def forward(self, x):
        return x * self.gain


def test_a_custom_module_with_one_channel_dimension_is_pruned_with_its_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), ChannelScale(16), nn.Conv2d(16, 16, 3), nn.Flatten(), nn.Linear(1024, 4))
    model, x = model.eval(), torch.randn(1, 3, 12, 12)
    space = autoprune.discover(model, x)
    assert "0" in {g.name for g in space.groups}
    small = autoprune.compress.prune(model, Plan({"0": LayerPlan(ratio=0.5)}), x, space=space)
    assert small[0].out_channels == 8 and small[1].gain.shape == (8, 1, 1)
    idx = _rows(model[0].weight, small[0].weight)
    assert torch.equal(small[1].gain, model[1].gain[idx])
    assert small(x).shape == (1, 4)
