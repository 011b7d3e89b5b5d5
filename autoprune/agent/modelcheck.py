"""Screening an uploaded ONNX model before onnxruntime sees it, with no dependency.

The upload is walked at the protobuf wire level (the ONNX schema's field numbers), so the
agent needs neither ``onnx`` nor ``protobuf``. Rejected: bytes that are not a protobuf
ModelProto, tensors stored outside the upload (``external_data`` / ``data_location``:
onnxruntime would open files next to its working directory), and operators or opsets of
domains onnxruntime does not ship (custom-op libraries are never loaded by the agent).
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["check_model_bytes", "ModelRejected", "STANDARD_DOMAINS"]

# onnxruntime's built-in domains. "com.microsoft" holds its contrib operators, which its
# own quantization tools emit (e.g. QGemm, DynamicQuantizeMatMul).
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})

_MAX_DEPTH = 32  # subgraph nesting (If/Loop/Scan bodies); deeper is not a real model


class ModelRejected(ValueError):
    """The upload is not acceptable; the message says why."""


_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# Field numbers from onnx.proto3.
_MODEL_GRAPH, _MODEL_OPSET, _MODEL_TRAINING, _MODEL_FUNCTIONS, _MODEL_IR = 7, 8, 20, 25, 1
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_SPARSE_INIT = 1, 5, 15
_NODE_OP, _NODE_ATTR, _NODE_DOMAIN = 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 8, 13, 14
_FUNC_NODE, _FUNC_OPSET, _FUNC_DOMAIN = 7, 9, 10
_OPSET_DOMAIN = 1


def _varint(buf: bytes, i: int, end: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= end:
            raise ModelRejected(f"not an ONNX model: truncated varint at byte {i}")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ModelRejected(f"not an ONNX model: varint too long at byte {i}")


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field, wire_type, a, b)``: for LEN fields ``buf[a:b]`` is the payload, for VARINT ``a`` is the value."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise ModelRejected(f"not an ONNX model: field number 0 at byte {i}")
        if wt == _VARINT:
            v, i = _varint(buf, i, end)
            yield field, wt, v, i
        elif wt == _LEN:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise ModelRejected(f"not an ONNX model: field {field} runs past the end of its message at byte {i}")
            yield field, wt, i, i + n
            i += n
        elif wt in (_I64, _I32):
            i += 8 if wt == _I64 else 4
            if i > end:
                raise ModelRejected(f"not an ONNX model: truncated fixed-size field {field}")
            yield field, wt, 0, 0
        else:
            raise ModelRejected(f"not an ONNX model: unsupported protobuf wire type {wt} at byte {i}")


def _text(buf: bytes, a: int, b: int) -> str:
    try:
        return bytes(buf[a:b]).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelRejected(f"not an ONNX model: invalid UTF-8 string at byte {a}") from None


def _domain(domain: str, where: str) -> None:
    if domain not in STANDARD_DOMAINS:
        raise ModelRejected(
            f"{where} uses operator domain {domain!r}; only onnxruntime's built-in domains "
            f"{sorted(STANDARD_DOMAINS)} are accepted (custom operators are never loaded)"
        )


def _tensor(buf: bytes, a: int, b: int, where: str) -> None:
    name = "?"
    external = False
    for f, wt, x, y in _fields(buf, a, b):
        if f == _TENSOR_NAME and wt == _LEN:
            name = _text(buf, x, y)
        elif f == _TENSOR_EXTERNAL and wt == _LEN:
            external = True
        elif f == _TENSOR_LOCATION and wt == _VARINT and x == 1:
            external = True
    if external:
        raise ModelRejected(f"tensor {name!r} ({where}) references external data; upload a model with all weights inside it")


def _sparse(buf: bytes, a: int, b: int, where: str) -> None:
    for f, wt, x, y in _fields(buf, a, b):
        if f in (1, 2) and wt == _LEN:  # values, indices
            _tensor(buf, x, y, where)


def _node(buf: bytes, a: int, b: int, depth: int) -> None:
    op, domain = "?", ""
    attrs = []
    for f, wt, x, y in _fields(buf, a, b):
        if f == _NODE_OP and wt == _LEN:
            op = _text(buf, x, y)
        elif f == _NODE_DOMAIN and wt == _LEN:
            domain = _text(buf, x, y)
        elif f == _NODE_ATTR and wt == _LEN:
            attrs.append((x, y))
    _domain(domain, f"node {op!r}")
    for x, y in attrs:
        for f, wt, p, q in _fields(buf, x, y):
            if wt != _LEN:
                continue
            if f in (_ATTR_T, _ATTR_TENSORS):
                _tensor(buf, p, q, f"attribute of node {op!r}")
            elif f in (_ATTR_SPARSE, _ATTR_SPARSES):
                _sparse(buf, p, q, f"attribute of node {op!r}")
            elif f in (_ATTR_G, _ATTR_GRAPHS):
                _graph(buf, p, q, depth + 1)


def _graph(buf: bytes, a: int, b: int, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise ModelRejected(f"subgraphs nested deeper than {_MAX_DEPTH} levels")
    for f, wt, x, y in _fields(buf, a, b):
        if wt != _LEN:
            continue
        if f == _GRAPH_NODE:
            _node(buf, x, y, depth)
        elif f == _GRAPH_INIT:
            _tensor(buf, x, y, "initializer")
        elif f == _GRAPH_SPARSE_INIT:
            _sparse(buf, x, y, "sparse initializer")


def _opset(buf: bytes, a: int, b: int, where: str) -> None:
    for f, wt, x, y in _fields(buf, a, b):
        if f == _OPSET_DOMAIN and wt == _LEN:
            _domain(_text(buf, x, y), where)


def check_model_bytes(data: bytes) -> None:
    """Raise :class:`ModelRejected` unless ``data`` is a self-contained, standard-domain ONNX model.

    This is a screen, not a full parse: onnxruntime parses the model afterwards and its
    own message is returned for anything it rejects.
    """
    if not data:
        raise ModelRejected("the model is empty (0 bytes)")
    has_graph = has_ir = False
    for f, wt, a, b in _fields(data, 0, len(data)):
        if f == _MODEL_IR and wt == _VARINT:
            has_ir = True
        elif f == _MODEL_GRAPH and wt == _LEN:
            has_graph = True
            _graph(data, a, b)
        elif f == _MODEL_OPSET and wt == _LEN:
            _opset(data, a, b, "opset_import")
        elif f == _MODEL_FUNCTIONS and wt == _LEN:
            for g, wt2, x, y in _fields(data, a, b):
                if g == _FUNC_NODE and wt2 == _LEN:
                    _node(data, x, y, 0)
                elif g == _FUNC_OPSET and wt2 == _LEN:
                    _opset(data, x, y, "function opset_import")
                elif g == _FUNC_DOMAIN and wt2 == _LEN:
                    _domain(_text(data, x, y), "model-local function")
        elif f == _MODEL_TRAINING and wt == _LEN:
            for g, wt2, x, y in _fields(data, a, b):
                if g in (1, 2) and wt2 == _LEN:  # initialization, algorithm graphs
                    _graph(data, x, y)
    if not (has_graph and has_ir):
        raise ModelRejected("not an ONNX model: no " + ("graph" if not has_graph else "ir_version") + " field")
