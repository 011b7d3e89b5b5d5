"""Per-group sensitivity: what each channel group costs in accuracy and saves in latency, alone.

For every prunable group and a few ratios, the study's own build of a plan that prunes *only
that group* (every quantizable layer int8 where allowed) gives two numbers:

* **accuracy** — the adaptive-BN proxy: the pruned float model (BatchNorm recalibrated,
  fine-tuned as the study's ``build`` says) scored in torch fp32 on the validation split;
* **latency saved** — its int8 artifact timed on the study's device, all artifacts in
  interleaved rounds (:func:`~autoprune.profile.rounds.measure_rounds`) with the dense int8
  artifact timed again after every few of them; saved = the trimmed mean over rounds of the
  neighbouring dense timings minus the pruned one, so a slow moment of the machine shifts
  both sides alike. The rounds' CV is stored as the machine's noise.

From the accuracy curve each group gets a **cap**: the largest measured ratio before its
accuracy first drops more than ``collapse`` below the unpruned build, never below one
``ratio_step``. A study caps its search space with them (:meth:`Sensitivity.cap_space`) and
stores everything in its user attribute ``sensitivity`` (the report's format plus latency
curves, caps, noise, settings and seconds); :mod:`autoprune.ladder` turns the curves into
seed plans. Builds ignore ``max_ratio``, so export and the confirmation pass rebuild capped
trials unchanged.

``collapse`` is absolute, in the task's score, not tied to ``constraints.max_accuracy_drop``:
a group alone may lose more than a whole plan is allowed to, and the cap only removes the
cliff. With ``bits`` on, the analysis also measures what int8 costs each layer
(:mod:`autoprune.quant_cost`). A resumed study reuses the stored analysis and never re-runs
it; a study begun without it keeps its space (its Optuna distributions stay as they began).
``autoprune sensitivity STUDY.yaml`` runs the analysis alone and prints it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from .compress.build import build_artifact
from .config import SensitivitySettings
from .exceptions import CandidateError
from .inputs import Data, call, count, rows
from .profile.paired import BLOCK, REF, coefficient_of_variation as _cv, paired_savings, with_references
from .profile.rounds import TRIMMED_MEAN, measure_rounds, trimmed_mean
from .quant_cost import int8_cost, int8_params
from .space import ChannelGroup, SearchSpace
from .threads import torch_threads

if TYPE_CHECKING:  # the study's context; importing autoprune.study here would be circular
    from .profile import Profiler
    from .study.context import StudyContext

__all__ = ["GroupCurve", "Sensitivity", "analyse", "apply_to_study", "curve_ratios", "cap_from_curve", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_TOL = 1e-9
_CALIBRATION = 32  # calibration samples of the analysis's int8 artifacts


@dataclasses.dataclass(frozen=True)
class GroupCurve:
    """One group's curves; index 0 of every tuple is the unpruned build (ratio 0).

    Attributes:
        ratios: Pruning ratios, 0 first.
        kept: Channels kept at each ratio (``keep_channels`` rounding).
        accuracy: Proxy accuracy at each ratio; None where the build failed.
        latency_ms: Latency of the int8 artifact at each ratio (index 0: the dense int8 one);
            None where it was not measured.
        saved_ms: Latency saved at each ratio against the dense int8 artifact timed next to
            it in the same round (0 at ratio 0); None where not measured.
        round_cv: Coefficient of variation of each artifact's round medians.
        cap: The largest ratio the search may give this group.
    """

    name: str
    channels: int
    macs_share: float
    max_ratio: float
    ratios: tuple[float, ...]
    kept: tuple[int, ...]
    accuracy: tuple[float | None, ...]
    latency_ms: tuple[float | None, ...]
    saved_ms: tuple[float | None, ...]
    round_cv: tuple[float | None, ...]
    cap: float

    def drop(self) -> tuple[float | None, ...]:
        """Accuracy lost at each ratio against the unpruned build (negative: it gained)."""
        dense = self.accuracy[0]
        return tuple(None if dense is None or a is None else dense - a for a in self.accuracy)


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """The analysis of one model on one device; stored in a study as :meth:`to_dict`.

    Attributes:
        groups: One curve per analysed group, in the space's order.
        accuracy_how: How every accuracy value was obtained.
        latency_how: How every latency value was obtained; latency_source its source.
        n_eval: Samples in the validation split (one sample is the accuracy's resolution).
        collapse: The cap threshold (None: no caps).
        noise: ``{"dense_round_cv", "median_round_cv", "max_round_cv"}`` of the latency rounds.
        settings: What the analysis ran with (its settings, the profiler's, the build's).
        seconds: ``{"accuracy", "latency", "total"}`` (and ``"bits"``).
        bits: Per quantizable layer, ``{"int8": accuracy of the all-int8 artifact, "fp32":
            accuracy with only this layer kept fp32, "macs_share"}``, measured with onnxruntime on
            the artifact (empty when not analysed); ``bits_how`` says how.
    """

    groups: tuple[GroupCurve, ...]
    accuracy_how: str
    latency_how: str
    latency_source: str
    n_eval: int
    collapse: float | None
    noise: dict[str, float | None]
    settings: dict[str, Any]
    seconds: dict[str, float]
    bits: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    bits_how: str = ""

    @property
    def dense_latency_ms(self) -> float | None:
        return self.groups[0].latency_ms[0] if self.groups else None

    @property
    def dense_accuracy(self) -> float | None:
        return self.groups[0].accuracy[0] if self.groups else None

    def curve(self, name: str) -> GroupCurve:
        for c in self.groups:
            if c.name == name:
                return c
        raise KeyError(name)

    def caps(self) -> dict[str, float]:
        return {c.name: c.cap for c in self.groups}

    def cap_space(self, space: SearchSpace) -> SearchSpace:
        """``space`` with each analysed group's ``max_ratio`` lowered to its cap (never raised)."""
        caps = self.caps()
        groups = tuple(dataclasses.replace(g, max_ratio=min(g.max_ratio, caps[g.name])) if g.name in caps else g for g in space.groups)
        return dataclasses.replace(space, groups=groups)

    def to_dict(self) -> dict[str, Any]:
        """The study attribute: the report's ``metric/source/layers`` plus latency, caps, noise, settings, seconds."""
        return {
            "version": FORMAT_VERSION,
            "metric": "accuracy",
            "source": "measured",
            "how": self.accuracy_how,
            "layers": {c.name: {"ratio": list(c.ratios), "value": list(c.accuracy)} for c in self.groups},
            "latency": {
                "unit": "ms", "source": self.latency_source, "how": self.latency_how, "dense_ms": self.dense_latency_ms,
                "layers": {c.name: {"ratio": list(c.ratios), "latency_ms": list(c.latency_ms), "saved_ms": list(c.saved_ms),
                                    "round_cv": list(c.round_cv)} for c in self.groups},
            },
            "groups": {c.name: {"channels": c.channels, "macs_share": c.macs_share, "max_ratio": c.max_ratio, "kept": list(c.kept)}
                       for c in self.groups},
            "caps": self.caps(),
            "cap_how": cap_how(self.collapse),
            "collapse": self.collapse,
            "n_eval": self.n_eval,
            "noise": dict(self.noise),
            "settings": dict(self.settings),
            "seconds": dict(self.seconds),
            "bits": {"how": self.bits_how, "layers": {k: dict(v) for k, v in self.bits.items()}},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sensitivity":
        """Read :meth:`to_dict`'s output back; a report-only attribute (no caps) gives uncapped curves."""
        latency = d.get("latency") or {}
        lat_layers = latency.get("layers") or {}
        info = d.get("groups") or {}
        caps = d.get("caps") or {}
        groups = []
        for name, c in (d.get("layers") or {}).items():
            ratios = tuple(float(r) for r in c["ratio"])
            g, lat = info.get(name, {}), lat_layers.get(name, {})
            max_ratio = float(g.get("max_ratio", ratios[-1]))
            none = [None] * len(ratios)
            groups.append(GroupCurve(
                name, int(g.get("channels", 0)), float(g.get("macs_share", 0.0)), max_ratio, ratios,
                tuple(g.get("kept") or [0] * len(ratios)), tuple(c["value"]), tuple(lat.get("latency_ms") or none),
                tuple(lat.get("saved_ms") or none), tuple(lat.get("round_cv") or none), float(caps.get(name, max_ratio)),
            ))
        return cls(tuple(groups), d.get("how", ""), latency.get("how", ""), latency.get("source", "measured"), int(d.get("n_eval") or 0),
                   d.get("collapse"), dict(d.get("noise") or {}), dict(d.get("settings") or {}), dict(d.get("seconds") or {}),
                   {k: dict(v) for k, v in ((d.get("bits") or {}).get("layers") or {}).items()}, (d.get("bits") or {}).get("how", ""))

    def fp32_layers(self, min_gain: float = 0.005, max_macs_share: float = 0.1) -> list[str]:
        """Layers worth keeping in fp32: alone in fp32 they win back ``min_gain`` of the all-int8 accuracy, at little cost.

        ``max_macs_share`` bounds the MACs such a layer may carry, so that keeping it in fp32
        costs little latency (the ladder's latency prediction assumes int8 everywhere).
        """
        return [k for k, v in self.bits.items() if v["fp32"] - v["int8"] >= min_gain - _TOL and v["macs_share"] <= max_macs_share]


def curve_ratios(group: ChannelGroup, ratios: tuple[float, ...], ratio_step: float) -> tuple[float, ...]:
    """``ratios`` up to the group's ``max_ratio``, plus ``max_ratio``, snapped to the ``ratio_step`` grid, 0 first."""
    top = math.floor(group.max_ratio / ratio_step + _TOL) * ratio_step
    grid = {round(round(r / ratio_step) * ratio_step, 10) for r in ratios} | {round(top, 10)}
    return (0.0, *sorted(r for r in grid if _TOL < r <= group.max_ratio + _TOL))


def cap_from_curve(ratios: tuple[float, ...], accuracy: tuple[float | None, ...], collapse: float | None, ratio_step: float,
                   max_ratio: float) -> float:
    """The largest ratio before the first one losing more than ``collapse`` (a failed build counts as lost).

    ``ratios[0]`` is 0 with the reference accuracy. No collapse (or ``collapse`` None) keeps
    ``max_ratio``; otherwise the cap is at least ``ratio_step``.
    """
    if collapse is None or accuracy[0] is None:
        return max_ratio
    cap = 0.0
    for r, a in zip(ratios[1:], accuracy[1:]):
        if a is None or accuracy[0] - a > collapse + _TOL:
            return round(min(max_ratio, max(cap, ratio_step)), 10)
        cap = r
    return max_ratio


def cap_how(collapse: float | None) -> str:
    if collapse is None:
        return "no caps (search.sensitivity.collapse is null)"
    return (f"largest ratio on the curve before accuracy first drops more than {collapse:g} below the unpruned build "
            "(only this group pruned), at least one ratio_step")


def _score(model: torch.nn.Module, X: Data, y: np.ndarray, task: Any, batch_size: int = 512) -> float:
    with torch.no_grad():
        out = torch.cat([call(model, rows(X, slice(i, i + batch_size))) for i in range(0, count(X), batch_size)])
    return float(task.score(out.numpy(), y))


def _proxy_how(ctx: "StudyContext") -> str:
    b = ctx.config.build
    steps = [f"{b.importance} importance", f"BatchNorm recalibrated on {b.bn_batches} batches"]
    if b.finetune_steps:
        steps.append(f"fine-tuned {b.finetune_steps} steps")
    if b.sparsity != "none":
        steps.append(f"sparsity {b.sparsity}")
    return (f"adaptive-BN proxy: torch fp32 on the {len(ctx.eval_y)}-sample {ctx.task.eval_description} of task {ctx.task.name}, "
            f"only this group pruned ({', '.join(steps)}, as the study builds)")


def analyse(ctx: "StudyContext", profiler: "Profiler", settings: SensitivitySettings | None = None,
            log: Callable[[str], None] | None = None) -> Sensitivity:
    """Measure every group's accuracy and latency curves and its cap (see the module docstring).

    Args:
        ctx: The study's context (model, space, task, build settings, thread count).
        profiler: Times the int8 artifacts (the study's device).
        settings: Default: the study's ``search.sensitivity``.
        log: Progress lines.

    An artifact that fails to build counts as collapsed (accuracy None); one that cannot be
    timed has no latency (None), and without the dense int8 timings no group has any.

    Raises:
        CandidateError: the unpruned model itself fails to build.
    """
    settings = settings or ctx.config.search.sensitivity
    log = log or (lambda msg: None)
    space = ctx.space
    # The int8 artifacts are only timed (accuracy is the float model's), and their graph does not
    # depend on the calibration data: a few samples find ranges as fast as the study's many.
    build = dataclasses.replace(ctx.config.build, calibration_samples=min(ctx.config.build.calibration_samples, _CALIBRATION))
    t_start = time.perf_counter()
    groups = [g for g in space.groups if g.max_ratio > 0]
    int8 = int8_params(space)

    def build_one(params: dict[str, Any]):
        with torch_threads(ctx.build_threads):
            artifact = build_artifact(ctx.model, space.plan_from_params({**params, **int8}), space, ctx.task, ctx.example_input, build)
            return artifact, _score(artifact.model, ctx.eval_X, ctx.eval_y, ctx.task)

    with tempfile.TemporaryDirectory(prefix="autoprune-sensitivity-") as tmp:
        models: dict[Any, Path] = {}

        def keep(key, artifact) -> None:
            models[key] = Path(tmp) / f"{len(models)}.onnx"
            artifact.save(models[key])  # with its external data, for a model over 2 GB

        dense_artifact, dense_acc = build_one({})
        keep(REF, dense_artifact)
        n = sum(len(curve_ratios(g, settings.ratios, space.ratio_step)) - 1 for g in groups)
        log(f"sensitivity: {len(groups)} group(s), {n} pruned build(s); unpruned accuracy {dense_acc:.4f}")
        points: dict[str, tuple[tuple[float, ...], list[int], list[float | None]]] = {}
        for i, g in enumerate(groups, 1):
            ratios = curve_ratios(g, settings.ratios, space.ratio_step)
            kept, acc, by_kept = [g.channels], [dense_acc], {g.channels: dense_acc}
            for r in ratios[1:]:
                k = g.kept(r, space.round_to)
                if k not in by_kept:  # ratios that round to the same width build the same model
                    try:
                        artifact, by_kept[k] = build_one({f"ratio:{g.name}": r})
                        keep((g.name, k), artifact)
                    except CandidateError as e:
                        by_kept[k] = None
                        log(f"sensitivity: {g.name} at ratio {r:g} failed to build: {e}")
                kept.append(k)
                acc.append(by_kept[k])
            points[g.name] = (ratios, kept, acc)
            shown = ", ".join(f"{a:.3f}@{r:g}" if a is not None else f"failed@{r:g}" for r, a in zip(ratios[1:], acc[1:]))
            log(f"sensitivity {i}/{len(groups)} {g.name}: accuracy {shown}")
        t_acc = time.perf_counter() - t_start

        t0 = time.perf_counter()
        s = profiler.device.profiler
        fast = profiler.with_settings(warmup=min(s.warmup, 10), repetitions=min(s.repetitions, 20))
        order = with_references(models)
        log(f"sensitivity: timing {len(models)} int8 artifact(s) in {settings.rounds} interleaved round(s) of {settings.window_s:g} s "
            f"(the dense one {sum(k[0] == REF for k in order)} times a round)")
        rounds, failed = measure_rounds(fast, order, settings.rounds, settings.window_s)
        for key, why in failed.items():
            log(f"sensitivity: could not time {key}: {why}")
        t_lat = time.perf_counter() - t0

    t0 = time.perf_counter()
    bits, bits_how = int8_cost(ctx, space, log) if settings.bits else ({}, "")
    t_bits = time.perf_counter() - t0

    medians = {k: [m.latency_ms.value for m in v] for k, v in rounds.items()}
    dense_all = [v for k, vs in medians.items() if k[0] == REF for v in vs]
    dense_ms = trimmed_mean(dense_all) if dense_all else None
    saved = paired_savings(list(order), medians)
    latency = {k[1]: trimmed_mean(v) for k, v in medians.items() if k[0] != REF}
    cv = {k[1]: _cv(v) for k, v in medians.items() if k[0] != REF}
    curves = []
    for g in groups:
        ratios, kept, acc = points[g.name]
        keys = [(g.name, k) for k in kept[1:]]
        ok = dense_ms is not None
        curves.append(GroupCurve(
            g.name, g.channels, g.macs_share, g.max_ratio, ratios, tuple(kept), tuple(acc),
            (dense_ms, *(latency.get(k) if ok else None for k in keys)), (0.0 if ok else None, *(saved.get(k) for k in keys)),
            (_cv(dense_all), *(cv.get(k) if ok else None for k in keys)),
            cap_from_curve(ratios, tuple(acc), settings.collapse, space.ratio_step, g.max_ratio),
        ))
    cvs = sorted(v for v in cv.values() if v is not None)
    first = next(iter(rounds.values()), None)
    source = first[0].latency_ms.source if first else "measured"
    lat_how = (f"int8 artifact with only this group pruned, timed on {ctx.device.name} in {settings.rounds} interleaved round(s) "
               f"of >= {settings.window_s:g} s (>= {min(s.repetitions, 20)} runs each) with the dense int8 artifact timed every "
               f"{BLOCK} artifacts; saved = {TRIMMED_MEAN} over rounds of (the neighbouring dense medians' mean - the pruned median)")
    seconds = {"accuracy": round(t_acc, 3), "latency": round(t_lat, 3), "bits": round(t_bits, 3),
               "total": round(time.perf_counter() - t_start, 3)}
    sens = Sensitivity(
        tuple(curves), _proxy_how(ctx), lat_how, source, len(ctx.eval_y), settings.collapse,
        {"dense_round_cv": _cv(dense_all), "median_round_cv": statistics.median(cvs) if cvs else None, "max_round_cv": cvs[-1] if cvs else None},
        {**dataclasses.asdict(settings), "ratios": list(settings.ratios), "ratio_step": space.ratio_step, "round_to": space.round_to,
         "device": ctx.device.name, "warmup": min(s.warmup, 10), "repetitions": min(s.repetitions, 20)},
        seconds, bits, bits_how,
    )
    capped = {c.name: c.cap for c in curves if c.cap < c.max_ratio - _TOL}
    log(f"sensitivity: done in {seconds['total']:.1f} s (accuracy {seconds['accuracy']:.1f} s, latency {seconds['latency']:.1f} s); "
        + (f"capped: {', '.join(f'{n} {c:g}' for n, c in capped.items())}" if capped else "no group capped"))
    return sens


def apply_to_study(study: Any, ctx: "StudyContext", profiler: "Profiler", log: Callable[[str], None]) -> Sensitivity | None:
    """Run the analysis for a new study, or read back a resumed one's; cap ``ctx.space`` with it.

    A study that has trials but no stored analysis (begun without it, or before it existed)
    is left alone, so its Optuna distributions stay as they began. A fresh analysis is
    stored in the study's ``sensitivity`` attribute, and ``space`` is updated to the capped
    space it searches.

    Returns:
        The analysis, or None when there is none for this study.
    """
    stored = study.user_attrs.get("sensitivity")
    if stored:
        sens = Sensitivity.from_dict(stored)
        ctx.space = sens.cap_space(ctx.space)
        return sens
    if not ctx.config.search.sensitivity.enabled:
        return None
    if study.get_trials(deepcopy=False):
        log("sensitivity: not run, the study already has trials (its search space stays as it began)")
        return None
    sens = analyse(ctx, profiler, ctx.config.search.sensitivity, log)
    study.set_user_attr("sensitivity", sens.to_dict())
    ctx.space = sens.cap_space(ctx.space)
    study.set_user_attr("space", ctx.space.summary())
    return sens
