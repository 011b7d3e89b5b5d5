"""Does the search beat what a user does by hand? Four arms, same budget, one confirmation pass.

On a real task (default: ``studies/fashion-resnet.yaml``), with the same number of built and
measured trials per arm, for each seed:

(a) ``default``: autoprune's default search (sensitivity analysis, capped space, the ladder
    seeds, the study's sampler);
(b) ``uniform``: the sweep a user does by hand: the same ratio in every group, every ratio
    step from 0 to ``max_ratio``, int8 everywhere and fp32 everywhere (deterministic: the
    same plans for every seed; re-measured per seed like the others);
(c) ``random``: random search over the same space (the same baselines as (a), no sensitivity);
(d) ``ladder``: the sensitivity analysis and its ladder of allocations alone (as many rungs
    as the budget allows), no sampler.

Every arm's search measures latency in single windows, as a study does. Then, per seed, the
trials on or near each arm's front (and the dense fp32 reference) are rebuilt (byte-identical,
checked) and re-measured in **one** interleaved confirmation pass shared by all arms, so the
machine's drift hits every arm alike; identical artifacts (same sha256) are measured once.
The arms run in a rotating order (seed k starts with arm k), so no arm always runs first.

Reported per seed: hypervolume in normalised (accuracy, confirmed latency) space with
reference point (dense fp32 accuracy - 5 points, dense fp32 latency), the best latency within
0.5 / 1 / 2 points of dense fp32 accuracy (validation), accuracy at 2x / 4x / 8x the dense
speed, wall time per arm; the machine's noise floor (CV of the pass's round medians) beside
them. Goals: HV(a) >= 1.05 HV(b) and >= 1.03 HV(c); within 1 point, (a)'s best point >= 1.2x
faster than (b)'s. Accuracy is the validation split's (what the search selects on); the test
split is not looked at here.

Usage: python benchmarks/search_quality.py [--study studies/fashion-resnet.yaml] [--seeds 0 1 2]
       [--budget N] [--arms default uniform random ladder] [--rounds 6] [--window 0.2]
Writes benchmarks/results/search_quality.{txt,json,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
ARMS = ("default", "uniform", "random", "ladder")
WITHIN = (0.005, 0.01, 0.02)
SPEEDUPS = (2, 4, 8)
HV_DROP = 0.05  # reference point: dense fp32 accuracy minus 5 points


def uniform_labels(search) -> list[str]:
    """The hand sweep: every ratio step from 0 to max_ratio, int8 and fp32."""
    n = int(round(search.max_ratio / search.ratio_step))
    ratios = [round(i * search.ratio_step, 10) for i in range(1, n + 1)]
    return ["dense-fp32", "dense-int8", *[f"uniform-{r:g}" for r in ratios], *[f"uniform-{r:g}-fp32" for r in ratios]]


def arm_config(base, arm: str, seed: int, budget: int):
    """The study config of ``arm`` for ``seed``: ``budget`` trials, no confirmation pass of its own."""
    s = base.search
    confirm = dataclasses.replace(base.confirm, rounds=0)
    name = f"{base.name}-{arm}-s{seed}"
    if arm == "default":
        search = dataclasses.replace(s, seed=seed, n_trials=budget, timeout_s=None)
    elif arm == "uniform":
        labels = uniform_labels(s)
        search = dataclasses.replace(s, seed=seed, n_trials=len(labels), timeout_s=None, baselines=tuple(labels),
                                     **_features(s, sensitivity=False, ladder=0))
    elif arm == "random":
        search = dataclasses.replace(s, seed=seed, n_trials=budget, timeout_s=None, sampler="random",
                                     **_features(s, sensitivity=False, ladder=0))
    elif arm == "ladder":  # a ladder as long as the trials left: no sampler
        baselines = ("dense-fp32",)
        search = dataclasses.replace(s, seed=seed, n_trials=budget, timeout_s=None, baselines=baselines,
                                     **_features(s, sensitivity=True, ladder=budget - len(baselines)))
    else:
        raise ValueError(arm)
    return dataclasses.replace(base, name=name, search=search, confirm=confirm)


def _features(search, sensitivity: bool, ladder: int) -> dict:
    """Search-settings overrides that switch the sensitivity analysis and the ladder seeds."""
    return {"sensitivity": dataclasses.replace(search.sensitivity, enabled=sensitivity), "ladder": ladder}


def near_front(recs, objectives, directions, margin: float):
    """Feasible records on the front, or within ``margin`` of it in latency (optimistic), as the confirmation pass selects."""
    from autoprune.pareto import dominated, to_minimization

    ok = [r for r in recs if r.feasible and all(o in r.metrics for o in objectives)]
    vec = {r.number: to_minimization(r.values(objectives), directions) for r in ok}
    out = []
    for r in ok:
        v = tuple(x * (1 - margin) if o == "latency_ms" else x for x, o in zip(vec[r.number], objectives))
        if not dominated(v, [w for n, w in vec.items() if n != r.number]):
            out.append(r)
    return out


def hypervolume(points: list[tuple[float, float]], dense_acc: float, dense_lat: float) -> float:
    """Normalised HV of (accuracy, latency) points: accuracy in units of HV_DROP above the reference, latency / dense."""
    from autoprune.pareto import hypervolume as hv

    ref_acc = dense_acc - HV_DROP
    vecs = [(lat / dense_lat, -(acc - ref_acc) / HV_DROP) for acc, lat in points]
    return hv(vecs, (1.0, 0.0))


def summarise(points: list[tuple[float, float]], dense_acc: float, dense_lat: float) -> dict:
    best = {}
    for w in WITHIN:
        lats = [lat for acc, lat in points if acc >= dense_acc - w - 1e-12]
        best[f"{w * 100:g}"] = min(lats) if lats else None
    at = {}
    for k in SPEEDUPS:
        accs = [acc for acc, lat in points if lat <= dense_lat / k]
        at[f"{k}x"] = max(accs) if accs else None
    return {"hv": hypervolume(points, dense_acc, dense_lat), "best_latency_within": best, "accuracy_at_speedup": at}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies" / "fashion-resnet.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, help="trials per arm (default: the uniform sweep's plan count)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--rounds", type=int, default=6, help="rounds of the shared confirmation pass")
    ap.add_argument("--window", type=float, default=0.2, help="timed window per round, s")
    ap.add_argument("--margin", type=float, default=0.1, help="also confirm trials within this latency margin of an arm's front")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-search-quality"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "search_quality"))
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from the results' JSON")
    args = ap.parse_args()
    if args.replot:
        res = Path(args.results)
        _plot(json.loads(res.with_suffix(".json").read_text()), res.with_suffix(".png"))
        return 0

    import optuna

    from autoprune.config import load_study_config
    from autoprune.plan import Plan
    from autoprune.profile import make_profiler
    from autoprune.profile.local import host_info
    from autoprune.profile.rounds import measure_rounds, trimmed_mean
    from autoprune.study import run_study
    from autoprune.study.candidate import build
    from autoprune.study.context import StudyContext
    from autoprune.study.records import objective_names, records

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = load_study_config(args.study)
    budget = args.budget or len(uniform_labels(base.search))
    out = Path(args.out)
    ctx = StudyContext.prepare(base)
    profiler = make_profiler(ctx.device)
    log_lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_lines.append(msg)

    log(f"search-quality benchmark: {base.name} ({base.task} {base.task_options}), budget {budget} trials per arm, "
        f"seeds {args.seeds}, arms {args.arms}; host {host_info()['cpu']}, {host_info()['cores']} cores")
    doc = {"study": args.study, "budget": budget, "host": host_info(), "seeds": {}}
    t_all = time.perf_counter()
    for k, seed in enumerate(args.seeds):
        arms = args.arms[k % len(args.arms):] + args.arms[: k % len(args.arms)]
        runs, walls = {}, {}
        for arm in arms:
            cfg = arm_config(base, arm, seed, budget)
            d = out / cfg.name
            if d.exists():
                import shutil

                shutil.rmtree(d)
            t0 = time.perf_counter()
            res = run_study(cfg, d, progress=False, log=lambda m: None)
            walls[arm] = time.perf_counter() - t0
            runs[arm] = res.study
            n = len(res.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
            log(f"seed {seed} arm {arm}: {n} complete trials in {walls[arm]:.0f} s (measured wall time)")

        # One shared confirmation pass over every arm's near-front trials and the dense reference.
        selected, arm_keys = {}, {a: [] for a in runs}
        dense_acc = None
        for arm, study in runs.items():
            objectives = objective_names(study)
            directions = [d.name.lower() for d in study.directions]
            recs = records(study, confirmed=False)
            dense_acc = study.user_attrs["dense"]["accuracy"]["value"]
            for r in near_front(recs, objectives, directions, args.margin) + [r for r in recs if r.baseline == "dense-fp32"]:
                sha = r.trial.user_attrs["sha256"]
                selected.setdefault(sha, (r.trial.user_attrs["plan"], r.value("accuracy")))
                arm_keys[arm].append((sha, r.value("accuracy"), r.baseline == "dense-fp32"))
        ctx.build_threads = next(iter(runs.values())).user_attrs.get("build_threads")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
            paths = {}
            for sha, (plan, _) in selected.items():
                art = build(ctx, Plan.from_dict({"layers": plan}, "trial plan"))
                if art.sha256 != sha:
                    raise SystemExit(f"rebuilt artifact differs from the measured one ({art.sha256[:12]} vs {sha[:12]})")
                paths[sha] = Path(tmp) / f"{sha[:16]}.onnx"
                paths[sha].write_bytes(art.onnx_bytes)
            rounds, failed = measure_rounds(profiler, paths, args.rounds, args.window)
        if failed:
            raise SystemExit(f"re-measurement failed: {failed}")
        confirm_s = time.perf_counter() - t0
        lat = {sha: trimmed_mean([m.latency_ms.value for m in ms]) for sha, ms in rounds.items()}
        cvs = [statistics.stdev(v) / statistics.mean(v) for v in ([m.latency_ms.value for m in ms] for ms in rounds.values())]
        dense_sha = next(sha for sha, _, is_dense in arm_keys[arms[0]] if is_dense)
        dense_lat = lat[dense_sha]
        log(f"seed {seed}: shared confirmation pass: {len(paths)} distinct artifacts, {args.rounds} interleaved rounds of "
            f">= {args.window:g} s, {confirm_s:.0f} s; noise floor: CV of round medians median {100 * statistics.median(cvs):.1f} % "
            f"(max {100 * max(cvs):.1f} %); dense fp32 {dense_acc:.4f} validation accuracy, {dense_lat:.3f} ms (confirmed)")
        seed_doc = {"dense": {"accuracy": dense_acc, "latency_ms": dense_lat}, "noise_cv_median": statistics.median(cvs),
                    "noise_cv_max": max(cvs), "confirm_seconds": confirm_s, "arms": {}}
        for arm in args.arms:
            pts = [(acc, lat[sha]) for sha, acc, _ in arm_keys[arm]]
            s = summarise(pts, dense_acc, dense_lat)
            s["wall_seconds"] = walls[arm]
            s["points"] = sorted(pts, key=lambda p: p[1])
            seed_doc["arms"][arm] = s
        doc["seeds"][str(seed)] = seed_doc
        log(_seed_table(seed, seed_doc))
        doc["wall_seconds"] = time.perf_counter() - t_all
        _write(doc, log_lines, Path(args.results))  # after every seed: a long run leaves what it finished
    print(_goals(doc))
    return 0


def _write(doc: dict, log_lines: list[str], res: Path) -> None:
    text = "\n".join(log_lines + [_goals(doc), f"total wall time {doc['wall_seconds']:.0f} s"])
    res.parent.mkdir(parents=True, exist_ok=True)
    res.with_suffix(".txt").write_text(text + "\n")
    res.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    _plot(doc, res.with_suffix(".png"))


def _fmt(v, spec=".3f", none="-"):
    return none if v is None else format(v, spec)


def _seed_table(seed: int, sd: dict) -> str:
    dense_lat = sd["dense"]["latency_ms"]
    rows = [f"seed {seed} (latency: confirmed, ms; speed-up vs dense fp32 in brackets; accuracy: validation, measured)",
            f"  {'arm':8s} {'HV':>6s}  {'best within 0.5 / 1 / 2 pt':>38s}  {'acc at 2x / 4x / 8x':>22s}  {'wall s':>6s}"]
    for arm, a in sd["arms"].items():
        best = " / ".join(f"{_fmt(v)} ({dense_lat / v:.1f}x)" if v else "-" for v in a["best_latency_within"].values())
        acc = " / ".join(_fmt(v, ".4f") for v in a["accuracy_at_speedup"].values())
        rows.append(f"  {arm:8s} {a['hv']:6.3f}  {best:>38s}  {acc:>22s}  {a['wall_seconds']:6.0f}")
    return "\n".join(rows)


def _goals(doc: dict) -> str:
    lines = ["goals (per seed):"]
    for seed, sd in doc["seeds"].items():
        a = sd["arms"]
        noise = f"noise floor CV {100 * sd['noise_cv_median']:.1f} %"
        if "default" in a and "uniform" in a:
            r = a["default"]["hv"] / a["uniform"]["hv"] if a["uniform"]["hv"] else float("inf")
            lines.append(f"  seed {seed}: HV(default)/HV(uniform) = {r:.3f} (goal >= 1.05: {'met' if r >= 1.05 else 'NOT met'}); {noise}")
            bd, bu = a["default"]["best_latency_within"]["1"], a["uniform"]["best_latency_within"]["1"]
            if bd and bu:
                lines.append(f"  seed {seed}: within 1 point, uniform's best / default's best latency = {bu / bd:.2f}x "
                             f"(goal >= 1.2x: {'met' if bu / bd >= 1.2 else 'NOT met'})")
        if "default" in a and "random" in a:
            r = a["default"]["hv"] / a["random"]["hv"] if a["random"]["hv"] else float("inf")
            lines.append(f"  seed {seed}: HV(default)/HV(random) = {r:.3f} (goal >= 1.03: {'met' if r >= 1.03 else 'NOT met'})")
    return "\n".join(lines)


def _plot(doc: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot")
        return
    seeds = list(doc["seeds"].items())
    fig, axes = plt.subplots(1, len(seeds), figsize=(5.2 * len(seeds), 4.2), squeeze=False)
    for ax, (seed, sd) in zip(axes[0], seeds):
        dense_acc, dense_lat = sd["dense"]["accuracy"], sd["dense"]["latency_ms"]
        for arm, a in sd["arms"].items():
            pts = [(lat, acc) for acc, lat in a["points"] if acc >= dense_acc - 0.1]
            front, best = [], -1.0
            for lat, acc in sorted(pts):
                if acc > best:
                    front.append((lat, acc))
                    best = acc
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", marker="o", ms=3, label=f"{arm} (HV {a['hv']:.2f})")
        ax.axhline(dense_acc - 0.01, color="grey", lw=0.6, ls=":", label="dense fp32 - 1 point")
        ax.plot([dense_lat], [dense_acc], "k*", ms=8, label="dense fp32")
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("latency, ms (confirmed, measured)")
        ax.set_ylabel("validation accuracy (measured)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
