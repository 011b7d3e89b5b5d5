"""A candidate from plan to numbers: build the artifact, then evaluate and profile that same file.

Plans whose bit-widths all run here (8, 16, 32) are measured on the artifact alone. A plan
with layers below 8 bits is built as its int8 stand-in: latency (and energy) are measured
on the stand-in and their ``how`` says so (a modelled target instead costs those layers at their
planned bits, which the artifact's metadata carries: no stand-in note), accuracy is ``simulated`` in torch
(:mod:`autoprune.compress.simulate`), and ``size_kb`` is ``estimated`` with packed b-bit
weights. With ``build.sparsity``, ``size_kb`` is the ``estimated`` sparse stored size. In
both cases the artifact's own bytes stay available as ``onnx_size_kb`` (``measured``).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from ..compress import Artifact, BuildSettings, build_artifact
from ..compress.build import PrunedModel
from ..compress.simulate import SimulationSettings, evaluate_simulated, simulate
from ..compress.sparsity import packed_size, parse_setting
from ..evaluate import evaluate_onnx
from ..metrics import Metric, metric_names
from ..plan import Plan
from ..profile import Measurement, Profiler
from ..threads import torch_threads
from .context import StudyContext
from .hybrid import HybridProfiler
from .workers import measure_lock

__all__ = ["CandidateResult", "build", "measure"]


@dataclasses.dataclass(frozen=True)
class CandidateResult:
    """A built and measured candidate: the artifact and every metric, each saying how it was obtained."""

    plan: Plan
    artifact: Artifact
    metrics: dict[str, Metric]
    measurement: Measurement
    stage_seconds: dict[str, float]

    def user_attrs(self) -> dict[str, Any]:
        return {
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "measurement": self.measurement.to_dict(),
            "plan": self.plan.to_dict()["layers"],
            "sha256": self.artifact.sha256,
            "size_bytes": self.artifact.size_bytes,
            "channels": {k: list(v) for k, v in self.artifact.channels.items()},
            "stage_seconds": {k: round(v, 6) for k, v in self.stage_seconds.items()},
        }


def build(ctx: StudyContext, plan: Plan, settings: BuildSettings | None = None, pruned: PrunedModel | None = None) -> Artifact:
    """The deterministic ONNX artifact of ``plan`` (same plan, same bytes), built on the study's torch thread count.

    ``pruned``: the plan's pruned model, made already by the screen (:mod:`.screen`); recovered in place.
    """
    with torch_threads(ctx.build_threads):
        return build_artifact(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, settings or ctx.config.build, pruned)


def _by_bits(layers: dict[str, int]) -> str:
    """``{"conv2": 4, "fc": 2}`` -> ``"4-bit layers (conv2) and 2-bit layers (fc)"``."""
    groups = {}
    for name, b in layers.items():
        groups.setdefault(b, []).append(name)
    return " and ".join(f"{b}-bit layers ({', '.join(names)})" for b, names in sorted(groups.items(), reverse=True))


def _simulation_settings(b: BuildSettings, n_calib: int) -> SimulationSettings:
    return SimulationSettings(
        act_bits=b.activation_bits, calibration=b.calibration, percentile=b.calibration_percentile,
        calibration_batches=-(-n_calib // 64), qat_steps=b.qat_steps, qat_lr=b.finetune_lr, seed=b.seed,
    )


def _activations_how(settings: SimulationSettings, has_int8: bool, n_calib: int) -> str:
    """What the simulation did to activations, e.g. ``"4-bit activations into the layers below 8 bits, ..."``."""
    text = "float activations" if settings.act_bits is None else f"{settings.act_bits}-bit activations"
    if has_int8 and settings.act_bits != 8:
        text += " into the layers below 8 bits, 8-bit into the 8-bit layers"
    if settings.act_bits is None and not has_int8:
        return text  # nothing calibrated
    ranges = "min-max ranges" if settings.calibration == "minmax" else f"percentile ranges ({settings.percentile:g} % of values kept)"
    return f"{text} with {ranges} from {n_calib} training inputs"


def simulated_accuracy(ctx: StudyContext, plan: Plan, artifact: Artifact) -> tuple[Metric, float]:
    """Accuracy of ``plan`` fake-quantized in torch from the artifact's float model; and the seconds spent calibrating/QAT.

    Activation bits and calibration come from the study's ``build`` section; the ranges are
    calibrated on the same training inputs as the int8 artifact's.
    """
    b = ctx.config.build
    t0 = time.perf_counter()
    X, y = ctx.task.train_data()
    calib = b.calibration_inputs(X)
    settings = _simulation_settings(b, len(calib))
    sim = simulate(artifact.model, plan, ctx.space, calib, settings, task=ctx.task, train_data=(X, y))
    seconds = time.perf_counter() - t0
    has_int8 = 8 in ctx.space.resolve_bits(plan).values()
    label = (f"of {_by_bits(artifact.standin_bits)}, other layers as planned (weights per-channel symmetric, "
             f"{_activations_how(settings, has_int8, len(calib))}, {b.qat_steps} QAT steps) ")
    return evaluate_simulated(sim, ctx.eval_X, ctx.eval_y, ctx.task, label), seconds


def standin_note(m: Metric, standin: dict[str, int]) -> Metric:
    """``m`` with its ``how`` saying it was measured on the int8 stand-in of the low-bit layers."""
    return dataclasses.replace(m, how=f"{m.how}; measured on the int8 stand-in of {_by_bits(standin)}")


def _p90(m: Measurement) -> Metric:
    if m.latency_ms.source == "modelled":
        return Metric(m.latency["p90_ms"], "ms", "modelled", f"a model has no run-to-run spread: the modelled latency ({m.latency_ms.how})")
    return Metric(m.latency["p90_ms"], "ms", m.latency_ms.source, f"90th percentile of {m.latency['n']} runs")


def measure(ctx: StudyContext, plan: Plan, profiler: Profiler, artifact: Artifact | None = None,
            pruned: PrunedModel | None = None) -> CandidateResult:
    """Build (unless given, from ``pruned`` if given) and measure one candidate: accuracy, latency, energy, size, MACs."""
    artifact = artifact or build(ctx, plan, pruned=pruned)
    stages = dict(artifact.stage_seconds)
    standin = artifact.standin_bits

    t0 = time.perf_counter()
    if standin:
        accuracy, stages["simulate"] = simulated_accuracy(ctx, plan, artifact)
    else:
        accuracy = evaluate_onnx(artifact, ctx.eval_X, ctx.eval_y, ctx.task)
    stages["evaluate"] = time.perf_counter() - t0 - stages.get("simulate", 0.0)

    onnx_size = Metric(artifact.size_bytes / 1024.0, "kB", "measured", "bytes of the ONNX artifact / 1024")
    metrics = {
        "accuracy": accuracy,
        "size_kb": onnx_size,
        "macs": Metric(float(artifact.macs), "", "measured", "multiply-accumulates counted from the pruned model's layer shapes, batch 1"),
    }
    sparsity = parse_setting(ctx.config.build.sparsity)
    if standin or sparsity is not None:  # the target stores something other than the ONNX file
        bits = ctx.space.resolve_bits(plan)
        artifact_bits = {name: 8 if name in standin else b for name, b in bits.items()}
        metrics["size_kb"] = packed_size(artifact.size_bytes, artifact.model, bits, artifact_bits, sparsity)
        metrics["onnx_size_kb"] = onnx_size

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoprune-") as tmp:
        path = Path(tmp) / "model.onnx"
        artifact.save(path)  # with its external data file, for a model over 2 GB
        with measure_lock(ctx.device.profiler.kind):  # other workers on this machine build meanwhile
            if isinstance(profiler, HybridProfiler):  # predicts, then measures if the candidate may reach the front
                measurement = profiler.measure_candidate(path, {k: m.value for k, m in metrics.items()})
            else:
                measurement = profiler.measure(path)
    stages["profile"] = time.perf_counter() - t0

    metrics["latency_ms"] = measurement.latency_ms
    metrics["latency_p90_ms"] = _p90(measurement)
    if measurement.energy_mj is not None:
        metrics["energy_mj"] = measurement.energy_mj
    # a modelled target (bitserial, mcu) costs the planned bits; a timed or calibrated latency is the stand-in's
    planned = measurement.latency_ms.source == "modelled" and ctx.device.target is not None
    if standin and not planned:
        for name in metric_names(is_timing=True):
            if name in metrics:
                metrics[name] = standin_note(metrics[name], standin)
    return CandidateResult(plan, artifact, metrics, measurement, stages)
