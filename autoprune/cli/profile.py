"""``autoprune profile MODEL.onnx --device PROFILE``: one measurement, every number with its source."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run", "format_measurement"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("profile", help="measure one ONNX model on a device",
                              description="Measure latency (and energy) of one ONNX model as a device profile says: "
                                          "in this process (kind: local) or on the device's agent (kind: agent).")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--device", required=True, help="device profile: a YAML path or a name in device_profiles/")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.set_defaults(func=run)


def format_measurement(model: str, m) -> str:
    """The measurement as aligned lines; each number carries ``(source: how)``."""
    lat = m.latency
    how = m.latency_ms.how
    rows = [
        ("model", model),
        ("device", f"{m.device.get('name', '?')} via {m.settings.get('profiler', '?')} profiler"
                   + (f" at {m.settings['url']}" if m.settings.get("url") else "")),
        ("latency median", f"{lat['median_ms']:.4g} ms (measured: {how})"),
        ("latency p90", f"{lat['p90_ms']:.4g} ms (measured: 90th percentile of the same {lat['n']} runs)"),
        ("latency mean", f"{lat['mean_ms']:.4g} ms (measured: mean of the same runs)"),
        ("latency std", f"{lat['std_ms']:.4g} ms (measured: sample standard deviation, cv {lat['cv']:.3f})"),
        ("runs", f"{lat['n']} timed after {m.settings.get('warmup', '?')} warm-up, {m.settings.get('threads', '?')} thread(s)"),
    ]
    if m.energy_mj is not None:
        rows.append(("energy", f"{m.energy_mj.value:.4g} mJ per inference ({m.energy_mj.source}: {m.energy_mj.how})"))
    else:
        rows.append(("energy", "none (no meter, and the device profile gives no power.watts)"))
    if m.peak_memory_mb is not None:
        mem_how = m.device.get("peak_memory_how", "peak RSS of the measuring process (ru_maxrss)")
        rows.append(("peak memory", f"{m.peak_memory_mb:.1f} MB (measured: {mem_how})"))
    rows.append(("onnxruntime", str(m.device.get("onnxruntime", "?"))))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..device import load_device_profile
    from ..exceptions import ConfigError
    from ..profile import make_profiler

    if not Path(args.model).is_file():
        raise ConfigError(f"model {args.model}: file not found")
    device = load_device_profile(args.device)
    with make_profiler(device) as profiler:
        m = profiler.measure(args.model)
    if args.json:
        json.dump({"model": args.model, "device_profile": device.name, **m.to_dict()}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_measurement(args.model, m))
    return 0
