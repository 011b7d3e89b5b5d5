"""Which summary of interleaved rounds repeats? Pass-to-pass spread of candidate statistics.

Takes a finished study (by default the quickstart benchmark's run), rebuilds every trial its
confirmation pass re-measured (``autoprune export``: byte-identical artifacts), and measures
them all ``--passes`` times with the confirmation protocol (``--rounds`` interleaved rounds of
the study's window, :func:`autoprune.profile.rounds.measure_rounds`). For each way of
summarising one model's round medians, it reports how far the summaries of the same model
differ between passes (|a/b - 1| over every pair of passes and every model): the statistic
the confirmation pass reports should be the one a re-measurement reproduces.

    python benchmarks/round_statistic.py [--run runs/bench-quickstart] [--passes 4] [--rounds 10] [--out benchmarks/results/round_statistic.txt]
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

from autoprune.profile.rounds import trimmed_mean  # the confirmation pass's own summary

ROOT = Path(__file__).resolve().parents[1]


STATISTICS = {
    "quietest round (min of round medians)": min,
    "mean of the 3 quietest rounds": lambda v: statistics.fmean(sorted(v)[:3]),
    "25th percentile of round medians": lambda v: float(np.percentile(v, 25)),
    "10%-trimmed mean of round medians (what the pass reports)": trimmed_mean,
    "median of round medians": statistics.median,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "bench-quickstart"), help="a finished study's run directory")
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from autoprune.export import export_trial, load_run
    from autoprune.profile import make_profiler
    from autoprune.profile.local import host_info
    from autoprune.profile.rounds import measure_rounds
    from autoprune.device import DeviceProfile

    run, study = load_run(args.run)
    trials = sorted(int(n) for n in (study.user_attrs.get("confirmation") or {}).get("trials", {}))
    if len(trials) < 2:
        raise SystemExit(f"{args.run}: the study's confirmation pass re-measured {len(trials)} trial(s); need 2 or more")
    window = run["config"].get("confirm", {}).get("min_duration_s")
    profiler = make_profiler(DeviceProfile.from_dict(study.user_attrs["device"], f"{args.run} (device profile)"))
    load0, t0 = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoprune-rounds-") as tmp:
        paths = {n: export_trial(args.run, Path(tmp) / f"trial-{n}", trial=n).out_dir / "model.onnx" for n in trials}
        passes = []
        for _ in range(args.passes):
            rounds, failed = measure_rounds(profiler, paths, args.rounds, window)
            if failed:
                raise SystemExit(f"measurement failed: {failed}")
            passes.append({n: [m.latency_ms.value for m in ms] for n, ms in rounds.items()})
    seconds, load1 = time.perf_counter() - t0, os.getloadavg()

    lines = [
        f"round_statistic: pass-to-pass spread of summaries of interleaved rounds (all numbers measured on this machine, {time.strftime('%Y-%m-%d %H:%M')})",
        f"machine: {host_info()['cpu']}, {os.cpu_count()} cpus; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end",
        f"study: {args.run} ({run['study_name']}); {len(trials)} trials its confirmation pass re-measured, rebuilt byte-identical",
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
    lines += ["", "round medians per pass (ms, measured), first model:"]
    lines += [f"  trial {trials[0]} pass {i}: {', '.join(f'{v:.4f}' for v in p[trials[0]])}" for i, p in enumerate(passes)]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
