"""Simulated sub-8-bit precision: per-channel symmetric weights, calibrated activations, STE, labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autoprune import discover, zoo
from autoprune.compress.simulate import SimulationSettings, evaluate_simulated, fake_quant_weight, simulate
from autoprune.exceptions import ConfigError, PlanError
from autoprune.plan import LayerPlan, Plan

ALL_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)


class _LabelsTask:
    """Named fake: scores argmax agreement with the dense model's own predictions."""

    name = "fake"

    def score(self, outputs, y):
        return float((np.asarray(outputs).argmax(1) == y).mean())

    def loss(self, outputs, y):
        return nn.functional.cross_entropy(outputs, y)


@pytest.fixture(scope="module")
def setup():
    model, x = zoo.build("kws"), zoo.example_input("kws")
    X = zoo.example_input("kws", batch=256, seed=3).numpy()
    with torch.no_grad():
        y = model(torch.from_numpy(X)).argmax(1).numpy()
    return model, x, discover(model, x, bits=ALL_BITS), X, y


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weights_take_at_most_2_pow_bits_minus_1_levels_per_channel(bits):
    w = torch.randn(6, 5, 3)
    q = fake_quant_weight(w, bits)
    for row, qrow in zip(w, q):
        assert len(torch.unique(qrow)) <= 2**bits - 1
        assert float(qrow.abs().max()) == pytest.approx(float(row.abs().max()), rel=1e-5)  # symmetric, max kept


def _err(model, sim, X) -> float:
    """Relative logit error of the simulated model against the float one."""
    with torch.no_grad():
        ref, out = model(torch.from_numpy(X)), sim(torch.from_numpy(X))
    return float((out - ref).abs().mean() / ref.abs().mean())


def test_error_grows_as_bits_shrink_and_metrics_are_labelled_simulated(setup):
    model, x, space, X, y = setup
    err = {}
    for b in (8, 4, 2):
        sim = simulate(model, Plan({"re:.*": LayerPlan(bits=b)}), space, X, SimulationSettings(act_bits=8))
        m = evaluate_simulated(sim, X, y, _LabelsTask(), f"w{b}a8 ")
        assert m.source == "simulated" and "fake quantization" in m.how
        err[b] = _err(model, sim, X)
    assert err[8] < 0.05 and err[8] < err[4] < err[2]
    assert not any(hasattr(mod, "parametrizations") for mod in model.modules()), "input model untouched"


def test_percentile_calibration_clips_outliers_that_minmax_keeps(setup):
    model, x, space, X, y = setup
    X_out = X.copy()
    X_out[0, 0, 0] = 1e3  # one outlier sample
    plan = Plan({"features.0": LayerPlan(bits=4)})
    mm = simulate(model, plan, space, X_out, SimulationSettings(act_bits=4, calibration="minmax", calibration_batches=4))
    pc = simulate(model, plan, space, X_out, SimulationSettings(act_bits=4, calibration="percentile", percentile=99.9))
    hook = lambda m: next(iter(m.features[0]._forward_pre_hooks.values()))
    assert hook(mm).hi == pytest.approx(1e3) and hook(pc).hi < 10
    assert _err(model, pc, X[1:]) < _err(model, mm, X[1:])


def test_qat_trains_through_the_rounding_with_a_straight_through_estimator(setup):
    model, x, space, X, y = setup
    plan = Plan({"re:.*": LayerPlan(bits=2)})
    ptq = simulate(model, plan, space, X, SimulationSettings(act_bits=8))
    out = ptq(torch.from_numpy(X[:32]))
    nn.functional.cross_entropy(out, torch.from_numpy(y[:32])).backward()
    grad = ptq.features[0].parametrizations.weight.original.grad
    assert grad is not None and float(grad.abs().sum()) > 0  # STE: gradients pass the rounding
    qat = simulate(model, plan, space, X, SimulationSettings(act_bits=8, qat_steps=40, qat_lr=1e-3), task=_LabelsTask(), train_data=(X, y))
    with torch.no_grad():
        loss = {k: float(nn.functional.cross_entropy(m(torch.from_numpy(X)), torch.from_numpy(y))) for k, m in (("ptq", ptq), ("qat", qat))}
    assert loss["qat"] < loss["ptq"]  # fine-tuning through the 2-bit rounding recovers the dense model's decisions


def test_settings_and_plans_are_checked(setup):
    model, x, space, X, y = setup
    with pytest.raises(ConfigError, match="calibration"):
        SimulationSettings(calibration="mse")
    with pytest.raises(ConfigError, match="qat_steps needs the task"):
        simulate(model, Plan({"fc": LayerPlan(bits=4)}), space, X, SimulationSettings(qat_steps=5))
    with pytest.raises(PlanError, match=r"bits must be one of \[8, 32\]"):
        simulate(model, Plan({"fc": LayerPlan(bits=4)}), discover(model, x), X)


def test_act_bits_apply_to_layers_below_8_bits_and_8_bit_layers_keep_8_bit_activations(setup):
    model, x, space, X, y = setup
    low = Plan({"re:.*": LayerPlan(bits=4)})
    err = {a: _err(model, simulate(model, low, space, X, SimulationSettings(act_bits=a)), X) for a in (None, 8, 3, 2)}
    assert err[None] < err[8] < err[3] < err[2]  # measurably worse as the activations get narrower
    hooks = lambda m: [h for mod in m.modules() for h in mod._forward_pre_hooks.values()]
    assert not hooks(simulate(model, low, space, X, SimulationSettings(act_bits=None)))  # float activations: no hooks
    assert {h.bits for h in hooks(simulate(model, low, space, X, SimulationSettings(act_bits=3)))} == {3}
    # 8-bit layers take 8-bit activations whatever act_bits says (as onnxruntime's int8 kernels do)
    int8 = Plan({"re:.*": LayerPlan(bits=8)})
    a2, a8 = (simulate(model, int8, space, X, SimulationSettings(act_bits=a)) for a in (2, 8))
    assert {h.bits for h in hooks(a2)} == {8}
    with torch.no_grad():
        assert torch.equal(a2(torch.from_numpy(X)), a8(torch.from_numpy(X)))


def test_percentile_cuts_half_of_the_rest_at_each_end_as_onnxruntime_does(setup):
    model, x, space, X, y = setup
    plan = Plan({"features.0": LayerPlan(bits=4)})
    settings = SimulationSettings(act_bits=4, calibration="percentile", percentile=99.0, calibration_batches=1)
    sim = simulate(model, plan, space, X, settings)
    hook = next(iter(sim.features[0]._forward_pre_hooks.values()))
    first = torch.from_numpy(X[np.random.default_rng(0).permutation(len(X))[:64]]).flatten().numpy()
    first = first[:: max(1, first.size // 65536)]  # the same subsample the hook keeps
    lo, hi = np.percentile(first, [0.5, 99.5])
    assert hook.lo == pytest.approx(min(lo, 0.0)) and hook.hi == pytest.approx(max(hi, 0.0))
    with pytest.raises(ConfigError, match=r"percentile must be in \[50, 100\]"):
        SimulationSettings(calibration="percentile", percentile=120.0)
