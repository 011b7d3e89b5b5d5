"""autoprune: hardware-aware search of per-layer pruning ratios and bit-widths.

The top level stays small and imports lazily, so that light parts (the on-device agent,
the profilers) never pull in torch or optuna. ``autoprune.build`` is the one way to turn a
plan into an artifact; ``autoprune.compress`` is the subpackage behind it (its stages).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "discover": "autoprune.space",
    "SearchSpace": "autoprune.space",
    "Plan": "autoprune.plan",
    "build": "autoprune.compress.entry",
    "BuildSettings": "autoprune.compress",
    "Artifact": "autoprune.compress",
    "to_onnx": "autoprune.compress",
    "StudyConfig": "autoprune.config",
    "run_study": "autoprune.study",
    "DeviceProfile": "autoprune.device",
    "load_device_profile": "autoprune.device",
    "Profiler": "autoprune.profile",
    "Measurement": "autoprune.profile",
    "Metric": "autoprune.metrics",
    "AutopruneError": "autoprune.exceptions",
    "UnsupportedLayerError": "autoprune.exceptions",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if not name.startswith("_"):  # a subpackage or module: autoprune.compress, autoprune.tasks, ...
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'autoprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
