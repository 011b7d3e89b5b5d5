"""How a plan becomes an artifact, as data: :class:`BuildSettings` and the values its fields take.

Reading a study YAML validates these without importing torch or onnxruntime's quantizer
(:mod:`autoprune.config` imports this module only); the stages that use them live beside it
(:mod:`~autoprune.compress.build`, :mod:`~autoprune.compress.quantize`, :mod:`~autoprune.compress.sparsity`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np

from ..exceptions import ConfigError

__all__ = ["BuildSettings", "CALIBRATION_METHODS", "SETTING_FORMS", "SparsitySetting", "parse_setting", "parse_pattern"]

# How activation ranges are found (see autoprune.compress.quantize.Calibration).
CALIBRATION_METHODS = ("minmax", "percentile")


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """How a plan is turned into an artifact; recorded in every exported plan.

    Args:
        importance: Channel importance criterion.
        bn_batches: Batches for adaptive BatchNorm recalibration (0 disables it).
        finetune_steps: Fine-tuning steps after pruning (0 disables it).
        finetune_lr: Fine-tuning learning rate (1/10-1/100 of the original).
        calibration_samples: Training inputs used to calibrate activation ranges (the int8
            artifact's and the simulation's: the same inputs).
        seed: Seed for batch selection.
        sparsity: ``"none"``, ``"unstructured:<ratio>"`` or ``"N:M"``: weights zeroed in every
            searched layer after channel pruning (see :func:`parse_setting`).
        qat_steps: Quantization-aware fine-tuning steps (straight-through estimator) in the
            torch simulation of plans with layers below 8 bits; int8 artifacts are unaffected.
        activation_bits: Bit-width of the activations into layers below 8 bits, in the
            simulation (2-16; None leaves them in float). 8-bit layers always take 8-bit
            activations, as the int8 artifact runs them.
        calibration: How activation ranges are found, for the int8 artifact (onnxruntime)
            and the simulation alike: ``"minmax"`` or ``"percentile"``.
        calibration_percentile: For ``percentile``: the share of values kept inside the
            range, ``(100 - it) / 2`` % cut at each end (onnxruntime's convention).
    """

    importance: str = "magnitude"
    bn_batches: int = 8
    finetune_steps: int = 0
    finetune_lr: float = 3e-4
    calibration_samples: int = 256
    seed: int = 0
    sparsity: str = "none"
    qat_steps: int = 0
    activation_bits: int | None = 8
    calibration: str = "minmax"
    calibration_percentile: float = 99.99

    def calibration_inputs(self, X: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """The ``calibration_samples`` training inputs both the artifact and the simulation calibrate on.

        ``X`` is an array of inputs or a dict of them keyed by the model's input names (the same
        samples are drawn from each); the result has the same form and dtypes.
        """
        if isinstance(X, Mapping):
            order = np.random.default_rng(self.seed).permutation(len(next(iter(X.values()))))[: self.calibration_samples]
            return {k: v[order] for k, v in X.items()}
        return X[np.random.default_rng(self.seed).permutation(len(X))[: self.calibration_samples]]


SETTING_FORMS = "'none', 'unstructured:<ratio>' with ratio in (0, 0.99], or 'N:M' with 0 < N < M (e.g. '2:4')"


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """``"unstructured"`` -> None; ``"2:4"`` -> (2, 4): keep N of every M consecutive input weights."""
    if pattern == "unstructured":
        return None
    m = re.fullmatch(r"(\d+):(\d+)", pattern)
    if not m or not 0 < int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"sparsity pattern must be 'unstructured' or 'N:M' with 0 < N < M (e.g. '2:4'), got {pattern!r}")
    return int(m.group(1)), int(m.group(2))


@dataclasses.dataclass(frozen=True)
class SparsitySetting:
    """A study's ``build.sparsity``: the pattern and, for unstructured, the fraction of weights zeroed."""

    pattern: str  # "unstructured" or "N:M"
    amount: float  # fraction zeroed (N:M: 1 - N/M)


def parse_setting(value: object) -> SparsitySetting | None:
    """``"none"`` -> None; ``"unstructured:0.5"`` or ``"2:4"`` -> the :class:`SparsitySetting`.

    Raises:
        ConfigError: the value is none of the forms (the message starts with "must be", for
            the config reader to prefix with the key path).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 59:
        # YAML 1.1 reads an unquoted 2:4 as the base-60 integer 124
        raise ConfigError(f"must be {SETTING_FORMS}, got the number {value}: quote N:M in YAML ('2:4'), unquoted it is read as base 60")
    if not isinstance(value, str):
        raise ConfigError(f"must be {SETTING_FORMS}, got {value!r}")
    if value == "none":
        return None
    if value.startswith("unstructured:"):
        try:
            amount = float(value.partition(":")[2])
        except ValueError:
            amount = float("nan")
        if not 0.0 < amount <= 0.99:
            raise ConfigError(f"must be {SETTING_FORMS}, got {value!r}")
        return SparsitySetting("unstructured", amount)
    try:
        n, m = parse_pattern(value)  # "unstructured" alone returns None and fails to unpack
    except (ConfigError, TypeError):
        raise ConfigError(f"must be {SETTING_FORMS}, got {value!r}") from None
    return SparsitySetting(f"{n}:{m}", 1.0 - n / m)
