"""The kernels a runtime executes for an artifact: onnxruntime's optimized graph, with real shapes.

A latency model fitted on the exported graph would miss what the runtime does to it:
Conv + BatchNorm + ReLU run as one fused kernel, QDQ pairs become ``QLinearConv``, residual
adds fold into the convolution before them, and on x86 the fp32 convolutions run in a
blocked channel layout (``com.microsoft.nchwc``) whose channel counts are padded to the
vector block. So the graph is read **as the runtime executes it**: an onnxruntime session
writes its optimized model (``SessionOptions.optimized_model_filepath``) at the level the
profiler's sessions use, and every tensor's real shape comes from running that graph once
with all intermediate tensors as outputs (onnx's shape inference does not know the
runtime's own ops). Padded channels and layouts are therefore in the shapes.

Each executed node becomes a :class:`Kernel`: a key naming the kernel kind (op, domain
and variant: ``nchwc.Conv/dw``, ``ms.QLinearConv/1x1``, ``Gemm/w``, ``ms.QLinearAdd``) and
features that its cost is linear in (a launch, MMACs, MB of activations in and out, ...).
Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnxruntime as ort

__all__ = ["Kernel", "FEATURES", "PAD_WIDTHS", "Blocks", "BLOCKS", "BLOCK_CHOICES", "LEVELS", "featurize", "runtime_kernels", "family"]

# Features of one kernel, each cost-linear: a launch, work, activation traffic (read and written
# apart: an int8 kernel requantizes every output), and the work that falls outside the CPU kernels'
# vector blocks. A convolution or matrix product whose output channels (per group) are not a
# multiple of the output block, or whose reduction (input channels per group) is not a multiple of
# the reduction block, runs its last partial block on a slower path: ``tail_out_mmacs`` and
# ``tail_in_mmacs`` are the MACs of those partial blocks, ``tail_out`` and ``tail_in`` are 1 when
# there is one. Pruning with ``round_to: 1`` lands on such counts; a model that keeps them aligned
# runs faster per MAC. The blocks are the device's own (x86 int8 GEMMs pack 16 outputs and 4-byte
# reductions; fp32 ones two vector registers of floats, 16 with AVX2 and 32 with AVX-512; an ARM
# core's are others): :data:`BLOCKS` are the defaults a kernel is read with, and a calibration
# chooses its device's among :data:`BLOCK_CHOICES` on held-out error (:func:`featurize` re-reads the
# tails with them). ``kpositions``: a convolution's output positions (thousands), each a row of its
# im2col/GEMM loop with a cost of its own; a grouped convolution runs one such loop per group, so
# its rows count once per group. Each feature was chosen on held-out error of a 2,000-model
# calibration timed once (benchmarks/costmodel.py --dump; docs/costmodel.md). ``weight_mb``: the MB
# of a convolution's or matrix product's weights, read once a run whatever its positions, so a
# wide layer at a small spatial size (few rows to spread them over) pays for them.
# ``pad_out{8,16,32}_mmacs``: the MACs of the output lanes a GEMM pads when it computes whole blocks
# of that many outputs (``width - out_ch % width`` channels of the layer's MACs per channel), so
# pruning a layer a few channels past a block boundary costs up to a block of work it does not keep.
# The tail features cannot say this: with non-negative coefficients, a partial block's cost can only
# grow with the channels in it, and its padding shrinks as they do. All three widths are features,
# and each kernel kind's fit weighs them: one device runs its kinds at different widths (on an
# AVX-512 host, the fp32 convolutions pad to 32 and the int8 ones to 16 or 8, and in onnxruntime's
# profiler an int8 convolution with 8 outputs ran twice as long as one with 24 outputs and 8 inputs, the same MACs).
# Version 5 read one width, the device's chosen block; reading the three took a 2,000-model AMD
# EPYC AVX-512 calibration's 5-fold held-out share within +/-10 % on its zoo plans from 96.7 % to
# 98.4 % (MAPE 2.9 % to 2.8 %), and a width of 64 or the reduction's padding added nothing.
FEATURES = ("launch", "mmacs", "act_in_mb", "tail_out_mmacs", "tail_in_mmacs", "tail_out", "tail_in", "kpositions",
            "act_out_mb", "weight_mb", "pad_out8_mmacs", "pad_out16_mmacs", "pad_out32_mmacs")
PAD_WIDTHS = (8, 16, 32)  # the output widths whose padded lanes are features (``pad_out{w}_mmacs``)
Blocks = Mapping[str, tuple[int, int]]  # {"fp32" | "int8": (output block, reduction block)}
BLOCKS: dict[str, tuple[int, int]] = {"fp32": (16, 4), "int8": (16, 4)}
BLOCK_CHOICES: dict[str, tuple[tuple[int, int], ...]] = {"fp32": ((8, 4), (16, 4), (32, 4)), "int8": ((8, 4), (16, 4), (32, 4))}
_TAILS = slice(3, 7)  # tail_out_mmacs, tail_in_mmacs, tail_out, tail_in


LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,  # what this machine's sessions run (layouts included)
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,  # fusions every CPU build applies
}

_DOMAINS = {"": "", "ai.onnx": "", "com.microsoft": "ms.", "com.microsoft.nchwc": "nchwc."}
_CONV = frozenset({"Conv", "FusedConv", "QLinearConv", "ConvInteger", "ConvTranspose", "NhwcFusedConv"})
_MATMUL = frozenset({"Gemm", "MatMul", "QGemm", "QLinearMatMul", "MatMulInteger", "FusedMatMul", "FusedGemm",
                     "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits"})
# Kernels that multiply 8-bit integers (onnxruntime's quantized ops, after fusion).
_INT8 = frozenset({"QLinearConv", "ConvInteger", "QGemm", "QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul",
                   "MatMulIntegerToFloat", "QAttention"})
# Nodes that move no data at run time.
_FREE = frozenset({"Identity", "Constant", "Shape", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One executed node: its kind and the features its cost is linear in.

    Attributes:
        key: Kernel kind, e.g. ``nchwc.Conv/3x3`` or ``ms.QLinearConv/dw``.
        name: The node's name in the optimized graph.
        features: Values of :data:`FEATURES` (1, MMACs, MB of activations read, the MMACs and
            counts of partial vector blocks, thousands of output positions (per group), MB written,
            MB of weights of a convolution or matrix product, MMACs of the padded output lanes at
            each of :data:`PAD_WIDTHS`).
        weight_mb: MB of constants it reads (weights, biases, quantization parameters, of any
            kernel): for the energy model (:mod:`.energy`).
        gemm: For a convolution or matrix product with a weight: its precision and the GEMM
            dimensions its partial blocks depend on (:func:`featurize` re-reads them).
        precision: ``int8`` for a kernel that multiplies 8-bit integers (onnxruntime's quantized
            ops), else ``fp32``: what its MACs cost in energy (:mod:`.energy`).
    """

    key: str
    name: str
    features: tuple[float, ...]
    weight_mb: float = 0.0
    gemm: tuple[str, int, int] | None = None  # ("fp32" | "int8", output channels per group, reduction per output)
    precision: str = "fp32"

    @property
    def act_mb(self) -> float:
        """MB of activations read and written."""
        return self.features[FEATURES.index("act_in_mb")] + self.features[FEATURES.index("act_out_mb")]


