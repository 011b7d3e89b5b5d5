"""Linux hwmon power rails (INA3221 on Jetson boards, other power monitors), sampled and integrated."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from .base import EnergyMeter, MeterUnavailable

__all__ = ["HwmonMeter", "DEFAULT_HWMON_ROOT"]

DEFAULT_HWMON_ROOT = "/sys/class/hwmon"

# A rail with one of these labels is the board's total input: when present it is used
# alone, since the other rails (CPU, GPU, SoC) are parts of it.
_TOTAL_LABELS = ("VDD_IN", "POM_5V_IN", "VIN", "SYS_IN")


class _Rail:
    """One power reading in microwatts: ``powerN_input`` or ``inN_input`` (mV) x ``currN_input`` (mA)."""

    def __init__(self, label: str, power: Path | None = None, volts: Path | None = None, amps: Path | None = None):
        self.label, self.power, self.volts, self.amps = label, power, volts, amps

    def microwatts(self) -> float:
        if self.power is not None:
            return float(_read(self.power))
        return float(_read(self.volts)) * float(_read(self.amps))  # mV x mA = uW


class HwmonMeter(EnergyMeter):
    """Integrates power rails under ``root`` with a sampling thread (trapezoid rule).

    Args:
        root: The hwmon class directory; tests point it at a fake tree.
        rails: Labels of the rails to sum; None picks the total-input rail when one exists,
            else every rail found.
        interval_s: Sampling period. INA3221 averages over ~1-10 ms internally.
    """

    name = "hwmon"

    def __init__(self, root: str | os.PathLike = DEFAULT_HWMON_ROOT, rails: list[str] | None = None, interval_s: float = 0.01):
        self.root = Path(root)
        self.wanted = rails
        self.interval_s = interval_s
        self._rails: list[_Rail] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._joules = 0.0

    def rails(self) -> list[_Rail]:
        if self._rails is None:
            if not self.root.is_dir():
                raise MeterUnavailable(f"hwmon: {self.root} does not exist")
            found: list[_Rail] = []
            for dev in sorted(self.root.iterdir()):
                found.extend(_rails_of(dev))
            if not found:
                raise MeterUnavailable(f"hwmon: no power rail (powerN_input, or inN_input with currN_input) under {self.root}")
            if self.wanted is not None:
                chosen = [r for r in found if r.label in self.wanted]
                if len(chosen) != len(self.wanted):
                    raise MeterUnavailable(f"hwmon: rails {self.wanted} asked for, found {[r.label for r in found]}")
            else:
                total = [r for r in found if r.label.upper() in _TOTAL_LABELS]
                chosen = total[:1] or found
            self._rails = chosen
        return self._rails

    def probe(self) -> None:
        for r in self.rails():
            r.microwatts()

    def _watts(self) -> float:
        return sum(r.microwatts() for r in self.rails()) * 1e-6

    def _sample(self) -> None:
        t_prev, p_prev = time.monotonic(), self._watts()
        while True:
            stopping = self._stop.wait(self.interval_s)
            t, p = time.monotonic(), self._watts()
            self._joules += 0.5 * (p + p_prev) * (t - t_prev)
            t_prev, p_prev = t, p
            if stopping:
                return

    def start(self) -> None:
        self.rails()
        self._joules = 0.0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="hwmon-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> float:
        if self._thread is None:
            raise MeterUnavailable("hwmon: stop() called before start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        return self._joules

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rails": [r.label for r in self.rails()], "root": str(self.root), "interval_s": self.interval_s}


def _rails_of(dev: Path) -> list[_Rail]:
    rails = []
    chip = _read(dev / "name", default=dev.name)
    for f in sorted(dev.glob("power*_input")) + sorted(dev.glob("power*_average")):
        n = re.match(r"power(\d+)_", f.name).group(1)  # type: ignore[union-attr]
        if f.name.endswith("_average") and (dev / f"power{n}_input").exists():
            continue
        rails.append(_Rail(_read(dev / f"power{n}_label", default=f"{chip}/power{n}"), power=f))
    for v in sorted(dev.glob("in*_input")):
        n = re.match(r"in(\d+)_input", v.name)
        if n and (dev / f"curr{n.group(1)}_input").exists():
            i = n.group(1)
            rails.append(_Rail(_read(dev / f"in{i}_label", default=f"{chip}/in{i}"), volts=v, amps=dev / f"curr{i}_input"))
    return rails


def _read(path: Path | None, default: str | None = None) -> str:
    try:
        return path.read_text().strip()  # type: ignore[union-attr]
    except PermissionError:
        raise MeterUnavailable(f"hwmon: permission denied reading {path}") from None
    except OSError as e:
        if default is not None:
            return default
        raise MeterUnavailable(f"hwmon: cannot read {path}: {e.strerror or e}") from None
