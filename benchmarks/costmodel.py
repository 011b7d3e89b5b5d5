"""The calibrated cost model (issue #14): how well it predicts, and what the study modes gain.

Part ``accuracy``:
1. ``autoprune calibrate`` on the device profile (default ``local-cpu``) with one zoo family
   left out entirely (``--leave-out``, default ``densenet``), within ``--budget-minutes``.
2. Held-out models: every zoo family (the left-out one included) at ``--plans`` random plans
   drawn with another seed than the calibration's, plus the two trained Fashion-MNIST models
   (ResNet, MobileNetV2, 28x28) at random plans; int8 or fp32 at random.
3. Each measured with the confirmation pass's protocol: ``--rounds`` interleaved rounds of
   ``--window`` s. Errors are given against three statistics of those rounds: the confirmation
   pass's 10 %-trimmed mean of the round medians, the fastest round's median (what calibrations
   up to version 5 were fitted to), and the fastest single run over the rounds (the device
   undisturbed by its neighbours, which is what ``autoprune calibrate`` fits). The machine's
   own noise floor beside each: the same models' odd rounds against their even rounds (two
   independent half-measurements), as the share within +/-10 % and MAPE; a prediction cannot
   be checked more finely than that. And the machine's drift since the calibration: some
   calibration models are timed again in the same rounds, and their median ratio to their
   calibration latency is printed (a shared VM runs at two speeds for minutes at a time);
   errors are given as measured and with that drift applied to the predictions.
4. Predicted by the calibration; reported: share within +/-10 %, MAPE, Kendall tau between
   predicted and measured over the plans of each model, for held-out plans and for the
   left-out family apart.
5. The model family on evidence: per-kernel gradient-boosted trees (scikit-learn's
   HistGradientBoostingRegressor, ``pip install scikit-learn``) fitted on the same profiled
   kernel times as the linear model, with the same whole-model terms, predicting the same
   held-out models.

Part ``modes``: the quickstart study three times with the same trial budget, in
``search.mode`` measure, model and hybrid (the calibration from part 1), reporting trials
per minute of the search, and the hypervolume of each run's front with **confirmed**
latencies (hybrid and measure confirm their fronts; the model run's front is re-measured
here with the confirmation protocol, rebuilding each front plan with ``autoprune.build``).

Usage: python benchmarks/costmodel.py [--part accuracy|modes|all] [--budget-minutes 12]
Writes benchmarks/results/costmodel.txt (and .json). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune import zoo  # noqa: E402
from autoprune._schema import atomic_write_text  # noqa: E402
from autoprune.costmodel.calibrate import ROUNDS, calibrate, kernels_of  # noqa: E402
from autoprune.costmodel.calibration import errors  # noqa: E402
from autoprune.costmodel.kernels import featurize  # noqa: E402
from autoprune.device import load_device_profile  # noqa: E402
from autoprune.profile import make_profiler  # noqa: E402
from autoprune.profile.rounds import fastest_run, measure_rounds, round_fastest, trimmed_mean  # noqa: E402


def _heldout_models(out: Path, plans: int, seed: int) -> list[tuple[str, str, Path]]:
    """``(name, family, path)`` of held-out artifacts: zoo families and the Fashion models at random plans."""
    import autoprune
    from autoprune import tasks
    from autoprune.compress import BuildSettings
    from autoprune.space import discover

    rng = np.random.default_rng(seed)
    settings = BuildSettings(bn_batches=1, finetune_steps=0, calibration_samples=32)
    sources = []
    for fam in zoo.names():
        model, x = zoo.build(fam), zoo.example_input(fam)
        sources.append((fam, model, x, zoo.example_input(fam, batch=32, seed=seed).numpy()))
    for arch in ("resnet", "mobilenetv2"):
        task = tasks.get("fashion", arch=arch)
        X, _ = task.train_data()
        sources.append((f"fashion-{arch}", task.model().eval(), task.example_input(), X[:32]))
    made = []
    for fam, model, x, X in sources:
        space = discover(model, x, max_ratio=0.9)
        for k in range(plans):
            params = {f"ratio:{g.name}": round(float(rng.integers(0, int(g.max_ratio / 0.05) + 1)) * 0.05, 10)
                      for g in space.groups if g.max_ratio > 0}
            bits = int(rng.choice((8, 32)))
            params.update({f"bits:{q.name}": bits if bits in q.bits else 32 for q in space.layers if len(q.bits) > 1})
            path = out / f"{fam}-{k}-b{bits}.onnx"
            autoprune.build(model, space.plan_from_params(params), X, x, out=path, settings=settings, space=space)
            made.append((f"{fam}-{k}-b{bits}", fam, path))
    return made


def _kendall(pred: list[float], meas: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(pred, meas).statistic)


def _mean_interval(values: list[float], draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of ``values`` (the models resampled): how precisely a mean over this few is known."""
    v = np.asarray(values, float)
    means = np.random.default_rng(seed).choice(v, size=(draws, len(v)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


PAIR_BUCKETS = (0.0, 0.02, 0.05, 0.10, float("inf"))  # how far apart two plans of one model measure


def _pair_concordance(heldout: dict[str, tuple], predicted: dict[str, float], meas: dict[str, float],
                      halves: tuple[dict[str, float], dict[str, float]]) -> list[dict]:
    """Pairs of plans of one model, bucketed by how far apart they measure: the share the prediction orders as measured,
    and the share one half of the rounds orders as the other half (what the measurements themselves allow)."""
    import itertools

    by = [{"lo": lo, "hi": hi, "pairs": 0, "concordant": 0, "floor": 0} for lo, hi in zip(PAIR_BUCKETS, PAIR_BUCKETS[1:])]
    for fam in {f for _, f in heldout.values()}:
        names = [n for n, (_, f) in heldout.items() if f == fam]
        for a, b in itertools.combinations(names, 2):
            apart = max(meas[a], meas[b]) / min(meas[a], meas[b]) - 1.0
            bucket = next(x for x in by if x["lo"] <= apart < x["hi"])
            bucket["pairs"] += 1
            bucket["concordant"] += (predicted[a] - predicted[b]) * (meas[a] - meas[b]) > 0
            bucket["floor"] += (halves[0][a] - halves[0][b]) * (halves[1][a] - halves[1][b]) > 0
    return by


def _gbdt_predictions(run, device, heldout: dict[str, tuple]) -> dict[str, float] | str:
    """Per-kernel gradient-boosted trees on the calibration's profiled kernel times, whole-model terms as the linear fit's."""
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        return "scikit-learn is not installed (pip install scikit-learn): no comparison"
    from autoprune.costmodel.calibration import _nnls_relative

    rows: dict[str, list] = {}
    for s in run.samples:
        times = run.node_ms[s.name]
        for k in s.kernels:
            if k.name in times:
                rows.setdefault(k.key, []).append((featurize(k, run.calibration.blocks), times[k.name]))
    models = {}
    for key, data in rows.items():
        X = np.array([f for f, _ in data])
        y = np.log(np.maximum([t for _, t in data], 1e-4))
        if len(data) >= 20:
            models[key] = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, random_state=0).fit(X, y)
    cal = run.calibration

    def kernel_sum(kernels) -> float:
        total = 0.0
        for k in kernels:
            if k.key in models:
                total += float(np.exp(models[k.key].predict(np.array([featurize(k, cal.blocks)]))[0]))
            elif k.key in cal.coefficients:
                total += float(np.dot(cal.coefficients[k.key], featurize(k, cal.blocks)))
        return total

    sums = np.array([kernel_sum(s.kernels) for s in run.samples])
    y = np.array([run.measured_ms[s.name] for s in run.samples])
    X = np.column_stack([np.ones(len(y)), sums, [len(s.kernels) for s in run.samples]])
    a, b, c = _nnls_relative(X, y)
    return {name: float(a + b * kernel_sum(kernels) + c * len(kernels)) for name, (kernels, _) in heldout.items()}


def accuracy(args, lines: list[str], doc: dict) -> object:
    device = load_device_profile(args.device)
    import tempfile

    keep = tempfile.TemporaryDirectory(prefix="autoprune-cal-")  # the calibration's artifacts, for the drift reference
    dump = Path(args.dump) if args.dump else None  # the models and their timings, kept to study other fits offline
    t0 = time.perf_counter()
    run = calibrate(device, args.budget_minutes, seed=args.seed, rounds=args.cal_rounds, leave_out=tuple(args.leave_out),
                    log=lambda s: print(s, flush=True), workdir=dump / "calibration" if dump else keep.name)
    cal = run.calibration
    run_s = time.perf_counter() - t0
    cal.save(Path(args.results).with_name("costmodel-calibration.json"))
    lines.append(f"calibration of {device.name}: {cal.notes['models']} models ({cal.notes['probe_models']} probes, "
                 f"{cal.notes['zoo_models']} zoo plans; left out: {', '.join(args.leave_out) or 'none'}) in {run_s:.0f} s "
                 f"(budget {args.budget_minutes:g} min); method {cal.method} (chosen on held-out error: "
                 + ", ".join(f"{m} MAPE {e['mape']:.1%}" for m, e in cal.notes.get("heldout_by_method", {}).items())
                 + f"); {len(cal.coefficients)} kernel kinds")
    lines.append("  vector blocks (output x reduction) chosen on its held-out models: "
                 + ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in sorted(cal.blocks.items())) + " (held-out MAPE by candidate: "
                 + ", ".join(f"{label} {mape:.1%}" for label, mape in cal.notes.get("heldout_mape_by_blocks", {}).items()) + ")")
    h = cal.heldout
    lines.append(f"  its own held-out {int(h['n'])} calibration models: MAPE {h['mape']:.1%}, within +/-10 % {h['within_10']:.0%}, "
                 f"p90 |error| {h['p90_abs']:.1%}; the timings' own repeatability ({int(h.get('repeat_n', 0))} of them timed "
                 f"twice): MAPE {h.get('repeat_mape', float('nan')):.1%}, within +/-10 % {h.get('repeat_within_10', float('nan')):.0%}")
    rng = np.random.default_rng(args.seed + 7)
    refs = [run.samples[i] for i in rng.choice(len(run.samples), size=min(args.drift_refs, len(run.samples)), replace=False)]
    with tempfile.TemporaryDirectory(prefix="autoprune-bench-") as tmp:
        held_dir = dump / "heldout" if dump else Path(tmp)
        held_dir.mkdir(parents=True, exist_ok=True)
        models = _heldout_models(held_dir, args.plans, args.seed + 1000)
        print(f"measuring {len(models)} held-out models and {len(refs)} calibration models again: {args.rounds} interleaved "
              f"rounds of {args.window} s", flush=True)
        profiler = make_profiler(device)
        order = {name: path for name, _, path in models} | {f"ref:{s.name}": s.path for s in refs}
        got, failed = measure_rounds(profiler, order, args.rounds, args.window)
        profiler.close()
        heldout = {name: (kernels_of(path, device, cal.level), fam) for name, fam, path in models if name in got}
    keep.cleanup()
    # The machine's speed between the calibration and now: calibration models timed again among the held-out ones.
    ratios = [fastest_run(got[f"ref:{s.name}"]) / run.measured_ms[s.name]  # the calibration's statistic
              for s in refs if f"ref:{s.name}" in got]
    drift = float(np.median(ratios)) if ratios else 1.0
    # The floor across time: a model that predicted every calibration model exactly as the calibration timed it
    # would be off on these by their ratio, as measured, and by their spread about the median, with the drift applied.
    reproduced = float(np.mean([abs(r - 1.0) <= 0.1 for r in ratios])) if ratios else float("nan")
    reproduced_drift = float(np.mean([abs(r / drift - 1.0) <= 0.1 for r in ratios])) if ratios else float("nan")
    lines.append(f"machine drift since the calibration: {len(ratios)} calibration models timed again among the held-out ones "
                 f"run at {drift:.3f}x their calibration latency (median; {min(ratios):.2f}-{max(ratios):.2f}x); "
                 f"their calibration timings, taken as predictions, are within +/-10 % of these for {reproduced:.0%} "
                 f"({reproduced_drift:.0%} with the drift applied): the floor across time of any prediction from this calibration"
                 if ratios else "machine drift: not measured")
    got = {k: v for k, v in got.items() if not k.startswith("ref:")}
    rounds = {k: [m.latency_ms.value for m in v] for k, v in got.items()}  # each round's median
    fastest = {k: [round_fastest(m) for m in v] for k, v in got.items()}  # each round's fastest run
    if dump:  # every model's file (relative to the dump) and timings: refit with other features without timing again
        atomic_write_text(dump / "data.json", json.dumps({
            "calibration": [{"name": s.name, "kind": s.kind, "bits": s.bits, "path": str(s.path.relative_to(dump)),
                             "ms": run.measured_ms[s.name]} for s in run.samples],
            "heldout": [{"name": n, "family": fam, "path": str(p.relative_to(dump)), "rounds": rounds[n], "rounds_min": fastest[n]}
                        for n, fam, p in models if n in rounds],
            "leave_out": list(args.leave_out)}, indent=0))
    # Three statistics of the same interleaved rounds: the confirmation pass's trimmed mean of the round medians,
    # the fastest round's median, and the fastest run (the device undisturbed: what the calibration is fitted
    # to). Each with its own noise floor: the statistic of the odd rounds against that of the even ones.
    stats = {"trimmed mean": (rounds, trimmed_mean), "fastest round": (rounds, min), "fastest run": (fastest, min)}
    measured_by = {label: {k: f(v) for k, v in per.items()} for label, (per, f) in stats.items()}
    measured = measured_by["trimmed mean"]
    predicted = {name: cal.predict(kernels).latency_ms for name, (kernels, _) in heldout.items()}
    gbdt = _gbdt_predictions(run, device, heldout) if run.node_ms else "no per-kernel times (not a local device)"
    groups = {"held-out plans (families in the calibration)": [n for n, (_, f) in heldout.items() if f not in args.leave_out],
              f"left-out family ({', '.join(args.leave_out)})": [n for n, (_, f) in heldout.items() if f in args.leave_out]}
    doc.update(calibration=cal.to_dict(), drift=drift, drift_ratios=ratios,
               drift_floor={"within_10": reproduced, "within_10_drift_corrected": reproduced_drift},
               measured=measured, rounds=rounds, rounds_min=fastest, predicted=predicted,
               failed=failed, gbdt=gbdt if isinstance(gbdt, str) else dict(gbdt))
    for stat, (per_round, f) in stats.items():
        meas = measured_by[stat]
        noise = errors([f(v[0::2]) for v in per_round.values()], [f(v[1::2]) for v in per_round.values()])
        lines.append(f"against the {stat} of the {args.rounds} rounds: noise floor of the measurements themselves (odd vs even "
                     f"rounds of the same {int(noise['n'])} models): within +/-10 % {noise['within_10']:.0%}, MAPE {noise['mape']:.1%}, "
                     f"p90 {noise['p90_abs']:.1%}")
        doc.setdefault("noise", {})[stat] = noise
        for label, names in groups.items():
            if not names:
                continue
            e = errors([predicted[n] for n in names], [meas[n] for n in names])
            line = (f"  {label}: {len(names)} models, within +/-10 % {e['within_10']:.0%}, MAPE {e['mape']:.1%}, "
                    f"p90 |error| {e['p90_abs']:.1%} (linear per kernel)")
            if isinstance(gbdt, dict):
                g = errors([gbdt[n] for n in names], [meas[n] for n in names])
                line += f"; gradient-boosted trees per kernel: within +/-10 % {g['within_10']:.0%}, MAPE {g['mape']:.1%}"
            d = errors([predicted[n] * drift for n in names], [meas[n] for n in names])
            line += (f"; with the drift measured beside them (x{drift:.3f}): within +/-10 % {d['within_10']:.0%}, "
                     f"MAPE {d['mape']:.1%}")
            lines.append(line)
            doc.setdefault("groups", {}).setdefault(stat, {})[label] = e
            doc.setdefault("groups_drift_corrected", {}).setdefault(stat, {})[label] = d
        taus, floor = {}, {}
        for fam in sorted({f for _, f in heldout.values()}):
            names = [n for n, (_, f) in heldout.items() if f == fam]
            if len(names) >= 3:
                taus[fam] = _kendall([predicted[n] for n in names], [meas[n] for n in names])
                # the ranking the measurements themselves allow: odd rounds against even rounds
                floor[fam] = _kendall([f(per_round[n][0::2]) for n in names], [f(per_round[n][1::2]) for n in names])
        lines.append("  Kendall tau, predicted vs measured over the plans of one model (noise floor: odd vs even rounds): "
                     + ", ".join(f"{fam} {t:.2f} ({floor[fam]:.2f})" for fam, t in taus.items())
                     + f"; mean {statistics.fmean(taus.values()):.2f} ({statistics.fmean(floor.values()):.2f}), "
                     + "95 %% bootstrap interval over the models %.2f-%.2f" % _mean_interval(list(taus.values())))
        doc.setdefault("kendall_tau", {})[stat] = taus
        doc.setdefault("kendall_tau_interval", {})[stat] = _mean_interval(list(taus.values()))
        halves = ({n: f(per_round[n][0::2]) for n in heldout}, {n: f(per_round[n][1::2]) for n in heldout})
        pairs = _pair_concordance(heldout, predicted, meas, halves)
        lines.append("  the same pairs (plans of one model) by how far apart they measure: share ordered as measured (odd vs even "
                     "rounds): " + ", ".join(
                         f"{b['lo']:.0%}-{b['hi']:.0%} apart {b['concordant'] / b['pairs']:.0%} ({b['floor'] / b['pairs']:.0%}) of {b['pairs']}"
                         .replace("-inf%", "+") for b in pairs if b["pairs"]))
        doc.setdefault("pair_concordance", {})[stat] = pairs
        doc.setdefault("kendall_tau_noise_floor", {})[stat] = floor
    fast, run_ms = measured_by["fastest round"], measured_by["fastest run"]
    lines.append("per model (measured ms: trimmed mean, fastest round, fastest run / predicted ms / error against each):")
    for n in sorted(measured):
        lines.append(f"  {n:34s} {measured[n]:8.4f} {fast[n]:8.4f} {run_ms[n]:8.4f} {predicted[n]:8.4f} "
                     f"{predicted[n] / measured[n] - 1:+7.1%} {predicted[n] / fast[n] - 1:+7.1%} {predicted[n] / run_ms[n] - 1:+7.1%}")
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("accuracy", "modes", "all"), default="all")
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--budget-minutes", type=float, default=12.0)
    ap.add_argument("--leave-out", nargs="*", default=["densenet"])
    ap.add_argument("--plans", type=int, default=6, help="held-out plans per model")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cal-rounds", type=int, default=ROUNDS)
    ap.add_argument("--window", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trials", type=int, default=40, help="trials per study in part modes")
    ap.add_argument("--measure-twice", action="store_true",
                    help="part modes: run the measure study a second time, last: the floor of the hypervolume comparison")
    ap.add_argument("--drift-refs", type=int, default=24, help="calibration models timed again beside the held-out ones")
    ap.add_argument("--dump", help="keep every model (ONNX) and its timings in this directory (data.json), for offline fits")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "costmodel"))
    args = ap.parse_args()
    if args.plans < 3:
        ap.error("--plans must be at least 3: Kendall tau is taken over the plans of one model")
    lines = [f"autoprune cost model benchmark on {platform.node()} ({_cpu()}), load average before {os.getloadavg()[0]:.2f}"]
    doc: dict = {}
    run = None
    if args.part in ("accuracy", "all"):
        run = accuracy(args, lines, doc)
    if args.part in ("modes", "all"):
        from costmodel_modes import modes  # benchmarks/costmodel_modes.py

        modes(args, lines, doc, run)
    lines.append(f"load average after: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(Path(args.results + ".txt"), text)
    atomic_write_text(Path(args.results + ".json"), json.dumps(doc, indent=1, default=str))
    return 0


def _cpu() -> str:
    from autoprune.profile.local import host_info

    host = host_info()
    return f"{host['cpu']}, {host['vector_isa']}"


if __name__ == "__main__":
    sys.exit(main())
