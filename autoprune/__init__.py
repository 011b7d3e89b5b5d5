"""autoprune: hardware-aware search of per-layer pruning ratios and bit-widths.

The top level stays small and imports lazily, so that light parts (the on-device agent,
the profilers) never pull in torch or optuna. ``autoprune.build`` is the one way to turn a
plan into an artifact; ``autoprune.compress`` is the subpackage behind it (its stages).
"""

from __future__ import annotations

from ._lazy import lazy_names

__version__ = "0.1.0"

_LAZY = {
    "discover": "autoprune.space",
    "SearchSpace": "autoprune.space",
    "DiscoveryBudget": "autoprune.budget",
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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
