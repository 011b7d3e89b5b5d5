"""What int8 costs each layer in accuracy, measured on the artifact: which layers to keep fp32.

For the unpruned model, the study's int8 build (every quantizable layer int8 where allowed)
and, per layer, the same build with only that layer kept fp32, each scored with onnxruntime
on the validation split. int8 kernels differ by CPU (on x86 without VNNI, onnxruntime's u8 x s8
products can saturate), so which layers suffer shows only on the artifact, on the device that
runs it. :meth:`autoprune.sensitivity.Sensitivity.fp32_layers` reads the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .compress.build import build_artifact
from .evaluate import evaluate_onnx
from .space import SearchSpace
from .threads import torch_threads

if TYPE_CHECKING:
    from .study.context import StudyContext

__all__ = ["int8_cost", "int8_params"]


def int8_params(space: SearchSpace) -> dict[str, Any]:
    """Every quantizable layer at 8 bits where it may be, as the dense-int8 baseline (else 32)."""
    return {f"bits:{q.name}": 8 if 8 in q.bits else 32 for q in space.layers}


def int8_cost(ctx: "StudyContext", space: SearchSpace, log: Callable[[str], None]) -> tuple[dict[str, dict[str, float]], str]:
    """Per quantizable layer: accuracy of the dense all-int8 artifact, and of it with only that layer in fp32.

    Measured with onnxruntime on the artifacts themselves (int8 kernels differ by CPU: on x86
    without VNNI, u8 x s8 products can saturate, and which layers suffer shows only here).
    """
    layers = [q for q in space.layers if 8 in q.bits and 32 in q.bits]
    if not layers:
        return {}, ""
    build, int8 = ctx.config.build, int8_params(space)  # the study's calibration: accuracy depends on it

    def accuracy(params: dict[str, Any]) -> float:
        with torch_threads(ctx.build_threads):
            art = build_artifact(ctx.model, space.plan_from_params(params), space, ctx.task, ctx.example_input, build)
        return evaluate_onnx(art, ctx.eval_X, ctx.eval_y, ctx.task).value

    base = accuracy(int8)
    out = {q.name: {"int8": base, "fp32": accuracy({**int8, f"bits:{q.name}": 32}), "macs_share": q.macs_share} for q in layers}
    best = max(out.items(), key=lambda kv: kv[1]["fp32"])
    log(f"sensitivity: bits of {len(layers)} layer(s): all int8 {base:.4f}; most sensitive {best[0]} "
        f"(fp32 alone: {best[1]['fp32']:.4f})")
    how = (f"onnxruntime on the {len(ctx.eval_y)}-sample {ctx.task.eval_description} of task {ctx.task.name}: the unpruned "
           f"model all int8 (calibrated on {build.calibration_samples} samples), and with only this layer kept fp32")
    return out, how
