"""The kernels onnxruntime runs for a real artifact (fp32 and int8): kinds, order and work, as the runtime executes them."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from autoprune.costmodel.calibrate import kernels_of
from autoprune.costmodel.kernels import FEATURES, runtime_kernels
from autoprune.device import load_device_profile

# Channels are multiples of 16, so no CPU's blocked layout pads them: MACs are exact on any host.
CONV_MMACS = 32 * 14 * 14 * 16 * 9 / 1e6  # 3x3 conv, 16 -> 32 channels, 14x14
DW_MMACS = 32 * 14 * 14 * 9 / 1e6  # depthwise 3x3 over 32 channels
FC_MMACS = 32 * 10 / 1e6


def _feeds() -> dict[str, np.ndarray]:
    return {"input": np.zeros((1, 16, 14, 14), np.float32)}


def _op(key: str) -> tuple[str, str]:
    """``(op, variant)`` of a kernel key, domain dropped: ``nchwc.Conv/dw`` -> ``("Conv", "dw")``."""
    op, _, variant = key.rpartition(".")[2].partition("/")
    return op, variant


def test_fp32_convolutions_run_fused_with_their_exact_work(artifacts):
    kernels = runtime_kernels(artifacts[32], _feeds(), "all")
    by_variant = {_op(k.key)[1]: k for k in kernels if _op(k.key)[0] in ("Conv", "FusedConv")}
    # nchwc.Conv on x86 (blocked layout), ms.FusedConv elsewhere: BatchNorm and ReLU are folded in either way
    assert set(by_variant) == {"kxk", "dw"}, [k.key for k in kernels]
    assert not any(_op(k.key)[0] in ("BatchNormalization", "Relu") for k in kernels)
    assert by_variant["kxk"].features[1] == pytest.approx(CONV_MMACS)
    assert by_variant["dw"].features[1] == pytest.approx(DW_MMACS)
    assert all(k.features[0] == 1.0 and k.features[2] > 0 for k in by_variant.values())
    gemm = [k for k in kernels if k.key == "Gemm/w"]
    assert len(gemm) == 1 and gemm[0].features[1] == pytest.approx(FC_MMACS)
    keys = [k.key for k in kernels]
    assert keys.index(by_variant["kxk"].key) < keys.index(by_variant["dw"].key) < keys.index("Gemm/w")  # execution order


@pytest.mark.parametrize("bits", [32, 8])
def test_work_in_partial_vector_blocks_is_its_own_feature(artifacts, bits):
    """16 -> 32 channels fill whole blocks; the Linear's 10 outputs are one partial block of 16 (kernels.OUT_BLOCK)."""
    kernels = runtime_kernels(artifacts[bits], _feeds(), "all")
    names = list(FEATURES)
    tail = lambda k, f: k.features[names.index(f)]  # noqa: E731
    convs = [k for k in kernels if _op(k.key)[1] == "kxk"]
    assert len(convs) == 1 and all(tail(convs[0], f) == 0 for f in ("tail_out_mmacs", "tail_in_mmacs", "tail_out", "tail_in"))
    assert tail(convs[0], "kpositions") == pytest.approx(14 * 14 / 1e3)  # one output row per position, batch 1
    dense = [k for k in kernels if _op(k.key)[0] in ("Gemm", "QGemm", "FusedGemm")]
    assert len(dense) == 1, [k.key for k in kernels]
    assert tail(dense[0], "tail_out_mmacs") == pytest.approx(FC_MMACS) and tail(dense[0], "tail_out") == 1.0
    assert tail(dense[0], "tail_in_mmacs") == 0 and tail(dense[0], "tail_in") == 0  # 32 inputs: whole blocks of 4
    # the padded lanes at each width: the conv's 32 channels fill whole blocks, the Linear's 10 outputs pad 6 (of 16 or 8) or 22
    assert all(tail(convs[0], f"pad_out{w}_mmacs") == 0 for w in (8, 16, 32))
    assert [tail(dense[0], f"pad_out{w}_mmacs") for w in (8, 16, 32)] == pytest.approx([FC_MMACS * p / 10 for p in (6, 6, 22)])


def test_int8_convolution_runs_as_a_qlinear_kernel(artifacts):
    kernels = runtime_kernels(artifacts[8], _feeds(), "all")
    qconv = [k for k in kernels if _op(k.key) == ("QLinearConv", "kxk")]
    assert len(qconv) == 1, [k.key for k in kernels]
    assert qconv[0].features[1] == pytest.approx(CONV_MMACS)
    assert any(_op(k.key)[0] in ("QGemm", "QLinearMatMul", "MatMulInteger") for k in kernels), [k.key for k in kernels]
    # the precision its MACs are costed at (energy): int8 for the quantized kernels, fp32 for none of them here
    assert qconv[0].precision == "int8" and qconv[0].gemm[0] == "int8"
    assert all(k.precision == "fp32" for k in runtime_kernels(artifacts[32], _feeds(), "all"))


