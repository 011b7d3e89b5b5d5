"""A FAKE noisy neighbour, for checking the quickstart benchmark under load.

It alternates busy phases (memory-bound numpy arithmetic on 64 MB arrays, one core) and idle
phases, each 2-10 s long at random, the way another tenant of a shared VM comes and goes. It
stops by itself after SECONDS. Phases are logged to --log.

    python benchmarks/noisy_neighbour.py 720 &
    python benchmarks/quickstart.py --out runs/bench-noisy --results benchmarks/results/quickstart-noisy
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", type=float, help="stop after this long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log", default="noisy_neighbour.log")
    args = ap.parse_args()
    end = time.time() + args.seconds
    rng = random.Random(args.seed)
    a = np.ones(16_000_000, dtype=np.float32)  # 64 MB: far beyond the caches
    b = np.empty_like(a)
    with open(args.log, "w") as log:
        while time.time() < end:
            busy, t = rng.uniform(2, 10), time.time()
            log.write(f"busy {t:.1f} {busy:.1f}\n")
            log.flush()
            while time.time() - t < busy and time.time() < end:
                np.multiply(a, 1.0001, out=b)
                np.add(b, 1.0, out=a)
            idle = rng.uniform(2, 10)
            log.write(f"idle {time.time():.1f} {idle:.1f}\n")
            log.flush()
            time.sleep(max(0.0, min(idle, end - time.time())))


if __name__ == "__main__":
    main()
