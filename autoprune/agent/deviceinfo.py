"""Facts about the device the agent runs on, read from /proc and /sys where present."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .. import __version__

__all__ = ["device_info", "memory_info", "cpu_info"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_info(cpu_root: str | os.PathLike = "/sys/devices/system/cpu") -> dict[str, Any]:
    """CPU model, core count, and cpufreq governor/frequencies of cpu0 when readable."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):  # x86 / Raspberry Pi
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    freq = Path(cpu_root) / "cpu0" / "cpufreq"
    khz = {k: _read(freq / f"scaling_{k}_freq") for k in ("cur", "min", "max")}
    return {
        "model": model,
        "cores": os.cpu_count(),
        "governor": _read(freq / "scaling_governor") or "unreadable (no cpufreq in this kernel/VM)",
        "frequency_mhz": {k: int(v) / 1000 for k, v in khz.items() if v and v.isdigit()} or None,
    }


def memory_info() -> dict[str, Any]:
    """Total and available memory in MiB, from /proc/meminfo."""
    out: dict[str, Any] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key.replace("Mem", "").lower() + "_mb"] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


def device_info(meters: dict[str, Any], cpu_root: str | os.PathLike = "/sys/devices/system/cpu") -> dict[str, Any]:
    """Everything ``GET /v1/device`` answers; ``meters`` is the energy-meter detection per provider."""
    return {
        "agent_version": __version__,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info(cpu_root),
        "memory": memory_info(),
        "onnxruntime": {"version": ort.__version__, "execution_providers": ort.get_available_providers()},
        "energy_meters": meters,
    }
