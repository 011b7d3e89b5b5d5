"""Baseline trials every study enqueues first, so that the front always shows them.

A label names a uniform plan: ``dense-fp32``, ``dense-int<b>``, ``uniform-<ratio>`` (int8),
``uniform-<ratio>-fp32`` or ``uniform-<ratio>-int<b>``; ``b`` is 8 or, for a target that runs
it, 2-7 (``dense-int4``, ``uniform-0.25-int2``). Each becomes one trial whose user attrs carry
``baseline: <label>``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from .exceptions import ConfigError

__all__ = ["BASELINE_RE", "BASELINE_FORMS", "baseline_params", "baseline_bits", "check_baseline_bits"]

BASELINE_RE = re.compile(r"^(dense-(fp32|int[2-8])|uniform-(0?\.\d+)(-(fp32|int[2-7]))?)$")
BASELINE_FORMS = "dense-fp32, dense-int<b> (b in 2..8), uniform-<ratio> (int8) or uniform-<ratio>-fp32|-int<b> (b in 2..7)"


def baseline_bits(label: str) -> int:
    """The bit-width of every layer in baseline ``label`` (a label matching :data:`BASELINE_RE`)."""
    kind = label.rsplit("-", 1)[-1]
    if kind == "fp32":
        return 32
    return int(kind[3:]) if kind.startswith("int") else 8  # uniform-<ratio> is int8


def check_baseline_bits(labels: Iterable[str], bits: Iterable[int], where: str, source: str = "search.bits") -> None:
    """Refuse baselines below 8 bits that ``bits`` (the study's bit-widths) do not include.

    Args:
        labels: ``search.baselines``.
        bits: The bit-widths the study searches.
        where: The file, for messages.
        source: Where ``bits`` come from, for messages (``search.bits``, or the device's).

    Raises:
        ConfigError: naming ``search.baselines[i]``.
    """
    bits = sorted(set(bits))
    for i, label in enumerate(labels):
        b = baseline_bits(label)
        if b < 8 and b not in bits:
            raise ConfigError(
                f"{where}: search.baselines[{i}] {label!r} needs {b}-bit layers, which the study's bit-widths "
                f"({source}: {bits}) do not include"
            )


def baseline_params(space, label: str) -> dict[str, Any]:
    """The Optuna params of baseline ``label`` in ``space``.

    Raises:
        ConfigError: ``label`` is below 8 bits and no layer of ``space`` may take that bit-width.
    """
    bits = baseline_bits(label)
    if bits < 8 and not any(bits in q.bits for q in space.layers):
        raise ConfigError(
            f"search.baselines: {label!r} needs {bits}-bit layers, which this study's bit-widths do not include "
            f"(they are {sorted({b for q in space.layers for b in q.bits})})"
        )
    ratio = 0.0 if label.startswith("dense-") else float(label.split("-")[1])
    return space.params_for(ratio, bits)
