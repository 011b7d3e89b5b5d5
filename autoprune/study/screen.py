"""Screening a plan against the study's cost budgets before it is trained.

A cost model prices an artifact's graph: which kernels run, on which shapes, at which bits.
That graph follows from the plan alone (the channels kept, each layer's bits), never from the
weights fine-tuning gives it. So with a profiler that :meth:`~autoprune.profile.base.Profiler.forecast`\\ s
(``search.mode`` model or hybrid, or a modelled target such as a microcontroller), each plan
is first pruned and packaged untrained — its *twin*: same graph, activation ranges from
:data:`TWIN_CALIBRATION_SAMPLES` inputs — and the twin is priced. A plan whose forecast breaks
``constraints.latency_ms`` or ``constraints.energy_mj``, or the device's flash or SRAM, is
turned away before BatchNorm recalibration, fine-tuning, quantization and evaluation: the
trial is PRUNED, its ``fail_reason`` says what broke, and its constraint values are set, so
the sampler learns to avoid it as it does from any infeasible trial. A plan that passes goes
on to be built from the same pruned model, to the same bytes as without the screen.

The forecast is exact where the study keeps it (``model`` mode, modelled targets): the
trial's own latency is that same prediction. In ``hybrid`` mode a trial may be timed
instead, so a plan is screened only when its prediction, ``hybrid_margin`` lower, still
breaks the budget, and never on a prediction of low confidence. Accuracy is never forecast:
``max_accuracy_drop`` is checked on the built artifact, as before. The baselines
(``search.baselines``) are never screened: they are references the user asked for, measured
whatever they break. ``search.screen: false`` turns the screen off.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..compress.build import PrunedModel, artifact_from_model, prune_plan
from ..metrics import METRICS, Metric, metric_names
from ..plan import Plan
from ..profile import Forecast, Profiler
from ..threads import torch_threads
from .context import StudyContext

__all__ = ["Screening", "ScreenPolicy", "screens", "screen", "TWIN_CALIBRATION_SAMPLES"]

# Activation ranges of the twin: its graph needs ranges, not good ones.
TWIN_CALIBRATION_SAMPLES = 16


@dataclasses.dataclass(frozen=True)
class Screening:
    """A plan's screen: its pruned model (to build on), the twin's forecast and the verdict.

    Attributes:
        pruned: The plan's pruned, untrained model; the build recovers it in place.
        forecast: The profiler's forecast for the twin; None when it gave none (low confidence).
        constraints: ``{constraint name: value}`` (Optuna's convention: > 0 is broken) of the
            budgets and device limits the forecast covers.
        reason: One line naming what the plan breaks; ``""`` when it passes.
        seconds: Spent packaging and pricing the twin (pruning is the build's ``prune`` stage).
    """

    pruned: PrunedModel
    forecast: Forecast | None
    constraints: dict[str, float]
    reason: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """What the trial records under ``screen``: the verdict and the forecast's numbers."""
        m = self.forecast.measurement if self.forecast else None
        metrics = {} if m is None else {n: v.to_dict() for n, v in _timings(m).items()}
        return {
            "passed": not self.reason,
            "reason": self.reason,
            "slack": self.forecast.slack if self.forecast else None,
            "metrics": metrics,
            "limits": [lim.to_dict() for lim in m.limits] if m is not None else [],
            "constraints": dict(self.constraints),
            "seconds": round(self.seconds, 6),
        }


class ScreenPolicy:
    """Whether to screen the next plan: while the plans sampled lately break the budget often enough to pay.

    Over the last ``window`` sampled plans, each known to break the budget or not (a plan the
    screen turned away did; a built one did if its own costs break a budget or a device limit),
    with ``share`` the part that did: screen while ``share x (built trial - twin) > (1 - share) x
    twin``, median seconds of each as this worker saw them; always for the first ``first`` plans,
    and again as soon as the plans sampled break the budget more often.

    Args:
        window: Plans the share is taken over.
        first: Plans always screened, before the share means anything.
    """

    def __init__(self, window: int = 20, first: int = 5) -> None:
        self.broke: collections.deque[bool] = collections.deque(maxlen=window)
        self.twin_s: collections.deque[float] = collections.deque(maxlen=window)
        self.build_s: collections.deque[float] = collections.deque(maxlen=window)
        self.first = first

    def wanted(self) -> bool:
        """Whether the next plan is screened."""
        if len(self.broke) < self.first or not self.twin_s or not self.build_s:
            return True
        share = sum(self.broke) / len(self.broke)
        twin, built = statistics.median(self.twin_s), statistics.median(self.build_s)
        return share * max(0.0, built - twin) > (1.0 - share) * twin

    def why_not(self) -> str:
        """Why :meth:`wanted` says no, in one line (what a trial built unscreened records)."""
        return (f"not screened: {sum(self.broke)} of the last {len(self.broke)} sampled plans broke the budget, and a twin "
                f"takes {statistics.median(self.twin_s):.3g} s against {statistics.median(self.build_s):.3g} s a built trial (medians)")

    def record(self, broke: bool, twin_s: float | None = None, build_s: float | None = None) -> None:
        """One sampled plan: whether it breaks the budget, and the seconds of its twin and of its build, where it had them."""
        self.broke.append(bool(broke))
        if twin_s is not None:
            self.twin_s.append(twin_s)
        if build_s is not None:
            self.build_s.append(build_s)


def screens(ctx: StudyContext, profiler: Profiler) -> bool:
    """Whether this study screens its plans: ``search.screen``, a profiler that forecasts, and something to hold plans to."""
    budgets = any(getattr(ctx.config.constraints, n) is not None for n in metric_names(is_timing=True, budget=True))
    limits = hasattr(ctx.device.target, "limits")  # a modelled target with hard limits (flash, SRAM)
    return ctx.config.search.screen and profiler.forecasts and (budgets or limits)


def _timings(m: Any) -> dict[str, Metric]:
    return {n: v for n, v in (("latency_ms", m.latency_ms), ("energy_mj", m.energy_mj)) if v is not None}


def screen(ctx: StudyContext, plan: Plan, profiler: Profiler) -> Screening:
    """Prune ``plan``, package its untrained twin, and hold the profiler's forecast to the study's budgets.

    Raises:
        PlanError, UnsupportedLayerError, CandidateError: as the build would (the same pruning).
        ProfilerError: the profiler could not read the twin.
    """
    settings = ctx.config.build
    twin_settings = dataclasses.replace(settings, calibration_samples=min(settings.calibration_samples, TWIN_CALIBRATION_SAMPLES))
    with torch_threads(ctx.build_threads):
        pruned = prune_plan(ctx.model, plan, ctx.space, ctx.example_input, settings)
        t0 = time.perf_counter()
        twin = artifact_from_model(pruned, plan, ctx.space, ctx.task, ctx.example_input, twin_settings)
    with tempfile.TemporaryDirectory(prefix="autoprune-screen-") as tmp:
        path = Path(tmp) / "twin.onnx"
        twin.save(path)
        forecast = profiler.forecast(path)
    seconds = time.perf_counter() - t0
    if forecast is None:
        return Screening(pruned, None, {}, "", seconds)

    m, keep = forecast.measurement, 1.0 - forecast.slack
    constraints: dict[str, float] = {}
    broken = [lim.reason() for lim in m.limits if lim.excess > 0]
    parts = [f"refused by device {ctx.device.name}: " + "; ".join(broken)] if broken else []
    for lim in m.limits:
        constraints[f"device_{lim.name}"] = lim.excess
    for name, metric in _timings(m).items():
        budget = getattr(ctx.config.constraints, name, None)
        if budget is None:
            continue
        constraints[name] = metric.value - budget
        if metric.value * keep > budget:
            unit = METRICS[name].unit
            held = f"; {metric.value * keep:.4g} {unit} with hybrid_margin {forecast.slack:.0%} off" if forecast.slack else ""
            parts.append(f"{name} {metric.value:.4g} {unit} ({metric.source}{held}) exceeds constraints.{name} {budget:g} {unit}")
    reason = ""
    if parts:
        reason = "screened before training, on its untrained twin (the same graph): " + "; ".join(parts)
    return Screening(pruned, forecast, constraints, reason, seconds)