def _tails(macs: float, out_ch: int, in_ch: int, blocks: tuple[int, int]) -> tuple[float, float, float, float]:
    out_block, in_block = blocks
    tail_out = (out_ch % out_block) / out_ch if out_ch else 0.0  # share of the MACs in a partial block
    tail_in = (in_ch % in_block) / in_ch if in_ch else 0.0
    return macs * tail_out / 1e6, macs * tail_in / 1e6, float(tail_out > 0), float(tail_in > 0)


def _pad_out(macs: float, out_ch: int, width: int) -> float:
    """MMACs of the output lanes padding the last partial block of ``width`` outputs (none when the channels fill whole blocks)."""
    return macs / out_ch * (-out_ch % width) / 1e6 if out_ch else 0.0


def featurize(kernel: Kernel, blocks: Blocks) -> tuple[float, ...]:
    """``kernel``'s features with its partial blocks read at ``blocks`` (a kernel is read at :data:`BLOCKS`; its padded
    lanes are read at every one of :data:`PAD_WIDTHS` whatever the blocks)."""
    if kernel.gemm is None:
        return kernel.features
    precision, out_ch, in_ch = kernel.gemm
    f = list(kernel.features)
    f[_TAILS] = _tails(f[1] * 1e6, out_ch, in_ch, tuple(blocks[precision]))
    return tuple(f)


