"""Repeatability through the agent, and its overhead versus profiling in-process.

Starts a real agent in a subprocess on 127.0.0.1 (as on a device: its own process), then

* repeatability: the same model measured through the agent ``--requests`` times; the
  coefficient of variation of the reported medians (goal <= 2 %);
* overhead: the same measurement with the local profiler ``--requests`` times; reported
  as (a) the agent's median latency versus the local one (does the agent change what is
  measured?) and (b) the wall time of a ``measure()`` call (upload, queue, session,
  answer; goal <= 5 %).

Every number printed is measured on this machine, and labelled so.

    python benchmarks/agent_repeatability.py [--requests 10] [--out benchmarks/results/agent_repeatability.txt]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autoprune.device import AgentSettings, DeviceProfile, ProfilerSettings
from autoprune.profile.agent import AgentProfiler
from autoprune.profile.local import LocalProfiler


def mlp(path: Path, width: int = 256, layers: int = 4) -> None:
    """An MLP of ``layers`` x (MatMul + Relu), ``width`` wide."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((width, width)) * 0.05).astype(np.float32), f"W{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]))
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev = out
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.mean(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--width", type=int, default=1024, help="MLP width (1024: ~1 ms per inference on a server core)")
    ap.add_argument("--repetitions", type=int, default=300)
    ap.add_argument("--min-duration", type=float, default=1.0)
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    model = tmp / "mlp.onnx"
    mlp(model, width=args.width)
    token = tmp / "token"
    token.write_text("bench-token")
    token.chmod(0o600)
    settings = ProfilerSettings(kind="local", threads=1, warmup=30, repetitions=args.repetitions, min_duration_s=args.min_duration)
    proc = subprocess.Popen([sys.executable, "-m", "autoprune", "agent", "serve", "--port", "0", "--token-file", str(token), "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split("listening on ")[1].split()[0]
        agent_dev = DeviceProfile(name="bench-agent", profiler=ProfilerSettings(**{**settings.__dict__, "kind": "agent"}),
                                  agent=AgentSettings(urls=(url,), token_file=str(token), timeout_s=120))
        local_dev = DeviceProfile(name="bench-local", profiler=settings)
        agent, local = AgentProfiler(agent_dev), LocalProfiler(local_dev)
        agent.measure(model)  # first contact: not counted
        local.measure(model)
        a_med, a_wall, l_med, l_wall = [], [], [], []
        for _ in range(args.requests):  # interleaved, so drift hits both alike
            t0 = time.perf_counter()
            a_med.append(agent.measure(model).latency["median_ms"])
            a_wall.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            l_med.append(local.measure(model).latency["median_ms"])
            l_wall.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(10)

    med_a, med_l = statistics.median(a_med), statistics.median(l_med)
    wall_a, wall_l = statistics.median(a_wall), statistics.median(l_wall)
    lines = [
        f"agent repeatability benchmark (all numbers measured on this machine, {time.strftime('%Y-%m-%d %H:%M:%S')})",
        f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, python {platform.python_version()}",
        f"model: 4 x (MatMul {args.width}x{args.width} + Relu), batch 1; settings: 1 thread, warmup 30, repetitions >= {args.repetitions}, min_duration_s {args.min_duration}",
        f"agent: subprocess on 127.0.0.1 (autoprune agent serve), {args.requests} requests interleaved with {args.requests} local measurements",
        "",
        f"agent medians (ms, measured):  {', '.join(f'{x:.4f}' for x in a_med)}",
        f"local medians (ms, measured):  {', '.join(f'{x:.4f}' for x in l_med)}",
        f"repeatability, CV of the agent's medians over {args.requests} requests (measured): {100 * cv(a_med):.2f} %  (goal <= 2 %: {'met' if cv(a_med) <= 0.02 else 'NOT met'})",
        f"repeatability, CV of the local medians (measured, for reference):          {100 * cv(l_med):.2f} %",
        f"latency through agent vs local, median of medians (measured): {med_a:.4f} ms vs {med_l:.4f} ms = {100 * (med_a / med_l - 1):+.2f} %",
        f"wall time per measure() call, median (measured): agent {wall_a:.3f} s vs local {wall_l:.3f} s = {100 * (wall_a / wall_l - 1):+.2f} % overhead  (goal <= 5 %: {'met' if wall_a / wall_l - 1 <= 0.05 else 'NOT met'})",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
