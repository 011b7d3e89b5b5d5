"""ONNX models over protobuf's 2 GB limit: the weights in one external data file beside the graph.

A serialized ONNX model is one protobuf message, which cannot exceed 2 GiB (vit_h_14 has
2.5 GB of fp32 weights). A model whose weights exceed :data:`EXTERNAL_DATA_THRESHOLD`
is exported to a file, quantized from files and stored in ONNX's external data layout:
the graph (``.onnx``) refers to its large tensors by offset and length in one data file,
which onnxruntime and ``onnx.load`` read from the graph file's directory. Smaller models
keep one self-contained file, as before.

The data file's name comes from its content (``weights-<16 hex digits of its
sha256>.onnx.data``): the graph's bytes are fixed before the artifact is written anywhere
(so its sha256 is too), and two artifacts saved in one directory never overwrite each
other's weights. Tensors start at multiples of 4096 bytes, so that onnxruntime can map them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import onnx
from onnx.external_data_helper import set_external_data
from torch import nn

from .._schema import atomic_write_bytes

__all__ = ["EXTERNAL_DATA_THRESHOLD", "ExternalData", "weight_bytes", "param_bytes", "is_large", "serialize", "save_onnx", "write_files"]

# Weights (bytes) above which a model is stored with external data: protobuf's 2 GiB less
# 128 MiB for the graph itself. Tests lower it to send a small model down the same path.
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**27
MIN_EXTERNAL_TENSOR = 1024  # smaller tensors stay in the graph (onnx's own default)
ALIGN = 4096


@dataclasses.dataclass(frozen=True)
class ExternalData:
    """The weights of a graph stored with external data: the file name the graph refers to, and its bytes."""

    file: str
    data: bytes = dataclasses.field(repr=False)


def is_large(nbytes: int) -> bool:
    """Whether ``nbytes`` of weights go to an external data file (above :data:`EXTERNAL_DATA_THRESHOLD`)."""
    return nbytes > EXTERNAL_DATA_THRESHOLD


def param_bytes(model: nn.Module) -> int:
    """Bytes of a torch model's parameters and buffers (what its export's initializers hold, before folding)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def weight_bytes(proto: onnx.ModelProto) -> int:
    """Bytes a graph's initializers take in the graph (serialized, without copying them out)."""
    return sum(t.ByteSize() for t in proto.graph.initializer)


def serialize(proto: onnx.ModelProto) -> tuple[bytes, ExternalData | None]:
    """The graph's bytes, and its external data when its weights are large (:func:`is_large`); else None.

    Deterministic: the same graph gives the same bytes. ``proto`` is left as it was.
    """
    big = [t for t in proto.graph.initializer if len(t.raw_data) >= MIN_EXTERNAL_TENSOR] if is_large(weight_bytes(proto)) else []
    if not big:
        return proto.SerializeToString(), None
    blob, spans = bytearray(), []
    for t in big:
        blob += bytes(-len(blob) % ALIGN)
        raw = t.raw_data
        spans.append((len(blob), len(raw)))
        blob += raw
        del raw
    name = f"weights-{hashlib.sha256(blob).hexdigest()[:16]}.onnx.data"
    located = [t.HasField("data_location") for t in big]
    try:
        for t, (offset, length) in zip(big, spans):
            set_external_data(t, name, offset, length)
            t.ClearField("raw_data")
        graph = proto.SerializeToString()
    finally:  # put the weights back where they were (the caller's graph is not changed)
        for t, (offset, length), had in zip(big, spans, located):
            if not t.HasField("raw_data"):
                t.raw_data = bytes(blob[offset:offset + length])
            del t.external_data[:]
            if had:
                t.data_location = onnx.TensorProto.DEFAULT
            else:
                t.ClearField("data_location")
    return graph, ExternalData(name, bytes(blob))


def save_onnx(proto: onnx.ModelProto, path: str | os.PathLike) -> list[Path]:
    """Write ``proto`` to ``path`` (atomically), and its external data beside it when large; returns the files written."""
    graph, external = serialize(proto)
    return write_files(path, graph, external)


def write_files(path: str | os.PathLike, graph: bytes, external: ExternalData | None) -> list[Path]:
    """Write a graph's bytes to ``path`` and its external data (if any) into the same directory, each atomically."""
    path = Path(path)
    written = []
    if external is not None:  # the weights first: a graph file never refers to a file not there
        atomic_write_bytes(path.parent / external.file, external.data)
        written.append(path.parent / external.file)
    atomic_write_bytes(path, graph)
    return [path, *written]
