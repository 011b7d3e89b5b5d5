"""Graph analysis against hand-computed MACs, weight bytes and peak activation memory."""

from __future__ import annotations

import pytest

from autoprune.costmodel.graph import analyze
from autoprune.costmodel.planned import PLANNED_BITS_KEY, read_planned_bits

from costmodel_graphs import attention_scores, conv_net, qdq_dense, residual_net


def test_conv_net_macs_weights_and_peak_memory():
    g = analyze(conv_net())
    by_name = {n.name: n for n in g.nodes}
    assert list(by_name) == ["conv", "relu", "pool", "fc"]  # Flatten is a view: no work, no step
    assert by_name["conv"].macs == 4 * 8 * 8 * (3 * 3 * 3)  # every output element sums 27 inputs
    assert by_name["fc"].macs == 2 * 4
    assert g.macs == 6912 + 8
    assert (by_name["conv"].kind, by_name["fc"].kind, by_name["relu"].kind) == ("conv", "dense", "elementwise")
    assert g.weight_bytes_by_bits == {32: (108 + 8) * 4}
    assert g.other_constant_bytes == (4 + 2) * 4  # the biases
    # float32 buffers: conv runs with input (768 B) + its output (1024 B) = 1792; relu with
    # conv output + its own (2048, the input is dead); pool 1024 + 16; fc 16 + 8.
    assert (g.peak_activation_bytes, g.peak_node) == (2048, "relu")


def test_the_batch_scales_work_and_memory():
    one, four = analyze(conv_net(), batch_size=1), analyze(conv_net(), batch_size=4)
    assert four.macs == 4 * one.macs and four.peak_activation_bytes == 4 * one.peak_activation_bytes
    assert analyze(conv_net(), input_shapes={"input": (2, 3, 8, 8)}).macs == 2 * one.macs


def test_a_residual_input_stays_live_until_its_last_reader():
    g = analyze(residual_net())
    dw = g.nodes[0]
    assert (dw.kind, dw.macs) == ("depthwise", 4 * 8 * 8 * 9)
    # each buffer is 4*8*8 floats = 1024 B; while relu and add run, x is still live (the Add reads it)
    assert g.peak_activation_bytes == 3 * 1024 and g.peak_node == "relu"


def test_matmul_of_two_activations():
    (n,) = analyze(attention_scores()).nodes
    assert (n.kind, n.macs, n.weight_bits) == ("matmul", 2 * 3 * 5 * 4, 0)


def test_quantized_weights_and_activations_are_read_at_their_stored_bits():
    g = analyze(qdq_dense())
    (fc,) = g.nodes  # the Quantize/DequantizeLinear pairs are fused: views
    assert (fc.macs, fc.weight_bits, fc.act_bits) == (64 * 32, 8, 8)
    assert g.weight_bytes_by_bits == {8: 64 * 32}
    assert g.peak_activation_bytes == 64 * 1 + 32 * 4  # the input held as uint8, the output in float


def test_planned_bits_of_a_stand_in_replace_its_int8():
    m = qdq_dense(planned=(4, 2))
    assert read_planned_bits(m) == {"fc": (4, 2)}
    g = analyze(m)
    (fc,) = g.nodes
    assert (fc.weight_bits, fc.act_bits) == (4, 2)
    assert g.weight_bytes_by_bits == {4: 64 * 32 // 2}  # packed at 4 bits
    assert g.peak_activation_bytes == 64 * 2 // 8 + 32 * 4


def test_malformed_planned_bits_are_a_clear_error():
    m = qdq_dense()
    entry = m.metadata_props.add()
    entry.key, entry.value = PLANNED_BITS_KEY, '{"fc": 4}'
    with pytest.raises(ValueError, match="autoprune.planned_bits.*malformed"):
        analyze(m)


def test_a_graph_out_of_topological_order_is_refused():
    m = conv_net()
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend([nodes[1], nodes[0], *nodes[2:]])
    with pytest.raises(ValueError, match="not topologically ordered"):
        analyze(m)
