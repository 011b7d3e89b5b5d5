"""Is channel pruning's speedup real? Measured speedup / MAC reduction on the zoo's ResNet and MobileNetV2.

For uniform ratios 0.25 / 0.5 / 0.75 every channel group is pruned (kept widths rounded to
multiples of 8), the model exported to ONNX (fp32) and timed with onnxruntime on one CPU
thread, batch 1. Dense and pruned sessions run interleaved (round-robin over all ratios)
so that load from other processes hits them alike; the statistic is the median.
``efficiency = speedup / MAC reduction``: 1.0 means latency fell exactly as much as the
multiply-accumulates did (goal >= 0.8).

    python benchmarks/pruning_speedup.py [--size 64] [--runs 300] [--out benchmarks/results/pruning_speedup.txt]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch

from autoprune import discover, zoo
from autoprune.compress import compress, export_onnx
from autoprune.profile.timing import make_session
from autoprune.space import layer_macs

RATIOS = (0.0, 0.25, 0.5, 0.75)


def bench(arch: str, size: int, runs: int) -> list[str]:
    model = zoo.build(arch)
    x = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    space = discover(model, x, max_ratio=0.75)
    sessions, macs = {}, {}
    for r in RATIOS:
        m = compress(model, space.plan_from_params(space.params_for(r, 32)), x, space=space) if r else model
        macs[r] = sum(layer_macs(m, x).values())
        sessions[r] = make_session(export_onnx(m, x).SerializeToString(), threads=1)
    feed = x.numpy()
    name = sessions[0.0].get_inputs()[0].name
    times = {r: [] for r in RATIOS}
    for _ in range(20):
        for s in sessions.values():
            s.run(None, {name: feed})
    for _ in range(runs):
        for r, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {name: feed})
            times[r].append(time.perf_counter() - t)
    med = {r: float(np.median(v)) for r, v in times.items()}
    lines = [f"{arch} (input 1x1x{size}x{size}, {len(space.groups)} channel groups)",
             f"  {'ratio':>5}  {'MMACs':>8}  {'median ms':>9}  {'p10-p90 ms':>13}  {'MAC reduction':>13}  {'speedup':>7}  {'efficiency':>10}"]
    for r in RATIOS:
        p10, p90 = np.percentile(times[r], [10, 90]) * 1e3
        red, sp = macs[0.0] / macs[r], med[0.0] / med[r]
        lines.append(f"  {r:>5.2f}  {macs[r] / 1e6:>8.2f}  {med[r] * 1e3:>9.3f}  {p10:>6.3f}-{p90:<6.3f}  {red:>12.2f}x  {sp:>6.2f}x  {sp / red:>10.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="input height and width")
    ap.add_argument("--runs", type=int, default=300, help="timed runs per model (interleaved)")
    ap.add_argument("--out", default=None, help="also write the report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    report = [
        "pruning_speedup: measured onnxruntime latency (median of interleaved runs, 1 thread, batch 1, fp32) vs MACs counted from layer shapes",
        f"host: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} onnxruntime={ort.__version__} torch={torch.__version__}",
        "efficiency = speedup / MAC reduction (goal >= 0.8)",
        "",
    ]
    for arch in ("resnet", "mobilenetv2"):
        report += bench(arch, args.size, args.runs) + [""]
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
