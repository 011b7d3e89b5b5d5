"""``autoprune export RUN_DIR --trial N | --pick EXPR``: write plan.yaml, model.onnx and metrics.json."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export one trial (plan.yaml + model.onnx + metrics.json)",
        description="Rebuild the chosen trial's artifact, verify it is byte-identical to the measured one, and write it.",
    )
    p.add_argument("run_dir", help="run directory of a study")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number")
    which.add_argument("--pick", help="e.g. \"max accuracy where latency_ms <= 0.5\"")
    p.add_argument("--out", help="output directory (default: RUN_DIR/export/trial-N)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_trial
    from ._output import format_metric, print_json

    r = export_trial(args.run_dir, args.out, trial=args.trial, pick=args.pick)
    if args.json:
        print_json({"out_dir": str(r.out_dir), "trial": r.trial, "sha256": r.sha256, "metrics": r.metrics, "confirmed": r.confirmed})
        return 0
    print(f"exported trial {r.trial} to {r.out_dir}/ (plan.yaml, model.onnx, metrics.json)")
    print(f"model.onnx sha256 {r.sha256} (identical to the measured artifact)")
    for name, m in r.metrics.items():
        print(f"  {name:15s} {format_metric(name, m, r.confirmed)}")
    return 0
