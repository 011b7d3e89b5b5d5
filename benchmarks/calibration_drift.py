"""Is a calibration's timing of a model biased by its protocol, by the process it ran in, or by the host's speed later?

Takes 24 calibration models (numpy seed 7) from a ``benchmarks/costmodel.py --dump DIR`` and times them again,
in a fresh process, against the timing the calibration recorded (``data.json``):

* ``protocols``: three protocols alternated over ``--cycles`` cycles: the calibration's (4 interleaved rounds
  of 24 ms, ``calibrate.measure_models``), the dropped anchor's (6 x 240 ms, the same function) and the
  benchmark's held-out protocol (10 x 250 ms, the device's own profiler settings). If only the short one read
  slower than the calibration recorded, the protocol would be the bias; if all read alike, it is the host.
* ``torch``: the calibration's protocol in a process that first builds calibration models with torch
  (``calibrate.build_samples`` for ``--build-seconds``), right after each build and 5 s later: does the
  calibration process's own state (torch's threads, its memory) slow the timing?

Each line: the median of the 24 ratios (timed now / recorded), their range. Run it alone on one core
(``taskset -c 0``), as the calibration ran. ``benchmarks/results/calibration_drift-xeon-avx512.txt``.

Usage: python benchmarks/calibration_drift.py DUMP {protocols,torch} [--cycles 3] [--build-seconds 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune.costmodel.calibrate import build_samples, measure_models  # noqa: E402
from autoprune.device import load_device_profile  # noqa: E402
from autoprune.profile import make_profiler  # noqa: E402
from autoprune.profile.rounds import fastest_run, measure_rounds  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("part", choices=("protocols", "torch"))
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--build-seconds", type=float, default=40.0)
    args = ap.parse_args()
    data = json.loads((args.dump / "data.json").read_text())
    cal = data["calibration"]
    refs = [cal[i] for i in np.random.default_rng(7).choice(len(cal), size=24, replace=False)]
    paths = {r["name"]: args.dump / r["path"] for r in refs}
    recorded = {r["name"]: r["ms"] for r in refs}
    device = load_device_profile("local-cpu")
    t0 = time.time()

    def report(label: str, got: dict[str, float]) -> None:
        r = [got[k] / recorded[k] for k in got]
        print(f"t={time.time() - t0:5.0f}s {label:50s} median ratio {np.median(r):.3f} (range {min(r):.2f}-{max(r):.2f})", flush=True)

    if args.part == "protocols":
        def heldout_protocol() -> dict[str, float]:
            profiler = make_profiler(device)
            try:
                got, failed = measure_rounds(profiler, paths, 10, 0.25)
            finally:
                profiler.close()
            return {k: fastest_run(v) for k, v in got.items() if k not in failed}

        protocols = {"calibration 4 x 24 ms": lambda: measure_models(device, paths, 4, 0.024),
                     "anchor 6 x 240 ms": lambda: measure_models(device, paths, 6, 0.24),
                     "held-out 10 x 250 ms (the device's profiler)": heldout_protocol}
        for c in range(args.cycles):
            for label, measure in protocols.items():
                report(f"cycle {c}: {label}", measure())
        return 0
    for _ in range(2):
        report("fresh process, nothing built", measure_models(device, paths, 4, 0.024))
    for i in range(args.cycles):
        with tempfile.TemporaryDirectory() as tmp:
            built = build_samples(device, Path(tmp), args.build_seconds, seed=i, leave_out=(), log=lambda s: None)
            for _ in range(2):
                report(f"after building {len(built)} models with torch (pass {i})", measure_models(device, paths, 4, 0.024))
        time.sleep(5)
        for _ in range(2):
            report(f"5 s later (pass {i})", measure_models(device, paths, 4, 0.024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
