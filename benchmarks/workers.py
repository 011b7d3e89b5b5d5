"""Many workers on one study (issue #15): trials per minute with 1, 2, 4 workers, and whether timings agree.

For each worker count N this runs ``autoprune run STUDY --storage <fresh PostgreSQL database>
--workers N --n-trials T`` on a temporary copy of the study YAML whose ``search.timeout_s`` is
removed, so every run ends on its trial budget rather than the clock (the quickstart's 330 s
would cut the 1-worker run short and make the counts incomparable). The sensitivity analysis
stays as the study has it (on in the quickstart): it is part of what a study does, its ladder
seeds are identical plans in every run (more pairs to compare), and its time falls outside the
search window measured here; ``--no-sensitivity`` turns it (and the ladder) off in the copy, about
1-2 minutes less per run. Per run, from the storage:

- search wall time: first trial start to last trial end (Optuna's datetime_start/complete);
- trials per minute: the study's counted, finished trials over that window, and the speed-up
  over 1 worker;
- the confirmation pass's own seconds (``study.user_attrs["confirmation"]``), reported apart.

Timing agreement: plans that both the 1-worker and the 2-worker study measured (matched by
their parameters: the baselines, the ladder seeds, and any sampled plan that happens to repeat)
have their search latencies compared as ratios (2 workers / 1 worker). Beside them, the noise
floor measured in the same run: the dense-int8 artifact, built by the study's own build
function, measured ``--noise-reps`` times with the local profiler (the study's device profile)
before the first run, between runs and after the last, so the noise spans the same hours as the
comparison; its ratios are every pair of single measurements taken in different gaps.

Usage: nice -n 19 python benchmarks/workers.py [--workers 1 2 4] [--n-trials 40] [--noise-reps 5]
Writes benchmarks/results/workers.txt and .json (``--results`` to change). Every number is
measured on this machine; host CPU and load average are printed with them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("AUTOPRUNE_BENCH_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "studies" / "quickstart.yaml"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts to run (default 1 2 4)")
    ap.add_argument("--n-trials", type=int, default=40, help="the study-wide trial budget of every run (default 40)")
    ap.add_argument("--noise-reps", type=int, default=5, help="measurements of the dense-int8 artifact in each gap between runs")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "workers"))
    ap.add_argument("--no-sensitivity", action="store_true",
                    help="turn the study's sensitivity analysis (and so its ladder seeds) off in the copy: about 1-2 min less per run")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases and the run directories")
    args = ap.parse_args()
    if 1 not in args.workers:
        ap.error("--workers must include 1 (the speed-up and the agreement are relative to it)")

    from autoprune.profile.local import host_info

    tmp = Path(tempfile.mkdtemp(prefix="autoprune-bench-workers-"))
    study_yaml = _unbounded_copy(Path(args.study), tmp, args.no_sensitivity)
    artifact, sha = _dense_int8(study_yaml, tmp)
    profiler = _profiler(study_yaml)
    load_before = os.getloadavg()
    noise: list[list[float]] = [_measure(profiler, artifact, args.noise_reps)]
    runs, databases = {}, []
    try:
        for n in sorted(set(args.workers)):
            url = _create_database()
            databases.append(url)
            runs[n] = _run(study_yaml, url, n, args.n_trials, tmp / f"w{n}")
            noise.append(_measure(profiler, artifact, args.noise_reps))
    finally:
        profiler.close()
        if not args.keep:
            for url in databases:
                _drop_database(url)
    load_after = os.getloadavg()

    base = runs[1]["trials_per_minute"]
    for r in runs.values():
        r["speedup_vs_1_worker"] = r["trials_per_minute"] / base
    # the noise artifact is the studies' own dense-int8 trial only if the bytes say so
    same_bytes = {n: any(p["label"] == "dense-int8" and p["sha256"] == sha for p in r["plans"].values()) for n, r in runs.items()}
    agreement = _agreement(runs[1]["plans"], runs[2]["plans"]) if 2 in runs else []
    for r in runs.values():
        r.pop("plans")
    flat = [v for gap in noise for v in gap]
    noise_ratios = [b / a for ga, gb in itertools.combinations(noise, 2) for a in ga for b in gb]
    doc = {
        "machine": {"cpu": host_info()["cpu"], "cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": load_after},
        "settings": {"study": args.study, "timeout_s": "removed (temporary copy of the YAML)", "n_trials": args.n_trials,
                     "sensitivity": "off (--no-sensitivity)" if args.no_sensitivity else "as the study has it",
                     "noise_reps_per_gap": args.noise_reps, "storage": "PostgreSQL (Optuna RDB), a fresh database per run"},
        "runs": {str(n): r for n, r in runs.items()},
        "agreement_1_vs_2_workers": agreement,
        "noise": {"artifact": "dense-int8", "sha256": sha, "measurements_ms_by_gap": noise,
                  "same_bytes_as_dense_int8_trial": {str(n): v for n, v in same_bytes.items()},
                  "cv": statistics.stdev(flat) / statistics.mean(flat) if len(flat) > 1 else None,
                  "ratio_summary": _summary(noise_ratios)},
        "agreement_summary": _summary([a["ratio"] for a in agreement]),
    }
    text = _render(doc)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2))
    out.with_suffix(".txt").write_text(text)
    print(text, end="")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _unbounded_copy(study: Path, tmp: Path, no_sensitivity: bool) -> Path:
    """The study YAML without ``search.timeout_s``, written into ``tmp``: runs end on their trial budget."""
    doc = yaml.safe_load(study.read_text())
    search = doc.setdefault("search", {})
    search.pop("timeout_s", None)
    if no_sensitivity:
        search["sensitivity"] = {**(search.get("sensitivity") or {}), "enabled": False}
        search["ladder"] = 0
    path = tmp / study.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _dense_int8(study_yaml: Path, tmp: Path) -> tuple[Path, str]:
    """The study's dense-int8 baseline, built by the study's own build function (the bytes its trial measures)."""
    from autoprune.baselines import baseline_params
    from autoprune.config import load_study_config
    from autoprune.study.candidate import build
    from autoprune.study.context import StudyContext

    ctx = StudyContext.prepare(load_study_config(study_yaml))
    artifact = build(ctx, ctx.space.plan_from_params(baseline_params(ctx.space, "dense-int8")))
    path = tmp / "dense-int8.onnx"
    path.write_bytes(artifact.onnx_bytes)
    return path, artifact.sha256


def _profiler(study_yaml: Path):
    from autoprune.config import load_study_config
    from autoprune.device import load_device_profile
    from autoprune.profile import make_profiler

    return make_profiler(load_device_profile(load_study_config(study_yaml).device))


def _measure(profiler, artifact: Path, reps: int) -> list[float]:
    """``reps`` measurements as a search trial takes them (the device profile's window), under the workers' lock."""
    from autoprune.study.workers import measure_lock

    values = []
    for _ in range(reps):
        with measure_lock(profiler.device.profiler.kind):
            values.append(profiler.measure(artifact).latency_ms.value)
    return values


def _create_database() -> str:
    import sqlalchemy

    name = f"autoprune_bench_workers_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as e:
        raise SystemExit(f"PostgreSQL must run at {POSTGRES} (set AUTOPRUNE_BENCH_POSTGRES): {e}") from None
    finally:
        admin.dispose()
    return f"{POSTGRES}/{name}"


def _drop_database(url: str) -> None:
    import sqlalchemy

    name = url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _run(study_yaml: Path, url: str, workers: int, n_trials: int, out: Path) -> dict:
    """One ``autoprune run`` with ``workers`` processes; its numbers, read back from the storage."""
    import optuna

    from autoprune.config import load_study_config
    from autoprune.study.workers import OVER_BUDGET, counted

    argv = [sys.executable, "-m", "autoprune", "run", str(study_yaml), "--storage", url, "--workers", str(workers),
            "--n-trials", str(n_trials), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t0

    study = optuna.load_study(study_name=load_study_config(study_yaml).name, storage=url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in counted(trials) if t.state.is_finished()]
    timed = [t for t in trials if t.datetime_start and t.datetime_complete]
    search_s = (max(t.datetime_complete for t in timed) - min(t.datetime_start for t in timed)).total_seconds()
    confirmation = study.user_attrs.get("confirmation") or {}
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "workers": workers,
        "trials_finished": len(finished),
        "trials_complete": len(complete),
        "turned_away_over_budget": sum(bool(t.user_attrs.get(OVER_BUDGET)) for t in trials),
        "search_seconds": search_s,
        "trials_per_minute": len(finished) / (search_s / 60),
        "confirmation_seconds": confirmation.get("seconds"),
        "confirmation_trials": len(confirmation.get("trials", {})),
        "command_seconds": wall,
        "plans": {_key(t.params): {"trial": t.number, "label": _label(t), "latency_ms": t.user_attrs["metrics"]["latency_ms"]["value"],
                                   "sha256": t.user_attrs.get("sha256")}
                  for t in reversed(complete) if "latency_ms" in t.user_attrs.get("metrics", {})},
    }


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def _label(trial) -> str:
    return trial.user_attrs.get("baseline") or trial.user_attrs.get("seed") or "sampled"


def _agreement(one: dict, two: dict) -> list[dict]:
    """The plans both studies measured, with their search latencies and the ratio (2 workers / 1 worker)."""
    rows = [{"plan": one[k]["label"], "trial_1_worker": one[k]["trial"], "trial_2_workers": two[k]["trial"],
             "latency_ms_1_worker": one[k]["latency_ms"], "latency_ms_2_workers": two[k]["latency_ms"],
             "ratio": two[k]["latency_ms"] / one[k]["latency_ms"]} for k in one.keys() & two.keys()]
    return sorted(rows, key=lambda r: r["trial_1_worker"])


def _summary(ratios: list[float]) -> dict | None:
    if not ratios:
        return None
    q = statistics.quantiles(ratios, n=20, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 19
    return {"n": len(ratios), "min": min(ratios), "p5": q[0], "median": statistics.median(ratios), "p95": q[-1], "max": max(ratios)}


def _render(doc: dict) -> str:
    m, s = doc["machine"], doc["settings"]
    lb, la = m["load_average_1_5_15_before"], m["load_average_1_5_15_after"]
    lines = [
        "autoprune many-workers benchmark (all numbers measured on this machine)",
        f"host: {m['cpu']}, {m['cores']} cores; load average {lb[0]:.1f}/{lb[1]:.1f}/{lb[2]:.1f} before, "
        f"{la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f} after",
        f"study: {s['study']} with search.timeout_s removed, {s['n_trials']} trials per run, {s['storage']}",
        "",
        "workers  trials  search wall s  trials/min  speed-up vs 1  confirmation s  (command s, turned away)",
    ]
    for n, r in doc["runs"].items():
        conf = "-" if r["confirmation_seconds"] is None else f"{r['confirmation_seconds']:.0f} ({r['confirmation_trials']} trials)"
        lines.append(f"{n:>7}  {r['trials_finished']:>6}  {r['search_seconds']:>13.1f}  {r['trials_per_minute']:>10.1f}  "
                     f"{r['speedup_vs_1_worker']:>12.2f}x  {conf:>14}  ({r['command_seconds']:.0f} s, {r['turned_away_over_budget']})")
    lines += ["", "search wall: first trial start to last trial end in the storage; trials: counted, finished ones;",
              "command s: the whole `autoprune run` (start, dense reference, sensitivity analysis, search, confirmation, outputs)."]
    rows, a, nz = doc["agreement_1_vs_2_workers"], doc["agreement_summary"], doc["noise"]
    if rows:
        lines += ["", "same plans measured in the 1-worker and the 2-worker study (search latency, measured):",
                  "plan            trial(1w) trial(2w)  1 worker ms  2 workers ms  ratio 2w/1w"]
        lines += [f"{r['plan']:<15} {r['trial_1_worker']:>9} {r['trial_2_workers']:>9}  {r['latency_ms_1_worker']:>11.3f}  "
                  f"{r['latency_ms_2_workers']:>12.3f}  {r['ratio']:>11.3f}" for r in rows]
    nr = nz["ratio_summary"]
    lines += ["", "side by side: ratios of the same plan's latency across runs vs the machine's own noise (measured):",
              "                                   n      min      p5   median     p95      max"]
    if a:
        lines.append(f"1 vs 2 workers, same plans      {a['n']:>4}  {a['min']:7.3f} {a['p5']:7.3f} {a['median']:7.3f} {a['p95']:7.3f} {a['max']:7.3f}")
    if nr:
        lines.append(f"noise: dense-int8 re-measured   {nr['n']:>4}  {nr['min']:7.3f} {nr['p5']:7.3f} {nr['median']:7.3f} {nr['p95']:7.3f} {nr['max']:7.3f}")
    same = nz["same_bytes_as_dense_int8_trial"]
    lines.append("noise artifact: " + ("the same bytes as every run's dense-int8 trial" if all(same.values())
                 else f"NOT the same bytes as the dense-int8 trial in run(s) {', '.join(k for k, v in same.items() if not v)}"))
    gaps = ", ".join(f"{statistics.median(g):.3f}" for g in nz["measurements_ms_by_gap"])
    lines.append(f"noise: dense-int8 (sha256 {nz['sha256'][:12]}) measured {len(nz['measurements_ms_by_gap'][0])}x before the first run, "
                 f"between runs and after the last; medians per gap {gaps} ms; CV of all {nz['cv'] * 100:.1f} %"
                 if nz["cv"] is not None else "noise: too few measurements for a CV")
    lines.append("noise ratios: every pair of single measurements taken in different gaps (later / earlier), as the "
                 "1-vs-2 ratios pair single search measurements taken in different runs")
    if a and nr:
        inside = sum(nr["min"] <= r["ratio"] <= nr["max"] for r in rows)
        lines.append(f"{inside} of {len(rows)} 1-vs-2-worker ratios lie within the noise's range ({nr['min']:.3f}-{nr['max']:.3f})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
