"""Repeatability through the agent, and its overhead versus profiling in-process.

Starts a real agent in a subprocess on 127.0.0.1 (as on a device: its own process), then

* repeatability: the same model measured through the agent ``--requests`` times; the
  coefficient of variation of the reported medians (goal <= 2 %);
* overhead: the same measurement with the local profiler ``--requests`` times, interleaved
  with the agent's so drift hits both alike; reported as

  (a) measured-latency difference: median over requests of the agent's reported median
      latency versus the same for the local profiler (does the agent change what is measured?);
  (b) wall-time overhead per ``measure()`` call: median wall time of ``AgentProfiler.measure``
      (hash, request, queue, session, timed runs, answer) versus ``LocalProfiler.measure``
      (session, timed runs), goal <= 5 %. The first agent call (which uploads the model) is
      reported apart; the agent reuses its onnxruntime session on repeats, the local profiler
      builds one each call, and the report says so.
  For reference, ``--inline-requests`` calls with the model inline as base64 (the older form).

Every number printed is measured on this machine, and labelled so.

    python benchmarks/agent_repeatability.py [--requests 10] [--session-cache 0] [--out benchmarks/results/agent_repeatability.txt]

``--session-cache 0`` starts the agent with its session cache off (``AgentConfig(session_cache=0)``),
so (b) then compares like with like: both sides build a session on every call.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--session-cache", type=int, default=None, help="the agent's session cache size (default: the agent's default)")
    ap.add_argument("--inline-requests", type=int, default=3, help="extra calls with the model inline as base64 (0: none)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    model = tmp / "mlp.onnx"
    mlp(model, width=args.width)
    token = tmp / "token"
    token.write_text("bench-token")
    token.chmod(0o600)
    settings = ProfilerSettings(kind="local", threads=1, warmup=30, repetitions=args.repetitions, min_duration_s=args.min_duration)
    if args.session_cache is None:
        cmd = [sys.executable, "-m", "autoprune", "agent", "serve", "--port", "0", "--token-file", str(token), "--log-level", "WARNING"]
    else:  # the CLI has no flag for it: the same server, configured in a one-line program
        cmd = [sys.executable, "-c", "import sys; from autoprune.agent import AgentConfig, AgentServer; "
               f"s = AgentServer(AgentConfig(port=0, token=open(sys.argv[1]).read().strip(), session_cache={args.session_cache})); s.bind(); "
               "print('autoprune agent listening on', s.url, flush=True); s.serve_forever()", str(token)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split("listening on ")[1].split()[0]
        agent_dev = DeviceProfile(name="bench-agent", profiler=ProfilerSettings(**{**settings.__dict__, "kind": "agent"}),
                                  agent=AgentSettings(urls=(url,), token_file=str(token), timeout_s=120))
        local_dev = DeviceProfile(name="bench-local", profiler=settings)
        agent, local = AgentProfiler(agent_dev), LocalProfiler(local_dev)
        t0 = time.perf_counter()
        first = agent.measure(model)  # first contact (404, upload, measure): reported apart
        first_wall = time.perf_counter() - t0
        local.measure(model)
        a_med, a_wall, l_med, l_wall = [], [], [], []
        for _ in range(args.requests):  # interleaved, so drift hits both alike
            t0 = time.perf_counter()
            a_med.append(agent.measure(model).latency["median_ms"])
            a_wall.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            l_med.append(local.measure(model).latency["median_ms"])
            l_wall.append(time.perf_counter() - t0)
        reused = [agent.measure(model).device["session"]["reused"]]
        inline_wall = []
        inline_body = json.dumps(agent.request_body(model, inline=True)).encode()
        for _ in range(args.inline_requests):
            t0 = time.perf_counter()
            agent._with_retries(lambda u: agent._call(u, "POST", "/v1/profile", inline_body))
            inline_wall.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(10)

    med_a, med_l = statistics.median(a_med), statistics.median(l_med)
    wall_a, wall_l = statistics.median(a_wall), statistics.median(l_wall)
    wall_over = wall_a / wall_l - 1
    size_mb = model.stat().st_size / 1e6
    create_s = first.device["session"]["create_s"] or 0.0
    lines = [
        f"agent repeatability benchmark (all numbers measured on this machine, {time.strftime('%Y-%m-%d %H:%M:%S')})",
        f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, python {platform.python_version()}",
        f"model: 4 x (MatMul {args.width}x{args.width} + Relu), {size_mb:.1f} MB, batch 1; settings: 1 thread, warmup 30, repetitions >= {args.repetitions}, min_duration_s {args.min_duration}",
        f"agent: subprocess on 127.0.0.1 ({'autoprune agent serve, default session cache' if args.session_cache is None else f'AgentServer with session_cache={args.session_cache}'}), {args.requests} requests interleaved with {args.requests} local measurements",
        "",
        f"agent medians (ms, measured):  {', '.join(f'{x:.4f}' for x in a_med)}",
        f"local medians (ms, measured):  {', '.join(f'{x:.4f}' for x in l_med)}",
        f"repeatability, CV of the agent's medians over {args.requests} requests (measured): {100 * cv(a_med):.2f} %  (goal <= 2 %: {'met' if cv(a_med) <= 0.02 else 'NOT met'})",
        f"repeatability, CV of the local medians (measured, for reference):          {100 * cv(l_med):.2f} %",
        f"(a) measured latency, agent vs local, median of {args.requests} medians (measured): {med_a:.4f} ms vs {med_l:.4f} ms = {100 * (med_a / med_l - 1):+.2f} %",
        f"(b) wall time per measure() call, median of {args.requests} (measured): agent {wall_a:.3f} s vs local {wall_l:.3f} s = {100 * wall_over:+.2f} % overhead  (goal <= 5 %: {'met' if wall_over <= 0.05 else 'NOT met'})",
        f"    agent calls by hash: {', '.join(f'{x:.3f}' for x in a_wall)} s",
        f"    local calls:         {', '.join(f'{x:.3f}' for x in l_wall)} s",
        f"first agent call (404, raw upload of {size_mb:.1f} MB, session created in {create_s:.3f} s on the agent): {first_wall:.3f} s wall (measured)",
        f"agent session reused on repeat calls: {reused[0]}" + (" (the local profiler builds a session each call: part of (b) is that saving)"
                                                                if reused[0] else " (both sides build a session each call)"),
    ]
    if inline_wall:
        lines.append(f"for reference, model inline as base64 (older form), median of {len(inline_wall)} (measured): {statistics.median(inline_wall):.3f} s wall per call "
                     f"= {100 * (statistics.median(inline_wall) / wall_l - 1):+.2f} % vs local")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
