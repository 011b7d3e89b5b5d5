"""Where a trial's latency comes from: ``search.mode`` measure, model or hybrid.

* ``measure`` — the device's profiler times every trial (the default).
* ``model`` — the device's calibrated cost model predicts every trial
  (:class:`~autoprune.costmodel.calibrated.CalibratedProfiler`): labelled ``modelled``,
  milliseconds a trial, and no confirmation pass (a prediction repeats exactly).
* ``hybrid`` — :class:`HybridProfiler` predicts every trial, then has the device measure
  the trials worth it: those whose prediction, made ``hybrid_margin`` more optimistic, is
  not dominated by the front of the trials this worker has seen (they may land on the
  front), and those predicted with low confidence (a kernel kind the calibration never saw,
  a model outside its range). The others keep the prediction, labelled ``modelled``. Every
  measurement refines the model for the rest of the study: predictions are scaled by the
  geometric mean ratio of measured to predicted over the last :data:`REFINE_WINDOW`
  measured trials. The confirmation pass then re-measures the front, so every confirmed
  point is measured.

Accuracy always comes from the artifact. Each trial's ``measurement.device.hybrid`` says
what was decided and why.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Mapping, Sequence

import numpy as np

from ..costmodel.calibrated import CalibratedProfiler
from ..metrics import METRICS
from ..pareto import RunningFront, dominated, to_minimization
from ..profile import Profiler, make_profiler
from ..profile.base import Forecast, Measurement

__all__ = ["HybridProfiler", "mode_profiler", "REFINE_WINDOW", "MIN_PAIRS"]

REFINE_WINDOW = 25  # measured trials the correction is taken over
MIN_PAIRS = 3  # measured trials before predictions are corrected


def mode_profiler(mode: str, device, objectives: Sequence[str], profiler: Profiler | None = None, margin: float = 0.1) -> Profiler:
    """The profiler a study in ``mode`` uses on ``device`` (``profiler``: the device's own, if given).

    Raises:
        CalibrationError: ``model`` or ``hybrid`` and the device has no usable calibration.
        ValueError: an unknown mode.
    """
    measurer = make_profiler(profiler or device)
    if mode == "measure":
        return measurer
    if mode == "model":
        measurer.close()
        return CalibratedProfiler(device)
    if mode == "hybrid":
        return HybridProfiler(measurer, CalibratedProfiler(device), objectives, margin)
    raise ValueError(f"search.mode must be measure, model or hybrid, got {mode!r}")


class HybridProfiler(Profiler):
    """Predicts every candidate; measures those that may reach the front or are predicted with low confidence.

    Args:
        measurer: The device's own profiler (it times; :meth:`measure` and the confirmation pass use it).
        model: The calibrated cost model of the same device.
        objectives: The study's objectives, in order.
        margin: A candidate is measured when its predicted timings, this much lower, would
            not be dominated by the front seen so far.
    """

    measures_time = True  # what it reports for the front is measured; the confirmation pass re-measures it
    forecasts = True

    def __init__(self, measurer: Profiler, model: CalibratedProfiler, objectives: Sequence[str], margin: float = 0.1) -> None:
        super().__init__(measurer.device)
        self.measurer, self.model = measurer, model
        self.objectives = tuple(objectives)
        self.directions = [METRICS[o].direction for o in self.objectives]
        self.margin = margin
        self.front = RunningFront()  # of the candidates this worker has decided, at their reported values
        self.pairs: list[tuple[float, float]] = []  # (predicted, measured) latency of measured trials
        self.decisions = {"measured": 0, "modelled": 0}

    def measure(self, model_path: str | os.PathLike, inputs: dict[str, np.ndarray] | None = None) -> Measurement:
        """A real measurement on the device (the dense reference, sensitivity, the confirmation pass)."""
        return self.measurer.measure(model_path, inputs)

    def correction(self) -> tuple[float, str]:
        """The factor predictions are scaled by, and how it was obtained."""
        recent = self.pairs[-REFINE_WINDOW:]
        if len(recent) < MIN_PAIRS:
            return 1.0, ""
        factor = math.exp(float(np.mean([math.log(m / p) for p, m in recent])))
        return factor, f"geometric mean of measured / predicted over this study's last {len(recent)} measured trials"

    def _vector(self, m: Measurement, known: Mapping[str, float], scale: float) -> tuple[float, ...] | None:
        values = []
        for o in self.objectives:
            if METRICS[o].is_timing:
                metric = m.energy_mj if o == "energy_mj" else m.latency_ms
                if metric is None:
                    return None
                values.append(metric.value * scale)
            elif o in known:
                values.append(known[o])
            else:
                return None
        return to_minimization(values, self.directions)

    def forecast(self, model_path: str | os.PathLike) -> Forecast | None:
        """The corrected prediction :meth:`measure_candidate` starts from, with ``margin`` as its slack.

        A candidate may be timed instead of keeping its prediction, so the study's screen holds
        the prediction, ``margin`` more optimistic, to its budgets. None when the prediction has
        low confidence: such a candidate is always timed.
        """
        p = self.model.predict(model_path)
        if not p.confident:
            return None
        factor, factor_how = self.correction()
        return Forecast(self.model.to_measurement(p, factor, factor_how), self.margin)

    def measure_candidate(self, model_path: str | os.PathLike, known: Mapping[str, float]) -> Measurement:
        """Predict, decide, and measure if it is worth it.

        Args:
            model_path: The artifact.
            known: The candidate's metrics that do not depend on timing (accuracy, size), by name.
        """
        prediction = self.model.predict(model_path)
        factor, factor_how = self.correction()
        modelled = self.model.to_measurement(prediction, factor, factor_how)
        why = []
        if not prediction.confident:
            why.append("low confidence: " + "; ".join(prediction.reasons))
        optimistic = self._vector(modelled, known, 1.0 - self.margin)
        if optimistic is None:
            why.append("an objective the prediction does not give")
        elif not dominated(optimistic, self.front.points()):
            why.append(f"predicted within {self.margin:.0%} of the front")
        decision = {"predicted_ms": prediction.latency_ms, "correction": factor, "margin": self.margin}
        if why:
            result = self.measurer.measure(model_path)
            self.pairs.append((prediction.latency_ms, result.latency_ms.value))
            decision.update(decided="measured", why=why)
            self.decisions["measured"] += 1
        else:
            result = modelled
            decision.update(decided="modelled", why=[f"predicted more than {self.margin:.0%} behind the front"])
            self.decisions["modelled"] += 1
        final = self._vector(result, known, 1.0)
        if final is not None:
            self.front.add(sum(self.decisions.values()), final)  # a unique key per candidate
        return dataclasses.replace(result, device={**result.device, "hybrid": decision})

    def with_settings(self, **changes) -> "HybridProfiler":
        other = super().with_settings(**changes)
        other.measurer = self.measurer.with_settings(**changes)
        return other

    def close(self) -> None:
        self.measurer.close()
        self.model.close()