@pytest.mark.parametrize("bits", [32, 8])
def test_the_extended_level_has_the_fusions_but_no_blocked_layout(artifacts, bits):
    kernels = runtime_kernels(artifacts[bits], _feeds(), "extended")
    assert not any(k.key.startswith("nchwc.") for k in kernels)
    convs = [k for k in kernels if _op(k.key)[0] in ("Conv", "FusedConv", "QLinearConv") and _op(k.key)[1] == "kxk"]
    assert len(convs) == 1 and convs[0].features[1] == pytest.approx(CONV_MMACS)


def test_an_unknown_level_is_refused(artifacts):
    with pytest.raises(ValueError, match="graph level must be one of"):
        runtime_kernels(artifacts[32], _feeds(), "basic")


def test_a_device_profile_reads_kernels_at_its_own_settings(artifacts):
    local = load_device_profile("local-cpu")
    kernels = kernels_of(artifacts[32], local)
    assert [k.key for k in kernels] == [k.key for k in runtime_kernels(artifacts[32], _feeds(), "all")]
    agent = dataclasses.replace(local, profiler=dataclasses.replace(local.profiler, kind="agent"))
    assert not any(k.key.startswith("nchwc.") for k in kernels_of(artifacts[32], agent))  # another runtime: fusions only


def _read(tmp_path, layers, shape: tuple[int, ...], bits: int, level: str = "all"):
    """The runtime kernels of ``nn.Sequential(*layers())`` built at ``bits`` as a study builds it, on an input of ``shape``."""
    import torch
    from torch import nn

    import autoprune
    from autoprune.space import discover

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(*layers(nn)).eval()
    x = torch.zeros(*shape)
    space = discover(model, x, round_to=1)
    X = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype(np.float32)
    path = tmp_path / f"model-b{bits}.onnx"
    autoprune.to_onnx(model, space.plan_from_params(space.params_for(0.0, bits)), x, path, X, space=space)
    return path, runtime_kernels(path, {"input": np.zeros(shape, np.float32)}, level)


