"""Is channel pruning's speedup real? Measured speedup / MAC reduction on the zoo's ResNet and MobileNetV2.

For uniform ratios 0.25 / 0.5 / 0.75 every channel group is pruned, the model exported to
ONNX (fp32) and timed with onnxruntime on one CPU thread, batch 1.
``efficiency = speedup / MAC reduction``: 1.0 means latency fell exactly as much as the
multiply-accumulates did (goal >= 0.8).

Kept widths are rounded to ``--round-to`` channels. Its default is the CPU's natural channel
block: onnxruntime's NCHWc convolution kernels (MLAS) hold 16 fp32 channels in one AVX-512
register and 8 in an AVX2 one, and a conv whose channel counts are not multiples of the block
is left on the slower plain NCHW path. The report has one table for that default and one for
8 (the library's default), so the effect is visible; the "NCHWc convs" column says how many
convs onnxruntime actually ran blocked (read from its optimized graph).

Each architecture is benchmarked in three configurations:

* the zoo's test-size model (``--width-mults`` 1: ResNet convs of 32-128 channels, MobileNetV2
  16-384, input 1x1x64x64; chosen so the test suite is fast, so at ratio 0.75 many layers are
  8-16 channels wide);
* the zoo model at wider widths (``--width-mults`` 4: ResNet convs of 128-512 channels,
  MobileNetV2 64-1536, same input);
* the ImageNet configurations people deploy (``--no-imagenet`` leaves them out):
  MobileNetV2 1.0 exactly as torchvision builds it (224x224 input, 300 MMACs), and
  torchvision's ResNet-18 and ResNet-50 stages at their ImageNet resolution (56x56 after the
  stem; the zoo's 3x3 stem conv replaces the 7x7 conv and max-pool).

The goal is judged on every row; the report says which meet it.

Every session of a model (dense, and each ratio for each rounding) is timed interleaved, run
by run in a shuffled order each round, so that load from other processes hits them alike; each
visit runs the model once untimed before its timed run, so the timed run starts with the
model's own weights in the caches, as when it runs repeatedly (timing single interleaved runs
cold penalises the small pruned models: in one probe MobileNetV2 1.0 at 0.75 measured 4.0x
cold and 4.3x warm).
The statistic is the median. For MobileNetV2 a per-op-class breakdown (onnxruntime's per-node profiler on
separate sessions, MACs counted from layer shapes) shows where efficiency is lost.

    python benchmarks/pruning_speedup.py [--size 64] [--runs 400] [--wide-runs 100] [--round-to N] [--width-mults 1,4] [--no-imagenet] [--out benchmarks/results/pruning_speedup.txt]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from autoprune import discover, zoo
from autoprune.compress import export_onnx, prune
from autoprune.profile.local import host_info
from autoprune.profile.timing import make_session
from autoprune.space import layer_macs
from autoprune.zoo.mobilenet import IMAGENET_STAGES, MobileNetV2
from autoprune.zoo.resnet import RESNET18_STAGES, RESNET50_STAGES, ResNet

RATIOS = (0.25, 0.5, 0.75)
CLASSES = ("depthwise conv", "other conv", "rest")


def cpu_block() -> tuple[int, str]:
    """The CPU's natural channel block for onnxruntime's NCHWc conv kernels, and why."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith(("flags", "Features"))), [])
    except OSError:
        flags = []
    if "avx512f" in flags:
        return 16, "avx512f in /proc/cpuinfo: onnxruntime's NCHWc conv kernels block channels by 16 (one AVX-512 register of fp32)"
    if "avx2" in flags:
        return 8, "avx2 (no avx512f) in /proc/cpuinfo: onnxruntime's NCHWc conv kernels block channels by 8 (one AVX2 register of fp32)"
    return 8, "no avx512f/avx2 flag in /proc/cpuinfo: 8, the library's default"


