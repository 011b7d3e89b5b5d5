"""Every zoo architecture through the whole chain: discover -> random plan -> prune -> ONNX -> onnxruntime.

Nothing here depends on the host's speed: how much faster a pruned model runs is a timing
goal, measured in benchmarks/pruning_speedup.py, not asserted in a test.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoprune
from autoprune import zoo
from autoprune.compress import export_onnx
from autoprune.plan import LayerPlan, Plan
from autoprune.profile.timing import make_session
from autoprune.space import layer_macs

ARCHS = zoo.names()
warnings.filterwarnings("ignore", category=UserWarning)


def _plan(space, ratios) -> Plan:
    return Plan({g.name: LayerPlan(ratio=r) for g, r in zip(space.groups, ratios) if r > 0})


def _random_plan(space):
    steps = [int(round(g.max_ratio / space.ratio_step)) for g in space.groups]
    return st.tuples(*[st.integers(0, s) for s in steps]).map(lambda ks: _plan(space, [k * space.ratio_step for k in ks]))


def _ort(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = make_session(proto.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: x})[0]


_CACHE: dict[str, tuple] = {}


def _setup(arch):
    if arch not in _CACHE:
        model, x = zoo.build(arch), zoo.example_input(arch)
        _CACHE[arch] = (model, x, autoprune.discover(model, x))
    return _CACHE[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_discover_names_every_group_and_the_head(arch):
    model, x, space = _setup(arch)
    modules = dict(model.named_modules())
    assert space.groups, "every zoo model has something to prune"
    for g in space.groups:
        assert g.name in modules and g.channels > 0 and 0 < g.macs_share <= 1 and g.max_ratio == 0.75
        assert set(g.members) <= set(modules)
    assert {q.name for q in space.layers} == {n for n, m in modules.items() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))}
    head = [e for e in space.excluded if e.what == "prune"]
    assert head and "model's output" in head[0].reason  # the classifier keeps its logits


def test_transformer_heads_are_pruned_whole():
    model, x, space = _setup("transformer")
    attn = [g for g in space.groups if g.name.endswith("attn.v")]
    assert len(attn) == 2 and all(g.step == model.layers[0].attn.head_dim for g in attn)
    assert {"layers.0.attn.q", "layers.0.attn.k", "layers.0.attn.o"} <= set(attn[0].members)
    small = autoprune.compress.prune(model, Plan({"layers.0.attn.v": LayerPlan(ratio=0.3)}), x, space=space)
    # 4 heads x 32 at ratio 0.3 -> 3 heads kept, never a partial head
    assert small.layers[0].attn.q.out_features == 96 and small.layers[0].attn.o.in_features == 96


@pytest.mark.parametrize("arch", ARCHS)
def test_random_plans_compress_export_and_match_onnxruntime(arch):
    model, x, space = _setup(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xb = zoo.example_input(arch, batch=3, seed=1)
    with torch.no_grad():
        dense_shape = model(xb).shape

    @settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_random_plan(space))
    def check(plan):
        small = autoprune.compress.prune(model, plan, x, space=space)
        with torch.no_grad():
            ref = small(xb).numpy()
        assert ref.shape == tuple(dense_shape)
        proto = export_onnx(small, x)
        onnx.checker.check_model(proto, full_check=True)
        np.testing.assert_allclose(_ort(proto, xb.numpy()), ref, rtol=1e-3, atol=1e-4)

    check()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "prune must leave the input model untouched"


@pytest.mark.parametrize("arch", ["resnet", "transformer"])
def test_prune_is_deterministic(arch):
    model, x, space = _setup(arch)
    plan = space.plan_from_params(space.params_for(0.4, 32))
    a, b = (autoprune.compress.prune(model, plan, x, space=space).state_dict() for _ in range(2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_plan_writes_a_checked_qdq_model(arch, tmp_path):
    model, x, space = _setup(arch)
    plan = space.plan_from_params(space.params_for(0.25, 8))
    small = autoprune.compress.prune(model, plan, x, space=space)
    calib = zoo.example_input(arch, batch=16, seed=2).numpy()
    path = tmp_path / "m.onnx"
    autoprune.to_onnx(small, plan, x, path, calib)  # the same plan: its ratios are already applied
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    out = _ort(proto, calib[:2])
    assert out.shape[0] == 2 and np.isfinite(out).all()


def _onnx_weights(proto: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in proto.graph.initializer)


@pytest.mark.parametrize("arch", ARCHS)
def test_half_the_channels_at_least_halves_the_work(arch):
    model, x, space = _setup(arch)
    small = autoprune.compress.prune(model, space.plan_from_params(space.params_for(0.5, 32)), x, space=space)
    macs_dense, macs_small = (sum(layer_macs(m, x).values()) for m in (model, small))
    assert macs_small < 0.5 * macs_dense, f"{arch}: ratio 0.5 keeps {macs_small / macs_dense:.0%} of the MACs"
    dense, pruned = (export_onnx(m, x) for m in (model, small))
    assert _onnx_weights(pruned) < 0.5 * _onnx_weights(dense)  # the ONNX graph really is smaller
