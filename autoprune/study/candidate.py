"""A candidate from plan to numbers: build the artifact, then evaluate and profile that same file."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from ..compress import Artifact, build_artifact
from ..evaluate import evaluate_onnx
from ..metrics import Metric
from ..plan import Plan
from ..profile import Measurement, Profiler
from .context import StudyContext

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


def build(ctx: StudyContext, plan: Plan) -> Artifact:
    """The deterministic ONNX artifact of ``plan`` (same plan, same bytes)."""
    return build_artifact(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, ctx.config.build)


def measure(ctx: StudyContext, plan: Plan, profiler: Profiler, artifact: Artifact | None = None) -> CandidateResult:
    """Build (unless given) and measure one candidate: accuracy, latency, energy, size, MACs."""
    artifact = artifact or build(ctx, plan)
    stages = dict(artifact.stage_seconds)

    t0 = time.perf_counter()
    accuracy = evaluate_onnx(artifact.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task)
    stages["evaluate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoprune-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(artifact.onnx_bytes)
        measurement = profiler.measure(path)
    stages["profile"] = time.perf_counter() - t0

    lat = measurement.latency
    metrics = {
        "accuracy": accuracy,
        "latency_ms": measurement.latency_ms,
        "latency_p90_ms": Metric(lat["p90_ms"], "ms", measurement.latency_ms.source, f"90th percentile of {lat['n']} runs"),
        "size_kb": Metric(artifact.size_bytes / 1024.0, "kB", "measured", "bytes of the ONNX artifact / 1024"),
        "macs": Metric(float(artifact.macs), "", "measured", "multiply-accumulates counted from the pruned model's layer shapes, batch 1"),
    }
    if measurement.energy_mj is not None:
        metrics["energy_mj"] = measurement.energy_mj
    return CandidateResult(plan, artifact, metrics, measurement, stages)
