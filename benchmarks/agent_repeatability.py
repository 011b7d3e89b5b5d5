"""Repeatability through the agent, and its overhead versus profiling in-process.

Starts a real agent in a subprocess on 127.0.0.1 (as on a device: its own process), then, per
model, one block of ``--requests`` agent measurements interleaved with as many local ones:

* repeatability: the coefficient of variation of the agent's reported medians over the
  ``--requests`` calls (goal <= 2 %);
* overhead, with the local profiler's measurements interleaved so drift hits both alike:

  (a) measured-latency difference: median over requests of the agent's reported median
      latency versus the same for the local profiler (does the agent change what is measured?);
  (b) wall-time overhead per ``measure()`` call: median wall time of ``AgentProfiler.measure``
      (hash, request, queue, session, timed runs, answer) versus ``LocalProfiler.measure``
      (session, timed runs), goal <= 5 %. The first agent call of a model (which uploads it) is
      reported apart; the agent reuses its onnxruntime session on repeats, the local profiler
      builds one each call, and the report says so.

Models, each exported here (weights untrained: timing does not depend on their values):

* primary — what autoprune profiles in its quickstart: the digits task's CNN
  (``autoprune.tasks.digits.DigitsCNN``, 8x8 input, five 3x3 convs 96-384 wide), fp32, and its
  int8 QDQ form made by autoprune's own quantize path (``to_onnx`` with every layer at 8 bits,
  calibrated on 256 digits images). The goals are judged on the fp32 model;
* the same CNN pruned at ratio 0.75 (a uniform plan through ``autoprune.compress.prune``): the size of
  the quickstart's fast front points, 0.6 MB, whose weights stay in the core's caches;
* memory-bound stress model — 4 x (MatMul 1024x1024 + Relu), 16.8 MB of weights streamed from
  DRAM on every inference, so it is sensitive to other tenants' memory traffic on a shared VM.

After the agent blocks, the machine's own floor: the primary model timed back to back in one
local session for ``--floor-s`` seconds, cut into consecutive 1/2/5/10-s windows; the CV of
those windows' medians is what any profiler's repeatability is bounded by on this machine.

For reference, ``--inline-requests`` calls with the primary model inline as base64 (the older form).
The load average (``os.getloadavg``) is recorded at the start and the end. Every number printed is
measured on this machine, and labelled so.

    python benchmarks/agent_repeatability.py [--requests 10] [--session-cache 0] [--out benchmarks/results/agent_repeatability.txt]

``--session-cache 0`` starts the agent with its session cache off (``AgentConfig(session_cache=0)``),
so (b) then compares like with like: both sides build a session on every call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from autoprune import discover
from autoprune.compress import export_onnx, prune, to_onnx
from autoprune.device import AgentSettings, DeviceProfile, ProfilerSettings
from autoprune.profile.agent import AgentProfiler
from autoprune.profile.local import LocalProfiler, host_info
from autoprune.profile.timing import make_inputs, make_session
from autoprune.tasks.digits import DigitsCNN, load_digits


@dataclasses.dataclass
class Model:
    label: str
    path: Path
    primary: bool = False


@dataclasses.dataclass
class Result:
    model: Model
    a_med: list[float]
    l_med: list[float]
    a_wall: list[float]
    l_wall: list[float]
    first_wall: float
    create_s: float
    reused: bool


def mlp(path: Path, width: int = 1024, layers: int = 4) -> None:
    """An MLP of ``layers`` x (MatMul + Relu), ``width`` wide: the memory-bound stress model."""
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


def digits(fp32: Path, int8: Path | None, pruned: Path | None = None) -> None:
    """The digits task's CNN (seeded, untrained) as fp32 ONNX, as int8 QDQ through ``to_onnx``, and pruned at ratio 0.75 (fp32)."""
    torch.manual_seed(0)
    model, x = DigitsCNN().eval(), torch.zeros(1, 1, 8, 8)
    onnx.save(export_onnx(model, x), fp32)
    if pruned is not None:
        space = discover(model, x, max_ratio=0.75)
        onnx.save(export_onnx(prune(model, space.plan_from_params(space.params_for(0.75, 32)), x, space=space), x), pruned)
    if int8 is not None:
        space = discover(model, x, max_ratio=0.0, bits=(8, 32))
        plan = space.plan_from_params(space.params_for(0.0, 8))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            to_onnx(model, plan, x, int8, load_digits()[0][:256], space=space)


def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.mean(xs)