def optimized_graph(proto_bytes: bytes, profile_prefix: str | None = None) -> tuple[ort.InferenceSession, onnx.ModelProto]:
    """A session like ``make_session``'s (optionally profiling) and the graph onnxruntime optimized it to."""
    with tempfile.TemporaryDirectory(prefix="autoprune-bench-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # the NCHWc "hardware specific" warning on saving
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        if profile_prefix:
            so.enable_profiling, so.profile_file_prefix = True, profile_prefix
        sess = ort.InferenceSession(proto_bytes, so, providers=["CPUExecutionProvider"])
        return sess, onnx.load(so.optimized_model_filepath)


def conv_group(node: onnx.NodeProto) -> int | None:
    """The ``group`` of a Conv node (any domain: ONNX, NCHWc, fused), None for other ops."""
    if node.op_type not in ("Conv", "FusedConv"):
        return None
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def nchwc_count(opt: onnx.ModelProto) -> str:
    convs = [n for n in opt.graph.node if conv_group(n) is not None]
    return f"{sum(n.domain == 'com.microsoft.nchwc' for n in convs)}/{len(convs)}"


def macs_by_class(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    mods = dict(model.named_modules())
    out = dict.fromkeys(CLASSES, 0.0)
    for name, macs in layer_macs(model, x).items():
        m = mods[name]
        cls = "rest" if not isinstance(m, nn.Conv2d) else "depthwise conv" if m.groups > 1 else "other conv"
        out[cls] += macs
    return out


def profile(proto_bytes: bytes, feed: dict, runs: int, tmp: str) -> list[list[tuple[str, float, float]]]:
    """Per profiled run, per node: (op class, kernel time us, MACs as onnxruntime runs it).

    A conv's MACs here come from the shapes onnxruntime reports for it (output elements x
    weight elements per output channel), so channels it pads up to its block are counted;
    other nodes count 0 (the classifier's few MACs are left to the layer-shape count).
    """
    sess, opt = optimized_graph(proto_bytes, profile_prefix=str(Path(tmp) / "prof"))
    cls_of = {n.name: ("rest" if (g := conv_group(n)) is None else "depthwise conv" if g > 1 else "other conv") for n in opt.graph.node}
    for _ in range(runs):
        sess.run(None, feed)
    prof = Path(sess.end_profiling())
    events = json.loads(prof.read_text())
    prof.unlink()
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    starts = [a for a, _ in spans]
    per_run: list[list[tuple[str, float, float]]] = [[] for _ in spans]
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i < 0 or e["ts"] > spans[i][1]:
            continue
        cls = cls_of.get(e["name"][: -len("_kernel_time")], "rest")
        macs = 0.0
        if cls != "rest":
            shapes = [next(iter(d.values())) for d in e["args"]["input_type_shape"]]
            out = next(iter(e["args"]["output_type_shape"][0].values()))
            macs = float(np.prod(out)) * float(np.prod(shapes[1][1:]))
        per_run[i].append((cls, float(e["dur"]), macs))
    return per_run


def by_class(run: list[tuple[str, float, float]], field: int) -> dict[str, float]:
    out = dict.fromkeys(CLASSES, 0.0)
    for node in run:
        out[node[0]] += node[field]
    return out


@dataclasses.dataclass
class Case:
    """One model to prune: ``family`` picks the per-op-class breakdown (MobileNetV2's)."""

    family: str
    label: str
    model: nn.Module
    x: torch.Tensor
    runs: int


def cases(archs: list[str], width_mults: list[float], size: int, runs: int, wide_runs: int, imagenet: bool) -> list[Case]:
    """The zoo models at each ``width_mult`` (input 1x1xSIZExSIZE), then the ImageNet configurations."""
    gen = torch.Generator().manual_seed(0)
    out = [Case(arch, f"{arch}, width_mult {wm:g}", zoo.build(arch, width_mult=wm).eval(),
                torch.randn(1, 1, size, size, generator=gen), runs if wm <= 1 else wide_runs)
           for wm in width_mults for arch in archs]
    if imagenet:
        torch.manual_seed(0)
        if "resnet" in archs:
            for name, stages in (("ResNet-18", RESNET18_STAGES), ("ResNet-50", RESNET50_STAGES)):
                out.append(Case("resnet", f"{name}, torchvision's stages at their ImageNet resolution (56x56 after the stem; a 3x3 stem conv)",
                                ResNet(stages, stem=64, in_channels=3, num_classes=1000).eval(), torch.randn(1, 3, 56, 56, generator=gen), wide_runs))
        if "mobilenetv2" in archs:
            out.append(Case("mobilenetv2", "MobileNetV2 1.0, torchvision's configuration",
                            MobileNetV2(IMAGENET_STAGES, stem=32, last=1280, stem_stride=2, in_channels=3, num_classes=1000).eval(),
                            torch.randn(1, 3, 224, 224, generator=gen), wide_runs))
    return out


def variants(model: nn.Module, x: torch.Tensor, roundings: tuple[int, ...]) -> tuple[dict, dict, int]:
    """The dense model (key ``(0, 0.0)``) and one pruned copy per ``(round_to, ratio)``, with their ONNX bytes."""
    models, protos = {(0, 0.0): model}, {(0, 0.0): export_onnx(model, x).SerializeToString()}
    for rt in roundings:
        space = discover(model, x, max_ratio=0.75, round_to=rt)
        for r in RATIOS:
            models[(rt, r)] = m = prune(model, space.plan_from_params(space.params_for(r, 32)), x, space=space)
            protos[(rt, r)] = export_onnx(m, x).SerializeToString()
    return models, protos, len(space.groups)


def time_interleaved(protos: dict, feed: dict, runs: int, warmup: int = 1) -> dict:
    """Seconds per timed run of every session, interleaved run by run in a shuffled order each round.

    Each visit runs the session ``warmup`` times untimed first, so the timed run starts with the
    model's own weights in the caches, as when a model runs repeatedly; interleaving visit by
    visit spreads the machine's slow and fast moments evenly over the sessions.
    """
    sessions = {k: make_session(p, threads=1) for k, p in protos.items()}
    times = {k: [] for k in sessions}
    order, rng = list(sessions), random.Random(0)
    for _ in range(20):
        for s in sessions.values():
            s.run(None, feed)
    for _ in range(runs):
        rng.shuffle(order)
        for k in order:
            for _ in range(warmup):
                sessions[k].run(None, feed)
            t = time.perf_counter()
            sessions[k].run(None, feed)
            times[k].append(time.perf_counter() - t)
    return times


def bench(case: Case, roundings: tuple[int, ...], breakdown_runs: int) -> list[str]:
    x, runs = case.x, case.runs
    models, protos, n_groups = variants(case.model, x, roundings)
    feed = {make_session(protos[(0, 0.0)]).get_inputs()[0].name: x.numpy()}
    macs = {k: sum(layer_macs(m, x).values()) for k, m in models.items()}
    nchwc = {k: nchwc_count(optimized_graph(p)[1]) for k, p in protos.items()}
    with tempfile.TemporaryDirectory(prefix="autoprune-prof-") as tmp:  # one profiled run: the conv shapes onnxruntime runs
        run_macs = {k: macs_by_class(models[k], x)["rest"] + sum(by_class(profile(p, feed, 1, tmp)[0], 2).values())
                    for k, p in protos.items()}
    times = time_interleaved(protos, feed, runs)
    med = {k: float(np.median(v)) for k, v in times.items()}
    dense = (0, 0.0)
    widths = sorted({m.out_channels for m in models[dense].modules() if isinstance(m, nn.Conv2d)})
    lines = [f"{case.label} (conv widths {widths[0]}-{widths[-1]}; input {'x'.join(map(str, x.shape))}, {n_groups} channel groups; "
             f"{len(times)} sessions timed interleaved, {runs} warm runs each)"]
    for rt in roundings:
        lines += [f"  round_to={rt}",
                  f"    {'ratio':>5}  {'MMACs':>7}  {'run MMACs':>9}  {'NCHWc convs':>11}  {'median ms':>9}  {'p10-p90 ms':>13}  "
                  f"{'MAC reduction':>13}  {'speedup':>7}  {'efficiency':>10}  {'eff. vs run MACs':>16}"]
        for r in (0.0, *RATIOS):
            k = dense if r == 0.0 else (rt, r)
            p10, p90 = np.percentile(times[k], [10, 90]) * 1e3
            red, sp = macs[dense] / macs[k], med[dense] / med[k]
            goal = "" if r == 0.0 else ("  >= 0.8" if sp / red >= 0.8 else "  < 0.8")
            lines.append(f"    {r:>5.2f}  {macs[k] / 1e6:>7.2f}  {run_macs[k] / 1e6:>9.2f}  {nchwc[k]:>11}  {med[k] * 1e3:>9.3f}  {p10:>6.3f}-{p90:<6.3f}  "
                         f"{red:>12.2f}x  {sp:>6.2f}x  {sp / red:>10.2f}  {sp / (run_macs[dense] / run_macs[k]):>16.2f}{goal}")
    if breakdown_runs:
        lines += breakdown(case.label.split(",")[0], x, models, protos, feed, roundings[0], breakdown_runs)
    return lines


def breakdown(arch: str, x: torch.Tensor, models: dict, protos: dict, feed: dict, rt: int, runs: int) -> list[str]:
    """Per op class and ratio: counted MACs and profiled kernel time, their shares and reductions."""
    keys = [(0, 0.0)] + [(rt, r) for r in RATIOS]
    with tempfile.TemporaryDirectory(prefix="autoprune-prof-") as tmp:
        prof = {k: profile(protos[k], feed, runs + 20, tmp)[20:] for k in keys}  # first 20: warm-up
    t_cls = {k: {c: float(np.median([by_class(run, 1)[c] for run in prof[k]])) for c in CLASSES} for k in keys}
    m_cls = {k: macs_by_class(models[k], x) for k in keys}
    lines = ["",
             f"  {arch}, where the time goes (round_to={rt}): onnxruntime's per-node profiler, kernel time summed per class, "
             f"median of {runs} profiled runs per model (separate sessions, after the timed runs); MACs counted from layer shapes.",
             "  'depthwise conv' = Conv with group > 1; 'other conv' = 1x1 expand/project, stem and head convs; 'rest' = reorders, pooling, classifier.",
             "  With NCHWc, residual adds and activations are fused into the conv nodes, so their time is in the conv classes.",
             "  'MAC red.' and 'time red.' are versus the dense model's same class; GMAC/s = class MACs / class kernel time.",
             f"    {'ratio':>5}  {'class':<15}  {'MMACs':>7}  {'MAC share':>9}  {'kernel us':>9}  {'time share':>10}  {'GMAC/s':>6}  {'MAC red.':>8}  {'time red.':>9}"]
    d_m, d_t = m_cls[keys[0]], t_cls[keys[0]]
    for k in keys:
        mt, tt = sum(m_cls[k].values()), sum(t_cls[k].values())
        for i, c in enumerate(CLASSES):
            mm, tu = m_cls[k][c], t_cls[k][c]
            gm = f"{mm / (tu * 1e3):6.2f}" if mm and tu else f"{'-':>6}"
            mred = f"{d_m[c] / mm:7.2f}x" if mm else f"{'-':>8}"
            tred = f"{d_t[c] / tu:8.2f}x" if tu else f"{'-':>9}"
            lines.append(f"    {(f'{k[1]:.2f}' if i == 0 else ''):>5}  {c:<15}  {mm / 1e6:>7.2f}  {100 * mm / mt:>8.1f}%  {tu:>9.1f}  "
                         f"{100 * tu / tt:>9.1f}%  {gm}  {mred}  {tred}")
        lines.append(f"    {'':>5}  {'total':<15}  {mt / 1e6:>7.2f}  {'':>9}  {tt:>9.1f}  {'':>10}  {mt / (tt * 1e3):6.2f}  "
                     f"{sum(d_m.values()) / mt:7.2f}x  {sum(d_t.values()) / tt:8.2f}x")
        if k != keys[0]:  # what the MAC mix alone explains: each conv class at its dense throughput, 'rest' as dense
            mix = sum(d_t.values()) / (d_t["rest"] + sum(m_cls[k][c] * d_t[c] / d_m[c] for c in CLASSES if c != "rest"))
            red = sum(d_m.values()) / mt
            lines.append(f"    {'':>5}  if each conv class kept its dense GMAC/s: speedup {mix:.2f}x, efficiency {mix / red:.2f}; "
                         f"profiled: speedup {sum(d_t.values()) / tt:.2f}x, efficiency {sum(d_t.values()) / tt / red:.2f}")
    return lines


def main() -> None:
    block, why = cpu_block()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="input height and width")
    ap.add_argument("--runs", type=int, default=400, help="timed runs per session (interleaved)")
    ap.add_argument("--wide-runs", type=int, default=100, help="timed runs per session for width_mult > 1 and the ImageNet configurations (slower models)")
    ap.add_argument("--round-to", type=int, default=block, help=f"kept channels are multiples of this (default: this CPU's channel block, {block})")
    ap.add_argument("--breakdown-runs", type=int, default=200, help="profiled runs per model for MobileNetV2's per-op-class breakdown (0: none)")
    ap.add_argument("--archs", default="resnet,mobilenetv2", help="comma-separated zoo names")
    ap.add_argument("--width-mults", default="1,4", help="comma-separated zoo width_mult values (1: the test-size zoo model; 4: deploy-size widths)")
    ap.add_argument("--no-imagenet", action="store_true", help="leave out the ImageNet configurations (ResNet-18, ResNet-50, MobileNetV2 1.0)")
    ap.add_argument("--out", default=None, help="also write the report here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    roundings = tuple(dict.fromkeys((args.round_to, 8)))
    load0 = os.getloadavg()
    host = host_info()
    report = [
        f"pruning_speedup: measured onnxruntime latency (median of interleaved warm runs, 1 thread, batch 1, fp32) vs MACs counted from layer shapes ({time.strftime('%Y-%m-%d %H:%M:%S')})",
        f"host: {host['cpu']}, {host['cores']} cpus, {platform.machine()}, onnxruntime={ort.__version__} torch={torch.__version__}",
        f"channel block of this CPU: {block} ({why})",
        f"round_to: {args.round_to}{' (the default: the CPU block)' if args.round_to == block else ' (given on the command line)'}"
        + (", and 8 for comparison" if len(roundings) > 1 else ""),
        "efficiency = speedup / MAC reduction (goal >= 0.8)",
        f"load average at start (1/5/15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        "",
    ]
    archs, width_mults = args.archs.split(","), [float(w) for w in args.width_mults.split(",")]
    for case in cases(archs, width_mults, args.size, args.runs, args.wide_runs, not args.no_imagenet):
        report += bench(case, roundings, args.breakdown_runs if case.family == "mobilenetv2" else 0) + [""]
    load1 = os.getloadavg()
    report.append(f"load average at end (1/5/15 min): {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
