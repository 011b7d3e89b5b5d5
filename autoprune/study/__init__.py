"""The Optuna multi-objective search over per-layer pruning ratios and bit-widths.

Names are imported on first use: reading a finished run (:mod:`~autoprune.study.records`,
:mod:`~autoprune.study.outputs`) needs optuna only, while running a study needs torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_study": "runner",
    "StudyResult": "runner",
    "open_storage": "storage",
    "StudyContext": "context",
    "CandidateResult": "candidate",
    "build": "candidate",
    "measure": "candidate",
    "front_trials": "outputs",
    "front_records": "outputs",
    "write_outputs": "outputs",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if not name.startswith("_"):  # a submodule, as an eager package would have bound it
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
