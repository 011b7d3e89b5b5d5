"""Cost models: latency and energy computed from an artifact's graph instead of timed.

The calibrated cost model predicts a device's latency from the kernels its runtime executes
(:mod:`.kernels`), priced per kernel kind by a calibration fitted on that device's own
measurements (:mod:`.calibration`, :mod:`.probes`, :mod:`.calibrate`: ``autoprune calibrate``);
:class:`~.calibrated.CalibratedProfiler` is the profiler a study in ``search.mode: model`` or
``hybrid`` uses. See docs/costmodel.md.

:mod:`.graph` reads what a graph asks of a target (MACs per node, weight bytes by bit-width,
peak activation memory); :mod:`.targets` turns that into a target's latency, energy and hard
limits (a bit-serial accelerator, a Cortex-M class microcontroller), with parameters and
their published sources in the device profile; :class:`~.profiler.ModelledProfiler` is the
profiler kind (``bitserial``, ``mcu``) that labels every number ``modelled``.

Names load on first use: loading a device profile reads :mod:`.targets` only, without onnx.
"""

from __future__ import annotations

from .._lazy import lazy_names

_LAZY = {
    "NodeCost": "graph",
    "GraphCost": "graph",
    "analyze": "graph",
    "BitSerialTarget": "targets",
    "MicrocontrollerTarget": "targets",
    "Estimate": "targets",
    "TARGETS": "targets",
    "ModelledProfiler": "profiler",
    "Kernel": "kernels",
    "runtime_kernels": "kernels",
    "Calibration": "calibration",
    "CalibrationError": "calibration",
    "Prediction": "calibration",
    "load_calibration": "calibration",
    "CalibratedProfiler": "calibrated",
    "load_device_calibration": "calibrated",
    "PLANNED_BITS_KEY": "planned",
    "record_planned_bits": "planned",
    "read_planned_bits": "planned",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__, submodules=False)