def machine_floor(path: Path, seconds: float, windows: tuple[float, ...] = (1, 2, 5, 10)) -> list[str]:
    """How steady this machine is, without the agent: one session timed back to back for ``seconds``,
    cut into consecutive windows of each length; the CV of their medians is the floor any
    profiler's repeatability has here."""
    session = make_session(str(path), threads=1)
    feeds = make_inputs(session)
    for _ in range(30):
        session.run(None, feeds)
    starts, times, t_start = [], [], time.perf_counter()
    while (t := time.perf_counter()) - t_start < seconds:
        session.run(None, feeds)
        starts.append(t - t_start)
        times.append(time.perf_counter() - t)
    starts_a, times_a = np.array(starts), np.array(times) * 1e3
    out = []
    for w in windows:
        idx = (starts_a // w).astype(int)
        meds = [float(np.median(times_a[idx == i])) for i in range(int(seconds // w))]
        out.append(f"  {w:>4g}-s windows: {len(meds):>3} medians {min(meds):.4f}-{max(meds):.4f} ms, CV {100 * cv(meds):.2f} %")
    return out


def run_block(agent: AgentProfiler, local: LocalProfiler, model: Model, requests: int) -> Result:
    """First contact, then ``requests`` agent measurements interleaved with local ones."""
    t0 = time.perf_counter()
    first = agent.measure(model.path)  # first contact (404, upload, measure): reported apart
    first_wall = time.perf_counter() - t0
    local.measure(model.path)
    a_med, a_wall, l_med, l_wall = [], [], [], []
    for _ in range(requests):  # interleaved, so drift hits both alike
        t0 = time.perf_counter()
        a_med.append(agent.measure(model.path).latency["median_ms"])
        a_wall.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        l_med.append(local.measure(model.path).latency["median_ms"])
        l_wall.append(time.perf_counter() - t0)
    reused = bool(agent.measure(model.path).device["session"]["reused"])
    return Result(model, a_med, l_med, a_wall, l_wall, first_wall, first.device["session"]["create_s"] or 0.0, reused)


def goal(ok: bool) -> str:
    return "met" if ok else "NOT met"


def section(r: Result, requests: int) -> list[str]:
    size_mb = r.model.path.stat().st_size / 1e6
    med_a, med_l = statistics.median(r.a_med), statistics.median(r.l_med)
    wall_a, wall_l = statistics.median(r.a_wall), statistics.median(r.l_wall)
    over = wall_a / wall_l - 1
    return [
        f"== {r.model.label}, {size_mb:.1f} MB",
        f"agent medians (ms, measured):  {', '.join(f'{x:.4f}' for x in r.a_med)}",
        f"local medians (ms, measured):  {', '.join(f'{x:.4f}' for x in r.l_med)}",
        f"repeatability, CV of the agent's medians over {requests} requests (measured): {100 * cv(r.a_med):.2f} %  (goal <= 2 %: {goal(cv(r.a_med) <= 0.02)})",
        f"repeatability, CV of the local medians (measured, for reference):          {100 * cv(r.l_med):.2f} %",
        f"(a) measured latency, agent vs local, median of {requests} medians (measured): {med_a:.4f} ms vs {med_l:.4f} ms = {100 * (med_a / med_l - 1):+.2f} %",
        f"(b) wall time per measure() call, median of {requests} (measured): agent {wall_a:.3f} s vs local {wall_l:.3f} s = {100 * over:+.2f} % overhead  (goal <= 5 %: {goal(over <= 0.05)})",
        f"    agent calls by hash: {', '.join(f'{x:.3f}' for x in r.a_wall)} s",
        f"    local calls:         {', '.join(f'{x:.3f}' for x in r.l_wall)} s",
        f"first agent call (404, raw upload of {size_mb:.1f} MB, session created in {r.create_s:.3f} s on the agent): {r.first_wall:.3f} s wall (measured)",
        f"agent session reused on repeat calls: {r.reused}" + (" (the local profiler builds a session each call: part of (b) is that saving)"
                                                               if r.reused else " (both sides build a session each call)"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--width", type=int, default=1024, help="stress MLP width (1024: 16.8 MB of weights)")
    ap.add_argument("--repetitions", type=int, default=300)
    ap.add_argument("--min-duration", type=float, default=1.0)
    ap.add_argument("--no-int8", action="store_true", help="skip the digits CNN's int8 QDQ form")
    ap.add_argument("--no-stress", action="store_true", help="skip the memory-bound stress model")
    ap.add_argument("--no-pruned", action="store_true", help="skip the digits CNN pruned at 0.75 (cache-resident)")
    ap.add_argument("--floor-s", type=float, default=120.0, help="seconds of back-to-back local timing of the primary model for the machine's steadiness floor (0: none)")
    ap.add_argument("--session-cache", type=int, default=None, help="the agent's session cache size (default: the agent's default)")
    ap.add_argument("--inline-requests", type=int, default=3, help="extra calls with the primary model inline as base64 (0: none)")
    ap.add_argument("--out", type=Path, help="also write the report here")
    args = ap.parse_args()
    load0 = os.getloadavg()

    tmp = Path(tempfile.mkdtemp())
    models = [Model("digits CNN, fp32 (primary: the quickstart's model, autoprune.tasks.digits.DigitsCNN, untrained weights, input 1x1x8x8)",
                    tmp / "digits-fp32.onnx", primary=True)]
    if not args.no_int8:
        models.append(Model("digits CNN, int8 QDQ (the same model through autoprune.compress.to_onnx, every layer at 8 bits)", tmp / "digits-int8.onnx"))
    if not args.no_pruned:
        models.append(Model("digits CNN pruned at ratio 0.75, fp32 (autoprune.compress, uniform plan: the size of the quickstart's fast front points; "
                            "its weights stay in the core's caches)", tmp / "digits-pruned.onnx"))
    digits(models[0].path, None if args.no_int8 else models[1].path, None if args.no_pruned else models[-1].path)
    if not args.no_stress:
        models.append(Model(f"memory-bound stress model: 4 x (MatMul {args.width}x{args.width} + Relu), input 1x{args.width}", tmp / "mlp.onnx"))
        mlp(models[-1].path, width=args.width)
    token = tmp / "token"
    token.write_text("bench-token")
    token.chmod(0o600)
    settings = ProfilerSettings(kind="local", threads=1, warmup=30, repetitions=args.repetitions, min_duration_s=args.min_duration)
    if args.session_cache is None:
        cmd = [sys.executable, "-m", "autoprune", "agent", "serve", "--port", "0", "--token-file", str(token), "--log-level", "WARNING"]
    else:  # the same server, configured in a one-line program
        cmd = [sys.executable, "-c", "import sys; from autoprune.agent import AgentConfig, AgentServer; "
               f"s = AgentServer(AgentConfig(port=0, token=open(sys.argv[1]).read().strip(), session_cache={args.session_cache})); s.bind(); "
               "print('autoprune agent listening on', s.url, flush=True); s.serve_forever()", str(token)]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split("listening on ")[1].split()[0]
        agent_dev = DeviceProfile(name="bench-agent", profiler=ProfilerSettings(**{**settings.__dict__, "kind": "agent"}),
                                  agent=AgentSettings(urls=(url,), token_file=str(token), timeout_s=120))
        agent, local = AgentProfiler(agent_dev), LocalProfiler(DeviceProfile(name="bench-local", profiler=settings))
        results = [run_block(agent, local, m, args.requests) for m in models]
        inline_wall = []
        inline_body = json.dumps(agent.request_body(models[0].path, inline=True)).encode()
        for _ in range(args.inline_requests):
            t0 = time.perf_counter()
            agent._with_retries(lambda u: agent._call(u, "POST", "/v1/profile", inline_body))
            inline_wall.append(time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(10)
    floor = machine_floor(models[0].path, args.floor_s) if args.floor_s else []
    load1 = os.getloadavg()

    lines = [
        f"agent repeatability benchmark (all numbers measured on this machine, started {started})",
        f"machine: {host_info()['cpu']}, {os.cpu_count()} cpus, {platform.platform()}, python {platform.python_version()}",
        f"load average (1/5/15 min) at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}",
        f"settings: batch 1, 1 thread, warmup 30, repetitions >= {args.repetitions}, min_duration_s {args.min_duration}",
        f"agent: subprocess on 127.0.0.1 ({'autoprune agent serve, default session cache' if args.session_cache is None else f'AgentServer with session_cache={args.session_cache}'}); "
        f"per model, {args.requests} requests interleaved with {args.requests} local measurements, models one after another",
        "",
    ]
    for r in results:
        lines += section(r, args.requests) + [""]
    p = results[0]
    wall_l = statistics.median(p.l_wall)
    if inline_wall:
        lines += [f"for reference, primary model inline as base64 (older form), median of {len(inline_wall)} (measured): "
                  f"{statistics.median(inline_wall):.3f} s wall per call = {100 * (statistics.median(inline_wall) / wall_l - 1):+.2f} % vs local", ""]
    over = statistics.median(p.a_wall) / wall_l - 1
    if floor:
        lines += [f"machine floor (no agent): the primary model in one local session, timed back to back for {args.floor_s:g} s, "
                  "cut into consecutive windows (measured):", *floor, ""]
    lines += [
        f"goals, judged on the primary model ({p.model.label.split(' (')[0]}):",
        f"  CV of the agent's medians over {args.requests} requests <= 2 %: {goal(cv(p.a_med) <= 0.02)} ({100 * cv(p.a_med):.2f} %, measured)",
        f"  wall-time overhead per measure() <= 5 %: {goal(over <= 0.05)} ({100 * over:+.2f} %, measured)",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
