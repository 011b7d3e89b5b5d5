"""Energy meters: RAPL, NVML, hwmon power rails, and the labelled estimate fallback.

``detect_meter(provider)`` picks the first readable meter; every reading says which meter
gave it, and the estimate is always labelled ``estimated``.
"""

from .base import MIN_WINDOW_S, CounterMeter, EnergyMeter, MeterUnavailable
from .detect import METERS, Detection, detect_meter, make_meter, meter_order
from .estimate import EstimateMeter
from .hwmon import HwmonMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter
from .window import EnergyReading, timed_window

__all__ = [
    "EnergyMeter",
    "CounterMeter",
    "MeterUnavailable",
    "MIN_WINDOW_S",
    "RaplMeter",
    "NvmlMeter",
    "HwmonMeter",
    "EstimateMeter",
    "METERS",
    "make_meter",
    "detect_meter",
    "meter_order",
    "Detection",
    "EnergyReading",
    "timed_window",
]
