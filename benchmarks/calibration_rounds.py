"""How many timing rounds a calibration model needs: per-run traces of calibration models, protocols compared.

``autoprune calibrate`` fits each model's fastest run over a few interleaved rounds
(``calibrate.ROUNDS`` of a window sized to the budget). On a shared host a neighbour slows
most runs, and the undisturbed moments are short, so how the timing is split matters: more,
shorter rounds spread over time, or fewer, longer ones.

This traces ``--models`` calibration models of a ``benchmarks/costmodel.py --dump`` directory
together: ``--rounds`` interleaved rounds (order alternating, a fresh session each round, as
the calibration does) of a ``--window``-s window, keeping every run's time. Each protocol
(k rounds of a w-s window) is then read from the same traces twice, on rounds 1..k and on
rounds k+1..2k: its repeatability (MAPE of one reading against the other, share within
+/-10 %), and how far its fastest run lies above the fastest run of all the rounds. All
protocols are compared on the same runs, taken in the same minutes, so the host's drift
falls on each alike.

Usage: python benchmarks/costmodel.py --part accuracy --dump DIR ...; then
python benchmarks/calibration_rounds.py DIR [--models 150] [--out benchmarks/results/calibration_rounds.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune._schema import atomic_write_text  # noqa: E402
from autoprune.profile.timing import make_inputs, make_session  # noqa: E402

PROTOCOLS = ((1, 0.040), (2, 0.040), (3, 0.040), (3, 0.030), (4, 0.030), (4, 0.020), (5, 0.040), (5, 0.030), (5, 0.016), (5, 0.010))
OVERHEAD_S = 0.01  # a session's start and warm-up per round (calibrate._window counts the same)


def trace(paths: list[Path], rounds: int, window_s: float) -> list[list[list[tuple[float, float]]]]:
    """Per model, per round, every run as ``(seconds since the window opened, run seconds)``."""
    out: list[list[list[tuple[float, float]]]] = [[] for _ in paths]
    order = list(enumerate(paths))
    for k in range(rounds):
        for i, path in (order if k % 2 == 0 else order[::-1]):
            session = make_session(str(path), threads=1)
            feeds = make_inputs(session, 1)
            for _ in range(5):
                session.run(None, feeds)
            runs, start = [], time.perf_counter()
            while True:
                a = time.perf_counter()
                session.run(None, feeds)
                b = time.perf_counter()
                runs.append((b - start, b - a))
                if b - start >= window_s and len(runs) >= 10:
                    break
            out[i].append(runs)
    return out


def fastest(rounds: list[list[tuple[float, float]]], window_s: float) -> float:
    """The fastest run (ms) within the first ``window_s`` of each of ``rounds`` (at least each round's first run)."""
    return 1e3 * min(min(d for j, (e, d) in enumerate(r) if e <= window_s or j == 0) for r in rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", help="a benchmarks/costmodel.py --dump directory (its data.json lists the calibration models)")
    ap.add_argument("--models", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=10, help="rounds traced (protocols of up to half of them are read)")
    ap.add_argument("--window", type=float, default=0.040, help="each round's window (s): the longest protocol window")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "calibration_rounds.txt"))
    args = ap.parse_args()
    dump = Path(args.dump)
    try:
        models = json.loads((dump / "data.json").read_text())["calibration"]
    except (OSError, ValueError, KeyError) as e:
        ap.error(f"{dump / 'data.json'}: not a benchmarks/costmodel.py --dump ({e})")
    chosen = [models[i] for i in np.random.default_rng(args.seed).choice(len(models), min(args.models, len(models)), replace=False)]
    t0 = time.perf_counter()
    traces = trace([dump / m["path"] for m in chosen], args.rounds, args.window)
    lines = [f"calibration timing protocols: {len(chosen)} calibration models of {dump} traced together, {args.rounds} "
             f"interleaved rounds of {args.window * 1e3:.0f} ms in {time.perf_counter() - t0:.0f} s; load average "
             f"{os.getloadavg()[0]:.2f}",
             "each protocol read twice from the same traces (rounds 1..k against k+1..2k): repeatability, and its fastest "
             f"run against the fastest of all {args.rounds} rounds (measured)"]
    best = [fastest(t, args.window) for t in traces]
    for k, w in PROTOCOLS:
        if 2 * k > args.rounds or w > args.window:
            continue
        a = np.array([fastest(t[:k], w) for t in traces])
        b = np.array([fastest(t[k:2 * k], w) for t in traces])
        rel = np.abs(a - b) / b
        above = a / np.array(best)
        lines.append(f"  {k} rounds x {w * 1e3:3.0f} ms (~{k * (w + OVERHEAD_S) * 1e3:4.0f} ms of timing a model): repeat MAPE "
                     f"{rel.mean():.1%}, within +/-10 % {(rel <= 0.1).mean():.0%}; above the fastest of all: median "
                     f"x{np.median(above):.3f}, p90 +{np.percentile(above - 1, 90):.1%}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    atomic_write_text(Path(args.out), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