def family(key: str) -> str:
    """The coarse kind of a kernel key: ``conv``, ``dw``, ``dense`` or ``other`` (for falling back)."""
    op, _, variant = key.rpartition(".")[2].partition("/")
    if op in _CONV:
        return "dw" if variant == "dw" else "conv"
    if op in _MATMUL:
        return "dense"
    return "other"


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def optimized_graph(model: str | os.PathLike | bytes, level: str, threads: int = 1,
                    provider: str = "CPUExecutionProvider") -> onnx.ModelProto:
    """The graph an onnxruntime session at ``level`` executes for ``model`` (a path or ONNX bytes)."""
    if level not in LEVELS:
        raise ValueError(f"graph level must be one of {sorted(LEVELS)}, got {level!r}")
    with tempfile.TemporaryDirectory(prefix="autoprune-graph-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = LEVELS[level]
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        src = model if isinstance(model, bytes) else str(model)
        ort.InferenceSession(src, so, providers=[provider])
        return onnx.load(so.optimized_model_filepath)


def _shapes(graph: onnx.ModelProto, feeds: Mapping[str, np.ndarray], provider: str) -> dict[str, tuple[tuple[int, ...], int]]:
    """``{tensor: (shape, bytes per element)}`` of every tensor, from one run of ``graph`` with every tensor an output."""
    g = onnx.ModelProto()
    g.CopyFrom(graph)
    have = {o.name for o in g.graph.output}
    for node in g.graph.node:
        for out in node.output:
            if out and out not in have:
                g.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimized
    so.log_severity_level = 3
    session = ort.InferenceSession(g.SerializeToString(), so, providers=[provider])
    names = [o.name for o in session.get_outputs()]
    out = {name: (tuple(v.shape), v.dtype.itemsize) for name, v in zip(names, session.run(None, dict(feeds)))}
    out.update({name: (tuple(v.shape), v.dtype.itemsize) for name, v in feeds.items()})
    for t in g.graph.initializer:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        out[t.name] = (tuple(t.dims), np.dtype(dtype).itemsize)
    return out


def _kernel(node: onnx.NodeProto, shapes: dict, constants: set[str], blocked: set[str]) -> Kernel | None:
    op = node.op_type
    if op in _FREE:
        return None
    acts = [i for i in node.input if i and i not in constants and i in shapes]
    nbytes = lambda name: math.prod(shapes[name][0]) * shapes[name][1]  # noqa: E731
    in_bytes, out_bytes = sum(nbytes(i) for i in acts), sum(nbytes(o) for o in node.output if o in shapes)
    macs, variant = 0, ""
    weights = [shapes[i][0] for i in node.input if i in constants and i in shapes]
    weight = max(weights, key=math.prod, default=())  # the weight, not a scale or zero point
    out_ch = in_ch = 0  # output channels and reduction length per output, for the tail features
    positions = 0  # a convolution's output positions (batch x spatial)
    first = acts[0] if acts else None
    out = node.output[0]
    if op in _CONV and first and out in shapes:
        x = shapes[first][0]
        channels_last = _attr(node, "channels_last", 0) or op == "NhwcFusedConv"
        cin = x[-1] if channels_last else x[1]
        group = int(_attr(node, "group", 1))
        kernel = [int(k) for k in _attr(node, "kernel_shape", [])] or [1]
        per_out = max(1.0, cin / group) * math.prod(kernel)
        macs = math.prod(shapes[out][0]) * per_out if op != "ConvTranspose" else math.prod(x) * per_out
        # Depthwise: one input and one output channel per group (onnxruntime's and MLAS's own test). A grouped
        # convolution with one input but several outputs per group (a channel multiplier: a ResNeXt group
        # pruned to one input channel) runs the grouped path, one small GEMM per group, many times slower.
        multiplier = len(weight) >= 2 and int(weight[0]) > group
        if group > 1 and cin / group <= 1.5 and not multiplier:
            variant = "dw"
        elif group > 1:
            variant = "grp"
        else:
            variant = "1x1" if math.prod(kernel) == 1 else "kxk"
            if node.domain == "com.microsoft.nchwc" and first not in blocked:
                # A blocked-layout convolution reading a plain NCHW tensor: onnxruntime does this when the input
                # has fewer channels than the vector block (an image, or a layer pruned below it), and MLAS then
                # runs its NCHW-input kernel, several times slower per MAC than the blocked one.
                variant += "-nchw"
        if len(weight) >= 2:  # (out, in per group, *kernel); a depthwise conv reduces over its kernel only
            out_ch, in_ch = int(weight[0]), (0 if variant == "dw" else int(weight[1]))
            if variant == "grp":  # one GEMM per group: its blocks are of the group's output channels
                out_ch //= group
        y = shapes[out][0]
        positions = math.prod(y) // max(1, y[-1] if channels_last else y[1])
        if variant == "grp":
            positions *= group
    elif op in _MATMUL and first and out in shapes:
        a = shapes[first][0]
        k = a[0] if (op in ("Gemm", "QGemm", "FusedGemm") and _attr(node, "transA", 0)) else a[-1]
        macs = math.prod(shapes[out][0]) * k
        variant = "w" if len(acts) == 1 else "act"  # a weight, or two activations (attention scores)
        if variant == "w" and len(weight) == 2:  # MatMul's B is (K, N); Gemm's is (N, K) when transB
            n_, k_ = weight[::-1] if not (op in ("Gemm", "QGemm", "FusedGemm") and _attr(node, "transB", 0)) else weight
            out_ch, in_ch = int(n_), int(k_)
    key = _DOMAINS.get(node.domain, node.domain + ".") + op + (f"/{variant}" if variant else "")
    weight_bytes = sum(nbytes(i) for i in node.input if i in constants and i in shapes)
    precision = "int8" if op in _INT8 else "fp32"
    gemm = (precision, out_ch, in_ch) if (out_ch or in_ch) else None
    features = (1.0, macs / 1e6, in_bytes / 1e6, *_tails(macs, out_ch, in_ch, BLOCKS[precision]), positions / 1e3,
                out_bytes / 1e6, weight_bytes / 1e6 if gemm else 0.0, *(_pad_out(macs, out_ch, w) for w in PAD_WIDTHS))
    return Kernel(key, node.name or op, features, weight_bytes / 1e6, gemm, precision)


def runtime_kernels(model: str | os.PathLike | bytes, feeds: Mapping[str, np.ndarray], level: str = "all",
                    threads: int = 1, provider: str = "CPUExecutionProvider") -> list[Kernel]:
    """The kernels onnxruntime runs for ``model`` on ``feeds``, in execution order.

    Args:
        model: An ONNX path or bytes.
        feeds: One input per graph input (values do not matter, shapes do).
        level: ``all`` (this machine's sessions: fusions and layouts) or ``extended``
            (fusions only: for a device whose runtime is not this machine's).
        threads: Intra-op threads of the session that optimizes (some fusions depend on it).
        provider: The execution provider.
    """
    graph = optimized_graph(model, level, threads, provider)
    shapes = _shapes(graph, feeds, provider)
    constants = {t.name for t in graph.graph.initializer}  # what is left in the graph runs every time
    # tensors in the blocked layout: made by a blocked-layout node, except the one that turns them back to NCHW
    blocked = {out for node in graph.graph.node if node.domain == "com.microsoft.nchwc" and node.op_type != "ReorderOutput"
               for out in node.output}
    kernels = []
    for node in graph.graph.node:
        k = _kernel(node, shapes, constants, blocked)
        if k is not None:
            kernels.append(k)
    return kernels
