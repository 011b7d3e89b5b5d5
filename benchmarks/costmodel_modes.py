"""Part ``modes`` of benchmarks/costmodel.py: the quickstart in search.mode measure, model and hybrid.

Each study runs in its own process (``autoprune run``) on a copy of the quickstart YAML with
``n_trials`` set, ``timeout_s`` removed (every run ends on its budget) and the device profile
a copy of ``local-cpu`` naming the calibration. Reported per mode: the study's wall time
(process start to exit), the search's trials per minute (first trial start to last trial end,
from the storage), how many trials hybrid measured. Then every run's front is rebuilt
(``autoprune.build`` through the study's own build function, so the bytes are the trial's)
and all fronts' artifacts are timed together with the confirmation protocol (interleaved
rounds, trimmed mean of the round medians): the hypervolume of each front over (accuracy,
that latency) with one reference point, so the three fronts are compared on the same
measurements, taken in the same minutes. With ``--measure-twice`` the measure study runs a second
time, last: how far two runs of the same study differ is the floor of every hypervolume ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _study_yaml(tmp: Path, run: str, mode: str, n_trials: int, device: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    cfg["name"] = f"quickstart-{run}"
    cfg["device"] = str(device)
    cfg["search"]["n_trials"] = n_trials
    cfg["search"].pop("timeout_s", None)
    cfg["search"]["mode"] = mode
    path = tmp / f"quickstart-{run}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_study_process(study_yaml: Path, run_dir: Path) -> float:
    """``autoprune run STUDY --out RUN_DIR --quiet`` in its own process; its wall time in seconds (exits on failure)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autoprune", "run", str(study_yaml), "--out", str(run_dir), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{study_yaml.stem} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _search_rate(run_dir: Path, name: str) -> tuple[float, int]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'study.db'}")
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    return len(done) / ((end - start).total_seconds() / 60.0), len(done)


def _front_artifacts(run_dir: Path, config_path: Path, out: Path, run: str) -> list[tuple[str, float, Path]]:
    """``(key, accuracy, path)`` of every point of the run's front, rebuilt with the study's build."""
    from autoprune.config import load_study_config
    from autoprune.plan import Plan
    from autoprune.study.candidate import build
    from autoprune.study.context import StudyContext

    config = load_study_config(config_path)
    ctx = StudyContext.prepare(config)
    study = optuna.load_study(study_name=config.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    ctx.build_threads = study.user_attrs.get("build_threads")
    front = json.loads((run_dir / "front.json").read_text())
    made = []
    for p in front["points"]:
        plan = Plan.from_dict({"version": 1, "layers": p["plan"]}) if "plan" in p else None
        if plan is None:
            continue
        artifact = build(ctx, plan)
        path = out / f"{config.name}-{p['number']}.onnx"
        path.write_bytes(artifact.onnx_bytes)
        made.append((f"{run}:{p['number']}", float(p["metrics"]["accuracy"]["value"]), path))
    return made


def modes(args, lines: list[str], doc: dict, run=None) -> None:
    from autoprune.device import load_device_profile
    from autoprune.pareto import hypervolume, reference_point, to_minimization
    from autoprune.profile import make_profiler
    from autoprune.profile.rounds import measure_rounds, trimmed_mean

    cal = Path(args.results).with_name("costmodel-calibration.json")
    if not cal.is_file():
        raise SystemExit(f"{cal}: no calibration; run --part accuracy first")
    with tempfile.TemporaryDirectory(prefix="autoprune-modes-") as tmpdir:
        tmp = Path(tmpdir)
        profile = yaml.safe_load((ROOT / "device_profiles" / "local-cpu.yaml").read_text())
        profile["calibration"] = str(cal.resolve())
        device = tmp / "local-cpu.yaml"
        device.write_text(yaml.safe_dump(profile, sort_keys=False))
        results = {}
        # A second measure study, last, gives the floor: how far two runs of the same study's front differ.
        runs = [("measure", "measure"), ("model", "model"), ("hybrid", "hybrid")]
        runs += [("measure-again", "measure")] if args.measure_twice else []
        for label, mode in runs:
            study = _study_yaml(tmp, label, mode, args.n_trials, device)
            run_dir = tmp / f"run-{label}"
            wall = run_study_process(study, run_dir)
            rate, n = _search_rate(run_dir, f"quickstart-{label}")
            measured = None
            if mode == "hybrid":
                st = optuna.load_study(study_name=f"quickstart-{label}", storage=f"sqlite:///{run_dir / 'study.db'}")
                decided = [t.user_attrs.get("measurement", {}).get("device", {}).get("hybrid", {}).get("decided")
                           for t in st.get_trials(deepcopy=False)]
                measured = (decided.count("measured"), decided.count("modelled"))
            results[label] = {"wall_s": wall, "trials_per_min": rate, "trials": n, "run": run_dir, "yaml": study,
                             "hybrid_measured_modelled": measured}
            print(f"{label}: {n} trials, {rate:.1f} trials/min of search, {wall:.0f} s in all", flush=True)
        arts = []
        for label, r in results.items():
            arts += _front_artifacts(r["run"], r["yaml"], tmp, label)
        dev = load_device_profile("local-cpu")
        profiler = make_profiler(dev)
        got, failed = measure_rounds(profiler, {k: p for k, _, p in arts}, args.rounds, args.window)
        profiler.close()
    latency = {k: trimmed_mean([m.latency_ms.value for m in v]) for k, v in got.items()}
    points = {k: to_minimization((acc, latency[k]), ["maximize", "minimize"]) for k, acc, _ in arts if k in latency}
    ref = reference_point(list(points.values()))
    base = results["measure"]
    lines.append(f"study modes on the quickstart ({args.n_trials} trials each, same calibration; fronts re-measured together, "
                 f"{args.rounds} interleaved rounds of {args.window} s; reference point {ref}):")
    for label, r in results.items():
        pts = [p for k, p in points.items() if k.startswith(label + ":")]
        hv = hypervolume(pts, ref)
        r["hypervolume"] = hv
        extra = ""
        if r["hybrid_measured_modelled"]:
            extra = f"; measured {r['hybrid_measured_modelled'][0]} of {sum(r['hybrid_measured_modelled'])} trials"
        lines.append(f"  {label:13s} {r['trials']:3d} trials, {r['trials_per_min']:6.1f} trials/min ({r['trials_per_min'] / base['trials_per_min']:.2f}x "
                     f"measure), wall {r['wall_s']:5.0f} s ({r['wall_s'] / base['wall_s']:.2f}x), front {len(pts)} points, "
                     f"hypervolume {hv:.5g} ({hv / base.get('hypervolume', hv):.3f}x measure){extra}")
    if "measure-again" in results:
        lines.append("  (measure-again: the same measure study run a second time, after the others: how far two runs of one "
                     "study's front differ, the floor of the hypervolume comparisons)")
    doc["modes"] = {m: {k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()} for m, r in results.items()}
    doc["modes_front_latency_ms"] = latency
