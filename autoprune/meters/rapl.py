"""Linux powercap RAPL: cumulative ``energy_uj`` counters of the CPU package zones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import CounterMeter, MeterUnavailable

__all__ = ["RaplMeter", "DEFAULT_POWERCAP_ROOT"]

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


class RaplMeter(CounterMeter):
    """Sums the top-level RAPL zones under ``root`` (packages; or ``psys`` alone when present).

    Sub-zones (``intel-rapl:0:0`` core, ``:1`` uncore) are parts of their package and
    would be counted twice. A ``psys`` zone covers the whole platform including the
    packages, so when it exists it is used alone.

    Args:
        root: The powercap directory; tests point it at a fake tree.
    """

    name = "rapl"

    def __init__(self, root: str | os.PathLike = DEFAULT_POWERCAP_ROOT) -> None:
        super().__init__()
        self.root = Path(root)
        self._zones: list[Path] | None = None
        self._max: list[float | None] = []

    def zones(self) -> list[Path]:
        if self._zones is None:
            if not self.root.is_dir():
                raise MeterUnavailable(f"rapl: {self.root} does not exist (no powercap driver on this kernel/CPU)")
            top = sorted(p for p in self.root.iterdir() if p.name.count(":") == 1 and (p / "energy_uj").exists())
            if not top:
                raise MeterUnavailable(f"rapl: no zone with energy_uj under {self.root}")
            names = {p: _read_text(p / "name", default=p.name) for p in top}
            psys = [p for p in top if names[p] == "psys"]
            self._zones = psys or top
            self._max = [float(_read_int(p / "max_energy_range_uj")) * 1e-6 for p in self._zones]
        return self._zones

    def read(self) -> list[float]:
        return [_read_int(p / "energy_uj") * 1e-6 for p in self.zones()]

    def max_joules(self) -> list[float | None]:
        self.zones()
        return list(self._max)

    def describe(self) -> dict[str, Any]:
        zones = self.zones()
        return {
            **super().describe(),
            "zones": [f"{p.name} ({_read_text(p / 'name', default='?')})" for p in zones],
            "root": str(self.root),
        }


def _read_text(path: Path, default: str | None = None) -> str:
    try:
        return path.read_text().strip()
    except PermissionError:
        raise MeterUnavailable(
            f"rapl: permission denied reading {path} (root-only since Linux 5.10; run the agent "
            "as root or grant read access, e.g. a udev rule with MODE=0444)"
        ) from None
    except OSError as e:
        if default is not None:
            return default
        raise MeterUnavailable(f"rapl: cannot read {path}: {e.strerror or e}") from None


def _read_int(path: Path) -> int:
    text = _read_text(path)
    try:
        return int(text)
    except ValueError:
        raise MeterUnavailable(f"rapl: {path} holds {text!r}, not an integer") from None
