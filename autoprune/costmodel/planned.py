"""The planned bits of int8 stand-in layers, carried in the artifact's ONNX metadata.

A layer planned below 8 bits is built as int8 (onnxruntime has no lower kernels), so the
graph alone says 8. The build writes, for each node of such a layer, the weight and
activation bits the plan gave it, under :data:`PLANNED_BITS_KEY`; a modelled target reads
them back (:func:`read_planned_bits`) and costs the layer at the bits the target would run.
onnxruntime ignores model metadata, so the stand-in runs and measures as before. Nothing
here imports onnx at module level.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

__all__ = ["PLANNED_BITS_KEY", "record_planned_bits", "read_planned_bits"]

PLANNED_BITS_KEY = "autoprune.planned_bits"


def record_planned_bits(proto: Any, layer_nodes: Mapping[str, list[str]], standin_bits: Mapping[str, int],
                        activation_bits: int | None) -> None:
    """Write the planned bits of ``standin_bits``' layers into ``proto``'s metadata (in place).

    Args:
        proto: The built ``onnx.ModelProto``.
        layer_nodes: ``{layer: [node names]}`` (the export's layer map).
        standin_bits: ``{layer: planned bits}`` of the layers built as int8 stand-ins.
        activation_bits: Bits of the activations into those layers (None: float, stored as 32),
            as the simulation of their accuracy uses them.
    """
    act = 32 if activation_bits is None else int(activation_bits)
    entries = {node: [int(bits), act] for layer, bits in standin_bits.items() for node in layer_nodes.get(layer, [])}
    if not entries:
        return
    entry = proto.metadata_props.add()
    entry.key, entry.value = PLANNED_BITS_KEY, json.dumps(dict(sorted(entries.items())), separators=(",", ":"))


def read_planned_bits(proto: Any) -> dict[str, tuple[int, int]]:
    """``{node name: (weight bits, activation bits)}`` recorded by :func:`record_planned_bits` (empty if none).

    Raises:
        ValueError: the metadata is there but malformed.
    """
    found = [p.value for p in proto.metadata_props if p.key == PLANNED_BITS_KEY]
    if not found:
        return {}
    try:
        data = json.loads(found[0])
        return {str(node): (int(w), int(a)) for node, (w, a) in data.items()}
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"model metadata {PLANNED_BITS_KEY!r} is malformed: {e}") from None
