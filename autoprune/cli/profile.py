"""``autoprune profile MODEL.onnx --device PROFILE [--rounds N]``: one measurement, every number with its source.

With ``--rounds N`` the model is measured N times (windows of ``--window`` seconds) and its
latency is summarised as a study's confirmation pass summarises a trial's (the trimmed mean
of the round medians, :mod:`autoprune.profile.rounds`), so an exported model can be
re-measured with the protocol that produced its reported number.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._args import positive_number, whole_number

__all__ = ["register", "run", "format_measurement"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("profile", help="measure one ONNX model on a device",
                              description="Measure latency (and energy) of one ONNX model as a device profile says: "
                                          "in this process (kind: local) or on the device's agent (kind: agent).")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("--device", required=True, help="device profile: a YAML path or a name in device_profiles/")
    p.add_argument("--rounds", type=whole_number(), default=1,
                   help="measure N times and report the trimmed mean of the round medians, as a study's confirmation pass (default 1)")
    p.add_argument("--window", type=positive_number("seconds"), default=None,
                   help="seconds timed per round (default: the device profile's min_duration_s)")
    p.add_argument("--json", action="store_true", help="print the measurement as JSON")
    p.set_defaults(func=run)


def rounds_summary(rounds: list) -> dict:
    """The rounds' latency as a confirmation pass reports it: ``{latency_ms: Metric dict, round_medians_ms}``."""
    from ..profile.rounds import round_latency

    return {"latency_ms": round_latency(rounds).to_dict(), "round_medians_ms": [round(m.latency_ms.value, 6) for m in rounds]}


def _format_modelled(model: str, m) -> list[tuple[str, str]]:
    """Rows of a modelled measurement: nothing was run, so no runs, spread or onnxruntime."""
    g = m.device.get("graph", {})
    rows = [
        ("model", model),
        ("device", f"{m.device.get('name', '?')} via {m.settings.get('profiler', '?')} profiler (modelled: nothing is run)"),
        ("latency", f"{m.latency_ms.value:.4g} ms (modelled: {m.latency_ms.how})"),
        ("energy", f"{m.energy_mj.value:.4g} mJ per inference (modelled: {m.energy_mj.how})" if m.energy_mj else "none"),
        ("MACs", f"{g.get('macs', 0):,} (counted from the graph's shapes)"),
        ("constants", f"{sum(g.get('weight_bytes_by_bits', {}).values()) + g.get('other_constant_bytes', 0):,} bytes "
                      f"(weights by bits {g.get('weight_bytes_by_bits', {})}, counted from the graph)"),
        ("peak activations", f"{g.get('peak_activation_bytes', 0):,} bytes at node {g.get('peak_node') or '-'} (liveness walk over the graph)"),
    ]
    for lim in m.limits:
        rows.append((lim.name, ("REFUSED: " if lim.excess > 0 else "fits: ") + lim.reason()))
    return rows


def format_measurement(model: str, m, last_of: int = 1) -> str:
    """The measurement as aligned lines; each number carries ``(source: how)``; ``last_of`` > 1: it is the last of that many rounds."""
    if m.latency_ms.source == "modelled":
        rows = _format_modelled(model, m)
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    lat = m.latency
    how = m.latency_ms.how
    rows = [
        ("model", model + (f" (last of {last_of} rounds below; their summary last)" if last_of > 1 else "")),
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
    from ..exceptions import ConfigError, ProfilerError
    from ..profile import make_profiler
    from ..profile.rounds import measure_rounds

    if not Path(args.model).is_file():
        raise ConfigError(f"model {args.model}: file not found")
    device = load_device_profile(args.device)
    with make_profiler(device) as profiler:
        if args.rounds == 1 and args.window is None:
            rounds = [profiler.measure(args.model)]
        else:
            measured, failed = measure_rounds(profiler, {"model": args.model}, args.rounds, args.window)
            if failed:
                raise ProfilerError(failed["model"])
            rounds = measured["model"]
    m = rounds[-1]
    # A model gives the same number every round: nothing to summarise.
    summary = rounds_summary(rounds) if len(rounds) > 1 and m.latency_ms.source != "modelled" else None
    if args.json:
        doc = {"model": args.model, "device_profile": device.name, **m.to_dict()}
        if summary:
            doc["rounds"] = summary
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_measurement(args.model, m, last_of=len(rounds)))
        if summary:
            lat = summary["latency_ms"]
            print(f"{'latency (rounds)':<16}  {lat['value']:.4g} ms ({lat['source']}: {lat['how']})")
    return 0
