"""The confirmation pass: re-measure the front after the search, interleaved, before it counts.

Each trial is timed once, in one window. On a machine whose speed drifts (other tenants,
frequency changes) a trial timed in a fast moment looks faster than it is, and that
trial is the one most likely to land on the front: the front is biased optimistic (the
winner's curse). The pass removes the bias where it matters:

1. select every feasible trial within ``margin`` of the front's re-measured costs
   (latency, energy), and the dense-fp32 baseline (the reference of every speed-up);
2. rebuild each artifact from its plan and check it is byte-identical to the measured one;
3. measure all of them in ``rounds`` rounds, round-robin (alternating order), so that slow
   and fast moments hit them alike and each trial's rounds are spread over the whole pass;
   a trial's latency becomes the 10 %-trimmed mean of its round medians, its p90 that of its
   round p90s, its energy likewise (or the device's estimate from the confirmed latency);
   :mod:`autoprune.profile.rounds` says why a mean;
4. recompute constraints and the front; trials that join the front unconfirmed are
   confirmed in turn, until every front point is.

Where the task has a test split, each rebuilt artifact's accuracy on it is stored beside its
confirmed numbers as ``test_accuracy`` (:mod:`autoprune.study.heldout`): reported, never in
the constraints, the front's objectives or the trial itself, so it never selects anything.

Results go to the study's user attrs (:data:`~autoprune.study.records.CONFIRMATION_ATTR`),
read back through :func:`~autoprune.study.records.records`. A profiler that does not time
(a cost model: :attr:`~autoprune.profile.base.Profiler.measures_time` is False) has nothing
to confirm: the pass builds nothing and its record says why (``skipped``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import optuna

from ..config import ConfirmSettings
from ..device import Limit
from ..exceptions import AutopruneError
from ..metrics import METRICS, Metric
from ..pareto import dominated, to_minimization
from ..plan import Plan
from ..profile import Measurement, Profiler, estimate_energy
from ..profile.rounds import TRIMMED_MEAN, measure_rounds, round_latency, trimmed_mean
from .candidate import build, standin_note
from .context import StudyContext
from .heldout import measure_test_accuracy
from .objective import constraint_values, infeasible_reason
from .records import CONFIRMATION_ATTR, TrialRecord, objective_names, pareto_front, records, with_confirmations
from .workers import measure_lock

__all__ = ["confirm_front", "needs_confirmation"]

_MAX_PASSES = 5


def _costs() -> tuple[str, ...]:
    """The timing metrics a study may optimise or budget: what the pass re-measures and re-checks."""
    return tuple(k.name for k in METRICS.values() if k.is_timing and (k.objective or k.budget))


def _confirms_anything(ctx: StudyContext, objectives: list[str]) -> bool:
    c = ctx.config.constraints
    return any(o in _costs() for o in objectives) or any(getattr(c, n, None) is not None for n in _costs())


def needs_confirmation(study: optuna.Study, ctx: StudyContext) -> bool:
    """The pass is on, has something to confirm, and has not yet run over the current trials."""
    settings = ctx.config.confirm
    if settings.rounds == 0 or not _confirms_anything(ctx, objective_names(study)):
        return False
    doc = study.user_attrs.get(CONFIRMATION_ATTR) or {}
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    return doc.get("settings") != dataclasses.asdict(settings) or doc.get("n_complete") != n_complete


def _near_front(recs: list[TrialRecord], ctx: StudyContext, objectives: list[str], directions: list[str], margin: float) -> list[TrialRecord]:
    """Records that could be on the front if their re-measured costs were ``margin`` lower."""
    costs = _costs()
    budgets = {n: getattr(ctx.config.constraints, n, None) for n in costs}

    def optimistic(r: TrialRecord) -> TrialRecord:
        metrics = {k: ({**m, "value": m["value"] * (1 - margin)} if k in costs else m) for k, m in r.metrics.items()}
        constraints = dict(r.constraints)
        for n, budget in budgets.items():
            if budget is not None and n in metrics:
                constraints[n] = metrics[n]["value"] - budget
        return dataclasses.replace(r, metrics=metrics, constraints=constraints)

    def vector(r: TrialRecord) -> tuple[float, ...] | None:
        ok = r.feasible and all(o in r.metrics for o in objectives)
        return to_minimization(r.values(objectives), directions) if ok else None

    others = {r.number: v for r in recs if (v := vector(r)) is not None}
    out = []
    for r in recs:  # on the front of its optimistic self and every other record: O(n^2)
        v = vector(optimistic(r))
        if v is not None and not dominated(v, [w for n, w in others.items() if n != r.number]):
            out.append(r)
    return out


def _round_metric(statistic: str, rounds: list[Measurement], search: dict[str, Any] | None, n_others: int) -> Metric:
    m = round_latency(rounds, statistic)
    searched = f"; the search measured {search['value']:.4g} ms" if search else ""
    return dataclasses.replace(m, how=f"confirmation pass: {m.how}, round-robin with {n_others} other trial(s) after the search{searched}")


def _energy(rounds: list[Measurement], latency: Metric, ctx: StudyContext) -> Metric | None:
    readings = [m.energy_mj for m in rounds if m.energy_mj is not None]
    if not readings:
        return None
    if all(e.source == "estimated" for e in readings):
        est = estimate_energy(latency.value, ctx.device)
        return dataclasses.replace(est, how=est.how.replace("measured median latency", "confirmed latency")) if est else None
    value = trimmed_mean([e.value for e in readings])
    return Metric(value, readings[0].unit, readings[0].source, f"confirmation pass: {TRIMMED_MEAN} of {len(readings)} rounds of: {readings[0].how}")


def _confirmed_metrics(r: TrialRecord, rounds: list[Measurement], ctx: StudyContext, n_others: int, standin: dict[str, int]) -> dict[str, Metric]:
    search = r.trial.user_attrs.get("metrics", {})
    latency = _round_metric("median", rounds, search.get("latency_ms"), n_others)
    out = {"latency_ms": latency, "latency_p90_ms": _round_metric("p90", rounds, None, n_others)}
    energy = _energy(rounds, latency, ctx)
    if energy is not None:
        out["energy_mj"] = energy
    if standin:
        out = {k: standin_note(m, standin) for k, m in out.items()}
    return out


class _Pass:
    """One confirmation pass over a study (state shared by its selection rounds)."""

    def __init__(self, study: optuna.Study, ctx: StudyContext, profiler: Profiler, settings: ConfirmSettings) -> None:
        self.ctx, self.profiler, self.settings = ctx, profiler, settings
        self.objectives = objective_names(study)
        self.directions = [d.name.lower() for d in study.directions]
        self.dense_accuracy = (study.user_attrs.get("dense") or {}).get("accuracy", {}).get("value")
        self.base = records(study, confirmed=False)
        self.confirmed: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}
        self.not_measured = False
        self.test_accuracy: dict[int, Metric] = {}  # on each rebuilt artifact; reported, never used to select
        self._test_data: tuple | None = None

    def current(self) -> list[TrialRecord]:
        return with_confirmations(self.base, self.confirmed)

    def first_selection(self) -> list[TrialRecord]:
        chosen = {r.number: r for r in _near_front(self.base, self.ctx, self.objectives, self.directions, self.settings.margin)}
        for r in self.base:
            if r.baseline == "dense-fp32":
                chosen.setdefault(r.number, r)
        return sorted(chosen.values(), key=lambda r: r.number)

    def build_all(self, todo: list[TrialRecord], tmp: Path) -> list[tuple[TrialRecord, Path, dict[str, int]]]:
        built = []
        for r in todo:
            try:
                plan = Plan.from_dict({"layers": r.trial.user_attrs["plan"]}, f"trial {r.number} plan")
                artifact = build(self.ctx, plan)
            except AutopruneError as e:
                self.failed[str(r.number)] = f"rebuild failed: {e}"
                continue
            if artifact.sha256 != r.trial.user_attrs.get("sha256"):
                self.failed[str(r.number)] = (f"rebuilt artifact differs (sha256 {artifact.sha256[:12]} vs measured "
                                              f"{str(r.trial.user_attrs.get('sha256'))[:12]}): not re-measured")
                continue
            path = tmp / f"trial-{r.number}.onnx"
            artifact.save(path)  # with its external data file, for a model over 2 GB
            built.append((r, path, dict(artifact.standin_bits)))
            self._measure_test(r.number, artifact, dict(artifact.standin_bits))
        return built

    def _measure_test(self, number: int, artifact: Any, standin: dict[str, int]) -> None:
        """Test-split accuracy of this exact (byte-checked) artifact, if the task has a test split."""
        if self._test_data is None:
            self._test_data = self.ctx.task.test_data() or ()
        if self._test_data:
            try:
                self.test_accuracy[number] = measure_test_accuracy(self.ctx.task, artifact, standin, data=self._test_data)
            except AutopruneError:  # e.g. non-finite outputs on the test split: report none, confirm the rest
                pass

    def measure_all(self, built: list[tuple[TrialRecord, Path, dict[str, int]]]) -> None:
        with measure_lock(self.ctx.device.profiler.kind):  # one timing at a time on this machine
            rounds, failed = measure_rounds(self.profiler, {r.number: path for r, path, _ in built}, self.settings.rounds, self.settings.min_duration_s)
        self.failed.update({str(n): f"re-measurement failed: {reason}" for n, reason in failed.items()})
        live = [b for b in built if b[0].number in rounds]
        for r, _, standin in live:
            ms = rounds[r.number]
            if ms[0].latency_ms.source != "measured":
                self.not_measured = True
                return
            metrics = _confirmed_metrics(r, ms, self.ctx, len(built) - 1, standin)
            merged = {**{k: Metric.from_dict(m) for k, m in r.trial.user_attrs.get("metrics", {}).items()}, **metrics}
            changed = constraint_values(self.ctx.config.constraints, {k: m.value for k, m in merged.items()}, self.dense_accuracy)
            limits = [Limit(**lim) for lim in r.trial.user_attrs.get("measurement", {}).get("limits", ())]
            reason = infeasible_reason(self.ctx.config.constraints, merged, self.dense_accuracy, limits, self.ctx.device.name)
            if r.number in self.test_accuracy:  # after the constraints: it changes none of them
                metrics["test_accuracy"] = self.test_accuracy[r.number]
            medians = [m.latency_ms.value for m in ms]
            self.confirmed[str(r.number)] = {
                "sha256": r.trial.user_attrs.get("sha256"),
                "metrics": {k: m.to_dict() for k, m in metrics.items()},
                "constraints": {k: v for k, v in changed.items() if k in _costs()},
                "infeasible_reason": reason,
                "round_medians_ms": [round(v, 6) for v in medians],
                "round_cv": statistics.stdev(medians) / statistics.mean(medians) if len(medians) > 1 and statistics.mean(medians) > 0 else 0.0,
            }


def _skip(study: optuna.Study, settings: ConfirmSettings, started: tuple[dt.datetime, float], reason: str,
          log: Callable[[str], None]) -> dict[str, Any]:
    """Store a pass that confirmed nothing, saying why (so a resumed study does not try again)."""
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    doc = {"settings": dataclasses.asdict(settings), "started": started[0].isoformat(timespec="seconds"),
           "seconds": round(time.perf_counter() - started[1], 3), "passes": 0,
           "n_complete": n_complete, "complete": False, "trials": {}, "failed": {}, "skipped": reason}
    study.set_user_attr(CONFIRMATION_ATTR, doc)
    log(f"confirmation: skipped, {reason}")
    return doc


def confirm_front(study: optuna.Study, ctx: StudyContext, profiler: Profiler, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Run the confirmation pass over ``study`` and store it; returns the stored document (None: nothing to do).

    Args:
        study: A study whose trials were measured by ``profiler``'s device.
        ctx: The prepared study context (rebuilds the artifacts).
        profiler: Measures the rebuilt artifacts.
        log: Progress lines (default: none).

    A profiler that does not time (``measures_time`` False) is skipped before anything is
    rebuilt: the stored document then confirms nothing and its ``skipped`` says why.
    """
    log = log or (lambda msg: None)
    settings = ctx.config.confirm
    objectives = objective_names(study)
    if settings.rounds == 0 or not _confirms_anything(ctx, objectives):
        return None
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    if not profiler.measures_time:  # decided before anything is rebuilt
        return _skip(study, settings, (started, t0), f"profiler kind {ctx.device.profiler.kind!r} computes its numbers (modelled) "
                     "instead of timing them: measuring again gives the same numbers, so nothing was rebuilt or re-measured", log)
    p = _Pass(study, ctx, profiler, settings)
    todo = p.first_selection()
    passes = 0
    with tempfile.TemporaryDirectory(prefix="autoprune-confirm-") as tmp:
        while todo and passes < _MAX_PASSES and not p.not_measured:
            passes += 1
            log(f"confirming {len(todo)} trial(s) near the front: {settings.rounds} round-robin rounds"
                + (f" of >= {settings.min_duration_s:g} s each" if settings.min_duration_s is not None else ""))
            p.measure_all(p.build_all(todo, Path(tmp)))
            front = pareto_front(p.current(), objectives, p.directions)
            todo = [r for r in front if str(r.number) not in p.confirmed and str(r.number) not in p.failed]
    if p.not_measured:  # a profiler that does not time but leaves measures_time True: found out after building
        return _skip(study, settings, (started, t0), f"profiler kind {ctx.device.profiler.kind!r} returned latencies that are not "
                     "measured: nothing to confirm (a profiler that computes its numbers should set measures_time = False)", log)
    front = pareto_front(p.current(), objectives, p.directions)
    doc = {
        "settings": dataclasses.asdict(settings),
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 3),
        "passes": passes,
        "n_complete": len(p.base),
        "complete": all(r.confirmed for r in front),
        "trials": p.confirmed,
        "failed": p.failed,
        "skipped": None,
    }
    study.set_user_attr(CONFIRMATION_ATTR, doc)
    changes = [
        (float(e["metrics"]["latency_ms"]["value"]) / r.trial.user_attrs["metrics"]["latency_ms"]["value"] - 1) * 100
        for r in p.base if (e := p.confirmed.get(str(r.number))) and "latency_ms" in r.trial.user_attrs.get("metrics", {})
    ]
    summary = f"confirmation: {len(p.confirmed)} trial(s) re-measured in {doc['seconds']:.0f} s"
    if changes:
        summary += f"; latency vs the search: median {statistics.median(changes):+.1f} % ({min(changes):+.1f} % to {max(changes):+.1f} %)"
    if p.failed:
        summary += f"; {len(p.failed)} not confirmed (see front.json)"
    log(summary)
    return doc
