"""Seed plans from the sensitivity curves: ratios for a ladder of latency targets.

The same idea as HALP's latency-saliency knapsack, NetAdapt's per-step choice and MCT's
mixed-precision allocation, with the measured curves of :mod:`autoprune.sensitivity`. Each
group's curves are fitted non-decreasing (isotonic: a saving that dips as the ratio grows,
or an accuracy gain, is measurement noise to the allocation) and interpolated linearly on
the ``ratio_step`` grid. A plan's latency is predicted as ``dense × Π_g (pruned_g / dense)``,
each group's measured fraction: exact for one group, and for a conv shrunk from both sides
by two neighbouring groups it composes as the conv's MACs do ((1 − r_a)(1 − r_b)), where
adding the savings would count the shared part twice and can predict below zero. Accuracy
is predicted as ``unpruned − Σ drop_g``.

From all-dense, the greedy step raises by one ``ratio_step`` (or across a flat stretch, to
the next ratio that gains) the group with the largest predicted latency gain per accuracy
lost (plus one validation sample's worth, so groups that lose nothing are ranked by their
gain), within its cap, until no step gains. Each
latency target takes the first state on that single path at or under it, so a tighter
target prunes every group at least as much (the seeds are nested).

Bits: every quantizable layer int8 where it may be (else 32), as the latency curves were
measured, except the layers the analysis found costly in int8 (:meth:`Sensitivity.fp32_layers`:
kept fp32 alone, they win back at least half an accuracy point, and they carry at most 10 %
of the MACs, so fp32 costs them little time); the sampler explores the other mixes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from .metrics import Metric
from .sensitivity import Sensitivity
from .space import SearchSpace

__all__ = ["Seed", "allocate", "seed_count", "enqueue_ladder", "isotonic", "SEED_ATTR"]

SEED_ATTR = "seed"  # trial user attribute naming the seed: "ladder-<i>"
_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class Seed:
    """One allocation: its target, its predictions and its Optuna parameters."""

    label: str
    target_ms: float
    predicted_latency_ms: float
    predicted_accuracy: float | None
    params: dict[str, Any]

    def ratios(self) -> dict[str, float]:
        return {k.partition(":")[2]: v for k, v in self.params.items() if k.startswith("ratio:")}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Seed":
        return cls(d["label"], float(d["target_ms"]), float(d["predicted_latency_ms"]), d.get("predicted_accuracy"), dict(d["params"]))

    def user_attrs(self, sens: Sensitivity) -> dict[str, Any]:
        """``seed`` and ``predicted`` (the report's predicted-vs-measured section reads the latter)."""
        predicted = {"latency_ms": Metric(self.predicted_latency_ms, "ms", "modelled",
                                          "dense int8 latency times each group's measured fraction kept at its ratio (sensitivity analysis)").to_dict()}
        if self.predicted_accuracy is not None:
            predicted["accuracy"] = Metric(self.predicted_accuracy, "", "modelled",
                                           "unpruned proxy accuracy minus each group's proxy drop at its ratio (additive, int8 not modelled)").to_dict()
        return {SEED_ATTR: self.label, "predicted": predicted}


def isotonic(values: list[float], weights: list[float] | None = None) -> np.ndarray:
    """The non-decreasing sequence closest to ``values`` in weighted least squares (pool adjacent violators)."""
    w = list(weights or [1.0] * len(values))
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, wi in zip(values, w):
        blocks.append([float(v), wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.array([m for m, _, n in blocks for _ in range(n)])


def _fit(values: tuple[float | None, ...], missing: float) -> np.ndarray:
    """Non-decreasing fit of a curve whose first point (the unpruned build, 0) is held fixed; None -> ``missing``."""
    v = [0.0] + [missing if x is None else float(x) for x in values[1:]]
    return np.maximum(isotonic(v, [1e6] + [1.0] * (len(v) - 1)), 0.0)


def allocate(sens: Sensitivity, space: SearchSpace, count: int) -> list[Seed]:
    """Seeds for ``count`` latency targets evenly spaced between the dense int8 latency and every group at its cap.

    Args:
        sens: The analysis (needs the latency curves).
        space: The (capped) space: each group's ``max_ratio`` bounds its ratio.
        count: Targets; fewer seeds when several targets give the same plan.

    Returns:
        Distinct seeds, from the lightest pruning to the heaviest; none without latency curves.
    """
    dense_ms = sens.dense_latency_ms
    if count <= 0 or dense_ms is None:
        return []
    step = space.ratio_step
    eps = 1.0 / sens.n_eval if sens.n_eval else 1e-3
    names = {c.name for c in sens.groups}
    groups = [g for g in space.groups if g.max_ratio > 0 and g.name in names]
    keep, drop, top = {}, {}, {}  # per group, on its grid: latency fraction kept, accuracy dropped
    for g in groups:
        c = sens.curve(g.name)
        grid = np.arange(0, math.floor(min(g.max_ratio, c.ratios[-1]) / step + _TOL) + 1) * step
        saved = np.minimum(_fit(c.saved_ms, 0.0), dense_ms * 0.999)  # a group alone never takes all the time
        keep[g.name] = 1.0 - np.interp(grid, c.ratios, saved) / dense_ms
        drop[g.name] = np.interp(grid, c.ratios, _fit(c.drop(), 1.0))  # a failed build: everything lost
        top[g.name] = len(grid) - 1

    state = {g.name: 0 for g in groups}
    latency, lost = dense_ms, 0.0
    path = [(dict(state), latency, lost)]  # (steps per group, predicted ms, accuracy dropped)
    while True:
        best, best_score = None, 0.0
        for name, k in state.items():
            # the next grid point that gains (a flat stretch of the fitted curve is crossed in one move)
            j = next((j for j in range(k + 1, top[name] + 1) if keep[name][j] < keep[name][k] * (1 - _TOL)), None)
            if j is None:
                continue
            gain = latency * (1.0 - keep[name][j] / keep[name][k])
            score = gain / (drop[name][j] - drop[name][k] + eps)
            if score > best_score:
                best, best_score = (name, j), score
        if best is None:
            break
        name, j = best
        k = state[name]
        latency *= keep[name][j] / keep[name][k]
        lost += drop[name][j] - drop[name][k]
        state[name] = j
        path.append((dict(state), latency, lost))

    lightest = path[-1][1]
    if dense_ms - lightest <= _TOL * dense_ms:
        return []
    fp32 = set(sens.fp32_layers())
    int8 = {f"bits:{q.name}": 32 if q.name in fp32 and 32 in q.bits else 8 if 8 in q.bits else 32 for q in space.layers if len(q.bits) > 1}
    seeds, seen = [], set()
    for i in range(1, count + 1):
        target = dense_ms - (dense_ms - lightest) * i / count
        steps, predicted, d = next(p for p in path if p[1] <= target + _TOL * dense_ms)
        key = tuple(sorted(steps.items()))
        if key in seen:
            continue
        seen.add(key)
        params = {f"ratio:{g.name}": round(steps.get(g.name, 0) * step, 10) for g in space.groups if g.max_ratio > 0}
        acc = sens.dense_accuracy
        seeds.append(Seed(f"ladder-{len(seeds) + 1}", round(target, 6), round(predicted, 6),
                          None if acc is None else round(acc - d, 6), {**params, **int8}))
    return seeds


def seed_count(ladder: int, n_trials: int, n_baselines: int) -> int:
    """``ladder`` seeds, but no more than the trials left after the baselines (the sampler gets the rest).

    ``ladder`` >= the trials left runs the ladder alone, without a sampler.
    """
    return max(0, min(ladder, n_trials - n_baselines))


def enqueue_ladder(study: Any, space: SearchSpace, sens: Sensitivity, search: Any, baselines: list[dict[str, Any]],
                   log: Callable[[str], None]) -> int:
    """Enqueue the ladder's seeds after the baselines; returns how many were enqueued.

    The first time, the seeds are allocated and stored in the study's ``sensitivity``
    attribute (``ladder``); a seed whose plan equals a baseline's is left out. On resume, the
    stored seeds whose trial neither completed nor waits are enqueued again, as baselines are.

    Args:
        study: The Optuna study.
        space: The capped space.
        sens: The study's analysis.
        search: The study's ``search`` settings (``ladder``, ``n_trials``, ``baselines``).
        baselines: The baselines' parameters, for the duplicate check.
        log: Progress lines.
    """
    import optuna

    if not search.ladder:
        return 0
    attr = dict(study.user_attrs.get("sensitivity") or {})
    if "ladder" in attr:
        seeds = [Seed.from_dict(d) for d in attr["ladder"]]
    else:
        count = seed_count(search.ladder, search.n_trials, len(search.baselines))
        seeds = [s for s in allocate(sens, space, count) if s.params not in baselines]
        attr["ladder"] = [s.to_dict() for s in seeds]
        study.set_user_attr("sensitivity", attr)
        if seeds:
            log(f"ladder: {len(seeds)} seed(s) for predicted latencies "
                f"{', '.join(f'{s.predicted_latency_ms:.3g}' for s in seeds)} ms (dense int8 {sens.dense_latency_ms:.3g} ms)")
    live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    have = {t.user_attrs.get(SEED_ATTR) for t in study.get_trials(deepcopy=False, states=live)}
    todo = [s for s in seeds if s.label not in have]
    for s in todo:
        study.enqueue_trial(s.params, user_attrs=s.user_attrs(sens))
    return len(todo)
