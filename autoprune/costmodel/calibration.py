"""A device's calibrated latency model: per-kernel linear costs fitted on measured models.

A model's latency is predicted as a per-run overhead plus, for every kernel the runtime
executes (:mod:`.kernels`), a cost linear in that kernel's features: a launch, its MMACs,
the MB of activations it reads and writes, and the work that falls in partial vector blocks
(channel counts off the CPU's blocking, which pruning lands on). Each kernel kind
(``nchwc.Conv/dw``, ``ms.QLinearConv/1x1``, ...) has its own non-negative coefficients — a
roofline-like model per kernel, as nn-Meter and LitePred predict per kernel. They are
fitted jointly on whole-model latencies (what any device's profiler, local
or agent, can measure), by non-negative least squares on **relative** errors, so a 0.05-ms
model counts as much as a 5-ms one.

The family was chosen on evidence: ``benchmarks/costmodel.py`` fits gradient-boosted trees on the
same features beside it and prints both held-out errors.

A calibration is stored as versioned JSON (:meth:`Calibration.save`): numbers and names
only, no pickled classes, so it survives library upgrades. It records the device it was
measured on; :func:`load_calibration` refuses a file of another format, version or device.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .._schema import atomic_write_text
from ..exceptions import ConfigError
from .kernels import BLOCKS, FEATURES, Blocks, Kernel, family, featurize

__all__ = ["Calibration", "Prediction", "CalibrationError", "fit", "load_calibration", "errors", "FORMAT", "VERSION"]

FORMAT = "autoprune-calibration"
VERSION = 8  # 8: the padded output lanes at 8, 16 and 32 wide, each kind weighing its own (kernels.PAD_WIDTHS);
# 7: probes off every multiple of 4 (probes._CHANNELS), 4 rounds (the first v7 files were also scaled by
# an anchor, 1.000 in each of its three benchmark runs, then dropped; a file it scaled is still a valid v7 fit);
# 6: fitted to each model's fastest run over the rounds, not its fastest round's median (calibrate.measure_models);
# 5: the padded output lanes of a partial block at the device's chosen block;
# 4: a blocked-layout convolution reading an NCHW input is a kind of its own, weights read per run;
# 3: activations read and written apart, grouped convolutions per group, the device's blocks chosen;
# 2: the partial-block and output-position features (kernels.FEATURES). Older versions are refused
RIDGE = 1e-6  # a whisper of L2 on the scaled coefficients, so kinds that always appear together split stably
EXTRAPOLATE = 2.0  # a model this many times beyond the calibrated MMAC range is predicted with low confidence


class CalibrationError(ConfigError):
    """A calibration file that cannot be used: unreadable, another format or version, or another device."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A predicted latency and why it can (or cannot) be trusted.

    Attributes:
        latency_ms: Predicted latency of one inference.
        by_kind: Predicted milliseconds per kernel kind (the overhead under ``overhead``).
        fallback: Kernel kinds not in the calibration, costed as their family's best-known kind.
        confident: False when a kind was not calibrated or the model's work lies outside the
            calibrated range (``reasons`` says which): the hybrid mode measures those.
        reasons: Why not confident.
        kernels: The kernels predicted (for the energy model).
    """

    latency_ms: float
    by_kind: dict[str, float]
    fallback: tuple[str, ...]
    confident: bool
    reasons: tuple[str, ...]
    kernels: tuple[Kernel, ...] = ()


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Per-kernel latency coefficients of one device.

    Attributes:
        device: What the measurements were taken on: profile name, profiler settings, CPU
            model and onnxruntime version (for local profilers), graph level.
        overhead_ms: Per-run cost outside the kernels.
        coefficients: ``{kernel kind: [ms per unit of each of kernels.FEATURES]}`` (per launch, per MMAC, ...).
        counts: How many calibration models each kind appeared in.
        mmacs_range: ``(min, max)`` MMACs of the calibration models.
        heldout: Errors on models held out of the fit (``n``, ``mape``, ``within_10``, ``p90_abs``), and
            the same errors of the measurements themselves (``repeat_n``, ``repeat_mape``, ...: some of
            those models timed twice, one fastest run against the other).
        level: The graph level kernels are read at (:data:`.kernels.LEVELS`).
        method: ``kernel-profile`` (coefficients fitted on per-kernel times from onnxruntime's
            profiler, then ``overhead_ms + scale x sum + per_kernel_ms x kernels`` fitted on
            whole-model latencies) or ``whole-model`` (coefficients fitted on whole-model
            latencies directly: a device whose runtime cannot be profiled per kernel here).
        scale: Whole-model latency per millisecond of summed kernel predictions.
        per_kernel_ms: Whole-model cost per executed kernel beyond its own time (dispatch).
        created: ISO timestamp.
        notes: Free text (what was probed, how long it took).
        blocks: The device's vector blocks the partial-block features are read at
            (``{"fp32" | "int8": (output block, reduction block)}``, chosen on held-out error).
        max_per_model: Per kind, the most kernels of it one calibration model ran. A model running
            over :data:`EXTRAPOLATE` times that many is predicted with low confidence: the kind's
            cost was fitted where it was a small part of every model (an int8 DenseNet runs 8
            unfused BatchNormalizations where no calibrated model ran more than one, and its
            int8 plans were priced 2-16 % high by version 6). Empty in a file from before (no check).
    """

    device: dict[str, Any]
    overhead_ms: float
    coefficients: dict[str, list[float]]
    counts: dict[str, int]
    mmacs_range: tuple[float, float]
    heldout: dict[str, float] = dataclasses.field(default_factory=dict)
    level: str = "all"
    method: str = "whole-model"
    scale: float = 1.0
    per_kernel_ms: float = 0.0
    created: str = ""
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)
    blocks: dict[str, tuple[int, int]] = dataclasses.field(default_factory=lambda: dict(BLOCKS))
    max_per_model: dict[str, int] = dataclasses.field(default_factory=dict)

    # -- prediction -------------------------------------------------------------------------
    def _stand_in(self, key: str) -> str | None:
        """The calibrated kind of ``key``'s family seen in most models (None if the family is new)."""
        same = [k for k in self.coefficients if family(k) == family(key)]
        return max(same, key=lambda k: (self.counts.get(k, 0), k)) if same else None

    def predict(self, kernels: Sequence[Kernel]) -> Prediction:
        """The latency of a model that runs ``kernels`` (from :func:`.kernels.runtime_kernels`)."""
        by_kind: dict[str, float] = {"overhead": self.overhead_ms}
        fallback, reasons = [], []
        for k in kernels:
            key = k.key if k.key in self.coefficients else self._stand_in(k.key)
            if key != k.key and k.key not in fallback:
                fallback.append(k.key)
            if key is None:
                continue  # a wholly new family: costed as nothing, flagged below
            cost = float(np.dot(self.coefficients[key], featurize(k, self.blocks)))
            by_kind[k.key] = by_kind.get(k.key, 0.0) + cost
        if fallback:
            reasons.append(f"kernel kinds not calibrated: {', '.join(fallback)} (costed as their family's kind)")
        ran = collections.Counter(k.key for k in kernels)
        beyond = [f"{n} {key} kernels (at most {self.max_per_model[key]} in a calibration model)"
                  for key, n in sorted(ran.items()) if n > EXTRAPOLATE * self.max_per_model.get(key, math.inf)]
        if beyond:
            reasons.append(f"more kernels of a kind than calibrated (x{EXTRAPOLATE:g}): {', '.join(beyond)}")
        mmacs = sum(k.features[1] for k in kernels)
        lo, hi = self.mmacs_range
        if mmacs > hi * EXTRAPOLATE or mmacs < lo / EXTRAPOLATE:
            reasons.append(f"{mmacs:.3g} MMACs lies outside the calibrated {lo:.3g}-{hi:.3g} MMACs (x{EXTRAPOLATE:g})")
        kernel_ms = sum(v for k, v in by_kind.items() if k != "overhead")
        latency = self.overhead_ms + self.scale * kernel_ms + self.per_kernel_ms * len(kernels)
        return Prediction(latency, by_kind, tuple(fallback), not reasons, tuple(reasons), tuple(kernels))

    def describe(self) -> str:
        """One line for a metric's ``how``."""
        h = self.heldout
        err = f"held-out MAPE {h['mape']:.1%}, {h['within_10']:.0%} within +/-10 % of {int(h['n'])} models" if h else "no held-out error"
        if h.get("repeat_n"):
            err += f"; the timings' own repeatability MAPE {h['repeat_mape']:.1%}"
        return (f"per-kernel linear cost model ({self.method}) of the fastest run (the device undisturbed), calibrated on "
                f"{self.device.get('name', '?')} ({err})")

    # -- storage ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "features": list(FEATURES), "mmacs_range": list(self.mmacs_range),
                "blocks": {k: list(v) for k, v in sorted(self.blocks.items())}}

    def save(self, path: str | os.PathLike) -> None:
        """Write the calibration as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: Any, label: str = "<calibration>") -> "Calibration":
        """Read a calibration written by :meth:`to_dict`.

        Raises:
            CalibrationError: another format or version, or a malformed field (named).
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{label}: not an autoprune calibration file (format must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise CalibrationError(f"{label}: calibration version {data.get('version')!r} is not supported "
                                   f"(this autoprune reads version {VERSION}); run `autoprune calibrate` again")
        if data.get("features") != list(FEATURES):
            raise CalibrationError(f"{label}: features {data.get('features')!r} differ from this autoprune's {list(FEATURES)}")
        try:
            coefficients = {str(k): [float(x) for x in v] for k, v in data["coefficients"].items()}
            bad = [k for k, v in coefficients.items() if len(v) != len(FEATURES) or not all(math.isfinite(x) and x >= 0 for x in v)]
            if bad:
                raise ValueError(f"coefficients.{bad[0]} must be {len(FEATURES)} finite non-negative numbers")
            lo, hi = (float(x) for x in data["mmacs_range"])
            blocks = {str(k): (int(v[0]), int(v[1])) for k, v in data["blocks"].items()}
            if sorted(blocks) != sorted(BLOCKS) or not all(o > 0 and i > 0 for o, i in blocks.values()):
                raise ValueError(f"blocks must give positive (output, reduction) blocks for {' and '.join(sorted(BLOCKS))}")
            return cls(
                device=dict(data["device"]), overhead_ms=float(data["overhead_ms"]), coefficients=coefficients,
                counts={str(k): int(v) for k, v in data["counts"].items()}, mmacs_range=(lo, hi),
                heldout={str(k): float(v) for k, v in data.get("heldout", {}).items()}, level=str(data.get("level", "all")),
                method=str(data["method"]), scale=float(data["scale"]), per_kernel_ms=float(data["per_kernel_ms"]),
                created=str(data.get("created", "")), notes=dict(data.get("notes", {})), blocks=blocks,
                max_per_model={str(k): int(v) for k, v in data.get("max_per_model", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CalibrationError(f"{label}: malformed calibration: {type(e).__name__}: {e}") from None


def load_calibration(path: str | os.PathLike, expect: Mapping[str, Any] | None = None) -> Calibration:
    """Load a calibration file; with ``expect``, refuse one measured on another device.

    Args:
        path: The JSON file.
        expect: Device facts that must match the file's (:func:`device_facts` of the profile in use).

    Raises:
        CalibrationError: unreadable, corrupt, another format or version, or another device
            (the message names the file and the first fact that differs).
    """
    label = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{label}: calibration file not found (run `autoprune calibrate --device ...`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{label}: unreadable calibration file: {e}") from None
    cal = Calibration.from_dict(data, label)
    for key, want in (expect or {}).items():
        have = cal.device.get(key)
        if have != want:
            raise CalibrationError(f"{label}: calibrated for another device: device.{key} is {have!r} in the file, "
                                   f"{want!r} here; run `autoprune calibrate` for this device")
    return cal


def _design(samples: Sequence[Sequence[Kernel]], keys: list[str], blocks: Blocks) -> np.ndarray:
    """One row per model: 1 (overhead), then each kind's summed features."""
    index = {k: i for i, k in enumerate(keys)}
    X = np.zeros((len(samples), 1 + len(FEATURES) * len(keys)))
    X[:, 0] = 1.0
    for r, kernels in enumerate(samples):
        for k in kernels:
            c = 1 + len(FEATURES) * index[k.key]
            X[r, c:c + len(FEATURES)] += featurize(k, blocks)
    return X


def _nnls_relative(X: np.ndarray, y: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Non-negative ``w`` minimising the relative errors ``(X w - y) / (y + floor)`` (plus :data:`RIDGE`)."""
    from scipy.optimize import nnls

    A = X / (y + floor)[:, None]
    y = y / (y + floor)
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    A = A / scale
    A = np.vstack([A, math.sqrt(RIDGE) * np.eye(A.shape[1])])
    b = np.concatenate([y, np.zeros(A.shape[1])])
    w, _ = nnls(A, b, maxiter=50 * A.shape[1])
    return w / scale


def errors(predicted: Iterable[float], measured: Iterable[float]) -> dict[str, float]:
    """``n``, ``mape``, ``within_10`` (share within +/-10 %) and ``p90_abs`` of relative errors."""
    p, m = np.asarray(list(predicted), float), np.asarray(list(measured), float)
    rel = np.abs(p - m) / m
    if not len(rel):
        return {"n": 0.0}
    return {"n": float(len(rel)), "mape": float(rel.mean()), "within_10": float((rel <= 0.10).mean()),
            "p90_abs": float(np.percentile(rel, 90))}


def _fit_kernels(samples: Sequence[Sequence[Kernel]], node_ms: Sequence[Mapping[str, float]], keys: list[str],
                 blocks: Blocks) -> dict[str, np.ndarray]:
    """Per kind: non-negative coefficients fitted on its kernels' profiled times (relative errors, 1 us floor)."""
    rows: dict[str, list[tuple[tuple[float, ...], float]]] = {k: [] for k in keys}
    for kernels, times in zip(samples, node_ms):
        for k in kernels:
            if k.name in times:
                rows[k.key].append((featurize(k, blocks), times[k.name]))
    out = {}
    for key, data in rows.items():
        if not data:
            out[key] = np.zeros(len(FEATURES))
            continue
        X = np.array([f for f, _ in data])
        y = np.array([t for _, t in data])
        out[key] = _nnls_relative(X, np.maximum(y, 1e-3), floor=1e-3)
    return out


def fit(samples: Sequence[Sequence[Kernel]], latencies_ms: Sequence[float], device: Mapping[str, Any], *,
        node_ms: Sequence[Mapping[str, float]] | None = None, level: str = "all",
        heldout: dict[str, float] | None = None, notes: Mapping[str, Any] | None = None,
        blocks: Blocks | None = None) -> Calibration:
    """Fit per-kernel coefficients on measured models.

    Args:
        samples: Each model's kernels.
        latencies_ms: Each model's measured latency.
        device: What they were measured on (stored; checked when the file is loaded).
        node_ms: Each model's per-kernel times ``{kernel name: ms}`` (onnxruntime's profiler):
            the coefficients are fitted on them, and the whole-model terms on ``latencies_ms``.
            Without them, everything is fitted on ``latencies_ms``.
        level: The graph level the kernels were read at.
        heldout: Errors measured on models left out of this fit, to store with it.
        notes: Free facts to store (probes, budget).
        blocks: The device's vector blocks to read the partial-block features at (default :data:`.kernels.BLOCKS`).

    Raises:
        ValueError: fewer models than two, or a latency that is not positive.
    """
    y = np.asarray(latencies_ms, dtype=float)
    if len(samples) != len(y) or len(y) < 2:
        raise ValueError(f"need at least 2 measured models (and one latency each), got {len(samples)} and {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("every latency must be a positive number")
    keys = sorted({k.key for s in samples for k in s})
    n = len(FEATURES)
    blocks = {k: (int(v[0]), int(v[1])) for k, v in (blocks or BLOCKS).items()}
    if node_ms is not None:
        coef = _fit_kernels(samples, node_ms, keys, blocks)
        kernel_sum = np.array([sum(float(np.dot(coef[k.key], featurize(k, blocks))) for k in s) for s in samples])
        X = np.column_stack([np.ones(len(y)), kernel_sum, [len(s) for s in samples]])
        overhead, scale, per_kernel = (float(v) for v in _nnls_relative(X, y))
        method = "kernel-profile"
    else:
        w = _nnls_relative(_design(samples, keys, blocks), y)
        coef = {key: w[1 + n * i:1 + n * (i + 1)] for i, key in enumerate(keys)}
        overhead, scale, per_kernel, method = float(w[0]), 1.0, 0.0, "whole-model"
    counts = {key: sum(any(k.key == key for k in s) for s in samples) for key in keys}
    ran = [collections.Counter(k.key for k in s) for s in samples]
    max_per_model = {key: max(c[key] for c in ran) for key in keys}
    mmacs = [sum(k.features[1] for k in s) for s in samples]
    return Calibration(
        device=dict(device), overhead_ms=overhead, coefficients={key: [float(x) for x in coef[key]] for key in keys},
        counts=counts, mmacs_range=(float(min(mmacs)), float(max(mmacs))), heldout=dict(heldout or {}), level=level,
        method=method, scale=scale, per_kernel_ms=per_kernel,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), notes=dict(notes or {}),
        blocks=blocks, max_per_model=max_per_model,
    )
