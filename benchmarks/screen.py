"""The screen (autoprune.study.screen) on a latency-budgeted quickstart: the same study with and without it.

For each device, the quickstart YAML (``timeout_s`` removed, ``n_trials`` set, the same seed)
runs twice in its own process (``autoprune run``), ``search.screen`` true and false:

* ``local-cpu`` in ``search.mode: model``, its latency predicted by a calibration of this
  machine (``--calibration``; by default the one benchmarks/costmodel.py wrote), and a third
  run in ``measure`` mode (every trial built and timed, nothing to screen with) for scale;
* ``cortex-m7``, a modelled microcontroller (latency computed from the graph).

The budget, ``constraints.latency_ms``, is fixed before either run, the same for both and not
tuned to the screen: ``--budget-share`` (default 0.5) of the dense int8 plan's latency on that
device (a deadline of half what plain int8 gives). Every latency of the screened and unscreened
runs is ``modelled`` (exact and repeatable), so their fronts compare without a timing floor.
Reported per run: wall time, trials finished per minute of search (complete and screened) and
complete ones per minute, the share screened, the plans built unscreened because the screen
would not have paid (:class:`autoprune.study.screen.ScreenPolicy`), the median seconds of a
screened and of a built trial (from the storage), the feasible front and its hypervolume over
(accuracy, latency). Then the screen is checked against the run without it: every sampled plan
there is screened again afterwards, and its forecast and verdict are compared with the trial's
own latency and its feasibility on the budget and the device's limits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune._schema import atomic_write_text  # noqa: E402
from costmodel_modes import run_study_process  # noqa: E402

PRUNED, COMPLETE = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE


def _device_profile(tmp: Path, device: str, calibration: Path) -> Path:
    if device != "local-cpu":
        return ROOT / "device_profiles" / f"{device}.yaml"
    profile = yaml.safe_load((ROOT / "device_profiles" / "local-cpu.yaml").read_text())
    profile["calibration"] = str(calibration.resolve())
    path = tmp / "local-cpu.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def _study_yaml(tmp: Path, device: str, profile: Path, n_trials: int, budget: float | None, run: str) -> Path:
    """The quickstart on ``device``; ``run``: ``on``/``off`` (the screen, in mode model on local-cpu) or ``measure``."""
    cfg = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    cfg["name"] = f"screen-{device}-{run}"
    cfg["device"] = str(profile)
    cfg["search"]["n_trials"] = n_trials
    cfg["search"].pop("timeout_s", None)
    cfg["search"]["screen"] = run == "on"
    if device == "local-cpu" and run != "measure":
        cfg["search"]["mode"] = "model"
    if budget is not None:
        cfg.setdefault("constraints", {})["latency_ms"] = budget
    path = tmp / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _context(study_yaml: Path):
    from autoprune.config import load_study_config
    from autoprune.study.context import StudyContext
    from autoprune.study.hybrid import mode_profiler

    config = load_study_config(study_yaml)
    ctx = StudyContext.prepare(config)
    return ctx, mode_profiler(config.search.mode, ctx.device, config.objectives)


def _budget(study_yaml: Path, share: float) -> tuple[float, float]:
    """``share`` x the dense int8 plan's latency on the study's device, and that latency."""
    from autoprune.baselines import baseline_params
    from autoprune.study.screen import screen

    ctx, profiler = _context(study_yaml)
    plan = ctx.space.plan_from_params(baseline_params(ctx.space, "dense-int8"))
    int8 = screen(ctx, plan, profiler).forecast.measurement.latency_ms.value
    profiler.close()
    return share * int8, int8


def _summary(run_dir: Path, name: str) -> dict:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'study.db'}")
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (PRUNED, COMPLETE)]
    screened = [t for t in trials if t.state == PRUNED and t.user_attrs.get("screen", {}).get("passed") is False]
    built = [t for t in trials if t.state == COMPLETE]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds() / 60.0
    front = json.loads((run_dir / "front.json").read_text())
    points = [(p["metrics"]["accuracy"]["value"], p["metrics"]["latency_ms"]["value"]) for p in front["points"]]
    return {
        "finished": len(trials), "screened": len(screened), "complete": len(built),
        "built_unscreened": sum("skipped" in t.user_attrs.get("screen", {}) for t in built),  # the screen did not pay
        "finished_per_min": len(trials) / span, "complete_per_min": len(built) / span,
        "screened_median_s": statistics.median(t.duration.total_seconds() for t in screened) if screened else None,
        "built_median_s": statistics.median(t.duration.total_seconds() for t in built),
        "front": points,
        "front_source": sorted({p["metrics"]["latency_ms"]["source"] for p in front["points"]}),
    }


def _agreement(study_yaml: Path, run_dir: Path, name: str) -> dict:
    """Screen every sampled plan of the run without the screen; compare with what its trial found."""
    from autoprune.plan import Plan
    from autoprune.study.screen import screen

    ctx, profiler = _context(study_yaml)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'study.db'}")
    ctx.build_threads = study.user_attrs.get("build_threads")
    budget = ctx.config.constraints.latency_ms
    n = same_value = same_verdict = 0
    worst = 0.0
    for t in study.get_trials(deepcopy=False, states=(COMPLETE,)):
        if "baseline" in t.user_attrs or "plan" not in t.user_attrs:
            continue
        s = screen(ctx, Plan.from_dict({"version": 1, "layers": t.user_attrs["plan"]}), profiler)
        forecast = s.forecast.measurement.latency_ms.value
        actual = t.user_attrs["metrics"]["latency_ms"]["value"]
        n += 1
        worst = max(worst, abs(forecast / actual - 1.0))
        same_value += abs(forecast / actual - 1.0) <= 1e-9
        # what the screen holds a plan to: the budget and the device's hard limits (a microcontroller's flash and SRAM)
        broke = actual > budget or any(v > 0 for k, v in t.constraints.items() if k.startswith("device_"))
        same_verdict += bool(s.reason) == broke
    profiler.close()
    return {"plans": n, "same_latency": same_value, "same_verdict": same_verdict, "worst_relative_difference": worst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=["local-cpu", "cortex-m7"])
    ap.add_argument("--n-trials", type=int, default=40)
    ap.add_argument("--budget-share", type=float, default=0.5)
    ap.add_argument("--calibration", default=str(ROOT / "benchmarks" / "results" / "costmodel-calibration.json"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "screen"))
    args = ap.parse_args()
    from autoprune.pareto import hypervolume, reference_point, to_minimization

    lines = [f"the screen on a latency-budgeted quickstart ({args.n_trials} trials a run, seed 0; budget {args.budget_share:g} x "
             "the dense int8 plan's latency on the device; every latency modelled: exact and repeatable, no timing floor; "
             "wall times and trial seconds measured, wall clock)"]
    doc: dict = {"n_trials": args.n_trials, "budget_share": args.budget_share, "devices": {}}
    with tempfile.TemporaryDirectory(prefix="autoprune-screen-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for device in args.devices:
            profile = _device_profile(tmp, device, Path(args.calibration))
            budget, int8 = _budget(_study_yaml(tmp, device, profile, args.n_trials, None, "on"), args.budget_share)
            runs = {}
            for run in ("on", "off") + (("measure",) if device == "local-cpu" else ()):
                study = _study_yaml(tmp, device, profile, args.n_trials, budget, run)
                name = yaml.safe_load(study.read_text())["name"]
                run_dir = tmp / name
                wall = run_study_process(study, run_dir)
                runs[run] = {"wall_s": wall, **_summary(run_dir, name), "yaml": study, "dir": run_dir, "name": name}
                print(f"{name}: {wall:.0f} s", flush=True)
            agree = _agreement(runs["off"]["yaml"], runs["off"]["dir"], runs["off"]["name"])
            pts = {k: [to_minimization(p, ["maximize", "minimize"]) for p in r["front"]] for k, r in runs.items()}
            ref = reference_point(pts["on"] + pts["off"])  # the modelled fronts (a measured one is on other numbers)
            on, off = runs["on"], runs["off"]
            lines.append(f"{device}: budget {budget:.4g} ms (modelled; dense int8 {int8:.4g} ms); reference point {ref}")
            for k, r in runs.items():
                r["hypervolume"] = hypervolume(pts[k], ref) if k != "measure" else None
                hv = f", hypervolume {r['hypervolume']:.5g}" if r["hypervolume"] is not None else " (measured latencies: not compared)"
                lines.append(
                    f"  {'screen ' + k if k != 'measure' else 'measure   '}: wall {r['wall_s']:5.0f} s, {r['finished']} trials finished "
                    f"({r['screened']} screened, {r['complete']} built, {r['built_unscreened']} of them unscreened as the screen "
                    f"would not pay), {r['finished_per_min']:.1f} finished / min of search, "
                    f"{r['complete_per_min']:.1f} built / min; median trial {r['built_median_s']:.2f} s built"
                    + (f", {r['screened_median_s']:.2f} s screened" if r["screened_median_s"] is not None else "")
                    + f"; feasible front {len(r['front'])} points ({'/'.join(r['front_source'])}){hv}")
            lines.append(f"  on / off: {on['finished_per_min'] / off['finished_per_min']:.2f}x trials finished per minute, "
                         f"wall {on['wall_s'] / off['wall_s']:.2f}x, hypervolume {on['hypervolume'] / off['hypervolume']:.3f}x")
            if "measure" in runs:
                m = runs["measure"]
                lines.append(f"  against measure: screen on {on['finished_per_min'] / m['finished_per_min']:.2f}x trials finished per minute "
                             f"(off {off['finished_per_min'] / m['finished_per_min']:.2f}x), wall {on['wall_s'] / m['wall_s']:.2f}x "
                             f"(off {off['wall_s'] / m['wall_s']:.2f}x)")
            lines.append(f"  the screen against the run without it: {agree['plans']} sampled plans screened afterwards; forecast = the "
                         f"trial's latency for {agree['same_latency']} (worst difference {agree['worst_relative_difference']:.2g}), "
                         f"same verdict as its feasibility on the budget for {agree['same_verdict']}")
            doc["devices"][device] = {"budget_ms": budget, "dense_int8_ms": int8, "agreement": agree, "reference_point": ref,
                                      "runs": {k: {kk: vv for kk, vv in r.items() if kk not in ("yaml", "dir")}
                                               for k, r in runs.items()}}
    text = "\n".join(lines) + "\n"
    print(text, end="")
    atomic_write_text(f"{args.results}.txt", text)
    atomic_write_text(f"{args.results}.json", json.dumps(doc, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
