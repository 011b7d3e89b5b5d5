"""Baseline trials every study enqueues first, so that the front always shows them.

A label names a uniform plan: ``dense-fp32``, ``dense-int8``, ``uniform-<ratio>`` (int8) or
``uniform-<ratio>-fp32``. Each becomes one trial whose user attrs carry ``baseline: <label>``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["BASELINE_RE", "baseline_params"]

BASELINE_RE = re.compile(r"^(dense-fp32|dense-int8|uniform-(0?\.\d+)(-fp32)?)$")


def baseline_params(space, label: str) -> dict[str, Any]:
    """The Optuna params of baseline ``label`` in ``space``."""
    if label == "dense-fp32":
        return space.params_for(0.0, 32)
    if label == "dense-int8":
        return space.params_for(0.0, 8)
    parts = label.split("-")  # uniform-<ratio>[-fp32]
    return space.params_for(float(parts[1]), 32 if parts[-1] == "fp32" else 8)
