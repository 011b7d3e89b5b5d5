"""Hugging Face attention prunes by whole heads, and token-id models export to int8.

Models are built from the library's own classes with tiny configs and random weights (no
download): BERT and DistilBERT (token ids), ViT (images), the Whisper encoder (mel features).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Callable

import numpy as np
import onnx
import pytest
import torch
import transformers
from torch import nn

import autoprune
from autoprune.compress import BuildSettings
from autoprune.compress.prune import prune_copy
from autoprune.exceptions import UnsupportedLayerError
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session

warnings.filterwarnings("ignore")

VOCAB, TOKENS, WIDTH, HEADS, HEAD = 100, 16, 64, 4, 16
SETTINGS = BuildSettings(bn_batches=1, calibration_samples=16)


@dataclasses.dataclass(frozen=True)
class Arch:
    """A Hugging Face class, how to feed it, and where its attention keeps q/k/v/o and its head count."""

    build: Callable[[], nn.Module]
    example: Callable[[int, int], torch.Tensor]  # (batch, seed) -> input
    attention: str  # class name of the module holding q/k/v
    qkv: tuple[str, str, str]  # q/k/v attribute names in it
    out: Callable[[str], str]  # attention module path -> o projection path
    count: str  # head-count attribute
    mlp: str  # suffix of the MLP's first linear
    exclude: tuple[str, ...] = ()


def _tokens(batch: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, VOCAB, (batch, TOKENS)))


def _seeded(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return make().eval()
    return build


ARCHS = {
    "bert": Arch(
        _seeded(lambda: transformers.BertForSequenceClassification(transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=HEADS,
            intermediate_size=128, max_position_embeddings=32, num_labels=3))),
        _tokens, "BertSelfAttention", ("query", "key", "value"),
        lambda p: p.rpartition(".")[0] + ".output.dense", "num_attention_heads", "intermediate.dense"),
    "distilbert": Arch(
        _seeded(lambda: transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(
            vocab_size=VOCAB, dim=WIDTH, n_layers=2, n_heads=HEADS, hidden_dim=128, max_position_embeddings=32,
            num_labels=3))),
        _tokens, "DistilBertSelfAttention", ("q_lin", "k_lin", "v_lin"), lambda p: p + ".out_lin", "n_heads", "ffn.lin1"),
    "vit": Arch(
        _seeded(lambda: transformers.ViTForImageClassification(transformers.ViTConfig(
            hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=HEADS, intermediate_size=128, image_size=32,
            patch_size=8, num_labels=10))),
        lambda b, s: torch.from_numpy(np.random.default_rng(s).standard_normal((b, 3, 32, 32)).astype(np.float32)),
        # no exclude: the class token and position embeddings are resized with the residual width
        # (tests/compress/test_bare_params.py)
        "ViTAttention", ("q_proj", "k_proj", "v_proj"), lambda p: p + ".o_proj", "num_attention_heads", "mlp.fc1"),
    "whisper": Arch(
        _seeded(lambda: transformers.WhisperForAudioClassification(transformers.WhisperConfig(
            d_model=WIDTH, encoder_layers=2, encoder_attention_heads=HEADS, encoder_ffn_dim=128, num_mel_bins=16,
            max_source_positions=16, decoder_layers=1, decoder_attention_heads=HEADS, num_labels=3))),
        lambda b, s: torch.from_numpy(np.random.default_rng(s).standard_normal((b, 16, 32)).astype(np.float32)),
        "WhisperAttention", ("q_proj", "k_proj", "v_proj"), lambda p: p + ".out_proj", "num_heads", "fc1"),
}
_CACHE: dict[str, tuple] = {}


def _setup(name: str):
    if name not in _CACHE:
        arch = ARCHS[name]
        model, x = arch.build(), arch.example(1, 0)
        _CACHE[name] = (arch, model, x, autoprune.discover(model, x, exclude=arch.exclude))
    return _CACHE[name]


def _attention(model: nn.Module, arch: Arch) -> list[str]:
    return [n for n, m in model.named_modules() if type(m).__name__ == arch.attention]


def _rows(dense: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    """Which rows of ``dense`` the rows of ``pruned`` are (pruning copies the kept rows exactly)."""
    return [next(i for i, d in enumerate(dense) if torch.equal(d, r)) for r in pruned]


@pytest.mark.parametrize("name", list(ARCHS))
def test_discovery_gives_each_attention_one_group_pruned_in_whole_heads(name):
    arch, model, x, space = _setup(name)
    paths = _attention(model, arch)
    assert len(paths) == 2
    for path in paths:
        group = next(g for g in space.groups if path in g.attention)
        assert group.step == HEAD and group.channels == WIDTH
        assert {f"{path}.{a}" for a in arch.qkv} <= set(group.members) and arch.out(path) in group.members


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", list(ARCHS))
def test_heads_are_pruned_whole_and_the_same_in_q_k_v_o_with_the_head_count_updated(name, ratio):
    arch, model, x, space = _setup(name)
    ratios = {g.name: ratio for g in space.groups if g.attention}
    pruned, _ = prune_copy(model, ratios, space, x)
    kept_heads = round(HEADS * (1 - ratio))
    dense_modules, pruned_modules = dict(model.named_modules()), dict(pruned.named_modules())
    masked = copy.deepcopy(model)  # the dense model with the dropped heads' values zeroed
    for path in _attention(model, arch):
        dense, after = dense_modules[path], pruned_modules[path]
        assert getattr(after, arch.count) == kept_heads and getattr(dense, arch.count) == HEADS
        if hasattr(after, "all_head_size"):
            assert after.all_head_size == kept_heads * HEAD
        kept = [_rows(getattr(dense, a).weight, getattr(after, a).weight) for a in arch.qkv]
        heads = sorted({i // HEAD for i in kept[0]})
        assert len(heads) == kept_heads
        whole = [h * HEAD + i for h in heads for i in range(HEAD)]
        assert kept == [whole] * 3  # q, k and v keep the same whole heads
        o_dense, o_pruned = dense_modules[arch.out(path)], pruned_modules[arch.out(path)]
        assert _rows(o_dense.weight.T, o_pruned.weight.T) == whole
        v = masked.get_submodule(f"{path}.{arch.qkv[2]}")
        dropped = [i for i in range(WIDTH) if i not in whole]
        with torch.no_grad():
            v.weight[dropped] = 0
            if v.bias is not None:
                v.bias[dropped] = 0
    xb = arch.example(3, 1)
    with torch.no_grad():
        got, want = pruned(xb).logits, masked(xb).logits
    assert got.shape == want.shape == model(xb).logits.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # heads mixed from different heads would differ


def _assert_heads_and_mlp_halved(pruned: nn.Module, arch: Arch) -> None:
    mlp = [m for n, m in pruned.named_modules() if n.endswith(arch.mlp)]
    assert len(mlp) == 2 and all(m.out_features == 64 for m in mlp)
    assert [getattr(pruned.get_submodule(p), arch.count) for p in _attention(pruned, arch)] == [HEADS // 2] * 2


@pytest.mark.parametrize("name", ["bert", "distilbert", "vit"])
def test_uniform_half_of_every_group_builds_a_smaller_int8_model_that_onnxruntime_runs(name):
    arch, model, x, space = _setup(name)
    X = arch.example(32, 2).numpy()
    plan = space.plan_from_params(space.params_for(0.5, 8))
    artifact = autoprune.build(model, plan, X, x, SETTINGS, space=space)
    assert artifact.macs < sum(autoprune.space.layer_macs(model, x).values()) * 0.6
    _assert_heads_and_mlp_halved(artifact.model, arch)
    proto = onnx.load_from_string(artifact.onnx_bytes)
    onnx.checker.check_model(proto)
    session = make_session(artifact.onnx_bytes)
    (graph_input,) = session.get_inputs()
    assert graph_input.type == ("tensor(int64)" if name != "vit" else "tensor(float)")
    out = session.run(None, {graph_input.name: X[:4]})[0]
    assert out.shape == tuple(artifact.model(torch.from_numpy(X[:4])).logits.shape)
    # QDQ reaches the attention projections: each q/k/v/o MatMul takes a dequantized weight
    dequantized = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    matmuls = [n for n in proto.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in dequantized]
    linears = [m for m in artifact.model.modules() if isinstance(m, nn.Linear)]
    assert len(matmuls) >= len(linears) - 1  # all but at most the classifier's Gemm


@pytest.mark.parametrize("name", ["bert", "distilbert"])
def test_token_ids_export_as_int64_and_calibrate_int8_with_onnx_close_to_torch(name):
    arch, model, x, space = _setup(name)
    X = arch.example(32, 3).numpy()
    assert X.dtype == np.int64
    with torch.no_grad():
        want = model(torch.from_numpy(X[:8])).logits.numpy()
    outputs = {}
    for bits in (32, 8):
        plan = Plan({q.name: LayerPlan(bits=bits) for q in space.layers})
        session = make_session(autoprune.build(model, plan, X, x, SETTINGS, space=space).onnx_bytes)
        assert session.get_inputs()[0].type == "tensor(int64)"
        outputs[bits] = session.run(None, {session.get_inputs()[0].name: X[:8]})[0]
    np.testing.assert_allclose(outputs[32], want, rtol=1e-4, atol=1e-5)
    # int8 follows the model (random weights give logits near 0, so compare their pattern, not their scale)
    assert np.corrcoef(outputs[8].ravel(), want.ravel())[0, 1] > 0.98


def test_a_whisper_residual_group_that_would_break_the_model_is_refused_naming_it():
    arch, model, x, space = _setup("whisper")
    # The encoder adds its position table by weight, outside any module's forward: torch-pruning
    # does not see it, so pruning the last layer's residual width would break the sum.
    plan = Plan({g.name: LayerPlan(ratio=0.5) for g in space.groups})
    with pytest.raises(UnsupportedLayerError, match=r"channel group 'encoder.layers.1.fc2' breaks the model") as err:
        autoprune.compress.prune(model, plan, x, space=space)
    space = autoprune.discover(model, x, exclude=list(err.value.modules))
    pruned = autoprune.compress.prune(model, Plan({g.name: LayerPlan(ratio=0.5) for g in space.groups}), x, space=space)
    _assert_heads_and_mlp_halved(pruned, arch)
    assert pruned(x).logits.shape == (1, 3)


def test_a_tokenizer_style_dict_of_ids_and_padding_mask_exports_as_two_int64_inputs_and_calibrates():
    arch, model, _, _ = _setup("bert")
    rng = np.random.default_rng(4)
    lengths = rng.integers(4, TOKENS + 1, 32)
    data = {"input_ids": rng.integers(0, VOCAB, (32, TOKENS)),
            "attention_mask": (np.arange(TOKENS)[None, :] < lengths[:, None]).astype(np.int64)}
    example = {k: torch.from_numpy(v[:1]) for k, v in data.items()}
    space = autoprune.discover(model, example)
    assert sorted(g.step for g in space.groups if g.attention) == [HEAD, HEAD]
    batch = {k: v[:8] for k, v in data.items()}
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    outputs = {}
    for bits in (32, 8):
        plan = space.plan_from_params(space.params_for(0.5, bits))
        artifact = autoprune.build(model, plan, data, example, SETTINGS, space=space)
        _assert_heads_and_mlp_halved(artifact.model, arch)
        session = make_session(artifact.onnx_bytes)
        assert [(i.name, i.type) for i in session.get_inputs()] == [("input_ids", "tensor(int64)"),
                                                                    ("attention_mask", "tensor(int64)")]
        outputs[bits] = session.run(None, batch)[0]
        if bits == 32:  # the exported graph honours the padding mask as the pruned torch model does
            with torch.no_grad():
                pruned = artifact.model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
            np.testing.assert_allclose(outputs[32], pruned, rtol=1e-4, atol=1e-5)
    assert outputs[8].shape == want.shape == (8, 3)
    assert np.corrcoef(outputs[8].ravel(), outputs[32].ravel())[0, 1] > 0.95


def test_calibration_data_without_one_of_the_models_inputs_is_refused_naming_it():
    _, model, _, _ = _setup("bert")
    ids = np.random.default_rng(5).integers(0, VOCAB, (8, TOKENS))
    example = {"input_ids": torch.from_numpy(ids[:1]), "attention_mask": torch.ones(1, TOKENS, dtype=torch.int64)}
    space = autoprune.discover(model, example)
    plan = Plan({q.name: LayerPlan(bits=8) for q in space.layers})
    with pytest.raises(autoprune.exceptions.ConfigError, match=r"calibration data has no 'attention_mask'"):
        autoprune.build(model, plan, {"input_ids": ids}, example, SETTINGS, space=space)


def test_an_example_input_that_is_neither_a_tensor_nor_a_dict_of_tensors_is_refused_saying_what_it_got():
    _, model, x, _ = _setup("bert")
    with pytest.raises(autoprune.exceptions.ConfigError, match=r"^discover: example_input must be a tensor or a dict "
                       r"of tensors keyed by the forward's argument names, got list$"):
        autoprune.discover(model, [x])
