"""The Optuna multi-objective search over per-layer pruning ratios and bit-widths.

Names are imported on first use: reading a finished run (:mod:`~autoprune.study.records`,
:mod:`~autoprune.study.outputs`) needs optuna only, while running a study needs torch.
"""

from __future__ import annotations

from .._lazy import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