@pytest.mark.parametrize("bits", [32, 8])
def test_a_grouped_convolution_is_costed_per_group(tmp_path, bits):
    """24 channels in 4 groups: each group's GEMM has 6 output columns (a partial block) and its own loop over the positions."""
    _, kernels = _read(tmp_path, lambda nn: (nn.Conv2d(24, 24, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(24), nn.ReLU()),
                       (1, 24, 10, 10), bits)
    grp = [k for k in kernels if _op(k.key)[1] == "grp"]
    assert len(grp) == 1, [k.key for k in kernels]
    f = dict(zip(FEATURES, grp[0].features))
    assert f["mmacs"] == pytest.approx(24 * 100 * 6 * 9 / 1e6)
    assert f["kpositions"] == pytest.approx(4 * 100 / 1e3)  # 100 positions, once per group
    assert f["tail_out_mmacs"] == pytest.approx(f["mmacs"]) and f["tail_out"] == 1.0  # 6 of a block: all partial
    assert f["tail_in"] == 1.0  # 6 inputs per group: a whole block of 4 and a partial one
    assert f["act_in_mb"] > 0 and f["act_out_mb"] > 0


@pytest.mark.parametrize("bits", [32, 8])
def test_one_input_but_several_outputs_per_group_is_grouped_not_depthwise(tmp_path, bits):
    """8 groups of 1 input and 3 outputs (a ResNeXt group pruned to one input channel): the runtime's grouped
    path, one GEMM per group, not its depthwise kernel (measured 7x slower than a depthwise kernel's cost)."""
    _, kernels = _read(tmp_path, lambda nn: (nn.Conv2d(8, 24, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(24), nn.ReLU()),
                       (1, 8, 10, 10), bits)
    convs = [k for k in kernels if _op(k.key)[0] in ("Conv", "FusedConv", "QLinearConv")]
    assert [_op(k.key)[1] for k in convs] == ["grp"], [k.key for k in kernels]
    f = dict(zip(FEATURES, convs[0].features))
    assert convs[0].gemm[1:] == (3, 1)  # 3 outputs per group, a reduction of 1 input channel (x 9 taps)
    assert f["mmacs"] == pytest.approx(24 * 100 * 9 / 1e6)
    assert f["kpositions"] == pytest.approx(8 * 100 / 1e3)  # 100 positions, once per group


def test_a_blocked_convolution_reading_an_nchw_input_is_a_kind_of_its_own(tmp_path):
    """An image of 3 channels is fewer than any x86 vector block: onnxruntime's blocked convolution reads it as NCHW
    (MLAS's NCHW-input kernel, slower per MAC); the next convolution reads the blocked output of the first."""
    path, kernels = _read(tmp_path, lambda nn: (nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                                nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()), (1, 3, 12, 12), 32)
    convs = [k.key for k in kernels if _op(k.key)[0] in ("Conv", "FusedConv")]
    if not any(key.startswith("nchwc.") for key in convs):  # deliberate: a CPU without the blocked layout (not x86)
        pytest.skip(f"onnxruntime uses no blocked layout on this CPU: {convs}")
    assert convs == ["nchwc.Conv/kxk-nchw", "nchwc.Conv/1x1"], [k.key for k in kernels]
    extended = [k.key for k in runtime_kernels(path, {"input": np.zeros((1, 3, 12, 12), np.float32)}, "extended")]
    assert not any("nchw" in key.rpartition("/")[2] for key in extended)  # no blocked layout, no such kind


def test_the_probes_reach_the_convolutions_the_blocked_layout_refuses(tmp_path):
    """On x86, onnxruntime runs a convolution whose input channels are not a multiple of 4 without its blocked layout
    (a kind of its own, which a pruned pre-activation net runs): the probe sweep draws such counts and builds that kind."""
    from autoprune.costmodel.probes import probes

    unaligned = [p for p in itertools.islice(probes(0, kinds=("preact",)), 60) if p.example_input.shape[1] % 4]
    assert len(unaligned) >= 10  # a third of the channel counts are off every multiple of 4
    p = unaligned[0]
    cin, hw = p.example_input.shape[1], p.example_input.shape[-1]
    _, kernels = _read(tmp_path, lambda nn: list(p.module), (1, cin, hw, hw), 32)
    convs = [k.key for k in kernels if _op(k.key)[0] in ("Conv", "FusedConv")]
    _, aligned = _read(tmp_path, lambda nn: (nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, bias=False)),
                       (1, 16, hw, hw), 32)
    if not any(k.key.startswith("nchwc.") for k in aligned):  # deliberate: a CPU without the blocked layout (not x86)
        pytest.skip(f"onnxruntime uses no blocked layout on this CPU: {[k.key for k in aligned]}")
    assert len(convs) == 1 and convs[0] in ("Conv/kxk", "Conv/1x1"), [k.key for k in kernels]


@pytest.mark.parametrize("bits", [32, 8])
def test_a_weighted_kernel_reads_its_weights_once_a_run(artifacts, bits):
    """weight_mb: the bytes of a convolution's or matrix product's weights (and their bias, scales), none for other kernels."""
    kernels = runtime_kernels(artifacts[bits], _feeds(), "all")
    w = FEATURES.index("weight_mb")
    conv = [k for k in kernels if _op(k.key)[1] == "kxk"]
    assert len(conv) == 1 and conv[0].features[w] == pytest.approx(conv[0].weight_mb)
    per_weight = 4 if bits == 32 else 1  # fp32 or int8 weights; a blocked layout may pad them, never shrink them
    assert conv[0].features[w] >= 32 * 16 * 9 * per_weight / 1e6
    assert all(k.features[w] == 0.0 for k in kernels if k.gemm is None)


def test_partial_blocks_are_read_again_at_a_devices_blocks(artifacts):
    """The Linear's 10 outputs: one partial block of 16 at the default blocks, of 8 at 8-wide ones; the conv's 32 fill either."""
    from autoprune.costmodel.kernels import BLOCKS, featurize

    kernels = runtime_kernels(artifacts[32], _feeds(), "all")
    names = list(FEATURES)
    gemm = next(k for k in kernels if k.key == "Gemm/w")
    assert gemm.gemm == ("fp32", 10, 32)
    assert featurize(gemm, BLOCKS) == gemm.features  # as read
    at8 = dict(zip(names, featurize(gemm, {"fp32": (8, 4), "int8": (16, 4)})))
    assert at8["tail_out_mmacs"] == pytest.approx(FC_MMACS * 2 / 10) and at8["tail_out"] == 1.0  # 10 = 8 + a partial 2
    at32 = dict(zip(names, featurize(gemm, {"fp32": (32, 4), "int8": (16, 4)})))
    assert at32["tail_out_mmacs"] == pytest.approx(FC_MMACS) and at32["tail_out"] == 1.0
    # the padded lanes are read at every width whatever the blocks: 6 lanes at 16 and at 8 wide (10 = 8 + 2), 22 at 32
    pads = [f"pad_out{w}_mmacs" for w in (8, 16, 32)]
    assert [at8[p] for p in pads] == [at32[p] for p in pads] == pytest.approx([FC_MMACS * p / 10 for p in (6, 6, 22)])
    blocked = ("tail",)
    assert ({n: v for n, v in at8.items() if not n.startswith(blocked)}
            == {n: v for n, v in zip(names, gemm.features) if not n.startswith(blocked)})
    conv = next(k for k in kernels if _op(k.key)[1] == "kxk")
    assert featurize(conv, {"fp32": (8, 4), "int8": (8, 4)}) == conv.features  # 32 channels: whole blocks at 8 and 16
