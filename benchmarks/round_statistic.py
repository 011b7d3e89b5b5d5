"""Which summary of interleaved rounds repeats? Pass-to-pass spread of candidate statistics.

Takes a finished study (by default the quickstart benchmark's run), rebuilds every trial its
confirmation pass re-measured (``autoprune export``: byte-identical artifacts), and measures
them all ``--passes`` times with the confirmation protocol (``--rounds`` interleaved rounds of
the study's window, :func:`autoprune.profile.rounds.measure_rounds`). Or, with ``--models DIR``,
up to ``--max-models`` ONNX files of that directory (drawn at random; for instance a
``benchmarks/costmodel.py --dump``'s held-out models) on the ``local-cpu`` profile, in windows of
``--window`` s. For each way of summarising one model's rounds (their medians, or every round's
fastest run), it reports how far the summaries of the same model differ between passes
(|a/b - 1| over every pair of passes and every model): the statistic a measurement reports
should be the one a re-measurement reproduces.

    python benchmarks/round_statistic.py [--run runs/bench-quickstart | --models DIR] [--passes 4] [--rounds 10] [--out benchmarks/results/round_statistic.txt]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from autoprune._schema import atomic_write_text
from autoprune.profile.rounds import round_fastest, trimmed_mean  # the confirmation pass's own summary

ROOT = Path(__file__).resolve().parents[1]


# Each summarises one model's rounds, ``[(round median, round's fastest run), ...]`` (ms).
STATISTICS = {
    "quietest round (min of round medians)": lambda r: min(m for m, _ in r),
    "mean of the 3 quietest rounds": lambda r: statistics.fmean(sorted(m for m, _ in r)[:3]),
    "25th percentile of round medians": lambda r: float(np.percentile([m for m, _ in r], 25)),
    "10%-trimmed mean of round medians (what the pass reports)": lambda r: trimmed_mean([m for m, _ in r]),
    "median of round medians": lambda r: statistics.median(m for m, _ in r),
    "fastest run over the rounds (what the cost model fits)": lambda r: min(f for _, f in r),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "bench-quickstart"), help="a finished study's run directory")
    ap.add_argument("--models", type=Path, help="time the ONNX files in this directory instead of a study's trials")
    ap.add_argument("--max-models", type=int, default=30)
    ap.add_argument("--window", type=float, default=0.25, help="with --models: the timed window (s)")
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from autoprune.export import export_trial, load_run
    from autoprune.profile import make_profiler
    from autoprune.profile.local import host_info
    from autoprune.profile.rounds import measure_rounds
    from autoprune.device import DeviceProfile, load_device_profile

    load0, t0 = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoprune-rounds-") as tmp:
        if args.models:
            files = sorted(args.models.glob("*.onnx"))
            if len(files) < 2:
                raise SystemExit(f"{args.models}: {len(files)} ONNX file(s); need 2 or more")
            picked = np.random.default_rng(0).choice(len(files), size=min(args.max_models, len(files)), replace=False)
            paths = {files[i].stem: files[i] for i in sorted(picked)}
            window, profiler = args.window, make_profiler(load_device_profile("local-cpu"))
            source = f"{len(paths)} ONNX files of {args.models} (of {len(files)}, drawn at random)"
        else:
            run, study = load_run(args.run)
            trials = sorted(int(n) for n in (study.user_attrs.get("confirmation") or {}).get("trials", {}))
            if len(trials) < 2:
                raise SystemExit(f"{args.run}: the study's confirmation pass re-measured {len(trials)} trial(s); need 2 or more")
            window = run["config"].get("confirm", {}).get("min_duration_s")
            profiler = make_profiler(DeviceProfile.from_dict(study.user_attrs["device"], f"{args.run} (device profile)"))
            paths = {n: export_trial(args.run, Path(tmp) / f"trial-{n}", trial=n).out_dir / "model.onnx" for n in trials}
            source = f"{args.run} ({run['study_name']}); {len(trials)} trials its confirmation pass re-measured, rebuilt byte-identical"
        passes = []
        for _ in range(args.passes):
            rounds, failed = measure_rounds(profiler, paths, args.rounds, window)
            if failed:
                raise SystemExit(f"measurement failed: {failed}")
            passes.append({n: [(m.latency_ms.value, round_fastest(m)) for m in ms] for n, ms in rounds.items()})
    seconds, load1 = time.perf_counter() - t0, os.getloadavg()
    trials = list(paths)

    lines = [
        f"round_statistic: pass-to-pass spread of summaries of interleaved rounds (all numbers measured on this machine, {time.strftime('%Y-%m-%d %H:%M')})",
        f"machine: {host_info()['cpu']} ({host_info()['vector_isa']}), {os.cpu_count()} cpus; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end",
        f"models: {source}",
        f"protocol: {args.passes} passes x {args.rounds} interleaved rounds of >= {window if window is not None else profiler.device.profiler.min_duration_s:g}-s windows "
        f"(the confirmation pass's), {seconds:.0f} s in all",
        "spread = |a/b - 1| between the same model's summaries in two passes, over all pairs of passes and all models",
        "",
        f"{'statistic':<62} {'median':>7} {'p90':>7} {'max':>7} {'pairs > 10 %':>13}",
    ]
    for name, fn in STATISTICS.items():
        spread = [abs(fn(a[n]) / fn(b[n]) - 1) for a, b in itertools.combinations(passes, 2) for n in trials]
        over = sum(s > 0.1 for s in spread)
        lines.append(f"{name:<62} {100 * statistics.median(spread):>6.1f}% {100 * float(np.percentile(spread, 90)):>6.1f}% "
                     f"{100 * max(spread):>6.1f}% {over:>6}/{len(spread)}")
    lines += ["", "round medians / fastest runs per pass (ms, measured), first model:"]
    lines += [f"  {trials[0]} pass {i}: {', '.join(f'{m:.4f}/{f:.4f}' for m, f in p[trials[0]])}" for i, p in enumerate(passes)]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
