"""Unstructured and N:M sparsity: masks, determinism, untouched input, estimated stored size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoprune import discover, zoo
from autoprune.compress import export_onnx
from autoprune.compress.sparsity import sparse_size, sparsify
from autoprune.exceptions import ConfigError, PlanError
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session


@pytest.fixture(scope="module")
def resnet():
    model, x = zoo.build("resnet"), zoo.example_input("resnet")
    return model, x, discover(model, x)


def test_unstructured_zeroes_the_planned_fraction_by_magnitude(resnet):
    model, x, space = resnet
    sparse = sparsify(model, Plan({"layer1.0.conv1": LayerPlan(ratio=0.6), "fc": LayerPlan(ratio=0.3)}), space)
    w0, w = model.layer1[0].conv1.weight, sparse.layer1[0].conv1.weight
    assert float((w == 0).float().mean()) == pytest.approx(0.6, abs=1e-3)
    kept = w0.abs()[w != 0]
    assert kept.min() >= w0.abs()[w == 0].max()  # the smallest magnitudes went
    assert float((sparse.fc.weight == 0).float().mean()) == pytest.approx(0.3, abs=1e-2)
    assert torch.equal(sparse.layer1[0].conv2.weight, model.layer1[0].conv2.weight)  # not in the plan
    assert not torch.any(model.layer1[0].conv1.weight == 0), "input model untouched"


def test_two_four_keeps_at_most_two_of_every_four(resnet):
    model, x, space = resnet
    sparse = sparsify(model, Plan({"re:.*": LayerPlan(ratio=0.5)}), space, pattern="2:4")
    for name, m in sparse.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            rows = m.weight.reshape(m.weight.shape[0], -1)
            rows = rows[:, : rows.shape[1] // 4 * 4].reshape(rows.shape[0], -1, 4)
            assert int((rows != 0).sum(-1).max()) <= 2, name
    again = sparsify(model, Plan({"re:.*": LayerPlan(ratio=0.5)}), space, pattern="2:4")
    assert all(torch.equal(a, b) for a, b in zip(sparse.state_dict().values(), again.state_dict().values()))


def test_sparse_model_exports_with_the_same_shapes_and_outputs(resnet):
    model, x, space = resnet
    sparse = sparsify(model, Plan({"re:layer.*": LayerPlan(ratio=0.5)}), space)
    proto = export_onnx(sparse, x)
    s = make_session(proto.SerializeToString())
    np.testing.assert_allclose(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0], sparse(x).detach().numpy(), rtol=1e-3, atol=1e-4)
    assert len(proto.SerializeToString()) >= 0.95 * len(export_onnx(model, x).SerializeToString())  # dense bytes: no saving


def test_stored_size_is_estimated_and_shrinks_with_sparsity(resnet):
    model, x, space = resnet
    dense = sparse_size(model)
    half = sparse_size(sparsify(model, Plan({"re:.*": LayerPlan(ratio=0.5)}), space))
    nm = sparse_size(sparsify(model, Plan({"re:.*": LayerPlan(ratio=0.5)}), space, "2:4"), "2:4")
    assert dense.source == half.source == nm.source == "estimated" and half.unit == "kB"
    params_kb = sum(p.numel() for p in model.parameters()) * 4 / 1024
    assert dense.value == pytest.approx(params_kb + sum(b.numel() * b.element_size() for b in model.buffers()) / 1024)
    assert 0.5 < half.value / dense.value < 0.6  # half the values + a 1-bit mask
    assert 0.5 < nm.value / dense.value < 0.58  # half the values + 2-bit indices


def test_bad_pattern_and_unknown_layer_are_refused(resnet):
    model, x, space = resnet
    with pytest.raises(ConfigError, match="N:M"):
        sparsify(model, Plan(), space, pattern="4:2")
    with pytest.raises(PlanError, match="nothere"):
        sparsify(model, Plan({"nothere": LayerPlan(ratio=0.5)}), space)


def test_packed_size_recounts_weights_from_the_onnx_bytes(resnet):
    from autoprune.compress.sparsity import packed_size, parse_setting

    model, x, space = resnet
    numel = {q.name: model.get_submodule(q.name).weight.numel() for q in space.layers}
    four = packed_size(10**6, model, {n: 4 for n in numel}, {n: 8 for n in numel})  # int8 stand-in of 4-bit layers
    assert four.source == "estimated" and "4-bit" in four.how
    assert four.value == pytest.approx((10**6 - sum(numel.values()) / 2) / 1024)
    same = packed_size(10**6, model, {n: 8 for n in numel}, {n: 8 for n in numel})
    assert same.value == pytest.approx(10**6 / 1024)  # nothing to re-count
    setting = parse_setting("2:4")
    nm = packed_size(10**6, sparsify(model, Plan({"re:.*": LayerPlan(ratio=0.5)}), space, "2:4"), {n: 32 for n in numel}, {n: 32 for n in numel}, setting)
    # per 4 fp32 weights: 16 bytes dense -> 2 values (8 bytes) + 2 two-bit indices (0.5 byte)
    assert nm.value == pytest.approx((10**6 - sum(n // 4 * 4 * (16 - 8.5) / 4 for n in numel.values())) / 1024, rel=1e-3)


@pytest.mark.parametrize("value, expected", [("none", None), ("2:4", ("2:4", 0.5)), ("1:8", ("1:8", 0.875)), ("unstructured:0.3", ("unstructured", 0.3))])
def test_parse_setting(value, expected):
    from autoprune.compress.sparsity import parse_setting

    s = parse_setting(value)
    assert (s if s is None else (s.pattern, s.amount)) == expected
